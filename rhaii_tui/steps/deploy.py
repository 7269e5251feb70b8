"""Step 5: the LLMInferenceService with prefix caching, and its pods through the guide's lifecycle.

- `rendered(cfg)` / `rendered_yaml(cfg)`: the object and its YAML, for the preview pane.
- `apply(ctx)`: server-side apply of the LLMInferenceService (and the health HTTPRoute): idempotent.
  The health route's backend is the InferencePool KServe created, in the API group it created it
  in (3.4.0-ea.1: inference.networking.x-k8s.io/v1alpha2, ea.2: inference.networking.k8s.io/v1):
  `kserve_pools(session, cfg)` lists both groups, `apply_health_route` waits for the pool and
  points the route at it.
- `probe(ctx)`: done when the LLMInferenceService is Ready=True and N workload pods are 1/1 on N
  distinct TPU nodes; in progress with a summary like "2/3 pods ready, replica 3 compiling for
  4m"; failed with the diagnosis (steps/diagnose.py) when a pod is in a failure state or cannot be
  scheduled for a reason that will not fix itself.
- `assess(...)`: the same decision as a pure function over listed objects (the screen feeds it from
  its watches).
- `DeployWatch(ctx)`: the live pane's model: watches the workload pods, their events, the TPU nodes
  and the LLMInferenceService, follows each pod's storage-initializer and vLLM logs; keeps a
  `PodTable` (row diffs for the widget), per-pod milestones and last log lines, and `diagnoses()`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from .. import manifests as m
from ..cloud.gke import CloudError
from ..config import DeployConfig
from ..guide import step as guide_step
from .base import Status, StepState
from .diagnose import TPU_LABEL, TPU_VALUE, Diagnosis, diagnose_pod
from .operators import time_scale_of
from .podlife import (INIT_CONTAINER, MAIN_CONTAINER, MilestoneTracker, PodLife, PodTable, RowDiff,
                      Stage, as_dict, classify, fmt_duration, pod_key, split_timestamp, to_epoch)

log = logging.getLogger(__name__)

LOG_TAIL = 40  # lines kept per container for the diagnosis and the log pane
# Diagnoses that will not resolve by waiting: the step is FAILED until the user acts.
BLOCKING_CAUSES = frozenset({"no-tpu-node", "too-few-nodes", "taint", "node-selector", "tpu-in-use",
                             "hf-token", "egress", "model-not-found", "init-failed", "pull-secret",
                             "image-not-found", "vllm-error", "liveness-kill", "vllm-crash", "pod-failed"})


# --- the manifest -------------------------------------------------------------------------------


def rendered(cfg: DeployConfig) -> dict[str, Any]:
    """The LLMInferenceService the wizard applies (raises ValueError on an invalid config)."""
    return m.llmisvc(cfg)


def rendered_yaml(cfg: DeployConfig) -> str:
    return m.render_all(cfg)["llminferenceservice.yaml"]


def workload_selector(cfg: DeployConfig) -> str:
    return m.label_selector(m.workload_labels(cfg.service))


POOL_WAIT_SECONDS = 30.0  # wall seconds apply waits for KServe to create the InferencePool


def apply(ctx: Any, *, health_route: bool = True, pool_wait: float = POOL_WAIT_SECONDS) -> list[str]:
    """Server-side apply of the LLMInferenceService (and the health HTTPRoute, once KServe has
    created the InferencePool it points at: up to `pool_wait` wall seconds). Idempotent: applying
    the same config again changes nothing. Returns what was applied. Raises CloudError."""
    cfg = ctx.cfg
    try:
        obj = rendered(cfg)
    except ValueError as e:
        raise CloudError("unknown", str(e), "Fix the configuration (step configure), then apply again.") from None
    session = ctx.kube()
    session.apply(obj, obj["metadata"].get("namespace") or cfg.namespace)
    done = [f"{obj['kind']}/{obj['metadata']['name']}"]
    if health_route:
        done.append(apply_health_route(ctx, session, wait=pool_wait))
    return done


def _owned_by_service(obj: Mapping, cfg: DeployConfig) -> bool:
    return any(o.get("kind") == "LLMInferenceService" and o.get("name") == cfg.service
               for o in (obj.get("metadata") or {}).get("ownerReferences") or [])


def kserve_pools(session: Any, cfg: DeployConfig) -> list[tuple[str, str, dict[str, Any]]]:
    """(group, version, pool) of every InferencePool in the namespace that the LLMInferenceService
    owns, over both InferencePool APIs (a group the cluster does not serve is skipped)."""
    out = []
    for group, version in m.INFERENCE_POOL_APIS.items():
        try:
            items = session.list(f"{group}/{version}", "InferencePool", cfg.namespace)
        except CloudError as e:
            if e.kind == "not_found":
                continue
            raise
        out += [(group, version, p) for p in items if _owned_by_service(p, cfg)]
    return out


def served_pool_groups(session: Any) -> list[str]:
    """The InferencePool API groups the cluster serves."""
    out = []
    for group, version in m.INFERENCE_POOL_APIS.items():
        try:
            session.resource(f"{group}/{version}", "InferencePool")
        except CloudError as e:
            if e.kind == "not_found":
                continue
            raise
        out.append(group)
    return out


def kserve_pool_group(session: Any, cfg: DeployConfig) -> str | None:
    """The API group of the InferencePool KServe created for the service (None: none yet). With a
    pool in each group (left over by an upgrade), the one KServe's own route points at."""
    pools = kserve_pools(session, cfg)
    groups = [g for g, _v, p in pools if (p.get("metadata") or {}).get("name") == m.inference_pool_name(cfg.service)] \
        or [g for g, _v, _p in pools]
    if len(groups) > 1:
        route = session.get(m.HTTPROUTE_API_VERSION, "HTTPRoute", m.route_name(cfg.service), cfg.namespace) or {}
        named = {b.get("group") for r in (route.get("spec") or {}).get("rules") or []
                 for b in r.get("backendRefs") or [] if b.get("kind") == "InferencePool"}
        groups = [g for g in groups if g in named] or groups
    return groups[0] if groups else None


