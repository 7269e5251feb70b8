"""Idle cost: a watching page's timers sleep while nothing changes (benchmarks/bench_idle.py measures it).

Mechanisms only (no timing): the 10 Hz render timer pauses once the watch is quiet and a change from a
watch thread wakes it; a hidden page's once-a-second tick does nothing and the page catches up on entry.
"""

from __future__ import annotations

import threading

import pytest

from rhaii_tui.app import RhaiiApp
from rhaii_tui.config import DeployConfig


async def _until(pilot, cond, tries: int = 600) -> bool:
    for _ in range(tries):
        if cond():
            return True
        await pilot.pause(0.05)
    return cond()


@pytest.mark.asyncio
async def test_render_timer_sleeps_while_quiet_and_a_watch_change_wakes_it():
    cfg = DeployConfig(project="demo-project-01", zone="europe-west4-a")
    app = RhaiiApp(cfg, profile=None, start_step=4)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.start_page_ready.wait()
        await pilot.pause()
        page = app.current_page
        app.goto_step(3)  # hidden: its once-a-second tick stays out of the way (see the next test)
        await pilot.pause()
        renders: list[bool] = []
        page.render_live = lambda live, tick: renders.append(tick)  # type: ignore[method-assign]
        timer = page._render_timer
        pauses: list[int] = []
        real_pause = timer.pause
        timer.pause = lambda: (pauses.append(1), real_pause())  # type: ignore[method-assign]
        page._live = object()  # a running watch (stands in for OperatorWatch)
        threading.Thread(target=page.mark_dirty).start()  # a watch event, from its thread
        assert await _until(pilot, lambda: False in renders)  # woken: the change is rendered
        assert await _until(pilot, lambda: bool(pauses))  # then quiet again: the timer sleeps
        n = renders.count(False)
        threading.Thread(target=page.mark_dirty).start()
        assert await _until(pilot, lambda: renders.count(False) > n)  # a later change wakes it again
        page._live = None


@pytest.mark.asyncio
async def test_a_hidden_pages_tick_does_nothing_and_entering_it_catches_up():
    cfg = DeployConfig(project="demo-project-01", zone="europe-west4-a")
    app = RhaiiApp(cfg, profile=None, start_step=4)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.start_page_ready.wait()
        await pilot.pause()
        page = app.current_page
        renders: list[bool] = []
        page.render_live = lambda live, tick: renders.append(tick)  # type: ignore[method-assign]
        page.ensure_watch = lambda: None  # type: ignore[method-assign]
        page._live = object()
        page._tick()
        assert renders == [True]  # on show: the time-dependent cells are refreshed
        app.goto_step(3)
        await pilot.pause()
        renders.clear()
        page._tick()
        assert renders == []  # hidden: no rendering work
        app.goto_step(4)
        await pilot.pause()
        assert True in renders  # back on show: refreshed at once, not a second later
        page._live = None


# --- what wakes while nothing changes (issue 15 item 13) -------------------------------------------
# Counted calls, not CPU time: a steady page does no work until its display would change.

import time  # noqa: E402
from types import SimpleNamespace  # noqa: E402

from textual.app import App, ComposeResult  # noqa: E402
from textual.widgets import Static  # noqa: E402

from rhaii_tui.steps.base import Status, StepState  # noqa: E402
from rhaii_tui.steps.podlife import MilestoneTracker, RowDiff, fmt_duration, fmt_duration_changes_in  # noqa: E402
from rhaii_tui.widgets.log_pane import LogPane  # noqa: E402
from rhaii_tui.widgets.pod_table import PodTableWidget  # noqa: E402


def test_the_age_text_changes_exactly_when_said():
    for s in [0, 0.4, 0.6, 1, 59.4, 59.6, 119.5, 599.4, 599.6, 600, 1510, 3599.2, 3599.6, 3600, 3629.4, 3659.6, 7210, 86_399]:
        wait = fmt_duration_changes_in(s)
        assert fmt_duration(s + wait) != fmt_duration(s), s
        assert fmt_duration(s + wait - 2e-3) == fmt_duration(s), s
    assert fmt_duration_changes_in(7210) > 19  # '2h00m' changes at 2h01m, not in a second
    assert fmt_duration(1510) == "25m" and fmt_duration_changes_in(1510) > 29  # as kubectl: minutes past 10 min


class PaneApp(App):
    def compose(self) -> ComposeResult:
        yield LogPane(id="pane")


def _interval_timers(widget) -> list:
    return [t for t in widget._timers if t._repeat is None and t._task is not None and not t._task.done()]


def _armed_timers(widget) -> list:
    return [t for t in widget._timers if t._task is not None and not t._task.done()]


