"""Operate (page 12): day-two operations on the deployed service. Pure logic, no Textual; the
Operate screen and `rhaii-tui ops ...` both call these functions.

- `read_status(ctx)` -> `OpsStatus`: replicas desired/ready, TPU nodes, node pool size, gateway
  address, image, cost per day now; `status.cost_after(action, n)` the cost once an action is done.
- `scale(ctx, n)`: the LLMInferenceService replicas and the TPU node pool together, in the safe
  order: grow the nodes before the replicas, shrink the replicas before the nodes. Growing checks the
  TPU quota first (4 chips per replica) and refuses before anything changes when it is too small.
  Follows until n replicas are Ready.
- `scale_to_zero(ctx)` / `resume(ctx)`: the guide's "Scale to Zero" (node pool to 0; the service
  stays, its pods wait Pending; cost drops to the cluster overhead; the size is remembered in the
  state file) and "Scale Back Up" (the remembered size, nodes then pods, then the quick verification).
- `update_image(ctx, tag)` / `rollback_image(ctx)`: a rolling image update, one replica at a time,
  each new one Ready before the next old one goes (see "Rolling updates" below); a new replica that
  fails (CrashLoopBackOff, ImagePullBackOff...) or is not Ready within a timeout rolls the service
  back to the previous image automatically, while the old replicas keep serving.
- `CHECKLIST` / `migration_status(ctx)` / `migrate(ctx)` / `rollback_migration(ctx)`: the scale-out
  guide's migration from a single-model deployment (one replica, no prefix caching), as data, each
  item probed live; and its rollback procedure.
- `plan_teardown(ctx, scope)` / `teardown(ctx, scope)`: delete the service (LLMInferenceService, its
  health route, the EnvoyFilters and NetworkPolicies), or the TPU node pool, or the whole cluster;
  the plan lists what is deleted and what keeps costing.

Every action reports `OpEvent`s to `on_event` (plain lines for a log) and returns an `OpResult`
(never raises for cloud failures: they become a failed result with a fix). A `stop` event ends the
follow early (what was sent to the cloud keeps going; running the action again picks it up).

Rolling updates. The LLMInferenceService schema (KServe 3.4) has no deployment strategy, and KServe
renders its workload Deployment without one, so the apiserver's default applies (RollingUpdate,
maxSurge 25%, maxUnavailable 25%: with 3 replicas one surge pod and no unavailable one), and KServe
puts that default back whenever it updates the Deployment. With one TPU node per replica the surge
pod has no node and the rollout never moves. So the wizard drives it, replica by replica, with
maxSurge 0 / maxUnavailable 1 semantics: when the new ReplicaSet's pod is Unschedulable and every
new pod that has a node is Ready, it scales the oldest old ReplicaSet down by one (freeing a node
for the new pod), never below one Ready replica overall. The Deployment controller does the rest
(it never scales old ReplicaSets up during a rollout). Old pods that are not Ready are removed at
once (that costs no availability): this is also how a failed new image is cleared on rollback.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .. import manifests as m
from ..cloud.gke import CloudError
from ..config import (
    CHIPS_PER_REPLICA,
    CLUSTER_OVERHEAD_PER_DAY,
    GATEWAY_NAME,
    GATEWAY_NAMESPACE,
    TPU_MACHINE_TYPE,
    TPU_POOL_NAME,
    DeployConfig,
    cost_per_day,
    validate_image,
)
from .base import Status, StepState
from .operators import time_scale_of
from .podlife import Stage, classify, fmt_duration

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
           "rollback-migration", "teardown-service", "teardown-node-pool", "teardown-cluster")


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


# --------------------------------------------------------------------------------------------
# status
# --------------------------------------------------------------------------------------------


@dataclass
class PodRow:
    name: str
    stage: str
    ready: bool
    node: str
    image: str
    restarts: int
    in_stage: str
    severity: str

    @property
    def tag(self) -> str:
        return image_tag(self.image)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "tag": self.tag}


@dataclass
class OpsStatus:
    project: str
    zone: str
    cluster: str
    namespace: str
    service: str
    price_per_node_hour: float
    cluster_status: str | None = None      # None: no cluster
    pool_exists: bool = False
    pool_status: str | None = None
    pool_nodes: int = 0                     # nodes of the TPU pool (Kubernetes view)
    tpu_nodes_ready: int = 0
    operation: str | None = None            # a GKE operation running on the cluster
    exists: bool = False                    # the LLMInferenceService
    llmisvc_ready: bool = False
    llmisvc_reason: str = ""
    replicas_desired: int | None = None
    replicas_ready: int = 0
    image: str | None = None
    images_running: dict[str, int] = field(default_factory=dict)   # image -> live pods
    prefix_caching: bool | None = None
    gateway_address: str | None = None
    pods: list[PodRow] = field(default_factory=list)
    raw_pods: list[dict] = field(default_factory=list, repr=False)   # the live pod objects (for a pod table)
    scaled_to_zero_from: int | None = None
    cluster_created: str = ""               # the cluster's createTime (which cluster a remembered size is for)
    previous_image: str | None = None
    problem: str = ""
    fix: str = ""
    spend: Any = None                       # spend.Spend: the cost meter (None when it could not be read)

    @property
    def image_tag(self) -> str:
        return image_tag(self.image)

    @property
    def base_url(self) -> str | None:
        if not self.gateway_address:
            return None
        return f"http://{self.gateway_address}{m.service_path(self.namespace, self.service)}"

    @property
    def rolling(self) -> bool:
        return len([i for i, n in self.images_running.items() if n]) > 1 or bool(
            self.image and self.images_running and self.image not in self.images_running)

    @property
    def cost_now(self) -> float:
        if self.cluster_status is None:
            return 0.0
        return cost_per_day(self.pool_nodes, self.price_per_node_hour)

    def cost_after(self, action: str, n: int | None = None) -> float:
        """Cost per day once `action` is done (ACTIONS; n for scale)."""
        price = self.price_per_node_hour
        if action == "scale":
            return cost_per_day(int(n if n is not None else self.pool_nodes), price)
        if action == "scale-to-zero" or action == "teardown-node-pool":
            return cost_per_day(0, price) if self.cluster_status is not None else 0.0
        if action == "resume":
            return cost_per_day(self.resume_size, price)
        if action == "teardown-cluster":
            return 0.0
        if action in ("migrate",):
            return cost_per_day(int(n or self.replicas_desired or 3), price)
        if action == "rollback-migration":
            return cost_per_day(int(n or 1), price)
        return self.cost_now

    configured_replicas: int | None = None  # the wizard's replicas setting (when nothing is remembered)

    @property
    def resume_size(self) -> int:
        """The size the pool had when this deployment was scaled to zero; without one, the replicas."""
        return int(self.scaled_to_zero_from or self.replicas_desired or self.configured_replicas or 1)

    @property
    def state(self) -> StepState:
        if self.problem:
            return StepState(Status.FAILED, self.problem, fix=self.fix, data=self.to_dict())
        if self.cluster_status is None:
            return StepState(Status.NOT_STARTED, f"Cluster {self.cluster} does not exist.",
                             fix="Create it in step 2.", data=self.to_dict())
        if not self.exists:
            return StepState(Status.NOT_STARTED, f"{self.service} is not deployed.",
                             fix="Deploy it in step 5.", data=self.to_dict())
        if self.pool_nodes == 0 and self.scaled_to_zero_from:
            return StepState(Status.SKIPPED, f"Scaled to zero (was {self.scaled_to_zero_from} TPU nodes); "
                             f"≈ ${self.cost_now:,.2f}/day.", fix="Resume to serve again.", data=self.to_dict())
        want = self.replicas_desired or 0
        if self.llmisvc_ready and self.replicas_ready >= want:
            return StepState(Status.DONE, f"{self.replicas_ready}/{want} replicas Ready on {self.image_tag} · "
                             f"{self.pool_nodes} TPU nodes · ≈ ${self.cost_now:,.2f}/day",
                             data=self.to_dict())
        return StepState(Status.IN_PROGRESS, f"{self.replicas_ready}/{want} replicas Ready, "
                         f"{self.tpu_nodes_ready}/{self.pool_nodes} TPU nodes Ready.", data=self.to_dict())

    def lines(self) -> list[tuple[str, str]]:
        """(label, value) rows for a status pane or a plain listing."""
        want = "-" if self.replicas_desired is None else str(self.replicas_desired)
        pool = "absent" if not self.pool_exists else f"{self.pool_nodes} x {TPU_MACHINE_TYPE}" + (
            f" ({self.pool_status})" if self.pool_status and self.pool_status != "RUNNING" else "")
        images = ", ".join(f"{image_tag(i)} x{n}" for i, n in sorted(self.images_running.items()))
        rows = [
            ("Service", f"{self.service} in {self.namespace}" + ("" if self.exists else " (not deployed)")),
            ("Replicas", f"{self.replicas_ready} Ready of {want} desired"
             + ("" if not self.exists else (" · Ready" if self.llmisvc_ready else " · not Ready"))),
            ("TPU nodes", f"{self.tpu_nodes_ready} Ready of {self.pool_nodes}"),
            ("Node pool", f"{TPU_POOL_NAME}: {pool}"),
            ("Gateway", self.gateway_address or "no address"),
            ("Image", (self.image_tag or "-") + (f"  (running: {images})" if images and self.rolling else "")),
            ("Cost now", f"≈ ${self.cost_now:,.2f}/day"),
        ]
        if self.spend is not None and self.spend.billable:
            rows.append(("Spent", f"${self.spend.spent_usd:,.2f} since {self.spend.since[:16].replace('T', ' ')} UTC"))
        if self.scaled_to_zero_from and self.pool_nodes == 0:
            rows.append(("Resume to", f"{self.scaled_to_zero_from} TPU nodes "
                         f"(≈ ${self.cost_after('resume'):,.2f}/day)"))
        if self.operation:
            rows.append(("In progress", self.operation))
        if self.problem:
            rows.append(("Problem", self.problem))
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project, "zone": self.zone, "cluster": self.cluster, "namespace": self.namespace,
            "service": self.service, "cluster_status": self.cluster_status, "pool_exists": self.pool_exists,
            "pool_status": self.pool_status, "pool_nodes": self.pool_nodes, "tpu_nodes_ready": self.tpu_nodes_ready,
            "operation": self.operation, "exists": self.exists, "llmisvc_ready": self.llmisvc_ready,
            "replicas_desired": self.replicas_desired, "replicas_ready": self.replicas_ready,
            "image": self.image, "image_tag": self.image_tag, "images_running": dict(self.images_running),
            "prefix_caching": self.prefix_caching, "gateway_address": self.gateway_address,
            "base_url": self.base_url, "pods": [p.to_dict() for p in self.pods],
            "scaled_to_zero_from": self.scaled_to_zero_from, "previous_image": self.previous_image,
            "cost_now": self.cost_now, "problem": self.problem, "fix": self.fix,
            "cost": self._cost_dict(),
        }

    def _cost_dict(self) -> dict[str, Any]:
        """The cost meter: per day now, spent so far (from the cloud's creation and resize times), since."""
        if self.spend is not None:
            return self.spend.to_dict()
        return {"per_day_usd": self.cost_now, "spent_usd": None, "since": ""}


POOL_AT_ZERO = "no TPU node: pool at 0"


def _zero_is_ours(zero: Mapping[str, Any], cfg: DeployConfig, info: Any) -> bool:
    """A remembered scale-to-zero size counts only for this cluster (the same createTime: not a
    cluster of the same name created since, nor another emulator world) and this deployment."""
    return (zero.get("cluster_created") == (getattr(info, "create_time", "") or "")
            and zero.get("namespace") == cfg.namespace and zero.get("service") == cfg.service)


def workload_selector(cfg: DeployConfig) -> str:
    return m.label_selector(m.workload_labels(cfg.service))


def _pool_nodes(ctx: Any) -> list[Any]:
    from .cluster import _pool_rows, tpu_nodes

    return _pool_rows(tpu_nodes(ctx))


def _read_spend(ctx: Any, nodes: int, info: Any, ages: list[float]) -> Any:
    """The cost meter, or None when the operations cannot be read (the status never fails for it)."""
    from ..spend import read_spend

    try:
        return read_spend(ctx, nodes, info, ages)
    except CloudError as e:
        log.info("cost meter: %s", e)
        return None


def read_status(ctx: Any, *, with_operation: bool = True) -> OpsStatus:
    """The deployment at a glance, from the live cloud. Never raises: a failure is `problem`."""
    cfg = ctx.cfg
    saved = ctx.saved() or {}
    st = OpsStatus(cfg.project, cfg.zone, cfg.cluster, cfg.namespace, cfg.service, float(cfg.price_per_node_hour))
    st.configured_replicas = int(cfg.replicas or 0) or None
    zero = saved.get(K_ZERO) or {}
    history = [i for i in saved.get(K_IMAGES) or [] if isinstance(i, str)]
    try:
        info = ctx.cluster(refresh=True)
        if info is None:
            return st
        st.cluster_status = info.status
        st.cluster_created = info.create_time or ""
        pool = info.pool(TPU_POOL_NAME)
        st.pool_exists = pool is not None
        st.pool_status = pool.status if pool else None
        if with_operation:
            op = ctx.gke.in_flight(cfg.cluster)
            st.operation = op.describe() if op else None
        kube = ctx.kube_or_none()
        if kube is None:
            return st
        rows = _pool_nodes(ctx) if pool is not None else []
        st.pool_nodes = len(rows)
        st.tpu_nodes_ready = sum(1 for r in rows if r.ready)
        st.spend = _read_spend(ctx, st.pool_nodes, info, [r.age_seconds for r in rows])
        isvc = kube.get(m.LLMISVC_API_VERSION, LLMISVC_KIND, cfg.service, cfg.namespace)
        gw = kube.get(GATEWAY_API_VERSION, "Gateway", GATEWAY_NAME, GATEWAY_NAMESPACE)
        pods = kube.list("v1", "Pod", cfg.namespace, label_selector=workload_selector(cfg)) if isvc else []
    except CloudError as e:
        st.problem, st.fix = e.message, e.fix
        return st
    for a in ((gw or {}).get("status") or {}).get("addresses") or []:
        if isinstance(a, Mapping) and a.get("value"):
            st.gateway_address = str(a["value"])
            break
    if isvc is not None:
        st.exists = True
        c = _cond(isvc, "Ready")
        st.llmisvc_ready = bool(c and str(c.get("status")) == "True")
        st.llmisvc_reason = " ".join(x for x in ((c or {}).get("reason") or "", (c or {}).get("message") or "") if x)
        st.replicas_desired = spec_replicas(isvc)
        st.image = llmisvc_image(isvc)
        st.prefix_caching = has_prefix_caching(isvc)
    ts_ = time_scale_of(ctx)
    now = time.time()
    pool_at_zero = st.pool_exists and st.pool_nodes == 0
    for p in sorted(pods, key=_name):
        if _terminating(p):
            continue
        life = classify(p, now=now, time_scale=ts_)
        img = pod_image(p) or ""
        st.images_running[img] = st.images_running.get(img, 0) + 1
        in_stage, severity = ("-", "ok") if life.is_ready else (life.in_stage_text, life.severity)
        if life.stage is Stage.PENDING and pool_at_zero:
            # not late: there is no TPU node to wait for until the pool is resumed
            in_stage, severity = POOL_AT_ZERO, "ok"
        st.pods.append(PodRow(life.name, life.stage.value, life.is_ready, life.node or "", img, life.restarts,
                              in_stage, severity))
        st.raw_pods.append(p)
    st.replicas_ready = sum(1 for p in st.pods if p.ready)
    if zero.get("from") and _zero_is_ours(zero, cfg, info):
        st.scaled_to_zero_from = int(zero["from"])
    prev = [i for i in history if i != st.image]
    st.previous_image = prev[-1] if prev else None
    return st


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
    def resize_pool(self, n: int) -> None:
        """Set the TPU pool's size and follow the operation (reattaching to one already running)."""
        from .cluster import _send

        cfg = self.ctx.cfg
        gke = self.ctx.gke
        running = gke.in_flight(cfg.cluster, pool=TPU_POOL_NAME)
        if running is not None:
            self.say("nodes", f"Following {running.describe()} first...")
            self._follow(running, None)
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
        from ..cloud.kube import kube_error

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
                from . import deploy

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


# --------------------------------------------------------------------------------------------
# quota
# --------------------------------------------------------------------------------------------


@dataclass
class QuotaCheck:
    ok: bool | None          # None: the limit could not be read
    need: int
    limit: int | None
    message: str
    fix: str = ""


def check_quota(ctx: Any, replicas: int) -> QuotaCheck:
    """Do n replicas (4 chips each) fit the region's TPU v6e quota?"""
    from ..cloud.quotas import tpu_quota

    cfg = ctx.cfg
    need = CHIPS_PER_REPLICA * int(replicas)
    try:
        pane = tpu_quota(ctx.profile, cfg.project, cfg.region, int(replicas))
    except CloudError as e:
        return QuotaCheck(None, need, None, f"TPU quota could not be read: {e.message}", e.fix)
    except Exception as e:  # noqa: BLE001 - the quota API is optional for the wizard
        return QuotaCheck(None, need, None, f"TPU quota could not be read: {e}")
    enough = pane.enough
    limit = pane.on_demand.limit
    if enough is None:
        return QuotaCheck(None, need, None, pane.on_demand.warning or "TPU quota unknown.")
    if enough:
        lim = "unlimited" if pane.on_demand.unlimited else f"{limit} chips"
        return QuotaCheck(True, need, limit, f"TPU v6e quota in {cfg.region}: {lim}, {need} needed.")
    return QuotaCheck(False, need, limit,
                      f"TPU v6e quota in {cfg.region} is {limit} chips; {replicas} replicas need {need} "
                      f"({CHIPS_PER_REPLICA} per replica).",
                      f"Request more quota ({pane.request_text}): {pane.request_command} — or choose at most "
                      f"{(limit or 0) // CHIPS_PER_REPLICA} replicas.")


# --------------------------------------------------------------------------------------------
# scale
# --------------------------------------------------------------------------------------------


@dataclass
class ScalePlan:
    current: int | None
    target: int
    nodes_now: int
    cost_now: float
    cost_after: float
    steps: list[str]
    refused: str = ""
    fix: str = ""

    @property
    def grows(self) -> bool:
        """The node pool grows (billable; the quota is checked first)."""
        return self.target > self.nodes_now

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def plan_scale(ctx: Any, n: int, status: OpsStatus | None = None) -> ScalePlan:
    st = status or read_status(ctx, with_operation=False)
    cur = st.replicas_desired
    steps: list[str] = []
    refused = fix = ""
    if n < 1:
        refused, fix = "Replicas must be at least 1.", "Use scale to zero to stop paying for the TPU nodes."
    elif st.cluster_status is None or not st.pool_exists:
        refused, fix = f"There is no TPU node pool {TPU_POOL_NAME} to scale.", "Create it in step 2."
    elif not st.exists:
        refused, fix = f"{st.service} is not deployed.", "Deploy it in step 5 (it uses the configured replicas)."
    elif n > st.pool_nodes:
        if (cur or 0) > n:
            steps.append(f"Set {st.service} replicas {cur} -> {n}.")
        steps += [f"Check the TPU v6e quota ({CHIPS_PER_REPLICA * n} chips).",
                  f"Grow node pool {TPU_POOL_NAME} from {st.pool_nodes} to {n} node(s) and wait until they are Ready."]
        if (cur or 0) < n:
            steps.append(f"Set {st.service} replicas {cur} -> {n}.")
        steps.append(f"Wait until {n} replica(s) are Ready.")
    else:
        if cur != n:
            steps.append(f"Set {st.service} replicas {cur} -> {n} and wait until only {n} remain, all Ready.")
        if st.pool_nodes != n:
            steps.append(f"Shrink node pool {TPU_POOL_NAME} from {st.pool_nodes} to {n} node(s) (GKE picks the "
                         "nodes; a replica on a removed node restarts on a free one).")
        steps.append(f"Wait until {n} replica(s) are Ready.")
    return ScalePlan(cur, n, st.pool_nodes, st.cost_now, st.cost_after("scale", n), steps, refused, fix)


def scale(ctx: Any, n: int, *, on_event: Callable[[OpEvent], None] | None = None,
          stop: threading.Event | None = None, poll: float | None = None,
          ready_timeout: float = READY_TIMEOUT) -> OpResult:
    """Scale the service and its TPU node pool to n (nodes before replicas when growing, replicas
    before nodes when shrinking). Refuses before any change when the quota is too small."""
    run = Runner(ctx, on_event, stop, poll)
    n = int(n)

    def body() -> OpResult:
        st = read_status(ctx, with_operation=False)
        plan = plan_scale(ctx, n, st)
        if plan.refused:
            return OpResult("scale", False, plan.refused, plan.fix, changed=False, cost_per_day=st.cost_now)
        cur = st.replicas_desired or 0
        if cur == n and st.pool_nodes == n and st.replicas_ready >= n:
            return OpResult("scale", True, f"Already at {n} replica(s) on {n} TPU node(s).", changed=False,
                            cost_per_day=st.cost_now, config=_remember_config(ctx, replicas=n))
        if plan.grows:
            q = check_quota(ctx, n)
            run.say("check", q.message)
            if q.ok is False:
                return OpResult("scale", False, f"Refused, nothing changed: {q.message}", q.fix, changed=False,
                                cost_per_day=st.cost_now, data={"quota_limit": q.limit, "need": q.need})
            if cur > n:   # fewer replicas than before, on a pool that grows (e.g. from zero): replicas first
                run.say("replicas", f"Setting {st.service} replicas {cur} -> {n}...")
                _set_replicas(run, n)
            run.resize_pool(n)
            run.wait_nodes(n)
            ctx.record(**{K_ZERO: None})
            if cur < n:
                run.say("replicas", f"Setting {st.service} replicas {cur} -> {n}...")
                _set_replicas(run, n)
        else:
            if cur != n:
                run.say("replicas", f"Setting {st.service} replicas {cur} -> {n}...")
                _set_replicas(run, n)
                run.wait_replicas(n, timeout=ready_timeout)
            if st.pool_nodes != n:
                run.resize_pool(n)
                run.wait_nodes(n)
        run.wait_replicas(n, timeout=ready_timeout)
        cfg = _remember_config(ctx, replicas=n)
        after = cost_per_day(n, cfg.price_per_node_hour)
        return OpResult("scale", True, f"{n} replica(s) Ready on {n} TPU node(s); ≈ ${after:,.2f}/day.",
                        cost_per_day=after, config=cfg)
    return _run("scale", run, body)


def _set_replicas(run: Runner, n: int, name: str | None = None) -> None:
    run.patch(m.LLMISVC_API_VERSION, LLMISVC_KIND, name or run.ctx.cfg.service, {"spec": {"replicas": int(n)}},
              "application/merge-patch+json")


# --------------------------------------------------------------------------------------------
# scale to zero and back
# --------------------------------------------------------------------------------------------


def scale_to_zero(ctx: Any, *, on_event: Callable[[OpEvent], None] | None = None,
                  stop: threading.Event | None = None, poll: float | None = None) -> OpResult:
    """The guide's "Scale to Zero": the TPU node pool to 0 nodes. The service stays (its pods wait,
    Pending); the size is remembered so that `resume` restores it."""
    run = Runner(ctx, on_event, stop, poll)

    def body() -> OpResult:
        st = read_status(ctx, with_operation=False)
        if st.cluster_status is None or not st.pool_exists:
            return OpResult("scale-to-zero", False, f"There is no TPU node pool {TPU_POOL_NAME}.",
                            "Nothing to scale: create it in step 2.", changed=False)
        after = st.cost_after("scale-to-zero")
        if st.pool_nodes == 0:
            return OpResult("scale-to-zero", True, f"Already at zero TPU nodes; ≈ ${after:,.2f}/day "
                            "(cluster overhead).", changed=False, cost_per_day=after)
        size = max(st.pool_nodes, st.replicas_desired or 0)
        ctx.record(**{K_ZERO: {"from": size, "at": time.time(), "cluster_created": st.cluster_created,
                               "namespace": st.namespace, "service": st.service}})
        run.say("check", f"Remembering the size ({size} TPU nodes) to resume later.")
        run.resize_pool(0)
        run.wait_nodes(0)
        return OpResult("scale-to-zero", True, f"Scaled to zero: 0 TPU nodes (was {size}); ≈ ${after:,.2f}/day "
                        f"(cluster overhead) instead of ≈ ${st.cost_now:,.2f}/day. {st.service} stays deployed; "
                        "its pods wait for nodes.", cost_per_day=after, data={"from": size})
    return _run("scale-to-zero", run, body)


def resume(ctx: Any, *, on_event: Callable[[OpEvent], None] | None = None, stop: threading.Event | None = None,
           poll: float | None = None, verify: bool = True, ready_timeout: float = READY_TIMEOUT) -> OpResult:
    """The guide's "Scale Back Up": the remembered size, then nodes Ready, replicas Ready and the
    quick verification (health, models, a completion)."""
    run = Runner(ctx, on_event, stop, poll)

    def body() -> OpResult:
        st = read_status(ctx, with_operation=False)
        if st.cluster_status is None or not st.pool_exists:
            return OpResult("resume", False, f"There is no TPU node pool {TPU_POOL_NAME}.", "Create it in step 2.",
                            changed=False)
        if not st.exists:
            return OpResult("resume", False, f"{st.service} is not deployed.", "Deploy it in step 5.", changed=False)
        n = st.resume_size
        if st.pool_nodes < n:
            q = check_quota(ctx, n)
            run.say("check", q.message)
            if q.ok is False:
                return OpResult("resume", False, f"Refused, nothing changed: {q.message}", q.fix, changed=False)
            run.resize_pool(n)
        run.wait_nodes(n)
        run.wait_replicas(st.replicas_desired or n, timeout=ready_timeout)
        ctx.record(**{K_ZERO: None})
        after = cost_per_day(n, ctx.cfg.price_per_node_hour)
        checks = []
        if verify:
            from . import verify as v

            run.say("verify", "Quick verification (health, models, a completion)...")
            checks = v.run_verify(ctx, lambda c: run.say("verify", f"{c.mark} {c.title}: {c.evidence}"),
                                  quick=True)
            if not v.all_passed(checks):
                bad = v.first_failure(checks)
                return OpResult("resume", False, f"Serving on {n} TPU nodes, but the verification failed: "
                                f"{bad.title if bad else ''}: {bad.evidence if bad else ''}",
                                bad.fix if bad else "", cost_per_day=after,
                                data={"checks": [c.to_dict() for c in checks]})
        return OpResult("resume", True, f"Serving again: {n} replica(s) Ready on {n} TPU node(s)"
                        + (", quick verification passed" if verify else "") + f"; ≈ ${after:,.2f}/day.",
                        cost_per_day=after, data={"checks": [c.to_dict() for c in checks]})
    return _run("resume", run, body)


# --------------------------------------------------------------------------------------------
# rolling image update
# --------------------------------------------------------------------------------------------


def _set_image(run: Runner, image: str) -> None:
    """JSON patch of the main container's image (the test op guards the index)."""
    isvc = run.isvc()
    if isvc is None:
        raise _Failed(f"{run.ctx.cfg.service} is not deployed.", "Deploy it in step 5.")
    cs = _containers((isvc.get("spec") or {}).get("template"))
    i = _main_index(cs)
    if i is None:
        raise _Failed("The LLMInferenceService has no container to update.", "Re-apply it in step 5.")
    ops = [{"op": "test", "path": f"/spec/template/containers/{i}/name", "value": cs[i].get("name")},
           {"op": "replace", "path": f"/spec/template/containers/{i}/image", "value": image}]
    run.patch(m.LLMISVC_API_VERSION, LLMISVC_KIND, run.ctx.cfg.service, ops, "application/json-patch+json")


@dataclass
class _Rollout:
    """One look at the workload Deployment, its ReplicaSets and pods."""

    deployment: dict | None
    target: dict | None               # the ReplicaSet of the Deployment's current template
    old: list[dict]                   # the others still holding replicas or pods
    pods_by_rs: dict[str, list[dict]]

    def live(self, rs: Mapping) -> list[dict]:
        return [p for p in self.pods_by_rs.get(_md(rs).get("uid"), []) if not _terminating(p)]

    def ready(self, rs: Mapping) -> int:
        return sum(1 for p in self.live(rs) if _ready(p))

    @property
    def terminating(self) -> int:
        return sum(1 for ps in self.pods_by_rs.values() for p in ps if _terminating(p))


def _look(run: Runner, image: str) -> _Rollout | None:
    """None while the Deployment does not carry `image` yet (KServe has not caught up)."""
    cfg = run.ctx.cfg
    kube = run.ctx.kube()
    dep = kube.get("apps/v1", "Deployment", m.workload_deployment_name(cfg.service), cfg.namespace)
    if dep is None:
        return None
    if pod_image(((dep.get("spec") or {}).get("template") or {})) != image:
        return None
    if (dep.get("status") or {}).get("observedGeneration") != _md(dep).get("generation"):
        return None
    uid = _md(dep).get("uid")
    rss = [r for r in kube.list("apps/v1", "ReplicaSet", cfg.namespace, label_selector=workload_selector(cfg))
           if _owner_uid(r) == uid]
    if not rss:
        return None
    rss.sort(key=_revision)
    target = rss[-1]
    if _rs_image(target) != image:
        return None
    pods = run.pods()
    by: dict[str, list[dict]] = {}
    for p in pods:
        by.setdefault(_owner_uid(p) or "", []).append(p)
    old = [r for r in rss[:-1] if int((r.get("spec") or {}).get("replicas") or 0) > 0
           or by.get(_md(r).get("uid"))]
    return _Rollout(dep, target, old, by)


def _scale_rs(run: Runner, rs: Mapping, n: int) -> None:
    run.patch("apps/v1", "ReplicaSet", _name(rs), {"spec": {"replicas": int(n)}}, "application/merge-patch+json")


def _drive(run: Runner, image: str, n: int, *, ready_timeout: float, fail_grace: float,
           allow_downtime: bool, phase: str = "rollout") -> None:
    """Drive the Deployment to n Ready replicas on `image`, one node at a time (module docstring).
    Raises _Failed when a new replica fails or is not Ready in time."""
    tag = image_tag(image)
    kserve_deadline = time.monotonic() + run.wall(KSERVE_TIMEOUT)
    last_progress = time.monotonic()
    progress_key: tuple = ()
    stuck_after = run.wall(ready_timeout * 1.5)
    while True:
        run.check_stop()
        r = _look(run, image)
        if r is None:
            run.say(phase, f"Waiting for KServe to carry {tag} to the Deployment...")
            if time.monotonic() > kserve_deadline:
                raise _Failed(f"KServe did not update Deployment {m.workload_deployment_name(run.ctx.cfg.service)} "
                              f"to {tag} in time.", "Check the KServe controller (step 4).", kserve=True)
            run.sleep()
            continue
        assert r.target is not None
        new_live = r.live(r.target)
        new_ready = r.ready(r.target)
        old_live = sum(len(r.live(x)) for x in r.old)
        old_ready = sum(r.ready(x) for x in r.old)
        others = ", ".join(sorted({image_tag(_rs_image(x)) for x in r.old}))
        run.say(phase, f"{new_ready}/{n} Ready on {tag}"
                + (f"; {old_ready} Ready on {others}" if others else "")
                + (f" ({old_live - old_ready} not Ready)" if old_live > old_ready else "")
                + (f"; {r.terminating} terminating" if r.terminating else "") + ".",
                ready=new_ready + old_ready, wanted=n)
        if new_ready >= n and old_live == 0 and not r.terminating:
            return
        key = (new_ready, old_live, len(new_live), r.terminating)
        if key != progress_key:
            progress_key, last_progress = key, time.monotonic()
        elif time.monotonic() - last_progress > stuck_after:
            raise _Failed(f"The rollout to {tag} made no progress for {fmt_duration(stuck_after * run.time_scale)}.",
                          "Open step 5 for the pods' stages and diagnosis.")
        # a new replica that fails, or takes too long once it has a node
        now = time.time()
        for p in new_live:
            if not _scheduled(p) or _ready(p):
                continue
            life = classify(p, now=now, time_scale=run.time_scale)
            if life.is_failed and (life.restarts >= 2 or (life.seconds_in_stage or 0) >= fail_grace):
                why = f" ({life.reason})" if life.reason and life.reason != life.stage.value else ""
                raise _Failed(f"New replica {life.name} on {tag} is in {life.stage.value}{why} after "
                              f"{life.restarts} restart(s).",
                              "Check the image tag and the vLLM log of the new pod (step 5).", pod=life.name)
            since = _cond_time(p, "PodScheduled")
            if since is not None and (now - since) > run.wall(ready_timeout):
                raise _Failed(f"New replica {life.name} on {tag} was not Ready {fmt_duration(ready_timeout)} "
                              f"after it got a node (now {life.stage.value}).",
                              "Check the vLLM log of the new pod (step 5); a cold XLA compile can take long: "
                              "raise the timeout.", pod=life.name)
        # old pods that are not Ready go at once (costs no availability)
        for rs in r.old:
            want_rs = int((rs.get("spec") or {}).get("replicas") or 0)
            ready_rs = r.ready(rs)
            if want_rs > ready_rs and len(r.live(rs)) > ready_rs:
                run.say(phase, f"Removing {len(r.live(rs)) - ready_rs} not-Ready pod(s) of {_name(rs)}.")
                _scale_rs(run, rs, ready_rs)
        # free a node for a new pod the scheduler cannot place, one at a time
        pending = [p for p in new_live if not _scheduled(p) and _unschedulable(p)]
        unready_placed = [p for p in new_live if _scheduled(p) and not _ready(p)]
        settled = not r.terminating and all(
            int((x.get("spec") or {}).get("replicas") or 0) == len(r.live(x)) for x in r.old) and \
            int((r.target.get("spec") or {}).get("replicas") or 0) == len(new_live)
        if pending and not unready_placed and settled:
            donors = [x for x in r.old if r.ready(x) > 0 and int((x.get("spec") or {}).get("replicas") or 0) > 0]
            total_ready = new_ready + old_ready
            if donors and (total_ready >= 2 or allow_downtime):
                rs = donors[0]   # oldest revision first
                cur = int((rs.get("spec") or {}).get("replicas") or 0)
                run.say(phase, f"Replacing one old replica ({total_ready - 1} stay Ready while the new one starts).")
                _scale_rs(run, rs, cur - 1)
            elif donors:
                run.say(phase, f"Waiting: only {total_ready} replica(s) Ready, none can be taken down.")
        run.sleep()


def _cond_time(obj: Mapping, ctype: str) -> float | None:
    from .podlife import to_epoch

    c = _cond(obj, ctype)
    if not c or str(c.get("status")) != "True":
        return None
    return to_epoch(c.get("lastTransitionTime"))


def update_image(ctx: Any, tag_or_image: str, *, on_event: Callable[[OpEvent], None] | None = None,
                 stop: threading.Event | None = None, poll: float | None = None, auto_rollback: bool = True,
                 ready_timeout: float = READY_TIMEOUT, fail_grace: float = FAIL_GRACE,
                 allow_downtime: bool = False, action: str = "update-image") -> OpResult:
    """Roll the service to a new vLLM image, one replica at a time; roll back automatically when a
    new replica fails or is not Ready within `ready_timeout` guide seconds of getting a node."""
    run = Runner(ctx, on_event, stop, poll)

    def body() -> OpResult:
        isvc = run.isvc()
        if isvc is None:
            return OpResult(action, False, f"{ctx.cfg.service} is not deployed.", "Deploy it in step 5.",
                            changed=False)
        current = llmisvc_image(isvc)
        try:
            new = resolve_image(current, tag_or_image)
        except ValueError as e:
            return OpResult(action, False, str(e), "Give a tag like 3.3.0 or REGISTRY/PATH:TAG.", changed=False)
        n = spec_replicas(isvc) or 1
        pods = [p for p in run.pods() if not _terminating(p)]
        on_new = [p for p in pods if pod_image(p) == new and _ready(p)]
        if new == current and len(on_new) >= n and len(pods) == n:
            return OpResult(action, True, f"Already on {image_tag(new)}: {n} replica(s) Ready.", changed=False)
        ready_now = sum(1 for p in pods if _ready(p))
        if new != current:
            if n < 2 and not allow_downtime:
                return OpResult(action, False, "With one replica there is none left to serve while it is replaced.",
                                "Scale to 2 replicas first, or allow a short downtime (--allow-downtime).",
                                changed=False)
            if ready_now < n:
                return OpResult(action, False, f"Only {ready_now} of {n} replicas are Ready: the update waits for a "
                                "healthy service.", "Let the service become Ready (step 5 shows why not), "
                                "then update.", changed=False)
            history = [i for i in (ctx.saved() or {}).get(K_IMAGES) or [] if isinstance(i, str) and i != current]
            ctx.record(**{K_IMAGES: (history + [current])[-10:]})
            run.say("rollout", f"Updating {ctx.cfg.service} from {image_tag(current)} to {image_tag(new)}, "
                    f"one replica at a time ({n - 1} keep serving)...")
            _set_image(run, new)
        try:
            _drive(run, new, n, ready_timeout=ready_timeout, fail_grace=fail_grace, allow_downtime=allow_downtime)
        except _Failed as e:
            if not auto_rollback or new == current or e.data.get("kserve"):
                if e.data.get("kserve") and new != current:
                    _set_image(run, current)
                raise
            back = current or ""
            run.say("rollback", f"{e.message} Rolling back to {image_tag(back)}; the old replicas keep serving.")
            _set_image(run, back)
            try:
                _drive(run, back, n, ready_timeout=ready_timeout, fail_grace=fail_grace,
                       allow_downtime=allow_downtime, phase="rollback")
            except _Failed as e2:
                raise _Failed(f"{e.message} The rollback to {image_tag(back)} did not finish either: {e2.message}",
                              e2.fix) from None
            return OpResult(action, False, f"Rolled back to {image_tag(back)}: {e.message} {n} replica(s) Ready "
                            f"on {image_tag(back)}.", e.fix, rolled_back=True,
                            data={"failed_image": new, "image": back, **e.data})
        cfg = _remember_config(ctx, image=new)
        return OpResult(action, True, f"{n} replica(s) Ready on {image_tag(new)} (was {image_tag(current)}).",
                        config=cfg, data={"image": new, "previous_image": current})
    return _run(action, run, body)


def previous_image(ctx: Any) -> str | None:
    """The image to roll back to: the newest older ReplicaSet's (the cluster's history), else the
    state file's."""
    cfg = ctx.cfg
    try:
        kube = ctx.kube()
        isvc = kube.get(m.LLMISVC_API_VERSION, LLMISVC_KIND, cfg.service, cfg.namespace)
        current = llmisvc_image(isvc)
        dep = kube.get("apps/v1", "Deployment", m.workload_deployment_name(cfg.service), cfg.namespace)
        uid = _md(dep).get("uid") if dep else None
        rss = [r for r in kube.list("apps/v1", "ReplicaSet", cfg.namespace, label_selector=workload_selector(cfg))
               if uid and _owner_uid(r) == uid]
    except CloudError:
        return None
    for r in sorted(rss, key=_revision, reverse=True):
        img = _rs_image(r)
        if img and img != current:
            return img
    history = [i for i in (ctx.saved() or {}).get(K_IMAGES) or [] if isinstance(i, str) and i != current]
    return history[-1] if history else None


def rollback_image(ctx: Any, **kw: Any) -> OpResult:
    """Roll back to the previous image (same one-at-a-time rollout)."""
    prev = previous_image(ctx)
    if not prev:
        run = Runner(ctx, kw.get("on_event"))
        res = OpResult("rollback-image", False, "No previous image is known for this service.",
                       "Update the image to the one to go back to (a tag or REGISTRY/PATH:TAG).", changed=False)
        run.say("failed", res.summary)
        return res
    return update_image(ctx, prev, auto_rollback=False, action="rollback-image", **kw)


# --------------------------------------------------------------------------------------------
# migration from the single-model deployment (scale-out guide)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChecklistItem:
    number: int
    key: str
    title: str
    kind: str     # action: the wizard does it | check: probed only | manual: the user's decision


CHECKLIST: tuple[ChecklistItem, ...] = (
    ChecklistItem(1, "validate", "Validate single-model deployment working", "check"),
    ChecklistItem(2, "quota", "Request additional TPU quota (4 chips per replica)", "check"),
    ChecklistItem(3, "budget", "Budget approval for increased cost", "manual"),
    ChecklistItem(4, "delete-single", "Delete single-model deployment", "action"),
    ChecklistItem(5, "scale-pool", "Scale node pool to N", "action"),
    ChecklistItem(6, "deploy", "Deploy scale-out configuration", "action"),
    ChecklistItem(7, "cache-routing", "Verify cache routing", "check"),
    ChecklistItem(8, "benchmark", "Performance benchmark", "check"),
    ChecklistItem(9, "monitor", "Monitor for 24-48 hours", "check"),
)
ROLLBACK_CHECKLIST: tuple[ChecklistItem, ...] = (
    ChecklistItem(1, "delete-scaleout", "Delete scale-out deployment", "action"),
    ChecklistItem(2, "pool-to-single", "Scale node pool to 1", "action"),
    ChecklistItem(3, "redeploy-single", "Redeploy single-model configuration", "action"),
)
MONITOR_SECONDS = 24 * 3600.0


@dataclass
class ItemState:
    item: ChecklistItem
    state: str        # done | todo | failed | manual | waiting
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.item.number, "key": self.item.key, "title": self.item.title,
                "kind": self.item.kind, "state": self.state, "evidence": self.evidence}