def apply_health_route(ctx: Any, session: Any = None, *, wait: float = 0.0, poll: float = 0.5) -> str:
    """Apply the health HTTPRoute pointing at the InferencePool KServe created (its group), waiting
    up to `wait` wall seconds for the pool. Returns what happened (one line). Raises CloudError."""
    cfg = ctx.cfg
    session = session or ctx.kube()
    name = m.health_route_name(cfg.service)
    deadline = time.monotonic() + wait
    while True:
        group = kserve_pool_group(session, cfg)
        if group is not None or time.monotonic() >= deadline:
            break
        time.sleep(poll)
    if group is None:
        return (f"HTTPRoute/{name} not applied yet: KServe has not created InferencePool "
                f"{m.inference_pool_name(cfg.service)} (looked in {' and '.join(m.INFERENCE_POOL_APIS)}); "
                "apply step 5 again once the service is Ready")
    obj = m.health_route(cfg, pool_group=group)
    session.apply(obj, cfg.namespace)
    return f"HTTPRoute/{name} (to InferencePool {group}/{m.INFERENCE_POOL_APIS[group]})"


def commands(ctx: Any) -> list[str]:
    return guide_step(5).commands(ctx.cfg)


# --- the decision (pure) -------------------------------------------------------------------------


def _conditions(obj: Mapping | None) -> dict[str, Mapping]:
    return {c.get("type"): c for c in (((obj or {}).get("status") or {}).get("conditions") or [])}


def llmisvc_ready(obj: Mapping | None) -> tuple[bool, str]:
    """(Ready=True?, the Ready condition's reason/message)."""
    c = _conditions(obj).get("Ready")
    if not c:
        return False, "no Ready condition yet"
    ok = str(c.get("status")) == "True"
    why = " ".join(x for x in (c.get("reason") or "", c.get("message") or "") if x)
    return ok, why


@dataclass
class DeployAssessment:
    state: StepState
    lives: list[PodLife]
    diagnoses: list[Diagnosis]
    replica_names: dict[str, int]  # pod name -> replica number (1-based, by creation)


def _phase_words(life: PodLife, mt: MilestoneTracker | None) -> str:
    st = life.stage
    if st is Stage.PENDING:
        return "waiting for a TPU node"
    if st is Stage.INIT:
        return "downloading the model"
    if st is Stage.POD_INITIALIZING:
        return "starting its container"
    if st is Stage.STARTING:
        if mt is not None and mt.compiling:
            return "compiling"
        if mt is not None and mt.done:
            return "waiting for readiness"
        if mt is not None and mt.last is not None:
            return "loading the model"
        return "starting vLLM"
    if st is Stage.TERMINATING:
        return "terminating"
    return st.value


