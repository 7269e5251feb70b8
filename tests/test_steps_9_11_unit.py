"""Steps 9-11 and the PoC report against a small fake: the loadtest FakeVllm behind a fake gateway,
a fake Kubernetes API proxy (pod and service proxy, bearer token required) and in-memory objects.
Fast and independent of the emulator; the emulator tests are in test_steps_9_11_sim.py."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from rhaii_tui import manifests
from rhaii_tui.config import DeployConfig, StateStore
from rhaii_tui.loadtest.testserver import FakeVllm
from rhaii_tui.report import build_report, redact, render_markdown, sparkline, write_report
from rhaii_tui.steps import identity, performance, verify
from rhaii_tui.steps.base import Status

TOKEN = "kube-bearer-CANARY-9f8e7d6c5b4a"
HF_CANARY = "hf_CanaryCanaryCanaryCanaryCanary1234"
REG_CANARY = "registry-CANARY-pa55w0rd"
FAST = dict(block_size=16, base_latency_s=0.002, per_token_s=0.0003)


class Loop:
    """An event loop in a thread, for the fake servers (the steps are blocking and run their own)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.t = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.t.start()

    def run(self, coro, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.t.join(5)


class FakeKubeProxy:
    """/api/v1/namespaces/NS/{pods,services}/NAME/proxy/PATH, bearer token required."""

    def __init__(self, fake: FakeVllm):
        self.fake = fake
        self.seen: list[tuple[str, str, str]] = []   # (kind, name, path)
        self.port = 0
        self._runner = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/v1/namespaces/{ns}/{kind}/{name}/proxy/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def handle(self, request: web.Request) -> web.Response:
        import aiohttp

        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"kind": "Status", "code": 401}, status=401)
        kind, name, tail = request.match_info["kind"], request.match_info["name"], request.match_info["tail"]
        self.seen.append((kind, name, tail))
        scheme, _, rest = name.partition(":")
        if scheme != "https":
            return web.Response(status=502, text="vLLM speaks HTTPS on 8000")
        target = rest.rsplit(":", 1)[0]
        async with aiohttp.ClientSession() as s:
            if kind == "pods":
                if tail == "metrics":
                    url = self.fake.metrics_url(target)
                else:   # a replica answering on its own: the fake has no per-replica API, use the service
                    url = f"{self.fake.base_url}/{tail}"
            else:
                url = f"{self.fake.base_url}/{tail}"
            body = await request.read()
            async with s.request(request.method, url, data=body or None,
                                 headers={"Content-Type": "application/json"} if body else None) as r:
                data = await r.read()
                hdrs = {k: v for k, v in r.headers.items() if k.lower() in ("x-served-by", "content-type")}
                if kind == "pods" and tail.startswith("v1/completions"):
                    hdrs["x-served-by"] = target
                return web.Response(body=data, status=r.status, headers=hdrs)


def make_pod(cfg: DeployConfig, name: str, i: int, *, ready: bool = True, prefix_flag: bool = True) -> dict:
    args = [a for a in manifests.vllm_flags(cfg) if prefix_flag or a != "--enable-prefix-caching"]
    return {
        "metadata": {"name": name, "namespace": cfg.namespace, "uid": f"pod-uid-{i}",
                     "labels": manifests.workload_labels(cfg.service)},
        "spec": {"nodeName": f"gke-tpu-node-{i}",
                 "initContainers": [{"name": "storage-initializer", "args": [cfg.model, "/mnt/models"]}],
                 "containers": [{"name": "main", "command": manifests.vllm_command(), "args": args,
                                 "env": [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {
                                     "name": "huggingface-token", "key": "token"}}}]}]},
        "status": {"phase": "Running",
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                   "containerStatuses": [{"name": "main", "ready": ready, "restartCount": 0}]},
    }


