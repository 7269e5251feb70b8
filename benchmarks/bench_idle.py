"""Idle cost of the wizard on every page while nothing changes, side by side with a minimal Textual app.

A simulated world in the `deployed` scenario runs in ANOTHER process (`python -m rhaii_tui.sim.serve
--state-dir D --scenario deployed`), so the emulator's own CPU is not counted. Each page (Configure,
1-11, Operate) is measured in a fresh process: the wizard (headless Textual, `App.run_test`) opens on
that page against D's endpoints, settles (`--settle` seconds: the page's first reads, the start-up
probe of every step), then the process's CPU time (`time.process_time()`, all threads: UI loop, watch
threads, workers) is read over `--window` seconds while nothing changes. The minimal app (one Label)
is measured the same way in the same run. Reported: % of one core over the window and RSS at its end.

`--probe` starts the wizard as the command line does (`resume=True`): the start-up probe of every step
(in the settle time) and the periodic re-probe (every 15 s) run; without it, neither does.

`--speed N` runs the world at N simulated seconds per second (default: the emulator's, 30): ages and
times on screen are guide times, so at 30x a minute-precision age changes every 2 s; `--speed 1` is
a real cloud's pace.

`--aged M` lets M simulated minutes pass first (the emulator's `/_emu/fast-forward`): pods older than
10 minutes show ages to the minute, as kubectl does, so nothing on screen changes but once a minute.

Command: `python benchmarks/bench_idle.py [--window 20] [--settle 10] [--pages 0,5,12] [--speed 1] [--probe] [--aged 20]`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import machine  # noqa: E402

PAGE_NAMES = {0: "Configure", 12: "Operate"}


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _measure(app, ready, settle: float, window: float) -> dict:
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app)
        await pilot.pause()
        await asyncio.sleep(settle)
        c0, t0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(window)
        c1, t1 = time.process_time(), time.perf_counter()
        return {"cpu_s": c1 - c0, "wall_s": t1 - t0, "pct": 100 * (c1 - c0) / (t1 - t0), "rss_mb": _rss_mb()}


def one_minimal(settle: float, window: float) -> dict:
    from textual.app import App
    from textual.widgets import Label

    class Minimal(App):
        def compose(self):
            yield Label("hello")

    async def ready(app) -> None:
        return None

    return asyncio.run(_measure(Minimal(), ready, settle, window))


def one_page(page: int, state_dir: str, settle: float, window: float, probe: bool = False) -> dict:
    from rhaii_tui.app import RhaiiApp
    from rhaii_tui.cloud.profile import SimProfile
    from rhaii_tui.config import DeployConfig, StateStore
    from rhaii_tui.sim.serve import running_world

    endpoints = running_world(state_dir)
    if endpoints is None:
        raise SystemExit(f"no simulated world answers on {state_dir}")
    cfg = DeployConfig(project=endpoints["project"])
    store = StateStore(Path(state_dir) / "wizard-state")
    app = RhaiiApp(cfg, profile=SimProfile(Path(state_dir) / "endpoints.json"), state_store=store, start_step=page,
                   resume=probe)

    async def ready(app) -> None:
        await app.start_page_ready.wait()

    return asyncio.run(_measure(app, ready, settle, window))


def _fast_forward(state_dir: str, seconds: float) -> None:
    """Let `seconds` of simulated time pass in the world at once (the emulator's control API)."""
    import urllib.request

    ep = json.loads((Path(state_dir) / "endpoints.json").read_text())
    req = urllib.request.Request(ep["google_api"].rstrip("/") + "/_emu/fast-forward", method="POST",
                                 data=json.dumps({"seconds": seconds}).encode(),
                                 headers={"Authorization": f"Bearer {ep['token']}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:  # noqa: S310 - the local emulator
        r.read()


def _child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--window", type=float, default=20.0, help="seconds of idle measured per page")
    p.add_argument("--settle", type=float, default=10.0, help="seconds after the page is painted before measuring")
    p.add_argument("--pages", default="0,1,2,3,4,5,6,7,8,9,10,11,12")
    p.add_argument("--speed", type=float, default=None, help="simulated seconds per second (default: the emulator's)")
    p.add_argument("--probe", action="store_true",
                   help="the start-up probe and the periodic re-probe run (as in the CLI)")
    p.add_argument("--aged", type=float, default=0.0,
                   help="simulated minutes to let pass before measuring (/_emu/fast-forward): pods older than "
                        "10 min show their age to the minute, as kubectl does, so their ages change once a minute")
    p.add_argument("--one", help=argparse.SUPPRESS)  # child: "minimal" or a page number
    p.add_argument("--state-dir", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one is not None:
        if args.one == "minimal":
            r = one_minimal(args.settle, args.window)
        else:
            r = one_page(int(args.one), args.state_dir, args.settle, args.window, args.probe)
        print(json.dumps(r))
        return 0

    pages = [int(x) for x in args.pages.split(",") if x.strip()]
    m = machine()
    cpu_model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                      if ln.startswith("model name")), "?")
    speed = f", world speed {args.speed:g}" if args.speed is not None else ""
    speed += ", with probes" if args.probe else ""
    speed += f", world aged {args.aged:g} min" if args.aged else ""
    print(f"# machine: {m}, CPU {cpu_model}, load {_load()}; window {args.window:.0f} s, settle {args.settle:.0f} s{speed}")
    common = ["--window", str(args.window), "--settle", str(args.settle)] + (["--probe"] if args.probe else [])
    with tempfile.TemporaryDirectory(prefix="rhaii-idle-") as d:
        world = subprocess.Popen([sys.executable, "-m", "rhaii_tui.sim.serve", "--state-dir", d,
                                  "--scenario", "deployed"] + (["--speed", str(args.speed)] if args.speed else []),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            from rhaii_tui.sim.serve import running_world

            deadline = time.monotonic() + 120
            while running_world(d) is None:
                if world.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the simulated world did not start")
                time.sleep(0.2)
            if args.aged:
                _fast_forward(d, args.aged * 60)
            print("| page | CPU % of a core | RSS MB | load |")
            print("|---|---|---|---|")
            base = _child(["--one", "minimal", *common])
            print(f"| minimal Textual app | {base['pct']:.2f} | {base['rss_mb']:.0f} | {_load()} |", flush=True)
            worst = 0.0
            for page in pages:
                r = _child(["--one", str(page), "--state-dir", d, *common])
                worst = max(worst, r["pct"])
                name = PAGE_NAMES.get(page, f"{page}")
                print(f"| {name} | {r['pct']:.2f} | {r['rss_mb']:.0f} | {_load()} |", flush=True)
            base2 = _child(["--one", "minimal", *common])
            print(f"| minimal Textual app (again) | {base2['pct']:.2f} | {base2['rss_mb']:.0f} | {_load()} |")
            print(f"# worst page {worst:.2f}% of a core (goal <= 1%)")
        finally:
            world.terminate()
            try:
                world.wait(10)
            except subprocess.TimeoutExpired:
                world.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
