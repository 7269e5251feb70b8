"""Operate (day two) on the emulator, each from the `deployed` world to its end state: scale up and
down with the node pool, a quota too small (refused before anything changes), a rolling image
update and its automatic rollback (never a moment without a Ready replica), scale to zero and back,
teardown, the migration checklist, and `rhaii-tui ops ...` (--yes, exit codes, --json)."""

from __future__ import annotations

import json
import threading

import pytest

from rhaii_tui import manifests as m
from rhaii_tui.config import CLUSTER_OVERHEAD_PER_DAY, GATEWAY_NAMESPACE, DeployConfig, StateStore, cost_per_day
from rhaii_tui.steps import operate
from rhaii_tui.steps.base import Status
from rhaii_tui.steps.context import StepContext

from clihelpers import clean_env, run  # noqa: F401 - clean_env is an autouse fixture

CLUSTER = "rhaii-tpu-scaleout-cluster"
BROKEN = "3.3.0-broken"


def make_ctx(world, tmp_path) -> StepContext:
    cfg = DeployConfig(project=world.endpoints["project"], cluster=CLUSTER, replicas=3)
    return StepContext(cfg, world.profile(), StateStore(tmp_path / "state"))


class ReadyWatcher:
    """Lists the workload pods in a loop and keeps the fewest Ready ever seen."""

    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx
        self.min_ready = 99
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        run = operate.Runner(self.ctx)
        while not self._stop.is_set():
            pods = run.pods()
            self.min_ready = min(self.min_ready, sum(1 for p in pods if operate._ready(p)))
            self.samples += 1

    def __enter__(self) -> "ReadyWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


def images(ctx) -> list[str]:
    return sorted(p.tag for p in operate.read_status(ctx).pods)


# --- scale ------------------------------------------------------------------------------------


def test_scale_up_grows_the_pool_before_the_replicas(make_sim_world, tmp_path):
    world = make_sim_world("deployed", quota_chips=16)
    ctx = make_ctx(world, tmp_path)
    events: list[operate.OpEvent] = []
    res = operate.scale(ctx, 4, on_event=events.append)
    assert res.ok, (res.summary, res.fix)
    st = operate.read_status(ctx)
    assert (st.replicas_desired, st.replicas_ready, st.pool_nodes, st.tpu_nodes_ready) == (4, 4, 4, 4)
    assert st.llmisvc_ready and len({p.node for p in st.pods}) == 4
    assert res.cost_per_day == st.cost_now == cost_per_day(4, ctx.cfg.price_per_node_hour)
    phases = [e.phase for e in events]
    assert phases.index("nodes") < phases.index("replicas")          # nodes first
    assert StateStore(tmp_path / "state").load(ctx.cfg.project, ctx.cfg.zone, CLUSTER)["config"]["replicas"] == 4


def test_scale_down_shrinks_the_replicas_before_the_pool(make_sim_world, tmp_path):
    world = make_sim_world("deployed")
    ctx = make_ctx(world, tmp_path)
    events: list[operate.OpEvent] = []
    with ReadyWatcher(ctx) as watch:
        res = operate.scale(ctx, 2, on_event=events.append)
    assert res.ok, (res.summary, res.fix)
    st = operate.read_status(ctx)
    assert (st.replicas_desired, st.replicas_ready, st.pool_nodes) == (2, 2, 2)
    assert st.cost_now == cost_per_day(2, ctx.cfg.price_per_node_hour)
    phases = [e.phase for e in events]
    assert phases.index("replicas") < phases.index("nodes")          # replicas first
    assert watch.samples and watch.min_ready >= 1


