"""Contract: every Google API request the wizard sends, during a full deploy (steps 1-11, headless
`apply --yes` on a fresh simulated world) and its day-2 operations (scale, scale to zero, resume,
teardown), fits Google's published discovery documents: verb and path of a real method, only
query parameters it takes, a body with only the fields of its request schema (recursively), of
the right JSON types, enum values from its lists. The oracle (tests/google_discovery.py) is independent
of the emulator, which parses bodies with the client libraries' message types."""

from __future__ import annotations

import time

import pytest

from rhaii_tui import cli
from rhaii_tui.config import DeployConfig, StateStore
from rhaii_tui.steps import operate, preflight
from rhaii_tui.steps.context import StepContext
from rhaii_tui.sim.testing import write_secret_files

import google_discovery as discovery  # tests/: needs google-api-python-client (the test extra)

PROJECT = "rhaii-demo-project"
ZONE = "europe-west4-a"
CLUSTER = "rhaii-tpu-scaleout-cluster"
PARENT = f"/v1/projects/{PROJECT}/locations/{ZONE}"
INT_ENUMS = "%24alt=json%3Benum-encoding%3Dint"  # what the Python clients send


# --- the oracle itself ---------------------------------------------------------------------------


def _pool_body(**over) -> dict:
    pool = {"name": "tpu-pool", "initialNodeCount": 3, "management": {"autoRepair": True, "autoUpgrade": True},
            "config": {"machineType": "ct6e-standard-4t", "oauthScopes": ["https://www.googleapis.com/auth/cloud-platform"],
                       "resourceLabels": {"created-by": "rhaii-tui"}, "spot": True}}
    pool.update(over)
    return {"nodePool": pool}


def test_the_oracle_accepts_a_well_formed_request():
    assert discovery.problems("POST", f"{PARENT}/clusters/c1/nodePools", INT_ENUMS, _pool_body()) == []
    assert discovery.problems("POST", f"{PARENT}/clusters/c1/nodePools/tpu-pool:setSize", INT_ENUMS,
                              {"nodeCount": 4}) == []
    body = {"cluster": {"name": "c1", "releaseChannel": {"channel": "REGULAR"},
                        "networkConfig": {"datapathProvider": "ADVANCED_DATAPATH"}}}
    assert discovery.problems("POST", f"{PARENT}/clusters", "alt=json", body) == []
    body["cluster"]["releaseChannel"]["channel"] = 2      # enum-encoding=int: the number
    assert discovery.problems("POST", f"{PARENT}/clusters", INT_ENUMS, body) == []


def test_the_oracle_refuses_a_wrong_field_name_nested():
    found = discovery.problems("POST", f"{PARENT}/clusters/c1/nodePools", INT_ENUMS,
                               _pool_body(initialNodeCounts=3))
    assert len(found) == 1 and "unknown field 'initialNodeCounts'" in found[0] and "nodePool" in found[0]
    wrong = _pool_body()
    wrong["nodePool"]["config"]["machine_typo"] = "x"
    assert "nodePool.config: unknown field 'machine_typo'" in " ".join(
        discovery.problems("POST", f"{PARENT}/clusters/c1/nodePools", INT_ENUMS, wrong))


def test_the_oracle_refuses_bad_values_paths_and_query_parameters():
    bad_enum = {"cluster": {"name": "c1", "releaseChannel": {"channel": "FAST"}}}
    assert "'FAST' is not one of" in " ".join(discovery.problems("POST", f"{PARENT}/clusters", "alt=json", bad_enum))
    assert "expected an integer" in " ".join(
        discovery.problems("POST", f"{PARENT}/clusters/c1/nodePools/p:setSize", INT_ENUMS, {"nodeCount": "four"}))
    assert "expected a boolean" in " ".join(
        discovery.problems("POST", f"{PARENT}/clusters/c1/nodePools", INT_ENUMS, _pool_body(management={"autoRepair": "yes"})))
    assert "no method" in " ".join(discovery.problems("POST", f"{PARENT}/cluster", INT_ENUMS, {}))
    assert "no method" in " ".join(discovery.problems("PUT", f"{PARENT}/clusters/c1/nodePools/p:setSize", "", {}))
    assert "query parameter 'bogus'" in " ".join(
        discovery.problems("GET", f"/compute/v1/projects/{PROJECT}/zones/{ZONE}/machineTypes", "bogus=1", {}))
    assert discovery.problems("GET", f"/compute/v1/projects/{PROJECT}/zones/{ZONE}/machineTypes",
                              "filter=name%3Dct6e-standard-4t&maxResults=500", {}) == []


