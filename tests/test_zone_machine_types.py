"""Machine types are offered per zone: the default (CPU) pool's n1-standard-4 may be missing from a
zone. Step 1 checks it with Compute's machineTypes and proposes one the zone has, with the flag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rhaii_tui import cli
from rhaii_tui.cloud import services
from rhaii_tui.cloud.gke import CloudError, Gke
from rhaii_tui.config import DeployConfig, StateStore, load_config_file, resolve_config, validate_machine_type
from rhaii_tui.guide import step as guide_step
from rhaii_tui.steps import preflight
from rhaii_tui.steps.context import StepContext

PROJECT = "rhaii-demo-project"
ZONE = "europe-west4-a"


def make_ctx(world, tmp_path: Path, **cfg) -> StepContext:
    values = dict(project=PROJECT, zone=ZONE, cluster="rhaii-tpu-scaleout-cluster", replicas=3)
    values.update(cfg)
    return StepContext(DeployConfig(**values), world.profile(), StateStore(tmp_path / "state"))


def zone_check(world, tmp_path, **cfg):
    return {r.id: r for r in preflight.run_checks(make_ctx(world, tmp_path, **cfg)).results}["zone"]


def test_the_emulator_offers_machine_types_per_zone(make_sim_world):
    world = make_sim_world("no-n1-zone")
    prof = world.profile()
    here = {m["name"] for m in services.zone_machine_types(prof, PROJECT, ZONE)}
    assert "e2-standard-4" in here and "ct6e-standard-4t" in here
    assert not any(n.startswith("n1-") for n in here)
    assert not services.machine_type_in_zone(prof, PROJECT, ZONE, "n1-standard-4")
    assert services.machine_type_in_zone(prof, PROJECT, "us-central1-b", "n1-standard-4")
    # GKE refuses a default pool of a machine type the zone lacks
    gke = Gke(prof, PROJECT, ZONE)
    with pytest.raises(CloudError) as ei:
        gke.create_cluster("c-n1", machine_type="n1-standard-4")
    assert "n1-standard-4" in ei.value.message and "not found in zone europe-west4-a" in ei.value.message
    assert gke.create_cluster("c-e2", machine_type="e2-standard-4").name


def test_preflight_proposes_a_machine_type_the_zone_offers(make_sim_world, tmp_path):
    world = make_sim_world("no-n1-zone")
    z = zone_check(world, tmp_path)
    assert z.status == "fail"
    assert "not n1-standard-4" in z.detail and "default pool" in z.detail
    assert z.fix.startswith("Use a machine type europe-west4-a offers for the default pool: "
                            "--default-machine-type e2-standard-4 (or default_machine_type: e2-standard-4 in the "
                            "--config file)")
    assert z.data["suggested_machine_type"] == "e2-standard-4"
    # taking the advice passes the check
    assert zone_check(world, tmp_path, default_machine_type="e2-standard-4").status == "pass"


def test_a_zone_with_the_default_machine_type_passes(sim_world, tmp_path):
    z = zone_check(sim_world, tmp_path)
    assert z.status == "pass" and z.data["default_machine_type"] == "n1-standard-4"
    assert z.data["default_machine_type_offered"] is True


def test_apply_with_the_proposed_flag_creates_the_default_pool_of_that_type(make_sim_world, capsys, tmp_path,
                                                                           monkeypatch):
    monkeypatch.setenv("RHAII_TUI_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    world = make_sim_world("no-n1-zone")
    base = ["--sim", "--sim-state", str(world.state_dir)]
    capsys.readouterr()
    assert cli.main([*base, "apply", "--through", "1", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["error"]["step"] == 1 and "--default-machine-type e2-standard-4" in doc["error"]["fix"]
    code = cli.main([*base, "--default-machine-type", "e2-standard-4", "apply", "--through", "2", "--yes",
                     "--poll", "0.05"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    pools = Gke(world.profile(), PROJECT, ZONE).list_node_pools("rhaii-tpu-scaleout-cluster")
    assert {p.name: p.machine_type for p in pools}["default-pool"] == "e2-standard-4"


def test_suggestion_prefers_the_same_size_general_purpose_series():
    def mt(name, cpus):
        return {"name": name, "guestCpus": cpus}

    offered = [mt("n2-standard-2", 2), mt("n2-standard-4", 4), mt("e2-standard-8", 8), mt("e2-medium", 2),
               mt("e2-standard-4", 4), mt("ct6e-standard-4t", 180), mt("c2-standard-4", 4)]
    assert services.suggest_machine_type(offered, "n1-standard-4") == "e2-standard-4"
    assert services.suggest_machine_type([mt("n2-standard-4", 4), mt("e2-standard-8", 8)],
                                         "n1-standard-4") == "n2-standard-4"
    assert services.suggest_machine_type([mt("n2-standard-2", 2), mt("e2-standard-8", 8)],
                                         "n1-standard-4") == "e2-standard-8"  # rather more than fewer vCPUs
    assert services.suggest_machine_type([mt("ct6e-standard-4t", 180), mt("e2-medium", 2)], "n1-standard-4") is None


def test_the_default_machine_type_is_a_config_field(tmp_path):
    assert validate_machine_type("e2-standard-4") is None
    assert "machine type" in validate_machine_type("E2 standard").lower()
    assert "TPU" in validate_machine_type("ct6e-standard-4t")
    cfg = resolve_config(flags={"project": PROJECT, "default_machine_type": "e2-standard-4"}, env={})
    assert cfg.default_machine_type == "e2-standard-4" and cfg.sources["default_machine_type"] == "flag"
    assert resolve_config(flags={"project": PROJECT}, env={}).default_machine_type == "n1-standard-4"
    f = tmp_path / "cfg.yaml"
    f.write_text("default_machine_type: n2-standard-4\n")
    assert load_config_file(f) == {"default_machine_type": "n2-standard-4"}
    cmd = guide_step(2).commands(DeployConfig(project=PROJECT, default_machine_type="n2-standard-4"))[0]
    assert "--machine-type n2-standard-4 " in cmd


def test_a_bad_default_machine_type_flag_is_one_line_exit_2(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("RHAII_TUI_STATE_DIR", str(tmp_path / "state"))
    code = cli.main(["--project", PROJECT, "--default-machine-type", "ct6e-standard-4t", "status"])
    err = capsys.readouterr().err
    assert code == 2 and "--default-machine-type" in err and "TPU" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
