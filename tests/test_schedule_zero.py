"""The scheduled scale-to-zero (`ops schedule-zero`, steps/operate/schedule.py) on the simulated cloud:
at the deadline a CronJob scales the service to 0 replicas and GKE's cluster autoscaler removes the
idle TPU nodes, with no wizard running; cancel removes it; resume restores replicas and the pool;
bad input is refused with exit 2; the job's Role allows only that one LLMInferenceService.
Also the emulator's pieces: cron, CronJob/Job, the kubectl patch a pod runs, RBAC, setAutoscaling."""

from __future__ import annotations

import json
import time

import pytest

from rhaii_tui import manifests as m
from rhaii_tui.config import TPU_POOL_NAME, DeployConfig, StateStore, cost_per_day
from rhaii_tui.steps import operate
from rhaii_tui.steps.context import StepContext
from rhaii_tui.steps.operate import schedule as sz

from clihelpers import clean_env, run  # noqa: F401 - clean_env is an autouse fixture

CLUSTER = "rhaii-tpu-scaleout-cluster"
NOW = 1_796_000_000.0  # 2026-11-30 (a fixed instant for the unit tests)


def make_ctx(world, tmp_path) -> StepContext:
    cfg = DeployConfig(project=world.endpoints["project"], cluster=CLUSTER, replicas=3)
    return StepContext(cfg, world.profile(), StateStore(tmp_path / "state"))


# --- what the world holds (read on the emulator, not through the wizard) ------------------------------


def cluster_view(world, namespace: str = DeployConfig().namespace, service: str = DeployConfig().service):
    """(LLMInferenceService replicas, TPU Node objects, the pool's node count, its autoscaling)."""
    def read():
        sim = world.sim()
        store = sim.store
        rt = store.resolve("serving.kserve.io", None, "llminferenceservices")
        isvc = store.try_get(rt, namespace, service) if rt else None
        c = next(iter(world.world.clusters.values()))
        pool = c.pools.get(TPU_POOL_NAME)
        return ((isvc or {}).get("spec", {}).get("replicas"), len(sim.pool_nodes(TPU_POOL_NAME)),
                pool.nodes if pool else None, (pool.extra.get("autoscaling") if pool else None))
    return world.call(read)