def test_scale_up_beyond_the_quota_is_refused_before_anything_changes(make_sim_world, tmp_path):
    world = make_sim_world("deployed", quota_chips=12)
    ctx = make_ctx(world, tmp_path)
    before = operate.read_status(ctx)
    res = operate.scale(ctx, 4)
    assert not res.ok and not res.changed
    assert "Refused, nothing changed" in res.summary and "12 chips" in res.summary and "16" in res.summary
    assert "gcloud beta quotas preferences create" in res.fix and "at most 3 replicas" in res.fix
    after = operate.read_status(ctx)
    assert (after.replicas_desired, after.pool_nodes, after.replicas_ready) == (3, 3, 3)
    assert ctx.gke.in_flight(CLUSTER) is None                        # no resize was sent
    assert after.cost_now == before.cost_now


# --- rolling image update ----------------------------------------------------------------------


def test_image_update_replaces_one_replica_at_a_time(make_sim_world, tmp_path):
    world = make_sim_world("deployed")
    ctx = make_ctx(world, tmp_path)
    with ReadyWatcher(ctx) as watch:
        res = operate.update_image(ctx, "3.3.0")
    assert res.ok, (res.summary, res.fix)
    assert images(ctx) == ["3.3.0"] * 3
    assert operate.read_status(ctx).image_tag == "3.3.0" and ctx.cfg.image.endswith(":3.3.0")
    assert watch.samples and watch.min_ready >= 2                   # N-1 kept serving throughout
    # the KServe-owned Deployment keeps the apiserver's default strategy: the wizard drove it
    dep = ctx.kube().get("apps/v1", "Deployment", m.workload_deployment_name(ctx.cfg.service), ctx.cfg.namespace)
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": "25%"}
    # and back, on request
    assert operate.previous_image(ctx).endswith(":3.2.5")
    back = operate.rollback_image(ctx)
    assert back.ok and images(ctx) == ["3.2.5"] * 3


def test_a_broken_image_is_rolled_back_while_the_old_replicas_keep_serving(make_sim_world, tmp_path):
    world = make_sim_world("deployed")
    ctx = make_ctx(world, tmp_path)
    events: list[operate.OpEvent] = []
    with ReadyWatcher(ctx) as watch:
        res = operate.update_image(ctx, BROKEN, on_event=events.append)
    assert not res.ok and res.rolled_back and res.exit_code == 1
    assert "Rolled back to 3.2.5" in res.summary and BROKEN in res.summary and "CrashLoopBackOff" in res.summary
    assert watch.samples > 5 and watch.min_ready >= 1              # never a moment without a Ready replica
    st = operate.read_status(ctx)
    assert st.image_tag == "3.2.5" and images(ctx) == ["3.2.5"] * 3 and st.replicas_ready == 3
    assert st.llmisvc_ready
    assert any(e.phase == "rollback" for e in events)
    assert ctx.cfg.image.endswith(":3.2.5")                          # the config keeps the good image


def test_image_update_input_is_checked(make_sim_world, tmp_path):
    world = make_sim_world("deployed")
    ctx = make_ctx(world, tmp_path)
    res = operate.update_image(ctx, "Not A Tag!")
    assert not res.ok and not res.changed and "REGISTRY/PATH:TAG" in res.fix
    assert operate.resolve_image("registry.redhat.io/rhaiis/vllm-tpu-rhel9:3.2.5", "3.3.0") == \
        "registry.redhat.io/rhaiis/vllm-tpu-rhel9:3.3.0"


# --- scale to zero and back --------------------------------------------------------------------


def test_scale_to_zero_and_back(make_sim_world, tmp_path):
    world = make_sim_world("deployed")
    ctx = make_ctx(world, tmp_path)
    res = operate.scale_to_zero(ctx)
    assert res.ok, res.summary
    st = operate.read_status(ctx)
    assert st.pool_nodes == 0 and st.replicas_ready == 0 and st.replicas_desired == 3    # the service stays
    assert st.cost_now == res.cost_per_day == CLUSTER_OVERHEAD_PER_DAY
    assert st.scaled_to_zero_from == 3 and st.state.status is Status.SKIPPED
    assert st.cost_after("resume") == cost_per_day(3, ctx.cfg.price_per_node_hour)

    back = operate.resume(ctx)
    assert back.ok, (back.summary, back.fix)
    assert "quick verification passed" in back.summary
    checks = back.data["checks"]
    assert {c["key"] for c in checks} >= {"health", "models", "completion"} and all(c["ok"] for c in checks)
    st = operate.read_status(ctx)
    assert (st.pool_nodes, st.replicas_ready) == (3, 3) and st.scaled_to_zero_from is None


