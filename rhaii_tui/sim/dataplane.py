"""The simulated cluster's data plane: the inference gateway (Istio/Envoy + the EPP's ext_proc),
the vLLM replicas, and the Kubernetes API's service/pod proxy.

Gateway. When the Gateway opendatahub/inference-gateway is Programmed, a listener opens on
127.0.0.1:<random port> and `cluster.on_gateway_url("http://127.0.0.1:PORT")` is called (the world
writes it to endpoints.json). Requests are routed like Istio routes the Gateway API: the longest
PathPrefix match over the HTTPRoutes attached to the gateway (KServe's `<svc>-kserve-route`:
/<ns>/<svc>/v1/completions and /v1/chat/completions to the InferencePool, /<ns>/<svc> to the
workload Service; plus any other route, e.g. the wizard's health route), URLRewrite
ReplacePrefixMatch, then the backend:
- a Service: Envoy's least-request pick (power of two choices) among the Ready endpoints;
- an InferencePool: through the EPP when the gateway's ext_proc filter targets this pool's EPP
  cluster (an EnvoyFilter in the gateway namespace with an HTTP_FILTER patch whose grpc_service
  cluster is `outbound|9002||<svc>-epp-service.<ns>.svc.cluster.local`):
    * the ext_proc call needs the EPP pod Ready WITH its istio-proxy sidecar and the EnvoyFilter
      that gives that cluster its TLS settings (CLUSTER patch); otherwise it fails, and the pool's
      failureMode decides: FailClose answers HTTP 500 to every inference request, FailOpen (what
      KServe 3.4 writes) sends it on without the EPP's choice (no cache affinity);
    * a backendRef to an InferencePool that does not exist in the group it names (that group's
      CRD not served, or KServe wrote its pool in the other group) answers HTTP 500;
    * the EPP sees the prompt only on routes whose body-forwarding EnvoyFilter (HTTP_ROUTE patch
      on `<ns>.<route>.<rule index>` with request_body_mode BUFFERED/STREAMED/FULL_DUPLEX_STREAMED)
      exists; without the body it scores on load alone;
    * scoring is the GIE approximate prefix scorer: the prompt cut in 64-character blocks
      (full blocks only, chained hashes seeded with the model name, at most 256 blocks), the
      score of a pod is the fraction of leading blocks found in that pod's LRU index (31,250
      entries per pod, learned from the EPP's own decisions), weight 1.0, plus a queue scorer
      (fewest requests in flight, normalized to [0, 1]) weight 0.5; ties are broken at random.
  Without the ext_proc EnvoyFilter the pool is load-balanced like a Service (no affinity).
- NetworkPolicies are evaluated by the emulator's own evaluator (sim/netpol.py, never the wizard's)
  for gateway -> vLLM :8000 and gateway -> EPP :9002: a blocked connection answers 503 "upstream
  connect error". Only on a cluster that enforces them (`cluster.enforces_network_policy`: created
  with Dataplane V2 or Calico); elsewhere they are stored and have no effect, as on GKE.
No route: 404; no Ready endpoint: 503 "no healthy upstream".

Replicas. Each Ready workload pod (a pod whose container runs vLLM) is a `vllm.Replica` (keyed
by pod uid and restart count, so a new pod or a restarted container starts with a cold cache
and pays the warm-up), configured from the vLLM args in the live pod spec. Its endpoints:
/health, /v1/models, /v1/completions, /v1/chat/completions (stream supported), /metrics,
/version, /tokenize. Responses carry `x-served-by: <pod name>`: SIM-ONLY evidence for tests
and the wizard's emulator mode; a real vLLM does not send it.

Proxy. `proxy(request, kind, ns, name, port, path)` answers the K8s API's
`/services/NAME[:PORT]/proxy/PATH` (a Ready endpoint, no EPP) and `/pods/NAME[:PORT]/proxy/PATH`
(that pod's server), with Status errors as the apiserver gives them.

Latency is real wall time (not divided by the simulation speed): see vllm.LatencyModel.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
from collections import OrderedDict
from typing import Any

from aiohttp import web

from .controllers.common import (
    GATEWAY_NAME,
    GATEWAY_NAMESPACE,
    Obj,
    get_condition,
    pod_ready,
    rt,
)
from .netpol import address, evaluate as evaluate_netpol, pod_party
from .store import match_label_selector
from .vllm import VLLM_VERSION, ApiFailure, LatencyModel, Replica, chat_prompt, is_vllm_container, \
    parse_vllm_args, stream_chunks, tokenize

log = logging.getLogger(__name__)

try:
    from .. import manifests as _m

    def epp_cluster_name(svc: str, ns: str) -> str:
        return _m.epp_cluster_name(svc, ns)
except Exception:  # noqa: BLE001
    def epp_cluster_name(svc: str, ns: str) -> str:
        return f"outbound|9002||{svc}-epp-service.{ns}.svc.cluster.local"

EPP_COMPONENT = "llminferenceservice-router-scheduler"
BODY_MODES = ("BUFFERED", "STREAMED", "FULL_DUPLEX_STREAMED", "BUFFERED_PARTIAL")
RELEVANT = {("", "pods"), ("", "services"), ("", "namespaces"), ("gateway.networking.k8s.io", "httproutes"),
            ("gateway.networking.k8s.io", "gateways"), ("inference.networking.k8s.io", "inferencepools"),
            ("inference.networking.x-k8s.io", "inferencepools"), ("networking.istio.io", "envoyfilters"),
            ("networking.k8s.io", "networkpolicies")}


# --- the EPP's approximate prefix scorer ---------------------------------------------------------


class EppRouter:
    HASH_BLOCK = 64
    MAX_BLOCKS = 256
    LRU_PER_SERVER = 31250
    PREFIX_WEIGHT = 1.0
    QUEUE_WEIGHT = 0.5

    def __init__(self, seed: int = 0):
        self.index: dict[str, OrderedDict[bytes, None]] = {}
        self.rand = random.Random(seed)

    def hashes(self, model: str, text: str) -> list[bytes]:
        out: list[bytes] = []
        prev = hashlib.blake2b(model.encode(), digest_size=8).digest()
        n = 0
        for i in range(0, len(text) - self.HASH_BLOCK + 1, self.HASH_BLOCK):
            prev = hashlib.blake2b(prev + text[i:i + self.HASH_BLOCK].encode(), digest_size=8).digest()
            out.append(prev)
            n += 1
            if n >= self.MAX_BLOCKS:
                break
        return out

    def forget(self, pod: str) -> None:
        self.index.pop(pod, None)

    def pick(self, model: str, text: str | None, candidates: list[tuple[str, int]]) -> tuple[str, dict[str, float]]:
        hs = self.hashes(model, text) if text else []
        loads = [load for _, load in candidates]
        lo, hi = min(loads), max(loads)
        scores: dict[str, float] = {}
        best: list[str] = []
        best_score = -1.0
        for name, load in candidates:
            idx = self.index.get(name)
            matched = 0
            if hs and idx:
                for h in hs:
                    if h not in idx:
                        break
                    matched += 1
            prefix = matched / len(hs) if hs else 0.0
            queue = (hi - load) / (hi - lo) if hi > lo else 1.0
            score = self.PREFIX_WEIGHT * prefix + self.QUEUE_WEIGHT * queue
            scores[name] = round(score, 4)
            if score > best_score + 1e-12:
                best_score, best = score, [name]
            elif abs(score - best_score) <= 1e-12:
                best.append(name)
        chosen = self.rand.choice(best)
        if hs:
            idx = self.index.setdefault(chosen, OrderedDict())
            for h in hs:
                if h in idx:
                    idx.move_to_end(h)
                else:
                    idx[h] = None
                    if len(idx) > self.LRU_PER_SERVER:
                        idx.popitem(last=False)
        return chosen, scores


# --- responses -----------------------------------------------------------------------------------


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=headers)


def _k8s_status(code: int, reason: str, message: str) -> web.Response:
    return _json(code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": message, "reason": reason, "code": code})


def _envoy(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain",
                        headers={"server": "istio-envoy"})


class _Snapshot:
    """What routing needs, rebuilt from the store after relevant changes."""

    def __init__(self, store: Any):
        self.store = store
        pt = store.type_for("pods")
        self.pods = store.list(pt)[0]
        self.pods_by_ns: dict[str, list[Obj]] = {}
        for p in self.pods:
            self.pods_by_ns.setdefault(p["metadata"]["namespace"], []).append(p)
        self.services = {(s["metadata"]["namespace"], s["metadata"]["name"]): s
                         for s in store.list(store.type_for("services"))[0]}
        self.namespaces = {n["metadata"]["name"]: n for n in store.list(store.type_for("namespaces"))[0]}
        self.pools: dict[tuple[str, str, str], Obj] = {}
        for group in ("inference.networking.k8s.io", "inference.networking.x-k8s.io"):
            t = rt(store, "inferencepools", group)
            if t is not None:
                for o in store.list(t)[0]:
                    self.pools[(group, o["metadata"]["namespace"], o["metadata"]["name"])] = o
        ef = rt(store, "envoyfilters", "networking.istio.io")
        self.envoyfilters = store.list(ef, GATEWAY_NAMESPACE)[0] if ef is not None else []
        npt = rt(store, "networkpolicies", "networking.k8s.io")
        self.netpols = store.list(npt)[0] if npt is not None else []
        g = rt(store, "gateways", "gateway.networking.k8s.io")
        self.gateway = store.try_get(g, GATEWAY_NAMESPACE, GATEWAY_NAME) if g is not None else None
        gw_pods = [p for p in self.pods_by_ns.get(GATEWAY_NAMESPACE, [])
                   if (p["metadata"].get("labels") or {}).get("gateway.networking.k8s.io/gateway-name")
                   == GATEWAY_NAME and not p["metadata"].get("deletionTimestamp")]
        # a Ready one first: only Ready pods are the Service's endpoints (another pod may carry the labels)
        self.gateway_pod = next((p for p in gw_pods if pod_ready(p)), gw_pods[0] if gw_pods else None)
        self.routes = self._routes()
        self._reach: dict[tuple, bool] = {}
        self.enforced = True  # False: the cluster stores NetworkPolicies but enforces none

    def _routes(self) -> list[tuple[str, Obj, int, Obj]]:
        """(path prefix, route, rule index, rule) for every rule attached to the gateway, longest first."""
        t = rt(self.store, "httproutes", "gateway.networking.k8s.io")
        if t is None or self.gateway is None:
            return []
        out = []
        for route in self.store.list(t)[0]:
            ns = route["metadata"]["namespace"]
            attached = any(r.get("name") == GATEWAY_NAME and (r.get("namespace") or ns) == GATEWAY_NAMESPACE
                           for r in (route.get("spec") or {}).get("parentRefs") or [])
            accepted = any(any(c.get("type") == "Accepted" and c.get("status") == "True"
                               for c in p.get("conditions") or [])
                           for p in (route.get("status") or {}).get("parents") or [])
            if not (attached and accepted):
                continue
            for i, rule in enumerate((route.get("spec") or {}).get("rules") or []):
                matches = rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]
                for mt in matches:
                    path = mt.get("path") or {"type": "PathPrefix", "value": "/"}
                    out.append((path.get("type", "PathPrefix"), path.get("value", "/"), route, i, rule))
        out.sort(key=lambda x: (x[0] != "Exact", -len(x[1])))
        return out

    def match(self, path: str) -> tuple[Obj, int, Obj, str] | None:
        for typ, value, route, i, rule in self.routes:
            if typ == "Exact":
                if path == value:
                    return route, i, rule, value
            elif value == "/" or path == value or path.startswith(value.rstrip("/") + "/"):
                return route, i, rule, value
        return None

    def ready_pods(self, ns: str, selector: dict[str, str] | Obj) -> list[Obj]:
        sel = selector if "matchLabels" in selector or "matchExpressions" in selector else {"matchLabels": selector}
        return [p for p in self.pods_by_ns.get(ns, [])
                if pod_ready(p) and match_label_selector(sel, p["metadata"].get("labels") or {})]

    def reachable(self, src: Obj | None, dst: Obj, port: int) -> bool:
        if not self.netpols or src is None or not self.enforced:
            return True
        key = (src["metadata"]["uid"], dst["metadata"]["uid"], port)
        if key in self._reach:
            return self._reach[key]
        ns_of = self.namespaces.get
        ok = evaluate_netpol(self.netpols, pod_party(src, ns_of(src["metadata"]["namespace"])),
                             pod_party(dst, ns_of(dst["metadata"]["namespace"])), port).allowed
        self._reach[key] = ok
        return ok


class DataPlane:
    def __init__(self, cluster: Any, model: LatencyModel | None = None, seed: int | None = None):
        self.cluster = cluster
        self.store = cluster.store
        self.logs = cluster.logs
        self.model = model or LatencyModel()
        self.replicas: dict[tuple[str, int], Replica] = {}
        self.routers: dict[tuple[str, str], EppRouter] = {}
        self.rand = random.Random(seed)
        self._snap: _Snapshot | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.port: int | None = None
        self.gateway_url: str | None = None
        self._started = False
        self._sync_lock: asyncio.Lock | None = None
        self._sync_task: asyncio.Task | None = None
        self.requests = 0
        self._gateway_warm = False
        self.store.add_hook(self._on_change)

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._started = True
        await self._sync_gateway()

    async def stop(self) -> None:
        self._started = False
        await self._close()

    def _on_change(self, etype: str, rtype: Any, obj: Obj, old: Obj | None) -> None:
        if (rtype.group, rtype.plural) not in RELEVANT:
            return
        self._snap = None
        if rtype.plural == "pods" and etype == "DELETED":
            uid = obj["metadata"].get("uid")
            for k in [k for k in self.replicas if k[0] == uid]:
                del self.replicas[k]
            for r in self.routers.values():
                r.forget(obj["metadata"]["name"])
        if rtype.plural == "gateways" and self._started:
            md = obj["metadata"]
            if md.get("name") == GATEWAY_NAME and md.get("namespace") == GATEWAY_NAMESPACE:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:
                    return
                self._sync_task = loop.create_task(self._sync_gateway())

    def _gateway_programmed(self) -> bool:
        g = rt(self.store, "gateways", "gateway.networking.k8s.io")
        gw = self.store.try_get(g, GATEWAY_NAMESPACE, GATEWAY_NAME) if g is not None else None
        if gw is None:
            return False
        c = get_condition(gw, "Programmed")
        return bool(c and c.get("status") == "True" and (gw.get("status") or {}).get("addresses"))

    async def _sync_gateway(self) -> None:
        if self._sync_lock is None:
            self._sync_lock = asyncio.Lock()
        async with self._sync_lock:
            want = self._started and self._gateway_programmed()
            if want and self._runner is None:
                app = web.Application(client_max_size=64 * 1024 * 1024)
                app.router.add_route("*", "/{tail:.*}", self._gateway_handler)
                runner = web.AppRunner(app, access_log=None, handle_signals=False)
                await runner.setup()
                site = web.TCPSite(runner, "127.0.0.1", 0, reuse_address=True)
                await site.start()
                self._runner, self._site = runner, site
                self._gateway_warm = False
                self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
                self.gateway_url = f"http://127.0.0.1:{self.port}"
                self._notify(self.gateway_url)
            elif not want and self._runner is not None and self._started:
                await self._close()
                self._notify(None)

    def _notify(self, url: str | None) -> None:
        cb = getattr(self.cluster, "on_gateway_url", None)
        if cb is not None:
            try:
                cb(url)
            except Exception:  # noqa: BLE001
                log.exception("on_gateway_url failed")

    async def _close(self) -> None:
        runner, self._runner, self._site = self._runner, None, None
        self.port = None
        self.gateway_url = None
        if runner is not None:
            await runner.cleanup()

    # --- state -------------------------------------------------------------------------------
    def snapshot(self) -> _Snapshot:
        if self._snap is None:
            self._snap = _Snapshot(self.store)
            self._snap.enforced = self.enforces_network_policy()
        return self._snap

    def enforces_network_policy(self) -> bool:
        """The cluster's own answer (Dataplane V2 or Calico); a stand-in cluster enforces."""
        return bool(getattr(self.cluster, "enforces_network_policy", True))

    def replica_for(self, pod: Obj) -> Replica | None:
        """The vLLM server of a pod (None when the pod runs no vLLM)."""
        vc = next((c for c in pod["spec"].get("containers") or [] if is_vllm_container(c)), None)
        if vc is None:
            return None
        restarts = next((int(cs.get("restartCount", 0)) for cs in (pod.get("status") or {}).get("containerStatuses")
                         or [] if cs.get("name") == vc["name"]), 0)
        key = (pod["metadata"]["uid"], restarts)
        rep = self.replicas.get(key)
        if rep is None:
            uri = next((str(c["args"][0]) for c in pod["spec"].get("initContainers") or []
                        if c.get("name") == "storage-initializer" and c.get("args")), None)
            ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            cname = vc["name"]
            rep = Replica(name, ns, parse_vllm_args(vc), model_uri=uri, model=self.model,
                          log=lambda text, ns=ns, name=name, c=cname: self.logs.append(ns, name, c, text))
            self.replicas[key] = rep
        return rep

    def _server_up(self, pod: Obj) -> bool:
        """The pod's vLLM answers (its container is ready)."""
        vc = next((c for c in pod["spec"].get("containers") or [] if is_vllm_container(c)), None)
        if vc is None or pod["metadata"].get("deletionTimestamp"):
            return False
        return any(cs.get("name") == vc["name"] and cs.get("ready")
                   for cs in (pod.get("status") or {}).get("containerStatuses") or [])

    # --- a TCP connection from a pod (probe pods: nc / curl) ---------------------------------
    def api_server_addresses(self) -> list[str]:
        """The addresses of the `kubernetes` EndpointSlice in `default` (what pods reach the API at)."""
        t = rt(self.store, "endpointslices", "discovery.k8s.io")
        if t is None:
            return []
        out = []
        for es in self.store.list(t, "default")[0]:
            if (es["metadata"].get("labels") or {}).get("kubernetes.io/service-name") == "kubernetes":
                for ep in es.get("endpoints") or []:
                    out += list(ep.get("addresses") or [])
        return out

    def _epp_reaches_api(self, snap: _Snapshot, epp: Obj) -> bool:
        """The EPP's egress to the API server (the `kubernetes` EndpointSlice addresses, port 443)."""
        if not snap.enforced or not snap.netpols:
            return True
        addrs = self.api_server_addresses()
        if not addrs:
            return True
        key = (epp["metadata"]["uid"], "api", addrs[0])
        if key not in snap._reach:
            src = pod_party(epp, snap.namespaces.get(epp["metadata"]["namespace"]))
            snap._reach[key] = evaluate_netpol(snap.netpols, src, address(addrs[0]), 443).allowed
        return snap._reach[key]

    def connect(self, src: Obj, host: str, port: int, protocol: str = "TCP") -> str:
        """What a TCP connect from pod `src` to `host`:`port` does: "open", "refused" (nothing listens),
        or "timeout" (a NetworkPolicy drops it, or nothing answers at that address). The decision is
        the emulator's own NetworkPolicy evaluator, on clusters that enforce policies."""
        snap = self.snapshot()
        ns_of = snap.namespaces.get
        src_party = pod_party(src, ns_of(src["metadata"]["namespace"]))
        host = host.strip().lower().rstrip(".")
        dst: Obj | None = None
        # a Service (ClusterIP or DNS name): kube-proxy / eBPF picks a Ready backend, policies apply to it
        svc = None
        for (sns, sname), sv in snap.services.items():
            spec = sv.get("spec") or {}
            names = {f"{sname}.{sns}", f"{sname}.{sns}.svc", f"{sname}.{sns}.svc.cluster.local"}
            if sns == src["metadata"]["namespace"]:
                names.add(sname)
            if host in names or host in (spec.get("clusterIPs") or [spec.get("clusterIP")]):
                svc = sv
                break
        if svc is not None:
            spec = svc.get("spec") or {}
            sp = next((p for p in spec.get("ports") or [] if int(p.get("port", 0)) == port), None)
            if sp is None:
                return "timeout"
            if svc["metadata"]["name"] == "kubernetes" and svc["metadata"]["namespace"] == "default":
                addrs = self.api_server_addresses()
                host, port = (addrs[0], int(sp.get("targetPort", port))) if addrs else (host, port)
            else:
                pods = snap.ready_pods(svc["metadata"]["namespace"], spec.get("selector") or {})
                if not pods or not spec.get("selector"):
                    return "refused"
                dst = pods[0]
                tp = sp.get("targetPort", port)
                port = int(tp) if isinstance(tp, int) or str(tp).isdigit() else next(
                    (int(cp["containerPort"]) for c in dst["spec"].get("containers") or []
                     for cp in c.get("ports") or [] if cp.get("name") == tp), port)
        if dst is None:
            dst = next((p for p in snap.pods if (p.get("status") or {}).get("podIP") == host
                        and not p["metadata"].get("deletionTimestamp")), None)
        if dst is None:
            # outside the pod network: the API server's endpoint, or any other address
            v = evaluate_netpol(snap.netpols, src_party, address(host), port, protocol) if snap.enforced else None
            if v is not None and not v.allowed:
                return "timeout"
            if host in self.api_server_addresses():
                return "open" if port == 443 else "refused"
            return "open"
        if snap.enforced and snap.netpols:
            v = evaluate_netpol(snap.netpols, src_party, pod_party(dst, ns_of(dst["metadata"]["namespace"])),
                                port, protocol)
            if not v.allowed:
                return "timeout"
        if (dst.get("status") or {}).get("phase") != "Running":
            return "refused"
        vc = next((c for c in dst["spec"].get("containers") or [] if is_vllm_container(c)), None)
        if vc is not None and port == parse_vllm_args(vc).port:
            return "open" if self._server_up(dst) else "refused"
        listening = any(int(cp.get("containerPort", 0)) == port and (cp.get("protocol") or "TCP") == protocol
                        for c in dst["spec"].get("containers") or [] for cp in c.get("ports") or [])
        return "open" if listening else "refused"

    # --- serving a replica -------------------------------------------------------------------
    async def serve(self, request: web.Request, pod: Obj, path: str, body: bytes, *, client_ip: str,
                    extra_headers: dict[str, str] | None = None) -> web.StreamResponse:
        rep = self.replica_for(pod)
        headers = {"x-served-by": pod["metadata"]["name"]}
        headers.update(extra_headers or {})
        method = request.method
        if rep is None:
            return _json(404, {"detail": "Not Found"}, headers)
        path = path.split("?", 1)[0] or "/"
        status = 200
        resp: web.StreamResponse
        try:
            if path in ("/health", "/ping") and method in ("GET", "POST"):
                resp = web.Response(status=200, headers=headers)
            elif path == "/v1/models" and method == "GET":
                resp = _json(200, rep.models(), headers)
            elif path == "/metrics" and method == "GET":
                resp = web.Response(status=200, text=rep.metrics_text(), headers=headers,
                                    content_type="text/plain", charset="utf-8")
            elif path == "/version" and method == "GET":
                resp = _json(200, {"version": VLLM_VERSION}, headers)
            elif path == "/tokenize" and method == "POST":
                req = json.loads(body or b"{}")
                text = chat_prompt(req["messages"]) if "messages" in req else str(req.get("prompt", ""))
                toks = tokenize(text)
                resp = _json(200, {"count": len(toks), "max_model_len": rep.max_model_len, "tokens": toks,
                                   "token_strs": None}, headers)
            elif path in ("/v1/completions", "/v1/chat/completions"):
                if method != "POST":
                    resp = _json(405, {"detail": "Method Not Allowed"}, headers)
                else:
                    resp = await self._complete(request, rep, path.endswith("chat/completions"), body, headers)
            else:
                resp = _json(404, {"detail": "Not Found"}, headers)
        except ApiFailure as e:
            resp = _json(e.status, e.body, headers)
        except (ValueError, KeyError, TypeError) as e:
            resp = _json(400, {"error": {"message": f"Invalid request: {e}", "type": "BadRequestError",
                                         "param": None, "code": 400}}, headers)
        status = resp.status
        self.requests += 1
        if path.startswith("/v1/") or status >= 400:
            reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}.get(status, "")
            cname = next((c["name"] for c in pod["spec"].get("containers") or [] if is_vllm_container(c)), "main")
            self.logs.append(pod["metadata"]["namespace"], pod["metadata"]["name"], cname,
                             f'(APIServer pid=1) INFO:     {client_ip}:{40000 + self.requests % 20000} - '
                             f'"{method} {path} HTTP/1.1" {status} {reason}'.rstrip())
        return resp

    async def _complete(self, request: web.Request, rep: Replica, chat: bool, body: bytes,
                        headers: dict[str, str]) -> web.StreamResponse:
        try:
            req = json.loads(body or b"null")
        except ValueError:
            raise ApiFailure(400, {"error": {"message": "Expecting value: the body is not valid JSON",
                                             "type": "BadRequestError", "param": None, "code": 400}}) from None
        if not isinstance(req, dict):
            raise ApiFailure(400, {"error": {"message": "the body must be a JSON object", "type": "BadRequestError",
                                             "param": None, "code": 400}})
        if not req.get("stream"):
            comp = await rep.complete(req, chat)
            return _json(200, comp.body, headers)
        resp = web.StreamResponse(status=200, headers={**headers, "Content-Type": "text/event-stream; charset=utf-8",
                                                       "Cache-Control": "no-cache"})
        prepared = False

        async def emit(chunk: bytes) -> None:
            nonlocal prepared
            if not prepared:
                await resp.prepare(request)
                prepared = True
            await resp.write(chunk)
        comp = await rep.complete(req, chat, emit=emit)
        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
        tail = stream_chunks(comp, chat, include_usage)
        n_tokens = len(comp.chunks or [""])
        if not prepared:
            await resp.prepare(request)
        for chunk in tail[n_tokens:]:
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    # --- the gateway -------------------------------------------------------------------------
    def _extproc(self, snap: _Snapshot, pool_ns: str, svc: str) -> tuple[bool, bool, set[str]]:
        """(ext_proc targets this EPP, its cluster has the TLS fix, routes with body forwarding)."""
        cluster = epp_cluster_name(svc, pool_ns)
        gw_labels = ((snap.gateway_pod or {}).get("metadata") or {}).get("labels") or \
            {"gateway.networking.k8s.io/gateway-name": GATEWAY_NAME}
        ext = mtls = False
        body_routes: set[str] = set()
        for ef in snap.envoyfilters:
            spec = ef.get("spec") or {}
            sel = (spec.get("workloadSelector") or {}).get("labels") or {}
            if any(gw_labels.get(k) != v for k, v in sel.items()):
                continue
            for patch in spec.get("configPatches") or []:
                apply_to = patch.get("applyTo")
                match = patch.get("match") or {}
                value = (patch.get("patch") or {}).get("value") or {}
                if apply_to == "HTTP_FILTER":
                    tc = value.get("typed_config") or {}
                    gs = tc.get("grpc_service") or {}
                    if (gs.get("envoy_grpc") or {}).get("cluster_name") == cluster:
                        ext = True
                elif apply_to == "CLUSTER":
                    if (match.get("cluster") or {}).get("name") == cluster and value.get("transport_socket"):
                        mtls = True
                elif apply_to == "HTTP_ROUTE":
                    name = (((match.get("routeConfiguration") or {}).get("vhost") or {}).get("route") or {}).get("name")
                    pf = (value.get("typed_per_filter_config") or {}).get("envoy.filters.http.ext_proc") or {}
                    mode = ((pf.get("overrides") or {}).get("processing_mode") or {}).get("request_body_mode")
                    if name and mode in BODY_MODES:
                        body_routes.add(name)
        return ext, mtls, body_routes

    def _epp_pod(self, snap: _Snapshot, ns: str, svc: str) -> Obj | None:
        for p in snap.pods_by_ns.get(ns, []):
            labels = p["metadata"].get("labels") or {}
            if labels.get("app.kubernetes.io/component") == EPP_COMPONENT and labels.get("app.kubernetes.io/name") == svc \
                    and pod_ready(p):
                return p
        return None

    @staticmethod
    def _has_sidecar(pod: Obj) -> bool:
        return any(cs.get("name") == "istio-proxy" and cs.get("ready")
                   for cs in (pod.get("status") or {}).get("containerStatuses") or [])

    def _pick_least_request(self, pods: list[Obj]) -> Obj:
        if len(pods) == 1:
            return pods[0]
        a, b = self.rand.sample(pods, 2)
        la = (self.replica_for(a).load if self.replica_for(a) else 0)
        lb = (self.replica_for(b).load if self.replica_for(b) else 0)
        return a if la <= lb else b

    async def _gateway_handler(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        body = await request.read()
        return await self.gateway(request, path, body)

    async def gateway(self, request: web.Request, path: str, body: bytes) -> web.StreamResponse:
        snap = self.snapshot()
        m = snap.match(path)
        if m is None:
            return web.Response(status=404, headers={"server": "istio-envoy"})
        route, idx, rule, prefix = m
        rns = route["metadata"]["namespace"]
        # URLRewrite ReplacePrefixMatch
        new_path = path
        for f in rule.get("filters") or []:
            p = ((f.get("urlRewrite") or {}).get("path") or {}) if f.get("type") == "URLRewrite" else {}
            if p.get("type") == "ReplacePrefixMatch":
                rest = path[len(prefix.rstrip("/")):] if prefix != "/" else path
                rep = p.get("replacePrefixMatch", "/")
                new_path = (rep.rstrip("/") + rest) if rest.startswith("/") else (rep.rstrip("/") + "/" + rest
                                                                                 if rest else rep)
                new_path = new_path or "/"
            elif p.get("type") == "ReplaceFullPath":
                new_path = p.get("replaceFullPath", "/")
        backends = rule.get("backendRefs") or []
        if not backends:
            return _envoy(500, "")
        b = backends[0]
        kind = b.get("kind", "Service")
        bns = b.get("namespace") or rns
        gw_pod = snap.gateway_pod
        gw_ip = ((gw_pod or {}).get("status") or {}).get("podIP") or "10.52.0.10"
        extra = {"server": "istio-envoy"}
        t0 = time.perf_counter()
        hop = self.model.gateway_ms
        target: Obj | None = None
        epp_note = None
        if kind == "Service":
            svc = snap.services.get((bns, b.get("name", "")))
            if svc is None:
                return _envoy(500, "")
            pods = [p for p in snap.ready_pods(bns, (svc.get("spec") or {}).get("selector") or {}) if self._server_up(p)]
            if not pods:
                return _envoy(503, "no healthy upstream")
            target = self._pick_least_request(pods)
        elif kind == "InferencePool":
            group = b.get("group") or "inference.networking.k8s.io"
            pool = snap.pools.get((group, bns, b.get("name", "")))
            if pool is None:
                return _envoy(500, "")
            pspec = pool.get("spec") or {}
            sel = pspec.get("selector") or {}
            pods = [p for p in snap.ready_pods(bns, sel) if self._server_up(p)]
            svc_name = (pool["metadata"].get("labels") or {}).get("app.kubernetes.io/name") or \
                b.get("name", "").removesuffix("-inference-pool")
            ext, mtls, body_routes = self._extproc(snap, bns, svc_name)
            if ext:
                epp = self._epp_pod(snap, bns, svc_name)
                ref = pspec.get("endpointPickerRef") or pspec.get("extensionRef") or {}
                fail_open = ref.get("failureMode") == "FailOpen"
                broken = epp is None or not self._has_sidecar(epp) or not mtls or not snap.reachable(gw_pod, epp, 9002)
                if broken and not fail_open:
                    await asyncio.sleep((hop + self.model.epp_ms) / 1000)
                    return _envoy(500, "")
                hop += self.model.epp_ms
                if broken:  # FailOpen: the request goes on without the EPP's choice
                    ext = False
                if ext and epp is not None and not self._epp_reaches_api(snap, epp):
                    # its egress to the API server is cut: it cannot watch the pool's pods, so it has
                    # no candidate to pick and the request finds no endpoint
                    await asyncio.sleep(hop / 1000)
                    return _envoy(503, "no healthy upstream")
            if ext:
                if not pods:
                    return _envoy(503, "no healthy upstream")
                route_name = f"{rns}.{route['metadata']['name']}.{idx}"
                prompt = None
                model_name = ""
                if route_name in body_routes:
                    try:
                        req = json.loads(body or b"null")
                    except ValueError:
                        req = None
                    if isinstance(req, dict):
                        model_name = str(req.get("model") or "")
                        if isinstance(req.get("messages"), list):
                            prompt = chat_prompt(req["messages"])
                        elif isinstance(req.get("prompt"), str):
                            prompt = req["prompt"]
                router = self.routers.setdefault((bns, svc_name), EppRouter(self.rand.randrange(1 << 30)))
                cands = [(p["metadata"]["name"], (self.replica_for(p).load if self.replica_for(p) else 0)) for p in pods]
                chosen, scores = router.pick(model_name, prompt, cands)
                target = next(p for p in pods if p["metadata"]["name"] == chosen)
                epp_note = (epp, chosen, scores)
            else:
                if not pods:
                    return _envoy(503, "no healthy upstream")
                target = self._pick_least_request(pods)
        else:
            return _envoy(500, "")
        if not snap.reachable(gw_pod, target, 8000):
            await asyncio.sleep(hop / 1000)
            return _envoy(503, "upstream connect error or disconnect/reset before headers. retried and the latest "
                               "reset reason: connection timeout")
        if epp_note is not None:
            epp, chosen, scores = epp_note
            self.logs.append(epp["metadata"]["namespace"], epp["metadata"]["name"], "main", json.dumps({
                "level": "info", "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
                "logger": "scheduling", "msg": "Calculated score", "scorer": "prefix-cache-scorer+queue-scorer",
                "targetPod": f"{bns}/{chosen}", "scores": scores}))
        if not self._gateway_warm:  # the first request through a new gateway: connections, TLS, first EPP pass
            self._gateway_warm = True
            hop += self.model.gateway_warmup_ms
        await asyncio.sleep(hop / 1000)
        extra["x-envoy-upstream-service-time"] = "0"
        resp = await self.serve(request, target, new_path, body, client_ip=gw_ip, extra_headers=extra)
        if isinstance(resp, web.Response):
            resp.headers["x-envoy-upstream-service-time"] = str(int((time.perf_counter() - t0) * 1000))
        return resp

    # --- the K8s API's proxy -----------------------------------------------------------------
    @staticmethod
    def _port_number(port: Any) -> tuple[str | None, int | None, str | None]:
        """'https:name:8000' / '8000' / 'https' -> (scheme, number, name)."""
        if port is None or port == "":
            return None, None, None
        s = str(port)
        parts = s.split(":")
        scheme = parts[0] if len(parts) > 1 and parts[0] in ("http", "https") else None
        last = parts[-1]
        if last.isdigit():
            return scheme, int(last), None
        return scheme, None, last

    async def proxy(self, request: web.Request, kind: str, namespace: str, name: str, port: Any,
                    path: str) -> web.StreamResponse:
        try:
            body = await request.read()
        except Exception:  # noqa: BLE001
            body = b""
        path = "/" + (path or "").lstrip("/")
        snap = self.snapshot()
        _, num, pname = self._port_number(port)
        node_ip = "10.164.0.2"
        if kind == "services":
            svc = snap.services.get((namespace, name))
            if svc is None:
                return _k8s_status(404, "NotFound", f'services "{name}" not found')
            ports = (svc.get("spec") or {}).get("ports") or []
            sp = next((p for p in ports if (num is not None and p.get("port") == num) or
                       (pname is not None and p.get("name") == pname)), ports[0] if ports and num is None
                      and pname is None else None)
            if sp is None:
                return _k8s_status(503, "ServiceUnavailable",
                                   f'no endpoints available for service "{name}"')
            target_port = sp.get("targetPort", sp.get("port"))
            labels = svc["metadata"].get("labels") or {}
            if labels.get("gateway.networking.k8s.io/gateway-name") == GATEWAY_NAME and self._runner is not None:
                return await self.gateway(request, path, body)
            pods = snap.ready_pods(namespace, (svc.get("spec") or {}).get("selector") or {})
            if not pods or not (svc.get("spec") or {}).get("selector"):
                return _k8s_status(503, "ServiceUnavailable", f'no endpoints available for service "{name}"')
            pod = self._pick_least_request(pods)
            return await self._to_pod(request, pod, target_port, path, body, node_ip)
        if kind == "pods":
            pod = next((p for p in snap.pods_by_ns.get(namespace, []) if p["metadata"]["name"] == name), None)
            if pod is None:
                return _k8s_status(404, "NotFound", f'pods "{name}" not found')
            return await self._to_pod(request, pod, num if num is not None else pname, path, body, node_ip)
        return _k8s_status(404, "NotFound", "the server could not find the requested resource")

    async def _to_pod(self, request: web.Request, pod: Obj, port: Any, path: str, body: bytes,
                      client_ip: str) -> web.StreamResponse:
        ip = (pod.get("status") or {}).get("podIP")
        containers = pod["spec"].get("containers") or []
        number = None
        if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
            number = int(port)
        elif port:
            for c in containers:
                for cp in c.get("ports") or []:
                    if cp.get("name") == port:
                        number = int(cp.get("containerPort"))
        if number is None:
            number = next((int(cp["containerPort"]) for c in containers for cp in c.get("ports") or []), 80)
        if not ip or (pod.get("status") or {}).get("phase") != "Running":
            return _k8s_status(503, "ServiceUnavailable", f"error trying to reach service: dial tcp "
                                                          f"{ip or '<nil>'}:{number}: connect: no route to host")
        vc = next((c for c in containers if is_vllm_container(c)), None)
        labels = pod["metadata"].get("labels") or {}
        if vc is not None and number == parse_vllm_args(vc).port:
            if not self._server_up(pod):
                return _k8s_status(503, "ServiceUnavailable", f"error trying to reach service: dial tcp {ip}:{number}: "
                                                              "connect: connection refused")
            return await self.serve(request, pod, path, body, client_ip=client_ip)
        if labels.get("app.kubernetes.io/component") == EPP_COMPONENT and number == 9090 and pod_ready(pod):
            return web.Response(status=200, text=self._epp_metrics(pod), content_type="text/plain", charset="utf-8")
        return _k8s_status(503, "ServiceUnavailable", f"error trying to reach service: dial tcp {ip}:{number}: "
                                                      "connect: connection refused")

    def _epp_metrics(self, epp: Obj) -> str:
        ns = epp["metadata"]["namespace"]
        svc = (epp["metadata"].get("labels") or {}).get("app.kubernetes.io/name", "")
        snap = self.snapshot()
        pool = f"{svc}-inference-pool"
        pods = [p for p in snap.pods_by_ns.get(ns, []) if (p["metadata"].get("labels") or {}).get("kserve.io/component")
                == "workload" and (p["metadata"].get("labels") or {}).get("app.kubernetes.io/name") == svc]
        lines = ["# HELP inference_pool_ready_pods [ALPHA] The number of ready pods in the inference server pool.",
                 "# TYPE inference_pool_ready_pods gauge",
                 f'inference_pool_ready_pods{{name="{pool}"}} {sum(1 for p in pods if pod_ready(p))}',
                 "# HELP inference_pool_per_pod_queue_size [ALPHA] The total number of requests pending in the "
                 "model server queue for each underlying pod.",
                 "# TYPE inference_pool_per_pod_queue_size gauge"]
        for p in pods:
            rep = self.replica_for(p) if pod_ready(p) else None
            lines.append(f'inference_pool_per_pod_queue_size{{model_server_pod="{p["metadata"]["name"]}",'
                         f'name="{pool}"}} {rep.waiting if rep else 0}')
        router = self.routers.get((ns, svc))
        lines += ["# HELP inference_extension_prefix_indexer_size [ALPHA] Size of the prefix indexer.",
                  "# TYPE inference_extension_prefix_indexer_size gauge",
                  f"inference_extension_prefix_indexer_size {sum(len(v) for v in router.index.values()) if router else 0}"]
        return "\n".join(lines) + "\n"


# --- benchmark: `python -m rhaii_tui.sim.dataplane [--seconds N] [--json]` -----------------------

GUIDE_PROMPT = (  # ~140 tokens: one full 128-token block, like the upstream script's default prompt
    "You are a professional translator with many years of experience translating technical documentation, "
    "marketing material and everyday conversation between English and French. Keep the tone of the original, "
    "keep names and numbers unchanged, prefer natural French phrasing over word for word translation, and never "
    "add explanations or notes of your own. If a sentence is ambiguous, choose the most common meaning in a "
    "business context, keep the punctuation of the source text, respect the formal or informal register of the "
    "speaker, and keep any product names in English. Translate the following sentence into French:"
)


async def _bench(seconds: float = 10.0) -> dict[str, Any]:  # pragma: no cover - a benchmark, run by hand
    import statistics

    import aiohttp

    from .controllers import Controllers
    from .controllers.standin import StandInCluster, deploy_guide

    def pct(xs: list[float], q: float) -> float:
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else 0.0

    async def one(s: aiohttp.ClientSession, url: str, body: dict) -> tuple[float, str]:
        t = time.perf_counter()
        async with s.post(url, json=body) as r:
            await r.read()
            assert r.status == 200, r.status
            return (time.perf_counter() - t) * 1000, r.headers.get("x-served-by", "")

    out: dict[str, Any] = {"model": LatencyModel().__dict__}
    for routing in (True, False):
        c = StandInCluster(speed=1.0)
        ctl = Controllers(c)
        dp = DataPlane(c, seed=7)
        await dp.start()
        ctl.start()
        cfg = deploy_guide(c, ctl, routing=routing)
        await asyncio.sleep(0.05)
        base = f"{c.gateway_url}/{cfg.namespace}/{cfg.service}/v1/completions"
        res: dict[str, Any] = {}
        conn = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=conn) as s:
            # the guide's step 11: 5 identical short requests on fresh replicas
            lat = [(await one(s, base, {"model": "/mnt/models", "prompt": "Translate to French: Hello world",
                                        "max_tokens": 10}))[0] for _ in range(5)]
            res["guide_cache_test_ms"] = [round(x) for x in lat]
            # warm every replica
            for i in range(9):
                await one(s, base, {"model": "/mnt/models", "prompt": f"warm-up {i} " * 40, "max_tokens": 5})
            # cold 4-block prefix vs cached
            prefix = ("The quick brown fox jumps over the lazy dog while the cat watches from the window. " * 29)
            ntok = len(tokenize(prefix))
            cold = (await one(s, base, {"model": "/mnt/models", "prompt": prefix + "Q0", "max_tokens": 10}))[0]
            warm = [(await one(s, base, {"model": "/mnt/models", "prompt": prefix + f"Q{i}", "max_tokens": 10}))[0]
                    for i in range(1, 6)]
            res["prefix_tokens"] = ntok
            res["cold_prefix_ms"] = round(cold)
            res["cached_prefix_ms_p50"] = round(statistics.median(warm))
            # serial: the step-9 request (max_tokens 50) and the script's prompt (max_tokens 10)
            for name, body in (("serial_step9_max50", {"model": "/mnt/models", "max_tokens": 50,
                                                        "prompt": "Explain machine learning in one sentence:"}),
                               ("serial_script_max10", {"model": "/mnt/models", "max_tokens": 10,
                                                         "prompt": GUIDE_PROMPT + " Hello"})):
                t0 = time.perf_counter()
                xs = [(await one(s, base, body))[0] for _ in range(40)]
                wall = time.perf_counter() - t0
                res[name] = {"req_s": round(40 / wall, 1), "p50_ms": round(pct(xs, 0.5)), "p99_ms": round(pct(xs, 0.99))}
            # the guide's burst: 10 requests at once sharing the script's prefix, N / wall time
            bursts = []
            for b in range(5):
                t0 = time.perf_counter()
                rs = await asyncio.gather(*[one(s, base, {"model": "/mnt/models", "max_tokens": 10,
                                                          "prompt": GUIDE_PROMPT + f" {b}-{i}"}) for i in range(10)])
                wall = time.perf_counter() - t0
                xs = sorted(x for x, _ in rs)
                bursts.append({"req_s": 10 / wall, "p50_ms": xs[5], "max_ms": xs[-1],
                               "replicas": len({w for _, w in rs})})
            res["burst10_shared_prefix"] = {k: round(statistics.mean(bb[k] for bb in bursts), 1) for k in bursts[0]}
            # sustained closed loop, 10 in flight
            for name, shared in (("closed_loop_c10_shared_prefix", True), ("closed_loop_c10_distinct_prefixes", False)):
                lat2: list[float] = []
                served: dict[str, int] = {}
                stop = time.perf_counter() + seconds
                counter = iter(range(10 ** 9))

                async def worker(wid: int) -> None:
                    while time.perf_counter() < stop:
                        n = next(counter)
                        p = GUIDE_PROMPT if shared else f"User {n} asks: " + GUIDE_PROMPT
                        x, who = await one(s, base, {"model": "/mnt/models", "max_tokens": 10, "prompt": p + f" {n}"})
                        lat2.append(x)
                        served[who] = served.get(who, 0) + 1
                t0 = time.perf_counter()
                await asyncio.gather(*[worker(i) for i in range(10)])
                wall = time.perf_counter() - t0
                res[name] = {"req_s": round(len(lat2) / wall, 1), "p50_ms": round(pct(lat2, 0.5)),
                             "p99_ms": round(pct(lat2, 0.99)), "requests": len(lat2),
                             "per_replica": sorted(served.values(), reverse=True)}
            hits = {}
            for p in c.store.list(c.store.type_for("pods"), cfg.namespace)[0]:
                rep = dp.replica_for(p) if dp._server_up(p) else None
                if rep:
                    hits[p["metadata"]["name"][-5:]] = (rep.cache.hits, rep.cache.queries)
            res["prefix_cache_hits_queries"] = hits
        out["epp_routing" if routing else "no_envoyfilters"] = res
        ctl.stop()
        await dp.stop()
    return out


if __name__ == "__main__":  # pragma: no cover
    import argparse
    import platform

    ap = argparse.ArgumentParser(description="Throughput and latency of the emulator's data plane")
    ap.add_argument("--seconds", type=float, default=10.0, help="duration of each closed-loop run")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    result = asyncio.run(_bench(a.seconds))
    result["machine"] = {"python": platform.python_version(), "cpus": __import__("os").cpu_count(),
                         "platform": platform.platform()}
    print(json.dumps(result, indent=None if a.json else 2))
