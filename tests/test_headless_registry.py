"""steps/registry.py: the table, probe_all and the summary of where a deployment stands."""

from __future__ import annotations

import threading

import pytest

from rhaii_tui.guide import STEPS as GUIDE
from rhaii_tui.steps import registry
from rhaii_tui.steps.base import Status, StepState


def test_the_table_has_the_eleven_guide_steps():
    assert [(e.number, e.key, e.title) for e in registry.STEPS] == [(s.number, s.key, s.title) for s in GUIDE]
    assert [e.number for e in registry.STEPS if e.mutating] == [3, 4, 5, 6, 7, 8]
    assert [e.number for e in registry.STEPS if e.optional] == [8]
    assert registry.entry("deploy").number == 5 and registry.entry(5).key == "deploy"


def states(**by_number):
    return {int(k[1:]): v for k, v in by_number.items()}


def test_summary_names_the_first_failure_then_what_is_in_progress():
    s = registry.summary(states(
        s1=StepState(Status.DONE, "ok"), s2=StepState(Status.DONE, "ok"), s3=StepState(Status.DONE, "ok"),
        s4=StepState(Status.DONE, "ok"),
        s5=StepState(Status.IN_PROGRESS, "2/3 pods ready, replica 3 compiling for 4m00s."),
        s6=StepState(Status.NOT_STARTED, "not yet")))
    assert s.headline == "step 5: 2/3 pods ready, replica 3 compiling for 4m00s."
    assert s.done == [1, 2, 3, 4] and s.in_progress == [5] and s.first_not_done == 5 and not s.complete
    failed = registry.summary(states(s1=StepState(Status.DONE, "ok"),
                                     s2=StepState(Status.FAILED, "Node pool tpu-pool is in ERROR (stockout).",
                                                  fix="Choose another zone."),
                                     s5=StepState(Status.IN_PROGRESS, "pods")))
    assert failed.headline == "step 2 failed: Node pool tpu-pool is in ERROR (stockout)."
    assert failed.to_dict()["failed"] == [{"step": 2, "summary": "Node pool tpu-pool is in ERROR (stockout).",
                                           "detail": "", "fix": "Choose another zone."}]
    assert "Fix: Choose another zone." in failed.lines()[0]


def test_summary_of_a_finished_and_a_fresh_deployment():
    done = registry.summary({n: StepState(Status.SKIPPED if n == 8 else Status.DONE, "ok") for n in range(1, 12)})
    assert done.complete and done.serving and done.first_not_done is None
    assert done.headline == "all 11 steps done: serving with cache-aware routing"
    fresh = registry.summary({n: StepState(Status.NOT_STARTED, "no") for n in range(1, 12)})
    assert fresh.headline == "next: step 1 (Preflight checks)" and not fresh.serving
    mid = registry.summary({n: StepState(Status.DONE if n < 4 else Status.NOT_STARTED, "x") for n in range(1, 12)})
    assert mid.headline == "steps 1-3 done; next: step 4 (Operators)"


def test_probe_all_runs_in_parallel_reports_each_and_survives_a_crash(monkeypatch):
    barrier = threading.Barrier(3, timeout=5)

    def fake(n):
        def probe(ctx):
            if n in (3, 4, 5):
                barrier.wait()            # three probes must be running at once to get past this
            if n == 7:
                raise RuntimeError("boom")
            return StepState(Status.DONE, f"step {n} ok")
        return probe

    table = tuple(registry.StepEntry(e.number, e.key, e.title, fake(e.number), e.apply, e.mutating, e.optional)
                  for e in registry.STEPS)
    monkeypatch.setattr(registry, "STEPS", table)
    monkeypatch.setattr(registry, "BY_NUMBER", {e.number: e for e in table})

    class Ctx:
        def cluster(self, refresh=False):
            return None

    seen: list[tuple[int, str]] = []
    got = registry.probe_all(Ctx(), lambda n, st: seen.append((n, threading.current_thread().name)))
    assert list(got) == list(range(1, 12))
    assert sorted(n for n, _ in seen) == list(range(1, 12))
    assert {name for _, name in seen} == {threading.current_thread().name}   # the caller's thread
    assert got[7].status is Status.FAILED and "boom" in got[7].summary
    assert all(got[n].status is Status.DONE for n in range(1, 12) if n != 7)
    assert registry.summary(got).headline.startswith("step 7 failed")


@pytest.mark.parametrize("kw,words", [
    (dict(creates_cluster=True, creates_pool=True), "create cluster c1 in europe-west4-a and create node pool tpu-pool"),
    (dict(resize=(3, 4)), "resize node pool tpu-pool from 3 to 4 node(s)"),
])
def test_cost_text_says_what_and_how_much(kw, words):
    from types import SimpleNamespace

    plan = SimpleNamespace(cluster="c1", zone="europe-west4-a", replicas=3, chips=12, cost_per_day=376.8,
                           cost_scaled_to_zero=6.0, creates_cluster=False, creates_pool=False, resize=None)
    for k, v in kw.items():
        setattr(plan, k, v)
    text = registry.cost_text(plan)
    assert words in text and "$376.80/day" in text and "$6.00/day scaled to zero" in text
