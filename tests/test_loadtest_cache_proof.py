"""The cache proof (rhaii_tui/loadtest/cache_proof.py) against a fake vLLM with a block-level
prefix cache: it passes only when metrics, affinity and latency agree, and names the broken part."""

from __future__ import annotations

import json

import pytest

from rhaii_tui.loadtest.cache_proof import (
    MSG_CACHING_OFF,
    MSG_ROUTING,
    MSG_WORKS,
    Replica,
    latency_only_verdict,
    run_cache_proof,
)
from rhaii_tui.loadtest.prompts import approx_tokens, build_prefix
from rhaii_tui.loadtest.testserver import FakeVllm

# a small block size keeps the prompts short; prefill cost per uncached token makes the cache visible
FAST = dict(block_size=16, base_latency_s=0.002, per_token_s=0.0003)


@pytest.fixture
def fake(fake):
    """conftest's FakeVllm starter, with FAST as its defaults."""
    return lambda **kw: fake(**{**FAST, **kw})


def replicas_of(f: FakeVllm) -> list[Replica]:
    return [Replica(n, metrics_url=f.metrics_url(n)) for n in f.replica_names]


@pytest.mark.asyncio
async def test_affine_routing_with_caching_passes_on_all_witnesses(fake):
    f = await fake()
    events = []
    v = await run_cache_proof(f.base_url, replicas_of(f), seed=3, on_event=events.append)
    assert v.passed and v.status == "pass" and v.headline == MSG_WORKS, v.checks
    assert {c.name: c.ok for c in v.checks} == {"caching": True, "affinity": True, "control": True, "latency": True}
    assert v.block_size == 16 and v.block_size_source == "metrics"
    assert v.blocks >= 4 and v.prefix_tokens_est >= 4 * v.block_size
    assert v.hit_ratio >= 0.8 and v.speedup >= 1.1
    test = [r for r in v.requests if r.phase in ("cold", "warm")]
    assert {r.served_by for r in test} == {v.test_replica}
    assert all(r.served_by_source == "header" for r in test)
    # the hits landed on the test replica only; the control prefix got none
    assert [r.name for r in v.replicas if r.hits] == [v.test_replica]
    assert next(r for r in v.requests if r.phase == "control").hits == 0
    # every replica was warmed before the test prefix was sent
    assert {r.served_by for r in v.requests if r.phase == "warmup"} == set(f.replica_names)
    assert {e.phase for e in events} >= {"settings", "warmup", "cold", "warm", "control"}
    json.dumps(v.to_dict())


@pytest.mark.asyncio
async def test_without_the_header_the_replica_is_found_from_metric_deltas(fake):
    f = await fake(served_by_header=False)
    v = await run_cache_proof(f.base_url, replicas_of(f), seed=4)
    assert v.passed, v.checks
    test = [r for r in v.requests if r.phase in ("cold", "warm")]
    assert all(r.served_by_source == "metrics" for r in test)
    assert {r.served_by for r in test} == {v.test_replica}


@pytest.mark.asyncio
async def test_caching_off_is_named_as_caching(fake):
    f = await fake(caching=False)
    v = await run_cache_proof(f.base_url, replicas_of(f), seed=5)
    assert not v.passed and v.status == "fail"
    assert v.headline == MSG_CACHING_OFF and v.failing[0] == "caching"
    assert "routing" not in v.failing      # the router was fine: all repeats on one replica
    assert next(c for c in v.checks if c.name == "affinity").ok is True


@pytest.mark.asyncio
async def test_caching_off_is_found_from_zero_hits_when_config_info_is_missing(fake):
    f = await fake(caching=False, config_info=False)
    v = await run_cache_proof(f.base_url, replicas_of(f), seed=6, assumed_block_size=16)
    assert v.headline == MSG_CACHING_OFF and "caching" in v.failing
    assert v.block_size_source == "assumed"
    assert "no prefix-cache hits" in next(c for c in v.checks if c.name == "caching").detail


@pytest.mark.asyncio
@pytest.mark.parametrize("header", [True, False])
async def test_round_robin_routing_is_named_as_routing(fake, header):
    f = await fake(routing="round_robin", served_by_header=header)
    v = await run_cache_proof(f.base_url, replicas_of(f), seed=7)
    assert not v.passed and v.headline == MSG_ROUTING
    assert v.failing == ["routing"]          # the cache itself works on each replica
    assert next(c for c in v.checks if c.name == "caching").ok is True
    assert len([r for r in v.replicas if r.hits]) > 1


@pytest.mark.asyncio
async def test_latency_only_verdict_is_fooled_by_warm_up_the_proof_is_not(fake):
    # no prefix cache at all, but the first request the service sees pays a one-off warm-up
    naive_target = await fake(caching=False, service_warmup_s=0.15, base_latency_s=0.01, per_token_s=0.0)
    naive = await latency_only_verdict(naive_target.base_url)
    assert naive.says_cache_works is True           # the guide's test says "cache works"
    assert naive.first_ms > 100 and naive.later_avg_ms < 50
    proof_target = await fake(caching=False, service_warmup_s=0.15, base_latency_s=0.01, per_token_s=0.0)
    v = await run_cache_proof(proof_target.base_url, replicas_of(proof_target), seed=8)
    assert not v.passed and v.headline == MSG_CACHING_OFF


