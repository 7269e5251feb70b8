"""Shared by the Operate actions: constants, state-file keys, small readers of Kubernetes objects,
and the Runner (events, stop, timeouts) every action runs in."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ... import manifests as m
from ...cloud.gke import CloudError
from ...config import CHIPS_PER_REPLICA, TPU_POOL_NAME, DeployConfig, validate_image
from ..operators import time_scale_of
from ..podlife import classify


log = logging.getLogger(__name__)


LLMISVC_KIND = "LLMInferenceService"
GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"
REVISION = "deployment.kubernetes.io/revision"
MAIN = "main"
PREFIX_FLAG = "--enable-prefix-caching"

# guide seconds (converted to wall seconds with the profile's time scale)
READY_TIMEOUT = 1800.0      # a replica: Pending + model download + weights + XLA compile (slow compile x4)
NODE_TIMEOUT = 1800.0       # TPU nodes after a resize
FAIL_GRACE = 180.0          # a new pod in a failure state (CrashLoopBackOff...) this long: the update failed
KSERVE_TIMEOUT = 300.0      # KServe carries a spec change to its Deployment
POD_GONE_TIMEOUT = 600.0    # pods of a deleted service terminate
MIN_WALL = 10.0             # wall seconds: the shortest timeout, whatever the time scale

# state file keys (never secrets)
K_ZERO = "ops_scaled_to_zero"          # {"from": n, "at": epoch}
K_IMAGES = "ops_image_history"         # [image, ...] newest last
K_SINGLE = "ops_single_model"          # {"name", "replicas", "manifest", "saved_at"}
K_MIGRATION = "ops_migration"          # {"budget_confirmed_at", "migrated_at", "rolled_back_at"}
K_LAST = "ops_last"                    # {"action", "ok", "summary", "at"}

ACTIONS = ("scale", "scale-to-zero", "resume", "update-image", "rollback-image", "migrate",
           "rollback-migration", "teardown-service", "teardown-node-pool", "teardown-cluster",
           "schedule-zero", "cancel-schedule-zero")


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def image_tag(image: str | None) -> str:
    """'3.2.5' for registry.redhat.io/rhaiis/vllm-tpu-rhel9:3.2.5 (or the digest's start)."""
    if not image:
        return ""
    if "@" in image:
        return image.split("@", 1)[1][:19]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


def image_repo(image: str) -> str:
    if "@" in image:
        return image.split("@", 1)[0]
    head, _, last = image.rpartition("/")
    return (head + "/" if head else "") + last.split(":", 1)[0]


def resolve_image(current: str | None, tag_or_image: str) -> str:
    """A full image for a tag (same repository as the running image) or a full reference.
    Raises ValueError with what to do."""
    value = (tag_or_image or "").strip()
    if not value:
        raise ValueError("Give the new image tag (e.g. 3.3.0) or a full image reference.")
    if "/" in value:
        image = value
    else:
        if not current:
            raise ValueError("No running image to take the repository from: give a full image reference.")
        tag = value[1:] if value.startswith(":") else value
        image = f"{image_repo(current)}:{tag}"
    err = validate_image(image)
    if err:
        raise ValueError(f"{err} (got {image})")
    return image


def _md(obj: Mapping | None) -> Mapping:
    return (obj or {}).get("metadata") or {}


def _name(obj: Mapping | None) -> str:
    return str(_md(obj).get("name") or "")


def _terminating(obj: Mapping) -> bool:
    return bool(_md(obj).get("deletionTimestamp"))


def _cond(obj: Mapping | None, ctype: str) -> Mapping | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def _ready(pod: Mapping) -> bool:
    c = _cond(pod, "Ready")
    return bool(c and str(c.get("status")) == "True") and not _terminating(pod)


def _scheduled(pod: Mapping) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def _unschedulable(pod: Mapping) -> bool:
    c = _cond(pod, "PodScheduled")
    return bool(c and str(c.get("status")) == "False" and c.get("reason") == "Unschedulable")


def _containers(spec_template: Mapping | None) -> list[Mapping]:
    return list((spec_template or {}).get("containers") or [])


def _main_index(containers: list[Mapping]) -> int | None:
    for i, c in enumerate(containers):
        if c.get("name") == MAIN:
            return i
    return 0 if containers else None


def llmisvc_image(isvc: Mapping | None) -> str | None:
    cs = _containers(((isvc or {}).get("spec") or {}).get("template"))
    i = _main_index(cs)
    return cs[i].get("image") if i is not None else None


def pod_image(pod: Mapping) -> str | None:
    cs = _containers(pod.get("spec"))
    i = _main_index(cs)
    return cs[i].get("image") if i is not None else None


def _rs_image(rs: Mapping) -> str | None:
    return pod_image(((rs.get("spec") or {}).get("template") or {}))


def _revision(obj: Mapping) -> int:
    try:
        return int((_md(obj).get("annotations") or {}).get(REVISION) or 0)
    except (TypeError, ValueError):
        return 0


def _owner_uid(obj: Mapping) -> str | None:
    for r in _md(obj).get("ownerReferences") or []:
        if r.get("controller"):
            return r.get("uid")
    refs = _md(obj).get("ownerReferences") or []
    return refs[0].get("uid") if refs else None


def has_prefix_caching(isvc: Mapping | None) -> bool:
    cs = _containers(((isvc or {}).get("spec") or {}).get("template"))
    i = _main_index(cs)
    if i is None:
        return False
    words = [str(w) for w in (cs[i].get("args") or []) + (cs[i].get("command") or [])]
    return any(w == PREFIX_FLAG or w.startswith(PREFIX_FLAG + "=") for w in words)


def spec_replicas(isvc: Mapping | None) -> int | None:
    v = ((isvc or {}).get("spec") or {}).get("replicas")
    if v is None:
        return 1 if isvc is not None else None
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


class _View:
    """The step context with another config (e.g. the replicas being scaled to), for the step
    modules that read `ctx.cfg`."""

    def __init__(self, ctx: Any, cfg: DeployConfig) -> None:
        self._ctx = ctx
        self.cfg = cfg

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)


