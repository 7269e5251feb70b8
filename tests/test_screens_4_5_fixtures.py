"""Fixed data for the step 4/5 screen tests and snapshots: pods, views, log lines (no clock, no
cluster, no random names)."""

from __future__ import annotations

import datetime as dt

from rhaii_tui.steps import operators as ops
from rhaii_tui.steps.diagnose import Diagnosis
from rhaii_tui.steps.podlife import PodTable

T0 = 1_800_000_000.0  # a fixed "now" for every computed duration
NS = "rhaii-inference"
SVC = "qwen-3b-tpu-svc"


def ts(offset: float) -> str:
    """RFC 3339 for T0 + offset (offsets are negative: the past)."""
    return dt.datetime.fromtimestamp(T0 + offset, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def workload_pod(suffix: str, *, node: str | None, stage: str, created: float, stage_since: float,
                 restarts: int = 0) -> dict:
    """A workload pod in one of the guide's stages: pending, init, starting, ready."""
    name = f"{SVC}-kserve-6f7d9c8b5-{suffix}"
    conds = []
    status: dict = {"phase": "Pending", "conditions": conds}
    if node:
        conds.append({"type": "PodScheduled", "status": "True", "lastTransitionTime": ts(created + 5)})
    else:
        conds.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                      "message": "0/5 nodes are available", "lastTransitionTime": ts(created)})
    if stage == "init":
        status["initContainerStatuses"] = [{"name": "storage-initializer", "ready": False, "restartCount": restarts,
                                            "state": {"running": {"startedAt": ts(stage_since)}}}]
        status["containerStatuses"] = [{"name": "main", "ready": False, "restartCount": 0,
                                        "state": {"waiting": {"reason": "PodInitializing"}}}]
    elif stage in ("starting", "ready"):
        status["phase"] = "Running"
        status["initContainerStatuses"] = [{"name": "storage-initializer", "ready": False, "restartCount": 0,
                                            "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                                                     "finishedAt": ts(stage_since - 10)}}}]
        conds.append({"type": "Initialized", "status": "True", "lastTransitionTime": ts(stage_since - 10)})
        ready = stage == "ready"
        conds.append({"type": "Ready", "status": "True" if ready else "False",
                      "lastTransitionTime": ts(stage_since)})
        status["containerStatuses"] = [{"name": "main", "ready": ready, "restartCount": restarts,
                                        "state": {"running": {"startedAt": ts(stage_since if not ready
                                                                              else stage_since - 200)}}}]
    spec = {"containers": [{"name": "main"}], "initContainers": [{"name": "storage-initializer"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "uid": f"uid-{suffix}", "creationTimestamp": ts(created),
                         "labels": {"kserve.io/component": "workload"}},
            "spec": spec, "status": status}


def epp_pod() -> dict:
    name = f"{SVC}-kserve-router-scheduler-5c9f8d7b6-q2w3e"
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "uid": "uid-epp", "creationTimestamp": ts(-900)},
            "spec": {"containers": [{"name": "main"}], "nodeName": "gke-rhaii-tpu-scaleout-c-default-pool-1a2b3c4d-x9k2"},
            "status": {"phase": "Running",
                       "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": ts(-898)},
                                      {"type": "Ready", "status": "True", "lastTransitionTime": ts(-880)}],
                       "containerStatuses": [{"name": "main", "ready": True, "restartCount": 0,
                                              "state": {"running": {"startedAt": ts(-890)}}}]}}


def deploy_pods() -> list[dict]:
    """r1 ready, r2 compiling past the guide's range (amber), r3 downloading the model."""
    node = "gke-rhaii-tpu-scaleout-c-tpu-pool-5e6f7a8b-{}".format
    return [
        workload_pod("a1b2c", node=node("h7k2"), stage="ready", created=-900, stage_since=-120),
        workload_pod("d3e4f", node=node("m3p8"), stage="starting", created=-900, stage_since=-420),
        workload_pod("g5h6i", node=node("q9t4"), stage="init", created=-600, stage_since=-40),
    ]


def pod_table_diffs(time_scale: float = 1.0):
    """(workload diffs, EPP diffs) from PodTables on a fixed clock, as DeployWatch yields them."""
    table = PodTable(time_scale=time_scale, clock=lambda: T0)
    diffs = table.resync(deploy_pods())
    epp = PodTable(time_scale=time_scale, clock=lambda: T0)
    return diffs, epp.resync([epp_pod()]), table, epp


