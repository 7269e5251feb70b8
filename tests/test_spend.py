"""The cost meter: spent so far from the cluster's createTime and the TPU pool's operations, at the
configured prices; in `ops status --json` as cost.spent_usd, growing with (simulated) time."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest

from rhaii_tui import cli
from rhaii_tui.cloud.gke import OperationInfo, parse_time
from rhaii_tui.config import CLUSTER_OVERHEAD_PER_DAY
from rhaii_tui.spend import compute, sizes_from_transcript, tpu_node_seconds

PROJECT = "rhaii-demo-project"
ZONE = "europe-west4-a"
CLUSTER = "rhaii-tpu-scaleout-cluster"
POOL_LINK = f"https://container.googleapis.com/v1/projects/{PROJECT}/zones/{ZONE}/clusters/{CLUSTER}/nodePools/tpu-pool"


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def op(name: str, kind: str, end: float) -> OperationInfo:
    return OperationInfo(name=name, op_type=kind, status="DONE", target=POOL_LINK, location=ZONE,
                         start_time=iso(end - 60), end_time=iso(end))


def test_node_hours_follow_the_pools_operations():
    t0 = 1_800_000_000.0
    ops = [op("op-create", "CREATE_NODE_POOL", t0), op("op-zero", "SET_NODE_POOL_SIZE", t0 + 3600),
           op("op-resume", "SET_NODE_POOL_SIZE", t0 + 7200)]
    sizes = {"op-zero": 0, "op-resume": 2}
    # 3 nodes for an hour, none for an hour, 2 for the last half hour
    secs = tpu_node_seconds(ops, now=t0 + 9000, current_nodes=2, initial_nodes=3, sizes=sizes)
    assert secs == pytest.approx(3 * 3600 + 0 + 2 * 1800)
    s = compute(cluster_create_time=iso(t0 - 3600), ops=ops, current_nodes=2, price_per_node_hour=5.0,
                initial_nodes=3, sizes=sizes, now=t0 + 9000)
    assert s.spent_usd == pytest.approx(4.0 * 5.0 + 3.5 * CLUSTER_OVERHEAD_PER_DAY / 24)
    assert s.since == iso(t0 - 3600) and s.to_dict()["per_day_usd"] == pytest.approx(CLUSTER_OVERHEAD_PER_DAY + 2 * 5 * 24)
    # the connection's time scale (a simulated hour per wall second) scales what was spent
    fast = compute(cluster_create_time=iso(t0 - 3600), ops=ops, current_nodes=2, price_per_node_hour=5.0,
                   initial_nodes=3, sizes=sizes, now=t0 + 9000, time_scale=2.0)
    assert fast.spent_usd == pytest.approx(2 * s.spent_usd)
    # no cluster: nothing billable, nothing spent
    assert not compute(cluster_create_time="", ops=[], current_nodes=0, price_per_node_hour=5.0).billable


def test_resize_sizes_come_from_the_transcript_lines_naming_the_operation():
    entries = [{"command": "gcloud container clusters resize c --node-pool tpu-pool --num-nodes 0 --quiet",
                "outcome": "ok (operation operation-17-ab)", "ok": True},
               {"command": "gcloud container node-pools create tpu-pool --cluster c --num-nodes 3",
                "outcome": "failed: quota", "ok": False}]
    assert sizes_from_transcript(entries) == {"operation-17-ab": 0}


@pytest.fixture(autouse=True)
def clean_env(tmp_path, monkeypatch):
    monkeypatch.setenv("RHAII_TUI_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    for name in ("PROJECT_ID", "ZONE", "CLUSTER_NAME", "NAMESPACE", "HF_TOKEN", "REGISTRY_PASSWORD",
                 "CLOUDSDK_CORE_PROJECT"):
        monkeypatch.delenv(name, raising=False)


def ops_status(capsys, world) -> tuple[dict, float]:
    capsys.readouterr()
    code = cli.main(["--sim", "--sim-state", str(world.state_dir), "ops", "status", "--json"])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    doc = json.loads(out)
    assert doc["cost"] == doc["status"]["cost"]  # cost.spent_usd at the top too
    return doc["status"], time.time()


def test_spent_grows_with_simulated_time_at_node_hours_times_price(make_sim_world, capsys):
    world = make_sim_world("deployed", speed=2000)
    st1, t1 = ops_status(capsys, world)
    cost1 = st1["cost"]
    assert cost1["since"] and cost1["spent_usd"] > 0 and st1["pool_nodes"] == 3
    price = 5.15
    assert cost1["per_day_usd"] == pytest.approx(CLUSTER_OVERHEAD_PER_DAY + 3 * price * 24, abs=0.01)
    # wait (on the clock, not a fixed sleep) until some simulated hours have passed
    deadline = time.time() + 60
    while time.time() < t1 + 1.0 and time.time() < deadline:
        time.sleep(0.05)
    st2, t2 = ops_status(capsys, world)
    cost2 = st2["cost"]
    assert cost2["since"] == cost1["since"] and cost2["spent_usd"] > cost1["spent_usd"]
    # the increase: three TPU node-hours at the price plus the cluster overhead, per simulated hour
    grew_hours = cost2["cluster_hours"] - cost1["cluster_hours"]
    assert grew_hours > 0.3  # at speed 2000 a wall second is over half an hour
    want = grew_hours * (3 * price + CLUSTER_OVERHEAD_PER_DAY / 24)
    assert cost2["spent_usd"] - cost1["spent_usd"] == pytest.approx(want, rel=0.05, abs=0.05)
    assert cost2["tpu_node_hours"] - cost1["tpu_node_hours"] == pytest.approx(3 * grew_hours, rel=0.05)
    # the total covers the nodes' own lifetimes (from the cluster's creation and pool operations)
    assert parse_time(cost2["since"]) < t2
