"""Step 4: the operators (cert-manager, Istio, KServe, LWS) and the inference gateway.

- `operator_rows(pods, gateways, now, time_scale)` and `crd_rows(crds)`: pure functions over listed
  objects (dicts or client models), so the screen can feed them from watches. Each row is waiting /
  progressing / ready / failed, with pods ready counts and age.
- `collect(session)` lists what the rows need; `view(ctx)` = collect + rows; `probe(ctx)` -> StepState
  (done when every operator is ready, the gateway has an address and the CRDs exist).
- `OperatorWatch(ctx)`: list-watch of the operator namespaces and the gateway for the live pane (the
  CRDs read until all are Established, then when operator pods come or go and every 5 minutes);
  `view()` any time, cheap.
- `install(ctx, installer_dir, on_line)`: starts the install through the connection profile
  (`profile.install_operators`): in real mode it streams the upstream installer's output
  (`make deploy-all` in a rhaii-on-xks checkout) line by line; in the simulated cloud there is
  nothing to run.
- `TROUBLESHOOTING`: the guide's texts for operator pods not starting and a gateway without address.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..cloud.gke import CloudError
from ..cloud.profile import CredentialsError, OperatorInstall, cluster_key
from ..config import GATEWAY_NAME, GATEWAY_NAMESPACE
from ..guide import step as guide_step
from .base import Status, StepState
from .podlife import Stage, as_dict, classify, fmt_duration, to_epoch

log = logging.getLogger(__name__)

READY, PROGRESSING, WAITING, FAILED = "ready", "progressing", "waiting", "failed"
GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"
CRD_API_VERSION = "apiextensions.k8s.io/v1"
GATEWAY_ADDRESS_WAIT = 180.0  # guide: "wait 2-3 minutes for the GCP load balancer"


@dataclass(frozen=True)
class OperatorSpec:
    key: str
    label: str
    namespace: str
    selector: str  # "k=v[,k=v]" as the guide checks it

    @property
    def labels(self) -> dict[str, str]:
        out = {}
        for part in self.selector.split(","):
            k, _, v = part.partition("=")
            out[k.strip()] = v.strip()
        return out


OPERATORS: tuple[OperatorSpec, ...] = (
    OperatorSpec("cert-manager", "cert-manager", "cert-manager", "app.kubernetes.io/instance=cert-manager"),
    OperatorSpec("istiod", "Istio control plane (istiod)", "istio-system", "app=istiod"),
    OperatorSpec("kserve", "KServe controller", GATEWAY_NAMESPACE, "control-plane=kserve-controller-manager"),
    OperatorSpec("lws", "LeaderWorkerSet operator", "openshift-lws-operator", "name=openshift-lws-operator"),
    OperatorSpec("gateway", f"Inference gateway ({GATEWAY_NAME})", GATEWAY_NAMESPACE,
                 f"gateway.networking.k8s.io/gateway-name={GATEWAY_NAME}"),
)
OPERATOR_NAMESPACES: tuple[str, ...] = tuple(dict.fromkeys(o.namespace for o in OPERATORS))


@dataclass(frozen=True)
class CrdSpec:
    key: str
    label: str
    names: tuple[str, ...]  # any of them will do (inference pools exist in two API groups)


CRDS: tuple[CrdSpec, ...] = (
    CrdSpec("llminferenceservices", "llminferenceservices.serving.kserve.io",
            ("llminferenceservices.serving.kserve.io",)),
    CrdSpec("gateways", "gateways.gateway.networking.k8s.io", ("gateways.gateway.networking.k8s.io",)),
    CrdSpec("httproutes", "httproutes.gateway.networking.k8s.io", ("httproutes.gateway.networking.k8s.io",)),
    CrdSpec("inferencepools", "inferencepools (inference.networking.k8s.io or .x-k8s.io)",
            ("inferencepools.inference.networking.k8s.io", "inferencepools.inference.networking.x-k8s.io")),
    CrdSpec("envoyfilters", "envoyfilters.networking.istio.io", ("envoyfilters.networking.istio.io",)),
    CrdSpec("leaderworkersets", "leaderworkersets.leaderworkerset.x-k8s.io",
            ("leaderworkersets.leaderworkerset.x-k8s.io",)),
)

TROUBLESHOOTING: dict[str, dict[str, Any]] = {
    "operator-pods": {
        "title": "Operator pods not starting",
        "text": ("Common causes: image pull errors (check the pull secret in the operator's namespace), "
                 "pending pods (not enough node resources), webhook conflicts (a previous installation not "
                 "cleaned up). Read the pod's log and events; if a previous install is in the way, uninstall "
                 "and install again from the rhaii-on-xks checkout."),
        "commands": [
            "kubectl logs -n NAMESPACE POD",
            "kubectl describe pod -n NAMESPACE POD",
            "kubectl get secret -n NAMESPACE rhaiis-pull-secret",
            "kubectl top nodes",
            "cd rhaii-on-xks && make uninstall-all && make deploy-all",
        ],
    },
    "gateway-address": {
        "title": "Gateway has no address",
        "text": ("The gateway gets its address from a Google Cloud load balancer: wait 2-3 minutes. If it "
                 "stays without one, read its status conditions, check the project's load-balancer quotas "
                 "and that firewall rules allow ports 80/443."),
        "commands": [
            f"kubectl describe gateway {GATEWAY_NAME} -n {GATEWAY_NAMESPACE}",
            f"kubectl get gateway {GATEWAY_NAME} -n {GATEWAY_NAMESPACE} -o jsonpath='{{.status.addresses}}'",
        ],
    },
}


# --- rows (pure) --------------------------------------------------------------------------------


@dataclass
class OperatorRow:
    key: str
    label: str
    namespace: str
    selector: str
    state: str  # waiting | progressing | ready | failed
    pods_ready: int = 0
    pods_total: int = 0
    age_seconds: float | None = None  # guide seconds since the oldest pod (gateway: the Gateway object)
    detail: str = ""
    address: str | None = None  # gateway only
    problem_pods: list[str] = field(default_factory=list)
    troubleshooting: str | None = None  # key into TROUBLESHOOTING

    @property
    def ready_text(self) -> str:
        return f"{self.pods_ready}/{self.pods_total}"

    @property
    def age_text(self) -> str:
        return fmt_duration(self.age_seconds)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "namespace": self.namespace, "selector": self.selector,
                "state": self.state, "pods_ready": self.pods_ready, "pods_total": self.pods_total,
                "age_seconds": self.age_seconds, "detail": self.detail, "address": self.address,
                "problem_pods": list(self.problem_pods), "troubleshooting": self.troubleshooting}


@dataclass
class CrdRow:
    key: str
    label: str
    state: str  # waiting | progressing | ready
    name: str | None = None  # the CRD found

    @property
    def present(self) -> bool:
        return self.name is not None

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "state": self.state, "name": self.name}


def _labels_match(labels: Mapping[str, str] | None, want: Mapping[str, str]) -> bool:
    labels = labels or {}
    return all(labels.get(k) == v for k, v in want.items())


def gateway_address(gw: Mapping | None) -> str | None:
    for a in ((gw or {}).get("status") or {}).get("addresses") or []:
        if a.get("value"):
            return str(a["value"])
    return None


def _condition(obj: Mapping, ctype: str) -> Mapping | None:
    for c in ((obj.get("status") or {}).get("conditions") or []):
        if c.get("type") == ctype:
            return c
    return None


def operator_rows(pods: Iterable[Any], gateways: Iterable[Any] = (), *, now: float | None = None,
                  time_scale: float = 1.0) -> list[OperatorRow]:
    """One row per operator from the pods of the operator namespaces and the Gateway objects."""
    now = time.time() if now is None else now
    pods = [as_dict(p) for p in pods]
    gws = [as_dict(g) for g in gateways]
    gw = next((g for g in gws if (g.get("metadata") or {}).get("name") == GATEWAY_NAME
               and (g.get("metadata") or {}).get("namespace", GATEWAY_NAMESPACE) == GATEWAY_NAMESPACE), None)
    rows = []
    for spec in OPERATORS:
        mine = [p for p in pods
                if (p.get("metadata") or {}).get("namespace") == spec.namespace
                and _labels_match((p.get("metadata") or {}).get("labels"), spec.labels)
                and not (p.get("metadata") or {}).get("deletionTimestamp")
                and (p.get("status") or {}).get("phase") not in ("Succeeded",)]
        lives = [classify(p, now=now, time_scale=time_scale) for p in mine]
        ready = sum(1 for lf in lives if lf.stage is Stage.READY)
        failed = [lf for lf in lives if lf.stage.is_failure]
        created = [t for t in (to_epoch((p.get("metadata") or {}).get("creationTimestamp")) for p in mine) if t]
        age = max(0.0, (now - min(created)) * time_scale) if created else None
        row = OperatorRow(spec.key, spec.label, spec.namespace, spec.selector, WAITING,
                          pods_ready=ready, pods_total=len(mine), age_seconds=age)
        if failed:
            row.state = FAILED
            row.problem_pods = [f"{lf.name}: {lf.status_text}" for lf in failed]
            row.detail = "; ".join(row.problem_pods)
            row.troubleshooting = "operator-pods"
        elif mine and ready == len(mine):
            row.state = READY
            row.detail = f"{ready}/{len(mine)} pods ready"
        elif mine:
            row.state = PROGRESSING
            slow = [lf for lf in lives if lf.stage is not Stage.READY]
            row.detail = ", ".join(f"{lf.name}: {lf.status_text}" for lf in slow[:3])
            if any(lf.severity == "red" for lf in slow):
                row.troubleshooting = "operator-pods"
        else:
            row.detail = "no pods yet"
        if spec.key == "gateway":
            _gateway_row(row, gw, now, time_scale)
        rows.append(row)
    return rows


def _gateway_row(row: OperatorRow, gw: Mapping | None, now: float, time_scale: float) -> None:
    if gw is None:
        if row.state == READY:
            row.state = PROGRESSING
        if row.state != FAILED:
            row.detail = f"Gateway {GATEWAY_NAMESPACE}/{GATEWAY_NAME} not created yet"
        return
    created = to_epoch((gw.get("metadata") or {}).get("creationTimestamp"))
    if created is not None:
        row.age_seconds = max(0.0, (now - created) * time_scale)
    row.address = gateway_address(gw)
    programmed = _condition(gw, "Programmed") or {}
    if row.address and row.state == READY:
        row.detail = f"address {row.address}"
        return
    if row.state == FAILED:
        return
    if row.state == WAITING and not row.address:
        row.state = PROGRESSING  # the Gateway exists: its pods and address are on their way
    if not row.address:
        row.state = PROGRESSING
        reason = programmed.get("reason") or ""
        msg = programmed.get("message") or ""
        row.detail = "no address yet" + (f" (Programmed={programmed.get('status')}: {reason} {msg})".rstrip()
                                         if programmed else "")
        if row.age_seconds is not None and row.age_seconds > GATEWAY_ADDRESS_WAIT:
            row.troubleshooting = "gateway-address"
    elif row.state != READY:
        row.detail = f"address {row.address}; " + row.detail


def crd_rows(crds: Iterable[Any]) -> list[CrdRow]:
    """One row per CRD the guide needs (inference pools: either group)."""
    by_name = {}
    for c in crds:
        c = as_dict(c)
        name = (c.get("metadata") or {}).get("name")
        if name:
            by_name[name] = c
    rows = []
    for spec in CRDS:
        found = next((n for n in spec.names if n in by_name), None)
        if found is None:
            rows.append(CrdRow(spec.key, spec.label, WAITING))
            continue
        est = _condition(by_name[found], "Established")
        state = READY if est is None or str(est.get("status")) == "True" else PROGRESSING
        rows.append(CrdRow(spec.key, spec.label, state, found))
    return rows


@dataclass
class OperatorsView:
    rows: list[OperatorRow]
    crds: list[CrdRow]

    @property
    def all_ready(self) -> bool:
        return all(r.state == READY for r in self.rows) and all(c.state == READY for c in self.crds)

    @property
    def gateway(self) -> OperatorRow:
        return next(r for r in self.rows if r.key == "gateway")

    @property
    def gateway_address(self) -> str | None:
        return self.gateway.address

    def state(self) -> StepState:
        return summarize(self)

    def to_dict(self) -> dict[str, Any]:
        return {"operators": [r.to_dict() for r in self.rows], "crds": [c.to_dict() for c in self.crds],
                "gateway_address": self.gateway_address, "all_ready": self.all_ready}


def build_view(pods: Iterable[Any], crds: Iterable[Any], gateways: Iterable[Any] = (), *,
               now: float | None = None, time_scale: float = 1.0) -> OperatorsView:
    return OperatorsView(operator_rows(pods, gateways, now=now, time_scale=time_scale), crd_rows(crds))


def summarize(view: OperatorsView) -> StepState:
    rows, crds = view.rows, view.crds
    data = view.to_dict()
    n_ready = sum(1 for r in rows if r.state == READY)
    missing = [c.label for c in crds if c.state != READY]
    if view.all_ready:
        return StepState(Status.DONE, f"All {len(rows)} operators ready, {len(crds)} CRDs present, "
                                      f"gateway at {view.gateway_address}.", data=data)
    failed = [r for r in rows if r.state == FAILED]
    if failed:
        t = TROUBLESHOOTING["operator-pods"]
        return StepState(Status.FAILED, f"{failed[0].label}: {failed[0].detail}",
                         detail="\n".join(f"{r.label}: {r.detail}" for r in failed),
                         fix=t["text"], data=data)
    started = any(r.pods_total for r in rows) or any(c.present for c in crds)
    if not started:
        return StepState(Status.NOT_STARTED, "The operators are not installed yet.",
                         fix="Run the install (rhaii-on-xks: make deploy-all).", data=data)
    waiting = [r.label for r in rows if r.state != READY]
    summary = f"{n_ready}/{len(rows)} operators ready"
    if missing:
        summary += f"; CRDs missing: {', '.join(missing)}"
    if waiting:
        summary += f"; waiting for {', '.join(waiting)}"
    gw = view.gateway
    fix = TROUBLESHOOTING["gateway-address"]["text"] if gw.troubleshooting == "gateway-address" else ""
    if any(r.troubleshooting == "operator-pods" for r in rows):
        fix = TROUBLESHOOTING["operator-pods"]["text"]
    return StepState(Status.IN_PROGRESS, summary + ".", detail="\n".join(f"{r.label}: {r.detail}" for r in rows
                                                                         if r.state != READY), fix=fix, data=data)


# --- live data ----------------------------------------------------------------------------------


@dataclass
class OperatorEvidence:
    pods: list[dict]
    crds: list[dict]
    gateways: list[dict]


def collect(session: Any) -> OperatorEvidence:
    """List the operator pods (per namespace and selector), the CRDs the guide needs and the Gateway.
    Raises CloudError."""
    pods: list[dict] = []
    seen: set[str] = set()
    for spec in OPERATORS:
        for p in session.list("v1", "Pod", spec.namespace, label_selector=spec.selector):
            uid = (p.get("metadata") or {}).get("uid") or id(p)
            if uid not in seen:
                seen.add(uid)
                pods.append(p)
    crds = []
    for spec in CRDS:
        for name in spec.names:
            c = session.get(CRD_API_VERSION, "CustomResourceDefinition", name)
            if c is not None:
                crds.append(c)
                break
    gateways = []
    gw = session.get(GATEWAY_API_VERSION, "Gateway", GATEWAY_NAME, GATEWAY_NAMESPACE)
    if gw is not None:
        gateways.append(gw)
    return OperatorEvidence(pods, crds, gateways)


def time_scale_of(ctx: Any) -> float:
    """Guide seconds per wall second for this connection (real cloud 1.0). The profile says."""
    profile = getattr(ctx, "profile", ctx)
    try:
        v = float(getattr(profile, "time_scale", 1.0) or 1.0)
    except (TypeError, ValueError):
        v = 1.0
    return v if v > 0 else 1.0


def view(ctx: Any, *, now: float | None = None) -> OperatorsView:
    """The rows from the live cluster. Raises CloudError."""
    ev = collect(ctx.kube())
    return build_view(ev.pods, ev.crds, ev.gateways, now=now, time_scale=time_scale_of(ctx))


def probe(ctx: Any) -> StepState:
    """Step 4's state from the live cluster."""
    try:
        session = ctx.kube_or_none()
        if session is None:
            return StepState(Status.NOT_STARTED, "The cluster is not ready yet (step 2).")
        ev = collect(session)
    except CloudError as e:
        return StepState(Status.FAILED, e.message, fix=e.fix, data={"error_kind": e.kind})
    return summarize(build_view(ev.pods, ev.crds, ev.gateways, time_scale=time_scale_of(ctx)))


