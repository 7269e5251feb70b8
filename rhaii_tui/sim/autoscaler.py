"""GKE's cluster autoscaler, scale-down only, for node pools with autoscaling enabled.

A node of such a pool is *unneeded* while no Pod runs on it (Pods that finished, Succeeded or
Failed, and Pods being deleted do not count; DaemonSet and mirror Pods would not either). After
`scale-down-unneeded-time` (GKE's default, 10 minutes of simulated time) of being unneeded, the
autoscaler removes it: the Node object goes, the pool's node count drops by one, never below the
pool's `minNodeCount`. No GKE operation is recorded (the autoscaler resizes the managed instance
group directly, as on GKE). Scale-up (Pending pods) is not modelled: pools grow by setSize.

Only TPU pools scale down here. On GKE the untainted pools (the default pool) run the system
Pods (kube-dns, metrics-server, konnectivity...), which the autoscaler does not evict
(skip-nodes-with-system-pods); the emulator does not run those Pods, so it leaves those pools be.

`unneeded since` is kept in memory (the real autoscaler also starts counting again after a
restart); `World.fast_forward` moves it back with the operations.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

SCALE_DOWN_UNNEEDED_TIME = 600.0  # simulated seconds (cluster-autoscaler --scale-down-unneeded-time=10m)


def autoscaling_of(pool: Any) -> tuple[bool, int, int]:
    """(enabled, min, max) from the pool's autoscaling settings (proto JSON: zeros may be left out)."""
    a = (getattr(pool, "extra", None) or {}).get("autoscaling") or {}
    if not a.get("enabled"):
        return False, 0, 0
    lo = int(a.get("minNodeCount", a.get("totalMinNodeCount", 0)) or 0)
    hi = int(a.get("maxNodeCount", a.get("totalMaxNodeCount", 0)) or 0)
    return True, lo, hi


class ClusterAutoscaler:
    def __init__(self, world: Any):
        self.world = world
        self.unneeded: dict[tuple[str, str], float] = {}  # (cluster key, node name) -> wall time first seen idle

    def shift(self, wall_seconds: float) -> None:
        self.unneeded = {k: t - wall_seconds for k, t in self.unneeded.items()}

    def step(self) -> bool:
        """One pass over every cluster; True when a node was removed."""
        removed = False
        now = self.world.clock.now()
        seen: set[tuple[str, str]] = set()
        for key, c in list(self.world.clusters.items()):
            sim = self.world.sims.get(key)
            if sim is None or c.status not in ("RUNNING", "RECONCILING"):
                continue
            for pool in list(c.pools.values()):
                enabled, lo, _hi = autoscaling_of(pool)
                if not enabled or pool.status != "RUNNING" or self._pool_busy(c, pool) or not pool.tpu_chips_per_node:
                    continue
                try:
                    removed |= self._pool(key, sim, pool, lo, now, seen)
                except Exception:  # noqa: BLE001 - the autoscaler never takes the world down
                    log.exception("cluster autoscaler on %s/%s", key, pool.name)
        self.unneeded = {k: t for k, t in self.unneeded.items() if k in seen}
        return removed

    def _pool_busy(self, c: Any, pool: Any) -> bool:
        return any(op.status != "DONE" and op.project == c.project and op.location == c.location
                   and op.cluster == c.name and op.pool == pool.name for op in self.world.operations.values())

    def _pool(self, key: str, sim: Any, pool: Any, lo: int, now: float, seen: set) -> bool:
        store = sim.store
        nodes = sim.pool_nodes(pool.name)
        busy: set[str] = set()
        for p in store.list(store.type_for("pods"))[0]:
            node = (p.get("spec") or {}).get("nodeName")
            if not node or p["metadata"].get("deletionTimestamp"):
                continue
            if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            if any(r.get("kind") == "DaemonSet" for r in p["metadata"].get("ownerReferences") or []):
                continue
            busy.add(node)
        wait = self.world.clock.wall(SCALE_DOWN_UNNEEDED_TIME)
        count = len(nodes)
        removed = False
        # oldest idle first
        for n in sorted(nodes, key=lambda n: n["metadata"]["name"]):
            name = n["metadata"]["name"]
            k = (key, name)
            if name in busy:
                continue
            seen.add(k)
            since = self.unneeded.setdefault(k, now)
            if now - since < wait or count <= lo:
                continue
            try:
                store.delete(store.type_for("nodes"), None, name)
            except Exception:  # noqa: BLE001 - already gone
                continue
            count -= 1
            removed = True
            self.unneeded.pop(k, None)
            log.info("cluster autoscaler: removed unneeded node %s of pool %s", name, pool.name)
        if removed:
            pool.nodes = count
            pool.target = count
            self.world.mark_dirty()
        return removed


__all__ = ["ClusterAutoscaler", "SCALE_DOWN_UNNEEDED_TIME", "autoscaling_of"]