def is_single_model(isvc: Mapping | None) -> bool:
    return isvc is not None and (spec_replicas(isvc) or 1) <= 1 and not has_prefix_caching(isvc)


def find_single_model(ctx: Any, name: str | None = None) -> dict | None:
    """The single-model LLMInferenceService: `name`, else one in the namespace with one replica and
    no prefix caching (the configured service included: an in-place migration)."""
    cfg = ctx.cfg
    kube = ctx.kube()
    if name:
        obj = kube.get(m.LLMISVC_API_VERSION, LLMISVC_KIND, name, cfg.namespace)
        return obj if is_single_model(obj) else None
    try:
        items = kube.list(m.LLMISVC_API_VERSION, LLMISVC_KIND, cfg.namespace)
    except CloudError:
        return None
    cands = [o for o in items if is_single_model(o)]
    cands.sort(key=lambda o: (_name(o) == cfg.service, _name(o)))
    return cands[0] if cands else None


def _saved_single(ctx: Any) -> dict:
    v = (ctx.saved() or {}).get(K_SINGLE)
    return v if isinstance(v, dict) else {}


def migration_status(ctx: Any, *, single: str | None = None, replicas: int | None = None) -> list[ItemState]:
    """Each checklist item probed live (never raises)."""
    from . import envoyfilters, epp, performance

    cfg = ctx.cfg
    n = int(replicas or cfg.replicas)
    out: list[ItemState] = []
    saved = ctx.saved() or {}
    mig = saved.get(K_MIGRATION) or {}
    kept = _saved_single(ctx)
    try:
        found = find_single_model(ctx, single)
        scaleout = ctx.kube().get(m.LLMISVC_API_VERSION, LLMISVC_KIND, cfg.service, cfg.namespace)
        nodes = _pool_nodes(ctx)
    except CloudError as e:
        return [ItemState(i, "failed", e.message) for i in CHECKLIST]
    if scaleout is not None and is_single_model(scaleout):
        scaleout = None
    so_ready = bool(scaleout) and str((_cond(scaleout, "Ready") or {}).get("status")) == "True"

    def add(key: str, state: str, evidence: str) -> None:
        out.append(ItemState(next(i for i in CHECKLIST if i.key == key), state, evidence))

    if found is not None:
        ok = str((_cond(found, "Ready") or {}).get("status")) == "True"
        add("validate", "done" if ok else "failed",
            f"{_name(found)}: 1 replica, no prefix caching, " + ("Ready" if ok else "not Ready"))
    elif kept:
        add("validate", "done", f"{kept.get('name')} was validated and saved before its deletion")
    else:
        add("validate", "todo" if scaleout is None else "done",
            "no single-model deployment found" + (" (already migrated)" if scaleout is not None else ""))
    q = check_quota(ctx, n)
    add("quota", {True: "done", False: "todo", None: "waiting"}[q.ok], q.message + (f" {q.fix}" if q.fix else ""))
    if mig.get("budget_confirmed_at"):
        add("budget", "done", f"confirmed at {time.strftime('%Y-%m-%d %H:%M', time.localtime(mig['budget_confirmed_at']))}"
            f" for ≈ ${cost_per_day(n, cfg.price_per_node_hour):,.2f}/day")
    else:
        add("budget", "manual", f"≈ ${cost_per_day(n, cfg.price_per_node_hour):,.2f}/day for {n} replicas vs "
            f"≈ ${cost_per_day(1, cfg.price_per_node_hour):,.2f}/day single-model: approve before migrating")
    single_name = (found and _name(found)) or kept.get("name") or single
    if found is None:
        add("delete-single", "done", f"{single_name} is gone (its manifest is saved for a rollback)" if kept
            else "no single-model deployment left")
    else:
        add("delete-single", "todo", f"{_name(found)} still deployed")
    ready_nodes = sum(1 for r in nodes if r.ready)
    add("scale-pool", "done" if ready_nodes >= n else "todo", f"{ready_nodes} of {n} TPU nodes Ready")
    if scaleout is not None:
        so_n = spec_replicas(scaleout) or 1
        add("deploy", "done" if so_ready and so_n >= n else "waiting",
            f"{cfg.service}: {so_n} replicas, prefix caching on, " + ("Ready" if so_ready else "not Ready"))
    else:
        add("deploy", "todo", f"{cfg.service} (scale-out) not deployed")
    if scaleout is None:
        add("cache-routing", "todo", "needs the scale-out deployment")
        add("benchmark", "todo", "needs the scale-out deployment")
        add("monitor", "todo", "needs the scale-out deployment")
        return out
    routing = [s for s in (epp.probe(ctx), envoyfilters.probe(ctx))]
    perf = performance.probe(ctx)
    if all(s.status is Status.DONE for s in routing) and perf.status is Status.DONE:
        add("cache-routing", "done", perf.summary)
    elif all(s.status is Status.DONE for s in routing):
        add("cache-routing", "todo", "EPP sidecar and EnvoyFilters in place; run the cache proof (step 10)")
    else:
        bad = next(s for s in routing if s.status is not Status.DONE)
        add("cache-routing", "todo", f"{bad.summary} (steps 6-7)")
    stored = (perf.data or {}).get("stored") or {}
    if stored.get("throughput"):
        add("benchmark", "done", f"throughput measured at {stored.get('at')}")
    else:
        add("benchmark", "todo", "run the throughput test (step 10, or rhaii-tui bench)")
    since = None
    c = _cond(scaleout, "Ready")
    if so_ready and c is not None:
        from .podlife import to_epoch

        since = to_epoch(c.get("lastTransitionTime"))
    if since is None:
        add("monitor", "todo", "the scale-out deployment is not Ready")
    else:
        age = max(0.0, (time.time() - since) * time_scale_of(ctx))
        add("monitor", "done" if age >= MONITOR_SECONDS else "waiting",
            f"Ready for {fmt_duration(age)} of 24 h")
    return out


