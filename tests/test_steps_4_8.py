"""Steps 4-8 as pure functions over listed objects (what the screens feed from their watches)."""

from __future__ import annotations

import copy

import pytest

from rhaii_tui import manifests as m
from rhaii_tui.config import DeployConfig
from rhaii_tui.steps import deploy, envoyfilters, epp, netpol, operators
from rhaii_tui.steps.base import Status
from rhaii_tui.steps.operators import FAILED, PROGRESSING, READY, WAITING

from test_podlife import T0, make_pod, ready, starting, ts

CFG = DeployConfig(project="my-proj-123", zone="europe-west4-a", cluster="rhaii-c", replicas=3)


# --- step 4: operators ----------------------------------------------------------------------------


def op_pod(name, ns, labels, *, ok=True, waiting=None, created=0):
    cs = {"name": "manager", "ready": ok, "restartCount": 0, "image": "i", "imageID": "",
          "state": {"running": {"startedAt": ts(created + 5)}} if waiting is None
          else {"waiting": {"reason": waiting}}}
    conds = [{"type": "PodScheduled", "status": "True", "lastTransitionTime": ts(created + 1)},
             {"type": "Ready", "status": "True" if ok else "False", "lastTransitionTime": ts(created + 10)}]
    return {"metadata": {"name": name, "namespace": ns, "uid": f"u-{ns}-{name}", "labels": labels,
                         "creationTimestamp": ts(created)},
            "spec": {"nodeName": "n1", "containers": [{"name": "manager"}]},
            "status": {"phase": "Running" if waiting is None else "Pending", "conditions": conds,
                       "containerStatuses": [cs]}}


def all_operator_pods(**overrides):
    pods = []
    for spec in operators.OPERATORS:
        n = 3 if spec.key == "cert-manager" else 1
        for i in range(n):
            kw = overrides.get(spec.key, {})
            pods.append(op_pod(f"{spec.key}-{i}", spec.namespace, dict(spec.labels), **kw))
    return pods


def gateway(address="34.1.2.3", created=0):
    gw = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
          "metadata": {"name": "inference-gateway", "namespace": "opendatahub", "creationTimestamp": ts(created)},
          "status": {"conditions": [{"type": "Programmed", "status": "True" if address else "False",
                                     "reason": "Programmed" if address else "AddressNotAssigned"}]}}
    if address:
        gw["status"]["addresses"] = [{"type": "IPAddress", "value": address}]
    return gw


def crds(*names):
    return [{"metadata": {"name": n}, "status": {"conditions": [{"type": "Established", "status": "True"}]}}
            for n in names]


ALL_CRDS = crds("llminferenceservices.serving.kserve.io", "gateways.gateway.networking.k8s.io",
                "httproutes.gateway.networking.k8s.io", "inferencepools.inference.networking.x-k8s.io",
                "envoyfilters.networking.istio.io", "leaderworkersets.leaderworkerset.x-k8s.io")


def test_operator_rows_all_ready_with_counts_age_and_address():
    view = operators.build_view(all_operator_pods(), ALL_CRDS, [gateway()], now=T0 + 600)
    rows = {r.key: r for r in view.rows}
    assert [r.key for r in view.rows] == ["cert-manager", "istiod", "kserve", "lws", "gateway"]
    assert all(r.state == READY for r in view.rows)
    assert rows["cert-manager"].ready_text == "3/3"
    assert rows["istiod"].age_text == "10m"
    assert view.gateway_address == "34.1.2.3" and "34.1.2.3" in rows["gateway"].detail
    assert all(c.state == READY for c in view.crds)
    # inference pools: the x-k8s.io group counts
    assert next(c for c in view.crds if c.key == "inferencepools").name == "inferencepools.inference.networking.x-k8s.io"
    st = view.state()
    assert st.status is Status.DONE and "34.1.2.3" in st.summary


