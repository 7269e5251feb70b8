"""Startup: time from process start to the first painted frame, the wizard vs a minimal Textual app.

    python benchmarks/startup.py [--runs 15] [--size 120x40]

Each run is a fresh process in a pseudo-terminal (a real terminal for Textual's driver) with
RHAII_TUI_EXIT_AFTER_PAINT=1: the app stamps the wall clock right after its first refresh
(`first-paint`) and, for the wizard, which paints its shell first and builds the start page right
after, once more when the start page has painted (`page-ready`); then it exits and prints both.
Elapsed = stamp - the time just before the spawn. Both are reported.
Variants run interleaved (a, b, c, a, b, c, ...) so drift on the machine hits all of them alike:

  baseline    a minimal Textual app that paints one Label
  wizard-ui   rhaii_tui.app.run_wizard with a stub simulated profile (the UI alone)
  rhaii --sim `python -m rhaii_tui --sim`: the CLI (arguments, config), the UI; the CLI hands the
              connection (start or reuse the simulated world) to run_wizard(connect=...), which
              runs it in a thread after the first frame

The simulated world for `--sim` lives in a temporary directory: a warm-up run starts it (not
measured; a user's first `--sim` pays that once) and it is stopped at the end.
Goal: median(rhaii --sim) / median(baseline) <= 1.3.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import pty
import re
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAINT_RE = re.compile(rb"first-paint (\d+\.\d+)(?: cpu (\d+\.\d+))?")
READY_RE = re.compile(rb"page-ready (\d+\.\d+)")

BASELINE = r"""
import os, sys, time
from textual.app import App
from textual.widgets import Label

class Minimal(App):
    def compose(self):
        yield Label("hello")

    def on_mount(self):
        self.painted = None
        if os.environ.get("RHAII_TUI_EXIT_AFTER_PAINT"):
            self.call_after_refresh(self._done)

    def _done(self):
        self.painted = time.time()
        self.cpu = time.process_time()
        self.exit()

app = Minimal()
app.run()
if app.painted:
    print(f"first-paint {app.painted:.6f} cpu {app.cpu:.6f}", file=sys.stderr)
"""

WIZARD_UI = r"""
from rhaii_tui.app import run_wizard
from rhaii_tui.config import DeployConfig

class Profile:
    simulated = True
    label = "Simulated cloud"