def _clean_manifest(obj: Mapping) -> dict:
    """A live object as a manifest to re-apply (no status, no server fields)."""
    md = _md(obj)
    keep = {k: v for k, v in md.items() if k in ("name", "namespace", "labels", "annotations")}
    ann = dict(keep.get("annotations") or {})
    ann.pop("kubectl.kubernetes.io/last-applied-configuration", None)
    if ann:
        keep["annotations"] = ann
    else:
        keep.pop("annotations", None)
    return {"apiVersion": obj.get("apiVersion") or m.LLMISVC_API_VERSION, "kind": LLMISVC_KIND,
            "metadata": keep, "spec": copy.deepcopy(obj.get("spec") or {})}


def migrate(ctx: Any, *, single: str | None = None, replicas: int | None = None,
            on_event: Callable[[OpEvent], None] | None = None, stop: threading.Event | None = None,
            poll: float | None = None, budget_confirmed: bool = False,
            ready_timeout: float = READY_TIMEOUT) -> OpResult:
    """The scale-out guide's migration: quota check, (budget confirmed by the caller), save and
    delete the single-model deployment, node pool to N, deploy the scale-out configuration (step 5)
    with the EPP sidecar (6) and EnvoyFilters (7). Items 7-9 are checks that follow."""
    from . import deploy, envoyfilters, epp

    run = Runner(ctx, on_event, stop, poll)
    n = int(replicas or ctx.cfg.replicas)

    def body() -> OpResult:
        if not budget_confirmed:
            return OpResult("migrate", False, "The budget is not confirmed.",
                            f"Confirm ≈ ${cost_per_day(n, ctx.cfg.price_per_node_hour):,.2f}/day (--yes).",
                            changed=False)
        q = check_quota(ctx, n)
        run.say("check", f"[2] {q.message}")
        if q.ok is False:
            return OpResult("migrate", False, f"Refused, nothing changed: {q.message}", q.fix, changed=False)
        ctx.record(**{K_MIGRATION: {**((ctx.saved() or {}).get(K_MIGRATION) or {}),
                                    "budget_confirmed_at": time.time()}})
        found = find_single_model(ctx, single)
        kept = _saved_single(ctx)
        if found is not None:
            if str((_cond(found, "Ready") or {}).get("status")) != "True":
                return OpResult("migrate", False, f"[1] The single-model deployment {_name(found)} is not Ready.",
                                "Validate it first (the guide's item 1), or delete it yourself.", changed=False)
            run.say("check", f"[1] {_name(found)} is Ready (1 replica, no prefix caching).")
            ctx.record(**{K_SINGLE: {"name": _name(found), "replicas": spec_replicas(found) or 1,
                                     "manifest": _clean_manifest(found), "saved_at": time.time()}})
            run.say("delete", f"[4] Saved {_name(found)}'s manifest for a rollback; deleting it...")
            ctx.kube().delete(m.LLMISVC_API_VERSION, LLMISVC_KIND, _name(found), ctx.cfg.namespace)
            run.wait_pods_gone(_name(found))
        else:
            run.say("check", f"[1,4] No single-model deployment left" + (f" ({kept.get('name')} saved)." if kept else "."))
        nodes = _pool_nodes(ctx)
        if len(nodes) != n:
            run.resize_pool(n)
        run.wait_nodes(n)
        cfg = ctx.cfg.replace(replicas=n)
        view = _View(ctx, cfg)
        run.say("replicas", f"[6] Deploying the scale-out configuration: {n} replicas with prefix caching...")
        for what in deploy.apply(view):
            run.say("replicas", f"applied {what}")
        ctx.cfg = cfg
        run.wait_replicas(n, timeout=ready_timeout)
        st6 = epp.run(view, lambda line: run.say("replicas", f"[6] {line}"), stop=run.stop)
        st7 = envoyfilters.run(view, lambda line: run.say("replicas", f"[6] {line}"))
        cfg = _remember_config(ctx, replicas=n)
        ctx.record(**{K_MIGRATION: {**((ctx.saved() or {}).get(K_MIGRATION) or {}), "migrated_at": time.time()}})
        ok = st6.status is Status.DONE and st7.status is Status.DONE
        after = cost_per_day(n, cfg.price_per_node_hour)
        if not ok:
            bad = st6 if st6.status is not Status.DONE else st7
            return OpResult("migrate", False, f"Scale-out deployed ({n} Ready) but cache-aware routing is not in "
                            f"place: {bad.summary}", bad.fix, config=cfg, cost_per_day=after)
        return OpResult("migrate", True, f"Migrated: {n} replicas with prefix caching and cache-aware routing; "
                        f"≈ ${after:,.2f}/day. Next: verify cache routing and benchmark (step 10), monitor 24-48 h.",
                        config=cfg, cost_per_day=after)
    return _run("migrate", run, body)