MAIN_LOG = """INFO 11-23 10:00:01 [api_server.py:1885] vLLM API server version 0.11.0
INFO 11-23 10:00:02 [core.py:77] Initializing a V1 LLM engine (v0.11.0) with config: model='/mnt/models', served_model_name=/mnt/models, enable_prefix_caching=True
INFO 11-23 10:00:03 Resolved architecture: Qwen2ForCausalLM
INFO 11-23 10:00:10 Loading safetensors checkpoint shards: 100% Completed | 2/2
INFO 11-23 10:00:12 Loading weights took 12.30 seconds
INFO 11-23 10:00:12 Model Qwen/Qwen2.5-3B-Instruct
INFO 11-23 10:00:20 TPU KV cache size: 3,145,728 tokens
INFO 11-23 10:00:21 Compiling the model with different input shapes
INFO 11-23 10:03:21 Compiled the model with different input shapes
"""
INIT_LOG = "Successfully copied hf://Qwen/Qwen2.5-3B-Instruct to /mnt/models\n"


class _Core:
    def __init__(self, kube: "FakeKube"):
        self.kube = kube

    def read_namespaced_pod_log(self, name, namespace, container=None, limit_bytes=None, **kw):
        self.kube.log_reads.append((name, container))
        return INIT_LOG if container == "storage-initializer" else MAIN_LOG


