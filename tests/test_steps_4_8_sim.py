"""Steps 4-8 against the simulated cloud: what a user would see, scenario by scenario."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from rhaii_tui import manifests as m
from rhaii_tui.config import DeployConfig, StateStore
from rhaii_tui.secrets import hf_secret_from_form, pull_secret_from_form
from rhaii_tui.steps import secrets as secrets_step
from rhaii_tui.steps import deploy, envoyfilters, epp, netpol, operators
from rhaii_tui.steps.base import Status
from rhaii_tui.steps.context import StepContext

PROJECT = "rhaii-demo-project"
ZONE = "europe-west4-a"
SPEED = 2000


def make_ctx(world, tmp_path: Path, state: Path | None = None, **cfg) -> StepContext:
    values = dict(project=PROJECT, zone=ZONE, cluster="rhaii-tpu-scaleout-cluster", replicas=3)
    values.update(cfg)
    return StepContext(DeployConfig(**values), world.profile(), StateStore(state or tmp_path / "state"))


def poll(fn, until, timeout=20.0, interval=0.05):
    """Call fn() until until(result) or the deadline; return the last result."""
    deadline = time.monotonic() + timeout
    while True:
        res = fn()
        if until(res) or time.monotonic() > deadline:
            return res
        time.sleep(interval)


def install_and_wait(ctx) -> None:
    """Step 4 to ready, then step 3 (namespace and secrets) as the wizard does it."""
    operators.install(ctx)
    st = poll(lambda: operators.probe(ctx), lambda s: s.status in (Status.DONE, Status.FAILED))
    assert st.status is Status.DONE, st
    secrets_step.ensure_namespace(ctx)
    ctx.secrets.add(hf_secret_from_form("hf_" + "x" * 34))
    ctx.secrets.add(pull_secret_from_form("someone", "not-a-real-password"))
    secrets_step.apply_secrets(ctx)


def deploy_until(ctx, statuses=(Status.DONE, Status.FAILED), timeout=30.0, **probe_kw):
    deploy.apply(ctx)
    return poll(lambda: deploy.probe(ctx, **probe_kw), lambda s: s.status in statuses, timeout=timeout)


# --- step 4 ---------------------------------------------------------------------------------------


def test_operators_install_to_ready_on_a_ready_cluster(make_sim_world, tmp_path):
    world = make_sim_world("cluster-ready", speed=SPEED)
    ctx = make_ctx(world, tmp_path)
    st = operators.probe(ctx)
    assert st.status is Status.NOT_STARTED
    lines: list[str] = []
    res = operators.install(ctx, on_line=lines.append)
    assert res.started and lines  # the simulated installer says it started
    seen_progress = []
    st = poll(lambda: operators.probe(ctx), lambda s: (seen_progress.append(s.status) or
                                                       s.status in (Status.DONE, Status.FAILED)))
    assert st.status is Status.DONE, st
    v = operators.view(ctx)
    assert {r.key: r.state for r in v.rows} == {k: "ready" for k in ("cert-manager", "istiod", "kserve", "lws",
                                                                     "gateway")}
    assert v.gateway_address and all(c.present for c in v.crds)
    assert all(r.pods_total >= 1 and r.pods_ready == r.pods_total for r in v.rows)
    # installing again is a no-op
    again: list[str] = []
    assert operators.install(ctx, on_line=again.append).started is False
    assert "already" in again[0]


def test_operator_watch_reports_the_same_rows(make_sim_world, tmp_path):
    world = make_sim_world("partial", speed=SPEED)
    ctx = make_ctx(world, tmp_path)
    changes = threading.Event()
    w = operators.OperatorWatch(ctx, on_change=changes.set, crd_interval=0.1).start()
    try:
        v = poll(w.view, lambda v: v.all_ready, timeout=10)
    finally:
        w.stop()
    assert v.all_ready and changes.is_set() and v.gateway_address


def test_operator_watch_rests_the_crds_once_established_and_sees_an_uninstall(make_sim_world, tmp_path):
    """Once every CRD is Established the pane stops re-reading them at the short interval (the API
    budget), yet an uninstall (operator pod and CRD deleted) shows within seconds, not after the
    5-minute steady re-check."""
    world = make_sim_world("partial", speed=SPEED)
    ctx = make_ctx(world, tmp_path)
    w = operators.OperatorWatch(ctx, crd_interval=0.05, crd_steady_interval=300.0).start()
    try:
        v = poll(w.view, lambda v: v.all_ready, timeout=10)
        assert v.all_ready
        reads = w.crd_reads
        # at the short interval this would be ~20 more reads; resting, none
        assert not poll(lambda: w.crd_reads, lambda n: n > reads + 2, timeout=1.0) > reads + 2
        session = ctx.kube()
        assert session.delete(operators.CRD_API_VERSION, "CustomResourceDefinition",
                              "leaderworkersets.leaderworkerset.x-k8s.io")
        lws = session.list("v1", "Pod", "openshift-lws-operator", label_selector="name=openshift-lws-operator")
        assert lws
        for p in lws:
            session.delete("v1", "Pod", p["metadata"]["name"], "openshift-lws-operator")
        v = poll(w.view, lambda v: {c.key: c.state for c in v.crds}["leaderworkersets"] == operators.WAITING,
                 timeout=10)
    finally:
        w.stop()
    assert {c.key: c.state for c in v.crds}["leaderworkersets"] == operators.WAITING
    assert not v.all_ready


# --- step 5 ---------------------------------------------------------------------------------------


def test_deploy_three_replicas_to_ready(make_sim_world, tmp_path):
    world = make_sim_world("cluster-ready", speed=SPEED)
    ctx = make_ctx(world, tmp_path)
    install_and_wait(ctx)
    assert deploy.probe(ctx).status is Status.NOT_STARTED
    seen: list[str] = []
    deploy.apply(ctx)
    st = poll(lambda: deploy.probe(ctx), lambda s: (seen.append(s.summary) or
                                                   s.status in (Status.DONE, Status.FAILED)), timeout=30)
    assert st.status is Status.DONE, st
    assert st.data["pods_ready"] == 3 and st.data["distinct_tpu_nodes"] == 3
    assert any("pods ready" in s for s in seen[:-1]) or len(seen) == 1
    # the health route points at the pool KServe 3.4.0-ea.1 (step 4's release) created: x-k8s.io/v1alpha2
    route = ctx.kube().get(m.HTTPROUTE_API_VERSION, "HTTPRoute", m.health_route_name(ctx.cfg.service),
                           ctx.cfg.namespace)
    assert {b["group"] for r in route["spec"]["rules"] for b in r["backendRefs"]} == {"inference.networking.x-k8s.io"}
    # server-side apply again: nothing changes
    session = ctx.kube()
    before = session.get(m.LLMISVC_API_VERSION, "LLMInferenceService", ctx.cfg.service, ctx.cfg.namespace)
    deploy.apply(ctx)
    after = session.get(m.LLMISVC_API_VERSION, "LLMInferenceService", ctx.cfg.service, ctx.cfg.namespace)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert deploy.probe(ctx).status is Status.DONE


def test_deploy_watch_follows_pods_and_milestones(make_sim_world, tmp_path):
    world = make_sim_world("cluster-ready", speed=SPEED)
    ctx = make_ctx(world, tmp_path)
    install_and_wait(ctx)
    w = deploy.DeployWatch(ctx).start()
    shown: dict = {}

    def show(diffs):
        for d in diffs:
            if d.op == "add":
                assert d.key not in shown, "a row added twice"
                shown[d.key] = dict(d.cells)
            elif d.op == "update":
                shown[d.key].update(d.cells)
            else:
                del shown[d.key]

    try:
        deploy.apply(ctx)

        def step():
            show(w.tick())
            return w.state()

        st = poll(step, lambda s: s.status is Status.DONE, timeout=30)
        assert st.status is Status.DONE, st
        poll(lambda: [w.milestones(k.split("/")[1]) for k in list(shown)], lambda ms: all(mt.done for mt in ms),
             timeout=10)
    finally:
        w.stop()
    show(w.tick())
    assert len(shown) == 3 and all(r["stage"] == "Running 1/1" for r in shown.values())
    assert dict(w.rows()) == shown  # the widget, fed only diffs, shows exactly the model
    mt = w.milestones(next(iter(shown)).split("/")[1])
    assert mt.kv_cache_tokens and mt.done
    assert any("Compiled the model" in line for line in w.last_lines(next(iter(shown)).split("/")[1]))
    # a new watch (the wizard reconnecting, or started again) reads the logs from their start: each
    # milestone keeps the time its line was written, not the time the line arrived again
    name = next(iter(shown)).split("/")[1]
    w2 = deploy.DeployWatch(ctx).start()
    try:
        mt2 = poll(lambda: w2.milestones(name), lambda m: set(m.reached) == set(mt.reached), timeout=20)
    finally:
        w2.stop()
    assert not any(line[:4].isdigit() and "T" in line[:11] for line in w2.last_lines(name))  # no timestamp shown
    assert set(mt2.reached) == set(mt.reached)
    for key, ms in mt.reached.items():
        assert abs(mt2.reached[key].at - ms.at) < 0.01, (key, mt2.reached[key].at, ms.at)
    assert (mt2.compile_seconds() or 0) > 0


@pytest.mark.parametrize("scenario,cause,words", [
    ("bad-hf-token", "hf-token", "Hugging Face rejected the token"),
    ("bad-pull-secret", "pull-secret", "pull secret"),
])
def test_failure_scenarios_give_the_guides_diagnosis(make_sim_world, tmp_path, scenario, cause, words):
    world = make_sim_world(scenario, speed=SPEED, start_state="cluster-ready")
    ctx = make_ctx(world, tmp_path)
    install_and_wait(ctx)
    st = deploy_until(ctx)
    assert st.status is Status.FAILED, st
    assert words in st.summary
    causes = {d["cause"] for d in st.data["diagnoses"]}
    assert causes == {cause}
    assert st.fix


def test_deploy_watch_reads_the_401_of_an_initializer_seen_only_while_waiting_to_restart(make_sim_world, tmp_path):
    """The step-5 pane opened while the storage-initializer is in Init:CrashLoopBackOff (waiting, its
    last run terminated): its log is followed from that pod state alone, so the diagnosis has
    Hugging Face's 401 line without waiting for the next restart."""
    from rhaii_tui.steps.diagnose import diagnose_pod
    from rhaii_tui.steps.podlife import INIT_CONTAINER

    world = make_sim_world("bad-hf-token", speed=SPEED, start_state="cluster-ready")
    ctx = make_ctx(world, tmp_path)
    install_and_wait(ctx)
    deploy.apply(ctx)
    session = ctx.kube()
    selector = deploy.workload_selector(ctx.cfg)

    def waiting_after_a_crash(p):
        cs = next((c for c in (p.get("status") or {}).get("initContainerStatuses") or []
                   if c.get("name") == INIT_CONTAINER), {})
        return (cs.get("state") or {}).get("waiting") and (cs.get("lastState") or {}).get("terminated")

    pods = poll(lambda: session.list("v1", "Pod", ctx.cfg.namespace, label_selector=selector),
                lambda ps: any(waiting_after_a_crash(p) for p in ps), timeout=30)
    pod = next(p for p in pods if waiting_after_a_crash(p))
    name = pod["metadata"]["name"]
    # the watch's view of the pod at that moment, and nothing after it: no restart to catch
    w = deploy.DeployWatch(ctx)
    w._session = session
    try:
        w._ensure_followers(pod)
        lines = poll(lambda: w.last_lines(name, INIT_CONTAINER), lambda ls: any("401" in x for x in ls), timeout=10)
    finally:
        w.stop()
    assert any("401" in x for x in lines), lines
    d = diagnose_pod(pod, logs={INIT_CONTAINER: lines}, cfg=ctx.cfg, time_scale=SPEED)
    assert d is not None and d.cause == "hf-token", d
    assert not any("x" * 34 in x for x in lines)  # the token (install_and_wait's) is never shown


