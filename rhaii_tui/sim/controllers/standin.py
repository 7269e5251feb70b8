"""A minimal cluster for driving the controllers and the data plane without the world: what
`Controllers(cluster)` and `DataPlane(cluster)` need (`.store .logs .clock .scenario .k8s_port
.on_gateway_url`), GKE-shaped nodes, the guide's secrets and a one-call "deploy the guide" helper.
Used by the emulator's unit tests and the data-plane benchmark.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from ..clock import SimClock
from ..cluster import K8S_VERSION
from ..logs import LogBook
from ..store import Store

GKE_TPU_LABELS = {
    "cloud.google.com/gke-tpu-accelerator": "tpu-v6e-slice",
    "cloud.google.com/gke-tpu-topology": "2x2",
    "cloud.google.com/gke-accelerator-count": "4",
    "node.kubernetes.io/instance-type": "ct6e-standard-4t",
}
GOOD_HF_TOKEN = "hf_" + "Sim0Token1Not2Real3" * 2
GOOD_REGISTRY_AUTH = ("demo-user", "not-a-real-password")


class StandInCluster:
    def __init__(self, speed: float = 1000.0, scenario: Any = None,
                 namespaces: tuple[str, ...] = ("default", "kube-system", "rhaii-inference")):
        if scenario is None:
            from ..scenarios import Scenario
            scenario = Scenario()
        self.clock = SimClock(speed)
        self.store = Store(clock=self.clock.now)
        self.logs = LogBook()
        self.scenario = scenario
        self.k8s_port = 0
        self.gateway_url: str | None = None
        self.gateway_urls: list[str | None] = []
        nst = self.store.type_for("namespaces")
        for ns in namespaces:
            self.store.create(nst, {"metadata": {"name": ns}})
        self._nodes = 0

    def on_gateway_url(self, url: str | None) -> None:
        self.gateway_url = url
        self.gateway_urls.append(url)

    # --- nodes -------------------------------------------------------------------------------
    def add_nodes(self, pool: str, count: int, *, tpu: bool) -> list[str]:
        nt = self.store.type_for("nodes")
        names = []
        for _ in range(count):
            i = self._nodes
            self._nodes += 1
            name = f"gke-sim-{pool}-{i:04d}"
            labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                      "cloud.google.com/gke-nodepool": pool,
                      "node.kubernetes.io/instance-type": "n1-standard-4"}
            capacity = {"cpu": "4", "memory": "15335536Ki", "pods": "110", "ephemeral-storage": "98831908Ki"}
            allocatable = {"cpu": "3920m", "memory": "12698224Ki", "pods": "110", "ephemeral-storage": "47060071478"}
            spec: dict[str, Any] = {"podCIDR": f"10.52.{i}.0/24", "podCIDRs": [f"10.52.{i}.0/24"],
                                    "providerID": f"gce://sim/europe-west4-a/{name}"}
            if tpu:
                labels.update(GKE_TPU_LABELS)
                capacity.update({"cpu": "180", "memory": "742326420Ki", "google.com/tpu": "4"})
                allocatable.update({"cpu": "179500m", "memory": "738020000Ki", "google.com/tpu": "4"})
                spec["taints"] = [{"key": "google.com/tpu", "value": "present", "effect": "NoSchedule"}]
            self.store.create(nt, {"metadata": {"name": name, "labels": labels}, "spec": spec, "status": {
                "capacity": capacity, "allocatable": allocatable,
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                "message": "kubelet is posting ready status"}],
                "addresses": [{"type": "InternalIP", "address": f"10.164.0.{i + 2}"},
                              {"type": "Hostname", "address": name}],
                "nodeInfo": {"architecture": "amd64", "bootID": "x", "containerRuntimeVersion": "containerd://1.7.27",
                             "kernelVersion": "6.6.87+", "kubeProxyVersion": K8S_VERSION, "kubeletVersion": K8S_VERSION,
                             "machineID": "x", "operatingSystem": "linux",
                             "osImage": "Container-Optimized OS from Google", "systemUUID": "x"},
            }})
            names.append(name)
        return names

    # --- the guide's objects -----------------------------------------------------------------
    def put_secret(self, name: str, data: dict[str, str], type_: str = "Opaque", namespace: str = "rhaii-inference"
                   ) -> None:
        st = self.store.type_for("secrets")
        body = {"metadata": {"name": name, "namespace": namespace}, "type": type_,
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
        if self.store.try_get(st, namespace, name) is None:
            self.store.create(st, body)
        else:
            self.store.mutate(st, namespace, name, lambda o: o.update(data=body["data"], type=type_))

    def put_guide_secrets(self, hf_token: str = GOOD_HF_TOKEN, registry: str = "registry.redhat.io",
                          auth: tuple[str, str] = GOOD_REGISTRY_AUTH, namespace: str = "rhaii-inference") -> None:
        user, password = auth
        cfg = {"auths": {registry: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}}
        self.put_secret("rhaiis-pull-secret", {".dockerconfigjson": json.dumps(cfg)},
                        "kubernetes.io/dockerconfigjson", namespace)
        self.put_secret("huggingface-token", {"token": hf_token}, namespace=namespace)

    def apply(self, obj: dict) -> dict:
        """Create an object (or replace its spec): what the wizard's apply ends with."""
        rt = self.store.resolve_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        if rt is None:
            raise KeyError(f"no type for {obj.get('apiVersion')}/{obj.get('kind')}")
        ns = obj.get("metadata", {}).get("namespace") if rt.namespaced else None
        cur = self.store.try_get(rt, ns, obj["metadata"]["name"])
        if cur is None:
            return self.store.create(rt, obj, ns)

        def put(o: dict) -> None:
            for k, v in obj.items():
                if k not in ("metadata", "status", "apiVersion", "kind"):
                    o[k] = v
            for k in ("labels", "annotations"):
                if obj["metadata"].get(k):
                    o["metadata"][k] = {**(o["metadata"].get(k) or {}), **obj["metadata"][k]}
        return self.store.mutate(rt, ns, obj["metadata"]["name"], put)


