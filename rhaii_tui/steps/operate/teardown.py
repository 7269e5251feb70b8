"""Operate: teardown of the service, the TPU node pool or the cluster (`plan_teardown`, `teardown`)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

from ... import manifests as m
from ...cloud.gke import CloudError
from ...config import (
    CLUSTER_OVERHEAD_PER_DAY,
    GATEWAY_NAMESPACE,
    TPU_MACHINE_TYPE,
    TPU_POOL_NAME,
    DeployConfig,
    cost_per_day,
)
from .common import K_ZERO, LLMISVC_KIND, OpEvent, OpResult, Runner, _run
from .status import OpsStatus, read_status

log = logging.getLogger(__name__)


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
    from ..cluster import _send

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