def test_two_nodes_leaves_a_replica_pending_with_the_resize_command(make_sim_world, tmp_path):
    world = make_sim_world("two-nodes", speed=SPEED)
    ctx = make_ctx(world, tmp_path)
    install_and_wait(ctx)
    st = deploy_until(ctx)
    assert st.status is Status.FAILED, st
    d = next(d for d in st.data["diagnoses"] if d["cause"] == "too-few-nodes")
    assert "2 TPU node(s) for 3 replicas" in d["title"]
    assert any("2 Ready of 2" in e for e in d["evidence"])
    # what still runs and bills, and how to stop it (the words of step 2's stockout summary)
    assert "--replicas 2" in d["fix"] and "2 TPU v6e node(s)" in d["fix"] and "/day" in d["fix"]
    assert "rhaii-tui ops scale-to-zero" in d["fix"] and "rhaii-tui ops teardown" in d["fix"]
    assert (f"gcloud container clusters resize rhaii-tpu-scaleout-cluster --node-pool tpu-pool --num-nodes 3 "
            f"--zone {ZONE} --project {PROJECT}") in d["commands"]


def test_slow_compile_is_diagnosed_as_still_compiling(make_sim_world, tmp_path):
    # a cold compile cache; the compile factor is raised from the scenario's 4x so that the
    # compile phase lasts seconds of wall time at this speed, long enough to watch
    world = make_sim_world("slow-compile", speed=SPEED, start_state="cluster-ready", compile_factor=40.0)
    ctx = make_ctx(world, tmp_path)
    install_and_wait(ctx)
    deploy.apply(ctx)

    def compiling_diag(st):  # a pod past its weights, in the XLA compile (the others may still load)
        return next((d for d in st.data.get("diagnoses", []) if d["cause"] == "compiling"
                     and "compiling for the TPU" in d["title"]), None)

    st = poll(lambda: deploy.probe(ctx, time_scale=SPEED),
              lambda s: s.status is not Status.IN_PROGRESS or (compiling_diag(s) and "compiling" in s.summary),
              timeout=30, interval=0.02)
    assert st.status is Status.IN_PROGRESS, st  # slow, not failed
    d = compiling_diag(st)
    assert d is not None, st
    assert "still starting" in d["title"] and "compiling" in st.summary
    assert any("Compiling the model with different input shapes" in e for e in d["evidence"])
    assert "Nothing is wrong yet" in d["fix"] and d["severity"] in ("warning", "error")
    assert "Compiled the model" in st.fix or "readiness probe" in st.fix