def rollback_migration(ctx: Any, *, on_event: Callable[[OpEvent], None] | None = None,
                       stop: threading.Event | None = None, poll: float | None = None,
                       ready_timeout: float = READY_TIMEOUT) -> OpResult:
    """The guide's rollback: delete the scale-out deployment, node pool to 1 (the single-model's
    replicas), redeploy the saved single-model configuration."""
    run = Runner(ctx, on_event, stop, poll)

    def body() -> OpResult:
        kept = _saved_single(ctx)
        manifest = kept.get("manifest")
        if not isinstance(manifest, dict):
            return OpResult("rollback-migration", False, "No saved single-model configuration to go back to.",
                            "The migration saves it before deleting the single-model deployment; apply your "
                            "single-model manifest yourself.", changed=False)
        cfg = ctx.cfg
        single_n = int(kept.get("replicas") or 1)
        if run.isvc() is not None and not is_single_model(run.isvc()):
            run.say("delete", f"[1] Deleting the scale-out deployment {cfg.service}...")
            ctx.kube().delete(m.LLMISVC_API_VERSION, LLMISVC_KIND, cfg.service, cfg.namespace)
        run.wait_pods_gone(cfg.service)
        run.say("nodes", f"[2] Node pool to {single_n} node(s)...")
        if len(_pool_nodes(ctx)) != single_n:
            run.resize_pool(single_n)
        run.wait_nodes(single_n)
        name = str(_md(manifest).get("name") or "")
        run.say("replicas", f"[3] Redeploying {name}...")
        ctx.kube().apply(manifest, cfg.namespace)
        single_view = Runner(_View(ctx, cfg.replace(service=name)), run.on_event, run.stop, run.poll)
        single_view.wait_replicas(single_n, timeout=ready_timeout)
        ctx.record(**{K_MIGRATION: {**((ctx.saved() or {}).get(K_MIGRATION) or {}), "rolled_back_at": time.time()}})
        after = cost_per_day(single_n, cfg.price_per_node_hour)
        return OpResult("rollback-migration", True, f"Rolled back: {name} serving on {single_n} TPU node(s); "
                        f"≈ ${after:,.2f}/day.", cost_per_day=after)
    return _run("rollback-migration", run, body)