class FakeKube:
    def __init__(self, cfg: DeployConfig, pods: list[dict], *, gateway_address: str | None, host: str,
                 llmisvc_uid: str = "llmisvc-uid-1"):
        self.cfg = cfg
        self.pods = pods
        self.gateway_address = gateway_address
        self.llmisvc_uid = llmisvc_uid
        self.api_client = type("AC", (), {})()
        self.api_client.configuration = type("Conf", (), {"host": host, "ssl_ca_cert": None, "verify_ssl": True})()
        self.core = _Core(self)
        self.log_reads: list[tuple[str, str]] = []
        self.pool_group = "inference.networking.x-k8s.io"

    def get(self, api_version, kind, name, namespace=None):
        if kind == "LLMInferenceService":
            return {"metadata": {"name": name, "uid": self.llmisvc_uid}, "spec": {"replicas": self.cfg.replicas},
                    "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
        if kind == "Gateway":
            st = {"addresses": [{"type": "IPAddress", "value": self.gateway_address}]} if self.gateway_address else {}
            return {"metadata": {"name": name}, "status": st}
        if kind == "HTTPRoute" and name == manifests.health_route_name(self.cfg.service):
            route = manifests.health_route(self.cfg, pool_group=self.pool_group)
            route["status"] = {"parents": [{"conditions": [{"type": "ResolvedRefs", "status": "True"}]}]}
            return route
        return None

    def list(self, api_version, kind, namespace=None, label_selector=None):
        if kind == "InferencePool":  # KServe 3.4.0-ea.1's pool
            if api_version != f"{self.pool_group}/{manifests.INFERENCE_POOL_APIS[self.pool_group]}":
                return []
            return [{"metadata": {"name": manifests.inference_pool_name(self.cfg.service), "namespace": namespace,
                                  "ownerReferences": [{"kind": "LLMInferenceService", "name": self.cfg.service}]}}]
        assert label_selector == manifests.label_selector(manifests.workload_labels(self.cfg.service))
        return self.pods

    def call(self, what, fn, *args, **kwargs):
        return fn(*args, **kwargs)


class FakeProfile:
    label = "FAKE"

    def __init__(self, gateway_url: str):
        self.gateway_url = gateway_url

    def access_token(self) -> str:
        return TOKEN

    def gateway_base_url(self, address: str, cluster_key: str | None = None) -> str:
        return self.gateway_url


class FakeSecrets:
    def values(self) -> list[str]:
        return [HF_CANARY, REG_CANARY]


class FakeCtx:
    def __init__(self, cfg, profile, kube, store):
        self.cfg, self.profile, self._kube, self.state_store = cfg, profile, kube, store
        self.secrets = FakeSecrets()

    def kube(self):
        return self._kube

    def saved(self):
        return self.state_store.load(self.cfg.project, self.cfg.zone, self.cfg.cluster)

    def record(self, **values):
        self.state_store.update(self.cfg, **values)


@pytest.fixture
def world(tmp_path):
    loop = Loop()
    made: list[Any] = []

    def make(*, routing: str = "prefix", caching: bool = True, gateway_address: str | None = "10.0.0.5",
             ready: tuple[bool, ...] = (True, True, True), prefix_flag: bool = True, uid: str = "llmisvc-uid-1"):
        fake = FakeVllm(**FAST, routing=routing, caching=caching)
        loop.run(fake.start())
        proxy = FakeKubeProxy(fake)
        loop.run(proxy.start())
        made.append((fake, proxy))
        cfg = DeployConfig(project="demo-project-1")
        pods = [make_pod(cfg, n, i, ready=ready[i], prefix_flag=prefix_flag) for i, n in enumerate(fake.replica_names)]
        kube = FakeKube(cfg, pods, gateway_address=gateway_address, host=f"http://127.0.0.1:{proxy.port}",
                        llmisvc_uid=uid)
        profile = FakeProfile(f"http://127.0.0.1:{fake.port}")
        ctx = FakeCtx(cfg, profile, kube, StateStore(tmp_path / "state"))
        ctx.fake, ctx.proxy = fake, proxy
        return ctx

    yield make
    for fake, proxy in made:
        loop.run(proxy.stop())
        loop.run(fake.stop())
    loop.close()


QUICK = performance.PerfOptions(modes=("closed", "serial"), duration_s=0.6, warmup_s=0.1, in_subprocess=False,
                                seed=7, repeats=6)


# --- step 9 ---------------------------------------------------------------------------------------


def test_verify_passes_through_the_gateway_with_evidence_and_each_replica_via_the_pod_proxy(world):
    ctx = world()
    seen = []
    checks = verify.run_verify(ctx, seen.append)
    assert [c.key for c in seen] == [c.key for c in checks]          # streamed as they finish
    assert verify.all_passed(checks), [(c.key, c.evidence) for c in checks if not c.ok]
    by = {c.key: c for c in checks}
    assert "via gateway 10.0.0.5" in by["access"].evidence
    assert by["models"].evidence.startswith("HTTP 200") and "/mnt/models" in by["models"].evidence
    assert "Bonjour" in by["completion"].evidence and by["completion"].latency_ms is not None
    assert by["chat"].ok and "3 of 3 Ready" in by["pods"].evidence
    replicas = [c for c in checks if c.key.startswith("replica:")]
    assert len(replicas) == 3 and all("pod proxy" in c.evidence for c in replicas)
    # per-replica calls went through the pod proxy with the https: scheme prefix
    assert {(k, n.split(":")[1]) for k, n, p in ctx.proxy.seen if p == "v1/completions"} == \
        {("pods", n) for n in ctx.fake.replica_names}
    assert all(n.startswith("https:") and n.endswith(":8000") for _, n, _ in ctx.proxy.seen)


def test_verify_falls_back_to_the_service_proxy_when_the_gateway_has_no_address_and_says_so(world):
    ctx = world(gateway_address=None)
    checks = verify.run_verify(ctx)
    assert verify.all_passed(checks), [(c.key, c.evidence) for c in checks if not c.ok]
    access = next(c for c in checks if c.key == "access")
    assert "via Kubernetes service proxy (gateway has no address)" in access.evidence
    svc = manifests.workload_service_name(ctx.cfg.service)
    assert ("services", f"https:{svc}:8000", "v1/models") in ctx.proxy.seen
    assert TOKEN not in json.dumps([c.to_dict() for c in checks])


def test_verify_counts_readiness_not_phase(world):
    ctx = world(ready=(True, False, True))
    checks = verify.run_verify(ctx)
    pods = next(c for c in checks if c.key == "pods")
    assert pods.ok is False and "2 of 3 Ready" in pods.evidence and "(Running)" in pods.evidence
    assert "step 5" in pods.fix
    assert len([c for c in checks if c.key.startswith("replica:")]) == 2     # only Ready ones asked
    st = verify.probe(ctx)
    assert st.status == Status.NOT_STARTED and "2/3" in st.summary


def test_verify_probe_done_when_quick_checks_pass(world):
    ctx = world()
    st = verify.probe(ctx)
    assert st.status == Status.DONE, st
    assert {c["key"] for c in st.data["checks"]} >= {"llmisvc", "pods", "access", "health", "models", "completion"}


# --- step 10 --------------------------------------------------------------------------------------


def test_performance_passes_stores_a_summary_and_probe_is_keyed_by_the_deployment(world):
    ctx = world()
    assert performance.probe(ctx).status == Status.NOT_STARTED
    events = []
    res = performance.run_performance(ctx, QUICK, events.append)
    assert res.proof is not None and res.proof.passed, res.proof.checks
    assert res.access["description"] == "via gateway 10.0.0.5"
    assert [t.mode for t in res.throughput] == ["closed", "serial"]
    assert all(t.result and t.result.requests > 0 and t.result.ok == t.result.requests for t in res.throughput)
    assert {e.kind for e in events} >= {"info", "latency_only", "proof", "throughput", "done"}
    assert any(e.tick is not None for e in events)           # live per-second progress
    # the guide comparison: P99 is "not comparable" exactly when there are too few samples
    for t in res.throughput:
        p99 = next(g for g in t.result.guide if g.name == "P99 latency")
        assert (p99.ok is None and "samples" in p99.note) == (t.result.latency_ms.count < 100)
    st = performance.probe(ctx)
    assert st.status == Status.DONE and "proven" in st.summary
    stored = ctx.saved()[performance.STATE_KEY]["llmisvc-uid-1"]
    assert stored["proof_passed"] is True and TOKEN not in json.dumps(stored)
    # another deployment (new uid) needs its own proof
    ctx._kube.llmisvc_uid = "llmisvc-uid-2"
    assert performance.probe(ctx).status == Status.NOT_STARTED


def test_performance_names_routing_when_requests_are_not_prefix_affine(world):
    ctx = world(routing="round_robin")
    res = performance.run_performance(ctx, performance.PerfOptions(modes=(), in_subprocess=False, seed=3))
    assert not res.passed and res.status == "fail"
    assert "routing" in res.proof.failing and "routing" in res.headline
    st = performance.probe(ctx)
    assert st.status == Status.NOT_STARTED and "routing" in st.summary


def test_performance_names_caching_when_prefix_caching_is_off(world):
    ctx = world(caching=False)
    res = performance.run_performance(ctx, performance.PerfOptions(modes=(), in_subprocess=False, seed=3))
    assert not res.passed and "caching" in res.proof.failing and "prefix caching is off" in res.headline


def test_performance_through_the_service_proxy_is_inconclusive_and_skips_throughput(world):
    ctx = world(gateway_address=None)
    res = performance.run_performance(ctx, QUICK)
    assert res.status == "inconclusive" and not res.passed and res.throughput == []
    assert "not tested" in res.headline and any("bypasses the gateway" in n for n in res.notes)


def test_throughput_in_a_subprocess(world):
    ctx = world()
    live = verify.read_live(ctx)
    access = verify.resolve_access(ctx, live)
    spec = performance.PerfOptions(duration_s=0.5, warmup_s=0).spec("closed", access)
    ticks = []
    r = performance.run_throughput(spec, in_subprocess=True, on_progress=ticks.append)
    assert r.requests > 0 and r.ok == r.requests and r.in_flight_target == 10


def test_bad_options_are_a_message_not_an_exception(world):
    ctx = world()
    res = performance.run_performance(ctx, performance.PerfOptions(modes=("burst",), concurrency=0))
    assert not res.passed and "unknown throughput mode" in res.headline and "concurrency" in res.headline


# --- step 11 --------------------------------------------------------------------------------------


def test_identity_reads_model_weights_kv_cache_and_prefix_flag_per_replica(world):
    ctx = world()
    performance.run_performance(ctx, performance.PerfOptions(modes=(), in_subprocess=False, seed=3))
    res = identity.run_identity(ctx)
    assert res.passed, [(c.key, c.evidence) for c in res.checks if c.ok is not True]
    assert len(res.replicas) == 3
    r = res.replicas[0]
    assert r.model_uri == "hf://Qwen/Qwen2.5-3B-Instruct" and r.model_uri_source == "log"
    assert r.model_in_log == "Qwen/Qwen2.5-3B-Instruct" and r.architecture == "Qwen2ForCausalLM"
    assert r.weights_seconds == 12.3 and r.kv_cache_tokens == 3145728 and r.kv_cache_device == "TPU"
    assert r.prefix_flag and r.metrics_prefix_caching is True and r.block_size == 16
    assert r.served_models == ["/mnt/models"] and r.vllm_version == "0.11.0"
    proof = next(c for c in res.checks if c.key == "proof")
    assert proof.ok and "hit ratio" in proof.evidence
    assert identity.probe(ctx).status == Status.DONE


def test_identity_fails_without_the_prefix_caching_flag_and_without_a_proof(world):
    ctx = world(prefix_flag=False)
    res = identity.run_identity(ctx)
    assert not res.passed
    flags = [c for c in res.checks if c.key.startswith("prefix:")]
    assert flags and all(c.ok is False and "absent" in c.evidence for c in flags)
    assert next(c for c in res.checks if c.key == "proof").ok is None
    st = identity.probe(ctx)
    assert st.status == Status.FAILED and "--enable-prefix-caching" in st.summary


def test_prefix_flag_parsing():
    assert identity.has_prefix_flag(["--model=/mnt/models", "--enable-prefix-caching"])
    assert identity.has_prefix_flag(["--enable-prefix-caching=true"])
    assert not identity.has_prefix_flag(["--enable-prefix-caching", "--no-enable-prefix-caching"])
    assert not identity.has_prefix_flag(["--model=/mnt/models"])


# --- report ---------------------------------------------------------------------------------------


def test_report_has_every_step_text_plots_and_no_secret(world, tmp_path):
    ctx = world()
    checks = verify.run_verify(ctx)
    perf = performance.run_performance(ctx, QUICK)
    ident = identity.run_identity(ctx)
    data = build_report(ctx.cfg, verify=checks, performance=perf, identity=ident, environment="FAKE",
                        secrets=ctx.secrets.values(), notes=[f"token was {HF_CANARY}"])
    paths = write_report(tmp_path / "out" / "poc.md", data)
    assert [p.name for p in paths] == ["poc.md", "poc.json", "poc-throughput.svg"]
    for p in paths:
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o644
    md = paths[0].read_text()
    for heading in ("Step 9", "Step 10", "Step 11", "Configuration", "Cache proof", "Throughput",
                    "latency-only", "Compared with the guide"):
        assert heading in md, heading
    assert any(ch in md for ch in "▁▂▃▄▅▆▇█")
    assert "Overall: PASS" in md
    doc = json.loads(paths[1].read_text())
    assert doc["verdict"]["passed"] is True and doc["config"]["service"] == ctx.cfg.service
    for p in tmp_path.rglob("*"):
        if p.is_file() and "state" not in p.parts:
            text = p.read_text(errors="replace")
            assert HF_CANARY not in text and REG_CANARY not in text and TOKEN not in text, p


def test_report_write_errors_are_messages(tmp_path):
    from rhaii_tui.report import ReportError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ReportError, match="cannot create the directory"):
        write_report(blocker / "sub" / "report", {"title": "t"})


def test_sparkline_and_redaction():
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([None, 3, 3]) == " ▅▅"
    assert sparkline([]) == ""
    out = redact({"token": "abc123", "headers": {"Authorization": "Bearer x"}, "cached_tokens": 5,
                  "msg": "Authorization: Bearer abcdefghijklmnop and hf_abcdefghijklmnopqrstu",
                  "list": ["secret-value-1"]}, ["secret-value-1"])
    assert out["token"] == "<redacted>" and out["headers"] == {"Authorization": "<redacted>"}
    assert out["cached_tokens"] == 5 and "abcdefghijklmnop" not in out["msg"] and "hf_***" in out["msg"]
    assert out["list"] == ["***"]
    md = render_markdown({"title": "t", "verdict": {"passed": False, "steps": {}}, "config": {}, "results": {}})
    assert "Overall: FAIL" in md
