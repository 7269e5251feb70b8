"""Remembered state never stands in for a live check: it is keyed by the environment's identity
(the project number), has a lifetime, and billable actions check quota live whatever was remembered."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from rhaii_tui import cli
from rhaii_tui.config import DeployConfig, StateStore
from rhaii_tui.steps import netpol, preflight
from rhaii_tui.steps.base import Status
from rhaii_tui.steps.context import StepContext

PROJECT = "rhaii-demo-project"
ZONE = "europe-west4-a"
CLUSTER = "rhaii-tpu-scaleout-cluster"


from clihelpers import clean_env, run  # noqa: F401 - clean_env is an autouse fixture


def secret_args(tmp_path: Path) -> list[str]:
    hf = tmp_path / "hf-token"
    hf.write_text("hf_" + "a1B2c3D4" * 4 + "zz\n")
    auth = base64.b64encode(b"someone:not-a-real-password").decode()
    pull = tmp_path / "pull.yaml"
    pull.write_text("apiVersion: v1\nkind: Secret\nmetadata:\n  name: rhaiis-pull-secret\n"
                    "type: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: |\n"
                    f'    {{"auths": {{"registry.redhat.io": {{"auth": "{auth}"}}}}}}\n')
    return ["--hf-token-file", str(hf), "--pull-secret-file", str(pull)]


def ctx_for(world) -> StepContext:
    return StepContext(DeployConfig(project=PROJECT, zone=ZONE, cluster=CLUSTER, replicas=3), world.profile(),
                       StateStore())


def clusters(world) -> int:
    return len(ctx_for(world).gke.list_clusters(all_locations=True))


def test_two_worlds_with_the_same_project_id_have_different_project_numbers(make_sim_world):
    a, b = make_sim_world("fresh"), make_sim_world("fresh")
    ea, eb = ctx_for(a).environment(), ctx_for(b).environment()
    assert ea and eb and ea != eb


def test_a_pass_remembered_in_another_world_is_ignored_and_low_quota_stops_at_step_1(make_sim_world, capsys, tmp_path):
    """Seen: after a run in one simulated world, a low-quota world skipped step 1 and created the
    cluster before failing on quota."""
    good = make_sim_world("fresh")
    code, out, err = run(capsys, good, "apply", "--through", "1")
    assert code == 0, out + err
    assert preflight.probe(ctx_for(good)).status is Status.DONE        # remembered there
    netpol.choose(ctx_for(good), "apply")
    assert netpol.choice(ctx_for(good)) == "apply"

    low = make_sim_world("low-quota")                                  # same names, same state dir
    ctx = ctx_for(low)
    st = preflight.probe(ctx)
    assert st.status is Status.NOT_STARTED and "another environment" in st.summary
    assert netpol.choice(ctx) is None
    code, out, err = run(capsys, low, "apply", "--yes", *secret_args(tmp_path))
    assert code == 1
    assert "step 1 (Preflight checks) failed" in err and "quota" in err.lower()
    assert clusters(low) == 0


def test_billable_actions_check_quota_live_whatever_step_1_remembered(make_sim_world, capsys, tmp_path):
    low = make_sim_world("low-quota")
    ctx = ctx_for(low)
    ctx.record(preflight={"ok": True, "at": time.time(), "replicas": 3, "zone": ZONE, "failed": [], "warnings": []})
    assert preflight.probe(ctx_for(low)).status is Status.DONE          # a fresh pass, this environment
    code, out, err = run(capsys, low, "apply", "--yes", "--through", "2", *secret_args(tmp_path))
    assert code == 1
    assert "quota" in err.lower() and "nothing was created" in err
    assert clusters(low) == 0


def test_a_remembered_pass_expires_after_an_hour(make_sim_world):
    world = make_sim_world("fresh")
    ctx = ctx_for(world)
    old = time.time() - preflight.PASS_VALID_SECONDS - 60
    ctx.record(preflight={"ok": True, "at": old, "replicas": 3, "zone": ZONE, "failed": [], "warnings": []})
    st = preflight.probe(ctx_for(world))
    assert st.status is Status.NOT_STARTED and "Run step 1 again" in st.fix


def test_a_two_node_pool_left_billing_says_what_runs_its_cost_and_how_to_stop_it(make_sim_world, capsys, tmp_path):
    world = make_sim_world("two-nodes")
    # without --yes the resize is refused; with --replicas 3 --yes the zone cannot give a third node
    code, out, err = run(capsys, world, "apply", "--yes", "--json", "--poll", "0.05", *secret_args(tmp_path))
    assert code == 1
    import json

    doc = json.loads(out)
    text = json.dumps(doc["error"])
    assert "2 TPU v6e node(s)" in text and "/day" in text
    assert "rhaii-tui ops scale-to-zero" in text and "rhaii-tui ops teardown" in text
