"""Operate, headless (`rhaii-tui ops ...`): confirmation, the deploy lease, the action."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

from ...cloud.gke import CloudError
from .common import ACTIONS, OpEvent, OpResult
from .scale import scale
from .zero import resume, scale_to_zero
from .schedule import cancel_schedule, schedule_zero
from .image import rollback_image, update_image
from .migrate import migrate, rollback_migration
from .teardown import teardown
from .confirm import Confirmation, describe

log = logging.getLogger(__name__)


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
    conf = describe(ctx, action, n=n, tag=tag, single=single, deadline=options.get("deadline"))
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
    from ...lease import Lease, LeaseHeld

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
    if action == "schedule-zero":
        return schedule_zero(ctx, **kw)
    if action == "cancel-schedule-zero":
        return cancel_schedule(ctx, **kw)
    raise ValueError(f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