# --- step 6 ---------------------------------------------------------------------------------------


def test_a_removed_epp_label_is_reported_on_step_6_and_in_status(make_sim_world, tmp_path, capsys):
    from rhaii_tui import cli

    world = make_sim_world("deployed", speed=SPEED)
    ctx = make_ctx(world, tmp_path)
    assert epp.probe(ctx).status is Status.DONE
    # KServe replaces the scheduler's pod template (an upgrade): the guide's label is gone
    session = ctx.kube()
    info = session.resource("apps/v1", "Deployment")
    session.request("PATCH", info.path(ctx.cfg.namespace, epp.deployment_name(ctx.cfg)),
                    body={"spec": {"template": {"metadata": {"labels": {epp.INJECT_LABEL: None}}}}},
                    content_type="application/strategic-merge-patch+json")
    st = epp.probe(ctx)
    assert st.status is not Status.DONE and "was removed" in st.summary and "Apply step 6 again" in st.fix
    cli.main(["--sim", "--sim-state", str(world.state_dir), "status"])
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.split()[:1] == ["6"])
    assert "was removed" in line, out
    assert "Apply step 6 again" in out
    # step 6 again restores it
    assert epp.apply(ctx, timeout=20).status is Status.DONE
    assert epp.probe(ctx).status is Status.DONE