def test_operator_rows_nothing_installed_is_not_started():
    view = operators.build_view([], [], [], now=T0)
    assert all(r.state == WAITING for r in view.rows) and all(c.state == WAITING for c in view.crds)
    assert view.state().status is Status.NOT_STARTED


def test_operator_rows_progressing_and_missing_crds():
    pods = all_operator_pods(kserve={"ok": False})
    view = operators.build_view(pods, ALL_CRDS[:3], [gateway()], now=T0 + 60)
    rows = {r.key: r for r in view.rows}
    assert rows["kserve"].state == PROGRESSING and rows["kserve"].ready_text == "0/1"
    st = view.state()
    assert st.status is Status.IN_PROGRESS
    assert "4/5 operators ready" in st.summary and "envoyfilters.networking.istio.io" in st.summary


def test_operator_pod_in_crashloop_fails_with_the_guides_troubleshooting():
    pods = all_operator_pods(**{"cert-manager": {"ok": False, "waiting": "CrashLoopBackOff"}})
    view = operators.build_view(pods, ALL_CRDS, [gateway()], now=T0 + 60)
    row = view.rows[0]
    assert row.state == FAILED and "CrashLoopBackOff" in row.detail
    assert row.troubleshooting == "operator-pods"
    st = view.state()
    assert st.status is Status.FAILED and "pull secret" in st.fix and "make deploy-all" in \
        " ".join(operators.TROUBLESHOOTING["operator-pods"]["commands"])


def test_gateway_without_address_progresses_then_shows_troubleshooting():
    view = operators.build_view(all_operator_pods(), ALL_CRDS, [gateway(address=None)], now=T0 + 60)
    gw = view.gateway
    assert gw.state == PROGRESSING and gw.address is None and "no address yet" in gw.detail
    assert gw.troubleshooting is None  # within the guide's 2-3 minutes
    later = operators.build_view(all_operator_pods(), ALL_CRDS, [gateway(address=None)], now=T0 + 600)
    assert later.gateway.troubleshooting == "gateway-address"
    st = later.state()
    assert st.status is Status.IN_PROGRESS and "2-3 minutes" in st.fix
    # no Gateway object at all
    none = operators.build_view(all_operator_pods(), ALL_CRDS, [], now=T0 + 60)
    assert none.gateway.state == PROGRESSING and "not created" in none.gateway.detail


def test_operator_rows_ignore_other_namespaces_and_terminating_pods():
    pods = all_operator_pods()
    stray = op_pod("istiod-x", "default", {"app": "istiod"}, ok=False)
    old = op_pod("istiod-old", "istio-system", {"app": "istiod"}, ok=False)
    old["metadata"]["deletionTimestamp"] = ts(500)
    rows = {r.key: r for r in operators.operator_rows(pods + [stray, old], [gateway()], now=T0 + 600)}
    assert rows["istiod"].state == READY and rows["istiod"].ready_text == "1/1"


def test_run_streaming_sends_each_line_and_the_exit_code():
    lines = []
    code = operators.run_streaming(["python3", "-c", "import sys; print('one'); print('two', file=sys.stderr); sys.exit(3)"],
                                   lines.append)
    assert code == 3 and lines == ["one", "two"]
    assert operators.run_streaming(["/nonexistent/installer"], lines.append) == 127
    assert "cannot start" in lines[-1]


# --- step 5: deploy -------------------------------------------------------------------------------


def tpu_node(name):
    return {"metadata": {"name": name, "labels": {"cloud.google.com/gke-tpu-accelerator": "tpu-v6e-slice",
                                                  "cloud.google.com/gke-nodepool": "tpu-pool"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


def isvc(ready_=True):
    return {"metadata": {"name": CFG.service, "namespace": CFG.namespace},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready_ else "False",
                                       "reason": "" if ready_ else "MinimumReplicasUnavailable"}]}}


def _on(pod, node, created):
    pod["spec"]["nodeName"] = node
    pod["metadata"]["creationTimestamp"] = ts(created)
    return pod