raise SystemExit(run_wizard(DeployConfig(project="demo-project-01"), Profile(), None))
"""

def run_in_pty(cmd: list[str], env: dict[str, str], size: tuple[int, int],
               timeout: float = 60.0) -> tuple[float, float, float]:
    """Seconds from spawn to the first painted frame, to the start page's first frame (the same
    for an app that paints everything in its first frame), and the child's CPU seconds at its
    first frame (less sensitive than wall time to other load on the machine)."""
    master, slave = pty.openpty()
    cols, rows = size
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    start = time.time()
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT,
                            start_new_session=True, close_fds=True)
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        else:
            raise TimeoutError(f"{' '.join(cmd[:3])}... did not paint within {timeout:.0f} s")
    finally:
        with contextlib.suppress(ProcessLookupError):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        os.close(master)
    match = PAINT_RE.search(bytes(out))
    if not match:
        tail = bytes(out[-600:]).decode("utf-8", "replace")
        raise RuntimeError(f"no first-paint line from {cmd[:3]} (exit {proc.returncode}); output tail:\n{tail}")
    ready = READY_RE.search(bytes(out))
    first = float(match.group(1)) - start
    cpu = float(match.group(2)) if match.group(2) else float("nan")
    return first, (float(ready.group(1)) - start if ready else first), cpu


def stop_world(state_dir: Path) -> None:
    """Stop the simulated world the warm-up started (by its pid from endpoints.json)."""
    try:
        pid = int(json.loads((state_dir / "endpoints.json").read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # let it save and exit before its directory goes
            os.kill(pid, 0)
            time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=15, help="measured runs per variant (default 15, at least 10)")
    p.add_argument("--size", default="120x40", help="terminal size COLSxROWS (default 120x40)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON document")
    args = p.parse_args(argv)
    if args.runs < 10:
        p.error("--runs must be at least 10")
    cols, rows = (int(x) for x in args.size.lower().split("x"))

    with tempfile.TemporaryDirectory(prefix="rhaii-startup-", ignore_cleanup_errors=True) as tmp:
        tmp_path = Path(tmp)
        sim_dir = tmp_path / "sim"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTUAL")}
        env.update(TERM="xterm-256color", COLORTERM="truecolor", RHAII_TUI_EXIT_AFTER_PAINT="1",
                   RHAII_TUI_STATE_DIR=str(tmp_path / "state"), PYTHONPATH=str(ROOT))
        env.pop("PROJECT_ID", None)
        py = sys.executable
        variants = {
            "baseline": [py, "-c", BASELINE],
            "wizard-ui": [py, "-c", WIZARD_UI],
            "rhaii --sim": [py, "-m", "rhaii_tui", "--sim", "--sim-state", str(sim_dir)],
        }
        try:
            for name, cmd in variants.items():  # warm-up: page cache, .pyc files, the simulated world
                run_in_pty(cmd, env, (cols, rows), timeout=120)
            times: dict[str, list[float]] = {name: [] for name in variants}
            ready: dict[str, list[float]] = {name: [] for name in variants}
            cpu: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(args.runs):
                for name, cmd in variants.items():
                    first, page, cpu_s = run_in_pty(cmd, env, (cols, rows))
                    times[name].append(first)
                    ready[name].append(page)
                    cpu[name].append(cpu_s)
        finally:
            stop_world(sim_dir)

    def summary(t: list[float], base: list[float]) -> dict[str, float]:
        return {"median_ms": round(statistics.median(t) * 1000, 1), "min_ms": round(min(t) * 1000, 1),
                "max_ms": round(max(t) * 1000, 1),
                "ratio_to_baseline": round(statistics.median(t) / statistics.median(base), 2)}

    result = {
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "textual": _textual_version()},
        "runs": args.runs, "size": f"{cols}x{rows}",
        "load_average_1m": round(os.getloadavg()[0], 2),
        "first_frame": {name: summary(t, times["baseline"]) for name, t in times.items()},
        "start_page_ready": {name: summary(t, times["baseline"]) for name, t in ready.items()},
        "first_frame_cpu": {name: summary(t, cpu["baseline"]) for name, t in cpu.items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        m = result["machine"]
        print(f"startup, {args.runs} runs each, {cols}x{rows} pty; nproc {m['nproc']}, Python {m['python']}, "
              f"Textual {m['textual']}; load average at the end {result['load_average_1m']}")
        for title, key in (("first frame (shell painted), wall from spawn", "first_frame"),
                           ("start page painted, wall from spawn", "start_page_ready"),
                           ("first frame, CPU seconds of the process", "first_frame_cpu")):
            print(f"\n{title}")
            print(f"{'variant':<14}{'median ms':>10}{'min ms':>9}{'max ms':>9}{'ratio':>8}")
            for name, r in result[key].items():
                print(f"{name:<14}{r['median_ms']:>10.1f}{r['min_ms']:>9.1f}{r['max_ms']:>9.1f}"
                      f"{r['ratio_to_baseline']:>8.2f}")
        ratio = result["first_frame"]["rhaii --sim"]["ratio_to_baseline"]
        print(f"\ngoal: first frame of rhaii --sim / baseline <= 1.30 -> {ratio:.2f} "
              f"{'OK' if ratio <= 1.3 else 'MISSED'}")
    return 0


def _textual_version() -> str:
    from importlib.metadata import version

    return version("textual")


if __name__ == "__main__":
    raise SystemExit(main())
