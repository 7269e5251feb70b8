"""Step 10: the replicas' /metrics through the pod proxy verify the cluster's CA, and the event that
ends a run says pass or fail with the one-line reason that decided it."""

from __future__ import annotations

import asyncio
import dataclasses
import types
from pathlib import Path

import pytest

from rhaii_tui import manifests as m
from rhaii_tui.cloud.inference import InferenceError
from rhaii_tui.config import GATEWAY_NAMESPACE, DeployConfig, StateStore
from rhaii_tui.loadtest.cache_proof import MSG_ROUTING
from rhaii_tui.steps import performance, verify
from rhaii_tui.steps.context import StepContext

SPEED = 2000
PROOF_ONLY = performance.PerfOptions(modes=(), seed=11, store=False)


def make_ctx(world, tmp_path: Path) -> StepContext:
    cfg = DeployConfig(project="rhaii-demo-project", zone="europe-west4-a", cluster="rhaii-tpu-scaleout-cluster",
                       replicas=3)
    return StepContext(cfg, world.profile(), StateStore(tmp_path / "state"))


def read_all(replicas) -> list:
    import aiohttp

    async def main() -> list:
        # a session with the default trust store, as the gateway's client has: each replica brings its own
        async with aiohttp.ClientSession() as s:
            out = []
            for r in replicas:
                try:
                    out.append(await r.read(s))
                except InferenceError as e:
                    out.append(e)
            return out
    return asyncio.run(main())


def test_replica_metrics_through_the_pod_proxy_verify_the_cluster_ca(make_sim_world, tmp_path):
    world = make_sim_world("deployed", speed=SPEED)
    ctx = make_ctx(world, tmp_path)
    kube = ctx.kube()
    live = verify.read_live(ctx, kube)
    kh = verify.KubeHttp.from_session(kube, ctx.profile)
    assert kh.host.startswith("https://") and isinstance(kh.verify, str)   # the API server has its own CA

    metrics = read_all(performance.proof_replicas(ctx, live, kh))
    assert len(metrics) == 3
    assert all(not isinstance(x, Exception) and x.block_size for x in metrics), metrics

    # verification is on, not skipped: another CA than the cluster's is refused
    import certifi

    refused = read_all(performance.proof_replicas(ctx, live, dataclasses.replace(kh, verify=certifi.where())))
    assert refused and all(isinstance(x, InferenceError) for x in refused), refused


def test_the_done_event_names_what_failed_in_one_line(make_sim_world, tmp_path):
    world = make_sim_world("deployed", speed=SPEED)
    ctx = make_ctx(world, tmp_path)
    kube = ctx.kube()
    for name in m.envoyfilter_names(ctx.cfg.service).values():
        assert kube.delete(m.ENVOYFILTER_API_VERSION, "EnvoyFilter", name, GATEWAY_NAMESPACE)
    events: list[performance.PerfEvent] = []
    res = performance.run_performance(ctx, PROOF_ONLY, events.append)
    done = events[-1]
    assert done.kind == "done" and done.verdict is not None
    assert done.verdict.status == "fail" and not done.verdict.passed and res.status == "fail"
    assert done.verdict.reason == MSG_ROUTING and "\n" not in done.verdict.reason
    assert done.verdict.line().startswith("FAIL: ")


def test_a_run_that_cannot_start_still_ends_with_a_verdict(make_sim_world, tmp_path):
    world = make_sim_world("cluster-ready", speed=SPEED)
    ctx = make_ctx(world, tmp_path)
    events: list[performance.PerfEvent] = []
    res = performance.run_performance(ctx, PROOF_ONLY, events.append)
    assert not res.passed
    assert [e.kind for e in events] == ["done"]
    assert events[0].verdict.status == "fail" and "nothing deployed" in events[0].verdict.reason


@pytest.mark.parametrize("error", ["connection refused", None])
def test_the_reason_is_the_failing_throughput_run_not_the_passing_proof(error):
    proof = types.SimpleNamespace(passed=True, status="pass", headline="cache-aware routing works", failing=[],
                                  checks=[])
    opts = performance.PerfOptions(modes=("closed",))
    run = performance.ThroughputRun("closed", performance.mode_label("closed", opts), error=error)
    v = performance.judge(opts, proof, [run], True)
    assert v.status == "fail"
    assert v.reason.startswith("throughput closed loop, 10 in flight: ")
    assert (error or "no result") in v.reason and "routing works" not in v.reason

    passing = performance.judge(performance.PerfOptions(modes=()), proof, [], True)
    assert passing.passed and passing.line() == "PASS: cache-aware routing works"