def test_deploy_rendered_manifest_is_the_llmisvc():
    obj = deploy.rendered(CFG)
    assert obj["kind"] == "LLMInferenceService" and obj["spec"]["replicas"] == 3
    assert "--enable-prefix-caching" in deploy.rendered_yaml(CFG)


def test_deploy_done_needs_ready_service_and_n_pods_on_n_distinct_tpu_nodes():
    nodes = [tpu_node("t1"), tpu_node("t2"), tpu_node("t3")]
    pods = [_on(ready(name=f"p{i}"), f"t{i}", i) for i in (1, 2, 3)]
    st = deploy.assess(CFG, isvc(), pods, nodes=nodes, now=T0 + 900).state
    assert st.status is Status.DONE and "3/3 pods 1/1 on 3 TPU nodes" in st.summary
    # two pods on the same node: not done
    pods2 = [_on(ready(name=f"p{i}"), "t1" if i < 3 else "t3", i) for i in (1, 2, 3)]
    st2 = deploy.assess(CFG, isvc(), pods2, nodes=nodes, now=T0 + 900).state
    assert st2.status is Status.IN_PROGRESS and "2 distinct TPU nodes" in st2.summary
    # service not Ready yet
    st3 = deploy.assess(CFG, isvc(False), pods, nodes=nodes, now=T0 + 900).state
    assert st3.status is Status.IN_PROGRESS and "not Ready yet" in st3.summary


def test_deploy_in_progress_summary_names_the_compiling_replica():
    nodes = [tpu_node("t1"), tpu_node("t2"), tpu_node("t3")]
    pods = [_on(ready(name="p1"), "t1", 1), _on(ready(name="p2"), "t2", 2),
            _on(starting(name="p3", started=170), "t3", 3)]
    logs = {"p3": {"main": ["INFO Loading weights took 12.30 seconds",
                            "INFO Compiling the model with different input shapes."]}}
    st = deploy.assess(CFG, isvc(False), pods, nodes=nodes, logs_by_pod=logs, now=T0 + 170 + 240).state
    assert st.status is Status.IN_PROGRESS
    assert st.summary == "2/3 pods ready, replica 3 compiling for 4m."


def test_deploy_failed_with_the_diagnosis_for_a_failure_state():
    pods = [_on(make_pod(name="p1", node="t1", scheduled_at=5,
                         init=("waiting", {"reason": "CrashLoopBackOff"}, {"restarts": 2}),
                         main=("waiting", {"reason": "PodInitializing"})), "t1", 1)]
    logs = {"p1": {"storage-initializer": ["401 Client Error: Unauthorized for url: https://huggingface.co/api/models/x"]}}
    a = deploy.assess(CFG, isvc(False), pods, nodes=[tpu_node("t1")], logs_by_pod=logs, now=T0 + 100)
    assert a.state.status is Status.FAILED
    assert "Hugging Face rejected the token" in a.state.summary and "huggingface-token" in a.state.fix
    assert a.diagnoses[0].cause == "hf-token"


def test_deploy_not_started_without_the_service():
    assert deploy.assess(CFG, None, []).state.status is Status.NOT_STARTED


# --- step 6: EPP ----------------------------------------------------------------------------------


def epp_deployment(labelled):
    labels = dict(m.epp_labels(CFG.service))
    if labelled:
        labels["sidecar.istio.io/inject"] = "true"
    return {"metadata": {"name": m.epp_deployment_name(CFG.service)},
            "spec": {"template": {"metadata": {"labels": labels}}}}


