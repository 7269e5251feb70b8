"""SVG snapshots of steps 9-11 at 120x40.

Deterministic: a fixed config, no connection (nothing runs, no latencies), and for step 10 a
canned result (a cache proof that names routing, the guide's latency-only test fooled, one
closed-loop throughput run) fed to the page as a finished run would be.
Update deliberately with: python -m pytest tests/test_screens_9_11_snapshots.py --snapshot-update
"""

from __future__ import annotations

import pytest

from rhaii_tui.app import RhaiiApp
from rhaii_tui.config import DeployConfig
from rhaii_tui.loadtest.cache_proof import MSG_ROUTING, CacheVerdict, Check, LatencyOnlyVerdict, ProofRequest, ReplicaReport
from rhaii_tui.loadtest.engine import LoadResult, LoadSpec, Percentiles, ProgressTick, guide_checks
from rhaii_tui.steps.performance import PerformanceResult, ThroughputRun

SIZE = (120, 40)
PODS = [f"qwen-3b-tpu-svc-kserve-7d9f8c6b5-{s}" for s in ("abcde", "fghij", "klmno")]


def fixed_cfg() -> DeployConfig:
    return DeployConfig(project="demo-project-01", zone="europe-west4-a", namespace="rhaii-inference", replicas=3)


def app_at(step: int) -> RhaiiApp:
    return RhaiiApp(fixed_cfg(), start_step=step)


async def page_ready(pilot):
    await pilot.app.start_page_ready.wait()
    await pilot.pause()


def canned_proof() -> CacheVerdict:
    reqs = [ProofRequest("warmup", i, True, 200, 218.0, 580, PODS[i % 3], "header") for i in range(6)]
    served = [PODS[0], PODS[1], PODS[2], PODS[0], PODS[1], PODS[2], PODS[0], PODS[1]]
    for i, who in enumerate(served):
        hits = 0.0 if i < 3 else 512.0
        reqs.append(ProofRequest("cold" if i == 0 else "warm", i, True, 200, 217.0 if i < 3 else 81.0, 580, who,
                                 "header", hits=hits, queries=582.0, hits_by_replica={who: hits} if hits else {}))
    reqs.append(ProofRequest("control", 0, True, 200, 216.0, 580, PODS[2], "header", hits=0.0, queries=582.0))
    return CacheVerdict(
        passed=False, status="fail", headline=MSG_ROUTING, failing=["routing"],
        checks=[Check("caching", True, "the cache works on each replica (2560 cached tokens), but the repeats were "
                                       "not kept on one replica"),
                Check("affinity", False, "the 8 requests with the same prefix were served by 3 replicas "
                                         f"({PODS[0]}: 3, {PODS[1]}: 3, {PODS[2]}: 2)"),
                Check("control", True, "a different prefix got 0 cached tokens: the cache is prefix-specific"),
                Check("latency", True, "repeats 1.63x faster than cold requests (132 ms vs 216 ms)")],
        block_size=128, block_size_source="metrics", blocks=4, prefix_tokens_est=576, prefix_chars=2304,
        cacheable_tokens_per_repeat=512, hit_ratio=0.71, first_latency_ms=217.0, warm_p50_ms=132.0,
        control_latency_ms=216.0, speedup=1.636, test_replica=None,
        replicas=[ReplicaReport(PODS[0], 128, True, True, 1024.0, 1746.0, 3),
                  ReplicaReport(PODS[1], 128, True, True, 1024.0, 1746.0, 3),
                  ReplicaReport(PODS[2], 128, True, True, 512.0, 1164.0, 2)],
        requests=reqs, notes=[], elapsed_s=4.2)


def canned_run() -> ThroughputRun:
    spec = LoadSpec(base_url="http://203.0.113.10/rhaii-inference/qwen-3b-tpu-svc", mode="closed", concurrency=10,
                    duration_s=10.0, warmup_s=2.0)
    ticks = [ProgressTick(t_s=float(t), completed=28 + (t % 3), rps=28.0 + (t % 3), errors=0, p50_ms=330.0 + 5 * (t % 4),
                          p90_ms=380.0, p99_ms=410.0 + 10 * (t % 2), in_flight=10, sent_total=30 * t,
                          done_total=29 * t, warmup=t <= 2) for t in range(1, 13)]
    lat = Percentiles(count=290, p50=335.0, p90=381.0, p99=431.0, mean=340.0, min=210.0, max=455.0, p99_reliable=True)
    r = LoadResult(spec=spec.to_dict(), mode="closed", started_at="2026-01-01T00:00:00+00:00", elapsed_s=12.0,
                   requests=290, ok=290, errors={}, error_rate=0.0, requested_rate=None, achieved_rate=29.0,
                   throughput=29.0, latency_ms=lat, service_ms=lat, schedule_delay_ms=None, in_flight_target=10,
                   served_by={}, buckets=ticks, guide=[], warnings=[])
    r.guide = guide_checks(r, spec)
    return ThroughputRun("closed", "closed loop, 10 in flight", r)


def canned_result() -> PerformanceResult:
    lo = LatencyOnlyVerdict(True, "Translate to French: Hello world", [215.0, 82.0, 80.0, 81.0, 79.0], 215.0, 80.5,
                            62.6, "cache hit acceleration detected (63% faster)")
    return PerformanceResult(
        started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:00:20+00:00", elapsed_s=20.0,
        deployment_uid="uid-1", access={"description": "via gateway 203.0.113.10", "via": "gateway"},
        replicas=PODS, proof=canned_proof(), latency_only=lo, throughput=[canned_run()], passed=False,
        status="fail", headline=MSG_ROUTING)


async def show_canned(pilot, tab: str) -> None:
    await page_ready(pilot)
    page = pilot.app.page_widget(10)
    res = canned_result()
    page.result = res
    page.options = None
    page.show_result(res)
    pilot.app.set_step_state(10, page.state_for(res))
    page.query_one("TabbedContent").active = tab
    await pilot.pause()


def test_step_9_before_running(snap_compare):
    assert snap_compare(app_at(9), terminal_size=SIZE, run_before=page_ready)


def test_step_10_before_running(snap_compare):
    assert snap_compare(app_at(10), terminal_size=SIZE, run_before=page_ready)


def test_step_10_proof_names_routing_and_the_fooled_latency_test(snap_compare):
    async def run_before(pilot):
        await show_canned(pilot, "tab-proof")

    assert snap_compare(app_at(10), terminal_size=SIZE, run_before=run_before)


def test_step_10_throughput_results_and_chart(snap_compare):
    async def run_before(pilot):
        await show_canned(pilot, "tab-throughput")

    assert snap_compare(app_at(10), terminal_size=SIZE, run_before=run_before)


def test_step_11_before_running(snap_compare):
    assert snap_compare(app_at(11), terminal_size=SIZE, run_before=page_ready)


def test_export_dialog(snap_compare):
    async def run_before(pilot):
        await page_ready(pilot)
        pilot.app.page_widget(11).action_export()
        await pilot.pause()
        pilot.app.screen.query_one("#export-path").cursor_blink = False
        await pilot.pause()

    assert snap_compare(app_at(11), terminal_size=SIZE, run_before=run_before)