def test_at_zero_pending_pods_wait_for_the_pool_and_resume_uses_this_deployments_size(make_sim_world, tmp_path):
    world = make_sim_world("deployed")
    ctx = make_ctx(world, tmp_path)
    assert operate.scale_to_zero(ctx).ok
    st = operate.read_status(ctx)
    # the replicas wait for a node that cannot come: not "late" against the guide's 1-5 min
    assert st.pods and all(p.stage == "Pending" for p in st.pods)
    assert all(p.in_stage == operate.POOL_AT_ZERO and p.severity == "ok" for p in st.pods)
    assert st.resume_size == 3 and "0 -> 3 TPU nodes" in operate.describe(ctx, "resume").lines[0]
    # a size remembered for another cluster of the same name (another world, an old state file)
    # does not count: without this deployment's own, resume goes back to its replicas
    ctx.record(**{operate.K_ZERO: {"from": 4, "at": 0}})
    st = operate.read_status(ctx)
    assert st.scaled_to_zero_from is None and st.resume_size == 3
    assert "0 -> 3 TPU nodes" in operate.describe(ctx, "resume").lines[0]
    ctx.record(**{operate.K_ZERO: {"from": 4, "at": 0, "cluster_created": "2020-01-01T00:00:00Z",
                                    "namespace": ctx.cfg.namespace, "service": ctx.cfg.service}})
    assert operate.read_status(ctx).resume_size == 3
    back = operate.resume(ctx, verify=False)
    assert back.ok, back.summary
    st = operate.read_status(ctx)
    assert st.pool_nodes == 3 and all(p.in_stage == "-" for p in st.pods if p.ready) and st.replicas_ready == 3


# --- teardown ---------------------------------------------------------------------------------


def test_teardown_lists_what_goes_and_what_keeps_costing(make_sim_world, tmp_path):
    world = make_sim_world("deployed")
    ctx = make_ctx(world, tmp_path)
    plan = operate.plan_teardown(ctx, "service")
    assert any("LLMInferenceService" in d for d in plan.deletes) and any("EnvoyFilters" in d for d in plan.deletes)
    assert any("still billed" in k for k in plan.keeps) and plan.cost_after == plan.cost_now > 300

    res = operate.teardown(ctx, "service")
    assert res.ok and "Still billed" in res.summary
    kube = ctx.kube()
    cfg = ctx.cfg
    assert kube.get(m.LLMISVC_API_VERSION, "LLMInferenceService", cfg.service, cfg.namespace) is None
    assert all(kube.get(m.ENVOYFILTER_API_VERSION, "EnvoyFilter", n, GATEWAY_NAMESPACE) is None
               for n in m.envoyfilter_names(cfg.service).values())
    assert not operate.Runner(ctx).pods()
    assert kube.get("v1", "Namespace", cfg.namespace) is not None    # kept, with its secrets

    pool = operate.plan_teardown(ctx, "node-pool")
    assert pool.cost_after == CLUSTER_OVERHEAD_PER_DAY
    res = operate.teardown(ctx, "cluster")
    assert res.ok and res.cost_per_day == 0.0
    assert ctx.cluster(refresh=True) is None and operate.read_status(ctx).cost_now == 0.0


# --- migration (scale-out guide) ----------------------------------------------------------------