def test_epp_patch_rolls_out_to_two_of_two(make_sim_world, tmp_path):
    world = make_sim_world("partial", speed=SPEED)
    ctx = make_ctx(world, tmp_path)
    assert epp.probe(ctx).status is Status.NOT_STARTED
    updates = []
    st = epp.apply(ctx, lambda diffs, s: updates.append((diffs, s)), timeout=20)
    assert st.status is Status.DONE, st
    assert "2/2" in st.summary
    # the pane saw the rollout: the old pod (no sidecar) and the new one reaching 2/2
    cells: dict = {}
    for diffs, _ in updates:
        for d in diffs:
            cells.setdefault(d.key, []).append(dict(d.cells))
    assert len(cells) == 2
    stages = {k: [c.get("stage") for c in v if c.get("stage")] for k, v in cells.items()}
    old = next(k for k, v in stages.items() if v[0] == "Running 1/1")
    new = next(k for k in stages if k != old)
    assert stages[new][-1] == "Running 2/2"
    assert epp.patch(ctx) is False  # idempotent: label already there
    assert epp.probe(ctx).status is Status.DONE


def test_epp_rollout_times_out_with_a_diagnosis_not_a_hang(make_sim_world, tmp_path):
    world = make_sim_world("partial", speed=SPEED)
    ctx = make_ctx(world, tmp_path)
    t0 = time.monotonic()
    st = epp.follow_rollout(ctx, timeout=0.5)  # not patched: the pod never gets a sidecar
    assert time.monotonic() - t0 < 5
    assert st.status is Status.FAILED and st.data["diagnosis"]["cause"] == "epp-no-sidecar"