def assess(cfg: DeployConfig, isvc: Mapping | None, pods: Iterable[Any], *, nodes: Sequence[Any] = (),
           events: Iterable[Any] = (), logs_by_pod: Mapping[str, Any] | None = None,
           milestones_by_pod: Mapping[str, MilestoneTracker] | None = None,
           now: float | None = None, time_scale: float = 1.0) -> DeployAssessment:
    """Step 5's state from listed objects. `logs_by_pod`: {pod name: {container: [lines]}}."""
    now = time.time() if now is None else now
    isvc = as_dict(isvc) if isvc is not None else None
    pods = [as_dict(p) for p in pods]
    nodes = [as_dict(n) for n in nodes]
    events = [as_dict(e) for e in events]
    want = int(cfg.replicas)
    if isvc is None:
        st = StepState(Status.NOT_STARTED, f"LLMInferenceService {cfg.service} is not deployed yet.",
                       fix="Apply it (step 5). The operators (step 4) must be ready first.")
        return DeployAssessment(st, [], [], {})
    current = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    current.sort(key=lambda p: (to_epoch((p.get("metadata") or {}).get("creationTimestamp")) or 0,
                                (p.get("metadata") or {}).get("name", "")))
    replica_of = {(p.get("metadata") or {}).get("name", ""): i + 1 for i, p in enumerate(current)}
    lives = [classify(p, now=now, time_scale=time_scale) for p in current]
    ms = milestones_by_pod or {}
    if not ms and logs_by_pod:
        built = {}
        for name, logs in logs_by_pod.items():
            mt = MilestoneTracker(time_scale=time_scale)
            lines = logs.get(MAIN_CONTAINER, []) if isinstance(logs, Mapping) else logs
            mt.feed_many(lines, ts=0.0)
            built[name] = mt
        ms = built
    diags: list[Diagnosis] = []
    for p, life in zip(current, lives):
        d = diagnose_pod(p, events, (logs_by_pod or {}).get(life.name), nodes, cfg, now=now,
                         time_scale=time_scale, milestones=ms.get(life.name), life=life)
        if d is not None:
            diags.append(d)
    tpu_nodes = {(n.get("metadata") or {}).get("name") for n in nodes
                 if ((n.get("metadata") or {}).get("labels") or {}).get(TPU_LABEL) == TPU_VALUE}
    ready_lives = [lf for lf in lives if lf.stage is Stage.READY]
    ready_nodes = {lf.node for lf in ready_lives if lf.node and (not nodes or lf.node in tpu_nodes)}
    svc_ready, why = llmisvc_ready(isvc)
    data: dict[str, Any] = {
        "llmisvc_ready": svc_ready, "llmisvc_reason": why, "pods_ready": len(ready_lives), "pods_wanted": want,
        "pods": [{"name": lf.name, "replica": replica_of.get(lf.name), "stage": lf.stage.value,
                  "status": lf.status_text, "ready": lf.ready_text, "restarts": lf.restarts, "node": lf.node,
                  "seconds_in_stage": lf.seconds_in_stage, "severity": lf.severity} for lf in lives],
        "diagnoses": [d.to_dict() for d in diags],
        "distinct_tpu_nodes": len(ready_nodes),
    }
    if svc_ready and len(ready_lives) >= want and len(ready_nodes) >= want:
        st = StepState(Status.DONE, f"{cfg.service} Ready: {len(ready_lives)}/{want} pods 1/1 on "
                                    f"{len(ready_nodes)} TPU nodes.", data=data)
        return DeployAssessment(st, lives, diags, replica_of)
    life_of = {lf.name: lf for lf in lives}
    # chips held by a pod on its way out (a rolling update) free up by themselves: only blocking
    # once the wait is longer than the guide's Pending range
    blocking = [d for d in diags if d.cause in BLOCKING_CAUSES
                and not (d.cause == "tpu-in-use" and getattr(life_of.get(d.pod), "severity", "red") == "ok")]
    # a failure state is always a failure; a Pending cause only when nothing else is progressing
    if blocking:
        d = blocking[0]
        more = f" (+{len(blocking) - 1} more)" if len(blocking) > 1 else ""
        st = StepState(Status.FAILED, d.title + more, detail="\n\n".join(x.text() for x in blocking),
                       fix=d.fix, data=data)
        return DeployAssessment(st, lives, diags, replica_of)
    parts = [f"{len(ready_lives)}/{want} pods ready"]
    for life in lives:
        if life.stage is Stage.READY:
            continue
        words = _phase_words(life, ms.get(life.name))
        parts.append(f"replica {replica_of.get(life.name)} {words} for {fmt_duration(life.seconds_in_stage)}")
    if len(current) < want:
        parts.append(f"{want - len(current)} pod(s) not created yet")
    if len(ready_lives) >= want and not svc_ready:
        parts.append(f"LLMInferenceService not Ready yet ({why})")
    elif len(ready_lives) >= want and len(ready_nodes) < want:
        parts.append(f"ready pods share nodes ({len(ready_nodes)} distinct TPU nodes)")
    warn = [d for d in diags if d not in blocking]
    st = StepState(Status.IN_PROGRESS, ", ".join(parts) + ".",
                   detail="\n\n".join(d.text() for d in warn), fix=warn[0].fix if warn else "", data=data)
    return DeployAssessment(st, lives, diags, replica_of)


