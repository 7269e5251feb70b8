"""The emulator's data plane: vLLM replicas with a real block-level prefix cache, the gateway's
routing (EPP prefix affinity only with the EnvoyFilters and a sidecar'd EPP), failure modes, the
K8s API proxy, and the latency model (checked as a model function, never by wall-clock asserts)."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import pytest
from aiohttp import web

from rhaii_tui.sim.controllers import Controllers
from rhaii_tui.sim.controllers.standin import StandInCluster, deploy_guide
from rhaii_tui.sim.dataplane import DataPlane, EppRouter
from rhaii_tui.sim.vllm import (LatencyModel, PrefixCache, Replica, chat_prompt, count_tokens, generate,
                                parse_vllm_args, tokenize)

FAST = LatencyModel(engine_overhead_ms=0.2, prefill_base_ms=0, prefill_per_token_ms=0, per_output_token_ms=0,
                    batch_penalty_ms=0, warmup_ms=0, gateway_ms=0, epp_ms=0, gateway_warmup_ms=0)
PREFIX = "Our support policy: answer politely, cite the relevant manual section, and keep it short. " * 20


# --- units: the prefix cache ---------------------------------------------------------------------


def test_prefix_cache_hits_only_full_blocks_and_chains_them():
    cache = PrefixCache(block_size=4, capacity_blocks=100)
    toks = list(range(10))
    assert cache.lookup(toks) == 0
    cache.insert(toks)
    assert cache.lookup(toks) == 8  # two full blocks; the partial third block never counts
    assert cache.lookup(list(range(8))) == 4  # a fully cached prompt recomputes its last token
    assert cache.lookup(list(range(3))) == 0  # shorter than a block
    assert cache.lookup([99] + toks[1:]) == 0  # blocks chain: a different first block invalidates the rest
    assert cache.lookup(list(range(6)) + [77, 78, 79]) == 4  # shared first block only
    assert cache.queries == 10 + 10 + 8 + 3 + 10 + 9 and cache.hits == 8 + 4 + 4


def test_prefix_cache_evicts_least_recently_used_blocks_and_can_be_off():
    cache = PrefixCache(block_size=2, capacity_blocks=2)
    a, b = [1, 2, 3, 4, 5], [6, 7, 8, 9, 10]
    cache.insert(a)
    cache.insert(b)  # capacity 2 blocks: a's two blocks are gone
    assert cache.lookup(a) == 0 and cache.lookup(b) == 4
    off = PrefixCache(block_size=2, capacity_blocks=10, enabled=False)
    off.insert(a)
    assert off.lookup(a) == 0 and off.queries == 5


def test_tokens_are_deterministic_and_roughly_four_characters_each():
    text = "The quick brown fox jumps over the lazy dog, again and again, 42 times."
    assert tokenize(text) == tokenize(text)
    assert tokenize(text + " more")[: len(tokenize(text))] == tokenize(text)
    prose = "Prefix caching reuses the attention keys and values of a shared prompt prefix. " * 20
    assert 3.5 <= len(prose) / count_tokens(prose) <= 5.5
    assert chat_prompt([{"role": "user", "content": "hi"}]).startswith("<|im_start|>system\nYou are Qwen")
    text, n, finish = generate("Translate to French: Hello world", 3)
    assert n == 3 and finish == "length" and text == generate("Translate to French: Hello world", 3)[0]


def test_vllm_args_from_list_and_bash_string():
    a = parse_vllm_args({"command": ["python3", "-m", "vllm.entrypoints.openai.api_server"],
                         "args": ["--model=/mnt/models", "--max-model-len=2048", "--enable-prefix-caching",
                                  "--tensor-parallel-size=4", "--ssl-certfile=/x/tls.crt"]})
    assert (a.model, a.max_model_len, a.enable_prefix_caching, a.tensor_parallel_size, a.scheme) == \
        ("/mnt/models", 2048, True, 4, "https")
    assert a.block_size == 128 and a.served_name == "/mnt/models"
    b = parse_vllm_args({"args": ["python3 -m vllm.entrypoints.openai.api_server \\\n  --model=/mnt/models \\\n"
                                  "  --max-model-len 1024 \\\n  --block-size=256 --served-model-name qwen\n"]})
    assert (b.max_model_len, b.block_size, b.enable_prefix_caching, b.served_name, b.scheme) == \
        (1024, 256, False, "qwen", "http")


def test_latency_model_matches_the_guide_figures():
    m = LatencyModel()
    hop = m.gateway_ms + m.epp_ms
    cold = m.request_ms(uncached_tokens=520, output_tokens=10) + hop  # a 4-block prompt, nothing cached
    cached = m.request_ms(uncached_tokens=8, output_tokens=10) + hop  # the same prompt, 512 tokens cached
    # the very first request: a new gateway and a fresh replica
    first = m.request_ms(uncached_tokens=8, output_tokens=10, cold=True) + hop + m.gateway_warmup_ms
    serial = m.request_ms(uncached_tokens=10, output_tokens=36) + hop  # the step-9 request (~36 tokens out)
    assert 190 <= cold <= 240 and 65 <= cached <= 95
    assert 2.2 <= cold / cached <= 3.3
    assert first - cached == pytest.approx(m.warmup_ms + m.gateway_warmup_ms) and 200 <= first <= 260  # "215 ms"
    assert m.request_ms(8, 10, cold=True) + hop < first  # later requests on other fresh replicas: faster
    assert 5.5 <= 1000 / serial <= 7.5  # ~6.3 req/s serial
    assert m.request_ms(8, 10, running=3) > m.request_ms(8, 10, running=1)  # batching costs a little


@pytest.mark.asyncio
async def test_replica_queues_beyond_its_slots_and_reports_it():
    rep = Replica("p", "ns", parse_vllm_args({"args": ["--enable-prefix-caching"]}),
                  model=LatencyModel(slots=2, engine_overhead_ms=30, prefill_base_ms=0, prefill_per_token_ms=0,
                                     per_output_token_ms=0, warmup_ms=0))
    tasks = [asyncio.create_task(rep.complete({"prompt": f"q{i}", "max_tokens": 2})) for i in range(5)]
    await asyncio.sleep(0.01)
    assert rep.running == 2 and rep.waiting == 3
    metrics = rep.metrics_text()
    assert 'vllm:num_requests_running{engine="0",model_name="/mnt/models"} 2.0' in metrics
    assert 'vllm:num_requests_waiting{engine="0",model_name="/mnt/models"} 3.0' in metrics
    await asyncio.gather(*tasks)
    assert rep.running == 0 and rep.waiting == 0 and rep.generation_tokens == 10


def test_epp_scorer_prefers_the_pod_that_saw_the_prefix():
    r = EppRouter(seed=3)
    long = "A shared system prompt of several sixty-four character blocks. " * 6
    first, _ = r.pick("m", long + "one", [("a", 0), ("b", 0), ("c", 0)])
    for i in range(5):
        chosen, scores = r.pick("m", long + str(i), [("a", 0), ("b", 0), ("c", 0)])
        assert chosen == first and scores[first] > max(v for k, v in scores.items() if k != first)
    # even loaded, the prefix owner wins with the guide's weights (prefix 1.0, queue 0.5)
    loads = [(n, 5 if n == first else 0) for n in ("a", "b", "c")]
    assert r.pick("m", long + "x", loads)[0] == first
    # no body (or a prompt under one 64-character block): the least loaded pod
    assert r.pick("m", None, [("a", 3), ("b", 0), ("c", 2)])[0] == "b"
    assert r.pick("m", "short", [("a", 3), ("b", 1), ("c", 0)])[0] == "c"


# --- integration on a stand-in cluster -----------------------------------------------------------


class Deployed:
    def __init__(self, **kw):
        self.c = StandInCluster(speed=1.0, scenario=kw.pop("scenario", None))
        self.ctl = Controllers(self.c)
        self.dp = DataPlane(self.c, model=kw.pop("model", FAST), seed=5)
        self.kw = kw

    async def __aenter__(self) -> "Deployed":
        await self.dp.start()
        self.ctl.start()
        self.cfg = deploy_guide(self.c, self.ctl, **self.kw)
        for _ in range(100):
            if self.c.gateway_url:
                break
            await asyncio.sleep(0.01)
        assert self.c.gateway_url and self.c.gateway_url.startswith("http://127.0.0.1:")
        self.base = f"{self.c.gateway_url}/{self.cfg.namespace}/{self.cfg.service}"
        self.session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.session.close()
        self.ctl.stop()
        await self.dp.stop()

    async def complete(self, prompt: str, max_tokens: int = 5, **extra) -> tuple[int, str, dict]:
        async with self.session.post(self.base + "/v1/completions",
                                     json={"model": "/mnt/models", "prompt": prompt, "max_tokens": max_tokens,
                                           **extra}) as r:
            body = await r.read()
            return r.status, r.headers.get("x-served-by", ""), (json.loads(body) if body[:1] == b"{" else {})

    def workload_pods(self) -> list[dict]:
        return self.c.store.select(self.c.store.type_for("pods"), self.cfg.namespace, {"kserve.io/component": "workload"})

    def counters(self) -> dict[str, tuple[int, int]]:
        return {p["metadata"]["name"]: (self.dp.replica_for(p).cache.hits, self.dp.replica_for(p).cache.queries)
                for p in self.workload_pods()}


@pytest.mark.asyncio
async def test_with_routing_the_prefix_lands_on_one_replica_and_hits_full_blocks():
    async with Deployed() as d:
        assert count_tokens(PREFIX) > 3 * 128
        served = []
        for i in range(6):
            status, pod, body = await d.complete(PREFIX + f"Question {i}?")
            assert status == 200 and body["choices"][0]["text"]
            served.append(pod)
        assert len(set(served)) == 1
        counters = d.counters()
        owner = served[0]
        n_blocks = (count_tokens(PREFIX) - 1) // 128
        assert counters[owner][0] == 5 * n_blocks * 128  # the five repeats hit every full block of the prefix
        assert all(h == 0 for name, (h, q) in counters.items() if name != owner)
        # the EPP log shows its decisions
        epp = d.c.store.select(d.c.store.type_for("pods"), d.cfg.namespace,
                               {"app.kubernetes.io/component": "llminferenceservice-router-scheduler"})[0]
        assert any("prefix-cache-scorer" in t for _, t in d.c.logs.read(d.cfg.namespace, epp["metadata"]["name"], "main"))
        # vLLM's access log and counters on the replica's own /metrics
        assert any('"POST /v1/completions HTTP/1.1" 200 OK' in t
                   for _, t in d.c.logs.read(d.cfg.namespace, owner, "main"))


@pytest.mark.asyncio
async def test_without_envoyfilters_requests_spread_over_the_replicas():
    async with Deployed(routing=False) as d:
        served = [ (await d.complete(PREFIX + f"Q{i}"))[1] for i in range(12)]
        assert len(set(served)) >= 2
        hits = [h for h, _ in d.counters().values()]
        assert sum(hits) > 0 and max(hits) < sum(hits)  # caching happens, but on several pods


@pytest.mark.asyncio
async def test_without_prefix_caching_in_the_args_nothing_hits():
    async with Deployed(prefix_caching=False) as d:
        for i in range(4):
            assert (await d.complete(PREFIX + f"Q{i}"))[0] == 200
        assert all(h == 0 and q > 0 for h, q in d.counters().values() if q)
        pod = d.workload_pods()[0]
        assert 'enable_prefix_caching="False"' in d.dp.replica_for(pod).metrics_text()


@pytest.mark.asyncio
async def test_models_health_metrics_and_max_model_len():
    async with Deployed() as d:
        async with d.session.get(d.base + "/v1/models") as r:
            models = await r.json()
            assert r.status == 200 and models["data"][0]["id"] == "/mnt/models" and models["data"][0]["owned_by"] == "vllm"
        async with d.session.get(d.base + "/health") as r:
            assert r.status == 200 and r.headers["x-served-by"]
        status, _, body = await d.complete("word " * 2100, max_tokens=10)
        assert status == 400 and "maximum context length is 2048 tokens" in body["error"]["message"]
        async with d.session.post(d.base + "/v1/completions", json={"model": "other", "prompt": "x"}) as r:
            assert r.status == 404 and "does not exist" in (await r.json())["error"]["message"]
        async with d.session.get(f"{d.c.gateway_url}/nowhere") as r:
            assert r.status == 404
        text = d.dp.replica_for(d.workload_pods()[0]).metrics_text()
        info = re.search(r"vllm:cache_config_info\{([^}]*)\} 1\.0", text).group(1)
        assert 'block_size="128"' in info and 'enable_prefix_caching="True"' in info
        for name in ("vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total", "vllm:num_requests_running",
                     "vllm:num_requests_waiting", "vllm:prompt_tokens_total", "vllm:generation_tokens_total"):
            assert f"{name}{{" in text


@pytest.mark.asyncio
async def test_streamed_chat_completion():
    async with Deployed() as d:
        async with d.session.post(d.base + "/v1/chat/completions", json={
                "model": "/mnt/models", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4,
                "stream": True, "stream_options": {"include_usage": True}}) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
            events = [ln[6:] for ln in (await r.text()).splitlines() if ln.startswith("data: ")]
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
        assert chunks[-1]["usage"]["completion_tokens"] == 4
        assert chunks[-2]["choices"][0]["finish_reason"] == "length"


def _epp_decisions(d: "Deployed") -> int:
    epp = d.c.store.select(d.c.store.type_for("pods"), d.cfg.namespace,
                           {"app.kubernetes.io/component": "llminferenceservice-router-scheduler"})[0]
    return sum("Calculated score" in t for _, t in d.c.logs.read(d.cfg.namespace, epp["metadata"]["name"], "main"))


@pytest.mark.asyncio
async def test_envoyfilters_without_the_epp_sidecar_lose_the_epp_but_kserve_pools_fail_open():
    async with Deployed(sidecar=False) as d:
        served = set()
        for i in range(8):
            status, pod, _ = await d.complete(PREFIX + f"Q{i}")
            assert status == 200  # KServe's pool says FailOpen: the request goes on without the EPP
            served.add(pod)
        assert _epp_decisions(d) == 0 and len(served) >= 2  # no cache affinity: spread over the replicas
        async with d.session.get(d.base + "/health") as r:
            assert r.status == 200  # the catch-all route to the workload Service has no ext_proc


@pytest.mark.asyncio
async def test_a_fail_close_pool_without_the_epp_sidecar_breaks_inference_with_500():
    async with Deployed(sidecar=False) as d:
        pt = d.c.store.type_for("inferencepools", "inference.networking.x-k8s.io")
        d.c.store.mutate(pt, d.cfg.namespace, f"{d.cfg.service}-inference-pool",
                         lambda o: o["spec"]["extensionRef"].__setitem__("failureMode", "FailClose"))
        status, _, _ = await d.complete(PREFIX)
        assert status == 500  # the ext_proc call to the EPP fails and the pool does not allow failures


async def _route_status(d: "Deployed", name: str) -> dict:
    """The route's ResolvedRefs condition once the gateway controller has written it (60 s deadline)."""
    rtt = d.c.store.type_for("httproutes", "gateway.networking.k8s.io")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        route = d.c.store.get(rtt, d.cfg.namespace, name)
        conds = [c for p in (route.get("status") or {}).get("parents") or [] for c in p.get("conditions") or []]
        resolved = next((c for c in conds if c["type"] == "ResolvedRefs"), None)
        if resolved is not None and (route.get("status") or {}).get("parents") and \
                conds[0].get("observedGeneration") == route["metadata"].get("generation"):
            return resolved
        assert loop.time() < deadline, route.get("status")
        await asyncio.sleep(0.02)