# --- step 7 ---------------------------------------------------------------------------------------


def test_envoyfilters_apply_and_a_renamed_service_is_caught(make_sim_world, tmp_path):
    world = make_sim_world("partial", speed=SPEED)
    ctx = make_ctx(world, tmp_path)
    assert envoyfilters.probe(ctx).status is Status.NOT_STARTED
    assert len(envoyfilters.apply(ctx)) == 3
    st = envoyfilters.probe(ctx)
    assert st.status is Status.DONE, st
    assert all(r["state"] == "ok" for r in st.data["filters"])
    # the filters of a service deployed under another name, still lying in opendatahub
    old = envoyfilters.rendered(ctx.cfg.replace(service="qwen-old-svc"))
    session = ctx.kube()
    for obj in old:
        session.apply(obj, "opendatahub")
    st = envoyfilters.probe(ctx)
    assert st.status is Status.FAILED, st
    assert "qwen-old-svc-epp-service" in st.summary
    # and our own filters pointing at the old name (hand-edited copies) are caught too
    for ours, src in zip(envoyfilters.rendered(ctx.cfg), old):
        ours["spec"] = src["spec"]
        session.apply(ours, "opendatahub")
    rows = envoyfilters.live_rows(ctx)
    assert {r.name: r.state for r in rows if r.ours} == {n: "mismatch" for n in m.envoyfilter_names(ctx.cfg.service).values()}


# --- step 8 ---------------------------------------------------------------------------------------


def test_netpol_skip_is_remembered_and_apply_keeps_the_gateway_paths(make_sim_world, tmp_path):
    world = make_sim_world("partial", speed=SPEED)
    ctx = make_ctx(world, tmp_path)
    assert netpol.probe(ctx).status is Status.NOT_STARTED
    netpol.choose(ctx, "skip")
    assert netpol.probe(ctx).status is Status.SKIPPED
    # another wizard on the same state dir (a reconnect) sees the choice
    assert netpol.probe(make_ctx(world, tmp_path)).status is Status.SKIPPED
    assert not netpol.preview(ctx).broken
    rep = netpol.apply(ctx)
    assert not rep.broken and not rep.gateway_cut_off
    # the EPP's API egress is pinned to the kubernetes EndpointSlice's address, read live
    epp_pol = ctx.kube().get("networking.k8s.io/v1", "NetworkPolicy", "allow-epp-scheduler", ctx.cfg.namespace)
    blocks = [p["ipBlock"]["cidr"] for r in epp_pol["spec"]["egress"] for p in r.get("to") or [] if "ipBlock" in p]
    assert blocks == ["172.16.0.2/32"]
    assert next(r for r in rep.rows if r.key == "epp-api").allowed
    st = netpol.probe(ctx)
    assert st.status is Status.DONE, st
    assert sorted(st.data["present"]) == sorted(m.NETWORK_POLICY_NAMES)
    assert "enforced by GKE Dataplane V2" in st.summary and rep.isolated


