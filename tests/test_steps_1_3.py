"""Steps 1-3 against the simulated cloud: what a user would see for each scenario."""

from __future__ import annotations

import base64
import logging
import threading
from pathlib import Path

import pytest

from rhaii_tui.cloud.gke import CloudError, Gke
from rhaii_tui.config import DeployConfig, StateStore
from rhaii_tui.secrets import hf_secret_from_form, pull_secret_from_form
from rhaii_tui.steps import cluster as cluster_step
from rhaii_tui.steps import preflight
from rhaii_tui.steps import secrets as secrets_step
from rhaii_tui.steps.base import Status
from rhaii_tui.steps.context import StepContext

PROJECT = "rhaii-demo-project"
ZONE = "europe-west4-a"
HF_CANARY = "hf_" + "CanaryTok3n" * 3 + "q"
PW_CANARY = "Canary-Registry-Pa55word-7731"


def make_ctx(world, tmp_path: Path, **cfg) -> StepContext:
    values = dict(project=PROJECT, zone=ZONE, cluster="rhaii-tpu-scaleout-cluster", replicas=3)
    values.update(cfg)
    return StepContext(DeployConfig(**values), world.profile(), StateStore(tmp_path / "state"))


def results_by_id(report):
    return {r.id: r for r in report.results}


# --- step 1 ---------------------------------------------------------------------------------------


def test_fresh_preflight_passes_and_warns_only_on_secrets(sim_world, tmp_path):
    ctx = make_ctx(sim_world, tmp_path)
    seen: list[str] = []
    lock = threading.Lock()

    def on_result(r):
        with lock:
            seen.append(r.id)

    report = preflight.run_checks(ctx, on_result)
    got = results_by_id(report)
    assert sorted(seen) == sorted(cid for cid, _ in preflight.CHECKS), "every check reported once, as it finished"
    assert {cid: r.status for cid, r in got.items()} == {
        "credentials": "pass", "project": "pass", "permissions": "pass", "api": "pass", "zone": "pass",
        "quota": "pass", "secrets": "warn"}
    assert "demo-user@example.com" in got["credentials"].detail
    assert got["quota"].data["need"] == 12 and got["quota"].data["limit"] >= 12
    assert got["quota"].data["spot_limit"] is not None
    assert "step 3" in got["secrets"].detail
    assert report.ok and report.state().status == Status.DONE
    # step 1's probe remembers the pass for this target
    assert preflight.probe(ctx).status == Status.DONE


def test_low_quota_fails_with_what_to_request(make_sim_world, tmp_path):
    world = make_sim_world("low-quota")
    got = results_by_id(preflight.run_checks(make_ctx(world, tmp_path)))
    q = got["quota"]
    assert q.status == "fail"
    assert "8 chips" in q.detail and "12 needed" in q.detail
    assert "TPUS-PER-TPU-FAMILY-per-project-region" in q.fix and "at least 12 chips" in q.fix
    assert "https://console.cloud.google.com/iam-admin/quotas?project=rhaii-demo-project" in q.fix
    assert "Spot" in q.detail
    assert got["permissions"].status == "pass"


def test_missing_permission_names_it_and_the_role(make_sim_world, tmp_path):
    world = make_sim_world("missing-permission")
    report = preflight.run_checks(make_ctx(world, tmp_path))
    perm = results_by_id(report)["permissions"]
    assert perm.status == "fail"
    assert "container.clusters.create" in perm.detail
    assert "roles/container.admin" in perm.fix
    assert "gcloud projects add-iam-policy-binding rhaii-demo-project" in perm.fix
    assert [m["permission"] for m in perm.data["missing"]] == ["container.clusters.create"]
    state = report.state()
    assert state.status == Status.FAILED and "permissions" in state.summary


def test_api_disabled_fails_with_enable_command(make_sim_world, tmp_path):
    world = make_sim_world("api-disabled")
    got = results_by_id(preflight.run_checks(make_ctx(world, tmp_path)))
    assert got["api"].status == "fail"
    assert "gcloud services enable container.googleapis.com --project rhaii-demo-project" in got["api"].fix
    assert got["api"].data.get("can_enable") is True
    fixed = preflight.enable_container_api(make_ctx(world, tmp_path), wait_seconds=5)
    assert fixed.status == "pass"