@pytest.mark.asyncio
async def test_the_log_pane_sleeps_while_no_line_arrives_and_wakes_for_a_line():
    app = PaneApp()
    async with app.run_test(size=(100, 20)) as pilot:
        pane = app.query_one(LogPane)
        threading.Thread(target=pane.ingest, args=("installer", "", ["one", "two"])).start()
        assert await _until(pilot, lambda: pane.shown_lines == ["one", "two"])
        assert await _until(pilot, lambda: not _armed_timers(pane), tries=100)  # nothing waits: no timer at all
        assert not pane.drain_scheduled
        drains = pane.drains
        for _ in range(10):
            await pilot.pause(0.02)
        assert pane.drains == drains  # nothing drained while nothing came
        # lines from two threads at once: one wake, one batch, both shown
        threads = [threading.Thread(target=pane.ingest, args=("installer", "", [f"{n} {i}" for i in range(50)]))
                   for n in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert await _until(pilot, lambda: len(pane.shown_lines) == 102)
        assert pane.drains - drains <= 3  # batched (not one drain per line nor a polling cadence)


class FakeDeployWatch:
    def __init__(self) -> None:
        self.assessed = 0

    def assessment(self, now=None):
        self.assessed += 1
        return SimpleNamespace(state=StepState(Status.DONE, "Ready: 2/2 pods"), diagnoses=[])

    def milestones(self, _name):
        return MilestoneTracker(start=time.time(), time_scale=1.0)


class FakeDeployLive:
    """What DeployScreen reads of a DeployLive: two Ready pods two hours old."""

    time_scale = 1.0

    def __init__(self) -> None:
        self.dw = FakeDeployWatch()
        self.ticks = 0
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(time.time()) - 7205))
        self.pods = {f"ns/pod-{i}": {"metadata": {"name": f"pod-{i}", "namespace": "ns", "creationTimestamp": created}}
                     for i in (1, 2)}
        self.diffs = [RowDiff("add", k, {"name": p["metadata"]["name"], "stage": "Running 1/1", "ready": "1/1",
                                         "restarts": "0", "node": "n", "in_stage": "-", "expected": "",
                                         "severity": "ok", "milestone": ""}) for k, p in self.pods.items()]

    def drain(self):
        out, self.diffs = self.diffs, []
        return out

    def tick(self):
        self.ticks += 1
        return []

    def pod(self, key):
        return self.pods.get(key)

    def is_epp(self, _key):
        return False

    def states(self):
        return {"pods": "live"}

    def log_states(self):
        return {}

    def stop(self):
        pass


@pytest.mark.asyncio
async def test_step_5_with_steady_pods_does_no_work_until_an_age_changes_or_the_watch_does():
    cfg = DeployConfig(project="demo-project-01", zone="europe-west4-a")
    app = RhaiiApp(cfg, profile=None, start_step=5)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.start_page_ready.wait()
        await pilot.pause()
        page = app.current_page
        page.ensure_watch = lambda: None  # type: ignore[method-assign]
        live = FakeDeployLive()
        page._live = live
        page.mark_dirty()  # the watch's first list
        table = page.query_one(PodTableWidget)
        assert await _until(pilot, lambda: live.dw.assessed == 1 and len(table.row_keys()) == 2
                            and not page._ticking)
        assert table.shown_text("ns/pod-1", "age") == "2h00m"
        updates, assessed = table.cell_updates, live.dw.assessed
        for _ in range(10):  # ten ticks (e.g. entering the page ten times) of a steady deployment
            page._tick()
            await pilot.pause()
        assert await _until(pilot, lambda: not page._ticking)
        assert live.dw.assessed == assessed  # no assessment (and no worker for it)
        assert live.ticks == 0  # nor a recomputation of the pods' time-dependent cells
        assert table.cell_updates == updates  # nor an update of a cell whose text did not change
        assert page._tick_timer is not None and page._tick_due - time.monotonic() > 5  # sleeps until 2h01m
        # a watch change is assessed at once
        page.mark_dirty()
        assert await _until(pilot, lambda: live.dw.assessed == assessed + 1)
        # a pod in a timed stage (its time in stage shows seconds): ticks every second again
        live.diffs = [RowDiff("update", "ns/pod-2", {"stage": "Running 0/1", "ready": "0/1", "in_stage": "3s"})]
        page.mark_dirty()
        assert await _until(pilot, lambda: table.shown_text("ns/pod-2", "stage") == "Running 0/1" and not page._ticking
                            and live.dw.assessed >= assessed + 2)
        assert page.next_tick_in(live) == page.TICK_SECONDS
        page._live = None