def epp_pod(name, *, sidecar, ready_, terminating=False):
    containers = [{"name": "main"}] + ([{"name": "istio-proxy"}] if sidecar else [])
    statuses = [{"name": c["name"], "ready": ready_, "restartCount": 0, "image": "i", "imageID": "",
                 "state": {"running": {"startedAt": ts(10)}}} for c in containers]
    pod = {"metadata": {"name": name, "namespace": CFG.namespace, "uid": f"u-{name}",
                        "labels": dict(m.epp_labels(CFG.service)), "creationTimestamp": ts(0)},
           "spec": {"nodeName": "n1", "containers": containers},
           "status": {"phase": "Running", "containerStatuses": statuses,
                      "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": ts(1)},
                                     {"type": "Ready", "status": "True" if ready_ else "False",
                                      "lastTransitionTime": ts(20)}]}}
    if terminating:
        pod["metadata"]["deletionTimestamp"] = ts(60)
        pod["metadata"]["deletionGracePeriodSeconds"] = 30
    return pod


def test_epp_patch_is_needed_only_without_the_label():
    assert epp.needs_patch(epp_deployment(False)) and not epp.needs_patch(epp_deployment(True))
    assert epp.PATCH_BODY == {"spec": {"template": {"metadata": {"labels": {"sidecar.istio.io/inject": "true"}}}}}
    assert "mTLS" in epp.WHY and epp.WHY.count(".") == 1


def test_epp_states_through_the_rollout():
    assert epp.assess(CFG, None, []).status is Status.NOT_STARTED
    assert epp.assess(CFG, epp_deployment(False), [epp_pod("old", sidecar=False, ready_=True)]).status \
        is Status.NOT_STARTED
    rolling = [epp_pod("old", sidecar=False, ready_=True, terminating=True), epp_pod("new", sidecar=True, ready_=False)]
    st = epp.assess(CFG, epp_deployment(True), rolling, now=T0 + 70)
    assert st.status is Status.IN_PROGRESS and "new Running 0/2" in st.summary and "terminating" in st.summary
    done = [epp_pod("new", sidecar=True, ready_=True)]
    st = epp.assess(CFG, epp_deployment(True), done, now=T0 + 90)
    assert st.status is Status.DONE and "2/2" in st.summary


def test_epp_label_removed_is_noticed_from_the_deployments_history_or_the_wizards_memory():
    dep = epp_deployment(False)
    dep["metadata"]["uid"] = "dep-1"
    labelled_rs = {"metadata": {"ownerReferences": [{"kind": "Deployment", "uid": "dep-1"}]},
                   "spec": {"template": epp_deployment(True)["spec"]["template"]}}
    other_rs = {"metadata": {"ownerReferences": [{"kind": "Deployment", "uid": "an-older-deployment"}]},
                "spec": {"template": epp_deployment(True)["spec"]["template"]}}
    assert epp.label_removed(dep, [labelled_rs])
    assert not epp.label_removed(dep, [other_rs])  # another (deleted) Deployment of the same name
    assert not epp.label_removed(dep, []) and epp.label_removed(dep, [], remembered_uid="dep-1")
    assert not epp.label_removed(epp_deployment(True), [labelled_rs], remembered_uid="dep-1")  # still there
    st = epp.assess(CFG, dep, [epp_pod("p", sidecar=True, ready_=True)], now=T0 + 90, removed=True)
    assert st.status is Status.FAILED and st.status is not Status.DONE
    assert "sidecar.istio.io/inject=true was removed" in st.summary and "Apply step 6 again" in st.fix


@pytest.mark.parametrize("pods,cause", [
    ([epp_pod("old", sidecar=False, ready_=True)], "epp-no-sidecar"),
    ([epp_pod("new", sidecar=True, ready_=False)], "epp-proxy-not-ready"),
    ([], "epp-no-pod"),
])
def test_epp_rollout_timeout_diagnoses(pods, cause):
    d = epp.diagnose_rollout(CFG, epp.epp_pods(pods, now=T0 + 100), waited=180)
    assert d.cause == cause and "after 3m" in d.title and d.commands


# --- step 7: EnvoyFilters -------------------------------------------------------------------------


