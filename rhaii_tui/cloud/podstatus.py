"""A pod's STATUS and READY as `kubectl get pods` shows them, from the pod as a JSON dict.

The same rules as kubectl's printer (k8s.io/kubernetes pkg/printers/internalversion printPod):
the first unfinished init container gives `Init:N/M` or `Init:<reason>`; otherwise the last
container with a waiting/terminated reason gives it (ContainerCreating, ImagePullBackOff,
CrashLoopBackOff, Error, ...); a deleting pod shows `Terminating`; else the phase (Pending,
Running, ...). Used by the emulator's server-side tables and by the wizard's pod panes, so both
show what the user would see in `kubectl get pods`. Pure functions over dicts: no client objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class PodSummary:
    status: str
    ready: int
    total: int
    restarts: int
    last_restart: str | None  # RFC 3339 finishedAt of the latest restart, if any


def _restartable_init(c: Obj | None) -> bool:
    return bool(c) and c.get("restartPolicy") == "Always"


def _cond_true(pod_status: Obj, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True" for c in pod_status.get("conditions") or [])


def _later(a: str | None, b: str | None) -> str | None:
    if not b:
        return a
    if not a:
        return b
    return b if b > a else a  # RFC 3339 "Z" timestamps sort lexically


def pod_summary(pod: Obj) -> PodSummary:
    spec = pod.get("spec") or {}
    st = pod.get("status") or {}
    md = pod.get("metadata") or {}
    containers = spec.get("containers") or []
    init_containers = spec.get("initContainers") or []
    total = len(containers)
    ready = 0
    restarts = 0
    sidecar_restarts = 0
    last_restart: str | None = None
    sidecar_last_restart: str | None = None

    phase = st.get("phase") or "Pending"
    reason = st.get("reason") or phase
    for c in st.get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_by_name = {c.get("name"): c for c in init_containers}
    total += sum(1 for c in init_containers if _restartable_init(c))

    initializing = False
    n_init = len(init_containers)
    for i, cs in enumerate(st.get("initContainerStatuses") or []):
        count = int(cs.get("restartCount") or 0)
        restarts += count
        last_term = ((cs.get("lastState") or {}).get("terminated")) or None
        if last_term:
            last_restart = _later(last_restart, last_term.get("finishedAt"))
        sidecar = _restartable_init(init_by_name.get(cs.get("name")))
        if sidecar:
            sidecar_restarts += count
            if last_term:
                sidecar_last_restart = _later(sidecar_last_restart, last_term.get("finishedAt"))
        state = cs.get("state") or {}
        term = state.get("terminated")
        waiting = state.get("waiting")
        if term and int(term.get("exitCode") or 0) == 0:
            continue
        if sidecar and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if term:
            if not term.get("reason"):
                if term.get("signal"):
                    reason = f"Init:Signal:{term['signal']}"
                else:
                    reason = f"Init:ExitCode:{int(term.get('exitCode') or 0)}"
            else:
                reason = "Init:" + term["reason"]
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{n_init}"
        initializing = True
        break

    if not initializing or _cond_true(st, "Initialized"):
        restarts = sidecar_restarts
        last_restart = sidecar_last_restart
        has_running = False
        for cs in reversed(st.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            last_term = ((cs.get("lastState") or {}).get("terminated")) or None
            if last_term:
                last_restart = _later(last_restart, last_term.get("finishedAt"))
            state = cs.get("state") or {}
            waiting, term = state.get("waiting"), state.get("terminated")
            if waiting and waiting.get("reason"):
                reason = waiting["reason"]
            elif term and term.get("reason"):
                reason = term["reason"]
            elif term:
                if term.get("signal"):
                    reason = f"Signal:{term['signal']}"
                else:
                    reason = f"ExitCode:{int(term.get('exitCode') or 0)}"
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _cond_true(st, "Ready") else "NotReady"

    if md.get("deletionTimestamp") and st.get("reason") == "NodeLost":
        reason = "Unknown"
    elif md.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return PodSummary(reason, ready, total, restarts, last_restart)


def pod_display_status(pod: Obj) -> str:
    """The STATUS column of `kubectl get pods` (e.g. Running, Init:0/1, ContainerCreating)."""
    return pod_summary(pod).status


def pod_ready_counts(pod: Obj) -> tuple[int, int]:
    """(ready, total) as in the READY column `1/1`."""
    s = pod_summary(pod)
    return s.ready, s.total