def test_migration_round_trip_with_the_checklist_probed_live(make_sim_world, tmp_path):
    world = make_sim_world("deployed")
    ctx = make_ctx(world, tmp_path)
    single = m.llmisvc(ctx.cfg.replace(service="qwen-single-svc", replicas=1))
    main = single["spec"]["template"]["containers"][0]
    main["args"] = [a for a in main["args"] if a != "--enable-prefix-caching"]
    ctx.record(**{operate.K_SINGLE: {"name": "qwen-single-svc", "replicas": 1, "manifest": single}})

    res = operate.rollback_migration(ctx)                            # back to the single-model pattern
    assert res.ok, (res.summary, res.fix)
    items = {i.item.key: i for i in operate.migration_status(ctx)}
    assert items["validate"].state == "done" and "qwen-single-svc" in items["validate"].evidence
    assert items["delete-single"].state == "todo" and items["scale-pool"].state == "todo"
    assert items["budget"].state == "manual" and items["deploy"].state == "todo"

    refused = operate.migrate(ctx, replicas=3)                      # the budget is the caller's to confirm
    assert not refused.ok and not refused.changed
    res = operate.migrate(ctx, replicas=3, budget_confirmed=True)
    assert res.ok, (res.summary, res.fix)
    items = {i.item.key: i for i in operate.migration_status(ctx)}
    assert [items[k].state for k in ("validate", "quota", "budget", "delete-single", "scale-pool", "deploy")] == \
        ["done"] * 6
    assert items["cache-routing"].state == "todo" and "step 10" in items["cache-routing"].evidence
    assert items["monitor"].state == "waiting" and "of 24 h" in items["monitor"].evidence
    assert len(operate.migration_status(ctx)) == len(operate.CHECKLIST) == 9


# --- headless: rhaii-tui ops ... -------------------------------------------------------------------


def test_ops_cli_needs_yes_for_costly_actions_and_reports_json(make_sim_world, capsys):
    world = make_sim_world("deployed")
    code, out, err = run(capsys, world, "ops", "scale", "--replicas", "4")
    assert code == 2 and "--yes" in err and "$376.80/day now" in err and "$500.40/day after" in err
    assert "Traceback" not in err
    code, out, err = run(capsys, world, "ops", "teardown", "--cluster")
    assert code == 2 and "Delete the cluster" in err and "$0.00/day after" in err

    code, out, err = run(capsys, world, "ops", "scale", "--replicas", "4", "--yes", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["ok"] and doc["result"]["action"] == "scale" and doc["status"]["replicas_ready"] == 4
    assert any("Resizing node pool" in e["message"] for e in doc["events"])

    code, out, err = run(capsys, world, "ops", "update-image", BROKEN)
    assert code == 1 and "Rolled back to 3.2.5" in err and "rollback:" in out

    code, out, err = run(capsys, world, "ops", "status")
    assert code == 0 and "4 Ready of 4 desired" in out and "3.2.5" in out

    code, out, err = run(capsys, world, "ops", "scale", "--replicas", "0")
    assert code == 2 and "scale-to-zero" in err


def test_ops_waits_for_another_rhaii_tui_and_scales_up_from_zero(make_sim_world, tmp_path, capsys):
    from rhaii_tui.lease import Identity, Lease

    world = make_sim_world("deployed")
    ctx = make_ctx(world, tmp_path)
    other = Lease(ctx.kube, ctx.cfg.namespace, identity=Identity("bob", "other-host", 4242), command="apply")
    assert other.acquire()
    code, out, err = run(capsys, world, "ops", "scale-to-zero", "--yes")
    assert code == 1 and "another rhaii-tui (bob@other-host, pid 4242)" in err
    assert operate.read_status(ctx).pool_nodes == 3                    # nothing changed
    other.release()

    assert operate.scale_to_zero(ctx).ok
    res = operate.scale(ctx, 2)                                        # from zero: nodes, then 2 Ready
    assert res.ok, (res.summary, res.fix)
    st = operate.read_status(ctx)
    assert (st.pool_nodes, st.replicas_desired, st.replicas_ready, st.scaled_to_zero_from) == (2, 2, 2, None)