def test_envoyfilters_rendered_target_the_services_epp():
    objs = envoyfilters.rendered(CFG)
    assert [o["metadata"]["namespace"] for o in objs] == ["opendatahub"] * 3
    kinds = [envoyfilters.targets_of(o) for o in objs]
    assert [k for k, _, _ in kinds] == ["mtls", "ext_proc", "body"]
    exp = "outbound|9002||qwen-3b-tpu-svc-epp-service.rhaii-inference.svc.cluster.local"
    assert kinds[0][1] == [exp] and kinds[1][1] == [exp]
    assert kinds[2][2] == m.route_rule_names(CFG.service, CFG.namespace)
    assert envoyfilters.parse_cluster(exp) == (9002, "qwen-3b-tpu-svc-epp-service", "rhaii-inference")


def test_envoyfilters_all_present_and_matching_is_done():
    rows = envoyfilters.filter_rows(envoyfilters.rendered(CFG), CFG,
                                    live_epp_services=["qwen-3b-tpu-svc-epp-service"],
                                    live_routes=["qwen-3b-tpu-svc-kserve-route"])
    assert [r.state for r in rows] == ["ok", "ok", "ok"]
    assert envoyfilters.assess(CFG, rows).status is Status.DONE


def test_envoyfilters_for_a_renamed_service_are_caught():
    old = envoyfilters.rendered(CFG)  # applied for qwen-3b-tpu-svc
    renamed = CFG.replace(service="my-llm")
    ours_for_new = envoyfilters.rendered(renamed)
    # the user renamed the service: the old filters still sit in opendatahub, the new ones too
    rows = envoyfilters.filter_rows(old + ours_for_new, renamed, live_epp_services=["my-llm-epp-service"],
                                    live_routes=["my-llm-kserve-route"])
    bad = [r for r in rows if r.state == "mismatch"]
    assert [r.name for r in bad] == ["qwen-3b-tpu-svc-ext-proc"]  # the foreign ext_proc override breaks ours
    assert "qwen-3b-tpu-svc-epp-service" in bad[0].detail and "my-llm-epp-service" in bad[0].detail
    st = envoyfilters.assess(renamed, rows)
    assert st.status is Status.FAILED and "silently" in st.fix
    # our filters edited to point at the old name (e.g. the upstream files applied by hand, renamed)
    edited = copy.deepcopy(ours_for_new)
    for o, src in zip(edited, old):
        o["spec"] = src["spec"]
    rows = envoyfilters.filter_rows(edited, renamed, live_epp_services=["my-llm-epp-service"],
                                    live_routes=["my-llm-kserve-route"])
    assert [r.state for r in rows] == ["mismatch", "mismatch", "mismatch"]
    assert "targets qwen-3b-tpu-svc-epp-service.rhaii-inference" in rows[0].detail


def test_envoyfilters_target_a_service_that_does_not_exist():
    rows = envoyfilters.filter_rows(envoyfilters.rendered(CFG), CFG, live_epp_services=["other-epp-service"],
                                    live_routes=["qwen-3b-tpu-svc-kserve-route"])
    assert rows[0].state == "mismatch" and "does not exist" in rows[0].detail
    assert "other-epp-service" in rows[0].detail


def test_envoyfilters_partial_and_missing():
    objs = envoyfilters.rendered(CFG)
    rows = envoyfilters.filter_rows(objs[:1], CFG, live_epp_services=["qwen-3b-tpu-svc-epp-service"])
    st = envoyfilters.assess(CFG, rows)
    assert st.status is Status.IN_PROGRESS and "1/3" in st.summary
    assert envoyfilters.assess(CFG, envoyfilters.filter_rows([], CFG)).status is Status.NOT_STARTED


# --- step 8: NetworkPolicies ----------------------------------------------------------------------


def test_netpol_rendered_set_keeps_the_gateway_paths_open():
    rep = netpol.report(netpol.rendered(CFG), CFG)
    assert rep.broken == [] and rep.warnings() == [] and not rep.gateway_cut_off
    assert {r.key: r.allowed for r in rep.rows}["gw-vllm"] is True