@pytest.mark.asyncio
@pytest.mark.parametrize("version,kserve_group,other_group", [
    ("3.4.0-ea.1", "inference.networking.x-k8s.io", "inference.networking.k8s.io"),
    ("3.4.0-ea.2", "inference.networking.k8s.io", "inference.networking.x-k8s.io")])
async def test_a_route_to_a_pool_group_kserve_did_not_write_answers_500(version, kserve_group, other_group):
    from rhaii_tui import manifests as m
    from rhaii_tui.sim.scenarios import Scenario

    async with Deployed(scenario=Scenario(kserve_version=version)) as d:
        d.c.apply(m.health_route(d.cfg, pool_group=other_group))  # names the group KServe did not use
        resolved = await _route_status(d, m.health_route_name(d.cfg.service))
        assert resolved["status"] == "False" and resolved["reason"] == "BackendNotFound"
        async with d.session.get(d.base + "/health") as r:
            assert r.status == 500
        assert (await d.complete("hello"))[0] == 200  # KServe's own route names its own group
        d.c.apply(m.health_route(d.cfg, pool_group=kserve_group))
        resolved = await _route_status(d, m.health_route_name(d.cfg.service))
        assert resolved["status"] == "True"
        async with d.session.get(d.base + "/health") as r:
            assert r.status == 200