# --------------------------------------------------------------------------------------------
# teardown
# --------------------------------------------------------------------------------------------

SCOPES = ("service", "node-pool", "cluster")


def plan_nodes(plan: "TeardownPlan") -> int:
    return plan.nodes


@dataclass
class TeardownPlan:
    scope: str
    deletes: list[str]
    keeps: list[str]
    cost_now: float
    cost_after: float
    confirm_word: str
    nodes: int = 0

    @property
    def title(self) -> str:
        return {"service": "Tear down the inference service", "node-pool": f"Delete the TPU node pool {TPU_POOL_NAME}",
                "cluster": f"Delete the cluster {self.confirm_word}"}[self.scope]

    def to_dict(self) -> dict[str, Any]:
        return {"scope": self.scope, "deletes": self.deletes, "keeps": self.keeps, "cost_now": self.cost_now,
                "cost_after": self.cost_after}


def _service_objects(cfg: DeployConfig) -> list[tuple[str, str, str, str]]:
    """(api_version, kind, name, namespace) the wizard created for the service, in delete order."""
    objs = [(m.LLMISVC_API_VERSION, LLMISVC_KIND, cfg.service, cfg.namespace),
            (m.HTTPROUTE_API_VERSION, "HTTPRoute", m.health_route_name(cfg.service), cfg.namespace)]
    objs += [(m.ENVOYFILTER_API_VERSION, "EnvoyFilter", n, GATEWAY_NAMESPACE)
             for n in m.envoyfilter_names(cfg.service).values()]
    objs += [("networking.k8s.io/v1", "NetworkPolicy", n, cfg.namespace) for n in m.NETWORK_POLICY_NAMES]
    return objs


