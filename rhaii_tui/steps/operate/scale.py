"""Operate: scale the service and the TPU node pool together (`plan_scale`, `scale`, the quota check)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

from ... import manifests as m
from ...cloud.gke import CloudError
from ...config import CHIPS_PER_REPLICA, TPU_POOL_NAME, cost_per_day
from .common import K_ZERO, LLMISVC_KIND, OpEvent, OpResult, READY_TIMEOUT, Runner, _remember_config, _run
from .status import OpsStatus, read_status

log = logging.getLogger(__name__)


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
    from ...cloud.quotas import tpu_quota

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