@pytest.mark.asyncio
async def test_a_network_policy_blocking_the_gateway_gives_503():
    async with Deployed() as d:
        d.c.apply({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                   "metadata": {"name": "deny-all", "namespace": d.cfg.namespace},
                   "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})
        async with d.session.get(d.base + "/v1/models") as r:  # the catch-all route: gateway -> vLLM :8000
            text = await r.text()
        assert r.status == 503 and "upstream connect error" in text
        status, _, _ = await d.complete("hello")
        assert status == 503  # the EPP's port (9002) is blocked too; the pool fails open, then vLLM's is blocked


@pytest.mark.asyncio
async def test_a_cluster_that_does_not_enforce_network_policy_stores_them_without_effect():
    async with Deployed() as d:
        d.c.enforces_network_policy = False  # created without Dataplane V2 or Calico
        d.c.apply({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                   "metadata": {"name": "deny-all", "namespace": d.cfg.namespace},
                   "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})
        async with d.session.get(d.base + "/v1/models") as r:
            assert r.status == 200
        status, _, _ = await d.complete("hello")
        assert status == 200


def probe_pod(name: str, ns: str, command: list[str], labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {"app": "probe"}},
            "spec": {"restartPolicy": "Never",
                     "containers": [{"name": "probe", "image": "busybox:1.36", "command": command}]}}


async def finished(d: "Deployed", ns: str, name: str) -> dict:
    pt = d.c.store.type_for("pods")
    for _ in range(3000):  # wall time: the simulated clock runs at speed 1 here
        p = d.c.store.try_get(pt, ns, name)
        if p is not None and (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return p
        await asyncio.sleep(0.01)
    raise AssertionError(f"probe pod {ns}/{name} did not finish")


@pytest.mark.asyncio
async def test_probe_pods_connect_as_the_network_policies_say():
    from rhaii_tui import manifests as m

    async with Deployed() as d:
        d.c.dataplane = d.dp  # what a real cluster's kubelet asks
        for obj in m.networkpolicies(d.cfg):
            d.c.apply(obj)
        pt = d.c.store.type_for("pods")
        vllm = next(p for p in d.c.store.list(pt, d.cfg.namespace)[0]
                    if (p["metadata"].get("labels") or {}).get("kserve.io/component") == "workload")
        ip = vllm["status"]["podIP"]
        nst = d.c.store.type_for("namespaces")
        d.c.store.create(nst, {"metadata": {"name": "rhaii-probe-x"}})
        d.c.apply(probe_pod("blocked", "rhaii-probe-x", ["nc", "-zv", "-w", "1", ip, "8000"]))
        d.c.apply(probe_pod("as-gateway", "opendatahub", ["sh", "-c", f"nc -z -v -w1 {ip} 8000"],
                            labels=m.gateway_pod_labels()))
        d.c.apply(probe_pod("no-listener", "opendatahub", ["nc", "-zv", "-w", "1", ip, "8001"],
                            labels=m.gateway_pod_labels()))
        blocked = await finished(d, "rhaii-probe-x", "blocked")
        allowed = await finished(d, "opendatahub", "as-gateway")
        assert blocked["status"]["phase"] == "Failed" and allowed["status"]["phase"] == "Succeeded"
        term = blocked["status"]["containerStatuses"][0]["state"]["terminated"]
        assert term["exitCode"] == 1 and term["reason"] == "Error"
        assert [t for _, t in d.c.logs.read("rhaii-probe-x", "blocked", "probe")] == \
            [f"nc: {ip} ({ip}:8000): Connection timed out"]
        assert [t for _, t in d.c.logs.read("opendatahub", "as-gateway", "probe")] == [f"{ip} ({ip}:8000) open"]
        # the policy allows 8000 only: 8001 is dropped (not refused) on the way
        assert (await finished(d, "opendatahub", "no-listener"))["status"]["phase"] == "Failed"
        # a cluster that does not enforce: the same probe connects
        d.c.enforces_network_policy = False
        d.dp._snap = None
        d.c.apply(probe_pod("unenforced", "rhaii-probe-x", ["curl", "-sS", "-m", "1", f"http://{ip}:8000/health"]))
        assert (await finished(d, "rhaii-probe-x", "unenforced"))["status"]["phase"] == "Succeeded"


def test_probe_commands_are_parsed_generically():
    from rhaii_tui.sim.controllers import netprobe

    def cmd(*argv):
        return netprobe.parse({"command": list(argv)})

    assert cmd("nc", "-zv", "-w", "3", "10.0.0.1", "8000") == netprobe.ProbeCommand("nc", "10.0.0.1", 8000, 3.0)
    assert cmd("/bin/sh", "-c", "nc -z -w5 vllm.ns.svc 8000").port == 8000
    assert cmd("busybox", "nc", "-z", "h", "80").host == "h"
    assert cmd("nc", "-l", "-p", "8080") is None  # a listener, not a check
    assert cmd("sleep", "3600") is None
    c = cmd("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", "https://h:8443/x")
    assert (c.tool, c.host, c.port, c.timeout, c.silent) == ("curl", "h", 8443, 2.0, True)
    assert netprobe.script(c, "timeout").exit_code == 28 and netprobe.script(c, "refused").exit_code == 7


@pytest.mark.asyncio
async def test_the_epp_needs_its_egress_to_the_api_servers_endpointslice_address():
    from rhaii_tui import manifests as m

    async with Deployed() as d:
        es = d.c.store.type_for("endpointslices", "discovery.k8s.io")
        d.c.store.create(es, {"metadata": {"name": "kubernetes", "namespace": "default",
                                           "labels": {"kubernetes.io/service-name": "kubernetes"}},
                              "addressType": "IPv4", "endpoints": [{"addresses": ["172.16.0.2"]}],
                              "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]})
        # pinned to the cluster's public endpoint: the EPP cannot watch its pool, nothing is served
        for obj in m.networkpolicies(d.cfg, api_server_cidrs=["34.90.10.20/32"]):
            d.c.apply(obj)
        status, _, _ = await d.complete(PREFIX)
        assert status == 503
        # pinned to the address pods really reach the API at: served
        for obj in m.networkpolicies(d.cfg, api_server_cidrs=["172.16.0.2/32"]):
            d.c.apply(obj)
        status, _, _ = await d.complete(PREFIX)
        assert status == 200


@pytest.mark.asyncio
async def test_api_server_proxy_to_pods_and_services():
    async with Deployed() as d:
        app = web.Application()

        async def handle(request: web.Request) -> web.StreamResponse:
            mi = request.match_info  # as the K8s API emulator splits "[scheme:]name[:port]"
            parts = mi["name"].split(":")
            name, port = (parts[-2], parts[-1]) if len(parts) > 1 else (parts[0], None)
            return await d.dp.proxy(request, mi["kind"], mi["ns"], name, port, mi["path"])
        app.router.add_route("*", "/api/v1/namespaces/{ns}/{kind}/{name}/proxy/{path:.*}", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        api = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/api/v1/namespaces/{d.cfg.namespace}"
        try:
            pod = d.workload_pods()[0]["metadata"]["name"]
            async with d.session.get(f"{api}/pods/https:{pod}:8000/proxy/metrics") as r:
                assert r.status == 200 and "vllm:prefix_cache_hits_total" in await r.text()
            async with d.session.post(f"{api}/services/https:{d.cfg.service}-kserve-workload-svc:8000/proxy/v1/completions",
                                      json={"model": "/mnt/models", "prompt": "Hello", "max_tokens": 3}) as r:
                assert r.status == 200 and "choices" in await r.json() and r.headers["x-served-by"]
            async with d.session.get(f"{api}/pods/nope:8000/proxy/health") as r:
                body = await r.json()
                assert r.status == 404 and body["kind"] == "Status" and body["reason"] == "NotFound"
            epp = d.c.store.select(d.c.store.type_for("pods"), d.cfg.namespace,
                                   {"app.kubernetes.io/component": "llminferenceservice-router-scheduler"})[0]
            async with d.session.get(f"{api}/pods/{epp['metadata']['name']}:9090/proxy/metrics") as r:
                assert r.status == 200 and "inference_pool_ready_pods" in await r.text()
        finally:
            await runner.cleanup()


@pytest.mark.asyncio
async def test_gateway_listener_follows_the_gateway():
    async with Deployed(routing=False) as d:
        url = d.c.gateway_url
        assert d.c.gateway_urls[0] == url
        g = d.c.store.type_for("gateways", "gateway.networking.k8s.io")
        d.c.store.delete(g, "opendatahub", "inference-gateway")
        for _ in range(100):
            if d.c.gateway_url is None:
                break
            await asyncio.sleep(0.01)
        assert d.c.gateway_url is None
        with pytest.raises(aiohttp.ClientConnectionError):
            async with d.session.get(url + "/") as r:
                await r.read()


@pytest.mark.asyncio
async def test_a_new_pod_is_a_cold_replica():
    async with Deployed(model=LatencyModel(warmup_ms=60, gateway_warmup_ms=0, engine_overhead_ms=1, prefill_base_ms=0,
                                           prefill_per_token_ms=0, per_output_token_ms=0, gateway_ms=0, epp_ms=0)) as d:
        pod = d.workload_pods()[0]
        rep = d.dp.replica_for(pod)
        first = await rep.complete({"prompt": PREFIX, "max_tokens": 2})
        second = await rep.complete({"prompt": PREFIX, "max_tokens": 2})
        assert second.cached_tokens > 0 and first.cached_tokens == 0
        assert first.latency_ms > second.latency_ms  # the warm-up (60 ms) on the replica's first request only
        # the pod goes away: its replacement starts cold (empty cache)
        d.c.store.delete(d.c.store.type_for("pods"), d.cfg.namespace, pod["metadata"]["name"], grace_period_seconds=0)
        d.ctl.fast_forward(900)
        new = [p for p in d.workload_pods() if p["metadata"]["uid"] != pod["metadata"]["uid"]]
        assert new and d.dp.replica_for(new[-1]).cache.hits == 0


# --- the real world: endpoints.json's gateway URL ------------------------------------------------


def test_the_deployed_world_serves_with_affinity_on_its_gateway_url(make_sim_world):
    w = make_sim_world("deployed", speed=2000)
    url = next(iter(w.endpoints["clusters"].values()))["gateway_url"]
    assert url and url.startswith("http://127.0.0.1:")
    import httpx

    served = set()
    with httpx.Client(timeout=30) as client:
        for i in range(4):
            r = client.post(f"{url}/rhaii-inference/qwen-3b-tpu-svc/v1/completions",
                            json={"model": "/mnt/models", "prompt": PREFIX + str(i), "max_tokens": 3})
            assert r.status_code == 200, r.text
            served.add(r.headers["x-served-by"])
        assert len(served) == 1
        r = client.get(f"{url}/rhaii-inference/qwen-3b-tpu-svc/v1/models")
        assert r.json()["data"][0]["id"] == "/mnt/models"
