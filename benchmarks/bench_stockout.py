"""Benchmark: how soon step 2 names a TPU stockout, in simulated (guide) time.

A simulated world with scenario "stockout" (europe-west4-a has no TPU v6e capacity): GKE's
node-pool create stays RUNNING ~35 simulated minutes before it fails, while the pool's managed
instance group lists each failed instance creation (Compute listErrors) from ~45 s on, retried
every minute. The cluster is made first (fast-forwarded); then step 2 runs as the wizard runs it
(`steps.cluster.ensure_cluster`: creates the TPU pool, follows the operation, reads the instance
group's errors every ~30 simulated seconds) until it raises the stockout with its options.

Measured per run, in simulated seconds (wall seconds x speed):
  first_error: pool create -> the first failed instance creation (the MIG's listErrors timestamp)
  to_name:     first failed creation -> the wizard names the stockout          (goal <= 120 s)
  diagnosis:   naming -> the options checked live (zones, quotas per region, Spot) are ready
  gke:         pool create -> GKE's own operation failure (what the wizard used to wait for)

    python benchmarks/bench_stockout.py [--speed 30 200] [--runs 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROJECT = "rhaii-demo-project"
ZONE = "europe-west4-a"
CLUSTER = "rhaii-tpu-scaleout-cluster"


def run_once(speed: float) -> dict[str, Any]:
    from rhaii_tui.cloud.gke import CloudError
    from rhaii_tui.config import DeployConfig, StateStore
    from rhaii_tui.sim.testing import run_world
    from rhaii_tui.steps import cluster as cluster_step
    from rhaii_tui.steps.context import StepContext

    with tempfile.TemporaryDirectory() as d, run_world(Path(d) / "world", scenario="stockout", speed=speed) as w:
        gke = w.profile().gke()
        gke.create_cluster(request={"parent": f"projects/{PROJECT}/locations/{ZONE}", "cluster": {
            "name": CLUSTER, "node_pools": [{"name": "default-pool", "initial_node_count": 2,
                                             "config": {"machine_type": "n1-standard-4"}}]}})
        w.fast_forward(301)
        w.wait_until(lambda: w.world.clusters[f"{PROJECT}/{ZONE}/{CLUSTER}"].status == "RUNNING", timeout=60)
        ctx = StepContext(DeployConfig(project=PROJECT, zone=ZONE, cluster=CLUSTER, replicas=3), w.profile(),
                          StateStore(Path(d) / "state"))
        t0 = time.time()
        try:
            cluster_step.ensure_cluster(ctx, poll_max=10.0)
        except CloudError as e:
            err = e
        else:
            raise SystemExit("step 2 did not fail on a stocked-out zone")
        t_done = time.time()
        diag = err.details.get("stockout")
        if err.kind != "stockout" or not diag:
            raise SystemExit(f"expected a named stockout, got {err.kind}: {err.message}")
        op = next(o for o in w.world.operations.values() if o.type == "CREATE_NODE_POOL")
        running = op.status != "DONE"
        return {
            "speed": speed,
            "first_error": (diag["first_error_at"] - op.start) * speed,
            "to_name": (diag["named_at"] - diag["first_error_at"]) * speed,
            "diagnosis": (t_done - diag["named_at"]) * speed,
            "gke": op.duration,
            "op_running_when_named": running,
            "wall_total": t_done - t0,
            "options": [o["key"] for o in diag["options"] if o["available"]],
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speed", type=float, nargs="+", default=[30.0, 200.0],
                    help="simulated seconds per wall second (30: `rhaii-tui --sim`'s default)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    results: dict[str, Any] = {"machine": f"{platform.machine()}, {platform.python_version()}", "speeds": {}}
    for speed in args.speed:
        runs = [run_once(speed) for _ in range(args.runs)]
        med = {k: statistics.median(r[k] for r in runs) for k in ("first_error", "to_name", "diagnosis", "gke",
                                                                   "wall_total")}
        med["max_to_name"] = max(r["to_name"] for r in runs)
        med["all_named_while_running"] = all(r["op_running_when_named"] for r in runs)
        med["options"] = runs[0]["options"]
        results["speeds"][str(speed)] = {"median": med, "runs": runs}
        if not args.json:
            print(f"speed {speed:g}: first failed creation {med['first_error']:.0f} s after the pool create; "
                  f"named {med['to_name']:.0f} s later (max {med['max_to_name']:.0f}); options ready "
                  f"{med['diagnosis']:.0f} s after that; GKE's operation would fail at {med['gke']:.0f} s; "
                  f"named while GKE still RUNNING: {med['all_named_while_running']}; "
                  f"wall {med['wall_total']:.2f} s; options: {', '.join(med['options'])}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