def commands(ctx: Any) -> list[str]:
    return guide_step(4).commands(ctx.cfg)


# --- the live pane -----------------------------------------------------------------------------


class OperatorWatch:
    """Watches the operator namespaces' pods and the Gateway (list-watch-relist), checks the CRDs.
    `view()` computes the rows from the local cache (cheap; call it on a timer). `on_change()` is
    called (from watcher threads) after each change; keep it light (post a message).

    API budget (benchmarks/api_efficiency.py, <= 2 requests a minute per kind on a steady cluster):
    the four namespace pod watches re-open every WATCH_SECONDS (not every minute), and the CRDs are
    read every `crd_interval` only while one is missing or not yet Established; once all are
    (they are not deleted in normal operation) every `crd_steady_interval`, and at once (at most every
    `crd_interval`) when an operator pod appears or goes away or a pod watch re-lists after losing
    the cluster: an uninstall or a re-install shows within seconds without polling. Watching the CRDs
    instead would mean listing every CRD of the cluster with its schema (megabytes on a real cluster)
    for six names."""

    WATCH_SECONDS = 240  # client-go's reflectors ask for 5-10 minutes; the server may close sooner

    def __init__(self, ctx: Any, on_change: Callable[[], None] | None = None,
                 on_state: Callable[[str, str], None] | None = None, crd_interval: float = 5.0,
                 crd_steady_interval: float = 300.0) -> None:
        self.ctx = ctx
        self.on_change = on_change
        self.on_state = on_state
        self.crd_interval = crd_interval
        self.crd_steady_interval = max(crd_interval, crd_steady_interval)
        self._watchers: list[Any] = []
        self._crds: list[dict] = []
        self._stop = threading.Event()
        self._crd_thread: threading.Thread | None = None
        self._crd_wake = threading.Event()  # an operator pod came or went: read the CRDs again now
        self._listed: set[str] = set()  # pod watches past their first list
        self.crd_reads = 0  # how many times the CRDs were read (each read: one GET per CRD name tried)
        self.states: dict[str, str] = {}

    def start(self) -> "OperatorWatch":
        from ..cloud.kube import ListWatcher

        session = self.ctx.kube()
        for ns in OPERATOR_NAMESPACES:
            self._watchers.append(ListWatcher(session.core.list_namespaced_pod, namespace=ns,
                                              on_event=self._pod_event_cb(ns), on_state=self._state_cb(f"pods:{ns}"),
                                              watch_timeout=self.WATCH_SECONDS, name=f"operators-{ns}").start())
        self._watchers.append(ListWatcher(
            session.custom.list_namespaced_custom_object,
            args=("gateway.networking.k8s.io", "v1", GATEWAY_NAMESPACE, "gateways"),
            on_event=self._changed, on_state=self._state_cb("gateway"), watch_timeout=self.WATCH_SECONDS,
            name="operators-gateway").start())
        self._crd_thread = threading.Thread(target=self._poll_crds, daemon=True, name="operators-crds")
        self._crd_thread.start()
        return self

    def stop(self, join_timeout: float = 0.3) -> None:
        """Stop watching. Watch threads are daemons: a stream blocked in a read ends on its own."""
        self._stop.set()
        self._crd_wake.set()
        for w in self._watchers:
            w.stop(join=False)
        deadline = time.monotonic() + join_timeout
        for w in self._watchers:
            w.stop(join=True, timeout=max(0.0, deadline - time.monotonic()))

    def _state_cb(self, name: str) -> Callable[[str], None]:
        def cb(state: str) -> None:
            self.states[name] = state
            if self.on_state is not None:
                self.on_state(name, state)
        return cb

    def _changed(self, _ev: Any = None) -> None:
        if self.on_change is not None:
            self.on_change()

    def _pod_event_cb(self, ns: str) -> Callable[[Any], None]:
        def cb(ev: Any) -> None:
            etype = getattr(ev, "type", "")
            if etype == "RESYNC" and ns not in self._listed:
                self._listed.add(ns)  # the first list: the CRD thread reads them anyway
            elif etype in ("ADDED", "DELETED", "RESYNC"):
                self._crd_wake.set()  # install, uninstall, or back after losing the cluster
            self._changed(ev)
        return cb

    @staticmethod
    def _crd_signature(crds: list[dict]) -> list[tuple[str, str]]:
        return [(r.key, r.state) for r in crd_rows(crds)]

    def _poll_crds(self) -> None:
        while not self._stop.is_set():
            self._crd_wake.clear()
            read_at = time.monotonic()
            try:
                session = self.ctx.kube()
                found = []
                for spec in CRDS:
                    for name in spec.names:
                        c = session.get(CRD_API_VERSION, "CustomResourceDefinition", name)
                        if c is not None:
                            found.append(c)
                            break
                self.crd_reads += 1
                changed = self._crd_signature(found) != self._crd_signature(self._crds)
                self._crds = found
                self.states["crds"] = "live"
                if changed:
                    self._changed()
            except CloudError as e:
                self.states["crds"] = f"reconnecting ({e.message[:80]})"
            except Exception as e:  # noqa: BLE001 - never die in a pane thread
                self.states["crds"] = f"reconnecting ({e.__class__.__name__})"
            # steady: every CRD there and Established (a CRD present but not yet Established is still
            # awaited at the short interval)
            steady = self.states.get("crds") == "live" and all(r.state == READY for r in crd_rows(self._crds))
            self._crd_wake.wait(self.crd_steady_interval if steady else self.crd_interval)
            if self._stop.is_set():
                return
            # woken early by an operator pod change: still at most one read per crd_interval
            rest = self.crd_interval - (time.monotonic() - read_at)
            if rest > 0 and self._stop.wait(rest):
                return

    def view(self, now: float | None = None) -> OperatorsView:
        pods, gateways = [], []
        for w in self._watchers[:-1]:
            pods.extend(w.snapshot().values())
        if self._watchers:
            gateways = list(self._watchers[-1].snapshot().values())
        dicts = self._as_dicts(pods + gateways)
        pods, gateways = dicts[:len(pods)], dicts[len(pods):]
        return build_view(pods, self._crds, gateways, now=now, time_scale=time_scale_of(self.ctx))

    def _as_dicts(self, objs: list[Any]) -> list[dict]:
        """as_dict of each object, serialized once per object: a watch replaces an object when it
        changes (never edits it), so the once-a-second view of a quiet cluster costs no serialization."""
        cache = getattr(self, "_dict_cache", {})
        fresh: dict[int, tuple[Any, dict]] = {}
        out = []
        for o in objs:
            hit = cache.get(id(o))
            d = hit[1] if hit is not None and hit[0] is o else as_dict(o)
            fresh[id(o)] = (o, d)
            out.append(d)
        self._dict_cache = fresh
        return out