LOG_LINES = {
    "storage-initializer": [
        "kserve INFO [storage.py:download():66] Copying contents of hf://Qwen/Qwen2.5-3B-Instruct to local",
        "kserve INFO [storage.py:download():121] Successfully copied hf://Qwen/Qwen2.5-3B-Instruct to /mnt/models",
    ],
    "main": [
        "INFO [tpu_worker.py:63] Loading safetensors checkpoint shards: 100% Completed | 2/2",
        "INFO [default_loader.py:262] Loading weights took 11.84 seconds",
        "INFO [kv_cache_utils.py:833] TPU KV cache size: 3,071,232 tokens",
        "INFO [tpu_model_runner.py:1507] Compiling the model with different input shapes.",
    ],
}


# --- step 4 ---------------------------------------------------------------------------------------


def operator_pod(ns: str, name: str, labels: dict, *, ready: bool = True, waiting: str | None = None) -> dict:
    state = {"waiting": {"reason": waiting, "message": f"Back-off pulling image for {name}"}} if waiting \
        else {"running": {"startedAt": ts(-1190)}}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "creationTimestamp": ts(-1200),
                         "labels": labels},
            "spec": {"containers": [{"name": "manager"}], "nodeName": "gke-node-1"},
            "status": {"phase": "Running" if not waiting else "Pending",
                       "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": ts(-1195)},
                                      {"type": "Ready", "status": "True" if ready and not waiting else "False",
                                       "lastTransitionTime": ts(-1100)}],
                       "containerStatuses": [{"name": "manager", "ready": ready and not waiting, "restartCount": 0,
                                              "state": state}]}}


def operators_view(*, kserve_failing: bool = True, gateway_address: str | None = None):
    """A step-4 view: cert-manager, istiod, LWS ready; KServe's controller in ImagePullBackOff;
    the gateway without an address for 4 minutes; two CRDs not there yet."""
    pods = [
        operator_pod("cert-manager", "cert-manager-7d9f8c6b5-abcde", {"app.kubernetes.io/instance": "cert-manager"}),
        operator_pod("cert-manager", "cert-manager-webhook-6c5b4a3d2-fghij",
                     {"app.kubernetes.io/instance": "cert-manager"}),
        operator_pod("istio-system", "istiod-5f4e3d2c1-klmno", {"app": "istiod"}),
        operator_pod("opendatahub", "kserve-controller-manager-8b7a6c5d4-pqrst",
                     {"control-plane": "kserve-controller-manager"},
                     waiting="ImagePullBackOff" if kserve_failing else None),
        operator_pod("openshift-lws-operator", "openshift-lws-operator-4d3c2b1a0-uvwxy",
                     {"name": "openshift-lws-operator"}),
        operator_pod("opendatahub", "inference-gateway-istio-9a8b7c6d5-zabcd",
                     {"gateway.networking.k8s.io/gateway-name": "inference-gateway"}),
    ]
    gw = {"metadata": {"name": "inference-gateway", "namespace": "opendatahub", "creationTimestamp": ts(-240)},
          "status": {"addresses": [{"value": gateway_address}] if gateway_address else [],
                     "conditions": [{"type": "Programmed", "status": "False", "reason": "AddressNotAssigned",
                                     "message": "waiting for the load balancer"}]}}
    crds = [{"metadata": {"name": n}, "status": {"conditions": [{"type": "Established", "status": "True"}]}}
            for n in ("llminferenceservices.serving.kserve.io", "gateways.gateway.networking.k8s.io",
                      "httproutes.gateway.networking.k8s.io", "envoyfilters.networking.istio.io")]
    return ops.build_view(pods, crds, [gw], now=T0)


class FakeOperatorWatch:
    """What OperatorsScreen reads from its live object: view() and states."""

    def __init__(self, view, states=None):
        self._view = view
        self.states = states or {"pods:cert-manager": "live", "pods:istio-system": "live",
                                 "pods:opendatahub": "live", "pods:openshift-lws-operator": "live",
                                 "gateway": "live", "crds": "live"}

    def view(self, now=None):
        return self._view

    def stop(self):
        pass


def stuck_diagnosis() -> Diagnosis:
    return Diagnosis(
        "compiling", f"{SVC}-kserve-6f7d9c8b5-d3e4f is still starting: vLLM is compiling for the TPU (7m)",
        ("Running 0/1 for 7m (the guide expects 3-5 min; a cold XLA compile cache can take far longer)",
         "last milestone: XLA compilation started"),
        "Nothing is wrong yet: vLLM loads the weights, then XLA compiles one graph per input shape.",
        (f"kubectl logs {SVC}-kserve-6f7d9c8b5-d3e4f -n {NS} -c main --tail=10 -f",), "warning",
        f"{SVC}-kserve-6f7d9c8b5-d3e4f")
