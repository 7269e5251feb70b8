"""Kill -9 `rhaii-tui apply` at 20 points spread over a simulated deploy, re-run it, and check that
every deployment reaches serving with nothing created twice.

Each chain runs one emulator world (`python -m rhaii_tui sim serve --speed 2000`, a separate process
that outlives every apply) and kills successive `apply` processes at increasing points (the k-th
progress line of step n); then one more `apply` runs to completion. Two chains run at a time.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from rhaii_tui import manifests as m
from rhaii_tui.cloud.profile import SimProfile
from rhaii_tui.config import DeployConfig, StateStore
from rhaii_tui.lease import read_lease
from rhaii_tui.steps.context import StepContext
from rhaii_tui.steps.registry import probe_all, summary
from rhaii_tui.sim.testing import write_secret_files

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = "rhaii-tpu-scaleout-cluster"
NS = "rhaii-inference"
# (step, k): kill at the k-th progress line of that step (or the first line of a later step)
CHAINS = [
    [(1, 2), (2, 6), (3, 3), (5, 2), (7, 2)],
    [(2, 1), (2, 11), (4, 2), (6, 2), (10, 3)],
    [(2, 8), (3, 2), (5, 1), (6, 4), (8, 1)],
    [(2, 13), (3, 5), (4, 1), (5, 4), (9, 1)],
]
LINE_RE = re.compile(r"^\d\d:\d\d:\d\d \[(\d+)\] ")


def _env(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_TOKEN", "REGISTRY_PASSWORD", "PROJECT_ID", "ZONE", "CLUSTER_NAME", "NAMESPACE")}
    env.update(RHAII_TUI_STATE_DIR=str(state), CLOUDSDK_CONFIG=str(state / "no-gcloud"), PYTHONUNBUFFERED="1",
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    return env


def _secret_files(d: Path) -> tuple[Path, Path]:
    return write_secret_files(d, "hf_" + "k1LlTeSt" * 4 + "ab")


def _start_world(world_dir: Path, env: dict[str, str]) -> subprocess.Popen:
    world_dir.mkdir(parents=True, exist_ok=True)
    log = open(world_dir / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "rhaii_tui", "sim", "serve", "--state-dir", str(world_dir),
                             "--speed", "2000"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, cwd=str(ROOT))
    log.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            ep = json.loads((world_dir / "endpoints.json").read_text())
            if ep.get("pid") == proc.pid:
                urllib.request.urlopen(ep["google_api"] + "/_emu/health", timeout=1).read()
                return proc
        except (OSError, ValueError, KeyError):
            pass
        if proc.poll() is not None:
            raise AssertionError(f"sim serve exited: {(world_dir / 'serve.log').read_text()[-2000:]}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("sim serve did not start")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _apply(world_dir: Path, env: dict[str, str], hf: Path, pull: Path, kill_at: tuple[int, int] | None,
           procs: list) -> tuple[int | None, list[str], str]:
    """Run apply; with kill_at, SIGKILL it at that point. Returns (exit code or None when killed,
    lines, where it was killed)."""
    cmd = [sys.executable, "-m", "rhaii_tui", "--sim", "--sim-state", str(world_dir), "apply", "--yes",
           "--hf-token-file", str(hf), "--pull-secret-file", str(pull), "--poll", "0.05"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, cwd=str(ROOT), text=True, bufsize=1)
    procs.append(proc)
    timer = threading.Timer(90, proc.kill)
    timer.start()
    lines: list[str] = []
    seen: dict[int, int] = {}
    where = ""
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            mt = LINE_RE.match(line)
            if kill_at is None or mt is None:
                continue
            step = int(mt.group(1))
            seen[step] = seen.get(step, 0) + 1
            n, k = kill_at
            if step > n or (step == n and seen[step] >= k):
                os.kill(proc.pid, signal.SIGKILL)
                where = line.strip()
                break
        proc.wait(30)
    finally:
        timer.cancel()
        if proc.stdout is not None:
            proc.stdout.close()
    if where:
        return None, lines, where
    return proc.returncode, lines, ""


def _counts(world_dir: Path, state: Path) -> dict[str, object]:
    ctx = StepContext(DeployConfig(project="rhaii-demo-project", zone="europe-west4-a", cluster=CLUSTER, replicas=3),
                      SimProfile(world_dir / "endpoints.json"), StateStore(state))
    clusters = ctx.gke.list_clusters(all_locations=True)
    ops = ctx.gke.list_operations(CLUSTER, running_only=False)
    kube = ctx.kube()
    pods = kube.list("v1", "Pod", NS, label_selector=m.label_selector(m.workload_labels(ctx.cfg.service)))
    standing = summary(probe_all(ctx))
    return {
        "clusters": len(clusters), "pools": sorted(p.name for p in ctx.gke.list_node_pools(CLUSTER)),
        "cluster_creates": sum(1 for o in ops if o.op_type == "CREATE_CLUSTER"),
        "pool_creates": sum(1 for o in ops if o.op_type == "CREATE_NODE_POOL"),
        "tpu_nodes": len(kube.list("v1", "Node", label_selector="cloud.google.com/gke-tpu-accelerator=tpu-v6e-slice")),
        "llmisvcs": len(kube.list(m.LLMISVC_API_VERSION, "LLMInferenceService", NS)),
        "workload_pods": sum(1 for p in pods if not p["metadata"].get("deletionTimestamp")),
        "envoyfilters": len(kube.list(m.ENVOYFILTER_API_VERSION, "EnvoyFilter", "opendatahub")),
        # released by the last run that held it, or left by a killed one (stale: the next run takes it over)
        "live_lease": bool((lease := read_lease(kube, NS)) and lease.live()),
        "complete": standing.complete, "headline": standing.headline,
    }


def _chain(base: Path, points: list[tuple[int, int]], report: dict, procs: list) -> None:
    world_dir, state = base / "world", base / "state"
    state.mkdir(parents=True)
    env = _env(state)
    hf, pull = _secret_files(base)
    world = _start_world(world_dir, env)
    procs.append(world)
    try:
        kills = []
        for point in points:
            code, lines, where = _apply(world_dir, env, hf, pull, point, procs)
            assert code is None, f"apply ended (exit {code}) before kill point {point}:\n" + "\n".join(lines[-15:])
            kills.append((point, where))
        code, lines, _ = _apply(world_dir, env, hf, pull, None, procs)
        assert code == 0, "final apply failed:\n" + "\n".join(lines[-25:])
        report["kills"] = kills
        report["final"] = lines
        report["counts"] = _counts(world_dir, state)
    finally:
        _stop(world)


def test_kill_9_at_20_points_then_resume_reaches_serving_without_duplicates(tmp_path):
    assert sum(len(c) for c in CHAINS) >= 20
    reports: list[dict] = [{} for _ in CHAINS]
    errors: list[BaseException] = []
    procs: list[subprocess.Popen] = []

    def run(i: int) -> None:
        try:
            _chain(tmp_path / f"chain-{i}", CHAINS[i], reports[i], procs)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    try:
        for pair in ((0, 1), (2, 3)):
            threads = [threading.Thread(target=run, args=(i,)) for i in pair]
            for t in threads:
                t.start()
            for t in threads:
                t.join(180)
    finally:
        for p in procs:          # nothing of ours keeps running, whatever happened
            if p.poll() is None:
                p.kill()
                p.wait(5)
    assert not errors, errors[0]
    for i, r in enumerate(reports):
        c = r["counts"]
        assert c["complete"], (i, c["headline"])
        assert {k: c[k] for k in ("clusters", "pools", "cluster_creates", "pool_creates", "tpu_nodes", "llmisvcs",
                                  "workload_pods", "envoyfilters", "live_lease")} == {
            "clusters": 1, "pools": ["default-pool", "tpu-pool"], "cluster_creates": 1, "pool_creates": 1,
            "tpu_nodes": 3, "llmisvcs": 1, "workload_pods": 3, "envoyfilters": 3, "live_lease": False}, (i, r["kills"])
        # every kill landed at (or just after) the step it aimed at
        for (step, _k), where in r["kills"]:
            got = int(LINE_RE.match(where).group(1))
            assert step <= got <= step + 2, (step, where)