def wait_for(world, predicate, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; world: {cluster_view(world)}")
        time.sleep(0.05)


# --- input (no emulator) ---------------------------------------------------------------------------


def test_durations_and_times_are_parsed_and_rounded_up_to_the_minute():
    assert sz.parse_duration("2h") == 7200 and sz.parse_duration("1h30m") == 5400
    assert sz.parse_duration("45min") == 2700 and sz.parse_duration("1d") == 86400
    t = sz.deadline_from("2h", None, NOW)
    assert t % 60 == 0 and NOW + 7200 <= t < NOW + 7260
    t = sz.deadline_from(None, "2026-12-01 08:15", NOW)
    assert sz.fmt_utc(t) == "2026-12-01 08:15 UTC" and sz.cron_for(t) == "15 8 1 12 *"
    assert sz.deadline_from(None, "2026-12-01T09:15+01:00", NOW) == t


@pytest.mark.parametrize("after, at, says", [
    ("soon", None, "not a duration"),
    ("0m", None, "zero"),
    (None, "25:99", "not a time"),
    (None, "yesterday", "not a time"),
    (None, "2020-01-01 10:00", "in the past"),
    ("90d", None, "more than 30 days"),
    (None, None, "either --after"),
])
def test_bad_deadlines_are_refused_with_what_to_type(after, at, says):
    with pytest.raises(ValueError) as e:
        sz.deadline_from(after, at, NOW)
    assert says in str(e.value)


def test_the_jobs_role_may_only_get_and_patch_that_one_service():
    from rhaii_tui.sim import rbac
    from rhaii_tui.sim.store import Store

    objs = sz.manifests("ns1", "svc", NOW + 3600, replicas=3, nodes=3, autoscaling_before=None)
    kinds = {o["kind"]: o for o in objs}
    assert set(kinds) == {"ServiceAccount", "Role", "RoleBinding", "NetworkPolicy", "CronJob"}
    assert kinds["NetworkPolicy"]["spec"]["egress"][0]["ports"] == [{"protocol": "TCP", "port": 443}]
    assert kinds["Role"]["rules"] == [{"apiGroups": ["serving.kserve.io"], "resources": ["llminferenceservices"],
                                       "resourceNames": ["svc"], "verbs": ["get", "patch"]}]
    pod = kinds["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == kinds["ServiceAccount"]["metadata"]["name"]
    assert pod["restartPolicy"] == "Never" and pod["containers"][0]["image"].startswith("registry.k8s.io/kubectl:")
    assert kinds["CronJob"]["metadata"]["annotations"][sz.ANN_AT] == sz.rfc3339(NOW + 3600)

    store = Store()
    store.create(store.type_for("namespaces"), {"metadata": {"name": "ns1"}})
    for o in objs:
        if o["kind"] in ("Role", "RoleBinding"):
            store.create(store.resolve("rbac.authorization.k8s.io", "v1", o["kind"].lower() + "s"), o, "ns1")
    sa = kinds["ServiceAccount"]["metadata"]["name"]
    may = lambda verb, res, name, group="serving.kserve.io", ns="ns1": rbac.allowed(  # noqa: E731
        store, ns, sa, verb, group, res, name)
    assert may("patch", "llminferenceservices", "svc") and may("get", "llminferenceservices", "svc")
    assert not may("patch", "llminferenceservices", "other")          # another service
    assert not may("delete", "llminferenceservices", "svc")           # another verb
    assert not may("patch", "deployments", "svc", "apps")             # another resource
    assert not may("patch", "llminferenceservices", "svc", ns="ns2")  # another namespace
    assert not rbac.allowed(store, "ns1", "default", "patch", "serving.kserve.io", "llminferenceservices", "svc")


def test_cron_next_fire():
    from rhaii_tui.sim.controllers.jobs import next_fire

    t = sz.deadline_from(None, "2026-12-01 08:15", NOW)
    assert next_fire(sz.cron_for(t), NOW) == t
    assert next_fire(sz.cron_for(t), t) > t + 360 * 86400      # the same minute comes back a year later
    assert next_fire("*/15 * * * *", t) == t + 15 * 60
    with pytest.raises(ValueError):
        next_fire("61 * * * *", t)


# --- on the simulated cloud --------------------------------------------------------------------------


def test_scheduled_scale_to_zero_happens_with_no_wizard_running_and_resume_restores(make_sim_world, tmp_path,
                                                                                      capsys):
    world = make_sim_world("deployed")
    assert cluster_view(world)[:3] == (3, 3, 3)
    code, out, err = run(capsys, world, "ops", "schedule-zero", "--after", "2h")
    assert code == 2 and "--yes" in err                                   # it stops the service: confirm
    code, out, err = run(capsys, world, "ops", "schedule-zero", "--after", "2h", "--yes", "--json")
    assert code == 0, err
    doc = json.loads(out)
    price = DeployConfig().price_per_node_hour
    saves = round(cost_per_day(3, price) - cost_per_day(0, price), 2)
    assert doc["result"]["data"]["saves_per_day_usd"] == saves and f"${saves:,.2f}/day" in doc["result"]["summary"]
    assert doc["status"]["schedule"]["at"] == doc["result"]["data"]["at"]
    auto = cluster_view(world)[3]
    assert auto["enabled"] is True and auto["maxNodeCount"] == 3 and "minNodeCount" not in auto  # min 0: left out

    # the wizard is not running: only the cluster's CronJob and GKE's autoscaler act
    wait_for(world, lambda: cluster_view(world)[0] == 0, "the CronJob's job to set 0 replicas")
    wait_for(world, lambda: cluster_view(world)[1:3] == (0, 0), "the autoscaler to remove the idle TPU nodes")

    ctx = make_ctx(world, tmp_path)
    isvc = ctx.kube().get(m.LLMISVC_API_VERSION, "LLMInferenceService", ctx.cfg.service, ctx.cfg.namespace)
    assert sz.ANN_AT not in (isvc["metadata"].get("annotations") or {})   # the job disarmed itself: one shot
    st = operate.read_status(ctx)
    assert st.schedule is not None and st.schedule.ran == "succeeded" and "done at" in st.schedule.describe()
    assert not st.schedule.armed and st.state.status.value == "skipped"
    code, out, err = run(capsys, world, "ops", "status")
    assert code == 0 and "Scale to 0:" in out and "done at" in out

    res = operate.resume(ctx, verify=False)
    assert res.ok, (res.summary, res.fix)
    assert cluster_view(world) == (3, 3, 3, None)                          # replicas, nodes, autoscaling off
    st = operate.read_status(ctx)
    assert st.schedule is None and st.replicas_ready == 3
    kube = ctx.kube()
    assert kube.get("batch/v1", "CronJob", sz.schedule_name(ctx.cfg.service), ctx.cfg.namespace) is None
    assert kube.get("v1", "ServiceAccount", sz.schedule_name(ctx.cfg.service), ctx.cfg.namespace) is None


def test_cancel_removes_the_schedule_and_the_pool_autoscaling(make_sim_world, tmp_path, capsys):
    world = make_sim_world("deployed")
    ctx = make_ctx(world, tmp_path)
    deadline = sz.deadline_from("20d", None, time.time())  # never due during the test
    res = operate.schedule_zero(ctx, deadline)
    assert res.ok, (res.summary, res.fix)
    st = operate.read_status(ctx)
    assert st.schedule is not None and st.schedule.armed and sz.fmt_utc(deadline) in st.schedule.describe()
    assert "saves ≈ $" in dict(st.lines())["Scale to 0"]
    code, out, err = run(capsys, world, "ops", "schedule-zero", "--cancel", "--json")
    assert code == 0, err
    assert json.loads(out)["status"]["schedule"] is None
    assert cluster_view(world) == (3, 3, 3, None)
    isvc = ctx.kube().get(m.LLMISVC_API_VERSION, "LLMInferenceService", ctx.cfg.service, ctx.cfg.namespace)
    assert sz.ANN_AT not in (isvc["metadata"].get("annotations") or {})
    res = operate.cancel_schedule(ctx)
    assert res.ok and not res.changed and "nothing to cancel" in res.summary


def test_bad_input_and_no_deployment_exit_2_with_a_message(make_sim_world, tmp_path, capsys):
    world = make_sim_world("deployed")
    for argv, says in ((("--after", "soon", "--yes"), "not a duration"),
                       (("--at", "2020-01-01 10:00", "--yes"), "in the past"),
                       (("--at", "25:99", "--yes"), "not a time")):
        code, out, err = run(capsys, world, "ops", "schedule-zero", *argv)
        assert code == 2 and says in err and "Traceback" not in err, (argv, err)
    code, out, err = run(capsys, world, "ops", "schedule-zero", "--yes")
    assert code == 2 and "Traceback" not in err

    assert operate.scale_to_zero(make_ctx(world, tmp_path)).ok                 # already at zero: nothing to do
    code, out, err = run(capsys, world, "ops", "schedule-zero", "--after", "1h", "--yes")
    assert code == 2 and "already at 0 TPU nodes" in err, err

    bare = make_sim_world("cluster-ready")
    code, out, err = run(capsys, bare, "ops", "schedule-zero", "--after", "1h", "--yes")
    assert code == 2 and "not deployed" in err and "Traceback" not in err, err


def test_the_job_cannot_touch_another_service(make_sim_world, tmp_path):
    """The emulator runs the job's kubectl as its ServiceAccount: aimed at another object, it is Forbidden."""
    world = make_sim_world("deployed")
    ctx = make_ctx(world, tmp_path)
    res = operate.schedule_zero(ctx, sz.deadline_from("20d", None, time.time()))
    assert res.ok, res.summary
    name = sz.schedule_name(ctx.cfg.service)
    kube = ctx.kube()
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sneaky", "namespace": ctx.cfg.namespace,
                                                           "labels": {"app.kubernetes.io/name": name}},
           "spec": {"serviceAccountName": name, "restartPolicy": "Never",
                    "containers": [{"name": "k", "image": sz.KUBECTL_IMAGE,
                                    "args": ["patch", "deployment", "anything", "-n", ctx.cfg.namespace,
                                             "--type", "merge", "-p", '{"spec":{"replicas":0}}']}]}}
    kube.apply(pod, ctx.cfg.namespace)

    def phase():
        p = kube.get("v1", "Pod", "sneaky", ctx.cfg.namespace)
        return (p.get("status") or {}).get("phase") in ("Succeeded", "Failed") and p
    p = wait_for(world, phase, "the pod to finish")
    assert p["status"]["phase"] == "Failed"
    log = kube.core.read_namespaced_pod_log("sneaky", ctx.cfg.namespace, container="k")
    assert "Error from server (Forbidden)" in log and "cannot patch resource" in log
    assert cluster_view(world)[0] == 3