def deploy_guide(cluster: StandInCluster, controllers: Any, *, replicas: int = 3, routing: bool = True,
                 envoyfilters: bool = True, sidecar: bool = True, prefix_caching: bool = True,
                 cfg: Any = None, settle: float = 3600.0) -> Any:
    """Steps 2-7 of the guide on a stand-in cluster: nodes, operators, secrets, the
    LLMInferenceService (rendered by rhaii_tui.manifests), the EPP sidecar, the EnvoyFilters.
    Returns the DeployConfig used."""
    from ... import manifests
    from ...config import DeployConfig

    cfg = cfg or DeployConfig(project="sim-project", replicas=replicas)
    if not cluster.store.list(cluster.store.type_for("nodes"))[0]:
        cluster.add_nodes("default-pool", 2, tpu=False)
        cluster.add_nodes("tpu-pool", cfg.replicas, tpu=True)
    controllers.install_operators()
    controllers.fast_forward(settle)
    cluster.apply(manifests.namespace(cfg))
    cluster.put_guide_secrets(namespace=cfg.namespace)
    svc = manifests.llmisvc(cfg)
    if not prefix_caching:
        for c in svc["spec"]["template"]["containers"]:
            c["args"] = [a for a in c.get("args") or [] if a != "--enable-prefix-caching"]
    cluster.apply(svc)
    controllers.fast_forward(settle)
    if routing and sidecar:
        dt = cluster.store.type_for("deployments", "apps")
        cluster.store.mutate(dt, cfg.namespace, manifests.epp_deployment_name(cfg.service),
                             lambda d: d["spec"]["template"]["metadata"].setdefault("labels", {})
                             .__setitem__("sidecar.istio.io/inject", "true"))
        controllers.fast_forward(settle)
    if routing and envoyfilters:
        for ef in manifests.envoyfilters(cfg):
            cluster.apply(ef)
        controllers.fast_forward(60)
    return cfg
