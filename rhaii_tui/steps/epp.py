"""Step 6: the Istio sidecar in the EPP scheduler pod.

WHY (one sentence for the screen): the gateway calls the EPP scheduler over Istio mTLS, so the EPP
pod needs its own istio-proxy sidecar; without it the ext_proc call fails and requests are not
routed by cache affinity.

- `needs_patch(deployment)` / `patch(ctx)`: strategic-merge patch of `<svc>-kserve-router-scheduler`'s
  pod template label `sidecar.istio.io/inject=true`; idempotent (no patch when the label is there).
- `follow_rollout(ctx, on_update, timeout)`: watches the EPP pods (by the EPP labels) while the old
  pod terminates and the new one starts, until a pod is Ready 2/2 with istio-proxy; on timeout it
  returns a FAILED StepState with a diagnosis (never hangs).
- `probe(ctx)` / `assess(deployment, pods)`: done when the label is set and an EPP pod is 2/2.
- The Deployment is KServe's: a KServe upgrade or a change of its scheduler template replaces the
  pod template and drops the label. `label_removed(...)` notices it (an earlier ReplicaSet of the
  same Deployment had the label, or the wizard remembers patching this Deployment, state key
  `epp_label_applied` = its uid) and the probe says so: FAILED, re-applying step 6 restores it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from .. import manifests as m
from ..cloud.gke import CloudError
from ..config import DeployConfig
from ..guide import step as guide_step
from .base import Status, StepState
from .diagnose import Diagnosis
from .operators import time_scale_of
from .podlife import PodLife, PodTable, RowDiff, Stage, as_dict, classify, fmt_duration

WHY = ("The gateway calls the EPP scheduler over Istio mTLS, so the EPP pod needs its own istio-proxy "
       "sidecar; without it the ext_proc call fails and requests are not routed by cache affinity.")
INJECT_LABEL = "sidecar.istio.io/inject"
PROXY_CONTAINER = "istio-proxy"
EXPECTED_ROLLOUT_SECONDS = 120.0  # the guide's kubectl wait --timeout=120s (guide seconds)


def deployment_name(cfg: DeployConfig) -> str:
    return m.epp_deployment_name(cfg.service)


def epp_selector(cfg: DeployConfig) -> str:
    return m.label_selector(m.epp_labels(cfg.service))


LABEL_MEMORY_KEY = "epp_label_applied"  # state file: uid of the Deployment step 6 labelled


def _template_labels(obj: Mapping) -> Mapping:
    return (((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}


def label_removed(deployment: Any, replicasets: Iterable[Any] = (), remembered_uid: str | None = None) -> bool:
    """The label is not on the Deployment's pod template now, but it was on this Deployment before:
    one of its (older) ReplicaSets carries it, or the wizard remembers labelling this Deployment."""
    dep = as_dict(deployment)
    if not needs_patch(dep):
        return False
    uid = (dep.get("metadata") or {}).get("uid")
    if uid and remembered_uid == uid:
        return True
    for rs in replicasets:
        rs = as_dict(rs)
        owners = (rs.get("metadata") or {}).get("ownerReferences") or []
        if uid and not any(o.get("uid") == uid for o in owners):
            continue
        if str(_template_labels(rs).get(INJECT_LABEL, "")).lower() == "true":
            return True
    return False


PATCH_BODY = {"spec": {"template": {"metadata": {"labels": {INJECT_LABEL: "true"}}}}}


def needs_patch(deployment: Any) -> bool:
    dep = as_dict(deployment)
    labels = ((((dep.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {})
    return str(labels.get(INJECT_LABEL, "")).lower() != "true"


def has_sidecar(pod: Mapping) -> bool:
    spec = pod.get("spec") or {}
    names = [c.get("name") for c in (spec.get("containers") or [])] + \
        [c.get("name") for c in (spec.get("initContainers") or []) if c.get("restartPolicy") == "Always"]
    return PROXY_CONTAINER in names


def patch(ctx: Any) -> bool:
    """Add the injection label to the EPP deployment's pod template. True when it patched, False
    when the label was already there. Raises CloudError (not_found before step 5)."""
    cfg = ctx.cfg
    session = ctx.kube()
    name = deployment_name(cfg)
    dep = session.get("apps/v1", "Deployment", name, cfg.namespace)
    if dep is None:
        raise CloudError("not_found", f"Deployment {name} does not exist in {cfg.namespace}.",
                         "Deploy the LLMInferenceService first (step 5): KServe creates the EPP scheduler.")
    uid = (dep.get("metadata") or {}).get("uid")
    if not needs_patch(dep):
        _remember(ctx, uid)
        return False
    info = session.resource("apps/v1", "Deployment")
    try:
        session.request("PATCH", info.path(cfg.namespace, name), body=PATCH_BODY,
                        content_type="application/strategic-merge-patch+json")
    except Exception as e:  # noqa: BLE001
        from ..cloud.kube import kube_error

        raise kube_error(e, f"patch deployment {name}") from None
    _remember(ctx, uid)
    return True


def _remember(ctx: Any, uid: str | None) -> None:
    record = getattr(ctx, "record", None)
    if uid and record is not None and (getattr(ctx, "saved", lambda: {})() or {}).get(LABEL_MEMORY_KEY) != uid:
        record(**{LABEL_MEMORY_KEY: uid})


def commands(ctx: Any) -> list[str]:
    return guide_step(6).commands(ctx.cfg)


# --- the decision (pure) -------------------------------------------------------------------------


@dataclass
class EppPod:
    name: str
    life: PodLife
    sidecar: bool
    terminating: bool

    @property
    def done(self) -> bool:
        return self.sidecar and not self.terminating and self.life.stage is Stage.READY

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.life.status_text, "ready": self.life.ready_text,
                "sidecar": self.sidecar, "terminating": self.terminating,
                "seconds_in_stage": self.life.seconds_in_stage}


def epp_pods(pods: Iterable[Any], *, now: float | None = None, time_scale: float = 1.0) -> list[EppPod]:
    out = []
    for p in pods:
        p = as_dict(p)
        life = classify(p, now=now, time_scale=time_scale)
        out.append(EppPod(life.name, life, has_sidecar(p), bool((p.get("metadata") or {}).get("deletionTimestamp"))))
    return sorted(out, key=lambda e: (e.terminating, e.name))


def diagnose_rollout(cfg: DeployConfig, pods: list[EppPod], waited: float | None = None) -> Diagnosis:
    """Why the EPP pod is not 2/2 (after the timeout)."""
    ns, dep = cfg.namespace, deployment_name(cfg)
    cmds_common = (f"kubectl get pods -n {ns} -l {epp_selector(cfg)}",
                   f"kubectl describe deployment {dep} -n {ns}")
    evidence = tuple(f"{p.name}: {p.life.status_text} {p.life.ready_text}"
                     f"{' (terminating)' if p.terminating else ''}{'' if p.sidecar else ' (no istio-proxy)'}"
                     for p in pods) or ("no EPP pod",)
    waited_txt = f" after {fmt_duration(waited)}" if waited is not None else ""
    current = [p for p in pods if not p.terminating]
    failed = [p for p in current if p.life.stage.is_failure]
    if failed:
        p = failed[0]
        return Diagnosis("epp-pod-failed", f"The EPP pod {p.name} is in {p.life.status_text}{waited_txt}",
                         evidence, "Read the pod's events and the failing container's log; an image pull error "
                         "on istio-proxy means the mesh's proxy image cannot be pulled.",
                         (f"kubectl describe pod {p.name} -n {ns}",
                          f"kubectl logs {p.name} -n {ns} -c {PROXY_CONTAINER}") + cmds_common, "error", p.name)
    if not current:
        return Diagnosis("epp-no-pod", f"No EPP pod is running{waited_txt}", evidence,
                         "The deployment has no pod: check its events and the KServe controller.",
                         cmds_common, "error")
    with_sidecar = [p for p in current if p.sidecar]
    if not with_sidecar:
        return Diagnosis(
            "epp-no-sidecar", f"The EPP pod has no istio-proxy sidecar{waited_txt}", evidence,
            "The pod template carries the label but Istio did not inject the sidecar: check that istiod is "
            "running (step 4) and that Istio CNI is installed (kubectl get daemonset -n istio-system "
            "istio-cni-node); then restart the deployment. If the label is gone from the template, the "
            "KServe controller reverted it: patch again.",
            (f"kubectl get deployment {dep} -n {ns} -o jsonpath='{{.spec.template.metadata.labels}}'",
             "kubectl get pods -n istio-system -l app=istiod",
             f"kubectl rollout restart deployment/{dep} -n {ns}") + cmds_common, "error")
    p = with_sidecar[0]
    if p.life.stage is Stage.PENDING:
        return Diagnosis("epp-pending", f"The new EPP pod {p.name} is Pending{waited_txt}", evidence,
                         "The scheduler cannot place it (the default node pool may be full): read its events.",
                         (f"kubectl describe pod {p.name} -n {ns} | tail -20",) + cmds_common, "error", p.name)
    return Diagnosis(
        "epp-proxy-not-ready", f"The EPP pod {p.name} is {p.life.ready_text} Ready{waited_txt}", evidence,
        "istio-proxy is not ready: it cannot get its configuration from istiod (a NetworkPolicy must allow "
        "istio-system on 15012), or the scheduler container is still starting. Read both containers' logs.",
        (f"kubectl logs {p.name} -n {ns} -c {PROXY_CONTAINER} --tail=20",
         f"kubectl logs {p.name} -n {ns} -c main --tail=20") + cmds_common, "error", p.name)


def assess(cfg: DeployConfig, deployment: Any, pods: Iterable[Any], *, now: float | None = None,
           time_scale: float = 1.0, removed: bool = False) -> StepState:
    """`removed`: the label was on this Deployment before (see label_removed)."""
    if deployment is None:
        return StepState(Status.NOT_STARTED, f"Deployment {deployment_name(cfg)} does not exist yet.",
                         fix="Deploy the LLMInferenceService first (step 5).")
    eps = epp_pods(pods, now=now, time_scale=time_scale)
    data = {"pods": [e.to_dict() for e in eps], "labelled": not needs_patch(deployment), "why": WHY}
    if needs_patch(deployment) and removed:
        data["label_removed"] = True
        return StepState(Status.FAILED, f"The label {INJECT_LABEL}=true was removed from {deployment_name(cfg)}'s "
                                        "pod template (KServe replaced the template, e.g. on an upgrade).",
                         detail="The EPP pods lose their istio-proxy sidecar on the next rollout: the gateway's "
                                "ext_proc call fails and requests are no longer routed by cache affinity.",
                         fix="Apply step 6 again: it re-adds the label and restores the sidecar.", data=data)
    if needs_patch(deployment):
        return StepState(Status.NOT_STARTED, f"Sidecar injection is not enabled on {deployment_name(cfg)}.",
                         fix="Apply step 6 (adds the pod template label sidecar.istio.io/inject=true).", data=data)
    done = [e for e in eps if e.done]
    if done:
        old = [e for e in eps if e.terminating]
        extra = f" ({len(old)} old pod(s) terminating)" if old else ""
        return StepState(Status.DONE, f"EPP pod {done[0].name} Ready {done[0].life.ready_text} with istio-proxy{extra}.",
                         data=data)
    failed = [e for e in eps if not e.terminating and e.life.stage.is_failure]
    if failed:
        d = diagnose_rollout(cfg, eps)
        return StepState(Status.FAILED, d.title, detail=d.text(), fix=d.fix, data=data)
    desc = ", ".join(f"{e.name} {e.life.status_text} {e.life.ready_text}"
                     + (" terminating" if e.terminating else "") for e in eps) or "no pod yet"
    return StepState(Status.IN_PROGRESS, f"Rolling out the EPP with its sidecar: {desc}.", data=data)


def probe(ctx: Any) -> StepState:
    cfg = ctx.cfg
    try:
        session = ctx.kube_or_none()
        if session is None:
            return StepState(Status.NOT_STARTED, "The cluster is not ready yet (step 2).")
        dep = session.get("apps/v1", "Deployment", deployment_name(cfg), cfg.namespace)
        pods = session.list("v1", "Pod", cfg.namespace, label_selector=epp_selector(cfg)) if dep else []
        removed = False
        if dep is not None and needs_patch(dep):
            remembered = (getattr(ctx, "saved", lambda: {})() or {}).get(LABEL_MEMORY_KEY)
            rsets = [] if remembered and remembered == (dep.get("metadata") or {}).get("uid") else \
                session.list("apps/v1", "ReplicaSet", cfg.namespace, label_selector=epp_selector(cfg))
            removed = label_removed(dep, rsets, remembered)
    except CloudError as e:
        return StepState(Status.FAILED, e.message, fix=e.fix, data={"error_kind": e.kind})
    return assess(cfg, dep, pods, time_scale=time_scale_of(ctx), removed=removed)


# --- the action with its live rollout ------------------------------------------------------------


def _done_after_patch(st: StepState, patched: bool, waited: float) -> StepState:
    """What the action did, in the words of a done rollout: 'patch applied, rollout finished', or
    that the label was already there (nothing was changed)."""
    if patched:
        summary = f"Patch applied; the rollout finished in {fmt_duration(waited)}: {st.summary}"
    else:
        summary = f"The label was already set (nothing patched): {st.summary}"
    return StepState(st.status, summary, detail=st.detail, fix=st.fix, data={**st.data, "patched": patched})


def follow_rollout(ctx: Any, on_update: Callable[[list[RowDiff], StepState], None] | None = None, *,
                   timeout: float | None = None, stop: threading.Event | None = None,
                   time_scale: float | None = None, action: Callable[[], Any] | None = None) -> StepState:
    """Watch the EPP pods until one is Ready 2/2 with istio-proxy (DONE), a pod fails (FAILED), `stop`
    is set (the last state), or `timeout` wall seconds pass (FAILED with a diagnosis).
    `on_update(diffs, state)` runs on the watcher thread after each change (row diffs for the pane).
    Default timeout: the guide's 120 s (scaled by the connection's time scale), at least 30 s of wall time.
    `action` (the patch) runs once the watch has listed, so the pane sees the whole rollout: the old
    pod terminating and the new one starting."""
    from ..cloud.kube import ListWatcher

    cfg = ctx.cfg
    ts_ = time_scale_of(ctx) if time_scale is None else time_scale
    if timeout is None:
        timeout = max(EXPECTED_ROLLOUT_SECONDS * 1.5 / ts_, 30.0)
    session = ctx.kube()
    table = PodTable(time_scale=ts_)
    lock = threading.Lock()
    changed = threading.Event()
    latest: dict[str, Any] = {"state": None}

    def on_event(ev: Any) -> None:
        with lock:
            diffs = table.apply_watch_event(ev)
            state = assess(cfg, latest["dep"], table.pods(), time_scale=ts_)
            latest["state"] = state
        if on_update is not None:
            try:
                on_update(diffs, state)
            except Exception:  # noqa: BLE001
                pass
        changed.set()

    try:
        latest["dep"] = session.get("apps/v1", "Deployment", deployment_name(cfg), cfg.namespace)
    except CloudError as e:
        return StepState(Status.FAILED, e.message, fix=e.fix, data={"error_kind": e.kind})
    if latest["dep"] is None:
        return assess(cfg, None, [])
    if action is not None and needs_patch(latest["dep"]):
        # judge what the watch shows as patched: the patch is about to be sent, and events of the
        # rollout may arrive before its answer does
        dep = as_dict(latest["dep"])
        tpl = dict((dep.get("spec") or {}).get("template") or {})
        md = dict(tpl.get("metadata") or {})
        md["labels"] = {**(md.get("labels") or {}), INJECT_LABEL: "true"}
        latest["dep"] = {**dep, "spec": {**(dep.get("spec") or {}), "template": {**tpl, "metadata": md}}}
    listed = threading.Event()

    def on_event_first(ev: Any) -> None:
        on_event(ev)
        if getattr(ev, "type", "") == "RESYNC":
            listed.set()

    watcher = ListWatcher(session.core.list_namespaced_pod, namespace=cfg.namespace,
                          label_selector=epp_selector(cfg), on_event=on_event_first, name="epp-rollout").start()
    started = time.monotonic()
    patched: bool | None = None  # the action's answer: True patched, False the label was already there
    deadline = started + timeout
    try:
        if action is not None:
            listed.wait(min(10.0, timeout))
            try:
                patched = bool(action())
                latest["dep"] = session.get("apps/v1", "Deployment", deployment_name(cfg), cfg.namespace)
            except CloudError as e:
                return StepState(Status.FAILED, e.message, fix=e.fix, data={"error_kind": e.kind})
            with lock:
                latest["state"] = assess(cfg, latest["dep"], table.pods(), time_scale=ts_)
        while True:
            st = latest["state"]
            if st is not None and st.status is Status.DONE and patched is not None:
                return _done_after_patch(st, patched, (time.monotonic() - started) * ts_)
            if st is not None and st.status in (Status.DONE, Status.FAILED):
                return st
            if stop is not None and stop.is_set():
                return st or probe(ctx)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            changed.wait(min(0.25, remaining))
            changed.clear()
    finally:
        watcher.stop(join=False)
    with lock:
        eps = epp_pods(table.pods(), time_scale=ts_)
        data = (latest["state"].data if latest["state"] is not None else {})
    d = diagnose_rollout(cfg, eps, waited=(time.monotonic() - started) * ts_)
    return StepState(Status.FAILED, d.title, detail=d.text(), fix=d.fix, data={**data, "diagnosis": d.to_dict()})


def apply(ctx: Any, on_update: Callable[[list[RowDiff], StepState], None] | None = None, *,
          timeout: float | None = None, stop: threading.Event | None = None) -> StepState:
    """Patch (when needed) and follow the rollout to 2/2. Blocking: run it in a worker."""
    return follow_rollout(ctx, on_update, timeout=timeout, stop=stop, action=lambda: patch(ctx))


def run(ctx: Any, on_line: Callable[[str], None] | None = None, *, stop: threading.Event | None = None,
        timeout: float | None = None) -> StepState:
    """Headless step 6: patch when needed and follow the rollout to 2/2 (or a diagnosis)."""
    say = on_line or (lambda _l: None)
    say(WHY)
    last = [""]

    def update(_diffs: list[RowDiff], s: StepState) -> None:
        if s.summary != last[0]:
            last[0] = s.summary
            say(s.summary)

    try:
        st = apply(ctx, update, timeout=timeout, stop=stop)
    except CloudError as e:
        return StepState(Status.FAILED, e.message, fix=e.fix, data={"error_kind": e.kind})
    if st.summary != last[0]:
        say(st.summary)
    if st.status is Status.FAILED and st.detail:
        say(st.detail)
    return st


__all__ = ["run", "WHY", "PATCH_BODY", "needs_patch", "label_removed", "LABEL_MEMORY_KEY", "has_sidecar", "patch",
           "follow_rollout", "apply", "probe",
           "assess", "epp_pods", "diagnose_rollout", "deployment_name", "epp_selector", "commands", "EppPod"]