def test_netpol_warns_when_the_gateway_is_cut_off_from_vllm():
    pols = netpol.rendered(CFG)
    gw_vllm = next(p for p in pols if p["metadata"]["name"] == "allow-gateway-to-vllm")
    gw_vllm["spec"]["ingress"] = gw_vllm["spec"]["ingress"][1:]  # drop the gateway rule
    rep = netpol.report(pols, CFG)
    assert rep.gateway_cut_off
    assert any(w.startswith("the gateway can no longer reach vLLM") for w in rep.warnings())


def test_netpol_criteria_are_the_guides():
    assert "PoC or demo environment (less than 2 weeks lifetime)" in netpol.CRITERIA["skip"]["when"]
    assert "Compliance requirements (SOC2, HIPAA, PCI-DSS)" in netpol.CRITERIA["apply"]["when"]


def test_log_evidence_is_masked_with_the_secrets_entered_in_this_session():
    from types import SimpleNamespace

    from rhaii_tui.secrets import SecretsInput, hf_secret_from_form

    tok = "hf_" + "Canary7" * 5
    s = SecretsInput()
    s.add(hf_secret_from_form(tok))
    redact = deploy.redactor(SimpleNamespace(secrets=s))
    assert tok not in redact(f"Authorization: Bearer {tok} rejected") and "***" in redact(tok)
    assert deploy.redactor(SimpleNamespace())("plain") == "plain"