@pytest.mark.asyncio
async def test_latency_only_verdict_sees_no_big_speedup_without_a_warm_up_cost(fake):
    f = await fake(base_latency_s=0.01, per_token_s=0.0)
    naive = await latency_only_verdict(f.base_url, requests=5)
    assert len(naive.latencies_ms) == 5 and naive.prompt == "Translate to French: Hello world"
    assert naive.speedup_pct < 60       # the guide wants 60-75 %: only warm-up produces that here
    # a short prompt (< 1 block) never hits the cache: the guide's test has nothing to measure
    assert approx_tokens(naive.prompt) < f.block_size


@pytest.mark.asyncio
async def test_older_counter_spelling_is_accepted(fake):
    f = await fake(spelling="v0")
    v = await run_cache_proof(f.base_url, replicas_of(f), seed=9)
    assert v.passed, v.checks


@pytest.mark.asyncio
async def test_a_second_run_is_not_fooled_by_the_first_runs_cache(fake):
    f = await fake()
    a = await run_cache_proof(f.base_url, replicas_of(f))
    b = await run_cache_proof(f.base_url, replicas_of(f))
    assert a.passed and b.passed
    cold = next(r for r in b.requests if r.phase == "cold")
    assert cold.hits == 0                 # the second run's prefix is new to the cache


@pytest.mark.asyncio
async def test_unreadable_metrics_make_the_verdict_inconclusive_and_say_which_replica(fake):
    f = await fake()

    async def refused() -> str:
        raise ConnectionError("pod proxy refused")

    reps = replicas_of(f)
    reps[2] = Replica(reps[2].name, fetch=refused)
    v = await run_cache_proof(f.base_url, reps, seed=10)
    assert not v.passed and v.status == "inconclusive" and v.failing[0] == "metrics"
    assert reps[2].name in next(c for c in v.checks if c.name == "metrics").detail


@pytest.mark.asyncio
async def test_fetch_functions_work_like_urls(fake):
    f = await fake()
    import aiohttp

    async with aiohttp.ClientSession() as s:
        def fetcher(url):
            async def fetch() -> str:
                async with s.get(url) as r:
                    return await r.text()
            return fetch

        reps = [Replica(n, fetch=fetcher(f.metrics_url(n))) for n in f.replica_names]
        v = await run_cache_proof(f.base_url, reps, seed=11)
    assert v.passed, v.checks


@pytest.mark.asyncio
async def test_without_replica_metrics_the_verdict_is_not_a_pass(fake):
    f = await fake()
    v = await run_cache_proof(f.base_url, [], seed=12, assumed_block_size=16)
    assert not v.passed and v.status == "inconclusive"
    assert "not proven" in v.headline


@pytest.mark.asyncio
async def test_service_down_fails_naming_the_service():
    v = await run_cache_proof("http://127.0.0.1:9/rhaii-inference/svc", [], seed=13, assumed_block_size=16,
                              timeout_s=5)
    assert not v.passed and v.failing == ["service"]
    assert "connect" in v.headline.lower() and "Traceback" not in v.headline


@pytest.mark.asyncio
async def test_prefix_is_shortened_when_the_block_does_not_fit_max_model_len(fake):
    f = await fake(block_size=64)
    v = await run_cache_proof(f.base_url, replicas_of(f), seed=14, max_model_len=256)
    assert v.blocks < 4 and any("max-model-len" in n for n in v.notes)
    assert v.prefix_tokens_est + 32 <= 256


def test_prefix_length_matches_the_token_approximation():
    import random

    p = build_prefix(1152, random.Random(1))
    assert approx_tokens(p) == 1152 and len(p) == 4 * 1152
    assert len(p.split()) == 1152               # one word = 4 characters = ~1 token
    assert build_prefix(50, random.Random(1)) != build_prefix(50, random.Random(2))


@pytest.mark.asyncio
async def test_replica_metrics_over_https_with_the_cluster_ca():
    import ssl

    import aiohttp
    from aiohttp import web

    from rhaii_tui.cloud.inference import InferenceError
    from rhaii_tui.sim.tls import make_tls

    tls = make_tls()

    async def metrics(request):
        assert request.headers.get("Authorization") == "Bearer t0ken"
        return web.Response(text='vllm:prefix_cache_queries_total 10\nvllm:prefix_cache_hits_total 4\n'
                                 'vllm:cache_config_info{block_size="128",enable_prefix_caching="True"} 1\n')

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/ns/pods/https:p0:8000/proxy/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.server_context()).start()
    url = f"https://127.0.0.1:{runner.addresses[0][1]}/api/v1/namespaces/ns/pods/https:p0:8000/proxy/metrics"
    ca = ssl.create_default_context(cadata=tls.ca_pem)
    try:
        async with aiohttp.ClientSession() as s:
            m = await Replica("p0", metrics_url=url, headers={"Authorization": "Bearer t0ken"}, ssl=ca).read(s)
            assert (m.prefix_cache_hits, m.block_size) == (4.0, 128)
            with pytest.raises(InferenceError) as ei:       # without the CA: a clear TLS error
                await Replica("p0", metrics_url=url, headers={"Authorization": "Bearer t0ken"}).read(s)
            assert "TLS" in str(ei.value) and "t0ken" not in str(ei.value)
    finally:
        await runner.cleanup()
    assert "t0ken" not in repr(Replica("p0", metrics_url=url, headers={"Authorization": "Bearer t0ken"}))


def test_what_a_user_reads_names_no_internal_function():
    """The latency-only caveat lands in the PoC report: it speaks of the cache proof, not of code."""
    import re

    from rhaii_tui.loadtest.cache_proof import LatencyOnlyVerdict

    v = LatencyOnlyVerdict(True, "p", [1.0], 1.0, 1.0, 0.0, "h")
    assert not re.search(r"\b[a-z_]+\(\)", v.caveat), v.caveat
    assert "cache proof" in v.caveat