def _pool_nodes(ctx: Any) -> list[Any]:
    from ..cluster import _pool_rows, tpu_nodes

    return _pool_rows(tpu_nodes(ctx))


# --------------------------------------------------------------------------------------------
# events, results, the runner
# --------------------------------------------------------------------------------------------


@dataclass
class OpEvent:
    phase: str            # check | nodes | replicas | rollout | rollback | verify | delete | done | failed
    message: str
    ready: int | None = None
    wanted: int | None = None
    at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class OpResult:
    action: str
    ok: bool
    summary: str
    fix: str = ""
    changed: bool = True          # False: refused or nothing to do, nothing was changed
    rolled_back: bool = False
    stopped: bool = False
    cost_per_day: float | None = None   # after the action
    config: DeployConfig | None = None  # the config to remember (replicas, image) when it changed
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "ok": self.ok, "summary": self.summary, "fix": self.fix,
                "changed": self.changed, "rolled_back": self.rolled_back, "stopped": self.stopped,
                "cost_per_day": self.cost_per_day, "data": self.data}


class _Failed(Exception):
    def __init__(self, message: str, fix: str = "", **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.data = data


class _Stopped(Exception):
    pass


class Runner:
    """Shared plumbing of one action: progress events (consecutive duplicates dropped), polling
    at a pace that suits the time scale, `stop`, guide-seconds timeouts."""

    def __init__(self, ctx: Any, on_event: Callable[[OpEvent], None] | None = None,
                 stop: threading.Event | None = None, poll: float | None = None) -> None:
        self.ctx = ctx
        self.on_event = on_event
        self.stop = stop or threading.Event()
        self.time_scale = time_scale_of(ctx)
        self.poll = poll if poll is not None else min(2.0, max(0.03, 5.0 / self.time_scale))
        self._last = ""
        self.events: list[OpEvent] = []

    def say(self, phase: str, message: str, **kw: Any) -> None:
        key = f"{phase}|{message}"
        if key == self._last:
            return
        self._last = key
        ev = OpEvent(phase, message, **kw)
        self.events.append(ev)
        if self.on_event is not None:
            try:
                self.on_event(ev)
            except Exception:  # noqa: BLE001 - a listener's bug must not stop the action
                log.exception("on_event failed")

    def wall(self, guide_seconds: float) -> float:
        """Wall seconds for a guide-time timeout (at least MIN_WALL: a fast emulator on a busy
        machine must not time out on scheduling noise)."""
        return max(guide_seconds / self.time_scale, 5 * self.poll, MIN_WALL)

    def sleep(self) -> None:
        if self.stop.wait(self.poll):
            raise _Stopped()

    def check_stop(self) -> None:
        if self.stop.is_set():
            raise _Stopped()

    # GKE ----------------------------------------------------------------------------------------
    def follow_pool_operation_in_flight(self) -> None:
        """GKE runs one operation at a time on a cluster: follow the TPU pool's running one first."""
        running = self.ctx.gke.in_flight(self.ctx.cfg.cluster, pool=TPU_POOL_NAME)
        if running is not None:
            self.say("nodes", f"Following {running.describe()} first...")
            self._follow(running, None)

    def resize_pool(self, n: int) -> None:
        """Set the TPU pool's size and follow the operation (reattaching to one already running)."""
        from ..cluster import _send

        cfg = self.ctx.cfg
        gke = self.ctx.gke
        self.follow_pool_operation_in_flight()
        self.say("nodes", f"Resizing node pool {TPU_POOL_NAME} to {n} node(s)...", wanted=n)
        op, again = _send(lambda: gke.set_pool_size(cfg.cluster, TPU_POOL_NAME, n),
                          lambda: gke.in_flight(cfg.cluster, {"SET_NODE_POOL_SIZE"}, pool=TPU_POOL_NAME), self.stop)
        if again:
            self.say("nodes", f"Reattached to {op.describe()}.")
        self._follow(op, n)

    def _follow(self, op: Any, n: int | None) -> None:
        gke = self.ctx.gke
        poll_max = max(self.poll, min(10.0, 60.0 / self.time_scale))

        def cb(p: Any) -> None:
            self.say("nodes", f"{p.op.describe()}: {p.message}")
        info = gke.wait(op, cb, stop=self.stop, poll_min=self.poll, poll_max=poll_max,
                        need_chips=CHIPS_PER_REPLICA * n if n else None)
        if not info.done:
            raise _Stopped()

    def wait_nodes(self, n: int, timeout: float = NODE_TIMEOUT) -> int:
        """Until the pool has exactly n nodes, all Ready."""
        deadline = time.monotonic() + self.wall(timeout)
        while True:
            try:
                rows = _pool_nodes(self.ctx)
            except CloudError as e:
                if e.kind in ("credentials", "permission"):
                    raise
                rows = None
                self.say("nodes", f"Kubernetes API not reachable: {e.message} (retrying)")
            if rows is not None:
                ready = sum(1 for r in rows if r.ready)
                self.say("nodes", f"{ready} of {n} TPU node(s) Ready" + (
                    f" ({len(rows)} in the pool)" if len(rows) != n else "") + ".", ready=ready, wanted=n)
                if ready == n and len(rows) == n:
                    return ready
            if time.monotonic() > deadline:
                raise _Failed(f"The node pool did not reach {n} Ready TPU node(s) in time.",
                              "GKE may be short of TPU v6e capacity in the zone, or the nodes are still booting: "
                              "run the action again to keep following, or look at the node pool in the console.")
            self.sleep()

    # Kubernetes ----------------------------------------------------------------------------------
    def isvc(self, name: str | None = None) -> dict | None:
        cfg = self.ctx.cfg
        return self.ctx.kube().get(m.LLMISVC_API_VERSION, LLMISVC_KIND, name or cfg.service, cfg.namespace)

    def pods(self, service: str | None = None) -> list[dict]:
        cfg = self.ctx.cfg
        sel = m.label_selector(m.workload_labels(service or cfg.service))
        return self.ctx.kube().list("v1", "Pod", cfg.namespace, label_selector=sel)

    def patch(self, api_version: str, kind: str, name: str, body: Any, content_type: str) -> dict:
        from ...cloud.kube import kube_error

        kube = self.ctx.kube()
        info = kube.resource(api_version, kind)
        try:
            return kube.request("PATCH", info.path(self.ctx.cfg.namespace, name), body=body,
                                content_type=content_type)
        except Exception as e:  # noqa: BLE001
            raise kube_error(e, f"patch {kind} {name}") from None

    def wait_replicas(self, n: int, *, image: str | None = None, timeout: float = READY_TIMEOUT,
                      fail_grace: float = FAIL_GRACE) -> int:
        """Until n pods are Ready (on `image` when given), no other pod is left and the service
        reports Ready. A pod stuck in a failure state past `fail_grace` fails the wait."""
        deadline = time.monotonic() + self.wall(timeout)
        while True:
            pods = self.pods()
            live = [p for p in pods if not _terminating(p)]
            ready = [p for p in live if _ready(p) and (image is None or pod_image(p) == image)]
            now = time.time()
            for p in live:
                life = classify(p, now=now, time_scale=self.time_scale)
                if life.is_failed and (life.seconds_in_stage or 0) >= fail_grace:
                    raise _Failed(f"Replica {life.name} is in {life.stage.value}"
                                  + (f" ({life.reason})" if life.reason else "") + ".",
                                  "Open step 5: it shows the pod's diagnosis and log.", pod=life.name)
            svc = self.isvc()
            svc_ok = bool(svc) and str((_cond(svc, "Ready") or {}).get("status")) == "True"
            waiting = [p for p in live if not _ready(p)]
            parts = [f"{len(ready)} of {n} replica(s) Ready"]
            if waiting:
                parts.append(f"{len(waiting)} starting")
            if len(pods) > len(live):
                parts.append(f"{len(pods) - len(live)} terminating")
            self.say("replicas", ", ".join(parts) + ".", ready=len(ready), wanted=n)
            if len(ready) >= n and len(pods) == n and svc_ok:
                return len(ready)
            if time.monotonic() > deadline:
                from .. import deploy

                st = deploy.probe(_View(self.ctx, self.ctx.cfg.replace(replicas=n)))
                raise _Failed(f"Only {len(ready)} of {n} replica(s) Ready in time: {st.summary}",
                              st.fix or "Open step 5 for each pod's stage and diagnosis.")
            self.sleep()

    def wait_pods_gone(self, service: str, timeout: float = POD_GONE_TIMEOUT) -> None:
        deadline = time.monotonic() + self.wall(timeout)
        while True:
            left = self.pods(service)
            self.say("delete", f"{len(left)} pod(s) of {service} left." if left else f"The pods of {service} are gone.")
            if not left:
                return
            if time.monotonic() > deadline:
                raise _Failed(f"{len(left)} pod(s) of {service} are still terminating.",
                              "Run the action again to keep following.")
            self.sleep()


def _run(action: str, runner: Runner, body: Callable[[], OpResult]) -> OpResult:
    """Map the ways an action ends to a result (and remember the last one in the state file)."""
    try:
        res = body()
    except _Stopped:
        res = OpResult(action, False, "Stopped following; what was sent to the cloud keeps going.",
                       "Run the action again to pick it up.", stopped=True)
    except _Failed as e:
        res = OpResult(action, False, e.message, e.fix, data=dict(e.data))
    except CloudError as e:
        res = OpResult(action, False, e.message, e.fix, data={"error_kind": e.kind})
    runner.say("done" if res.ok else "failed", res.summary)
    if res.changed or not res.ok:
        runner.ctx.record(**{K_LAST: {"action": action, "ok": res.ok, "summary": res.summary, "at": time.time()}})
    return res


def _remember_config(ctx: Any, **changes: Any) -> DeployConfig:
    """Make the context's config follow what the cluster now runs, and save it for the target."""
    cfg = ctx.cfg.replace(**changes)
    ctx.cfg = cfg
    ctx.record()
    return cfg