# --- what the wizard sends -----------------------------------------------------------------------


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    monkeypatch.setenv("RHAII_TUI_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    for name in ("PROJECT_ID", "ZONE", "CLUSTER_NAME", "NAMESPACE", "HF_TOKEN", "REGISTRY_PASSWORD",
                 "CLOUDSDK_CORE_PROJECT"):
        monkeypatch.delenv(name, raising=False)


def _secret_files(tmp_path):
    return write_secret_files(tmp_path)


def test_a_full_deploy_and_day_two_send_only_what_google_defines(sim_world, capsys, tmp_path, clean_env):
    hf, pull = _secret_files(tmp_path)
    code = cli.main(["--sim", "--sim-state", str(sim_world.state_dir), "apply", "--yes", "--hf-token-file", str(hf),
                     "--pull-secret-file", str(pull), "--poll", "0.05"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    ctx = StepContext(DeployConfig(project=PROJECT, zone=ZONE, cluster=CLUSTER, replicas=3), sim_world.profile(),
                      StateStore())
    for what, run in (("scale", lambda: operate.scale(ctx, 4)), ("scale to zero", lambda: operate.scale_to_zero(ctx)),
                      ("resume", lambda: operate.resume(ctx)),
                      ("schedule zero", lambda: operate.schedule_zero(ctx, operate.deadline_from("2h", None, time.time()))),
                      ("cancel the schedule", lambda: operate.cancel_schedule(ctx)),
                      ("teardown", lambda: operate.teardown(ctx, "cluster"))):
        res = run()
        assert res.ok, (what, res.summary, res.fix)

    sent = sim_world.call(lambda: list(sim_world.world.google.requests))
    calls = {(m, p.rsplit("/", 1)[-1] if m != "GET" else "") for m, p, _, _ in sent}
    # the requests that change the project are all there (so the check below covers them)
    assert {("POST", "clusters"), ("POST", "nodePools"), ("POST", "tpu-pool:setSize"), ("POST", "tpu-pool:setAutoscaling"),
            ("DELETE", CLUSTER), (("POST", f"{PROJECT}:testIamPermissions"))} <= calls, calls
    assert any(p.startswith("/compute/v1/") for _, p, _, _ in sent)
    assert any("/quotaInfos" in p for _, p, _, _ in sent)
    problems = [p for m, path, query, body in sent for p in discovery.problems(m, path, query, body)]
    assert problems == []


def test_step_1_on_a_project_without_the_api_enables_it_with_what_google_defines(make_sim_world, tmp_path):
    world = make_sim_world("api-disabled")
    ctx = StepContext(DeployConfig(project=PROJECT, zone=ZONE, cluster=CLUSTER, replicas=3), world.profile(),
                      StateStore(tmp_path / "state"))
    checks = {r.id: r for r in preflight.run_checks(ctx).results}
    assert checks["api"].status == "fail"
    enabled = preflight.enable_container_api(ctx, wait_seconds=30)
    sent = world.call(lambda: list(world.world.google.requests))
    assert ("POST", f"/v1/projects/{PROJECT}/services/container.googleapis.com:enable") in {(m, p) for m, p, _, _ in sent}
    assert [p for m, path, query, body in sent for p in discovery.problems(m, path, query, body)] == []
    assert enabled.status == "pass", (enabled.summary, enabled.fix)
