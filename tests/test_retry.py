"""The one retry policy (cloud/retry.py): Kubernetes, Google and pod-proxy calls retry 429/5xx and
dropped connections with back-off, honour Retry-After, stay bounded in time, and the error finally
shown names the party that failed (the Kubernetes API server, not the vLLM service)."""

from __future__ import annotations

import json

import httpx
import pytest

from rhaii_tui.cloud import retry
from rhaii_tui.cloud.inference import InferenceClient

STATUS_429 = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": "Too many requests, please try again later.", "reason": "TooManyRequests",
              "details": {"retryAfterSeconds": 1}, "code": 429}
STATUS_500 = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": "Internal error occurred: etcdserver: request timed out", "reason": "InternalError",
              "code": 500}
COMPLETION = {"id": "c1", "object": "text_completion", "model": "/mnt/models",
              "choices": [{"index": 0, "text": "Paris is the capital", "finish_reason": "length"}],
              "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}}
POD_PROXY = "https://10.0.0.1/api/v1/namespaces/ns/pods/https:qwen-0:8000/proxy"


@pytest.fixture
def sleeps(monkeypatch):
    """Record the pauses instead of sleeping (the policy looks time.sleep up at call time)."""
    got: list[float] = []
    monkeypatch.setattr(retry.time, "sleep", lambda s: got.append(s))
    return got


def proxy_client(answers: list[httpx.Response], **kw) -> tuple[InferenceClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0) if len(answers) > 1 else answers[0]

    c = InferenceClient(POD_PROXY, api_proxy=True, **kw)
    c._client = httpx.Client(transport=httpx.MockTransport(handler))
    return c, seen


# --- the policy ------------------------------------------------------------------------------------


def test_retry_after_seconds_and_http_date():
    assert retry.parse_retry_after("3") == 3.0
    assert retry.parse_retry_after(None) is None and retry.parse_retry_after("soon") is None
    assert 9.0 <= retry.parse_retry_after("Thu, 01 Jan 2099 00:00:10 GMT", now=4070908800.0) <= 10.0
    assert retry.status_retry_after(json.dumps(STATUS_429)) == 1.0


def test_backoff_grows_with_jitter_and_is_capped():
    p = retry.RetryPolicy(base_delay_s=0.5, max_delay_s=4.0)
    for i in range(10):
        d = p.backoff(i)
        assert p.base_delay_s / 10 <= d <= min(4.0, 0.5 * 2 ** i)
    assert len({round(p.backoff(3), 6) for _ in range(20)}) > 1, "jitter: not every client comes back at once"
    # a server's Retry-After wins over the back-off, but is capped
    assert 7.0 <= p.pause(0, 7.0) <= 8.0
    assert p.pause(0, 10_000) <= p.retry_after_cap_s + 1


def test_call_stops_at_the_time_budget(sleeps):
    n = [0]

    def always_busy():
        n[0] += 1
        raise ConnectionResetError("reset")

    p = retry.RetryPolicy(attempts=50, budget_s=10.0, retry_after_cap_s=30.0)
    with pytest.raises(ConnectionResetError) as ei:
        retry.call(always_busy, lambda e: retry.Verdict(True, 20.0, "reset"), policy=p)
    assert n[0] == 1 and sleeps == [], "a 20 s Retry-After does not fit a 10 s budget: no retry"
    assert retry.attempts_of(ei.value) == 1


def test_two_slow_failures_in_a_row_end_the_retries_but_fast_ones_do_not(sleeps, monkeypatch):
    """An offline machine: each try waits out the resolver (~5 s) before it fails. Two such tries
    are enough to say the network is down (not the whole 30 s budget); quick failures (a flaky
    server) keep every try."""
    clock = [1000.0]
    monkeypatch.setattr(retry.time, "monotonic", lambda: clock[0])
    calls = [0]

    def fails_after(seconds: float):
        def fn():
            calls[0] += 1
            clock[0] += seconds
            raise ConnectionError("Temporary failure in name resolution")
        return fn

    transient = lambda e: retry.Verdict(True, None, "dns")  # noqa: E731
    with pytest.raises(ConnectionError) as ei:
        retry.call(fails_after(5.0), transient)
    assert calls[0] == 2 and retry.attempts_of(ei.value) == 2
    calls[0] = 0
    with pytest.raises(ConnectionError) as ei:
        retry.call(fails_after(0.05), transient)
    assert calls[0] == retry.DEFAULT_POLICY.attempts


# --- Kubernetes: Retry-After is honoured (Lifecycle item 11) ---------------------------------------


def _api_exception(status: int, body: dict, headers: dict):
    from kubernetes.client.exceptions import ApiException

    e = ApiException(status=status, reason="Too Many Requests" if status == 429 else "Internal Server Error")
    e.body = json.dumps(body)
    e.headers = headers
    return e


def test_kubernetes_retry_honours_retry_after(sleeps):
    from rhaii_tui.cloud.kube import retry_transient

    calls = [0]

    def fn():
        calls[0] += 1
        if calls[0] == 1:
            raise _api_exception(429, STATUS_429, {"Retry-After": "3"})
        return {"ok": True}

    assert retry_transient(fn) == {"ok": True}
    assert calls[0] == 2 and len(sleeps) == 1 and 3.0 <= sleeps[0] < 4.0, sleeps


def test_kubernetes_create_is_retried_on_429_but_not_on_500(sleeps):
    from rhaii_tui.cloud.kube import retry_transient

    calls = [0]

    def create_429_then_ok():
        calls[0] += 1
        if calls[0] == 1:
            raise _api_exception(429, STATUS_429, {})
        return "created"

    assert retry_transient(create_429_then_ok, idempotent=False) == "created"
    assert calls[0] == 2 and 1.0 <= sleeps[0] < 2.0, "no Retry-After header: the Status body's retryAfterSeconds"

    def create_500():
        raise _api_exception(500, STATUS_500, {})

    with pytest.raises(Exception):
        retry_transient(create_500, idempotent=False)
    assert len(sleeps) == 1, "a 500 on a create may have created it: not retried"


def test_kubernetes_final_error_names_the_api_server_and_the_attempts(sleeps):
    from rhaii_tui.cloud.kube import kube_error, retry_transient

    def busy():
        raise _api_exception(429, STATUS_429, {"Retry-After": "1"})

    with pytest.raises(Exception) as ei:
        retry_transient(busy, policy=retry.RetryPolicy(attempts=3))
    err = kube_error(ei.value, "list Pods")
    assert err.kind == "unavailable"
    assert "API server refused" in err.message and "after 3 attempts" in err.message
    assert len(sleeps) == 2


# --- Google ------------------------------------------------------------------------------------------


def test_google_retry_honours_retry_after_of_a_rest_error(sleeps):
    from rhaii_tui.cloud.gke import ErrorContext, http_error, retry_transient

    calls = [0]

    def fn():
        calls[0] += 1
        if calls[0] == 1:
            err = http_error(429, {"error": {"code": 429, "message": "Rate limit exceeded: requests per minute",
                                             "status": "RESOURCE_EXHAUSTED"}}, ErrorContext(what="list zones"))
            err.details["retry_after"] = 2.0
            raise err
        return "zones"

    assert retry_transient(fn) == "zones"
    assert calls[0] == 2 and 2.0 <= sleeps[0] < 3.0


# --- the pod proxy: API-server errors are retried and named, service errors are not -----------------


def test_pod_proxy_429_with_retry_after_then_200(sleeps):
    c, seen = proxy_client([httpx.Response(429, json=STATUS_429, headers={"Retry-After": "2"}),
                            httpx.Response(200, json=COMPLETION)])
    stats = retry.RetryStats()
    c.stats = stats
    res = c.complete("What is the capital of France?")
    assert res.ok, res.error
    assert res.text.startswith("Paris") and res.retries == 1 and stats.retries == 1
    assert len(seen) == 2 and len(sleeps) == 1 and 2.0 <= sleeps[0] < 3.0


def test_pod_proxy_final_error_blames_the_api_server_not_vllm(sleeps):
    c, seen = proxy_client([httpx.Response(500, json=STATUS_500)], retry_policy=retry.RetryPolicy(attempts=4))
    res = c.complete("hello")
    assert not res.ok and res.status == 500
    assert res.error_kind == "apiserver"
    assert "Kubernetes API server" in res.error and "after 4 attempts" in res.error
    assert "vLLM pod's log" not in res.error and "not the vLLM service" in res.error
    assert len(seen) == 4 and res.retries == 3


def test_pod_proxy_429_is_not_called_rate_limiting_by_the_service(sleeps):
    c, _ = proxy_client([httpx.Response(429, json=STATUS_429)], retry_policy=retry.RetryPolicy(attempts=2))
    res = c.health()
    assert res.error_kind == "apiserver"
    assert "API server refused" in res.error and "service is rate limiting" not in res.error


def test_a_service_error_through_the_proxy_is_not_retried_and_is_the_services(sleeps):
    # the API server passes the backend's own answer through: no Status body
    c, seen = proxy_client([httpx.Response(503, json={"error": {"message": "engine is overloaded"}})])
    res = c.complete("hello")
    assert not res.ok and res.error_kind == "http" and res.retries == 0 and len(seen) == 1
    assert "engine is overloaded" in res.error and "API server" not in res.error
    assert sleeps == []


def test_pod_proxy_metrics_are_retried_too(sleeps):
    c, seen = proxy_client([httpx.Response(503, json=dict(STATUS_500, code=503)),
                            httpx.Response(200, text="vllm:prefix_cache_queries_total 10\n"
                                                     "vllm:prefix_cache_hits_total 4\n")])
    m = c.metrics(POD_PROXY + "/metrics")
    assert m.prefix_cache_hits == 4 and len(seen) == 2 and len(sleeps) == 1


def test_emulator_fault_on_the_pod_proxy_is_a_kubernetes_status():
    """What the wizard relies on to tell the parties apart: the emulated API server's own faults
    carry a `kind: Status` body (and Retry-After on 429), as the real one does."""
    from rhaii_tui.sim.kube.server import ApiError

    err = ApiError(429, "TooManyRequests", "Too many requests, please try again later.", {"retryAfterSeconds": 1})
    assert retry.is_kube_status_body(err.status())
    assert retry.status_retry_after(err.status()) == 1.0


# --- end to end: apply and verify hold on a flaky API ------------------------------------------------


@pytest.mark.parametrize("world_no", [0, 1])
def test_apply_and_verify_succeed_on_flaky_api(make_sim_world, capsys, tmp_path, monkeypatch, world_no):
    """flaky-api: 10% of Kubernetes and Google requests answer 5xx/429 (pod proxy included), watches
    drop, one resume gets 410. Apply from fresh and verify must both pass (two fresh worlds here; the
    10-of-10 run and harsher rates are in benchmarks/bench_flaky.py)."""
    import base64

    from rhaii_tui import cli

    monkeypatch.setenv("RHAII_TUI_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    for name in ("PROJECT_ID", "ZONE", "CLUSTER_NAME", "NAMESPACE", "HF_TOKEN", "REGISTRY_PASSWORD",
                 "CLOUDSDK_CORE_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    hf = tmp_path / "hf-token"
    hf.write_text("hf_" + "a1B2c3D4" * 4 + "zz\n")
    auth = base64.b64encode(b"someone:not-a-real-password").decode()
    pull = tmp_path / "pull.yaml"
    pull.write_text("apiVersion: v1\nkind: Secret\nmetadata:\n  name: rhaiis-pull-secret\n"
                    "type: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: |\n"
                    f'    {{"auths": {{"registry.redhat.io": {{"auth": "{auth}"}}}}}}\n')
    world = make_sim_world("flaky-api")
    base = ["--sim", "--sim-state", str(world.state_dir)]
    capsys.readouterr()
    code = cli.main([*base, "apply", "--yes", "--hf-token-file", str(hf), "--pull-secret-file", str(pull),
                     "--poll", "0.05"])
    out, err = capsys.readouterr()
    assert code == 0, (out + err)[-3000:]
    assert "done: steps 1-11 complete" in out
    code = cli.main([*base, "verify", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, (out + err)[-3000:]
    doc = json.loads(out)
    assert doc["ok"] is True and set(doc["verdict"]["steps"].values()) == {"pass"}


def test_google_final_error_says_it_was_retried(sleeps):
    from rhaii_tui.cloud.gke import CloudError, ErrorContext, http_error, retry_transient

    def fn():
        raise http_error(503, {"error": {"code": 503, "message": "The service is currently unavailable.",
                                         "status": "UNAVAILABLE"}}, ErrorContext(what="read cluster c1"))

    with pytest.raises(CloudError) as ei:
        retry_transient(fn, policy=retry.RetryPolicy(attempts=3))
    assert ei.value.kind == "unavailable" and "currently unavailable" in ei.value.message
    assert "3 attempts in a row" in ei.value.message and len(sleeps) == 2


# --- measurements: a retried proxy call is not a service failure, and is counted ---------------------


@pytest.mark.asyncio
async def test_cache_proof_counts_proxy_retries_and_still_passes(fake):
    """Every third /metrics read through the (fake) API-server pod proxy gets the API server's own
    429 (a Status body, Retry-After 0): the proof retries it, passes, and reports the retries."""
    import aiohttp
    from aiohttp import web

    from rhaii_tui.loadtest.cache_proof import Replica, run_cache_proof

    # prefill cost per uncached token makes the cache visible in latency (as in test_loadtest_cache_proof)
    f = await fake(block_size=16, base_latency_s=0.002, per_token_s=0.0003)
    n = [0]

    async def proxy(request: web.Request) -> web.Response:
        n[0] += 1
        if n[0] % 3 == 0:
            return web.json_response(STATUS_429, status=429, headers={"Retry-After": "0"})
        async with aiohttp.ClientSession() as s, s.get(f.metrics_url(request.match_info["pod"])) as r:
            return web.Response(status=r.status, text=await r.text())

    app = web.Application()
    app.router.add_get("/pods/{pod}/proxy/metrics", proxy)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        replicas = [Replica(name, metrics_url=f"http://127.0.0.1:{port}/pods/{name}/proxy/metrics", api_proxy=True)
                    for name in f.replica_names]
        v = await run_cache_proof(f.base_url, replicas, seed=3)
    finally:
        await runner.cleanup()
    assert v.passed and v.status == "pass", (v.headline, v.checks)
    assert v.retries >= 1 and n[0] > v.retries
    assert any("retried" in note for note in v.notes)
    assert all(r.ok for r in v.requests), "no request counted as a service failure"


def test_a_token_refresh_that_cannot_reach_google_is_not_retried_again_on_top(sleeps):
    """google-auth already retried the token endpoint (urllib3, then its own back-off): the Google
    call that needed the token says so at once instead of repeating the whole refresh six times
    (an offline `status` answered in ~30 s before)."""
    from google.auth import exceptions as aexc

    from rhaii_tui.cloud.gke import CloudError, map_error, retry_transient

    calls = [0]

    def needs_a_token():
        calls[0] += 1
        try:
            raise aexc.TransportError("HTTPSConnectionPool(host='oauth2.googleapis.com', port=443): Max retries "
                                      "exceeded (Caused by NameResolutionError: Failed to resolve "
                                      "'oauth2.googleapis.com' ([Errno -2] Name or service not known))")
        except aexc.TransportError as e:
            raise map_error(e) from None

    with pytest.raises(CloudError) as ei:
        retry_transient(needs_a_token)
    assert calls[0] == 1 and sleeps == []
    assert ei.value.kind == "unavailable" and "could not be resolved (DNS)" in ei.value.message
    assert "attempts in a row" not in ei.value.message