def test_bad_config_and_bad_zone(sim_world, tmp_path):
    got = results_by_id(preflight.run_checks(make_ctx(sim_world, tmp_path, zone="us-west2-a")))
    assert got["zone"].status == "skip" and "Zone" in got["zone"].detail
    assert got["credentials"].status == "pass"


def test_secret_files_are_checked_in_preflight(sim_world, tmp_path):
    bad = tmp_path / "hf.yaml"
    bad.write_text("apiVersion: v1\nkind: Secret\nmetadata:\n  name: huggingface-token\ntype: Opaque\n"
                   "stringData:\n  token: YOUR_HF_TOKEN_HERE\n")
    got = results_by_id(preflight.run_checks(make_ctx(sim_world, tmp_path), secret_files=[bad]))
    assert got["secrets"].status == "fail" and "placeholder" in got["secrets"].detail


def test_revoked_credentials_fail_credentials_and_skip_the_rest(sim_world, tmp_path):
    sim_world.call(sim_world.world.revoke_token)
    got = results_by_id(preflight.run_checks(make_ctx(sim_world, tmp_path)))
    assert got["credentials"].status == "fail"
    assert "gcloud auth application-default login" in got["credentials"].fix
    for cid in ("project", "permissions", "api", "zone", "quota"):
        assert got[cid].status == "skip", cid
    assert all("Traceback" not in r.detail for r in got.values())


# --- step 2 ---------------------------------------------------------------------------------------


def test_stockout_names_other_zones(make_sim_world, tmp_path):
    world = make_sim_world("stockout")
    ctx = make_ctx(world, tmp_path)
    with pytest.raises(CloudError) as ei:
        cluster_step.ensure_cluster(ctx, node_timeout=10)
    err = ei.value
    assert err.kind == "stockout"
    assert "us-east5-a" in err.fix and "europe-west4-a" in err.message + err.fix
    assert "quota" not in err.kind
    state = cluster_step.probe(ctx)
    assert state.status == Status.FAILED


def test_stockout_is_named_from_the_instance_group_long_before_gke_gives_up(make_sim_world, tmp_path):
    world = make_sim_world("stockout", speed=50)  # 2 simulated minutes are 2.4 s of wall time here
    ctx = make_ctx(world, tmp_path)
    gke = world.profile().gke()  # the cluster exists already (fast-forwarded): step 2 creates the TPU pool
    gke.create_cluster(request={"parent": f"projects/{PROJECT}/locations/{ZONE}", "cluster": {
        "name": ctx.cfg.cluster, "node_pools": [{"name": "default-pool", "initial_node_count": 2,
                                                 "config": {"machine_type": "n1-standard-4"}}]}})
    world.fast_forward(301)
    world.wait_until(lambda: world.world.clusters[f"{PROJECT}/{ZONE}/{ctx.cfg.cluster}"].status == "RUNNING",
                     timeout=60)
    seen = []
    with pytest.raises(CloudError) as ei:
        cluster_step.ensure_cluster(ctx, seen.append, poll_max=0.5)
    err = ei.value
    assert err.kind == "stockout" and "ZONE_RESOURCE_POOL_EXHAUSTED" in err.message
    assert "europe-west4-a" in err.message and "still RUNNING" in err.message
    # named while GKE's operation still runs, within 2 simulated minutes of the first failed creation
    ops = {o["type"]: o for o in world.state()["operations"]}
    assert ops["CREATE_NODE_POOL"]["status"] == "RUNNING"
    diag = err.details["stockout"]
    assert (diag["named_at"] - diag["first_error_at"]) * 50 <= 120
    assert diag["codes"] == ["ZONE_RESOURCE_POOL_EXHAUSTED"] and len(diag["instances"]) == 3
    # the options, checked live: no other v6e zone in europe-west4; other regions with their quota; Spot; flex-start
    opts = {o["key"]: o for o in diag["options"]}
    assert list(opts) == ["wait", "zone", "region", "spot", "flex-start", "reservation"]
    assert opts["zone"]["available"] is False and "No other zone of europe-west4" in opts["zone"]["detail"]
    assert opts["region"]["available"] and "us-east5-a" in opts["region"]["detail"] + " ".join(
        opts["region"]["commands"]) + err.fix
    assert opts["region"]["quota"]["limit"] == 32 and opts["region"]["cost_per_day"] == 376.8
    assert opts["spot"]["quota"]["quota_id"] == "PREEMPTIBLE-TPU-V6E-per-project-region"
    assert opts["spot"]["quota"]["limit"] == 64 and "--spot" in opts["spot"]["commands"][-1]
    assert "--flex-start" in opts["flex-start"]["commands"][-1] and opts["flex-start"]["available"]
    assert "--keep-waiting" in opts["wait"]["commands"][0]
    # what already bills: the cluster and its default pool, no TPU node
    assert diag["billing"]["per_day"] == 6.0 and diag["billing"]["tpu_nodes"] == 0
    assert any(p.stockout for p in seen), "the progress carried the diagnosis for the page"
    # step 2's probe says so too (without waiting for GKE), and running step 2 again names it at once
    state = cluster_step.probe(ctx)
    assert state.status == Status.FAILED and "ZONE_RESOURCE_POOL_EXHAUSTED" in state.summary
    with pytest.raises(CloudError) as again:
        cluster_step.ensure_cluster(ctx, poll_max=0.5)
    assert again.value.kind == "stockout" and again.value.details["stockout"]["operation"] == diag["operation"]