def test_netpol_on_a_cluster_that_does_not_enforce_them_never_says_isolated(make_sim_world, tmp_path):
    from rhaii_tui.cloud.gke import CloudError

    world = make_sim_world("no-netpol-enforcement", speed=SPEED)
    ctx = make_ctx(world, tmp_path)
    secrets_step.ensure_namespace(ctx)
    st = netpol.probe(ctx)
    assert st.status is Status.NOT_STARTED and "does not enforce" in st.summary
    assert "--update-addons=NetworkPolicy=ENABLED" in st.fix and "--enable-network-policy" in st.fix
    assert "--enable-dataplane-v2" in st.fix and "recreates every node" in st.fix
    pv = netpol.preview(ctx)
    assert pv.enforced is False and not pv.isolated
    with pytest.raises(CloudError) as e:
        netpol.apply(ctx)  # said before anything is stored
    assert "does not enforce" in e.value.message and "--enable-dataplane-v2" in e.value.fix
    assert ctx.kube().list("networking.k8s.io/v1", "NetworkPolicy", ctx.cfg.namespace) == []
    rep = netpol.apply(ctx, force=True)
    assert rep.enforced is False and not rep.isolated
    assert all(r.allowed for r in rep.rows)  # what really happens: every path open
    assert {r.key for r in rep.gaps} >= {"otherns-vllm", "samens-vllm"}
    st = netpol.probe(ctx)
    assert st.status is Status.FAILED and "NOT isolated" in st.summary
    out: list[str] = []
    st = netpol.run(ctx, out.append, decision="apply")  # headless: never reported isolated
    assert st.status is Status.FAILED and "does not enforce" in "\n".join(out)
    netpol.choose(ctx, "skip")
    assert netpol.probe(ctx).status is Status.SKIPPED


def test_netpol_probe_pods_prove_the_isolation_on_the_live_cluster(make_sim_world, tmp_path):
    world = make_sim_world("deployed", speed=SPEED)
    ctx = make_ctx(world, tmp_path)
    lines: list[str] = []
    seen = netpol.observe(ctx, poll=0.05, on_line=lines.append)
    assert {k: (o.intended, o.observed) for k, o in seen.items()} == {
        "gw-vllm": (True, True), "otherns-vllm": (False, False), "samens-vllm": (False, False)}
    assert "open" in seen["gw-vllm"].detail and "timed out" in seen["otherns-vllm"].detail
    assert all(o.ok for o in seen.values())
    session = ctx.kube()
    # nothing is left behind: the probe pods and the probe namespace are deleted
    probe_ns = seen["otherns-vllm"].namespace
    assert probe_ns.startswith("rhaii-probe-")
    for o in seen.values():
        poll(lambda o=o: session.get("v1", "Pod", o.pod, o.namespace), lambda p: p is None)
    poll(lambda: session.get("v1", "Namespace", probe_ns), lambda n: n is None)
    rep = netpol.with_observations(netpol.live_report(ctx), seen)
    assert rep.isolated and "as intended" in rep.text() and rep.to_dict()["observed"]["gw-vllm"]["ok"]


