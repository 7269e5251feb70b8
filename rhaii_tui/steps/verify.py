"""Step 9: verify the deployment — does the service answer, and is every replica Ready and answering?

Checks (each a `CheckResult`: pass/fail with evidence — HTTP status, latency, the first words of
the answer — and a fix when it fails):

- `llmisvc`    the LLMInferenceService exists and its Ready condition is True;
- `pods`       N workload pods Ready — the readiness condition, not the phase (the upstream
               verify script checks the phase: a Running 0/1 pod that is still compiling passes it);
- `access`     how the service is reached, chosen automatically and said in the evidence:
               "via gateway 1.2.3.4" (http://<gateway address>/<namespace>/<service>), or, when the
               gateway `inference-gateway` in `opendatahub` has no address, "via Kubernetes service
               proxy (gateway has no address)" (the workload Service through the Kubernetes API);
- `route`      (through the gateway) the health HTTPRoute's backend resolves: the InferencePool it
               names exists in the API group it names (KServe 3.4.0-ea.1 writes its pool in
               inference.networking.x-k8s.io, ea.2 in inference.networking.k8s.io) and the route's
               status does not say ResolvedRefs=False; else it names the group it expected and
               what KServe created;
- `health`     GET /health;
- `models`     GET /v1/models lists `/mnt/models`;
- `completion` POST /v1/completions answers with "choices";
- `chat`       POST /v1/chat/completions answers with "choices";
- `replica:<pod>` each Ready replica answers a completion on its own, through the Kubernetes pod
               proxy `/api/v1/namespaces/NS/pods/https:POD:8000/proxy/...` (vLLM serves HTTPS on 8000;
               the `https:` scheme prefix is the apiserver's proxy syntax `[scheme:]name[:port]`).

`run_verify(ctx, on_result)` runs them (blocking; call it from a worker thread) and calls
`on_result(check)` as each finishes. `probe(ctx)` runs the quick subset (no chat, no per-replica
calls) and maps it to a StepState.

The shared plumbing of steps 9-11 lives here too: `read_live(ctx)` (the LLMISVC, the gateway and
the workload pods), `KubeHttp` (an HTTP client setup for the Kubernetes API's proxy: host, CA and a
bearer token that never appears in results), and `resolve_access(ctx, live)` -> `ServiceAccess`.

No Textual here.
"""

from __future__ import annotations

import datetime as _dt
import ssl as _ssl
import time
import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping

from .. import manifests
from ..cloud.gke import CloudError
from ..cloud.inference import CallResult, InferenceClient, safe_url
from ..cloud.profile import cluster_key
from ..config import GATEWAY_NAME, GATEWAY_NAMESPACE
from .base import Status, StepState, from_error

LLMISVC_KIND = "LLMInferenceService"
GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"
MAIN_CONTAINER = "main"
INIT_CONTAINER = "storage-initializer"
# vLLM serves HTTPS on 8000 (KServe's self-signed certificate): the proxy must speak https to it.
REPLICA_SCHEME = "https"
COMPLETION_PROMPT = "Explain machine learning in one sentence:"   # the guide's step 9 prompt
CHAT_PROMPT = "Say hello in French, in five words or fewer."

VIA_GATEWAY = "gateway"
VIA_SERVICE_PROXY = "service-proxy"


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------


@dataclass
class CheckResult:
    key: str                        # llmisvc | pods | access | health | models | completion | chat | replica:<pod> ...
    title: str
    ok: bool | None                 # None: could not be decided / not run
    evidence: str                   # what was seen: status, latency, first words, names
    fix: str = ""
    status: int | None = None       # HTTP status, when the check is an HTTP call
    latency_ms: float | None = None
    text: str = ""                  # first words of the answer
    served_by: str | None = None
    at: float = 0.0                 # epoch seconds when the check finished
    duration_ms: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.ok is True

    @property
    def mark(self) -> str:
        return {True: "PASS", False: "FAIL", None: "SKIP"}[self.ok]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def all_passed(checks: list[CheckResult]) -> bool:
    return bool(checks) and all(c.ok is True for c in checks)