# --- the install action ------------------------------------------------------------------------


@dataclass
class InstallResult:
    started: bool
    message: str
    exit_code: int | None = None  # when a command ran
    command: list[str] | None = None


_HAS_KILLPG = hasattr(os, "killpg")
STOP_GRACE_SECONDS = 5.0
"""After SIGTERM, how long the installer's process group gets before SIGKILL."""


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member changed its user: it is still there
        return True
    return True


def stop_process_group(proc: subprocess.Popen, grace: float = STOP_GRACE_SECONDS) -> None:
    """Stop a command started in its own session and everything it started: SIGTERM to the whole
    group, SIGKILL to what is left after `grace` seconds."""
    import signal

    if not _HAS_KILLPG:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
        return
    pgid = proc.pid  # a session leader's pid is its group's id
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        proc.poll()  # reap the leader: a zombie still counts as a member of the group
        if not _group_alive(pgid):
            return
        time.sleep(0.05)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.poll()


def run_streaming(command: Sequence[str], on_line: Callable[[str], None], *, cwd: str | None = None,
                  env: Mapping[str, str] | None = None, stop: threading.Event | None = None,
                  batch_seconds: float = 0.05, grace: float = STOP_GRACE_SECONDS) -> int:
    """Run a command, sending each output line (stdout and stderr merged) to `on_line`; returns
    the exit code (-1 when stopped, 127 when it cannot start). Never raises for the command's
    own failures. `stop` ends the command and every process it started (its process group:
    SIGTERM, then SIGKILL after `grace` seconds)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    try:
        # its own session and process group: Stop reaches make and everything it started
        proc = subprocess.Popen(list(command), cwd=cwd, env=full_env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                                bufsize=1, errors="replace", start_new_session=_HAS_KILLPG)
    except (OSError, ValueError) as e:
        on_line(f"cannot start {' '.join(command)}: {e}")
        return 127
    stopped = threading.Event()

    def watch_stop() -> None:
        if stop is None:
            return
        while proc.poll() is None:
            if stop.wait(0.2):
                stopped.set()
                stop_process_group(proc, grace)
                return

    threading.Thread(target=watch_stop, daemon=True, name="installer-stop").start()
    assert proc.stdout is not None
    for line in proc.stdout:
        try:
            on_line(line.rstrip("\n"))
        except Exception:  # noqa: BLE001
            log.exception("on_line callback failed")
    code = proc.wait()
    return -1 if stopped.is_set() else code


def installer_kubeconfig(ctx: Any, directory: str | None = None) -> str | None:
    """A kubeconfig (0600, no credentials in it) that points the upstream installer at exactly
    this wizard's cluster: its endpoint and CA, authenticated by gke-gcloud-auth-plugin as
    `gcloud container clusters get-credentials` would. None when the cluster is unknown."""
    import tempfile

    try:
        info = ctx.cluster()
    except CloudError:
        return None
    if info is None or not info.endpoint:
        return None
    cfg = ctx.cfg
    name = f"gke_{cfg.project}_{cfg.zone}_{cfg.cluster}"
    server = info.endpoint if info.endpoint.startswith("https://") else f"https://{info.endpoint}"
    cluster: dict[str, Any] = {"server": server}
    if info.ca_cert_b64:
        cluster["certificate-authority-data"] = info.ca_cert_b64
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": name, "cluster": cluster}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "users": [{"name": name, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "gke-gcloud-auth-plugin",
            "provideClusterInfo": True, "interactiveMode": "IfAvailable",
            "installHint": "Install gke-gcloud-auth-plugin: gcloud components install gke-gcloud-auth-plugin"}}}],
    }
    import json

    fd, path = tempfile.mkstemp(prefix="rhaii-tui-kubeconfig-", suffix=".yaml", dir=directory)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)  # JSON is YAML
    os.chmod(path, 0o600)
    return path


def install(ctx: Any, installer_dir: str | None = None, on_line: Callable[[str], None] | None = None, *,
            stop: threading.Event | None = None) -> InstallResult:
    """Start the operator install (idempotent: does nothing when step 4 is already done).

    Real mode: runs the upstream installer from `installer_dir` (a rhaii-on-xks checkout) and
    streams its output to `on_line`, blocking until it ends (run it in a worker). Simulated cloud:
    the profile starts the install cluster-side and this returns at once; follow progress with
    `probe`/`OperatorWatch`."""
    say = on_line or (lambda _l: None)
    state = probe(ctx)
    if state.status is Status.DONE:
        say("Operators already installed and ready: nothing to do.")
        return InstallResult(False, "Operators already installed and ready.")
    cfg = ctx.cfg
    key = cluster_key(cfg.project, cfg.zone, cfg.cluster)
    try:
        op: OperatorInstall = ctx.profile.install_operators(key, installer_dir)
    except CredentialsError as e:
        raise CloudError("not_found" if "checkout" in str(e) else "credentials", str(e),
                         "Point the wizard at a rhaii-on-xks checkout, or run the commands in the commands "
                         "panel yourself.") from None
    if not op.command:
        msg = op.message or "Operator install started."
        say(msg)
        return InstallResult(True, msg)
    env = dict(op.env)
    kubeconfig = None
    if "KUBECONFIG" not in env:
        kubeconfig = installer_kubeconfig(ctx)
        if kubeconfig:
            env["KUBECONFIG"] = kubeconfig
            say(f"Installing into {cfg.cluster} ({cfg.zone}, project {cfg.project}) only.")
    say(f"$ {' '.join(op.command)}  (in {op.cwd or '.'})")
    started = time.monotonic()
    try:
        code = run_streaming(op.command, say, cwd=op.cwd, env=env, stop=stop)
    finally:
        if kubeconfig:
            try:
                os.unlink(kubeconfig)
            except OSError:
                pass
    took = fmt_duration(time.monotonic() - started)
    if code == 0:
        say(f"installer finished: exit 0 after {took}")
        msg = "The installer finished; waiting for the operators to become ready."
    elif code == -1:
        say(f"installer stopped after {took}")
        msg = "The installer was stopped."
    else:
        say(f"installer failed: exit {code} after {took}")
        msg = f"The installer exited with code {code}; its output above says why."
    say(msg)
    return InstallResult(True, msg, exit_code=code, command=list(op.command))


def wait_ready(ctx: Any, timeout: float, *, poll: float = 2.0, stop: threading.Event | None = None,
               on_state: Callable[[StepState], None] | None = None) -> StepState:
    """Probe until done, failed, stopped or `timeout` wall seconds (headless `apply`)."""
    deadline = time.monotonic() + timeout
    while True:
        st = probe(ctx)
        if on_state is not None:
            on_state(st)
        if st.status in (Status.DONE, Status.FAILED) or time.monotonic() >= deadline:
            return st
        if stop is not None and stop.wait(poll):
            return st
        if stop is None:
            time.sleep(poll)


def run(ctx: Any, on_line: Callable[[str], None] | None = None, *, stop: threading.Event | None = None,
        timeout: float | None = None, installer_dir: str | None = None, poll: float = 1.0) -> StepState:
    """Headless step 4: install (when not done) and wait until ready, failed, stopped or `timeout`
    wall seconds (default: twice the guide's 10 minutes at this connection's time scale)."""
    say = on_line or (lambda _l: None)
    st = probe(ctx)
    if st.status is Status.DONE:
        say(st.summary)
        return st
    try:
        install(ctx, installer_dir, say, stop=stop)
    except CloudError as e:
        return StepState(Status.FAILED, e.message, fix=e.fix, data={"error_kind": e.kind})
    if timeout is None:
        timeout = max(2 * 600.0 / time_scale_of(ctx), 30.0)
    last = [""]

    def report(s: StepState) -> None:
        if s.summary != last[0]:
            last[0] = s.summary
            say(s.summary)

    return wait_ready(ctx, timeout, poll=poll, stop=stop, on_state=report)


__all__ = ["run", "OPERATORS", "CRDS", "TROUBLESHOOTING", "OperatorRow", "CrdRow", "OperatorsView", "operator_rows",
           "crd_rows", "build_view", "summarize", "collect", "view", "probe", "commands", "OperatorWatch",
           "install", "run_streaming", "wait_ready", "InstallResult", "gateway_address", "time_scale_of"]