def test_a_probe_pod_with_the_gateways_labels_never_stands_for_the_gateway(make_sim_world, tmp_path):
    """While a live test runs, a probe pod carries the gateway's labels in its namespace: step 8's
    table keeps reading the real gateway pod (its row flickered to the probe before)."""
    from rhaii_tui.config import GATEWAY_NAMESPACE

    world = make_sim_world("deployed", speed=SPEED)
    ctx = make_ctx(world, tmp_path)
    session = ctx.kube()
    real = netpol._live_endpoints(session, ctx.cfg)["gateway"].name
    pod = netpol._probe_pod("aaa-rhaii-probe-gw", GATEWAY_NAMESPACE, m.gateway_pod_labels(), "10.8.0.9", 8000)
    session.apply(pod, GATEWAY_NAMESPACE)
    assert session.list("v1", "Pod", GATEWAY_NAMESPACE, label_selector=m.label_selector(m.gateway_pod_labels()))[0][
        "metadata"]["name"] == "aaa-rhaii-probe-gw", "the probe pod is listed first (the case that flickered)"
    assert netpol._live_endpoints(session, ctx.cfg)["gateway"].name == real != "aaa-rhaii-probe-gw"


def test_netpol_probe_pods_see_the_truth_where_the_cluster_does_not_enforce(make_sim_world, tmp_path):
    world = make_sim_world("deployed", speed=SPEED, dataplane_v2=False)
    ctx = make_ctx(world, tmp_path)
    seen = netpol.observe(ctx, poll=0.05)
    assert {k: o.observed for k, o in seen.items()} == {"gw-vllm": True, "otherns-vllm": True,
                                                        "samens-vllm": True}
    rep = netpol.with_observations(netpol.live_report(ctx), seen)
    assert not rep.isolated and {o.key for o in rep.observed_gaps} == {"otherns-vllm", "samens-vllm"}
    assert netpol.probe(ctx).status is Status.FAILED


# --- probes on prebuilt worlds --------------------------------------------------------------------


def test_probes_on_partial_and_deployed(make_sim_world, tmp_path):
    partial = make_ctx(make_sim_world("partial", speed=SPEED), tmp_path, state=tmp_path / "s1")
    got = {name: mod.probe(partial).status for name, mod in
           (("operators", operators), ("deploy", deploy), ("epp", epp), ("envoyfilters", envoyfilters),
            ("netpol", netpol))}
    assert got == {"operators": Status.DONE, "deploy": Status.DONE, "epp": Status.NOT_STARTED,
                   "envoyfilters": Status.NOT_STARTED, "netpol": Status.NOT_STARTED}
    deployed = make_ctx(make_sim_world("deployed", speed=SPEED), tmp_path, state=tmp_path / "s2")
    got = {name: mod.probe(deployed).status for name, mod in
           (("operators", operators), ("deploy", deploy), ("epp", epp), ("envoyfilters", envoyfilters))}
    assert got == {k: Status.DONE for k in got}
    assert netpol.probe(deployed).status is Status.DONE


def test_headless_run_of_steps_4_to_8_from_a_ready_cluster(make_sim_world, tmp_path):
    world = make_sim_world("cluster-ready", speed=SPEED)
    ctx = make_ctx(world, tmp_path)
    out: list[str] = []
    assert operators.run(ctx, out.append, poll=0.05).status is Status.DONE
    secrets_step.ensure_namespace(ctx)
    ctx.secrets.add(hf_secret_from_form("hf_" + "x" * 34))
    ctx.secrets.add(pull_secret_from_form("someone", "not-a-real-password"))
    secrets_step.apply_secrets(ctx)
    st = deploy.run(ctx, out.append, poll=0.05)
    assert st.status is Status.DONE, st
    assert any(line.startswith("applied LLMInferenceService/qwen-3b-tpu-svc") for line in out)
    assert epp.run(ctx, out.append, timeout=20).status is Status.DONE
    assert envoyfilters.run(ctx, out.append).status is Status.DONE
    st = netpol.run(ctx, out.append, decision="skip")
    assert st.status is Status.SKIPPED and netpol.choice(ctx) == "skip"
    st = netpol.run(ctx, out.append, decision="apply")
    assert st.status is Status.DONE and "gateway -> vLLM:8000" in "\n".join(out)
    assert not any("WARNING" in line for line in out)
    # everything re-probes as done (a reconnecting wizard resumes at step 9)
    assert [m_.probe(ctx).status for m_ in (operators, deploy, epp, envoyfilters, netpol)] == [Status.DONE] * 5