def test_a_stocked_out_zone_with_a_sibling_offers_node_pool_locations(make_sim_world, tmp_path):
    from google.cloud import container_v1

    from rhaii_tui.steps import stockout

    world = make_sim_world("stockout", stockout_zones=["us-east5-a"])
    ctx = make_ctx(world, tmp_path, zone="us-east5-a", cluster="c1")
    diag = stockout.diagnose(ctx, None, None, error_text="ZONE_RESOURCE_POOL_EXHAUSTED")
    opts = {o.key: o for o in diag.options}
    assert opts["zone"].available and "us-east5-b" in opts["zone"].title
    assert "--node-locations us-east5-b" in opts["zone"].commands[-1]
    assert opts["zone"].quota["region"] == "us-east5" and opts["zone"].quota["enough"] is True
    assert "us-east5-b" not in opts["region"].detail  # the sibling zone is offered as a zone, not a region
    # the emulator puts such a pool's nodes (and its instance group) in the other zone: no stockout there
    gke = world.profile().gke()
    parent = f"projects/{PROJECT}/locations/us-east5-a"
    gke.create_cluster(request={"parent": parent, "cluster": {"name": "c1"}})
    world.fast_forward(301)
    op = gke.create_node_pool(request={"parent": f"{parent}/clusters/c1", "node_pool": {
        "name": "tpu-pool", "initial_node_count": 1, "locations": ["us-east5-b"],
        "config": {"machine_type": "ct6e-standard-4t"}}})
    world.fast_forward(1000)
    world.wait_until(lambda: world.world.operations[op.name].status == "DONE", timeout=60)
    assert world.world.operations[op.name].error is None
    pool = gke.get_node_pool(request={"name": f"{parent}/clusters/c1/nodePools/tpu-pool"})
    assert pool.status == container_v1.NodePool.Status.RUNNING
    assert "/zones/us-east5-b/instanceGroupManagers/" in pool.instance_group_urls[0]


def test_keep_waiting_follows_a_stockout_to_gkes_own_failure(make_sim_world, tmp_path):
    world = make_sim_world("stockout", speed=2000, stockout_fail_seconds=600)
    ctx = make_ctx(world, tmp_path)
    seen = []
    with pytest.raises(CloudError) as ei:
        cluster_step.ensure_cluster(ctx, lambda p: seen.append(p.message), keep_waiting=True, poll_max=0.2)
    assert ei.value.kind == "stockout" and "Not all instances running in IGM after 10m" in ei.value.message
    assert any("still waiting, as asked" in m for m in seen)
    assert ei.value.details["stockout"]["options"]
    assert {o["type"]: o["status"] for o in world.state()["operations"]}["CREATE_NODE_POOL"] == "DONE"


