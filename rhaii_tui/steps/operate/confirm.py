"""Operate: one description of an action for the screen's ConfirmCost and the CLI's --yes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ...config import CHIPS_PER_REPLICA, TPU_POOL_NAME
from .common import ACTIONS, image_tag
from .status import OpsStatus, read_status
from .scale import plan_scale
from .migrate import _saved_single
from .teardown import plan_teardown

log = logging.getLogger(__name__)


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
             tag: str | None = None, single: str | None = None, deadline: float | None = None) -> Confirmation:
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
    if action == "schedule-zero":
        from .schedule import fmt_utc

        when = fmt_utc(deadline) if deadline is not None else "the deadline"
        saves = round(now - st.cost_after("scale-to-zero"), 2) if st.pool_nodes else 0.0
        c = Confirmation(action, f"Scale {st.service} to zero at {when}",
                         [f"a CronJob (own ServiceAccount, a Role that may only patch {st.service}) sets "
                          f"{st.service} to 0 replicas at {when}",
                          f"node pool {TPU_POOL_NAME}: autoscaling 0-{max(st.pool_nodes, st.replicas_desired or 0, 1)} "
                          "nodes; GKE removes the idle TPU nodes ~10 min after the deadline",
                          f"saves ≈ ${saves:,.2f}/day from then on; 'ops resume' restores both"],
                         now, st.cost_after("scale-to-zero"), True, destructive=True, what="This will schedule:")
        if not st.pool_exists or not st.exists:
            c.refused = f"There is no TPU node pool {TPU_POOL_NAME}." if not st.pool_exists else \
                f"{st.service} is not deployed."
            c.fix, c.needed = "Nothing to scale to zero: deploy it first (steps 2 and 5).", False
        elif st.pool_nodes == 0:
            # autoscaling on a pool at 0 with replicas waiting would make GKE add TPU nodes until then
            c.refused = f"Node pool {TPU_POOL_NAME} is already at 0 TPU nodes: nothing to schedule."
            c.fix, c.needed = "Resume first ('ops resume') if it should serve until a deadline.", False
        return c
    if action == "cancel-schedule-zero":
        sched = st.schedule
        c = Confirmation(action, "Cancel the scheduled scale-to-zero",
                         ["delete the CronJob, its ServiceAccount, Role and RoleBinding"
                          + (f" ({sched.describe()})" if sched else ""),
                          f"node pool {TPU_POOL_NAME}: autoscaling back to how it was"],
                         now, now, needed=False, what="This will:")
        return c
    raise ValueError(f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