def first_failure(checks: list[CheckResult]) -> CheckResult | None:
    return next((c for c in checks if c.ok is False), None) or next((c for c in checks if c.ok is None), None)


def now_iso(t: float | None = None) -> str:
    return _dt.datetime.fromtimestamp(time.time() if t is None else t, _dt.timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------------------------
# live objects
# --------------------------------------------------------------------------------------------


def condition(obj: Mapping[str, Any] | None, ctype: str) -> Mapping[str, Any] | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if isinstance(c, Mapping) and c.get("type") == ctype:
            return c
    return None


def is_true(obj: Mapping[str, Any] | None, ctype: str) -> bool:
    c = condition(obj, ctype)
    return bool(c) and str(c.get("status")) == "True"


def pod_name(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("name") or "")


def pod_node(pod: Mapping[str, Any]) -> str:
    return str((pod.get("spec") or {}).get("nodeName") or "")


def pod_terminating(pod: Mapping[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """Ready by the readiness condition (not the phase), and not on its way out."""
    return not pod_terminating(pod) and is_true(pod, "Ready")


def main_container(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    containers = (pod.get("spec") or {}).get("containers") or []
    for c in containers:
        if c.get("name") == MAIN_CONTAINER:
            return c
    return containers[0] if containers else None


@dataclass
class LiveState:
    """What the cluster says about this deployment right now."""

    llmisvc: dict[str, Any] | None
    gateway: dict[str, Any] | None
    pods: list[dict[str, Any]]        # workload pods of this service (incl. terminating ones)
    expected_replicas: int

    @property
    def uid(self) -> str | None:
        return ((self.llmisvc or {}).get("metadata") or {}).get("uid")

    @property
    def ready_pods(self) -> list[dict[str, Any]]:
        return sorted((p for p in self.pods if pod_ready(p)), key=pod_name)

    @property
    def live_pods(self) -> list[dict[str, Any]]:
        return sorted((p for p in self.pods if not pod_terminating(p)), key=pod_name)

    @property
    def gateway_address(self) -> str | None:
        for a in ((self.gateway or {}).get("status") or {}).get("addresses") or []:
            if isinstance(a, Mapping) and a.get("value"):
                return str(a["value"])
        return None

    @property
    def llmisvc_ready(self) -> bool:
        return is_true(self.llmisvc, "Ready")


def read_live(ctx: Any, kube: Any = None) -> LiveState:
    """Read the LLMISVC, the gateway and the workload pods. Raises CloudError (no cluster, API down)."""
    kube = kube or ctx.kube()
    cfg = ctx.cfg
    llmisvc = kube.get(manifests.LLMISVC_API_VERSION, LLMISVC_KIND, cfg.service, cfg.namespace)
    gateway = kube.get(GATEWAY_API_VERSION, "Gateway", GATEWAY_NAME, GATEWAY_NAMESPACE)
    pods = kube.list("v1", "Pod", cfg.namespace,
                     label_selector=manifests.label_selector(manifests.workload_labels(cfg.service)))
    expected = cfg.replicas
    spec_replicas = ((llmisvc or {}).get("spec") or {}).get("replicas")
    if isinstance(spec_replicas, int) and spec_replicas > 0:
        expected = spec_replicas
    return LiveState(llmisvc, gateway, list(pods), int(expected))


# --------------------------------------------------------------------------------------------
# HTTP through the Kubernetes API (pod and service proxy)
# --------------------------------------------------------------------------------------------


@dataclass
class KubeHttp:
    """How to make plain HTTP requests to the cluster's Kubernetes API (its proxy subresources):
    host, TLS verification (a CA file, or a bool) and a bearer token from the profile. The token is
    fetched on demand and never stored in a result."""

    host: str
    verify: Any = True
    token_fn: Callable[[], str] | None = field(default=None, repr=False)

    @classmethod
    def from_session(cls, kube: Any, profile: Any) -> "KubeHttp":
        conf = kube.api_client.configuration
        verify: Any = True
        if getattr(conf, "verify_ssl", True) is False:
            verify = False
        elif getattr(conf, "ssl_ca_cert", None):
            verify = conf.ssl_ca_cert
        return cls(host=str(conf.host).rstrip("/"), verify=verify, token_fn=profile.access_token)

    def headers(self) -> dict[str, str]:
        """The Authorization header for the API server. Raises CloudError("credentials")."""
        from ..cloud.gke import CREDENTIALS_FIX
        from ..cloud.profile import CredentialsError

        try:
            token = self.token_fn() if self.token_fn else ""
        except CredentialsError as e:
            raise CloudError("credentials", str(e), CREDENTIALS_FIX) from None
        return {"Authorization": f"Bearer {token}"} if token else {}

    def ssl_context(self) -> Any:
        """aiohttp's `ssl` argument: an SSLContext with the cluster's CA, False, or None (default)."""
        if self.verify is False:
            return False
        if isinstance(self.verify, str):
            return _ssl.create_default_context(cafile=self.verify)
        return None

    def httpx_verify(self) -> Any:
        """httpx's `verify`: an SSLContext with the cluster's CA, or a bool."""
        if isinstance(self.verify, str):
            return _ssl.create_default_context(cafile=self.verify)
        return self.verify

    def url(self, path: str) -> str:
        return self.host + path

    def pod_base(self, namespace: str, pod: str, port: int = manifests.VLLM_PORT,
                 scheme: str = REPLICA_SCHEME) -> str:
        """Base URL of one replica through the pod proxy (append /health, /metrics, /v1/...)."""
        name = f"{scheme}:{pod}:{port}" if scheme else f"{pod}:{port}"
        return self.url(f"/api/v1/namespaces/{namespace}/pods/{name}/proxy")

    def service_base(self, namespace: str, service: str, port: int = manifests.VLLM_PORT,
                     scheme: str = REPLICA_SCHEME) -> str:
        name = f"{scheme}:{service}:{port}" if scheme else f"{service}:{port}"
        return self.url(f"/api/v1/namespaces/{namespace}/services/{name}/proxy")

    def client(self, base_url: str, timeout_s: float = 30.0) -> InferenceClient:
        """A client through the API server's proxy: its own transient errors are retried."""
        return InferenceClient(base_url, timeout_s=timeout_s, headers=self.headers(), verify=self.httpx_verify(),
                               api_proxy=True)

    def get_text(self, url: str, timeout_s: float = 15.0) -> tuple[int | None, str, str | None]:
        """GET a URL on the API server: (status, body text, error message). Never raises. The API
        server's own transient errors and dropped connections are retried (cloud/retry.py); a
        final API-server error says so rather than blaming the service."""
        import httpx

        from ..cloud import retry as _retry
        from ..cloud.inference import status_error

        class _Answer(Exception):
            """The API server's own transient error, raised inside the retry loop."""

            def __init__(self, r: Any, verdict: Any):
                super().__init__(r.status_code)
                self.r, self.verdict = r, verdict

        def checked() -> Any:
            with httpx.Client(timeout=timeout_s, headers=self.headers(), verify=self.httpx_verify()) as c:
                r = c.get(url)
            if r.status_code in _retry.TRANSIENT_STATUS and _retry.is_kube_status_body(r.content):
                raise _Answer(r, _retry.http_verdict(r.status_code, r.headers, r.content))
            return r

        def classify(e: BaseException) -> Any:
            if isinstance(e, (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError)):
                return _retry.Verdict(True, None, "connection")
            if isinstance(e, _Answer):
                return e.verdict
            return _retry.NO

        attempts = 1
        try:
            r = _retry.call(checked, classify, what="Kubernetes API proxy")
        except _Answer as e:
            r, attempts = e.r, _retry.attempts_of(e)
        except httpx.HTTPError as e:
            return None, "", f"{safe_url(url)}: {type(e).__name__}{_retry.attempts_text(e)}"
        except Exception as e:  # noqa: BLE001 - never a traceback
            return None, "", f"{safe_url(url)}: {type(e).__name__}"
        if not 200 <= r.status_code < 300:
            if _retry.is_kube_status_body(r.content):
                return r.status_code, r.text, str(status_error(url, r.status_code, r.content, attempts))
            return r.status_code, r.text, f"{safe_url(url)} answered HTTP {r.status_code}"
        return r.status_code, r.text, None


@dataclass
class ServiceAccess:
    """How the service is reached. `headers` carry the Kubernetes bearer token when going through
    the service proxy (empty through the gateway); never serialised."""

    base_url: str
    via: str                          # gateway | service-proxy
    description: str                  # said in results: "via gateway 1.2.3.4" / "via Kubernetes service proxy ..."
    gateway_address: str | None = None
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    verify: Any = field(default=True, repr=False)
    ssl: Any = field(default=None, repr=False)

    def client(self, timeout_s: float = 30.0) -> InferenceClient:
        return InferenceClient(self.base_url, timeout_s=timeout_s, headers=self.headers, verify=self.verify,
                               api_proxy=self.via == VIA_SERVICE_PROXY)

    def to_dict(self) -> dict[str, Any]:
        return {"base_url": safe_url(self.base_url), "via": self.via, "description": self.description,
                "gateway_address": self.gateway_address}


def resolve_access(ctx: Any, live: LiveState, kube: Any = None) -> ServiceAccess:
    """The gateway when it has an address, else the Kubernetes service proxy to the workload Service."""
    cfg = ctx.cfg
    addr = live.gateway_address
    if addr:
        key = cluster_key(cfg.project, cfg.zone, cfg.cluster)
        base = ctx.profile.gateway_base_url(addr, key).rstrip("/") + manifests.service_path(cfg.namespace, cfg.service)
        return ServiceAccess(base, VIA_GATEWAY, f"via gateway {addr}", gateway_address=addr)
    kh = KubeHttp.from_session(kube or ctx.kube(), ctx.profile)
    why = ("gateway has no address" if live.gateway is not None
           else f"gateway {GATEWAY_NAMESPACE}/{GATEWAY_NAME} not found")
    base = kh.service_base(cfg.namespace, manifests.workload_service_name(cfg.service))
    return ServiceAccess(base, VIA_SERVICE_PROXY, f"via Kubernetes service proxy ({why})",
                         headers=kh.headers(), verify=kh.httpx_verify(), ssl=kh.ssl_context())


# --------------------------------------------------------------------------------------------
# the checks
# --------------------------------------------------------------------------------------------


def _evidence(res: CallResult, what: str = "") -> str:
    if res.ok:
        words = f": {res.text!r}" if res.text else ""
        by = f" (served by {res.served_by})" if res.served_by else ""
        return f"HTTP {res.status} in {res.latency_ms:.0f} ms{what}{words}{by}"
    status = f"HTTP {res.status}, " if res.status else ""
    return f"{status}{res.error or 'failed'}"


def _call_check(key: str, title: str, res: CallResult, fix: str, t0: float) -> CheckResult:
    ok = res.ok
    return CheckResult(key, title, ok, _evidence(res), "" if ok else fix, status=res.status,
                       latency_ms=round(res.latency_ms, 1), text=res.text, served_by=res.served_by,
                       at=time.time(), duration_ms=round((time.perf_counter() - t0) * 1000, 1),
                       data={"url": res.url, "models": res.models} if res.models else {"url": res.url})


def check_llmisvc(ctx: Any, live: LiveState) -> CheckResult:
    cfg = ctx.cfg
    title = f"LLMInferenceService {cfg.service} Ready"
    if live.llmisvc is None:
        return CheckResult("llmisvc", title, False, f"{cfg.namespace}/{cfg.service} not found",
                           "Deploy it in step 5.", at=time.time())
    c = condition(live.llmisvc, "Ready")
    if c is None:
        return CheckResult("llmisvc", title, False, "no Ready condition yet",
                           "Wait for KServe to reconcile it (step 5), or check the KServe controller (step 4).",
                           at=time.time())
    detail = f"Ready={c.get('status')}" + (f" ({c.get('reason')})" if c.get("reason") else "")
    if c.get("message") and str(c.get("status")) != "True":
        detail += f": {c.get('message')}"
    ok = str(c.get("status")) == "True"
    return CheckResult("llmisvc", title, ok, detail,
                       "" if ok else "Open step 5 to see which pods are not Ready and why.", at=time.time(),
                       data={"uid": live.uid})


def check_pods(live: LiveState) -> CheckResult:
    n = live.expected_replicas
    ready = live.ready_pods
    title = f"{n} vLLM replica(s) Ready"
    pods = live.live_pods
    rows = []
    for p in pods:
        cs = next((c for c in (p.get("status") or {}).get("containerStatuses") or [] if c.get("name") == MAIN_CONTAINER), {})
        rows.append({"pod": pod_name(p), "node": pod_node(p), "phase": (p.get("status") or {}).get("phase"),
                     "ready": pod_ready(p), "restarts": cs.get("restartCount", 0)})
    nodes = {pod_node(p) for p in ready if pod_node(p)}
    listing = ", ".join(f"{pod_name(p)} on {pod_node(p) or '?'}" for p in ready)
    ok = len(ready) >= n
    evidence = f"{len(ready)} of {n} Ready (readiness condition, not phase)"
    if listing:
        evidence += f": {listing}"
    not_ready = [r for r in rows if not r["ready"]]
    if not_ready:
        evidence += "; not Ready: " + ", ".join(f"{r['pod']} ({r['phase']})" for r in not_ready)
    if ok and len(nodes) < len(ready):
        evidence += f"; only {len(nodes)} distinct nodes"
    fix = "" if ok else ("Open step 5: it shows each pod's stage (Pending, Init, compiling) and the diagnosis. "
                         "Running 0/1 means vLLM is still loading or compiling.")
    return CheckResult("pods", title, ok, evidence, fix, at=time.time(), data={"pods": rows})


def check_access(access: ServiceAccess) -> CheckResult:
    return CheckResult("access", "Service reachable", True,
                       f"{access.description}: {safe_url(access.base_url)}", at=time.time(),
                       data=access.to_dict())


def check_health_route(ctx: Any, kube: Any) -> CheckResult:
    """The health HTTPRoute's InferencePool backend resolves (see the module docstring)."""
    from .deploy import kserve_pools

    cfg = ctx.cfg
    name = manifests.health_route_name(cfg.service)
    title = f"HTTPRoute {name} resolves its InferencePool"
    again = "Apply step 5 again: it points the health route at the InferencePool KServe created, in its API group."
    try:
        route = kube.get(manifests.HTTPROUTE_API_VERSION, "HTTPRoute", name, cfg.namespace)
        pools = kserve_pools(kube, cfg)
    except CloudError as e:
        return CheckResult("route", title, False, e.message, e.fix, at=time.time())
    made = ", ".join(f"{(p.get('metadata') or {}).get('name')} in {g}/{v}" for g, v, p in pools)
    made = f"KServe created InferencePool {made}" if made else "KServe has created no InferencePool for the service"
    if route is None:
        return CheckResult("route", title, False, f"HTTPRoute {cfg.namespace}/{name} not found; {made}", again,
                           at=time.time())
    backend = next((b for r in (route.get("spec") or {}).get("rules") or [] for b in r.get("backendRefs") or []
                    if b.get("kind") == "InferencePool"), None)
    if backend is None:
        return CheckResult("route", title, False, f"HTTPRoute {name} has no InferencePool backend; {made}", again,
                           at=time.time())
    group = backend.get("group") or ""
    bname = backend.get("name") or ""
    resolved = next((c for p in (route.get("status") or {}).get("parents") or [] for c in p.get("conditions") or []
                     if c.get("type") == "ResolvedRefs"), None)
    found = next(((g, v) for g, v, p in pools if g == group and (p.get("metadata") or {}).get("name") == bname), None)
    data = {"group": group, "pool": bname,
            "pools": [[g, v, (p.get("metadata") or {}).get("name")] for g, v, p in pools]}
    if found is not None and (resolved is None or str(resolved.get("status")) != "False"):
        return CheckResult("route", title, True, f"to InferencePool {bname} ({found[0]}/{found[1]})"
                           + (", ResolvedRefs=True" if resolved is not None else ""), at=time.time(), data=data)
    why = []
    if resolved is not None and str(resolved.get("status")) == "False":
        why.append("ResolvedRefs=False" + (f" ({resolved.get('reason')}: {resolved.get('message')})"
                                           if resolved.get("reason") else ""))
    if found is None:
        why.append(f"no InferencePool {bname} in {group}")
    evidence = f"expects InferencePool {bname} in {group}: {'; '.join(why)}; {made}"
    fix = again if pools else ("KServe has not created the pool: check the LLMInferenceService's InferencePoolReady "
                               "condition (step 5) and the KServe controller (step 4).")
    return CheckResult("route", title, False, evidence, fix, at=time.time(), data=data)


_FIX = {
    "health": "Check the health route (step 5's httproute-health) and that the pods are Ready.",
    "models": "The service must list /mnt/models: check the LLMInferenceService's model and the vLLM log (step 11).",
    "completion": "Read the vLLM pod's log (step 5); check the EPP scheduler (step 6) and EnvoyFilters (step 7).",
    "chat": "Chat needs the model's chat template: read the vLLM log; completions may still work.",
    "replica": "Read this pod's log (step 5); the pod may be restarting or still compiling.",
}


QUICK_REUSE_SECONDS = 120.0
"""How long the passed calls (health, models, completion) of the probe's quick checks stand while the service, the
gateway and its pods are unchanged. A wizard left open re-probes every step every 15 s: without
this each round would send a completion through the customer's gateway (in their logs, metrics and
cache statistics). The objects (service, pods, gateway, health route) are read every time."""


def _fingerprint(live: LiveState) -> tuple:
    def rv(obj: Any) -> Any:
        return ((obj or {}).get("metadata") or {}).get("resourceVersion")

    return (rv(live.llmisvc), rv(live.gateway), tuple(sorted((pod_name(p), rv(p)) for p in live.pods)))


def run_verify(ctx: Any, on_result: Callable[[CheckResult], None] | None = None, *, quick: bool = False,
               live: LiveState | None = None, timeout_s: float = 30.0,
               memo: dict[str, Any] | None = None) -> list[CheckResult]:
    """Run step 9's checks (blocking: call from a worker thread). `quick` skips the chat and the
    per-replica calls (for probe()). `memo` (quick only): a dict kept between runs, where a passed
    completion check is reused while nothing it depends on changed (QUICK_REUSE_SECONDS). Never
    raises: problems become failing checks."""
    out: list[CheckResult] = []

    def add(c: CheckResult) -> CheckResult:
        out.append(c)
        if on_result is not None:
            try:
                on_result(c)
            except Exception:  # noqa: BLE001 - a broken listener must not break the checks
                pass
        return c

    try:
        kube = ctx.kube()
        live = live or read_live(ctx, kube)
    except CloudError as e:
        add(CheckResult("cluster", "Cluster reachable", False, e.message, e.fix, at=time.time()))
        return out

    add(check_llmisvc(ctx, live))
    add(check_pods(live))
    try:
        access = resolve_access(ctx, live, kube)
    except CloudError as e:
        add(CheckResult("access", "Service reachable", False, e.message, e.fix, at=time.time()))
        return out
    add(check_access(access))
    if access.via == VIA_GATEWAY:  # the health route is the gateway's; the service proxy bypasses it
        add(check_health_route(ctx, kube))

    reuse_key = (ctx.cfg.project, ctx.cfg.zone, ctx.cfg.cluster, ctx.cfg.namespace, ctx.cfg.service,
                 access.via, _fingerprint(live))
    last = memo.get("verify-quick") if memo is not None and quick else None
    if last is not None and last[0] == reuse_key and time.monotonic() - last[1] < QUICK_REUSE_SECONDS:
        ago = int(time.monotonic() - last[1])
        for c in last[2]:
            add(dataclasses.replace(c, evidence=f"{c.evidence} (sent {ago} s ago; nothing changed since)"))
        return out
    with access.client(timeout_s) as client:
        t0 = time.perf_counter()
        calls = [add(_call_check("health", "GET /health", client.health(), _FIX["health"], t0))]
        t0 = time.perf_counter()
        calls.append(add(_call_check("models", "GET /v1/models lists /mnt/models", client.models(), _FIX["models"],
                                     t0)))
        t0 = time.perf_counter()
        calls.append(add(_call_check("completion", "POST /v1/completions returns choices",
                                     client.complete(COMPLETION_PROMPT, max_tokens=20), _FIX["completion"], t0)))
        if memo is not None and quick:
            if all(c.ok is True for c in calls):
                memo["verify-quick"] = (reuse_key, time.monotonic(), calls)
            else:
                memo.pop("verify-quick", None)
        if not quick:
            t0 = time.perf_counter()
            add(_call_check("chat", "POST /v1/chat/completions returns choices",
                            client.chat(CHAT_PROMPT, max_tokens=20), _FIX["chat"], t0))
    if quick:
        return out

    # each replica on its own, through the pod proxy
    kh = KubeHttp.from_session(kube, ctx.profile)
    ready = live.ready_pods
    if not ready:
        add(CheckResult("replicas", "Each replica answers on its own", False, "no Ready replica to ask",
                        _FIX["replica"], at=time.time()))
    for p in ready:
        name = pod_name(p)
        t0 = time.perf_counter()
        try:
            with kh.client(kh.pod_base(ctx.cfg.namespace, name), timeout_s) as c:
                res = c.complete(COMPLETION_PROMPT, max_tokens=10)
        except CloudError as e:
            add(CheckResult(f"replica:{name}", f"replica {name} answers on its own", False, e.message, e.fix,
                            at=time.time()))
            continue
        chk = _call_check(f"replica:{name}", f"replica {name} answers on its own", res, _FIX["replica"], t0)
        chk.evidence = f"{chk.evidence} (via Kubernetes pod proxy)"
        chk.data["node"] = pod_node(p)
        add(chk)
    return out


def summary_of(checks: list[CheckResult], *, quick: bool = False) -> str:
    """One line on `checks`; `quick`: they are the probe's quick checks, not a full run."""
    n_ok = sum(1 for c in checks if c.ok is True)
    bad = first_failure(checks)
    if bad is None and checks:
        access = next((c for c in checks if c.key == "access"), None)
        how = f" ({access.data.get('description')})" if access and access.data.get("description") else ""
        if quick:
            return f"The {len(checks)} quick checks passed{how}; run the checks for the full set"
        return f"All {len(checks)} checks passed{how}"
    if bad is None:
        return "No checks ran"
    return f"{n_ok}/{len(checks)} checks passed; {bad.title}: {bad.evidence}"


def probe(ctx: Any) -> StepState:
    """Step 9's state from the live deployment: NOT_STARTED until step 5 is done (LLMISVC Ready,
    N pods Ready), then DONE when the quick checks pass (access, health, models, completion)."""
    try:
        kube = ctx.kube()
        live = read_live(ctx, kube)
    except CloudError as e:
        if e.kind in ("not_found", "conflict"):
            return StepState(Status.NOT_STARTED, "No cluster yet", fix="Create it in step 2.")
        return from_error(e)
    if live.llmisvc is None:
        return StepState(Status.NOT_STARTED, "Nothing deployed yet", fix="Deploy the service in step 5.")
    n_ready = len(live.ready_pods)
    if not live.llmisvc_ready or n_ready < live.expected_replicas:
        return StepState(Status.NOT_STARTED,
                         f"Waiting for step 5: {n_ready}/{live.expected_replicas} replicas Ready",
                         fix="Finish step 5 first.")
    checks = run_verify(ctx, quick=True, live=live, memo=getattr(ctx, "memo", None))
    data = {"checks": [c.to_dict() for c in checks]}
    if all_passed(checks):
        return StepState(Status.DONE, summary_of(checks, quick=True), data=data)
    bad = first_failure(checks)
    return StepState(Status.FAILED, summary_of(checks, quick=True), detail=bad.evidence if bad else "",
                     fix=bad.fix if bad else "", data=data)


__all__ = [
    "CheckResult", "KubeHttp", "LiveState", "ServiceAccess", "all_passed", "first_failure", "probe",
    "read_live", "resolve_access", "run_verify", "summary_of",
]