def test_plan_shows_what_will_be_created_and_cost(sim_world, tmp_path):
    ctx = make_ctx(sim_world, tmp_path)
    plan = cluster_step.plan(ctx)
    assert not plan.exists and plan.billable and plan.chips == 12
    assert plan.cost_per_day == ctx.cfg.cost_per_day(3)
    assert any("n1-standard-4" in a and "Dataplane V2" in a for a in plan.actions)
    assert any("--enable-dataplane-v2" in c for c in plan.commands)
    assert any("3 x ct6e-standard-4t" in a for a in plan.actions)


# --- step 2 and 3 on a live cluster ---------------------------------------------------------------


def _files_under(root: Path, exclude: tuple[Path, ...] = ()) -> list[Path]:
    out = []
    for p in root.rglob("*"):
        if p.is_file() and not any(p.is_relative_to(e) for e in exclude):
            out.append(p)
    return out


def test_fresh_end_to_end_and_no_secret_value_in_any_written_file(make_sim_world, tmp_path):
    world = make_sim_world("fresh", state_dir=tmp_path / "world")
    log_file = tmp_path / "logs" / "run.log"
    log_file.parent.mkdir()
    handler = logging.FileHandler(log_file)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        ctx = make_ctx(world, tmp_path)
        assert [cluster_step.probe(ctx).status, secrets_step.probe(ctx).status] == [Status.NOT_STARTED] * 2
        assert preflight.run_checks(ctx).ok

        phases: list[str] = []
        res = cluster_step.ensure_cluster(ctx, lambda p: phases.append(p.phase), write_kubeconfig=True,
                                          kubeconfig_path=tmp_path / "kube" / "config")
        assert res.created_cluster and res.created_pool and not res.reattached and res.ready
        assert {"create-cluster", "create-pool", "wait-nodes", "done"} <= set(phases)
        ready = [n for n in res.nodes if n.ready]
        assert len(ready) == 3
        assert all(n.accelerator == "tpu-v6e-slice" and n.topology == "2x2" and n.tpu_chips == 4 for n in ready)
        state = cluster_step.probe(ctx)
        assert state.status == Status.DONE and "3/3" in state.summary
        # created with Dataplane V2, so the cluster enforces NetworkPolicies
        assert world.world.sim_for(f"{ctx.cfg.project}/{ctx.cfg.zone}/{ctx.cfg.cluster}").enforces_network_policy

        ctx.secrets.add(hf_secret_from_form(HF_CANARY))
        ctx.secrets.add(pull_secret_from_form("canary-user", PW_CANARY))
        pv = secrets_step.preview(ctx)
        assert "rhaiis-pull-secret" in pv["text"] and "huggingface-token" in pv["text"]
        first = secrets_step.apply_secrets(ctx)
        again = secrets_step.apply_secrets(ctx)  # idempotent
        assert first.namespace_created and not again.namespace_created
        assert sorted(again.applied) == ["huggingface-token", "rhaiis-pull-secret"]
        s3 = secrets_step.probe(ctx)
        assert s3.status == Status.DONE
        # the cluster really holds the values (and a kubectl-style reader sees the right type)
        sec = ctx.kube().core.read_namespaced_secret("huggingface-token", "rhaii-inference")
        assert base64.b64decode(sec.data["token"]).decode() == HF_CANARY
        # re-running step 2 reuses everything
        res2 = cluster_step.ensure_cluster(make_ctx(world, tmp_path))
        assert not res2.created_cluster and not res2.created_pool and not res2.resized
        ops = world.state()["operations"]
        assert sorted(o["type"] for o in ops) == ["CREATE_CLUSTER", "CREATE_NODE_POOL"]
        logging.getLogger("rhaii_tui").debug("specs: %r", ctx.secrets.specs)  # reprs are masked
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
    needles = [HF_CANARY, PW_CANARY, base64.b64encode(HF_CANARY.encode()).decode(),
               base64.b64encode(f"canary-user:{PW_CANARY}".encode()).decode()]
    written = _files_under(tmp_path, exclude=(tmp_path / "world",))  # the world is the cluster's own storage
    assert any(p.name == "run.log" for p in written) and any(p.parent.name == "targets" for p in written)
    assert log_file.stat().st_size > 0
    for p in written:
        text = p.read_bytes().decode("utf-8", "replace")
        for n in needles:
            assert n not in text, f"a secret value leaked into {p}"