def test_set_autoscaling_is_validated_and_shown_in_the_pool(make_sim_world, tmp_path):
    from google.api_core import exceptions

    world = make_sim_world("deployed")
    client = world.profile().gke()                      # the real google-cloud-container client
    ctx = make_ctx(world, tmp_path)
    gke = ctx.gke
    name = gke.pool_path(CLUSTER, TPU_POOL_NAME)
    with pytest.raises(exceptions.BadRequest) as e:     # Google's rule: max >= min
        client.set_node_pool_autoscaling(request={"name": name, "autoscaling": {
            "enabled": True, "min_node_count": 2, "max_node_count": 1}})
    assert "max_node_count" in str(e.value)
    op = gke.set_pool_autoscaling(CLUSTER, TPU_POOL_NAME, (0, 3))
    gke.wait(op, poll_min=0.01, poll_max=0.05, timeout=60)
    raw = client.get_node_pool(request={"name": name})
    assert raw.autoscaling.enabled and (raw.autoscaling.min_node_count, raw.autoscaling.max_node_count) == (0, 3)
    assert next(p for p in gke.list_node_pools(CLUSTER) if p.name == TPU_POOL_NAME).autoscaling == (0, 3)
    # nodes that run vLLM are needed: the autoscaler leaves them
    world.fast_forward(1200)
    assert cluster_view(world)[1:3] == (3, 3)
    op = gke.set_pool_autoscaling(CLUSTER, TPU_POOL_NAME, None)
    gke.wait(op, poll_min=0.01, poll_max=0.05, timeout=60)
    assert next(p for p in gke.list_node_pools(CLUSTER) if p.name == TPU_POOL_NAME).autoscaling is None