def plan_teardown(ctx: Any, scope: str, status: OpsStatus | None = None) -> TeardownPlan:
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    cfg = ctx.cfg
    st = status or read_status(ctx, with_operation=False)
    nodes = st.pool_nodes
    svc = [f"LLMInferenceService {cfg.service} in {cfg.namespace} (its pods, Deployments, Services, "
           "InferencePool and route go with it)",
           f"HTTPRoute {m.health_route_name(cfg.service)}",
           f"EnvoyFilters {', '.join(m.envoyfilter_names(cfg.service).values())} in {GATEWAY_NAMESPACE}",
           f"NetworkPolicies {', '.join(m.NETWORK_POLICY_NAMES)} (those present)"]
    if scope == "service":
        deletes = svc
        keeps = [f"namespace {cfg.namespace} with its secrets, the operators and the gateway",
                 f"cluster {cfg.cluster} and node pool {TPU_POOL_NAME} with {nodes} TPU node(s): still billed "
                 f"≈ ${st.cost_now:,.2f}/day — scale to zero or delete the pool to stop that"]
        after = st.cost_now
    elif scope == "node-pool":
        deletes = svc + [f"node pool {TPU_POOL_NAME} ({nodes} x {TPU_MACHINE_TYPE})"]
        keeps = [f"cluster {cfg.cluster} (default pool, control plane): still billed "
                 f"≈ ${CLUSTER_OVERHEAD_PER_DAY:,.2f}/day",
                 f"namespace {cfg.namespace} with its secrets, the operators and the gateway"]
        after = cost_per_day(0, cfg.price_per_node_hour)
    else:
        deletes = [f"cluster {cfg.cluster} in {cfg.zone} with everything in it: {nodes} TPU node(s), the default "
                   "pool, the operators, the service, the secrets"]
        keeps = ["the project, its APIs and quota (no charge)", "the wizard's state file for this target"]
        after = 0.0
    return TeardownPlan(scope, deletes, keeps, st.cost_now, after, cfg.cluster, nodes)