def test_restarted_wizard_reattaches_instead_of_creating_twice(make_sim_world, tmp_path):
    world = make_sim_world("fresh", speed=400)
    # a first wizard asked for the cluster, then died
    Gke(world.profile(), PROJECT, ZONE).create_cluster("rhaii-tpu-scaleout-cluster")
    assert cluster_step.probe(make_ctx(world, tmp_path)).status == Status.IN_PROGRESS
    plan = cluster_step.plan(make_ctx(world, tmp_path))
    assert plan.in_flight is not None and not plan.creates_cluster and plan.creates_pool and plan.billable
    # a second one follows that operation, then is stopped while the TPU pool is being created
    stop = threading.Event()

    def on_progress(p):
        if p.phase == "create-pool" and p.op is not None:
            stop.set()

    with pytest.raises(CloudError) as ei:
        cluster_step.ensure_cluster(make_ctx(world, tmp_path), on_progress, stop=stop)
    assert "Run step 2 again" in ei.value.fix and ei.value.details.get("detached")
    # a third one reattaches to the pool creation
    phases = []
    res = cluster_step.ensure_cluster(make_ctx(world, tmp_path), lambda p: phases.append((p.phase, p.reattached)))
    assert res.reattached and not res.created_pool and not res.created_cluster
    assert ("create-pool", True) in phases
    ops = world.state()["operations"]
    assert sorted(o["type"] for o in ops) == ["CREATE_CLUSTER", "CREATE_NODE_POOL"], "nothing created twice"
    assert cluster_step.probe(make_ctx(world, tmp_path)).status == Status.DONE


def test_probes_from_a_cluster_ready_world(make_sim_world, tmp_path):
    world = make_sim_world("cluster-ready")
    ctx = make_ctx(world, tmp_path)
    assert preflight.probe(ctx).status == Status.DONE
    s2 = cluster_step.probe(ctx)
    assert s2.status == Status.DONE and s2.data["nodes_ready"] == 3
    assert secrets_step.probe(ctx).status == Status.NOT_STARTED
    # only one secret present -> in progress, naming the missing one
    ctx.secrets.add(hf_secret_from_form(HF_CANARY))
    secrets_step.apply_secrets(ctx)
    s3 = secrets_step.probe(ctx)
    assert s3.status == Status.IN_PROGRESS and "rhaiis-pull-secret" in s3.summary
    # a pull secret of the wrong type is reported, and step 3 replaces it
    kube = ctx.kube()
    kube.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "rhaiis-pull-secret"},
                "type": "Opaque", "stringData": {"x": "y"}}, "rhaii-inference")
    s3 = secrets_step.probe(ctx)
    assert s3.status == Status.FAILED and "kubernetes.io/dockerconfigjson" in s3.summary
    ctx.secrets.add(pull_secret_from_form("me", PW_CANARY))
    out = secrets_step.apply_secrets(ctx)
    assert out.replaced == ["rhaiis-pull-secret"]
    assert secrets_step.probe(ctx).status == Status.DONE


def test_two_nodes_pool_needs_a_resize(make_sim_world, tmp_path):
    world = make_sim_world("two-nodes")
    ctx = make_ctx(world, tmp_path)
    s2 = cluster_step.probe(ctx)
    assert s2.status == Status.IN_PROGRESS and "2 of 3" in s2.summary and "resize" in s2.fix
    plan = cluster_step.plan(ctx)
    assert plan.resize == (2, 3) and plan.billable
    res = cluster_step.ensure_cluster(ctx, node_timeout=5)
    assert res.resize_needed == (2, 3) and not res.resized and not res.ready and res.nodes_ready == 2
    # with the resize allowed, the zone still cannot give a third node: a stockout with other zones
    with pytest.raises(CloudError) as ei:
        cluster_step.ensure_cluster(ctx, resize=True, node_timeout=2)
    assert ei.value.kind == "stockout" and "us-east5-a" in ei.value.fix


def test_zone_mismatch_is_caught(make_sim_world, tmp_path):
    world = make_sim_world("cluster-ready")
    ctx = make_ctx(world, tmp_path, zone="us-east5-a")
    with pytest.raises(CloudError) as ei:
        cluster_step.ensure_cluster(ctx)
    assert ei.value.kind == "conflict" and "europe-west4-a" in ei.value.fix