# --- the Operate page -----------------------------------------------------------------------------


def test_operate_page_schedules_and_cancels_through_confirm_cost(make_sim_world, tmp_path):
    import asyncio

    from textual.widgets import Input, Log

    from rhaii_tui.app import RhaiiApp
    from rhaii_tui.screens.operate import OperateScreen
    from rhaii_tui.widgets.confirm_cost import ConfirmCost
    from rhaii_tui.widgets.operate_status import OpsStatusPane

    world = make_sim_world("deployed")
    cfg = DeployConfig(project=world.endpoints["project"], replicas=3)
    app = RhaiiApp(cfg, profile=world.profile(), state_store=StateStore(tmp_path / "state"), start_step=12)

    async def until(pilot, predicate, timeout: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() > deadline:
                raise AssertionError("timed out waiting in the app")
            await pilot.pause(0.05)

    async def walk() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await app.start_page_ready.wait()
            page = app.current_page
            assert isinstance(page, OperateScreen)
            await until(pilot, lambda: page.status is not None and page.status.replicas_ready == 3)
            when = page.query_one("#ops-when", Input)
            when.value = "soon"
            page.query_one("#ops-schedule").press()                      # bad input: a message, nothing asked
            await pilot.pause()
            assert not isinstance(app.screen, ConfirmCost)
            when.value = "20d"                                           # not due during the test
            page.query_one("#ops-schedule").press()
            await until(pilot, lambda: isinstance(app.screen, ConfirmCost) and app.screen.query("#confirm"))
            confirm = app.screen
            assert any("Role that may only patch" in line for line in confirm.lines)
            confirm.query_one("#confirm-input", Input).value = cfg.cluster
            button = confirm.query_one("#confirm")
            await until(pilot, lambda: not button.disabled)
            button.press()
            await until(pilot, lambda: page.result is not None, timeout=60)
            assert page.result.ok, (page.result.summary, page.result.fix)
            await until(pilot, lambda: page.status.schedule is not None)
            assert "Scale to 0" in page.query_one(OpsStatusPane).text
            page.result = None
            page.query_one("#ops-unschedule").press()                      # cancelling needs no confirmation
            await until(pilot, lambda: page.result is not None, timeout=60)
            assert page.result.ok and "Cancelled" in page.result.summary
            await until(pilot, lambda: page.status.schedule is None)
            assert "Cancelled the scheduled scale-to-zero" in "\n".join(page.query_one(Log).lines)

    asyncio.run(walk())
    assert cluster_view(world) == (3, 3, 3, None)


def test_the_jobs_patch_is_one_shot(make_sim_world, tmp_path):
    """The CronJob's schedule comes back a year later: its patch tests the service's deadline
    annotation, which the first run (and resume) removes, so a later run changes nothing."""
    world = make_sim_world("deployed")
    ctx = make_ctx(world, tmp_path)
    assert operate.schedule_zero(ctx, sz.deadline_from("20d", None, time.time())).ok
    kube = ctx.kube()
    name = sz.schedule_name(ctx.cfg.service)
    cron = kube.get("batch/v1", "CronJob", name, ctx.cfg.namespace)
    template = cron["spec"]["jobTemplate"]["spec"]["template"]

    def run_job_pod(pod_name: str) -> dict:
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": pod_name, "namespace": ctx.cfg.namespace, **template["metadata"]},
               "spec": template["spec"]}
        kube.apply(pod, ctx.cfg.namespace)
        return wait_for(world, lambda: (lambda p: p if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed")
                                        else None)(kube.get("v1", "Pod", pod_name, ctx.cfg.namespace)),
                        f"pod {pod_name} to finish")

    assert run_job_pod("first")["status"]["phase"] == "Succeeded"          # the deadline's run
    wait_for(world, lambda: cluster_view(world)[0] == 0, "0 replicas")
    res = operate.scale(ctx, 3)               # serving again by other means: the schedule's objects stay
    assert res.ok, (res.summary, res.fix)
    assert run_job_pod("a-year-later")["status"]["phase"] == "Failed"       # the test op fails: nothing changes
    log = kube.core.read_namespaced_pod_log("a-year-later", ctx.cfg.namespace, container="scale-to-zero")
    assert "UnprocessableEntity" in log
    assert cluster_view(world)[0] == 3