@pytest.mark.asyncio
async def test_operate_shows_an_unchanged_status_without_updating_and_reads_less_often(monkeypatch):
    from rhaii_tui.screens.operate import OperateScreen
    from rhaii_tui.steps.operate import OpsStatus

    monkeypatch.setattr(OperateScreen, "ctx", property(lambda self: object()))  # "connected"
    monkeypatch.setattr(OperateScreen, "refresh_status", lambda self: None)  # no real reads here
    cfg = DeployConfig(project="demo-project-01", zone="europe-west4-a")
    app = RhaiiApp(cfg, profile=None, start_step=12)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.start_page_ready.wait()
        await pilot.pause()
        page = app.current_page
        rows = page.query_one("#ops-status-rows", Static)
        updates: list[bool] = []
        real_update = rows.update

        def update(content="", layout=True):
            updates.append(layout)
            real_update(content, layout=layout)

        rows.update = update  # type: ignore[method-assign]

        def status(ready: int) -> OpsStatus:
            st = OpsStatus(cfg.project, cfg.zone, cfg.cluster, cfg.namespace, cfg.service, 5.0,
                           cluster_status="RUNNING", pool_exists=True, pool_nodes=2, tpu_nodes_ready=2,
                           exists=True, llmisvc_ready=True, replicas_desired=2)
            st.replicas_ready = ready
            return st

        page.show_status(status(2))
        await pilot.pause()
        assert len(updates) == 1
        for _ in range(3):
            page.show_status(status(2))
            await pilot.pause()
        assert len(updates) == 1  # nothing new: nothing updated (an update re-lays out the page)
        assert page.next_read_in() == page.QUIET_REFRESH_SECONDS  # and it reads less often
        assert _interval_timers(page) == []  # one timer, armed for the next read
        page.show_status(status(1))  # a change: shown at once (same rows: no re-layout), back to the usual cadence
        await pilot.pause()
        assert updates[1:] == [False] and page.next_read_in() == page.IDLE_REFRESH_SECONDS


@pytest.mark.asyncio
async def test_the_periodic_re_probe_leaves_out_the_page_on_show(monkeypatch):
    """The page on show reports its own live state (a re-probe's never replaces it): probing it
    every period was work for nothing."""
    from rhaii_tui.steps import registry

    asked: list[list[int]] = []
    monkeypatch.setattr(registry, "probe_all", lambda ctx, one=None, *, steps=None, **kw: asked.append(
        sorted(steps) if steps is not None else [e.number for e in registry.STEPS]) or {})
    cfg = DeployConfig(project="demo-project-01", zone="europe-west4-a")
    app = RhaiiApp(cfg, profile=None, start_step=9)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.start_page_ready.wait()
        monkeypatch.setattr(app, "step_context", lambda: object())  # "connected"
        app._probed_once = True
        app._reprobe()
        assert await _until(pilot, lambda: bool(asked))
        assert asked[0] == [n for n in range(1, 12) if n != 9]


def test_step_4_ticks_when_an_age_changes_but_never_more_than_once_a_second():
    from rhaii_tui.screens.operators import OperatorsScreen

    page = OperatorsScreen()

    def live(scale: float):
        return SimpleNamespace(ctx=SimpleNamespace(profile=SimpleNamespace(time_scale=scale)))

    def view(*rows):
        return SimpleNamespace(rows=[SimpleNamespace(state=s, age_seconds=a) for s, a in rows])

    page.view = view(("ready", 7205.0), ("ready", 7300.0))
    assert 19 < page.next_tick_in(live(1.0)) < 20  # '2h01m' (7300 s) changes at 2h02m: the soonest of the two
    page.view = view(("ready", 125.0))
    assert page.next_tick_in(live(30.0)) == page.TICK_SECONDS  # seconds shown, 30x pace: once a second, not 30
    page.view = view(("ready", 7205.0), ("progressing", 20.0))
    assert page.next_tick_in(live(1.0)) == page.TICK_SECONDS  # not ready yet: every second
    page.view = view(("waiting", None))
    assert page.next_tick_in(live(1.0)) is None  # nothing on show depends on time


@pytest.mark.asyncio
async def test_a_finished_operation_bar_has_no_timer_and_still_shows_its_progress():
    """Step 2's bars: Textual's ProgressBar refreshes every second for its ETA (not shown here); a
    bar that is done (or waiting) runs no timer at all, and a report still repaints it."""
    from textual.app import App
    from textual.widgets import ProgressBar

    from rhaii_tui.widgets.op_progress import PhaseProgress

    class BarApp(App):
        def compose(self):
            yield PhaseProgress("Control plane", 300, id="bar")

    app = BarApp()
    async with app.run_test(size=(120, 10)) as pilot:
        bar = app.query_one(PhaseProgress)
        bar.finish("done")
        await pilot.pause()
        inner = bar.query_one(ProgressBar)
        running = [t for w in (bar, inner) for t in _armed_timers(w) if t._active.is_set()]  # (paused: asleep)
        assert running == []
        assert inner.percentage == 1.0 and "100%" in str(inner.query_one("#percentage").render())