def test_the_upstream_installer_is_pointed_at_this_cluster_only(tmp_path, monkeypatch):
    """Real mode: the installer command gets a kubeconfig for the wizard's cluster (no credentials in
    it) instead of whatever context the user's kubeconfig has selected."""
    import json
    import os
    import sys
    from types import SimpleNamespace

    from rhaii_tui.cloud.profile import OperatorInstall
    from rhaii_tui.steps.base import StepState

    seen = tmp_path / "seen.json"
    script = ("import json, os, sys; p = os.environ['KUBECONFIG']; "
              f"json.dump({{'path': p, 'mode': oct(os.stat(p).st_mode & 0o777), 'doc': json.load(open(p))}}, open({str(seen)!r}, 'w')); "
              "print('installing'); sys.exit(0)")

    class Profile:
        def install_operators(self, key, installer_dir):
            assert key == "my-proj-123/europe-west4-a/rhaii-c" and installer_dir == "/src/rhaii-on-xks"
            return OperatorInstall(command=[sys.executable, "-c", script], cwd=str(tmp_path))

    info = SimpleNamespace(endpoint="34.90.1.2", ca_cert_b64="Q0E=")
    ctx = SimpleNamespace(cfg=CFG, profile=Profile(), cluster=lambda: info, kube_or_none=lambda: None)
    lines: list[str] = []
    monkeypatch.setattr(operators, "probe", lambda c: StepState(Status.NOT_STARTED, "not installed"))
    res = operators.install(ctx, "/src/rhaii-on-xks", lines.append)
    assert res.exit_code == 0 and "installing" in lines
    assert lines.index("installing") < len(lines) - 2 and lines[-2].startswith("installer finished: exit 0 after ")
    got = json.loads(seen.read_text())
    assert got["mode"] == "0o600"
    doc = got["doc"]
    assert doc["clusters"][0]["cluster"] == {"server": "https://34.90.1.2", "certificate-authority-data": "Q0E="}
    assert doc["users"][0]["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"
    assert "token" not in json.dumps(doc).lower()
    assert not os.path.exists(got["path"])  # removed afterwards


def test_chips_held_during_a_rolling_update_are_a_wait_not_a_failure():
    msg = "0/3 nodes are available: 3 Insufficient google.com/tpu."
    nodes = [tpu_node("t1"), tpu_node("t2"), tpu_node("t3")]
    old = [_on(ready(name=f"old{i}"), f"t{i}", i) for i in (1, 2)] + [_on(ready(name="old3", deleting_at=30), "t3", 3)]
    new = make_pod(name="new1", unschedulable_msg=msg)
    ev = {"involvedObject": {"kind": "Pod", "name": "new1", "uid": "uid-new1"}, "reason": "FailedScheduling",
          "message": msg, "type": "Warning", "lastTimestamp": ts(5)}
    st = deploy.assess(CFG, isvc(), old + [new], nodes=nodes, events=[ev], now=T0 + 60).state
    assert st.status is Status.IN_PROGRESS and "all TPU chips are taken" in st.detail
    st = deploy.assess(CFG, isvc(), old + [new], nodes=nodes, events=[ev], now=T0 + 900).state
    assert st.status is Status.FAILED and "all TPU chips are taken" in st.summary


def test_deploy_watch_follows_a_container_waiting_after_a_crash(monkeypatch):
    """A storage-initializer in CrashLoopBackOff (waiting, with lastState.terminated) ran: its log holds
    the reason (e.g. Hugging Face's 401), so it is followed even if the watch never saw it running."""
    import types

    from rhaii_tui.steps import deploy as dep

    followed: list[tuple[str, str]] = []
    monkeypatch.setattr(dep.DeployWatch, "_follow", lambda self, pod, container, key: followed.append((pod, container)))
    ctx = types.SimpleNamespace(cfg=DeployConfig(project="p-123456"), profile=None)
    w = dep.DeployWatch(ctx, time_scale=1.0)
    crashed = {"name": "storage-initializer", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
               "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}
    never_ran = {"name": "main", "state": {"waiting": {"reason": "PodInitializing"}}}
    pod = {"metadata": {"name": "svc-kserve-abc", "namespace": "ns"},
           "status": {"initContainerStatuses": [crashed], "containerStatuses": [never_ran]}}
    w._ensure_followers(pod)
    for t in w._followers.values():
        t.join(2)
    assert followed == [("svc-kserve-abc", "storage-initializer")]


def test_netpol_probe_pod_ends_on_its_own_and_never_receives_service_traffic():
    pod = netpol._probe_pod("rhaii-probe-gw-abc", "opendatahub", m.gateway_pod_labels(), "10.8.1.10", 8000)
    spec, c = pod["spec"], pod["spec"]["containers"][0]
    assert spec["restartPolicy"] == "Never" and len(spec["containers"]) == 1
    assert c["command"] == ["nc", "-zv", "-w", "3", "10.8.1.10", "8000"]
    assert c["readinessProbe"]["exec"]["command"] == ["false"]  # never Ready: no Service endpoint
    assert pod["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"  # no sidecar keeping it alive
    assert spec["automountServiceAccountToken"] is False


def test_netpol_report_on_a_cluster_that_does_not_enforce_is_never_isolated():
    unenforced = netpol.Enforcement(False, cluster="c1")
    live = netpol.report(netpol.rendered(CFG), CFG, enforced=unenforced, live=True)
    assert not live.isolated and all(r.allowed for r in live.rows) and not live.broken
    assert "--enable-dataplane-v2" in live.enforcement_warning()
    preview = netpol.report(netpol.rendered(CFG), CFG, enforced=unenforced)
    assert not preview.isolated and not all(r.allowed for r in preview.rows)  # what the policies say
    enforced = netpol.report(netpol.rendered(CFG), CFG, enforced=netpol.Enforcement(True, "GKE Dataplane V2", "c1"),
                             live=True)
    assert enforced.isolated and enforced.enforcement_warning() == ""


def test_policy_names_fit_their_column_whole_with_how_many_more():
    from rhaii_tui.widgets.reachability import fit_names

    names = "allow-istio, allow-vllm-egress, allow-gateway-to-vllm"
    assert fit_names(names, 80) == names
    assert fit_names(names, 26) == "allow-istio +2"
    assert fit_names(names, 33) == "allow-istio, allow-vllm-egress +1"
    assert fit_names("allow-gateway-to-vllm", 10) == "allow-gateway-to-vllm"  # one name: the table scrolls