def test_emulator_cronjob_runs_on_schedule_keeps_history_and_suspends(make_sim_world, tmp_path):
    """The emulator's CronJob controller on its compressed calendar: Jobs at the schedule's times,
    finished ones beyond the history limit deleted, none once suspended."""
    world = make_sim_world("cluster-ready")
    ctx = make_ctx(world, tmp_path)
    kube = ctx.kube()
    ns = "default"
    rbac = "rbac.authorization.k8s.io/v1"
    labels = {"app.kubernetes.io/name": "ticker"}
    for obj in (
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"n": "0"}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "ticker"}},
        {"apiVersion": rbac, "kind": "Role", "metadata": {"name": "ticker"},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cm"], "verbs": ["patch"]}]},
        {"apiVersion": rbac, "kind": "RoleBinding", "metadata": {"name": "ticker"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "ticker"},
         "subjects": [{"kind": "ServiceAccount", "name": "ticker", "namespace": ns}]},
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "ticker"},
         "spec": {"schedule": "*/10 * * * *", "successfulJobsHistoryLimit": 2, "concurrencyPolicy": "Forbid",
                  "jobTemplate": {"spec": {"template": {"metadata": {"labels": labels}, "spec": {
                      "serviceAccountName": "ticker", "restartPolicy": "Never",
                      "containers": [{"name": "k", "image": sz.KUBECTL_IMAGE,
                                      "args": ["patch", "configmap", "cm", "--type", "merge",
                                               "-p", '{"data":{"n":"1"}}']}]}}}}}},
    ):
        kube.apply(obj, ns)

    def complete_jobs():
        return [j for j in kube.list("batch/v1", "Job", ns)
                if any(c.get("type") == "Complete" and c.get("status") == "True"
                       for c in (j.get("status") or {}).get("conditions") or [])]

    wait_for(world, lambda: (kube.get("v1", "ConfigMap", "cm", ns) or {}).get("data", {}).get("n") == "1",
             "a scheduled job to patch the ConfigMap")
    wait_for(world, lambda: len(complete_jobs()) >= 2, "two completed jobs")
    cron = kube.get("batch/v1", "CronJob", "ticker", ns)
    assert cron["status"].get("lastScheduleTime") and cron["status"].get("lastSuccessfulTime")
    names = {j["metadata"]["name"] for j in complete_jobs()}
    assert all(n.startswith("ticker-") and n.split("-")[-1].isdigit() for n in names)
    wait_for(world, lambda: len({j["metadata"]["name"] for j in complete_jobs()} - names) >= 1, "a third job")
    assert len(complete_jobs()) <= 2 + 1                                    # history limit (one may be finishing)

    kube.request("PATCH", kube.resource("batch/v1", "CronJob").path(ns, "ticker"), body={"spec": {"suspend": True}},
                 content_type="application/merge-patch+json")
    assert kube.get("batch/v1", "CronJob", "ticker", ns)["spec"]["schedule"] == "*/10 * * * *"
    world.fast_forward(5)                                                    # let the controllers settle
    before = {j["metadata"]["name"] for j in kube.list("batch/v1", "Job", ns)}
    world.fast_forward(3600)                                                 # an hour: six scheduled times
    after = {j["metadata"]["name"] for j in kube.list("batch/v1", "Job", ns)}
    assert not (after - before)