def teardown(ctx: Any, scope: str, *, on_event: Callable[[OpEvent], None] | None = None,
             stop: threading.Event | None = None, poll: float | None = None) -> OpResult:
    """Delete what `plan_teardown(scope)` lists and follow until it is gone. The caller confirmed."""
    from .cluster import _send

    action = f"teardown-{scope}"
    run = Runner(ctx, on_event, stop, poll)

    def body() -> OpResult:
        cfg = ctx.cfg
        plan = plan_teardown(ctx, scope)
        gke = ctx.gke
        if scope == "cluster":
            info = ctx.cluster(refresh=True)
            if info is None:
                return OpResult(action, True, f"Cluster {cfg.cluster} does not exist: nothing to delete.",
                                changed=False, cost_per_day=0.0)
            run.say("delete", f"Deleting cluster {cfg.cluster} (~{int(150 / 60) + 1} min)...")
            op, _ = _send(lambda: gke.delete_cluster(cfg.cluster),
                          lambda: gke.in_flight(cfg.cluster, {"DELETE_CLUSTER"}), run.stop)
            run._follow(op, None)
            ctx.invalidate()
            ctx.record(**{K_ZERO: None})
            return OpResult(action, True, f"Cluster {cfg.cluster} deleted: no more charges for it.",
                            cost_per_day=0.0, data=plan.to_dict())
        kube = ctx.kube_or_none()
        gone: list[str] = []
        if kube is not None:
            for api, kind, name, ns in _service_objects(cfg):
                try:
                    if kube.delete(api, kind, name, ns):
                        gone.append(f"{kind}/{name}")
                        run.say("delete", f"deleted {kind} {name} in {ns}")
                except CloudError as e:
                    if e.kind != "not_found":
                        raise
            run.wait_pods_gone(cfg.service)
        if scope == "node-pool":
            info = ctx.cluster(refresh=True)
            if info is not None and info.pool(TPU_POOL_NAME) is not None:
                run.say("delete", f"Deleting node pool {TPU_POOL_NAME}...")
                op, _ = _send(lambda: gke.delete_node_pool(cfg.cluster, TPU_POOL_NAME),
                              lambda: gke.in_flight(cfg.cluster, {"DELETE_NODE_POOL"}, pool=TPU_POOL_NAME), run.stop)
                run._follow(op, None)
                gone.append(f"node pool {TPU_POOL_NAME}")
            ctx.record(**{K_ZERO: None})
        objs = [g for g in gone if not g.startswith("node pool")]
        what = f"Deleted {len(objs)} object(s) of {cfg.service}" if objs else f"Nothing of {cfg.service} was left"
        if scope == "node-pool":
            what += f" and node pool {TPU_POOL_NAME}" if gone and gone[-1].startswith("node pool") else ""
            tail = f" Still billed ≈ ${plan.cost_after:,.2f}/day for cluster {cfg.cluster} (delete it to stop that)."
        else:
            tail = (f" Still billed ≈ ${plan.cost_after:,.2f}/day for the cluster and its {plan_nodes(plan)} TPU "
                    "node(s): scale to zero or delete the node pool to stop that.")
        return OpResult(action, True, f"{what}.{tail}", changed=bool(gone), cost_per_day=plan.cost_after,
                        data={**plan.to_dict(), "deleted": gone})
    return _run(action, run, body)


__all__ = [
    "OpsStatus", "PodRow", "OpEvent", "OpResult", "Runner", "ScalePlan", "QuotaCheck", "TeardownPlan",
    "ChecklistItem", "ItemState", "CHECKLIST", "ROLLBACK_CHECKLIST", "SCOPES", "ACTIONS",
    "read_status", "check_quota", "plan_scale", "scale", "scale_to_zero", "resume", "update_image",
    "rollback_image", "previous_image", "resolve_image", "image_tag", "migration_status", "migrate",
    "rollback_migration", "find_single_model", "plan_teardown", "teardown",
]


