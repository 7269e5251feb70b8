"""The emulator's controllers on a bare Store (stand-in cluster): scheduler, kubelet lifecycle and
failure modes, deployments/rollouts, operators, the LLMInferenceService controller, restart
catch-up, and fidelity of every object to the kubernetes client's models.

Time: `fast_forward` advances the simulated world as a discrete-event simulation, so these tests
do not wait; with speed=1 the objects' second-resolution timestamps are exact simulated seconds.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from kubernetes import client as k8s

from rhaii_tui import manifests as m
from rhaii_tui.cloud.podstatus import pod_display_status, pod_ready_counts
from rhaii_tui.config import DeployConfig
from rhaii_tui.sim import crds
from rhaii_tui.sim.controllers import Controllers
from rhaii_tui.sim.controllers.standin import GOOD_HF_TOKEN, StandInCluster, deploy_guide
from rhaii_tui.sim.logs import LogBook
from rhaii_tui.sim.scenarios import Scenario
from rhaii_tui.sim.store import ApiError, Store, parse_rfc3339

NS = "rhaii-inference"
VLLM_IMAGE = "registry.redhat.io/rhaiis/vllm-tpu-rhel9:3.2.5"
MILESTONES = (
    "Loading safetensors checkpoint shards: 100%",
    "Loading weights took",
    "TPU KV cache size:",
    "Compiling the model with different input shapes",
    "Compiled the model with different input shapes",
)


def world(speed: float = 1.0, *, tpu: int = 3, cpu: int = 2, **knobs) -> tuple[StandInCluster, Controllers]:
    c = StandInCluster(speed=speed, scenario=Scenario(**knobs))
    if cpu:
        c.add_nodes("default-pool", cpu, tpu=False)
    if tpu:
        c.add_nodes("tpu-pool", tpu, tpu=True)
    ctl = Controllers(c)
    ctl.start()
    return c, ctl


def vllm_deployment(name: str = "vllm", replicas: int = 1, image: str = VLLM_IMAGE, *, hf_secret: str = "huggingface-token",
                    pull_secret: str = "rhaiis-pull-secret") -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {
                "nodeSelector": {"cloud.google.com/gke-tpu-accelerator": "tpu-v6e-slice",
                                 "cloud.google.com/gke-tpu-topology": "2x2"},
                "tolerations": [{"key": "google.com/tpu", "operator": "Exists", "effect": "NoSchedule"}],
                "imagePullSecrets": [{"name": pull_secret}],
                "initContainers": [{
                    "name": "storage-initializer", "image": "quay.io/opendatahub/kserve-storage-initializer:v0.15",
                    "args": ["hf://Qwen/Qwen2.5-3B-Instruct", "/mnt/models"],
                    "env": [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": hf_secret, "key": "token"}}}],
                }],
                "containers": [{
                    "name": "main", "image": image,
                    "command": ["python3", "-m", "vllm.entrypoints.openai.api_server"],
                    "args": ["--model=/mnt/models", "--max-model-len=2048", "--tensor-parallel-size=4",
                             "--enable-prefix-caching", "--ssl-certfile=/var/run/kserve/tls/tls.crt",
                             "--ssl-keyfile=/var/run/kserve/tls/tls.key"],
                    "resources": {"requests": {"google.com/tpu": "4"}, "limits": {"google.com/tpu": "4"}},
                    "readinessProbe": {"httpGet": {"path": "/v1/models", "port": 8000, "scheme": "HTTPS"},
                                       "initialDelaySeconds": 240, "periodSeconds": 10},
                }],
            }},
        },
    }


def pods(c: StandInCluster, ns: str = NS, **labels) -> list[dict]:
    return c.store.select(c.store.type_for("pods"), ns, labels or None)


def events_for(c: StandInCluster, name: str, ns: str = NS) -> list[dict]:
    return [e for e in c.store.list(c.store.type_for("events"), ns)[0] if e["involvedObject"]["name"] == name]


def log_text(c: StandInCluster, pod: dict, container: str, previous: bool = False) -> list[str]:
    return [t for _, t in c.logs.read(pod["metadata"]["namespace"], pod["metadata"]["name"], container,
                                      previous=previous)]


def record_statuses(c: StandInCluster) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}

    def hook(etype, rtype, obj, old):
        if rtype.plural == "pods" and etype != "DELETED":
            r, t = pod_ready_counts(obj)
            s = f"{pod_display_status(obj)} {r}/{t}"
            lst = seen.setdefault(obj["metadata"]["name"], [])
            if not lst or lst[-1] != s:
                lst.append(s)
    c.store.add_hook(hook)
    return seen


# --- kubelet: the guide's pod lifecycle ----------------------------------------------------------


def test_pod_goes_through_the_guides_lifecycle_with_milestones_in_order():
    c, ctl = world(speed=1.0, tpu=1)
    c.put_guide_secrets()
    seen = record_statuses(c)
    c.apply(vllm_deployment())
    ctl.fast_forward(900)
    (pod,) = pods(c, app="vllm")
    assert pod_ready_counts(pod) == (1, 1) and pod["status"]["phase"] == "Running"
    history = [s for s in seen[pod["metadata"]["name"]]]
    order = ["Pending 0/1", "Init:0/1 0/1", "PodInitializing 0/1", "Running 0/1", "Running 1/1"]
    idx = [history.index(s) for s in order]
    assert idx == sorted(idx), history

    init_log = log_text(c, pod, "storage-initializer")
    assert any("Successfully copied hf://Qwen/Qwen2.5-3B-Instruct to /mnt/models" in ln for ln in init_log)
    main_log = log_text(c, pod, "main")
    pos = [next(i for i, ln in enumerate(main_log) if ms in ln) for ms in MILESTONES]
    assert pos == sorted(pos), pos
    assert "Application startup complete." in main_log[-2]
    assert "Uvicorn running on https://0.0.0.0:8000" in main_log[-1]

    # timings (speed 1: timestamps are exact simulated seconds)
    st = pod["status"]
    init = st["initContainerStatuses"][0]["state"]["terminated"]
    download = parse_rfc3339(init["finishedAt"]) - parse_rfc3339(init["startedAt"])
    assert 30 <= download <= 62 and init["exitCode"] == 0 and init["reason"] == "Completed"
    copied_at = next(t for t, ln in c.logs.read(NS, pod["metadata"]["name"], "storage-initializer") if "Successfully" in ln)
    assert abs(copied_at - parse_rfc3339(init["finishedAt"])) <= 2  # log times agree with the status
    started = parse_rfc3339(st["containerStatuses"][0]["state"]["running"]["startedAt"])
    ready_at = parse_rfc3339(next(x for x in st["conditions"] if x["type"] == "Ready")["lastTransitionTime"])
    assert 240 <= ready_at - started <= 330  # no earlier than the probe delay, 3-5 min of start-up
    # readiness probes from 240 s every 10 s: the ones before vLLM serves fail (Unhealthy events)
    up = next(t for t, ln in c.logs.read(NS, pod["metadata"]["name"], "main") if "Uvicorn running" in ln) - started
    unhealthy = [e for e in events_for(c, pod["metadata"]["name"]) if e["reason"] == "Unhealthy"]
    if up > 241:
        assert unhealthy and unhealthy[0]["message"].startswith('Readiness probe failed: Get "https://')
        assert abs(unhealthy[0]["count"] - ((up - 240) // 10 + 1)) <= 1
    else:
        assert not unhealthy and ready_at - started == 240
    reasons = {e["reason"] for e in events_for(c, pod["metadata"]["name"])}
    assert {"Scheduled", "Pulling", "Pulled", "Created", "Started"} <= reasons


def test_slow_compile_factor_stretches_start_up():
    c, ctl = world(speed=1.0, tpu=1, compile_factor=4.0)
    c.put_guide_secrets()
    c.apply(vllm_deployment())
    ctl.fast_forward(600)
    (pod,) = pods(c, app="vllm")
    assert pod_display_status(pod) == "Running" and pod_ready_counts(pod) == (0, 1)
    log = log_text(c, pod, "main")
    assert any("Compiling the model with different input shapes" in ln for ln in log)
    assert not any("Compiled the model with different input shapes" in ln for ln in log)
    ctl.fast_forward(1200)
    assert pod_ready_counts(pods(c, app="vllm")[0]) == (1, 1)
    # across fast-forwards a container's log times never go backwards (followers dedupe by time)
    times = [t for t, _ in c.logs.read(NS, pod["metadata"]["name"], "main")]
    assert times == sorted(times) and len(times) > 50


@pytest.mark.asyncio
async def test_real_time_timers_bring_a_pod_up_without_fast_forward():
    c, ctl = world(speed=20000.0, tpu=1)
    c.put_guide_secrets()
    c.apply(vllm_deployment())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ps = pods(c, app="vllm")
        if ps and pod_ready_counts(ps[0]) == (1, 1):
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail(f"pod not Ready: {[pod_display_status(p) for p in pods(c, app='vllm')]}")
    ctl.stop()


# --- scheduler -----------------------------------------------------------------------------------


def test_no_tpu_node_means_unschedulable_until_one_is_added():
    c, ctl = world(tpu=0, cpu=2)
    c.put_guide_secrets()
    c.apply(vllm_deployment())
    ctl.fast_forward(60)
    (pod,) = pods(c, app="vllm")
    cond = next(x for x in pod["status"]["conditions"] if x["type"] == "PodScheduled")
    assert cond["status"] == "False" and cond["reason"] == "Unschedulable"
    msg = ("0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/2 nodes "
           "are available: 2 Preemption is not helpful for scheduling.")
    assert cond["message"] == msg
    ev = [e for e in events_for(c, pod["metadata"]["name"]) if e["reason"] == "FailedScheduling"]
    assert ev and ev[0]["type"] == "Warning" and ev[0]["message"] == msg
    c.add_nodes("tpu-pool", 1, tpu=True)  # the scheduler retries when nodes change
    ctl.fast_forward(600)
    (pod,) = pods(c, app="vllm")
    assert pod["spec"]["nodeName"].startswith("gke-sim-tpu-pool") and pod_ready_counts(pod) == (1, 1)


def test_one_tpu_pod_per_node_and_the_real_message_for_the_extra_replica():
    c, ctl = world(tpu=3, cpu=2)
    c.put_guide_secrets()
    c.apply(vllm_deployment(replicas=4))
    ctl.fast_forward(30)
    ps = pods(c, app="vllm")
    bound = [p for p in ps if p["spec"].get("nodeName")]
    assert len(bound) == 3 and len({p["spec"]["nodeName"] for p in bound}) == 3
    (pending,) = [p for p in ps if not p["spec"].get("nodeName")]
    msg = next(x for x in pending["status"]["conditions"] if x["type"] == "PodScheduled")["message"]
    assert msg == ("0/5 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, 3 Insufficient "
                   "google.com/tpu. preemption: 0/5 nodes are available: 2 Preemption is not helpful for "
                   "scheduling, 3 No preemption victims found for incoming pod.")


def test_taint_without_toleration_is_reported():
    c, ctl = world(tpu=1, cpu=0)
    dep = vllm_deployment()
    dep["spec"]["template"]["spec"].pop("tolerations")
    c.put_guide_secrets()
    c.apply(dep)
    ctl.fast_forward(10)
    (pod,) = pods(c, app="vllm")
    assert "1 node(s) had untolerated taint {google.com/tpu: present}" in pod["status"]["conditions"][0]["message"]


# --- kubelet failure modes -----------------------------------------------------------------------


@pytest.mark.parametrize("token,knobs", [("not-a-token", {}), (GOOD_HF_TOKEN, {"hf_token_rejected": True})])
def test_rejected_hf_token_crash_loops_the_storage_initializer_with_a_401(token, knobs):
    c, ctl = world(speed=1.0, tpu=1, **knobs)
    c.put_guide_secrets(hf_token=token)
    seen = record_statuses(c)
    c.apply(vllm_deployment())
    ctl.fast_forward(200)
    (pod,) = pods(c, app="vllm")
    init = pod["status"]["initContainerStatuses"][0]
    assert pod_display_status(pod) in ("Init:CrashLoopBackOff", "Init:Error")
    assert init["restartCount"] >= 3
    assert "Init:Error 0/1" in seen[pod["metadata"]["name"]]
    assert "Init:CrashLoopBackOff 0/1" in seen[pod["metadata"]["name"]]
    logs = log_text(c, pod, "storage-initializer") + log_text(c, pod, "storage-initializer", previous=True)
    assert any("401 Client Error: Unauthorized for url: https://huggingface.co/api/models/Qwen/Qwen2.5-3B-Instruct"
               in ln for ln in logs)
    backoffs = [e for e in events_for(c, pod["metadata"]["name"]) if e["reason"] == "BackOff"]
    assert backoffs and "restarting failed container storage-initializer" in backoffs[0]["message"]
    # back-off doubles: 10 s, 20 s, 40 s ... so restarts grow slowly
    before = init["restartCount"]
    ctl.fast_forward(300)
    after = pods(c, app="vllm")[0]["status"]["initContainerStatuses"][0]["restartCount"]
    assert 1 <= after - before <= 4
    if not knobs:  # the user fixes the token: the next attempt downloads and the pod comes up
        c.put_guide_secrets(hf_token=GOOD_HF_TOKEN)
        ctl.fast_forward(1200)
        assert pod_ready_counts(pods(c, app="vllm")[0]) == (1, 1)


def test_missing_hf_secret_is_a_config_error_until_the_secret_exists():
    c, ctl = world(tpu=1)
    c.put_guide_secrets()
    c.apply(vllm_deployment(hf_secret="no-such-secret"))
    ctl.fast_forward(60)
    (pod,) = pods(c, app="vllm")
    waiting = pod["status"]["initContainerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "CreateContainerConfigError"
    assert waiting["message"] == 'secret "no-such-secret" not found'
    assert pod_display_status(pod) == "Init:CreateContainerConfigError"
    c.put_secret("no-such-secret", {"token": GOOD_HF_TOKEN})
    ctl.fast_forward(600)
    assert pod_ready_counts(pods(c, app="vllm")[0]) == (1, 1)


@pytest.mark.parametrize("case", ["no-redhat-auth", "rejected", "missing-secret"])
def test_bad_pull_secret_gives_image_pull_backoff(case):
    knobs = {"pull_secret_rejected": True} if case == "rejected" else {}
    c, ctl = world(speed=1.0, tpu=1, **knobs)
    c.put_guide_secrets(registry="quay.io" if case == "no-redhat-auth" else "registry.redhat.io")
    seen = record_statuses(c)
    c.apply(vllm_deployment(pull_secret="gone" if case == "missing-secret" else "rhaiis-pull-secret"))
    ctl.fast_forward(200)
    (pod,) = pods(c, app="vllm")
    name = pod["metadata"]["name"]
    assert "ErrImagePull 0/1" in seen[name] and "ImagePullBackOff 0/1" in seen[name]
    main = pod["status"]["containerStatuses"][0]
    waiting = main["state"]["waiting"]
    assert waiting["reason"] in ("ImagePullBackOff", "ErrImagePull")
    ctl.fast_forward(5)
    waiting = pods(c, app="vllm")[0]["status"]["containerStatuses"][0]["state"]["waiting"]
    evs = events_for(c, name)
    failed = [e["message"] for e in evs if e["reason"] == "Failed"]
    assert any(msg.startswith(f'Failed to pull image "{VLLM_IMAGE}"') and "401 Unauthorized" in msg for msg in failed)
    assert any(e["reason"] == "BackOff" and e["message"] == f'Back-off pulling image "{VLLM_IMAGE}"' for e in evs)
    if waiting["reason"] == "ImagePullBackOff":
        assert waiting["message"].startswith(f'Back-off pulling image "{VLLM_IMAGE}"')
    if case == "missing-secret":
        assert any(e["reason"] == "FailedToRetrieveImagePullSecret" for e in evs)
    # the init container (not a Red Hat image) ran; the model was copied
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"


def test_graceful_termination_stops_containers_and_removes_the_pod():
    c, ctl = world(tpu=1)
    c.put_guide_secrets()
    c.apply(vllm_deployment())
    ctl.fast_forward(900)
    (pod,) = pods(c, app="vllm")
    name = pod["metadata"]["name"]
    pt = c.store.type_for("pods")
    c.store.delete(pt, NS, name)
    ctl.drain()
    cur = c.store.get(pt, NS, name)
    assert cur["metadata"].get("deletionTimestamp") and pod_ready_counts(cur) == (0, 1)
    assert pod_display_status(cur) == "Terminating"
    assert "Shutting down" in " ".join(log_text(c, cur, "main")[-4:])
    assert any(e["reason"] == "Killing" for e in events_for(c, name))
    ctl.fast_forward(3)
    assert c.store.try_get(pt, NS, name) is None
    assert not c.logs.exists(NS, name, "main")
    # the ReplicaSet replaced it
    (new,) = pods(c, app="vllm")
    assert new["metadata"]["name"] != name


def test_removing_a_node_removes_its_pods_and_the_replacement_waits_for_a_node():
    c, ctl = world(tpu=2)
    c.put_guide_secrets()
    c.apply(vllm_deployment(replicas=2))
    ctl.fast_forward(900)
    victim = pods(c, app="vllm")[0]
    c.store.delete(c.store.type_for("nodes"), None, victim["spec"]["nodeName"])  # a pool scaled down
    ctl.fast_forward(30)
    live = pods(c, app="vllm")
    assert victim["metadata"]["name"] not in {p["metadata"]["name"] for p in live} and len(live) == 2
    (pending,) = [p for p in live if not p["spec"].get("nodeName")]
    assert "Insufficient google.com/tpu" in pending["status"]["conditions"][0]["message"]
    assert _dep(c)["status"]["availableReplicas"] == 1


# --- deployments ---------------------------------------------------------------------------------


def _dep(c: StandInCluster, name: str = "vllm") -> dict:
    return c.store.get(c.store.type_for("deployments", "apps"), NS, name)


def _rollout_complete(d: dict) -> bool:
    st, spec = d.get("status") or {}, d["spec"]
    return (st.get("observedGeneration", 0) >= d["metadata"]["generation"]
            and st.get("updatedReplicas", 0) == spec["replicas"] == st.get("replicas", 0)
            and st.get("availableReplicas", 0) == spec["replicas"])


def test_rolling_update_replaces_pods_and_a_broken_image_gets_stuck():
    c, ctl = world(tpu=3)
    c.put_guide_secrets()
    c.apply(vllm_deployment(replicas=2))
    ctl.fast_forward(900)
    d = _dep(c)
    assert _rollout_complete(d)
    conds = {x["type"]: x for x in d["status"]["conditions"]}
    assert conds["Available"]["status"] == "True" and conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
    old_names = {p["metadata"]["name"] for p in pods(c, app="vllm")}

    def set_image(image):
        c.store.mutate(c.store.type_for("deployments", "apps"), NS, "vllm",
                       lambda o: o["spec"]["template"]["spec"]["containers"][0].__setitem__("image", image))

    set_image(VLLM_IMAGE.replace("3.2.5", "3.2.6"))
    ctl.fast_forward(60)
    live = pods(c, app="vllm")
    assert len(live) == 3  # maxSurge 1: one new pod beside the two old ones, none taken down yet
    ctl.fast_forward(3000)
    d = _dep(c)
    assert _rollout_complete(d)
    new = pods(c, app="vllm")
    assert len(new) == 2 and not old_names & {p["metadata"]["name"] for p in new}
    rss = c.store.list(c.store.type_for("replicasets", "apps"), NS)[0]
    assert sorted(r["spec"]["replicas"] for r in rss) == [0, 2]
    assert {r["metadata"]["annotations"]["deployment.kubernetes.io/revision"] for r in rss} == {"1", "2"}

    set_image("registry.redhat.io/rhaiis/vllm-tpu-rhel9:broken")
    ctl.fast_forward(400)
    live = pods(c, app="vllm")
    broken = [p for p in live if "broken" in p["spec"]["containers"][0]["image"]]
    assert len(broken) == 1 and len(live) == 3
    assert pod_ready_counts(broken[0]) == (0, 1)
    assert pod_display_status(broken[0]) in ("CrashLoopBackOff", "Error", "Running")
    assert broken[0]["status"]["containerStatuses"][0]["restartCount"] >= 1
    assert any("Engine core initialization failed" in ln for ln in
               log_text(c, broken[0], "main") + log_text(c, broken[0], "main", previous=True))
    d = _dep(c)
    assert not _rollout_complete(d) and d["status"]["availableReplicas"] == 2  # the old pods keep serving
    ctl.fast_forward(700)
    prog = next(x for x in _dep(c)["status"]["conditions"] if x["type"] == "Progressing")
    assert prog["status"] == "False" and prog["reason"] == "ProgressDeadlineExceeded"


def test_scaling_through_spec_replicas():
    c, ctl = world(tpu=3)
    c.put_guide_secrets()
    c.apply(vllm_deployment(replicas=3))
    ctl.fast_forward(900)
    c.store.mutate(c.store.type_for("deployments", "apps"), NS, "vllm", lambda o: o["spec"].__setitem__("replicas", 1))
    ctl.fast_forward(10)
    assert len(pods(c, app="vllm")) == 1
    d = _dep(c)
    assert d["spec"]["replicas"] == 1 and d["status"]["replicas"] == 1 and _rollout_complete(d)


# --- operators -----------------------------------------------------------------------------------


def test_operator_install_creates_crds_operator_pods_and_the_gateway_address():
    c, ctl = world(speed=1.0)
    gw_t = ("gateways", "gateway.networking.k8s.io")
    with pytest.raises(ApiError) as e:
        c.store.type_for(*gw_t)
    assert e.value.code == 404  # unknown kind before the CRDs exist
    ctl.install_operators()
    ctl.fast_forward(300)
    crd_t = c.store.type_for("customresourcedefinitions", "apiextensions.k8s.io")
    assert c.store.try_get(crd_t, None, "llminferenceservices.serving.kserve.io") is None  # KServe comes later
    ctl.fast_forward(400)
    names = {x["metadata"]["name"] for x in c.store.list(crd_t)[0]}
    assert set(crds.REQUIRED_CRD_NAMES) <= names
    for crd in c.store.list(crd_t)[0]:
        assert any(x["type"] == "Established" and x["status"] == "True" for x in crd["status"]["conditions"])
    for ns, label, n in (("cert-manager", "app.kubernetes.io/instance=cert-manager", 3),
                         ("istio-system", "app=istiod", 1),
                         ("opendatahub", "control-plane=kserve-controller-manager", 1),
                         ("openshift-lws-operator", "name=openshift-lws-operator", 1),
                         ("opendatahub", "gateway.networking.k8s.io/gateway-name=inference-gateway", 1)):
        ps = c.store.list(c.store.type_for("pods"), ns, label_selector=label)[0]
        assert len(ps) == n and all(pod_ready_counts(p)[0] == pod_ready_counts(p)[1] for p in ps), (ns, label)
    gw = c.store.get(c.store.type_for(*gw_t), "opendatahub", "inference-gateway")
    assert gw["status"]["addresses"] == [{"type": "IPAddress", "value": "127.0.0.1"}]
    programmed = next(x for x in gw["status"]["conditions"] if x["type"] == "Programmed")
    assert programmed["status"] == "True"
    gc = c.store.get(c.store.type_for("gatewayclasses", "gateway.networking.k8s.io"), None, "istio")
    assert gc["spec"]["controllerName"] == "istio.io/gateway-controller"
    # the whole install takes about the guide's 10 minutes
    started = float(c.store.get(c.store.type_for("namespaces"), None, "cert-manager-operator")["metadata"]
                    ["annotations"]["sim.rhaii-tui.io/operators-install-started"])
    took = parse_rfc3339(programmed["lastTransitionTime"]) - started
    assert 480 <= took <= 720, took


# --- LLMInferenceService -------------------------------------------------------------------------


def test_llmisvc_creates_kserve_objects_and_becomes_ready():
    c, ctl = world()
    cfg = deploy_guide(c, ctl, routing=False)
    svc, ns = cfg.service, cfg.namespace
    dt = c.store.type_for("deployments", "apps")
    wl = c.store.get(dt, ns, f"{svc}-kserve")
    assert wl["spec"]["replicas"] == 3
    tl = wl["spec"]["template"]["metadata"]["labels"]
    assert tl["kserve.io/component"] == "workload" and tl["app.kubernetes.io/part-of"] == "llminferenceservice"
    assert tl["app.kubernetes.io/name"] == svc
    init = wl["spec"]["template"]["spec"]["initContainers"][0]
    assert init["name"] == "storage-initializer" and init["args"] == ["hf://Qwen/Qwen2.5-3B-Instruct", "/mnt/models"]
    epp = c.store.get(dt, ns, f"{svc}-kserve-router-scheduler")
    assert epp["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == \
        "llminferenceservice-router-scheduler"
    assert epp["spec"]["template"]["spec"]["containers"][0]["image"] == m.EPP_IMAGE  # scheduler template override
    svcs = c.store.select(c.store.type_for("services"), ns)
    by = {s["metadata"]["name"]: s for s in svcs}
    assert [(p["name"], p["port"]) for p in by[f"{svc}-kserve-workload-svc"]["spec"]["ports"]] == [("https", 8000)]
    assert [p["port"] for p in by[f"{svc}-epp-service"]["spec"]["ports"]] == [9002, 9003, 9090]
    # KServe 3.4.0-ea.1 (what step 4 installs): its pool in inference.networking.x-k8s.io/v1alpha2
    pool = c.store.get(c.store.type_for("inferencepools", "inference.networking.x-k8s.io"), ns, f"{svc}-inference-pool")
    assert pool["spec"]["extensionRef"]["name"] == f"{svc}-epp-service"
    assert pool["spec"]["extensionRef"]["failureMode"] == "FailOpen"
    assert c.store.list(c.store.type_for("inferencepools", "inference.networking.k8s.io"))[0] == []
    route = c.store.get(c.store.type_for("httproutes", "gateway.networking.k8s.io"), ns, f"{svc}-kserve-route")
    prefixes = [r["matches"][0]["path"]["value"] for r in route["spec"]["rules"]]
    assert prefixes == [f"/{ns}/{svc}/v1/completions", f"/{ns}/{svc}/v1/chat/completions", f"/{ns}/{svc}"]
    assert {r["backendRefs"][0].get("group") for r in route["spec"]["rules"][:2]} == {"inference.networking.x-k8s.io"}
    assert route["spec"]["rules"][1]["backendRefs"][0]["kind"] == "InferencePool"
    assert route["status"]["parents"][0]["conditions"][0]["status"] == "True"
    lt = c.store.type_for("llminferenceservices", "serving.kserve.io")
    obj = c.store.get(lt, ns, svc)
    conds = {x["type"]: x["status"] for x in obj["status"]["conditions"]}
    assert conds["Ready"] == "True" and conds["MainWorkloadReady"] == "True" and conds["RouterReady"] == "True"
    assert obj["status"]["url"] == f"http://127.0.0.1/{ns}/{svc}"
    workload = pods(c, ns, **{"kserve.io/component": "workload"})
    assert len(workload) == 3 and all(pod_ready_counts(p) == (1, 1) for p in workload)
    assert len({p["spec"]["nodeName"] for p in workload}) == 3
    all_parts = pods(c, ns, **{"app.kubernetes.io/part-of": "llminferenceservice"})
    assert len(all_parts) == 4
    # no sidecar yet: KServe opts its pods out (an injection label on the namespace would not change it)
    (epp_pod,) = pods(c, ns, **{"app.kubernetes.io/component": "llminferenceservice-router-scheduler"})
    assert pod_ready_counts(epp_pod) == (1, 1)

    # replicas change -> the deployment scales; deletion cascades
    c.store.mutate(lt, ns, svc, lambda o: o["spec"].__setitem__("replicas", 2))
    ctl.fast_forward(60)
    assert c.store.get(dt, ns, f"{svc}-kserve")["spec"]["replicas"] == 2
    assert len(pods(c, ns, **{"kserve.io/component": "workload"})) == 2
    c.store.delete(lt, ns, svc)
    ctl.fast_forward(60)
    assert c.store.try_get(dt, ns, f"{svc}-kserve") is None
    assert not pods(c, ns, **{"app.kubernetes.io/part-of": "llminferenceservice"})


def test_kserve_ea2_writes_its_pool_in_the_v1_api_and_the_version_shows_on_its_controller():
    c, ctl = world(kserve_version="3.4.0-ea.2")
    cfg = deploy_guide(c, ctl, routing=False)
    svc, ns = cfg.service, cfg.namespace
    ctrl = c.store.get(c.store.type_for("deployments", "apps"), "opendatahub", "kserve-controller-manager")
    assert ctrl["metadata"]["labels"]["app.kubernetes.io/version"] == "3.4.0-ea.2"
    pool = c.store.get(c.store.type_for("inferencepools", "inference.networking.k8s.io"), ns, f"{svc}-inference-pool")
    ref = pool["spec"]["endpointPickerRef"]
    assert (ref["name"], ref["port"], ref["failureMode"]) == (f"{svc}-epp-service", {"number": 9002}, "FailOpen")
    assert c.store.list(c.store.type_for("inferencepools", "inference.networking.x-k8s.io"))[0] == []
    route = c.store.get(c.store.type_for("httproutes", "gateway.networking.k8s.io"), ns, f"{svc}-kserve-route")
    assert [r["backendRefs"][0].get("group") for r in route["spec"]["rules"][:2]] == ["inference.networking.k8s.io"] * 2
    epp = c.store.get(c.store.type_for("deployments", "apps"), ns, f"{svc}-kserve-router-scheduler")
    args = epp["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--pool-group") + 1] == "inference.networking.k8s.io"


def test_a_kserve_upgrade_moves_the_pool_and_replaces_the_scheduler_template():
    c, ctl = world()
    cfg = deploy_guide(c, ctl)  # 3.4.0-ea.1, with the guide's step 6 label on the scheduler
    svc, ns = cfg.service, cfg.namespace
    dt = c.store.type_for("deployments", "apps")
    x_pools = c.store.type_for("inferencepools", "inference.networking.x-k8s.io")
    v1_pools = c.store.type_for("inferencepools", "inference.networking.k8s.io")
    epp_name = f"{svc}-kserve-router-scheduler"
    assert c.store.get(dt, ns, epp_name)["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"] == "true"
    c.store.mutate(dt, "opendatahub", "kserve-controller-manager",
                   lambda d: d["metadata"]["labels"].__setitem__("app.kubernetes.io/version", "3.4.0-ea.2"))
    ctl.fast_forward(600)
    assert c.store.try_get(x_pools, ns, f"{svc}-inference-pool") is None
    assert c.store.get(v1_pools, ns, f"{svc}-inference-pool")["spec"]["endpointPickerRef"]["failureMode"] == "FailOpen"
    route = c.store.get(c.store.type_for("httproutes", "gateway.networking.k8s.io"), ns, f"{svc}-kserve-route")
    assert route["spec"]["rules"][0]["backendRefs"][0]["group"] == "inference.networking.k8s.io"
    epp = c.store.get(dt, ns, epp_name)
    assert "sidecar.istio.io/inject" not in epp["spec"]["template"]["metadata"]["labels"]  # the new template
    history = c.store.select(c.store.type_for("replicasets", "apps"), ns,
                             {"app.kubernetes.io/component": "llminferenceservice-router-scheduler"})
    assert any(rs["spec"]["template"]["metadata"]["labels"].get("sidecar.istio.io/inject") == "true"
               for rs in history)  # the labelled revision is still in the Deployment's history


def test_an_unknown_kserve_version_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="3.4.0-ea.1, 3.4.0-ea.2"):
        Scenario().with_overrides(kserve_version="3.5")


def test_llmisvc_waits_for_the_kserve_controller():
    c, ctl = world()
    ctl.install_operators()
    ctl.fast_forward(361)  # the KServe CRDs exist, its controller pod is not Ready yet
    c.apply(m.namespace(DeployConfig(project="p")))
    c.put_guide_secrets()
    c.apply(m.llmisvc(DeployConfig(project="p")))
    ctl.drain()
    assert c.store.try_get(c.store.type_for("deployments", "apps"), NS, "qwen-3b-tpu-svc-kserve") is None
    ctl.fast_forward(60)
    assert c.store.try_get(c.store.type_for("deployments", "apps"), NS, "qwen-3b-tpu-svc-kserve") is not None


def test_epp_label_patch_rolls_the_epp_pod_to_two_of_two():
    c, ctl = world()
    cfg = deploy_guide(c, ctl, routing=False)
    sel = {"app.kubernetes.io/component": "llminferenceservice-router-scheduler"}
    (old,) = pods(c, cfg.namespace, **sel)
    assert [x["name"] for x in old["spec"]["containers"]] == ["main"]
    seen = record_statuses(c)
    dt = c.store.type_for("deployments", "apps")
    c.store.mutate(dt, cfg.namespace, m.epp_deployment_name(cfg.service),
                   lambda d: d["spec"]["template"]["metadata"]["labels"].__setitem__("sidecar.istio.io/inject", "true"))
    ctl.fast_forward(120)
    (new,) = pods(c, cfg.namespace, **sel)
    assert new["metadata"]["name"] != old["metadata"]["name"]
    assert [x["name"] for x in new["spec"]["containers"]] == ["main", "istio-proxy"]
    assert pod_ready_counts(new) == (2, 2)
    assert any("Envoy proxy is ready" in ln for ln in log_text(c, new, "istio-proxy"))
    # the rollout view: the new pod started while the old one was still there, then the old one terminated
    assert "Terminating 0/1" in seen[old["metadata"]["name"]]
    assert seen[new["metadata"]["name"]][0].endswith("0/2")
    assert c.store.try_get(c.store.type_for("pods"), cfg.namespace, old["metadata"]["name"]) is None
    assert _rollout_complete(c.store.get(dt, cfg.namespace, m.epp_deployment_name(cfg.service)))
    # the KServe controller keeps the label on a later reconcile of the service (its annotation is not the label)
    lt = c.store.type_for("llminferenceservices", "serving.kserve.io")
    c.store.mutate(lt, cfg.namespace, cfg.service, lambda o: o["metadata"].setdefault("labels", {}).update(x="y"))
    ctl.fast_forward(30)
    assert pod_ready_counts(pods(c, cfg.namespace, **sel)[0]) == (2, 2)


# --- restart catch-up ----------------------------------------------------------------------------


def test_a_restarted_world_catches_up_from_stored_times():
    speed = 2000.0
    c, ctl = world(speed=speed, tpu=2)
    c.put_guide_secrets()
    c.apply(vllm_deployment(replicas=2))
    ctl.fast_forward(120)  # downloaded; compiling
    before = pods(c, app="vllm")
    assert all(pod_display_status(p) == "Running" and pod_ready_counts(p) == (0, 1) for p in before)
    ctl.stop()
    dumped = json.loads(json.dumps(c.store.dump()))
    logs = json.loads(json.dumps(c.logs.dump()))

    time.sleep(400 / speed)  # the emulator is down for 400 simulated seconds
    c2 = StandInCluster(speed=speed, namespaces=())
    c2.store = Store(clock=c2.clock.now)
    c2.store.load(dumped)
    c2.logs = LogBook()
    c2.logs.load(logs)
    ctl2 = Controllers(c2)
    ctl2.start()  # reconciles everything in the store: no fast-forward
    deadline = time.monotonic() + 15  # its reconcile runs on the controllers' own thread
    while True:
        after = pods(c2, app="vllm")
        if all(pod_ready_counts(p) == (1, 1) for p in after) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert {p["metadata"]["name"] for p in after} == {p["metadata"]["name"] for p in before}
    assert all(pod_ready_counts(p) == (1, 1) for p in after), [pod_display_status(p) for p in after]
    log = log_text(c2, after[0], "main")
    assert sum("Loading weights took" in ln for ln in log) == 1  # resumed the log, not restarted it
    assert "Uvicorn running on https://0.0.0.0:8000" in log[-1]


# --- fidelity: every object validates against the kubernetes client's models --------------------

MODELS = {
    ("", "pods"): "V1Pod", ("", "nodes"): "V1Node", ("", "services"): "V1Service", ("", "events"): "CoreV1Event",
    ("", "secrets"): "V1Secret", ("", "namespaces"): "V1Namespace",
    ("apps", "deployments"): "V1Deployment", ("apps", "replicasets"): "V1ReplicaSet",
    ("apiextensions.k8s.io", "customresourcedefinitions"): "V1CustomResourceDefinition",
}


def test_every_object_round_trips_through_the_kubernetes_models():
    c, ctl = world(tpu=4)
    cfg = deploy_guide(c, ctl)  # a 4th TPU node is left for a crash-looping pod
    c.apply(vllm_deployment("broken", image="registry.redhat.io/rhaiis/vllm-tpu-rhel9:broken"))
    ctl.fast_forward(100)
    api = k8s.ApiClient()
    counts = {}
    for (group, plural), model in MODELS.items():
        items = c.store.list(c.store.type_for(plural, group))[0]
        for obj in items:
            parsed = api.deserialize(json.dumps(obj), model, "application/json")
            assert parsed.metadata.name == obj["metadata"]["name"]
        counts[plural] = len(items)
    assert counts["pods"] >= 14 and counts["events"] > 50 and counts["customresourcedefinitions"] >= 9
    assert cfg.service
