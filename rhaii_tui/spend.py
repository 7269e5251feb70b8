"""The cost meter: what the deployment has cost so far, from the cloud's own times.

- The cluster (control plane and default pool): `CLUSTER_OVERHEAD_PER_DAY` from the cluster's
  createTime until now.
- The TPU pool: node-hours actually run, at the configured price per node-hour. The pool's size over
  time comes from its GKE operations (CREATE_NODE_POOL, SET_NODE_POOL_SIZE, DELETE_NODE_POOL: when
  each finished) and the size each one set (the create's initial node count; a resize's size from the
  transcript entry naming that operation); the last stretch, up to now, uses the TPU nodes there are
  now (the Kubernetes view).

Durations are the connection's time (`time_scale`: guide seconds per wall second; 1.0 in Google
Cloud), so a simulated day costs a day. No textual here.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Iterable

from .config import CLUSTER_OVERHEAD_PER_DAY, TPU_POOL_NAME

POOL_OPS = ("CREATE_NODE_POOL", "SET_NODE_POOL_SIZE", "DELETE_NODE_POOL")
_NUM_NODES = re.compile(r"--num-nodes[ =](\d+)")
_OP_NAME = re.compile(r"operation[ :]+([\w.-]+)")


@dataclass
class Spend:
    per_day_usd: float
    spent_usd: float
    since: str                 # the cluster's createTime ("" without a cluster)
    tpu_node_hours: float = 0.0
    cluster_hours: float = 0.0

    @property
    def billable(self) -> bool:
        return bool(self.since)

    def to_dict(self) -> dict[str, Any]:
        return {"per_day_usd": round(self.per_day_usd, 2), "spent_usd": round(self.spent_usd, 2),
                "since": self.since, "tpu_node_hours": round(self.tpu_node_hours, 3),
                "cluster_hours": round(self.cluster_hours, 3)}

    def text(self) -> str:
        return f"${self.spent_usd:,.2f} spent · ≈ ${self.per_day_usd:,.2f}/day"


def sizes_from_transcript(entries: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Operation name -> the node count its call asked for (from the transcript's gcloud lines)."""
    out: dict[str, int] = {}
    for e in entries:
        cmd, outcome = str(e.get("command") or ""), str(e.get("outcome") or "")
        if not cmd.startswith("gcloud container") or not e.get("ok"):
            continue
        m, o = _NUM_NODES.search(cmd), _OP_NAME.search(outcome)
        if m and o:
            out[o.group(1)] = int(m.group(1))
        if o and " node-pools delete " in cmd:
            out[o.group(1)] = 0
    return out


def tpu_node_seconds(ops: Iterable[Any], *, now: float, current_nodes: int, initial_nodes: int = 0,
                     sizes: dict[str, int] | None = None, pool: str = TPU_POOL_NAME,
                     node_ages: Iterable[float] | None = None) -> float:
    """Node-seconds (wall) the TPU pool has run: a step function of its size, changed at the end of
    each finished, successful pool operation; the stretch after the last one at `current_nodes`.
    Without any pool operation (GKE keeps them for a limited time), the current nodes' own ages."""
    from .cloud.gke import parse_time

    sizes = sizes or {}
    events: list[tuple[float, int | None]] = []
    for op in ops:
        if op.op_type not in POOL_OPS or not op.done or op.failed:
            continue
        if pool and op.target and not re.search(rf"/nodePools/{re.escape(pool)}/?$", op.target):
            continue
        end = parse_time(op.end_time) or parse_time(op.start_time)
        if end is None:
            continue
        if op.op_type == "DELETE_NODE_POOL":
            size: int | None = 0
        elif op.name in sizes:
            size = sizes[op.name]
        elif op.op_type == "CREATE_NODE_POOL":
            size = initial_nodes or None
        else:
            size = None
        events.append((end, size))
    events.sort(key=lambda e: e[0])
    if not events:
        return float(sum(max(0.0, a) for a in (node_ages or ())))
    total, count, prev = 0.0, 0, None
    for i, (t, size) in enumerate(events):
        if prev is not None:
            total += max(0.0, min(t, now) - prev) * count
        count = size if size is not None else current_nodes
        prev = t
    if prev is not None:
        total += max(0.0, now - prev) * current_nodes
    return total


def compute(*, cluster_create_time: str, ops: Iterable[Any], current_nodes: int, price_per_node_hour: float,
            time_scale: float = 1.0, initial_nodes: int = 0, sizes: dict[str, int] | None = None,
            now: float | None = None, overhead_per_day: float = CLUSTER_OVERHEAD_PER_DAY,
            node_ages: Iterable[float] | None = None) -> Spend:
    from .cloud.gke import parse_time
    from .config import cost_per_day

    now = time.time() if now is None else now
    created = parse_time(cluster_create_time) if cluster_create_time else None
    if created is None:
        return Spend(0.0, 0.0, "")
    scale = time_scale if time_scale > 0 else 1.0
    cluster_h = max(0.0, now - created) * scale / 3600.0
    node_h = tpu_node_seconds(ops, now=now, current_nodes=current_nodes, initial_nodes=initial_nodes,
                              sizes=sizes, node_ages=node_ages) * scale / 3600.0
    spent = cluster_h * overhead_per_day / 24.0 + node_h * price_per_node_hour
    return Spend(cost_per_day(current_nodes, price_per_node_hour), spent, cluster_create_time, node_h, cluster_h)


def read_spend(ctx: Any, current_nodes: int, info: Any = None, node_ages: Iterable[float] | None = None) -> Spend:
    """The cost meter for the context's target (reads the cluster and its operations). Raises CloudError."""
    from .steps.operators import time_scale_of

    cfg = ctx.cfg
    info = info if info is not None else ctx.cluster()
    if info is None:
        return Spend(0.0, 0.0, "")
    ops = ctx.gke.list_operations(cfg.cluster, running_only=False)
    pool = info.pool(TPU_POOL_NAME)
    try:
        entries = ctx.transcript.entries()
    except Exception:  # noqa: BLE001 - no transcript: the pool's own counts
        entries = []
    return compute(cluster_create_time=info.create_time, ops=ops, current_nodes=current_nodes,
                   price_per_node_hour=float(cfg.price_per_node_hour), time_scale=time_scale_of(ctx),
                   initial_nodes=pool.initial_node_count if pool else 0, sizes=sizes_from_transcript(entries),
                   node_ages=node_ages)


__all__ = ["Spend", "compute", "read_spend", "read_meter", "tpu_node_seconds", "sizes_from_transcript"]


def read_meter(ctx: Any) -> "Spend | None":
    """The cost meter for a header: None when nothing billable exists (no cluster) or it cannot be
    read. A few reads: the cluster, its TPU nodes, its operations."""
    from .cloud.gke import CloudError

    try:
        info = ctx.cluster()
        if info is None:
            return None
        nodes, ages = 0, []
        if info.pool(TPU_POOL_NAME) is not None and ctx.kube_or_none() is not None:
            from .steps.cluster import _pool_rows, tpu_nodes

            rows = _pool_rows(tpu_nodes(ctx))
            nodes, ages = len(rows), [r.age_seconds for r in rows]
        s = read_spend(ctx, nodes, info, ages)
    except CloudError:
        return None
    return s if s.billable else None
