"""Benchmark: how far the wizard holds on an unreliable API (the `flaky-api` scenario).

For each fault rate, N fresh simulated worlds: `rhaii-tui apply --yes` from an empty project to
serving (steps 1-11), then `rhaii-tui verify`, both headless and in-process as a user would run
them (`cli.main`). The rate is the share of Kubernetes API requests (pod/service proxy included)
and Google API requests answered 5xx/429 (`--fault-rate`, `FlakySpec` in sim/scenarios.py);
watches are also cut every 20 s and one resume gets 410 Expired, as in flaky-api. Reports per rate
how many applies and verifies succeeded, their median wall time, the retries the wizard's retry
policy logged (cloud/retry.py; the Google client library's own internal retries are not counted)
and the first failure.

    python benchmarks/bench_flaky.py [--rates 0.1,0.25] [--worlds 10] [--speed 2000] [--json]

Goal (BENCHMARKS.md, "Flaky API"): 10 of 10 at flaky-api's 10%.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rhaii_tui.sim.testing import write_secret_files  # noqa: E402 - from this checkout


class _Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.n = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "transient failure" in record.getMessage():
            self.n += 1


def _secrets(tmp: Path) -> tuple[Path, Path]:
    return write_secret_files(tmp)


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def run_world_once(rate: float, speed: float) -> dict[str, Any]:
    from rhaii_tui import cli
    from rhaii_tui.sim.scenarios import fault_rate_overrides
    from rhaii_tui.sim.testing import run_world

    counter = _Count()
    logger = logging.getLogger("rhaii_tui.cloud.retry")
    logger.addHandler(counter)
    old_level, old_propagate = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False  # counted here, not printed
    try:
        with tempfile.TemporaryDirectory(prefix="bench-flaky-") as d:
            tmp = Path(d)
            os.environ["RHAII_TUI_STATE_DIR"] = str(tmp / "state")
            os.environ["CLOUDSDK_CONFIG"] = str(tmp / "no-gcloud")
            hf, pull = _secrets(tmp)
            out: dict[str, Any] = {"rate": rate}
            with run_world(tmp / "world", scenario="flaky-api", speed=speed,
                           **fault_rate_overrides(rate, "flaky-api")) as w:
                base = ["--sim", "--sim-state", str(w.state_dir)]
                for name, argv in (("apply", [*base, "apply", "--yes", "--hf-token-file", str(hf),
                                              "--pull-secret-file", str(pull), "--poll", "0.05"]),
                                   ("verify", [*base, "verify"])):
                    so, se = io.StringIO(), io.StringIO()
                    t0 = time.perf_counter()
                    with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
                        code = cli.main(argv)
                    out[f"{name}_s"] = round(time.perf_counter() - t0, 2)
                    out[f"{name}_code"] = code
                    if code != 0:
                        out[f"{name}_error"] = _last_line(se.getvalue()) or _last_line(so.getvalue())
                        if name == "apply":
                            break
            out["retries"] = counter.n
            return out
    finally:
        logger.removeHandler(counter)
        logger.setLevel(old_level)
        logger.propagate = old_propagate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rates", default="0.1,0.25", help="comma-separated fault rates (0..1)")
    p.add_argument("--worlds", type=int, default=10, help="fresh worlds per rate")
    p.add_argument("--speed", type=float, default=2000.0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    summary = []
    for rate in rates:
        runs = []
        for i in range(args.worlds):
            r = run_world_once(rate, args.speed)
            runs.append(r)
            print(f"rate {rate:g} world {i + 1}/{args.worlds}: apply {r.get('apply_code')} "
                  f"({r.get('apply_s')} s), verify {r.get('verify_code', '-')} ({r.get('verify_s', '-')} s), "
                  f"retries {r['retries']}" + (f" -- {r.get('apply_error') or r.get('verify_error')}"
                                               if r.get('apply_error') or r.get('verify_error') else ""),
                  file=sys.stderr, flush=True)
        ok_apply = sum(1 for r in runs if r.get("apply_code") == 0)
        ok_verify = sum(1 for r in runs if r.get("verify_code") == 0)
        failures = [r.get("apply_error") or r.get("verify_error") for r in runs
                    if r.get("apply_error") or r.get("verify_error")]
        summary.append({
            "rate": rate, "worlds": len(runs), "apply_ok": ok_apply, "verify_ok": ok_verify,
            "apply_s_median": statistics.median(r["apply_s"] for r in runs),
            "verify_s_median": statistics.median(r["verify_s"] for r in runs if "verify_s" in r)
            if any("verify_s" in r for r in runs) else None,
            "retries_median": statistics.median(r["retries"] for r in runs),
            "first_failure": failures[0] if failures else None, "runs": runs})
    doc = {"machine": f"{platform.machine()}, {os.cpu_count()} CPU, Python {platform.python_version()}",
           "speed": args.speed, "results": summary}
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"machine: {doc['machine']}; speed {args.speed:g}")
        print("| fault rate | apply ok | verify ok | apply s (median) | verify s (median) | retries (median) | first failure |")
        print("|---|---|---|---|---|---|---|")
        for s in summary:
            print(f"| {s['rate']:.0%} | {s['apply_ok']}/{s['worlds']} | {s['verify_ok']}/{s['worlds']} | "
                  f"{s['apply_s_median']} | {s['verify_s_median']} | {s['retries_median']} | "
                  f"{s['first_failure'] or '-'} |")
    return 0 if all(s["apply_ok"] == s["worlds"] and s["verify_ok"] == s["worlds"] for s in summary) else 1


if __name__ == "__main__":
    raise SystemExit(main())
