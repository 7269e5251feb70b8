"""Sequential vs express deploy, side by side, on fresh simulated worlds.

Two emulator worlds (`rhaii-tui sim serve`, the guide's durations, the emulator's fast clock), one
`rhaii-tui --sim apply --json` in each at the same time: the sequential apply and `apply --express`.
Prints each time to serving in simulated minutes (the "timing" JSON: from the start of the apply to
the first completion verified through the gateway), the ratio and express' critical path.

    python benchmarks/bench_express.py [--speed 30] [--poll 0.2]

Goal (issue #16): express <= 25 simulated minutes and <= 0.6 x sequential.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from rhaii_tui.sim.testing import write_secret_files  # noqa: E402 - from this checkout


def _env(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_TOKEN", "REGISTRY_PASSWORD", "PROJECT_ID", "ZONE", "CLUSTER_NAME", "NAMESPACE")}
    env.update(RHAII_TUI_STATE_DIR=str(state), CLOUDSDK_CONFIG=str(state / "no-gcloud"), PYTHONUNBUFFERED="1",
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    return env


def _secrets(d: Path) -> tuple[Path, Path]:
    return write_secret_files(d, "hf_" + "b3nChMark" * 4)


def _serve(world: Path, env: dict[str, str], speed: float) -> subprocess.Popen:
    world.mkdir(parents=True, exist_ok=True)
    log = open(world / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "rhaii_tui", "sim", "serve", "--state-dir", str(world),
                             "--speed", str(speed)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, cwd=str(ROOT))
    log.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            ep = json.loads((world / "endpoints.json").read_text())
            if ep.get("pid") == proc.pid:
                urllib.request.urlopen(ep["google_api"] + "/_emu/health", timeout=1).read()
                return proc
        except (OSError, ValueError, KeyError):
            pass
        if proc.poll() is not None:
            raise SystemExit(f"sim serve exited: {(world / 'serve.log').read_text()[-2000:]}")
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("sim serve did not start")


def _apply(world: Path, env: dict[str, str], hf: Path, pull: Path, poll: float, express: bool,
           out: dict) -> None:
    cmd = [sys.executable, "-m", "rhaii_tui", "--sim", "--sim-state", str(world), "apply", "--yes", "--json",
           "--hf-token-file", str(hf), "--pull-secret-file", str(pull), "--poll", str(poll)]
    if express:
        cmd.append("--express")
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=3600)
    out["wall_s"] = time.monotonic() - t0
    out["exit"] = r.returncode
    try:
        out["doc"] = json.loads(r.stdout)
    except ValueError:
        out["doc"] = None
        out["stderr"] = r.stderr[-2000:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speed", type=float, default=30.0, help="the emulator's clock: simulated s per wall s")
    ap.add_argument("--poll", type=float, default=0.2, help="apply --poll (wall seconds between checks)")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-express-"))
    hf, pull = _secrets(tmp)
    runs = {"sequential": {}, "express": {}}
    procs = []
    try:
        envs = {}
        for mode in runs:
            state = tmp / mode / "state"
            state.mkdir(parents=True)
            envs[mode] = _env(state)
            procs.append(_serve(tmp / mode / "world", envs[mode], args.speed))
        threads = [threading.Thread(target=_apply, args=(tmp / mode / "world", envs[mode], hf, pull, args.poll,
                                                         mode == "express", runs[mode])) for mode in runs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
    times = {}
    for mode, r in runs.items():
        doc = r.get("doc") or {}
        timing = doc.get("timing") or {}
        t = timing.get("time_to_serving_s")
        times[mode] = t
        print(f"{mode:<10} exit {r.get('exit')}  time to serving: "
              + (f"{t / 60:.1f} simulated min" if t is not None else "n/a")
              + f"  (clock {timing.get('clock')}, wall {r.get('wall_s', 0):.0f} s)")
        if r.get("stderr"):
            print(r["stderr"])
        for n, s in (timing.get("steps") or {}).items():
            if s.get("skipped"):
                continue
            end = s.get("end_s")
            print(f"    step {n:>2}: {s['start_s'] / 60:5.1f} -> " + (f"{end / 60:5.1f}" if end is not None else "  -  ")
                  + " min")
    exp = (runs["express"].get("doc") or {})
    print("critical path (express): " + " -> ".join(exp.get("critical_path") or []))
    if times["sequential"] and times["express"] is not None:
        ratio = times["express"] / times["sequential"]
        print(f"ratio express / sequential: {ratio:.2f}")
        ok = times["express"] <= 25 * 60 and ratio <= 0.6
        print(f"goal (<= 25 min and <= 0.6 x sequential): {'met' if ok else 'NOT met'}")
    print(f"speed {args.speed:g}x, poll {args.poll:g} s; machine: {platform.machine()}, {os.cpu_count()} CPU, "
          f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}")
    return 0 if all(r.get("exit") == 0 for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
