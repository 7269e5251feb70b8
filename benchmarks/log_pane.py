"""Log pane under load: 3 streams at a combined rate, key presses answered meanwhile, memory.

    python benchmarks/log_pane.py [--seconds 60] [--rate 50000] [--streams 3] [--size 120x40]
                                  [--max-lines 10000] [--ring-lines 50000] [--json]

A minimal Textual app holds one `rhaii_tui.widgets.log_pane.LogPane` (pod and container pickers on
"all": every line is prefixed with its replica and container, as in step 5) and runs under Textual's
headless driver (`App.run_test`), at the given terminal size. Rendering is real (the compositor
renders every frame's visible lines); the headless driver skips only the terminal write, so each
frame's ANSI output is built here as a terminal driver would (`CompositorUpdate.render_segments`)
and counted in the frame time.

- Producers: `--streams` threads (the role of `cloud.kube.follow_logs` threads), each sending
  batches every 10 ms, paced to rate/streams lines per second; lines are vLLM-like (~110 chars)
  with a sequence number. They call `LogPane.ingest` exactly as step 5's log followers do.
- Key presses: every 200 ms a key event goes into the app through the driver, as Pilot.press does
  (`press_key`), for a key bound to an action that records when it ran and refreshes a label;
  latency = press -> action ran, and press -> the next frame painted after it.
- Memory: resident set size (VmRSS) before the run, when 1,000,000 lines have been received, at
  the end, and sampled along the run (to see it level off: the pane keeps a bounded ring and the
  Log a bounded list; what stays above the start is the allocator's high-water mark).
- Frames: every screen update (layout + compositor + ANSI) is timed.
Received/s counts lines the pane took in on the UI thread (after the producers' queue): if the UI
fell behind, lines would be dropped and counted (`dropped`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import instrument_frames, machine, pct  # noqa: E402
from textual.app import App, ComposeResult  # noqa: E402
from textual.binding import Binding  # noqa: E402
from textual.widgets import Label  # noqa: E402

from rhaii_tui.widgets.log_pane import LogPane  # noqa: E402


def rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class BenchApp(App):
    BINDINGS = [Binding("k", "probe", "probe")]
    CSS = "#probe { height: 1; dock: top; }"

    def __init__(self, max_lines: int, ring_lines: int) -> None:
        super().__init__()
        self.max_lines = max_lines
        self.ring_lines = ring_lines
        self.probe_at: float | None = None
        self.painted_at: float | None = None
        self.probes = 0

    def compose(self) -> ComposeResult:
        yield Label("probe 0", id="probe")
        yield LogPane(id="pane", max_lines=self.max_lines, ring_lines=self.ring_lines)

    def action_probe(self) -> None:
        self.probe_at = time.perf_counter()
        self.probes += 1
        self.query_one("#probe", Label).update(f"probe {self.probes}")
        self.call_after_refresh(self._painted)

    def _painted(self) -> None:
        self.painted_at = time.perf_counter()


def press_key(app: App, key: str) -> None:
    """Send a key event into the app as Pilot.press does (the driver's message), without Pilot's
    wait for idle and animations afterwards (under a constant log flood "idle" comes late, which
    would only thin out the samples; the latency is measured to the action, not to idle)."""
    from textual import events

    event = events.Key(key, key)
    event.set_sender(app)
    app._driver.send_message(event)


LINE = ("(EngineCore_DP0 pid=187) INFO 11-23 10:{m:02d}:{s:02d} [tpu_model_runner.py:1507] "
        "Compiling the model with input shape ({n}) for the TPU, step {i}")


def producer(pane: LogPane, stream: int, rate: float, stop: threading.Event, counts: list[int]) -> None:
    name = f"qwen-3b-tpu-svc-kserve-6f7d9c8b5-{stream:05d}"
    start = time.perf_counter()
    sent = 0
    while not stop.is_set():
        due = int((time.perf_counter() - start) * rate)
        n = due - sent
        if n > 0:
            batch = [LINE.format(m=(sent + i) // 60 % 60, s=(sent + i) % 60, n=128 * (1 + (sent + i) % 8), i=sent + i)
                     for i in range(n)]
            pane.ingest(name, "main", batch)
            sent += n
            counts[stream] = sent
        time.sleep(0.01)


async def run(args) -> dict:
    width, height = (int(x) for x in args.size.split("x"))
    app = BenchApp(args.max_lines, args.ring_lines)
    frames: list[float] = []
    key_latency: list[float] = []
    paint_latency: list[float] = []
    result: dict = {}
    async with app.run_test(size=(width, height)) as pilot:
        await pilot.pause(0.2)
        pane = app.query_one(LogPane)
        names = [f"qwen-3b-tpu-svc-kserve-6f7d9c8b5-{i:05d}" for i in range(args.streams)]
        pane.set_sources([(n, f"r{i + 1}") for i, n in enumerate(names)])
        await pilot.pause(0.1)
        instrument_frames(app, frames)
        rss_before = rss_mb()
        stop = threading.Event()
        counts = [0] * args.streams
        per_stream = args.rate / args.streams
        threads = [threading.Thread(target=producer, args=(pane, i, per_stream, stop, counts), daemon=True)
                   for i in range(args.streams)]
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        rss_at_1m = None
        received_at_1m = None
        rss_timeline: list[tuple[float, int, float]] = []  # (seconds, lines received, RSS MB)
        next_sample = 0.0
        while time.perf_counter() - t0 < args.seconds:
            if time.perf_counter() - t0 >= next_sample:
                rss_timeline.append((round(time.perf_counter() - t0, 1), pane.received, round(rss_mb(), 1)))
                next_sample += max(1.0, args.seconds / 12)
            await asyncio.sleep(0.2)
            app.probe_at = app.painted_at = None
            pressed = time.perf_counter()
            press_key(app, "k")
            for _ in range(1000):
                if app.painted_at is not None:
                    break
                await asyncio.sleep(0.001)
            if app.probe_at is not None:
                key_latency.append(app.probe_at - pressed)
            if app.painted_at is not None:
                paint_latency.append(app.painted_at - pressed)
            if rss_at_1m is None and pane.received >= 1_000_000:
                rss_at_1m = rss_mb()
                received_at_1m = pane.received
        elapsed = time.perf_counter() - t0
        stop.set()
        for t in threads:
            t.join()
        produced = sum(counts)
        await pilot.pause(0.3)
        cpu = time.process_time() - cpu0
        log = pane.query_one("Log")
        result = {
            "seconds": round(elapsed, 2),
            "target_rate": args.rate,
            "streams": args.streams,
            "produced": produced,
            "received": pane.received,
            "received_per_s": round(pane.received / elapsed),
            "dropped": pane.dropped,
            "written_to_log": pane.written,
            "log_lines_kept": log.line_count,
            "ring_lines_kept": pane._ring_count,
            "key_presses": len(key_latency),
            "key_to_action_ms": {"p50": round(pct(key_latency, 50) * 1000, 1),
                                 "p99": round(pct(key_latency, 99) * 1000, 1),
                                 "max": round(max(key_latency) * 1000, 1) if key_latency else None},
            "key_to_painted_ms": {"p50": round(pct(paint_latency, 50) * 1000, 1),
                                  "p99": round(pct(paint_latency, 99) * 1000, 1),
                                  "max": round(max(paint_latency) * 1000, 1) if paint_latency else None},
            "frames": len(frames),
            "frames_per_s": round(len(frames) / elapsed, 1),
            "frame_ms": {"p50": round(pct(frames, 50) * 1000, 2), "p99": round(pct(frames, 99) * 1000, 2),
                         "max": round(max(frames) * 1000, 2) if frames else None},
            "rss_mb": {"before": round(rss_before, 1),
                       "at_1M_lines": round(rss_at_1m, 1) if rss_at_1m else None,
                       "received_at_that_point": received_at_1m,
                       "end": round(rss_mb(), 1),
                       "timeline_s_lines_mb": rss_timeline},
            "cpu_share": round(cpu / elapsed, 2),
            "following": pane.following,
        }
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--rate", type=float, default=50_000.0, help="combined lines per second")
    p.add_argument("--streams", type=int, default=3)
    p.add_argument("--size", default="120x40")
    p.add_argument("--max-lines", type=int, default=10_000)
    p.add_argument("--ring-lines", type=int, default=50_000)
    p.add_argument("--json", action="store_true", help="print only the JSON result")
    args = p.parse_args()
    res = asyncio.run(run(args))
    res["machine"] = machine()
    if args.json:
        print(json.dumps(res))
        return 0
    print(json.dumps(res, indent=2))
    ok = (res["received_per_s"] >= 0.98 * args.rate and res["dropped"] == 0
          and res["key_to_action_ms"]["p99"] < 100)
    print(f"\n{res['received_per_s']:,} lines/s received of {args.rate:,.0f} targeted, dropped {res['dropped']}, "
          f"key p99 {res['key_to_action_ms']['p99']} ms (painted p99 {res['key_to_painted_ms']['p99']} ms), "
          f"RSS at 1M lines {res['rss_mb']['at_1M_lines']} MB -> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