# --- live -----------------------------------------------------------------------------------------


def redactor(ctx: Any) -> Callable[[str], str]:
    """Masks the secret values the user entered (memory only) in log lines shown as evidence."""
    from ..cloud.kube import scrub

    try:
        values = [v for v in ctx.secrets.values() if v]
    except Exception:  # noqa: BLE001 - no secrets entered in this session
        values = []
    if not values:
        return lambda line: line
    return lambda line: scrub(line, values)


def _tail_logs(session: Any, ns: str, pod: str, container: str, *, previous: bool = False,
               tail: int = LOG_TAIL) -> list[str]:
    """Last lines of a container's log; [] when it has none (not started, gone)."""
    try:
        text = session.core.read_namespaced_pod_log(pod, ns, container=container, tail_lines=tail,
                                                    previous=previous, _request_timeout=15)
    except Exception:  # noqa: BLE001 - logs are evidence, not a requirement
        return []
    return str(text or "").splitlines()


def _logs_for(session: Any, life: PodLife) -> dict[str, list[str]] | None:
    """The log evidence a pod's diagnosis needs (only for pods that may need one)."""
    ns, name = life.namespace, life.name
    if life.stage in (Stage.INIT_CRASHLOOP, Stage.INIT_ERROR):
        lines = _tail_logs(session, ns, name, INIT_CONTAINER, previous=True) or \
            _tail_logs(session, ns, name, INIT_CONTAINER)
        return {INIT_CONTAINER: lines}
    if life.stage is Stage.CRASHLOOP:
        return {MAIN_CONTAINER: _tail_logs(session, ns, name, MAIN_CONTAINER, previous=True)
                or _tail_logs(session, ns, name, MAIN_CONTAINER)}
    if life.stage is Stage.STARTING:
        return {MAIN_CONTAINER: _tail_logs(session, ns, name, MAIN_CONTAINER, tail=200)}
    return None


def _events(session: Any, ns: str) -> list[dict]:
    try:
        return session.list("v1", "Event", ns)
    except CloudError:
        return []


def probe(ctx: Any, *, time_scale: float | None = None) -> StepState:
    """Step 5's state from the live cluster: DONE once every replica is Ready and its last action,
    the health HTTPRoute, exists (a run cut short between the two is not taken for done)."""
    st = _probe_replicas(ctx, time_scale=time_scale)
    if st.status is not Status.DONE:
        return st
    cfg = ctx.cfg
    name = m.health_route_name(cfg.service)
    try:
        route = ctx.kube().get(m.HTTPROUTE_API_VERSION, "HTTPRoute", name, cfg.namespace)
    except CloudError as e:
        return StepState(Status.FAILED, e.message, fix=e.fix, data={"error_kind": e.kind})
    if route is None:
        return StepState(Status.IN_PROGRESS, f"{st.summary} The health HTTPRoute {name} is not applied yet.",
                         fix="Apply step 5 again: it applies the route (step 5's last action).", data=st.data)
    return st


