"""Pod table under load: pod updates per second applied in place, frame times measured.

    python benchmarks/pod_table.py [--seconds 20] [--rate 300] [--pods 100] [--size 120x40] [--json]

The real path of step 5, without a cluster: a producer thread (the role of the pods list-watch)
changes one of `--pods` workload pods at a time, `--rate` times per second, moving it through the
guide's lifecycle (Pending, Init:0/1, PodInitializing, Running 0/1, Running 1/1, the odd restart
and back), and applies each change to a `steps.podlife.PodTable` under a lock, collecting the
row diffs (as `steps.deploy.DeployWatch` does). The UI thread drains the diffs at 10 Hz into
`widgets.pod_table.PodTableWidget.apply_diffs` (only changed cells reach DataTable.update_cell)
and recomputes the time-dependent cells once a second (`PodTable.tick`, in a thread; its diffs
join the same queue), as the deploy screen does.

Measured under Textual's headless driver (`App.run_test`), with each frame's ANSI built as a
terminal driver would (`CompositorUpdate.render_segments`; headless skips only the write):
- frame time: every screen update (layout + compositor + ANSI),
- UI work per drain (apply_diffs), and the tick's time (off the UI thread),
- loop lag: a 60 Hz probe timer; an interval longer than two frame periods (33 ms) is a dropped
  frame (the UI thread was busy through a whole frame slot).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import instrument_frames, machine, pct  # noqa: E402
from textual.app import App, ComposeResult  # noqa: E402

from rhaii_tui.steps.podlife import PodTable  # noqa: E402
from rhaii_tui.widgets.pod_table import PodTableWidget  # noqa: E402

FRAME = 1 / 60


def ts(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


STAGES = ("pending", "init", "initialized", "starting", "ready")


def make_pod(i: int, stage: str, restarts: int, created: float, since: float) -> dict:
    name = f"qwen-3b-tpu-svc-kserve-6f7d9c8b5-{i:05d}"
    node = f"gke-rhaii-tpu-scaleout-c-tpu-pool-5e6f7a8b-{i:04d}"
    conds = []
    status: dict = {"phase": "Pending", "conditions": conds}
    spec: dict = {"containers": [{"name": "main"}], "initContainers": [{"name": "storage-initializer"}]}
    if stage == "pending":
        conds.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                      "message": "0/5 nodes are available", "lastTransitionTime": ts(since)})
    else:
        spec["nodeName"] = node
        conds.append({"type": "PodScheduled", "status": "True", "lastTransitionTime": ts(created)})
    if stage == "init":
        status["initContainerStatuses"] = [{"name": "storage-initializer", "ready": False, "restartCount": 0,
                                            "state": {"running": {"startedAt": ts(since)}}}]
    if stage in ("initialized", "starting", "ready"):
        status["initContainerStatuses"] = [{"name": "storage-initializer", "ready": False, "restartCount": 0,
                                            "state": {"terminated": {"exitCode": 0, "finishedAt": ts(since)}}}]
        conds.append({"type": "Initialized", "status": "True", "lastTransitionTime": ts(since)})
    if stage == "initialized":
        status["containerStatuses"] = [{"name": "main", "ready": False, "restartCount": restarts,
                                        "state": {"waiting": {"reason": "PodInitializing"}}}]
    if stage in ("starting", "ready"):
        status["phase"] = "Running"
        ready = stage == "ready"
        conds.append({"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": ts(since)})
        status["containerStatuses"] = [{"name": "main", "ready": ready, "restartCount": restarts,
                                        "state": {"running": {"startedAt": ts(since)}}}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "rhaii-inference", "uid": f"uid-{i}",
                         "creationTimestamp": ts(created), "resourceVersion": "1"},
            "spec": spec, "status": status}


class BenchApp(App):
    def compose(self) -> ComposeResult:
        yield PodTableWidget(id="pods")


async def run(args) -> dict:
    width, height = (int(x) for x in args.size.split("x"))
    app = BenchApp()
    frames: list[float] = []
    drains: list[float] = []
    ticks: list[float] = []
    intervals: list[float] = []
    lock = threading.Lock()
    pending: list = []
    now = time.time()
    table = PodTable(time_scale=1.0)
    rng = random.Random(7)
    state = {i: [rng.randrange(len(STAGES)), 0, now - rng.uniform(60, 900), now - rng.uniform(1, 60)]
             for i in range(args.pods)}
    for i, (stage, restarts, created, since) in state.items():
        pending += table.apply("ADDED", make_pod(i, STAGES[stage], restarts, created, since))
    async with app.run_test(size=(width, height)) as pilot:
        widget = app.query_one(PodTableWidget)
        for i in range(args.pods):
            widget.labels[f"rhaii-inference/qwen-3b-tpu-svc-kserve-6f7d9c8b5-{i:05d}"] = f"r{i + 1}"
        widget.apply_diffs(pending)
        pending.clear()
        await pilot.pause(0.3)
        instrument_frames(app, frames)
        stop = threading.Event()
        updates = [0]

        def producer() -> None:
            start = time.perf_counter()
            sent = 0
            while not stop.is_set():
                due = int((time.perf_counter() - start) * args.rate)
                while sent < due:
                    i = rng.randrange(args.pods)
                    s = state[i]
                    if rng.random() < 0.05:
                        s[1] += 1  # a restart
                    else:
                        s[0] = (s[0] + 1) % len(STAGES)
                    s[3] = time.time()
                    diffs = table.apply("MODIFIED", make_pod(i, STAGES[s[0]], s[1], s[2], s[3]))
                    with lock:
                        pending.extend(diffs)
                    sent += 1
                updates[0] = sent
                time.sleep(0.002)

        def drain() -> None:
            with lock:
                diffs = pending[:]
                pending.clear()
            if diffs:
                t0 = time.perf_counter()
                widget.apply_diffs(diffs)
                drains.append(time.perf_counter() - t0)

        def tick() -> None:
            # the time-dependent cells, recomputed off the UI thread (as the deploy screen does);
            # the diffs join the queue the 10 Hz drain applies, in order
            def work() -> None:
                t0 = time.perf_counter()
                with lock:
                    pending.extend(table.tick())
                ticks.append(time.perf_counter() - t0)

            threading.Thread(target=work, daemon=True).start()

        last = [time.perf_counter()]

        def probe() -> None:
            t = time.perf_counter()
            intervals.append(t - last[0])
            last[0] = t

        app.set_interval(0.1, drain)
        app.set_interval(1.0, tick)
        app.set_interval(FRAME, probe)
        cell_updates0 = widget.cell_updates
        thread = threading.Thread(target=producer, daemon=True)
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        thread.start()
        await asyncio.sleep(args.seconds)
        stop.set()
        thread.join()
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        await pilot.pause(0.3)
        with lock:
            model = dict(table.rows())
        mismatched = [k for k in widget.row_keys()
                      if any(widget.model(k).get(c) != v for c, v in model[k].items())]
        intervals = intervals[5:]
        late = [x for x in intervals if x > 2 * FRAME]
        return {
            "seconds": round(elapsed, 2),
            "pods": args.pods,
            "target_updates_per_s": args.rate,
            "updates_per_s": round(updates[0] / elapsed, 1),
            "cell_updates_per_s": round((widget.cell_updates - cell_updates0) / elapsed, 1),
            "frames": len(frames), "frames_per_s": round(len(frames) / elapsed, 1),
            "frame_ms": {"p50": round(pct(frames, 50) * 1000, 2), "p99": round(pct(frames, 99) * 1000, 2),
                         "max": round(max(frames) * 1000, 2) if frames else None},
            "drain_ms": {"p50": round(pct(drains, 50) * 1000, 2), "p99": round(pct(drains, 99) * 1000, 2),
                         "max": round(max(drains) * 1000, 2) if drains else None},
            "tick_ms": {"p50": round(pct(ticks, 50) * 1000, 2), "max": round(max(ticks) * 1000, 2) if ticks else None},
            "loop_probe_interval_ms": {"p50": round(pct(intervals, 50) * 1000, 2),
                                       "p99": round(pct(intervals, 99) * 1000, 2),
                                       "max": round(max(intervals) * 1000, 2) if intervals else None},
            "dropped_frames": len(late),
            "probe_intervals": len(intervals),
            "table_matches_model": not mismatched and set(widget.row_keys()) == set(model),
            "cpu_share": round(cpu / elapsed, 2),
        }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--rate", type=float, default=300.0, help="pod updates per second")
    p.add_argument("--pods", type=int, default=100)
    p.add_argument("--size", default="120x40")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    res = asyncio.run(run(args))
    res["machine"] = machine()
    if args.json:
        print(json.dumps(res))
        return 0
    print(json.dumps(res, indent=2))
    ok = res["dropped_frames"] == 0 and res["table_matches_model"] and res["updates_per_s"] >= 0.95 * args.rate
    print(f"\n{res['updates_per_s']} pod updates/s, frame p99 {res['frame_ms']['p99']} ms, drain p99 "
          f"{res['drain_ms']['p99']} ms, dropped frames {res['dropped_frames']} of {res['probe_intervals']} "
          f"-> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
