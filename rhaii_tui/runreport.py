"""The whole deployment, for the PoC report: the 11 steps with their times, the versions running,
the cost, the failures met on the way, and the transcript.

Times come from the cloud (GKE operations, Kubernetes objects' creationTimestamps and condition
transition times), falling back to the transcript's entries for a step, so a report made after a
reconnect or from another machine still tells when each step ran. No textual here.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Iterable

log = logging.getLogger(__name__)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ts(value: Any) -> float | None:
    from .cloud.gke import parse_time

    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return parse_time(str(value))


def _created(obj: Any) -> float | None:
    if not isinstance(obj, dict):
        return None
    return _ts((obj.get("metadata") or {}).get("creationTimestamp"))


def _cond_time(obj: Any, ctype: str = "Ready") -> float | None:
    if not isinstance(obj, dict):
        return None
    for c in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == ctype and str(c.get("status")) == "True":
            return _ts(c.get("lastTransitionTime"))
    return None


def _span(times: Iterable[float | None]) -> tuple[float | None, float | None]:
    ts = [t for t in times if t is not None]
    return (min(ts), max(ts)) if ts else (None, None)


def _safe(fn: Any, default: Any = None) -> Any:
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - a report section the cloud could not tell stays empty
        log.info("report: %s", e)
        return default


def cloud_times(ctx: Any) -> dict[int, tuple[float | None, float | None]]:
    """Step -> (started, finished) from what the cloud keeps."""
    from . import manifests as m
    from .config import GATEWAY_NAME, GATEWAY_NAMESPACE, HF_SECRET_NAME, PULL_SECRET_NAME

    cfg = ctx.cfg
    out: dict[int, tuple[float | None, float | None]] = {}
    info = _safe(lambda: ctx.cluster())
    if info is None:
        return out
    ops = _safe(lambda: ctx.gke.list_operations(cfg.cluster, running_only=False), []) or []
    creates = [o for o in ops if o.op_type in ("CREATE_CLUSTER", "CREATE_NODE_POOL") and o.done and not o.failed]
    starts = [o.started_at for o in creates if o.started_at]
    ends = [t for t in (_ts(o.end_time) for o in creates) if t is not None]
    start = min(starts) if starts else _ts(info.create_time)
    end = max(ends) if ends else None
    out[2] = (start, end)
    kube = _safe(lambda: ctx.kube_or_none())
    if kube is None:
        return out
    get = lambda *a: _safe(lambda: kube.get(*a))  # noqa: E731
    ns = get("v1", "Namespace", cfg.namespace)
    secrets = [get("v1", "Secret", n, cfg.namespace) for n in (PULL_SECRET_NAME, HF_SECRET_NAME)]
    out[3] = _span([_created(ns)] + [_created(s) for s in secrets])
    crd = get("apiextensions.k8s.io/v1", "CustomResourceDefinition", "llminferenceservices.serving.kserve.io")
    gw = get("gateway.networking.k8s.io/v1", "Gateway", GATEWAY_NAME, GATEWAY_NAMESPACE)
    out[4] = (_span([_created(crd), _created(gw)])[0], _span([_cond_time(gw, "Programmed"), _created(gw)])[1])
    isvc = get(m.LLMISVC_API_VERSION, "LLMInferenceService", cfg.service, cfg.namespace)
    out[5] = (_created(isvc), _cond_time(isvc, "Ready"))
    efs = _safe(lambda: kube.list("networking.istio.io/v1alpha3", "EnvoyFilter", GATEWAY_NAMESPACE), []) or []
    out[7] = _span([_created(e) for e in efs])
    nps = _safe(lambda: kube.list("networking.k8s.io/v1", "NetworkPolicy", cfg.namespace), []) or []
    out[8] = _span([_created(p) for p in nps])
    return {k: v for k, v in out.items() if v != (None, None)}


def transcript_times(entries: Iterable[dict[str, Any]]) -> dict[int, tuple[float, float]]:
    out: dict[int, tuple[float, float]] = {}
    for e in entries:
        step = str(e.get("step") or "")
        head = step.split(".", 1)[0]
        if not head.isdigit():
            continue
        n, t0 = int(head), float(e.get("ts") or 0)
        t1 = t0 + float(e.get("duration_s") or 0)
        a, b = out.get(n, (t0, t1))
        out[n] = (min(a, t0), max(b, t1))
    return out


def versions(ctx: Any) -> dict[str, Any]:
    """What runs: GKE master/node, KServe and Istio (their controllers' images), the vLLM image with
    its digest where the cluster knows it, the model."""
    from . import manifests as m
    from .steps.cluster import TPU_SELECTOR

    cfg = ctx.cfg
    v: dict[str, Any] = {"gke_master": None, "gke_node": None, "kserve": None, "istio": None,
                         "vllm_image": cfg.image, "model": cfg.model}
    info = _safe(lambda: ctx.cluster())
    if info is not None:
        v["gke_master"] = info.master_version or None
    kube = _safe(lambda: ctx.kube_or_none()) if info is not None else None
    if kube is None:
        return v
    nodes = _safe(lambda: kube.list("v1", "Node", label_selector=TPU_SELECTOR), []) or \
        _safe(lambda: kube.list("v1", "Node"), []) or []
    for n in nodes:
        kv = ((n.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion")
        if kv:
            v["gke_node"] = kv
            break

    def image_of(ns: str, names: tuple[str, ...]) -> str | None:
        for d in _safe(lambda: kube.list("apps/v1", "Deployment", ns), []) or []:
            if (d.get("metadata") or {}).get("name") in names:
                cs = (((d.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
                if cs:
                    return cs[0].get("image")
        return None

    v["kserve"] = image_of("opendatahub", ("kserve-controller-manager",))
    v["istio"] = image_of("istio-system", ("istiod",))
    pods = _safe(lambda: kube.list("v1", "Pod", cfg.namespace,
                                   label_selector=m.label_selector(m.workload_labels(cfg.service))), []) or []
    for p in pods:
        for cs in (p.get("status") or {}).get("containerStatuses") or []:
            if cs.get("name") == "main" or len((p.get("status") or {}).get("containerStatuses") or []) == 1:
                v["vllm_image"] = cs.get("image") or v["vllm_image"]
                digest = str(cs.get("imageID") or "")
                if "@sha256:" in digest:
                    v["vllm_image_digest"] = "sha256:" + digest.split("@sha256:", 1)[1]
                break
        if "vllm_image_digest" in v:
            break
    return v


def deployment_report(ctx: Any, run: Any = None) -> dict[str, Any]:
    """The report's whole-deployment part: steps (the 11, with cloud times), versions, cost, failures,
    transcript."""
    from .spend import read_meter
    from .steps.registry import STEPS, probe_all

    entries = _safe(lambda: ctx.transcript.entries(), []) or []
    states = _safe(lambda: probe_all(ctx), {}) or {}
    cloud = _safe(lambda: cloud_times(ctx), {}) or {}
    tr = transcript_times(entries)
    if run is not None:
        checks_at = [c.at for c in (run.verify or []) if getattr(c, "at", None)]
        cloud[9] = (_ts(run.started_at), max(checks_at) if checks_at else _ts(run.finished_at))
        if run.performance is not None:
            cloud[10] = (_ts(run.performance.started_at), _ts(run.performance.finished_at))
        if run.identity is not None:
            cloud[11] = (_ts(run.identity.started_at), _ts(run.identity.finished_at))
    steps = []
    failures = []
    for e in STEPS:
        st = states.get(e.number)
        a, b = cloud.get(e.number, (None, None))
        ta, tb = tr.get(e.number, (None, None))
        a, b = a if a is not None else ta, b if b is not None else tb
        steps.append({"number": e.number, "title": e.title, "status": st.status.value if st else "unknown",
                      "summary": st.summary if st else "", "started_at": _iso(a), "finished_at": _iso(b),
                      "duration_s": round(max(0.0, b - a), 1) if a is not None and b is not None else None})
        if st is not None and st.status.value == "failed":
            failures.append({"step": e.number, "what": st.summary, "fix": st.fix, "source": "state now"})
    for en in entries:
        if not en.get("ok"):
            failures.append({"step": en.get("step"), "what": f"{en.get('command')}: {en.get('outcome')}",
                             "fix": "", "at": en.get("time"), "source": "transcript"})
    meter = _safe(lambda: read_meter(ctx))
    cost = meter.to_dict() if meter is not None else {"per_day_usd": 0.0, "spent_usd": 0.0, "since": ""}
    return {"steps": steps, "versions": _safe(lambda: versions(ctx), {}) or {}, "cost": cost,
            "failures": failures, "transcript": entries}


def markdown(d: dict[str, Any]) -> list[str]:
    """The Markdown sections for the deployment part."""
    L: list[str] = ["## The deployment, step by step", "",
                    "| step | status | started | finished | duration |", "|---|---|---|---|---|"]
    for s in d.get("steps") or []:
        dur = "–" if s.get("duration_s") is None else f"{s['duration_s']:.0f} s"
        L.append(f"| {s['number']}. {s['title']} | {s['status']} | {s.get('started_at') or '–'} | "
                 f"{s.get('finished_at') or '–'} | {dur} |")
    L.append("")
    v = d.get("versions") or {}
    if v:
        L += ["## Versions", "", "| component | version |", "|---|---|"]
        L += [f"| {k} | {val if val is not None else '–'} |" for k, val in v.items()]
        L.append("")
    c = d.get("cost") or {}
    if c:
        L += ["## Cost", "", f"${float(c.get('spent_usd') or 0):,.2f} spent since {c.get('since') or '–'}; "
              f"≈ ${float(c.get('per_day_usd') or 0):,.2f}/day now.", ""]
    if d.get("failures"):
        L += ["## Failures met on the way", ""]
        L += [f"- step {f.get('step')}: {f.get('what')}" + (f" Fix: {f['fix']}" if f.get("fix") else "")
              for f in d["failures"]]
        L.append("")
    if d.get("transcript"):
        L += ["## Transcript (every change, with its command)", "", "```"]
        L += [f"{e.get('time')} [{e.get('step')}] {'ok' if e.get('ok') else 'FAILED'}: {e.get('command')}"
              for e in d["transcript"]]
        L += ["```", ""]
    return L


__all__ = ["deployment_report", "versions", "cloud_times", "transcript_times", "markdown"]
