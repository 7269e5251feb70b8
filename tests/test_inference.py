"""The inference client and the /metrics parser (rhaii_tui/cloud/inference.py)."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
import pytest_asyncio
from aiohttp import web

from rhaii_tui.cloud.inference import (
    AsyncInferenceClient,
    HttpStatusError,
    InferenceClient,
    ServiceTimeout,
    ServiceUnreachable,
    BadResponse,
    parse_prometheus,
    parse_vllm_metrics,
)


@pytest_asyncio.fixture
async def serve():
    """Start an ad-hoc aiohttp app on 127.0.0.1:0; returns its base URL."""
    runners = []

    async def start(routes: list[web.RouteDef]) -> str:
        app = web.Application()
        app.add_routes(routes)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}/rhaii-inference/svc"

    yield start
    for r in runners:
        await r.cleanup()


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.asyncio
async def test_async_calls_report_status_latency_words_and_replica(fake):
    f = await fake(replicas=2)
    async with AsyncInferenceClient(f.base_url) as c:
        h = await c.health()
        m = await c.models()
        comp = await c.complete("Translate to French: Hello world", max_tokens=10)
        chat = await c.chat("Say hello", max_tokens=10)
    assert h.ok and h.status == 200
    assert m.ok and "/mnt/models" in m.models
    for r in (comp, chat):
        assert r.ok and r.status == 200 and r.latency_ms > 0
        assert r.text.startswith("Bonjour le monde")
        assert r.served_by in f.replica_names
        assert r.prompt_tokens and r.prompt_tokens > 0
    json.dumps([x.to_dict() for x in (h, m, comp, chat)])


@pytest.mark.asyncio
async def test_blocking_client_gives_the_same_answers(fake):
    f = await fake(replicas=1)

    def calls():
        with InferenceClient(f.base_url, timeout_s=5) as c:
            return c.health(), c.models(), c.complete("Hello"), c.chat("Hello"), c.metrics(f.metrics_url(f.replica_names[0]))

    h, m, comp, chat, metrics = await asyncio.to_thread(calls)
    assert h.ok and m.ok and comp.ok and chat.ok
    assert comp.served_by == f.replica_names[0]
    assert metrics.prefix_cache_queries and metrics.prefix_cache_queries > 0
    assert metrics.block_size == 16 and metrics.prefix_caching_enabled is True


@pytest.mark.asyncio
async def test_no_served_by_header_means_unknown_replica(fake):
    f = await fake(served_by_header=False)
    async with AsyncInferenceClient(f.base_url) as c:
        r = await c.complete("Hello")
    assert r.ok and r.served_by is None


@pytest.mark.asyncio
async def test_connection_refused_is_a_clear_error_not_a_traceback():
    url = f"http://127.0.0.1:{closed_port()}/rhaii-inference/svc"
    async with AsyncInferenceClient(url, timeout_s=5) as c:
        r = await c.health()
    assert not r.ok and r.status is None and r.error_kind == "connection"
    assert "connection refused" in r.error and "Traceback" not in r.error
    with pytest.raises(ServiceUnreachable) as ei:
        r.raise_for_error()
    assert "gateway" in str(ei.value)
    sync = await asyncio.to_thread(lambda: InferenceClient(url, timeout_s=5).complete("x"))
    assert sync.error_kind == "connection" and "connection refused" in sync.error


@pytest.mark.asyncio
async def test_timeout_is_reported_as_timeout(serve):
    async def slow(request):
        await asyncio.sleep(0.6)
        return web.json_response({})

    url = await serve([web.post("/rhaii-inference/svc/v1/completions", slow)])
    async with AsyncInferenceClient(url, timeout_s=0.2) as c:
        r = await c.complete("x")
    assert r.error_kind == "timeout" and "0.2 s" in r.error
    with pytest.raises(ServiceTimeout):
        r.raise_for_error()
    sync = await asyncio.to_thread(lambda: InferenceClient(url, timeout_s=0.2).complete("x"))
    assert sync.error_kind == "timeout"


@pytest.mark.asyncio
async def test_non_2xx_carries_status_server_message_and_a_hint(serve):
    async def unavailable(request):
        return web.json_response({"error": {"message": "no healthy upstream"}}, status=503)

    url = await serve([web.post("/rhaii-inference/svc/v1/completions", unavailable)])
    async with AsyncInferenceClient(url) as c:
        r = await c.complete("x")
        missing = await c.health()     # no route: 404
    assert r.status == 503 and r.error_kind == "http"
    assert "no healthy upstream" in r.error and "Ready" in r.error
    with pytest.raises(HttpStatusError) as ei:
        r.raise_for_error()
    assert ei.value.status == 503
    assert missing.status == 404 and "route" in missing.error.lower()


@pytest.mark.asyncio
async def test_wrong_model_or_not_openai_is_a_bad_response(serve):
    async def models(request):
        return web.json_response({"data": [{"id": "google/gemma-2b-it"}]})

    async def html(request):
        return web.Response(text="<html>default backend</html>", content_type="text/html")

    url = await serve([web.get("/rhaii-inference/svc/v1/models", models),
                       web.post("/rhaii-inference/svc/v1/completions", html)])
    async with AsyncInferenceClient(url) as c:
        m = await c.models()
        comp = await c.complete("x")
    assert not m.ok and m.models == ["google/gemma-2b-it"] and "/mnt/models" in m.error
    assert not comp.ok and comp.status == 200 and comp.error_kind == "protocol"
    with pytest.raises(BadResponse):
        comp.raise_for_error()


@pytest.mark.asyncio
async def test_secrets_never_reach_results_or_messages():
    token = "Bearer s3cr3t-token-value"
    url = f"http://user:hunter2@127.0.0.1:{closed_port()}/rhaii-inference/svc?key=abc123"
    async with AsyncInferenceClient(url, headers={"Authorization": token}) as c:
        r = await c.health()
    text = json.dumps(r.to_dict())
    for secret in ("s3cr3t", "hunter2", "abc123"):
        assert secret not in text


V1_METRICS = """\
# HELP vllm:prefix_cache_queries Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries counter
vllm:prefix_cache_queries_total{engine="0",model_name="/mnt/models"} 1200.0
vllm:prefix_cache_queries_total{engine="1",model_name="/mnt/models"} 800.0
vllm:prefix_cache_queries_created{engine="0",model_name="/mnt/models"} 1.7e+09
# TYPE vllm:prefix_cache_hits counter
vllm:prefix_cache_hits_total{engine="0",model_name="/mnt/models"} 512.0
vllm:prefix_cache_hits_total{engine="1",model_name="/mnt/models"} 256.0
vllm:prompt_tokens_total{engine="0",model_name="/mnt/models"} 2000.0
vllm:request_success_total{engine="0",finished_reason="length",model_name="/mnt/models"} 7.0
vllm:request_success_total{engine="0",finished_reason="stop",model_name="/mnt/models"} 3.0
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="256",cache_dtype="auto",enable_prefix_caching="True",note="a \\"quoted\\", value",num_gpu_blocks="4096"} 1.0
"""


def test_metrics_v1_counters_summed_over_engines_and_config_labels():
    m = parse_vllm_metrics(V1_METRICS)
    assert m.prefix_cache_queries == 2000.0 and m.prefix_cache_hits == 768.0   # _created ignored
    assert m.counter_spelling == "vllm:prefix_cache_*" and m.has_counters
    assert m.block_size == 256 and m.prefix_caching_enabled is True
    assert m.cache_config["note"] == 'a "quoted", value' and m.cache_config["num_gpu_blocks"] == "4096"
    assert m.prompt_tokens == 2000.0 and m.requests_succeeded == 10.0


def test_metrics_older_spellings_and_missing_counters():
    v0 = parse_vllm_metrics(
        "vllm:gpu_prefix_cache_queries 100\nvllm:gpu_prefix_cache_hits 40\n"
        "vllm:gpu_prefix_cache_hit_rate{model_name=\"m\"} 0.4\n"
        'vllm:cache_config_info{block_size="16",enable_prefix_caching="False"} 1\n')
    assert (v0.prefix_cache_queries, v0.prefix_cache_hits) == (100.0, 40.0)
    assert v0.counter_spelling == "vllm:gpu_prefix_cache_*" and v0.hit_rate_gauge == 0.4
    assert v0.block_size == 16 and v0.prefix_caching_enabled is False
    none = parse_vllm_metrics("# nothing here\nprocess_cpu_seconds_total 3.2\ngarbage line {\n")
    assert not none.has_counters and none.block_size is None and none.prefix_caching_enabled is None


def test_prometheus_parser_handles_timestamps_and_special_values():
    samples = parse_prometheus('a_total 1 1700000000000\nb{x="1"} +Inf\nc NaN\n')
    assert samples[0] == ("a_total", {}, 1.0)
    assert samples[1][2] == float("inf")


@pytest.mark.asyncio
async def test_async_metrics_scrape_of_a_replica(fake):
    f = await fake(replicas=2, block_size=32)
    async with AsyncInferenceClient(f.base_url) as c:
        await c.complete("x" * 400)
        ms = [await c.metrics(f.metrics_url(n)) for n in f.replica_names]
        with pytest.raises(HttpStatusError):
            await c.metrics(f.metrics_url("no-such-pod"))
    assert sum(m.prefix_cache_queries for m in ms) == 100   # 400 chars ~ 100 tokens
    assert all(m.block_size == 32 for m in ms)
