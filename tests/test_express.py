"""Express mode (issue #16): the dependency graph, `apply --express` against the emulator (to serving,
failures with their diagnosis, kill -9 and resume), GKE's refusal of overlapping cluster operations,
and the "timing" JSON of both modes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rhaii_tui.steps import graph
from rhaii_tui.steps.base import Status, StepState

from clihelpers import clean_env, run  # noqa: F401 - clean_env is an autouse fixture
from test_headless import CLUSTER, ZONE, counts, ctx_for, secret_files

ROOT = Path(__file__).resolve().parents[1]


# --- the graph (no emulator) -----------------------------------------------------------------------


def test_every_need_is_a_known_fact_made_true_by_an_earlier_or_same_step():
    ids = [p.id for p in graph.PIECES]
    assert len(ids) == len(set(ids))
    assert {p.step for p in graph.PIECES} == set(range(1, 12))
    for p in graph.PIECES:
        for f in p.needs:
            assert f in graph.FACTS, (p.id, f)
            maker = graph.BY_ID[graph.FACTS[f].by]
            # the sequential order (step by step) never runs a piece before what it needs
            assert maker.step <= p.step, (p.id, f, maker.id)
    assert [p.id for p in graph.PIECES if p.billable] == ["cluster", "tpu-pool"]
    # the TPU pool waits for the cluster's API, the service for its CRD: the overlaps the issue names
    assert "cluster-api" in graph.BY_ID["tpu-pool"].needs
    assert "crd:llminferenceservices" in graph.BY_ID["llmisvc"].needs
    assert "tpu-nodes-ready" not in graph.BY_ID["llmisvc"].needs


def test_critical_path_follows_the_producer_that_finished_last():
    from rhaii_tui.steps.express import ExpressRun, _Record

    class P:
        time_scale = 1.0
        clock_kind = "wall"

        def cloud_now(self):
            return 0.0

    class C:
        profile = P()

    run = ExpressRun(C())
    ends = {"preflight": 30, "cluster": 300, "tpu-pool": 1250, "namespace-secrets": 320, "operators": 900,
            "llmisvc": 910, "replicas": 1500, "epp-sidecar": 930, "envoyfilters": 940, "netpol": 1500,
            "first-serve": 1260, "verify": 1540, "performance": 1600, "identity": 1610}
    for pid, end in ends.items():
        run.records[pid] = _Record("done", 0.0, float(end), "", StepState(Status.DONE, "ok"))
    run._served_s = 1265.0
    assert run.critical_path() == ["cluster", "tpu-pool", "first-serve"]
    assert run.time_to_serving() == 1260.0
    t = run.timing()
    assert t["clock"] == "wall" and t["steps"]["2"] == {"start_s": 0.0, "end_s": 1250.0}
    run.records["first-serve"] = _Record("skipped")
    assert run.critical_path()[-2:] == ["replicas", "verify"]
    assert run.time_to_serving() == 1265.0  # the first completion verify saw through the gateway


# --- apply --express against the emulator ---------------------------------------------------------


def _steps_timing_ok(timing: dict, numbers: range) -> None:
    assert timing["clock"] == "simulated"
    for n in numbers:
        s = timing["steps"][str(n)]
        assert s["start_s"] <= s["end_s"], (n, s)


def test_express_from_fresh_to_serving_then_nothing_left_to_do(make_sim_world, capsys, tmp_path):
    sim_world = make_sim_world("fresh", speed=300)  # the TPU pool takes 3 s of wall time: room to overlap
    hf, pull = secret_files(tmp_path)
    code, out, err = run(capsys, sim_world, "apply", "--express", "--yes", "--json", "--hf-token-file", str(hf),
                         "--pull-secret-file", str(pull), "--poll", "0.05")
    assert code == 0, out[-3000:] + err
    doc = json.loads(out)
    assert doc["mode"] == "express" and doc["ok"] and doc["error"] is None
    assert [s["action"] for s in doc["steps"]] == ["ran"] * 11
    assert {p["status"] for p in doc["pieces"]} == {"done"}
    t = doc["timing"]
    _steps_timing_ok(t, range(1, 12))
    assert 0 < t["time_to_serving_s"] <= t["steps"]["9"]["end_s"]
    # work overlapped: step 3 ran while the TPU pool was being created, not after step 2
    pieces = {p["id"]: p for p in doc["pieces"]}
    assert pieces["namespace-secrets"]["start_s"] < pieces["tpu-pool"]["end_s"]
    assert pieces["tpu-pool"]["start_s"] >= pieces["cluster"]["start_s"]
    assert doc["critical_path"][0] == "cluster" and doc["critical_path"][-1] == "first-serve"
    c = counts(sim_world)
    assert c == {"clusters": 1, "pools": 2, "cluster_creates": 1, "pool_creates": 1, "tpu_nodes": 3, "llmisvcs": 1,
                 "workload_pods": 3, "lease": 0}
    # the transcript names each change's own step, though steps 2 and 3 ran at the same time
    code, out, err = run(capsys, sim_world, "transcript", "--json")
    entries = json.loads(out)["entries"]
    pool = next(e for e in entries if e["command"].startswith("gcloud container node-pools create tpu-pool"))
    assert pool["step"].startswith("2."), pool
    assert all(e["step"].startswith("3.") for e in entries if e["command"].startswith("kubectl create namespace")
               or ("secret" in e["command"] and e["command"].startswith("kubectl apply"))), entries
    assert all(e["step"].startswith("5.") for e in entries if "llminferenceservice" in e["command"].lower()
               and e["command"].startswith("kubectl apply")), entries
    # the lines a person reads: one confirmation with the total, the serving time and the critical path
    code, out, err = run(capsys, sim_world, "apply", "--express", "--poll", "0.05")
    assert code == 0, err
    assert "serving through the gateway after" not in out  # nothing ran: it was serving already
    assert "done: steps 1-11 complete (express)" in out
    code, out, err = run(capsys, sim_world, "apply", "--express", "--json")
    doc = json.loads(out)
    assert [s["action"] for s in doc["steps"]] == ["skipped (done)"] * 11
    assert doc["timing"]["time_to_serving_s"] == 0.0
    assert counts(sim_world)["cluster_creates"] == 1 and counts(sim_world)["pool_creates"] == 1


def test_express_without_yes_names_every_billable_action_and_the_total_and_creates_nothing(sim_world, capsys,
                                                                                          tmp_path):
    hf, pull = secret_files(tmp_path)
    code, out, err = run(capsys, sim_world, "apply", "--express", "--hf-token-file", str(hf), "--pull-secret-file",
                         str(pull))
    assert code == 2
    assert f"cluster {CLUSTER} in {ZONE}" in err and "node pool tpu-pool" in err
    assert "total about $376.80/day" in err and "--yes" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert counts(sim_world) == {"clusters": 0}


def test_express_crashing_model_download_stops_with_step_5s_diagnosis(make_sim_world, capsys, tmp_path):
    world = make_sim_world("bad-hf-token", start_state="cluster-ready")
    hf, pull = secret_files(tmp_path)
    code, out, err = run(capsys, world, "apply", "--express", "--json", "--hf-token-file", str(hf),
                         "--pull-secret-file", str(pull), "--poll", "0.05")
    assert code == 1, out[-3000:] + err
    doc = json.loads(out)
    assert doc["error"]["step"] == 5 and doc["error"]["piece"] == "replicas" and doc["error"]["fix"]
    assert "token" in (doc["error"]["message"] + doc["error"]["detail"]).lower()
    pieces = {p["id"]: p for p in doc["pieces"]}
    assert pieces["replicas"]["status"] == "failed"
    assert pieces["verify"]["status"] == "stopped"  # no new work after the failure
    assert [s["action"] for s in doc["steps"]][8:] == ["not reached"] * 3
    assert "step 5" in err and len(err.strip().splitlines()) == 1
    assert doc["timing"]["time_to_serving_s"] is None


def test_express_stockout_stops_the_other_branches_and_names_the_options(make_sim_world, capsys, tmp_path):
    world = make_sim_world("stockout", stockout_fail_seconds=200000)
    hf, pull = secret_files(tmp_path)
    code, out, err = run(capsys, world, "apply", "--express", "--yes", "--json", "--hf-token-file", str(hf),
                         "--pull-secret-file", str(pull), "--poll", "0.05")
    assert code == 1, out[-3000:] + err
    doc = json.loads(out)
    assert doc["error"]["step"] == 2 and doc["error"]["piece"] == "tpu-pool"
    assert "ZONE_RESOURCE_POOL_EXHAUSTED" in doc["error"]["message"]
    assert [o["key"] for o in doc["error"]["stockout"]["options"]][:2] == ["wait", "zone"]
    pieces = {p["id"]: p for p in doc["pieces"]}
    assert pieces["cluster"]["status"] == "done"
    assert pieces["replicas"]["status"] == "stopped" and pieces["verify"]["status"] == "stopped"
    assert "step 2" in err and "Stockout" in err and len(err.strip().splitlines()) == 1
    assert counts(world)["pool_creates"] == 1


def test_sequential_apply_json_carries_the_timing_on_the_simulated_clock(make_sim_world, capsys, tmp_path):
    world = make_sim_world("cluster-ready")
    hf, pull = secret_files(tmp_path)
    code, out, err = run(capsys, world, "apply", "--json", "--hf-token-file", str(hf), "--pull-secret-file",
                         str(pull), "--poll", "0.05")
    assert code == 0, out[-3000:] + err
    t = json.loads(out)["timing"]
    assert t["clock"] == "simulated"
    assert t["steps"]["2"] == {"start_s": 0.0, "end_s": 0.0, "skipped": True}
    assert t["steps"]["4"]["start_s"] >= t["steps"]["3"]["end_s"]
    # the operators' install is ~10 guide minutes: the simulated clock counts them, not wall seconds
    assert t["steps"]["4"]["end_s"] - t["steps"]["4"]["start_s"] > 300
    assert t["steps"]["5"]["end_s"] <= t["time_to_serving_s"]


def test_the_emulator_clock_is_simulated_and_counts_fast_forwards(make_sim_world):
    w = make_sim_world(speed=1)
    p = w.profile()
    assert p.clock_kind == "simulated"
    a = p.cloud_now()
    w.fast_forward(600)
    assert p.cloud_now() - a >= 600


# --- GKE runs one cluster operation at a time -------------------------------------------------------


def test_gke_refuses_a_second_cluster_operation_and_the_wizard_waits_for_the_first(make_sim_world):
    from rhaii_tui.cloud.gke import CloudError
    from rhaii_tui.steps.cluster import _send, cluster_busy

    w = make_sim_world(speed=1)  # time moves only when fast-forwarded
    ctx = ctx_for(w)
    gke = ctx.gke
    gke.create_cluster(CLUSTER)
    with pytest.raises(CloudError) as e:
        gke.create_tpu_pool(CLUSTER, 3)  # while the cluster is still being created
    assert e.value.kind == "conflict" and cluster_busy(e.value.message)
    assert re.search(r"Operation operation-\S+ is currently creating cluster " + CLUSTER +
                     r"\. Please wait and try again once it is done\.", e.value.message), e.value.message
    assert not [o for o in gke.list_operations(CLUSTER, running_only=False) if o.op_type == "CREATE_NODE_POOL"]

    def pool_posts() -> int:
        return sum(1 for m, path, *_ in list(w.world.google.requests) if m == "POST" and path.endswith("/nodePools"))

    before = pool_posts()
    got: dict = {}

    def send() -> None:
        got["op"] = _send(lambda: gke.create_tpu_pool(CLUSTER, 3),
                          lambda: gke.in_flight(CLUSTER, {"CREATE_NODE_POOL"}, pool="tpu-pool"), None,
                          busy=lambda: gke.in_flight(CLUSTER))

    t = threading.Thread(target=send, daemon=True)
    t.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and pool_posts() <= before:
        time.sleep(0.02)
    assert t.is_alive()  # refused, waiting for the cluster's operation
    w.fast_forward(301)
    t.join(60)
    assert not t.is_alive()
    op, reattached = got["op"]
    assert op.op_type == "CREATE_NODE_POOL" and not reattached
    creates = [o for o in gke.list_operations(CLUSTER, running_only=False) if o.op_type == "CREATE_NODE_POOL"]
    assert len(creates) == 1


# --- kill -9 during express, then resume -------------------------------------------------------------

RUNNING_RE = re.compile(r"^\d\d:\d\d:\d\d \[(\d+)\] ([a-z-]+): running at ")


def _express(world_dir: Path, env: dict, hf: Path, pull: Path, kill_at: tuple[int, str] | None,
             procs: list) -> tuple[int | None, list[str]]:
    """apply --express; with kill_at (step, piece), SIGKILL it when that piece (or one of a later step)
    starts running."""
    cmd = [sys.executable, "-m", "rhaii_tui", "--sim", "--sim-state", str(world_dir), "apply", "--express",
           "--yes", "--hf-token-file", str(hf), "--pull-secret-file", str(pull), "--poll", "0.05"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, cwd=str(ROOT), text=True, bufsize=1)
    procs.append(proc)
    timer = threading.Timer(120, proc.kill)
    timer.start()
    lines: list[str] = []
    killed = False
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            mt = RUNNING_RE.match(line)
            if kill_at is None or mt is None:
                continue
            step, piece = int(mt.group(1)), mt.group(2)
            if piece == kill_at[1] or step > kill_at[0]:
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
                break
        proc.wait(30)
    finally:
        timer.cancel()
        if proc.stdout is not None:
            proc.stdout.close()
    return (None if killed else proc.returncode), lines


def test_kill_9_during_express_then_rerun_reaches_serving_with_nothing_duplicated(tmp_path):
    from test_kill import _counts, _env, _secret_files, _start_world, _stop

    world_dir, state = tmp_path / "world", tmp_path / "state"
    state.mkdir(parents=True)
    env = _env(state)
    hf, pull = _secret_files(tmp_path)
    procs: list[subprocess.Popen] = []
    world = _start_world(world_dir, env)
    procs.append(world)
    try:
        # mid cluster create, mid TPU pool create (operators beside it), mid EPP rollout, mid verify
        for point in ((2, "tpu-pool"), (4, "operators"), (6, "epp-sidecar"), (9, "verify")):
            code, lines = _express(world_dir, env, hf, pull, point, procs)
            assert code is None, f"apply ended (exit {code}) before {point}:\n" + "\n".join(lines[-15:])
        code, lines = _express(world_dir, env, hf, pull, None, procs)
        assert code == 0, "final apply failed:\n" + "\n".join(lines[-25:])
        c = _counts(world_dir, state)
    finally:
        _stop(world)
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)
    assert c["complete"], c["headline"]
    assert c["clusters"] == 1 and c["cluster_creates"] == 1 and c["pool_creates"] == 1
    assert c["pools"] == ["default-pool", "tpu-pool"] and c["tpu_nodes"] == 3
    assert c["llmisvcs"] == 1 and c["workload_pods"] == 3 and c["envoyfilters"] == 3
    assert not c["live_lease"]