@pytest.mark.parametrize("scenario,kind,needle", [
    ("missing-permission", "permission", "roles/container.admin"),
    ("api-disabled", "api_disabled", "gcloud services enable container.googleapis.com"),
])
def test_step2_cloud_errors_carry_their_fix(make_sim_world, tmp_path, scenario, kind, needle):
    world = make_sim_world(scenario)
    ctx = make_ctx(world, tmp_path)
    with pytest.raises(CloudError) as ei:
        cluster_step.ensure_cluster(ctx)
    assert ei.value.kind == kind and needle in ei.value.fix
    state = cluster_step.probe(ctx)
    if scenario == "api-disabled":
        assert state.status == Status.FAILED and needle in state.fix
    assert not world.state()["clusters"], "nothing was created"


def test_low_quota_is_refused_before_anything_is_created_then_recovers_after_the_quota_grows(make_sim_world,
                                                                                           tmp_path):
    world = make_sim_world("low-quota")
    ctx = make_ctx(world, tmp_path)
    with pytest.raises(CloudError) as ei:
        cluster_step.ensure_cluster(ctx)
    assert ei.value.kind == "quota" and "nothing was created" in ei.value.message
    assert "12 chips" in ei.value.fix and "iam-admin/quotas" in ei.value.fix
    assert world.state()["operations"] == []            # the quota was checked live, before the cluster
    assert cluster_step.probe(ctx).status == Status.NOT_STARTED
    # the quota request was granted: step 2 creates the cluster and the pool
    world.call(lambda: setattr(world.world, "scenario", world.world.scenario.with_overrides(quota_chips=32)))
    res = cluster_step.ensure_cluster(ctx)
    assert res.created_pool and res.ready
    assert cluster_step.probe(ctx).status == Status.DONE


def test_flaky_apis_do_not_break_steps_1_to_3(make_sim_world, tmp_path):
    # 10 % of Google and Kubernetes requests fail (5xx/429), watches drop: retries and reattach carry it
    world = make_sim_world("flaky-api")
    ctx = make_ctx(world, tmp_path)
    report = preflight.run_checks(ctx)
    assert report.ok, [(r.id, r.detail) for r in report.failed]
    res = cluster_step.ensure_cluster(ctx)
    assert res.ready
    ctx.secrets.add(hf_secret_from_form(HF_CANARY))
    ctx.secrets.add(pull_secret_from_form("me", PW_CANARY))
    secrets_step.apply_secrets(ctx)
    assert secrets_step.probe(ctx).status == Status.DONE
    ops = world.state()["operations"]
    assert sorted(o["type"] for o in ops) == ["CREATE_CLUSTER", "CREATE_NODE_POOL"]


def test_an_operations_bar_follows_the_guide_time_and_explains_an_overrun():
    from rhaii_tui.steps.cluster import TIME_CAP, op_fraction, overdue_text

    # GKE reports nothing while it creates a control plane: time against the guide's ~5 min
    assert op_fraction(269.0, 300.0) == pytest.approx(269 / 300)
    assert op_fraction(0.0, 300.0) == 0.0 and op_fraction(None, 300.0) == 0.0
    assert op_fraction(900.0, 300.0) == TIME_CAP < 1.0          # never 100% before DONE
    assert op_fraction(900.0, 300.0, done=True) == 1.0
    assert op_fraction(60.0, 900.0, reported=0.5) == 0.5         # what the operation reports, when further
    assert op_fraction(600.0, 900.0, reported=0.1) == pytest.approx(600 / 900)
    assert overdue_text("CREATE_CLUSTER", "RUNNING", 269.0, 300.0) == ""
    assert overdue_text("CREATE_CLUSTER", "RUNNING", 301.0, 300.0) == (
        "longer than the guide's ~5 min: GKE is still creating the control plane "
        "(this happens; the operation is RUNNING)")
    assert "~15 min" in overdue_text("CREATE_NODE_POOL", "RUNNING", 1000.0, 900.0)
    assert overdue_text("CREATE_CLUSTER", "DONE", 400.0, 300.0) == ""
