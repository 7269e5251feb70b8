"""Step 11: model identity and cache behaviour.

What the replicas really serve, read from the running system rather than from our manifests:

- the models endpoint of the service (expects `/mnt/models`), and of each replica through the pod proxy;
- per replica, from the logs: the model that was downloaded (storage-initializer: "Successfully
  copied hf://... to /mnt/models") or named by vLLM ("Model Qwen/...", `model='...'`), "Loading
  weights took X seconds", "KV cache size: X tokens" (GPU or TPU prefix); when the log no longer has
  the download line, the storage-initializer's arguments in the live pod spec say what it fetched;
- `--enable-prefix-caching` among the main container's args in the live pod spec, and
  `vllm:cache_config_info{enable_prefix_caching=...}` from the replica's /metrics when exported
  (also its block size);
- a summary of step 10's cache proof for this deployment (stored result, keyed by the LLMISVC uid).

`run_identity(ctx, on_result)` (blocking; from a worker thread) -> `IdentityResult`;
`probe(ctx)` -> StepState (DONE when the model and the prefix-caching flag check out on every
Ready replica and a passing cache proof is stored).

No Textual here.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from ..cloud.gke import CloudError
from ..cloud.inference import MODEL_ID, parse_vllm_metrics
from .base import Status, StepState, from_error
from .performance import stored_result
from .podlife import MilestoneTracker
from .verify import (
    INIT_CONTAINER,
    MAIN_CONTAINER,
    CheckResult,
    KubeHttp,
    LiveState,
    first_failure,
    main_container,
    now_iso,
    pod_name,
    pod_node,
    read_live,
    resolve_access,
)

PREFIX_FLAG = "--enable-prefix-caching"
LOG_LIMIT_BYTES = 4 * 1024 * 1024   # start-up lines are at the beginning of the log

_RE_MODEL_LINE = re.compile(r"\bModel[:\s]+([A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+)\b")
_RE_MODEL_CFG = re.compile(r"\bmodel='([^']+)'")
_RE_ARCH = re.compile(r"(?:Resolved architecture|architecture)[:\s]+([A-Za-z0-9_]+(?:ForCausalLM|Model)\w*)")
_RE_VERSION = re.compile(r"vLLM API server version\s+(\S+)")


@dataclass
class ReplicaIdentity:
    pod: str
    node: str
    model_uri: str | None = None          # what the storage initializer copied to /mnt/models
    model_uri_source: str | None = None   # log | pod spec
    model_in_log: str | None = None       # "Model X" / model='X' in the vLLM log
    architecture: str | None = None
    vllm_version: str | None = None
    served_models: list[str] = field(default_factory=list)   # this replica's /v1/models
    weights_seconds: float | None = None
    kv_cache_tokens: int | None = None
    kv_cache_device: str | None = None    # TPU | GPU | None
    prefix_flag: bool = False             # --enable-prefix-caching in the live pod spec
    args: list[str] = field(default_factory=list)
    metrics_prefix_caching: bool | None = None   # vllm:cache_config_info
    block_size: int | None = None
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class IdentityResult:
    started_at: str
    finished_at: str
    elapsed_s: float
    deployment_uid: str | None
    access: dict[str, Any]
    expected_model: str
    models: list[str]
    replicas: list[ReplicaIdentity]
    checks: list[CheckResult]
    proof: dict[str, Any] | None
    passed: bool
    headline: str

    def to_dict(self) -> dict[str, Any]:
        return {"started_at": self.started_at, "finished_at": self.finished_at, "elapsed_s": self.elapsed_s,
                "deployment_uid": self.deployment_uid, "access": self.access,
                "expected_model": self.expected_model, "models": self.models,
                "replicas": [r.to_dict() for r in self.replicas], "checks": [c.to_dict() for c in self.checks],
                "proof": self.proof, "passed": self.passed, "headline": self.headline}


# --------------------------------------------------------------------------------------------
# pieces
# --------------------------------------------------------------------------------------------


def container_words(container: dict[str, Any] | None) -> list[str]:
    """command + args of a container, split the way a shell would see flags."""
    if not container:
        return []
    words: list[str] = []
    for part in list(container.get("command") or []) + list(container.get("args") or []):
        words.extend(str(part).split())
    return words


def has_prefix_flag(words: list[str]) -> bool:
    on = False
    for w in words:
        if w == PREFIX_FLAG or w.lower() in (f"{PREFIX_FLAG}=true", f"{PREFIX_FLAG}=1"):
            on = True
        elif w == "--no-enable-prefix-caching" or w.lower() in (f"{PREFIX_FLAG}=false", f"{PREFIX_FLAG}=0"):
            on = False
    return on


def init_model_uri(pod: dict[str, Any]) -> str | None:
    """The model URI the storage initializer was started with (its first argument)."""
    for c in (pod.get("spec") or {}).get("initContainers") or []:
        if c.get("name") == INIT_CONTAINER:
            for a in c.get("args") or []:
                if "://" in str(a):
                    return str(a)
    return None


def parse_logs(ident: ReplicaIdentity, main_log: str, init_log: str = "") -> None:
    """Fill what the logs say (model, weights time, KV cache size, version)."""
    t = MilestoneTracker()
    t.feed_many(init_log.splitlines())
    t.feed_many(main_log.splitlines())
    if t.model_uri:
        ident.model_uri, ident.model_uri_source = t.model_uri, "log"
    ident.weights_seconds = t.weights_seconds
    ident.kv_cache_tokens = t.kv_cache_tokens
    ident.kv_cache_device = t.kv_cache_device
    for line in main_log.splitlines():
        if ident.model_in_log is None:
            m = _RE_MODEL_LINE.search(line)
            if m:
                ident.model_in_log = m.group(1)
            else:
                m = _RE_MODEL_CFG.search(line)
                if m and m.group(1) != MODEL_ID:
                    ident.model_in_log = m.group(1)
        if ident.architecture is None:
            m = _RE_ARCH.search(line)
            if m:
                ident.architecture = m.group(1)
        if ident.vllm_version is None:
            m = _RE_VERSION.search(line)
            if m:
                ident.vllm_version = m.group(1)


def _read_log(kube: Any, namespace: str, pod: str, container: str) -> tuple[str, str | None]:
    try:
        text = kube.call(f"read the log of {pod}/{container}", kube.core.read_namespaced_pod_log, pod, namespace,
                         container=container, limit_bytes=LOG_LIMIT_BYTES)
    except CloudError as e:
        return "", e.message
    return (text if isinstance(text, str) else str(text or "")), None


def read_replica(ctx: Any, kube: Any, kh: KubeHttp, pod: dict[str, Any], *, metrics: bool = True,
                 models: bool = True) -> ReplicaIdentity:
    ns = ctx.cfg.namespace
    name = pod_name(pod)
    ident = ReplicaIdentity(pod=name, node=pod_node(pod))
    words = container_words(main_container(pod))
    ident.args = [w for w in words]
    ident.prefix_flag = has_prefix_flag(words)
    main_log, err = _read_log(kube, ns, name, MAIN_CONTAINER)
    if err:
        ident.errors.append(f"main log: {err}")
    init_log, err = _read_log(kube, ns, name, INIT_CONTAINER)
    if err:
        ident.errors.append(f"storage-initializer log: {err}")
    parse_logs(ident, main_log, init_log)
    if ident.model_uri is None:
        uri = init_model_uri(pod)
        if uri:
            ident.model_uri, ident.model_uri_source = uri, "pod spec"
    base = kh.pod_base(ns, name)
    if metrics:
        status, text, err = kh.get_text(base + "/metrics")
        if err:
            ident.errors.append(f"/metrics: {err}")
        else:
            m = parse_vllm_metrics(text)
            ident.metrics_prefix_caching = m.prefix_caching_enabled
            ident.block_size = m.block_size
    if models:
        with kh.client(base, 15.0) as c:
            res = c.models()
        if res.models:
            ident.served_models = res.models
        elif res.error:
            ident.errors.append(f"/v1/models: {res.error}")
    return ident


def _model_matches(found: str | None, cfg: Any) -> bool:
    if not found:
        return False
    f = found.rstrip("/").lower()
    return f == cfg.model.rstrip("/").lower() or f.endswith(cfg.model_repo.lower()) or \
        f.endswith("/" + cfg.model_name.lower())


def replica_checks(cfg: Any, r: ReplicaIdentity) -> list[CheckResult]:
    out: list[CheckResult] = []
    now = time.time()
    # model identity
    evidence = []
    if r.model_uri:
        evidence.append(f"copied {r.model_uri} to /mnt/models ({r.model_uri_source})")
    if r.model_in_log:
        evidence.append(f"vLLM log names {r.model_in_log}")
    if r.architecture:
        evidence.append(f"architecture {r.architecture}")
    if r.served_models:
        evidence.append(f"serves {', '.join(r.served_models)}")
    candidates = [x for x in (r.model_uri, r.model_in_log) if x]
    if any(_model_matches(x, cfg) for x in candidates):
        ok: bool | None = True
        fix = ""
    elif candidates:
        ok, fix = False, (f"This replica loaded a different model than {cfg.model}: check the "
                          "LLMInferenceService's spec.model.uri and redeploy (step 5).")
    else:
        ok, fix = None, "Neither the log nor the pod spec names the model (log rotated?)."
    if r.served_models and MODEL_ID not in r.served_models:
        ok, fix = False, f"The replica does not serve {MODEL_ID}: read its log."
    out.append(CheckResult(f"model:{r.pod}", f"{r.pod} serves {cfg.model_repo}", ok,
                           "; ".join(evidence) or "no evidence found", fix, at=now))
    # weights / KV cache (information: absent lines are not a failure of the deployment)
    out.append(CheckResult(
        f"weights:{r.pod}", f"{r.pod} weights loaded", True if r.weights_seconds is not None else None,
        f"Loading weights took {r.weights_seconds:g} seconds" if r.weights_seconds is not None
        else "no 'Loading weights took' line in the log (rotated, or the container restarted)",
        at=now, data={"weights_seconds": r.weights_seconds}))
    dev = f"{r.kv_cache_device} " if r.kv_cache_device else ""
    out.append(CheckResult(
        f"kv:{r.pod}", f"{r.pod} KV cache allocated", True if r.kv_cache_tokens is not None else None,
        f"{dev}KV cache size: {r.kv_cache_tokens:,} tokens" if r.kv_cache_tokens is not None
        else "no 'KV cache size' line in the log (rotated, or the container restarted)",
        at=now, data={"kv_cache_tokens": r.kv_cache_tokens, "device": r.kv_cache_device}))
    # prefix caching
    parts = [f"{'present' if r.prefix_flag else 'absent'} in the main container's args"]
    if r.metrics_prefix_caching is not None:
        parts.append(f"vllm:cache_config_info enable_prefix_caching={str(r.metrics_prefix_caching)}")
    if r.block_size:
        parts.append(f"block size {r.block_size}")
    ok2 = r.prefix_flag and r.metrics_prefix_caching is not False
    fix2 = "" if ok2 else (f"Add {PREFIX_FLAG} to the LLMInferenceService's main container args and re-apply "
                           "(step 5); the pods roll with the new spec.")
    out.append(CheckResult(f"prefix:{r.pod}", f"{r.pod} runs with {PREFIX_FLAG}", ok2, "; ".join(parts), fix2,
                           at=now, data={"block_size": r.block_size}))
    return out


def proof_check(entry: dict[str, Any] | None) -> CheckResult:
    title = "Cache proof (step 10)"
    if entry is None:
        return CheckResult("proof", title, None, "not run for this deployment yet",
                           "Run step 10 (cache routing and throughput).", at=time.time())
    p = entry.get("proof") or {}
    ok = bool(entry.get("proof_passed"))
    bits = [p.get("headline") or entry.get("headline") or ""]
    if p.get("hit_ratio") is not None:
        bits.append(f"hit ratio {p['hit_ratio']:.0%}")
    if p.get("test_replica"):
        bits.append(f"all repeats on {p['test_replica']}")
    if p.get("speedup"):
        bits.append(f"{p['speedup']:.2f}x faster warm")
    if p.get("block_size"):
        bits.append(f"block size {p['block_size']}")
    bits.append(f"at {entry.get('at')}")
    return CheckResult("proof", title, ok, "; ".join(b for b in bits if b),
                       "" if ok else "Fix what step 10 names, then run it again.", at=time.time(),
                       data={"stored": entry})


# --------------------------------------------------------------------------------------------
# the step
# --------------------------------------------------------------------------------------------


def run_identity(ctx: Any, on_result: Callable[[CheckResult], None] | None = None, *,
                 live: LiveState | None = None, per_replica_calls: bool = True) -> IdentityResult:
    """Run step 11 (blocking; call from a worker thread). Never raises for cluster problems."""
    t0 = time.perf_counter()
    started = now_iso()
    cfg = ctx.cfg
    checks: list[CheckResult] = []

    def add(c: CheckResult) -> None:
        checks.append(c)
        if on_result is not None:
            try:
                on_result(c)
            except Exception:  # noqa: BLE001
                pass

    def done(replicas: list[ReplicaIdentity], models: list[str], access: dict, entry: dict | None) -> IdentityResult:
        passed = bool(checks) and all(c.ok is not False for c in checks) and all(
            c.ok is True for c in checks if c.key.split(":")[0] in ("models", "model", "prefix", "proof"))
        bad = first_failure([c for c in checks if not c.key.startswith(("weights:", "kv:"))])
        headline = "model, prefix caching and cache proof confirmed on every replica" if passed else \
            (f"{bad.title}: {bad.evidence}" if bad else "not confirmed")
        return IdentityResult(started, now_iso(), round(time.perf_counter() - t0, 3), live.uid if live else None,
                              access, cfg.model, models, replicas, checks, entry, passed, headline)

    try:
        kube = ctx.kube()
        live = live or read_live(ctx, kube)
        kh = KubeHttp.from_session(kube, ctx.profile)
    except CloudError as e:
        add(CheckResult("cluster", "Cluster reachable", False, e.message, e.fix, at=time.time()))
        return done([], [], {}, None)
    if live.llmisvc is None:
        add(CheckResult("llmisvc", f"LLMInferenceService {cfg.service}", False, "not found",
                        "Deploy it in step 5.", at=time.time()))
        return done([], [], {}, None)

    # the service's models endpoint
    access: dict[str, Any] = {}
    models: list[str] = []
    try:
        acc = resolve_access(ctx, live, kube)
        access = acc.to_dict()
        with acc.client(15.0) as c:
            res = c.models()
        models = res.models
        add(CheckResult("models", f"Service serves {MODEL_ID}", res.ok,
                        (f"{acc.description}: HTTP {res.status} in {res.latency_ms:.0f} ms: {', '.join(res.models) or 'no models'}"
                         if res.status else f"{acc.description}: {res.error}"),
                        "" if res.ok else "Check step 9 first.", status=res.status, latency_ms=round(res.latency_ms, 1),
                        text=res.text, at=time.time(), data={"models": res.models}))
    except CloudError as e:
        add(CheckResult("models", f"Service serves {MODEL_ID}", False, e.message, e.fix, at=time.time()))

    replicas: list[ReplicaIdentity] = []
    ready = live.ready_pods
    if not ready:
        add(CheckResult("replicas", "Ready replicas", False, "no Ready vLLM replica", "Finish step 5 first.",
                        at=time.time()))
    for p in ready:
        try:
            ident = read_replica(ctx, kube, kh, p, metrics=per_replica_calls, models=per_replica_calls)
        except CloudError as e:
            add(CheckResult(f"model:{pod_name(p)}", f"{pod_name(p)} identity", False, e.message, e.fix,
                            at=time.time()))
            continue
        replicas.append(ident)
        for c in replica_checks(cfg, ident):
            add(c)
    entry = stored_result(ctx, live.uid)
    add(proof_check(entry))
    return done(replicas, models, access, entry)


def probe(ctx: Any) -> StepState:
    """DONE when every Ready replica's model and prefix-caching flag check out and a passing cache
    proof is stored for this deployment. Reads logs and pod specs only (no requests to the service)."""
    try:
        kube = ctx.kube()
        live = read_live(ctx, kube)
    except CloudError as e:
        if e.kind in ("not_found", "conflict"):
            return StepState(Status.NOT_STARTED, "No cluster yet", fix="Create it in step 2.")
        return from_error(e)
    if live.llmisvc is None or not live.ready_pods:
        return StepState(Status.NOT_STARTED, "Nothing serving yet", fix="Finish step 5 first.")
    kh = KubeHttp.from_session(kube, ctx.profile)
    checks: list[CheckResult] = []
    for p in live.ready_pods:
        ident = read_replica(ctx, kube, kh, p, metrics=False, models=False)
        checks += [c for c in replica_checks(ctx.cfg, ident) if c.key.startswith(("model:", "prefix:"))]
    proof = proof_check(stored_result(ctx, live.uid))
    data = {"checks": [c.to_dict() for c in checks + [proof]]}
    bad = next((c for c in checks if c.ok is False), None)
    if bad is not None:
        return StepState(Status.FAILED, f"{bad.title}: {bad.evidence}", fix=bad.fix, data=data)
    if proof.ok is None:
        return StepState(Status.NOT_STARTED, "Model and prefix caching confirmed; cache proof not run yet",
                         fix=proof.fix, data=data)
    if proof.ok is False:
        return StepState(Status.NOT_STARTED, f"Cache proof failed: {proof.evidence}", fix=proof.fix, data=data)
    return StepState(Status.DONE, f"{ctx.cfg.model_repo} with prefix caching on {len(live.ready_pods)} replicas; "
                     "cache proof passed", data=data)


__all__ = ["IdentityResult", "ReplicaIdentity", "has_prefix_flag", "parse_logs", "probe", "replica_checks",
           "run_identity"]