def _probe_replicas(ctx: Any, *, time_scale: float | None = None) -> StepState:
    """Step 5's replicas and service from the live cluster (without the health route)."""
    cfg = ctx.cfg
    ts_ = time_scale_of(ctx) if time_scale is None else time_scale
    try:
        session = ctx.kube_or_none()
        if session is None:
            return StepState(Status.NOT_STARTED, "The cluster is not ready yet (step 2).")
        isvc = session.get(m.LLMISVC_API_VERSION, "LLMInferenceService", cfg.service, cfg.namespace)
        if isvc is None:
            return assess(cfg, None, []).state
        pods = session.list("v1", "Pod", cfg.namespace, label_selector=workload_selector(cfg))
        nodes = session.list("v1", "Node", label_selector=f"{TPU_LABEL}={TPU_VALUE}")
        now = time.time()
        lives = [classify(p, now=now, time_scale=ts_) for p in pods]
        events: list[dict] = []
        if any(lf.stage is not Stage.READY for lf in lives):
            events = _events(session, cfg.namespace)
            if any(lf.stage is Stage.PENDING for lf in lives):
                nodes = session.list("v1", "Node")  # all nodes: the diagnosis counts TPU and others
        logs = {}
        redact = redactor(ctx)
        for lf in lives:
            got = _logs_for(session, lf)
            if got is not None:
                logs[lf.name] = {c: [redact(x) for x in lines] for c, lines in got.items()}
    except CloudError as e:
        return StepState(Status.FAILED, e.message, fix=e.fix, data={"error_kind": e.kind})
    return assess(cfg, isvc, pods, nodes=nodes, events=events, logs_by_pod=logs, now=now, time_scale=ts_).state


def wait_ready(ctx: Any, timeout: float, *, poll: float = 2.0, stop: threading.Event | None = None,
               on_state: Callable[[StepState], None] | None = None,
               fail_fast: bool = True) -> StepState:
    """Probe until done (or failed when `fail_fast`), stopped, or `timeout` wall seconds."""
    deadline = time.monotonic() + timeout
    while True:
        st = _probe_replicas(ctx)  # the health route is applied once they are Ready (run())
        if on_state is not None:
            on_state(st)
        if st.status is Status.DONE or (fail_fast and st.status is Status.FAILED) or time.monotonic() >= deadline:
            return st
        if (stop.wait(poll) if stop is not None else time.sleep(poll)):
            return st


def run(ctx: Any, on_line: Callable[[str], None] | None = None, *, stop: threading.Event | None = None,
        timeout: float | None = None, poll: float = 1.0) -> StepState:
    """Headless step 5: apply and follow until Ready, a failure with its diagnosis, `stop`, or
    `timeout` wall seconds (default: three times the guide's 10 minutes at this time scale)."""
    say = on_line or (lambda _l: None)
    try:
        for what in apply(ctx):
            say(f"applied {what} (server-side)")
    except CloudError as e:
        return StepState(Status.FAILED, e.message, fix=e.fix, data={"error_kind": e.kind})
    if timeout is None:
        timeout = max(3 * 600.0 / time_scale_of(ctx), 30.0)
    last = [""]

    def report(s: StepState) -> None:
        if s.summary != last[0]:
            last[0] = s.summary
            say(s.summary)

    st = wait_ready(ctx, timeout, poll=poll, stop=stop, on_state=report)
    if st.status is Status.FAILED and st.detail:
        say(st.detail)
    if st.status is Status.DONE:  # the pool exists now: (re)point the health route at its group
        try:
            say(f"applied {apply_health_route(ctx)} (server-side)")
        except CloudError as e:
            say(f"health route: {e.message}")
    return st


# --- the live pane model -------------------------------------------------------------------------


