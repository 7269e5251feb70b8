"""Operate: the guide's "Scale to Zero" and "Scale Back Up" (`scale_to_zero`, `resume`)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from ...config import TPU_POOL_NAME, cost_per_day
from .common import K_ZERO, OpEvent, OpResult, READY_TIMEOUT, Runner, _run
from .status import read_status
from .scale import check_quota
from .schedule import restore_after_schedule

log = logging.getLogger(__name__)


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
        restored = restore_after_schedule(run)   # a scheduled scale-to-zero: its objects go, replicas back
        if restored is not None:   # the autoscaler may have removed nodes until its autoscaling went off
            st = read_status(ctx, with_operation=False)
        n = restored or st.resume_size
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
            from .. import verify as v

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