# --------------------------------------------------------------------------------------------
# confirmations (one description for the screen's ConfirmCost and the CLI's --yes)
# --------------------------------------------------------------------------------------------


@dataclass
class Confirmation:
    action: str
    title: str
    lines: list[str]
    cost_now: float
    cost_after: float
    needed: bool = True            # billable or destructive: confirm (TUI) / --yes (CLI)
    destructive: bool = False
    what: str = "This will:"
    refused: str = ""              # the action cannot run now (nothing would change)
    fix: str = ""

    def text(self) -> str:
        """One paragraph for the command line."""
        return (f"{self.title}: " + "; ".join(line.rstrip(".") for line in self.lines)
                + f". Cost ≈ ${self.cost_now:,.2f}/day now, ≈ ${self.cost_after:,.2f}/day after.")

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def describe(ctx: Any, action: str, *, status: OpsStatus | None = None, n: int | None = None,
             tag: str | None = None, single: str | None = None) -> Confirmation:
    """What `action` would do now, with its cost, and whether it needs a confirmation."""
    st = status or read_status(ctx, with_operation=False)
    now = st.cost_now
    if action == "scale":
        n = int(n if n is not None else (st.replicas_desired or 1))
        plan = plan_scale(ctx, n, st)
        needed = (plan.current != n or plan.nodes_now != n) and not plan.refused
        return Confirmation(action, f"Scale {st.service} to {n} replica(s)", plan.steps or ["nothing to change"],
                            now, plan.cost_after, needed, destructive=n < (plan.current or 0),
                            refused=plan.refused, fix=plan.fix)
    if action == "scale-to-zero":
        c = Confirmation(action, f"Scale node pool {TPU_POOL_NAME} to zero",
                         [f"node pool {TPU_POOL_NAME}: {st.pool_nodes} -> 0 TPU nodes (the size is remembered)",
                          f"{st.service} stays deployed but stops serving until you resume"],
                         now, st.cost_after("scale-to-zero"), st.pool_nodes > 0, destructive=True)
        if not st.pool_exists:
            c.refused, c.fix, c.needed = f"There is no TPU node pool {TPU_POOL_NAME}.", "Create it in step 2.", False
        return c
    if action == "resume":
        size = st.resume_size
        c = Confirmation(action, f"Resume: node pool {TPU_POOL_NAME} back to {size} node(s)",
                         [f"node pool {TPU_POOL_NAME}: {st.pool_nodes} -> {size} TPU nodes",
                          f"wait for {st.replicas_desired or size} replica(s) Ready, then the quick verification"],
                         now, st.cost_after("resume"), st.pool_nodes < size, what="This will create:")
        if not st.pool_exists or not st.exists:
            c.refused = f"There is no TPU node pool {TPU_POOL_NAME}." if not st.pool_exists else \
                f"{st.service} is not deployed."
            c.fix, c.needed = "Run steps 2 and 5 first.", False
        return c
    if action in ("update-image", "rollback-image"):
        target = tag or (st.previous_image if action == "rollback-image" else "")
        lines = [f"{st.service}: {st.image_tag or '?'} -> {image_tag(target) if '/' in (target or '') else target}, "
                 f"one replica at a time ({max(0, (st.replicas_desired or 1) - 1)} keep serving)",
                 "back to the previous image automatically if a new replica fails"]
        return Confirmation(action, "Rolling image update", lines, now, now, needed=False)
    if action.startswith("teardown-"):
        plan = plan_teardown(ctx, action.split("-", 1)[1], st)
        lines = list(plan.deletes) + [f"kept: {k}" for k in plan.keeps]
        return Confirmation(action, plan.title, lines, now, plan.cost_after, True, destructive=True,
                            what="This will delete:")
    if action == "migrate":
        n = int(n or ctx.cfg.replicas)
        lines = [f"check the TPU quota ({CHIPS_PER_REPLICA * n} chips)",
                 "save and delete the single-model deployment" + (f" {single}" if single else ""),
                 f"node pool {TPU_POOL_NAME}: {st.pool_nodes} -> {n} TPU nodes",
                 f"deploy {st.service}: {n} replicas with prefix caching, the EPP sidecar and the EnvoyFilters"]
        return Confirmation(action, "Migrate to the scale-out pattern (budget approval)", lines, now,
                            st.cost_after("migrate", n), True, destructive=True)
    if action == "rollback-migration":
        kept = _saved_single(ctx)
        k = int(kept.get("replicas") or 1)
        lines = [f"delete the scale-out deployment {st.service}", f"node pool {TPU_POOL_NAME}: {st.pool_nodes} -> {k}",
                 f"redeploy {kept.get('name') or 'the saved single-model deployment'}"]
        c = Confirmation(action, "Roll the migration back", lines, now, st.cost_after("rollback-migration", k), True,
                         destructive=True)
        if not kept.get("manifest"):
            c.refused, c.fix, c.needed = ("No saved single-model configuration to go back to.",
                                          "The migration saves it before deleting the single-model deployment.", False)
        return c
    raise ValueError(f"unknown action {action!r}; known: {', '.join(ACTIONS)}")


# --------------------------------------------------------------------------------------------
# headless (rhaii-tui ops ...): confirmation, the deploy lease, the action
# --------------------------------------------------------------------------------------------


@dataclass
class HeadlessOutcome:
    exit_code: int
    result: OpResult | None
    confirmation: Confirmation | None
    message: str = ""            # for exit 2 (missing --yes) or a refusal

    def to_dict(self) -> dict[str, Any]:
        return {"exit_code": self.exit_code, "message": self.message,
                "result": self.result.to_dict() if self.result else None,
                "confirmation": self.confirmation.to_dict() if self.confirmation else None}


def run_headless(ctx: Any, action: str, *, yes: bool = False, n: int | None = None, tag: str | None = None,
                 single: str | None = None, on_event: Callable[[OpEvent], None] | None = None,
                 stop: threading.Event | None = None, **options: Any) -> HeadlessOutcome:
    """One `rhaii-tui ops` action: refuses billable/destructive ones without `yes` (exit 2, naming
    what and the cost), takes the deploy lease while it changes things, runs the action."""
    conf = describe(ctx, action, n=n, tag=tag, single=single)
    if conf.refused:
        res = OpResult(action, False, conf.refused, conf.fix, changed=False)
        return HeadlessOutcome(1, res, conf, conf.refused)
    if conf.needed and not yes:
        return HeadlessOutcome(2, None, conf, conf.text() + " Add --yes to go ahead.")
    lease, busy = take_lease(ctx, action, stop)
    if busy:
        return HeadlessOutcome(1, None, conf, busy)
    try:
        res = run_action(ctx, action, n=n, tag=tag, single=single, on_event=on_event, stop=stop, **options)
    finally:
        if lease is not None:
            lease.release()
    return HeadlessOutcome(res.exit_code, res, conf)


def take_lease(ctx: Any, action: str, stop: threading.Event | None = None) -> tuple[Any, str]:
    """The deploy lease (lease.py) for an action: (lease or None, "" | why another rhaii-tui has it).
    None without a message when there is nothing to lease (no cluster or namespace yet, or the
    cluster is about to go). Renewed in the background; losing it sets `stop`. Release it after."""
    from ..lease import Lease, LeaseHeld

    if action == "teardown-cluster" or ctx.kube_or_none() is None:
        return None, ""
    lease = Lease(ctx.kube, ctx.cfg.namespace, command=f"ops {action}")
    try:
        if not lease.acquire():
            return None, ""
    except LeaseHeld as e:
        return None, f"{e} (try again when it is done)"
    except CloudError as e:
        log.info("no lease: %s", e.message)
        return None, ""
    lease.start_renewing(on_lost=lambda _i: stop.set() if stop is not None else None)
    return lease, ""


def run_action(ctx: Any, action: str, *, n: int | None = None, tag: str | None = None, single: str | None = None,
               on_event: Callable[[OpEvent], None] | None = None, stop: threading.Event | None = None,
               **options: Any) -> OpResult:
    """Run one of ACTIONS (already confirmed by the caller). Blocking: call it from a worker."""
    kw = dict(on_event=on_event, stop=stop, **options)
    if action == "scale":
        return scale(ctx, int(n or 0), **kw)
    if action == "scale-to-zero":
        return scale_to_zero(ctx, **kw)
    if action == "resume":
        return resume(ctx, **kw)
    if action == "update-image":
        return update_image(ctx, tag or "", **kw)
    if action == "rollback-image":
        return rollback_image(ctx, **kw)
    if action.startswith("teardown-"):
        return teardown(ctx, action.split("-", 1)[1], **kw)
    if action == "migrate":
        return migrate(ctx, single=single, replicas=n, budget_confirmed=True, **kw)
    if action == "rollback-migration":
        return rollback_migration(ctx, **kw)
    raise ValueError(f"unknown action {action!r}; known: {', '.join(ACTIONS)}")


__all__ += ["Confirmation", "describe", "HeadlessOutcome", "run_headless", "run_action", "take_lease"]