class DeployWatch:
    """Live model of step 5 for the screen: pods (PodTable with minimal row diffs), milestones from
    the logs, last log lines per container, events, TPU nodes, the LLMInferenceService.

    Threads: list-watches (pods, events, nodes, the service) and one log follower per pod container
    (storage-initializer while it runs, then main). All callbacks run on those threads: keep them
    light (post a message). The UI polls `drain_diffs()` / `tick()` at a fixed cadence."""

    def __init__(self, ctx: Any, *, on_change: Callable[[], None] | None = None,
                 on_log: Callable[[str, str, list[str]], None] | None = None,
                 time_scale: float | None = None, log_tail: int = LOG_TAIL) -> None:
        self.ctx = ctx
        self.cfg: DeployConfig = ctx.cfg
        self.time_scale = time_scale_of(ctx) if time_scale is None else time_scale
        self.on_change = on_change
        self.on_log = on_log
        self.table = PodTable(time_scale=self.time_scale)
        self.states: dict[str, str] = {}
        self._lock = threading.RLock()
        self._diffs: list[RowDiff] = []
        self._watchers: dict[str, Any] = {}
        self._followers: dict[tuple[str, str, int], threading.Thread] = {}  # (pod, container, restarts)
        self._logs: dict[tuple[str, str], deque] = {}
        self._log_tail = log_tail
        self._stop = threading.Event()

    # lifecycle ----------------------------------------------------------------------------------
    def start(self) -> "DeployWatch":
        from ..cloud.kube import ListWatcher

        session = self.ctx.kube()
        self._session = session
        ns = self.cfg.namespace
        self._watchers["pods"] = ListWatcher(session.core.list_namespaced_pod, namespace=ns,
                                             label_selector=workload_selector(self.cfg), on_event=self._on_pod,
                                             on_state=self._state_cb("pods"), name="deploy-pods").start()
        self._watchers["events"] = ListWatcher(session.core.list_namespaced_event, namespace=ns,
                                               on_event=self._on_other, on_state=self._state_cb("events"),
                                               name="deploy-events").start()
        self._watchers["nodes"] = ListWatcher(session.core.list_node, on_event=self._on_other,
                                              on_state=self._state_cb("nodes"), name="deploy-nodes").start()
        group, version = m.LLMISVC_API_VERSION.split("/")
        self._watchers["isvc"] = ListWatcher(session.custom.list_namespaced_custom_object,
                                             args=(group, version, ns, "llminferenceservices"),
                                             field_selector=f"metadata.name={self.cfg.service}",
                                             on_event=self._on_other, on_state=self._state_cb("service"),
                                             name="deploy-isvc").start()
        return self

    def stop(self, join_timeout: float = 0.3) -> None:
        """Stop watching and following. Threads are daemons: a stream blocked in a read ends on its own."""
        self._stop.set()
        for w in self._watchers.values():
            w.stop(join=False)
        deadline = time.monotonic() + join_timeout
        for w in self._watchers.values():
            w.stop(join=True, timeout=max(0.0, deadline - time.monotonic()))
        for t in list(self._followers.values()):
            t.join(timeout=max(0.0, deadline - time.monotonic()))

    def _state_cb(self, name: str) -> Callable[[str], None]:
        def cb(state: str) -> None:
            self.states[name] = state
        return cb

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:  # noqa: BLE001
                log.exception("on_change failed")

    # events -------------------------------------------------------------------------------------
    def _on_pod(self, ev: Any) -> None:
        with self._lock:
            self._diffs.extend(self.table.apply_watch_event(ev))
            pods = self.table.pods()
        for p in pods:
            self._ensure_followers(p)
        self._changed()

    def _on_other(self, _ev: Any) -> None:
        self._changed()

    def _ensure_followers(self, pod: Mapping) -> None:
        if self._stop.is_set():
            return
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        name = meta.get("name")
        if not name or meta.get("deletionTimestamp"):
            return
        # started: running, ended, or ended before and now waiting to restart (CrashLoopBackOff: its
        # log is the last run's, which holds the error the diagnosis needs). One follower per run of
        # the container: a follow ends with its run, and the next run (restartCount + 1) gets its own
        # (after a fix, the retried download and the milestones must reach the pane).
        started = {cs.get("name"): int(cs.get("restartCount") or 0)
                   for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
                   if (cs.get("state") or {}).get("running") or (cs.get("state") or {}).get("terminated")
                   or (cs.get("lastState") or {}).get("terminated")}
        with self._lock:
            for container in (INIT_CONTAINER, MAIN_CONTAINER):
                if container not in started:
                    continue
                restarts = started[container]
                key = (name, container, restarts)
                if key in self._followers or any(k[:2] == (name, container) and k[2] > restarts
                                                 for k in self._followers):
                    continue  # followed already (or a later run is: this event is stale)
                for old in [k for k, t in self._followers.items() if k[:2] == (name, container) and not t.is_alive()]:
                    del self._followers[old]  # that run's follow ended
                t = threading.Thread(target=self._follow, args=(name, container, pod_key(pod)), daemon=True,
                                     name=f"logs-{name}-{container}-{restarts}")
                self._followers[key] = t
                t.start()

    def _follow(self, pod: str, container: str, key: str) -> None:
        from ..cloud.kube import follow_logs

        buf = self._logs.setdefault((pod, container), deque(maxlen=self._log_tail))
        redact = redactor(self.ctx)

        def lines_cb(stamped: list[str]) -> None:
            now = time.time()
            stamped = [redact(x) for x in stamped]
            lines = [split_timestamp(x)[1] for x in stamped]
            with self._lock:
                buf.extend(lines)
                for line in stamped:
                    # the line's own timestamp dates its milestone (lines read again after a
                    # reconnect were written long before they arrive); `now` only without one
                    self._diffs.extend(self.table.feed_log(key, line, ts=now))
            if self.on_log is not None:
                try:
                    self.on_log(pod, container, lines)
                except Exception:  # noqa: BLE001
                    log.exception("on_log failed")
            self._changed()

        follow_logs(self._session.core, self.cfg.namespace, pod, container, lines_cb, self._stop,
                    on_state=lambda s: self.states.__setitem__(f"logs:{pod}/{container}", s),
                    keep_timestamps=True)

    # what the screen reads ----------------------------------------------------------------------
    def drain_diffs(self) -> list[RowDiff]:
        """Row diffs since the last call (apply them in order)."""
        with self._lock:
            out, self._diffs = self._diffs, []
            return out

    def tick(self, now: float | None = None) -> list[RowDiff]:
        """Diffs of the time-dependent cells (call every second or so), plus pending ones."""
        with self._lock:
            self._diffs.extend(self.table.tick(now))
        return self.drain_diffs()

    def rows(self) -> list[tuple[str, dict[str, str]]]:
        with self._lock:
            return self.table.rows()

    def last_lines(self, pod: str, container: str = MAIN_CONTAINER) -> list[str]:
        with self._lock:
            return list(self._logs.get((pod, container), ()))

    def milestones(self, pod: str) -> MilestoneTracker:
        with self._lock:
            return self.table.milestones(f"{self.cfg.namespace}/{pod}")

    def assessment(self, now: float | None = None) -> DeployAssessment:
        with self._lock:
            pods = self.table.pods()
            ms = {p["metadata"]["name"]: self.table.milestones(pod_key(p)) for p in pods}
            logs = {name: {c: list(self._logs.get((name, c), ())) for c in (INIT_CONTAINER, MAIN_CONTAINER)}
                    for name in ms}
        isvc = next(iter(self._watchers["isvc"].snapshot().values()), None) if "isvc" in self._watchers else None
        nodes = list(self._watchers["nodes"].snapshot().values()) if "nodes" in self._watchers else []
        events = list(self._watchers["events"].snapshot().values()) if "events" in self._watchers else []
        nodes, events = self._as_dicts(nodes), self._as_dicts(events, "events")
        return assess(self.cfg, isvc, pods, nodes=nodes, events=events, logs_by_pod=logs,
                      milestones_by_pod=ms, now=now, time_scale=self.time_scale)

    def _as_dicts(self, objs: list[Any], kind: str = "nodes") -> list[dict]:
        """as_dict of each watched object, serialized once per object (a watch replaces an object
        when it changes, never edits it): an assessment after one new event serializes that one."""
        caches = self.__dict__.setdefault("_dict_caches", {})
        cache = caches.get(kind, {})
        fresh: dict[int, tuple[Any, dict]] = {}
        out = []
        for o in objs:
            hit = cache.get(id(o))
            d = hit[1] if hit is not None and hit[0] is o else as_dict(o)
            fresh[id(o)] = (o, d)
            out.append(d)
        caches[kind] = fresh
        return out

    def state(self) -> StepState:
        return self.assessment().state

    def diagnoses(self) -> list[Diagnosis]:
        return self.assessment().diagnoses


__all__ = ["run", "rendered", "rendered_yaml", "apply", "apply_health_route", "kserve_pools", "kserve_pool_group",
           "served_pool_groups", "probe", "assess", "DeployAssessment", "DeployWatch",
           "wait_ready", "commands", "workload_selector", "llmisvc_ready"]
