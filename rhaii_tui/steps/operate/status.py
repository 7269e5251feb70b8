"""Operate: the deployment at a glance (`read_status` -> `OpsStatus`)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from ... import manifests as m
from ...cloud.gke import CloudError
from ...config import (
    GATEWAY_NAME,
    GATEWAY_NAMESPACE,
    TPU_MACHINE_TYPE,
    TPU_POOL_NAME,
    DeployConfig,
    cost_per_day,
)
from ..base import Status, StepState
from ..operators import time_scale_of
from ..podlife import Stage, classify
from .common import (
    GATEWAY_API_VERSION, K_IMAGES, K_ZERO, LLMISVC_KIND, _cond, _name, _pool_nodes, _terminating,
    has_prefix_caching, image_tag, llmisvc_image, pod_image, spec_replicas,
)

log = logging.getLogger(__name__)


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
    schedule: Any = None                    # schedule.ZeroSchedule: the scheduled scale-to-zero, if any

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
        before = self.schedule.replicas_before if self.schedule is not None else 0
        return int(self.scaled_to_zero_from or self.replicas_desired or before or self.configured_replicas or 1)

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
        if self.schedule is not None and self.replicas_desired == 0:
            return StepState(Status.SKIPPED, f"Scaled to zero by the schedule ({self.schedule.describe()}); "
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
        if self.schedule is not None:
            rows.append(("Scale to 0", self.schedule.describe()))
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
            "schedule": self.schedule.to_dict() if self.schedule is not None else None,
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


def _read_spend(ctx: Any, nodes: int, info: Any, ages: list[float]) -> Any:
    """The cost meter, or None when the operations cannot be read (the status never fails for it)."""
    from ...spend import read_spend

    try:
        return read_spend(ctx, nodes, info, ages)
    except CloudError as e:
        log.info("cost meter: %s", e)
        return None


def _read_schedule(ctx: Any, isvc: Any, pool_nodes: int) -> Any:
    """The scheduled scale-to-zero (schedule.py), or None; a failure to read it is only logged."""
    from .schedule import read_schedule

    try:
        return read_schedule(ctx, isvc=isvc or {}, pool_nodes=pool_nodes)
    except CloudError as e:
        log.info("scheduled scale-to-zero: %s", e)
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
        st.schedule = _read_schedule(ctx, isvc, st.pool_nodes)
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
