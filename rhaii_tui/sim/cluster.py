"""One simulated GKE cluster's Kubernetes side: store, logs, API server, controllers, data plane.

The world (sim/world.py) owns the Google-side objects (cluster, node pools, operations) and drives
this: it creates the `ClusterSim` when a cluster create starts (store + base namespaces), opens
the Kubernetes API when the control plane is up (`start_control_plane`), and calls `sync_nodes`
as node pools grow and shrink. Nodes carry the labels, taint and capacity GKE gives them.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .controllers import Controllers
from .dataplane import DataPlane
from .kube import Faults, KubeApiServer
from .logs import LogBook
from .store import ApiError, Store, now_rfc3339

if TYPE_CHECKING:  # pragma: no cover
    from .world import World

log = logging.getLogger(__name__)

GKE_VERSION = "1.33.5-gke.1080000"
# GKE runs the control plane at the cluster's master version and upgrades it before the nodes: the
# API server's /version (gitVersion) is the master version and no node's kubelet is newer.
K8S_VERSION = f"v{GKE_VERSION}"
BASE_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


# --- machine types ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MachineType:
    name: str
    cpus: int
    memory_mb: int
    family: str
    tpu_chips: int = 0
    tpu_topology: str | None = None
    description: str = ""

    @property
    def is_tpu(self) -> bool:
        return self.tpu_chips > 0


MACHINE_TYPES: dict[str, MachineType] = {m.name: m for m in (
    MachineType("n1-standard-2", 2, 7680, "n1", description="2 vCPUs, 7.5 GB RAM"),
    MachineType("n1-standard-4", 4, 15360, "n1", description="4 vCPUs, 15 GB RAM"),
    MachineType("n1-standard-8", 8, 30720, "n1", description="8 vCPUs, 30 GB RAM"),
    MachineType("n1-standard-16", 16, 61440, "n1", description="16 vCPUs, 60 GB RAM"),
    MachineType("n2-standard-2", 2, 8192, "n2", description="2 vCPUs, 8 GB RAM"),
    MachineType("n2-standard-4", 4, 16384, "n2", description="4 vCPUs, 16 GB RAM"),
    MachineType("n2-standard-8", 8, 32768, "n2", description="8 vCPUs, 32 GB RAM"),
    MachineType("e2-small", 2, 2048, "e2", description="Efficient Instance, 2 vCPU(s), 2 GB RAM"),
    MachineType("e2-medium", 2, 4096, "e2", description="Efficient Instance, 2 vCPU(s), 4 GB RAM"),
    MachineType("e2-standard-2", 2, 8192, "e2", description="Efficient Instance, 2 vCPUs, 8 GB RAM"),
    MachineType("e2-standard-4", 4, 16384, "e2", description="Efficient Instance, 4 vCPUs, 16 GB RAM"),
    MachineType("e2-standard-8", 8, 32768, "e2", description="Efficient Instance, 8 vCPUs, 32 GB RAM"),
    MachineType("ct6e-standard-1t", 44, 180224, "ct6e", 1, "1x1", "44 vCPUs, 176 GB RAM, 1 TPU v6e chip"),
    MachineType("ct6e-standard-4t", 180, 737280, "ct6e", 4, "2x2", "180 vCPUs, 720 GB RAM, 4 TPU v6e chips"),
    MachineType("ct6e-standard-8t", 180, 1474560, "ct6e", 8, "2x4", "180 vCPUs, 1440 GB RAM, 8 TPU v6e chips"),
)}
TPU_MACHINE_PREFIX = "ct6e-"


def machine_type(name: str) -> MachineType | None:
    return MACHINE_TYPES.get(name)


def _reserved_cpu_millis(cpus: int) -> int:
    """GKE's kubelet CPU reservation: 6% of the first core, 1% of the next, 0.5% of the next 2,
    0.25% of the rest."""
    m = 0.0
    for i in range(cpus):
        m += 60 if i == 0 else 10 if i == 1 else 5 if i < 4 else 2.5
    return int(m)


def _reserved_memory_mi(memory_mb: int) -> int:
    """GKE's memory reservation (25% of first 4 GiB, 20% of next 4, 10% of next 8, 6% of next 112,
    2% above 128) plus the 100 Mi eviction threshold."""
    mem, out = memory_mb, 0.0
    for size, share in ((4096, 0.25), (4096, 0.20), (8192, 0.10), (114688, 0.06), (10 ** 9, 0.02)):
        take = min(mem, size)
        out += take * share
        mem -= take
        if mem <= 0:
            break
    return int(out) + 100


def node_shape(mt: MachineType, pool: str, zone: str, cluster: str) -> tuple[dict, list, dict, dict]:
    """(labels, taints, capacity, allocatable) of a node of this machine type, as GKE sets them."""
    region = zone.rsplit("-", 1)[0]
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/instance-type": mt.name,
        "failure-domain.beta.kubernetes.io/region": region,
        "failure-domain.beta.kubernetes.io/zone": zone,
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": mt.name,
        "topology.kubernetes.io/region": region,
        "topology.kubernetes.io/zone": zone,
        "cloud.google.com/gke-nodepool": pool,
        "cloud.google.com/gke-os-distribution": "cos",
        "cloud.google.com/gke-container-runtime": "containerd",
        "cloud.google.com/gke-boot-disk": "hyperdisk-balanced" if mt.is_tpu else "pd-balanced",
        "cloud.google.com/machine-family": mt.family,
        "cloud.google.com/private-node": "false",
        "cloud.google.com/gke-provisioning": "standard",
    }
    taints: list[dict] = []
    mem_ki = mt.memory_mb * 1024
    capacity = {
        "cpu": str(mt.cpus),
        "memory": f"{mem_ki}Ki",
        "ephemeral-storage": "98831908Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "pods": "110",
    }
    allocatable = {
        "cpu": f"{mt.cpus * 1000 - _reserved_cpu_millis(mt.cpus)}m",
        "memory": f"{mem_ki - _reserved_memory_mi(mt.memory_mb) * 1024}Ki",
        "ephemeral-storage": "47060071478",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "pods": "110",
    }
    if mt.is_tpu:
        labels.update({
            "cloud.google.com/gke-tpu-accelerator": "tpu-v6e-slice",
            "cloud.google.com/gke-tpu-topology": mt.tpu_topology or "2x2",
            "cloud.google.com/gke-accelerator-count": str(mt.tpu_chips),
        })
        taints.append({"key": "google.com/tpu", "value": "present", "effect": "NoSchedule"})
        capacity["google.com/tpu"] = str(mt.tpu_chips)
        allocatable["google.com/tpu"] = str(mt.tpu_chips)
    return labels, taints, capacity, allocatable


def node_name(cluster: str, pool: str, suffix: str | None = None) -> str:
    """gke-<cluster>-<pool>-<group hash>-<suffix>, as GKE names nodes (at most 63 characters)."""
    group = hashlib.sha1(f"{cluster}/{pool}".encode()).hexdigest()[:8]
    c = cluster[:20].rstrip("-")
    p = pool[:14].rstrip("-")
    suffix = suffix or "".join(secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(4))
    return f"gke-{c}-{p}-{group}-{suffix}"


# --- helpers ----------------------------------------------------------------------------------


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


# --- the cluster ------------------------------------------------------------------------------


# --- secrets in the saved state -------------------------------------------------------------

_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _redact_text(text: str) -> str:
    import json

    v = text.strip()
    if v.startswith("hf_") and len(v) >= 33 and v[3:].isalnum():
        return ("hf_RedactedInTheSavedWorld" + "0" * len(v))[:len(v)]
    try:
        cfg = json.loads(v)
    except ValueError:
        cfg = None
    if isinstance(cfg, dict):
        auths = cfg.get("auths", cfg)
        if isinstance(auths, dict) and all(isinstance(e, dict) for e in auths.values()):
            out = {}
            for host, entry in auths.items():
                e = dict(entry)
                user = e.get("username") or ""
                if e.get("auth"):
                    try:
                        user = base64.b64decode(e["auth"]).decode(errors="replace").partition(":")[0] or user
                    except ValueError:
                        pass
                    e["auth"] = base64.b64encode(f"{user or 'user'}:redacted-password".encode()).decode()
                if e.get("password"):
                    e["password"] = "redacted-password"
                for k in ("identitytoken", "registrytoken"):
                    if e.get(k):
                        e[k] = "redacted"
                out[host] = e
            return json.dumps({"auths": out} if "auths" in cfg else out)
    return "redacted" if v else text


def redact_secret(obj: dict) -> dict:
    """A Secret with every value replaced by a same-shaped stand-in (see ClusterSim.dump)."""
    import copy

    obj = copy.deepcopy(obj)
    for key, val in list((obj.get("data") or {}).items()):
        try:
            text = base64.b64decode(val or "").decode()
        except (ValueError, UnicodeDecodeError):
            obj["data"][key] = base64.b64encode(b"redacted").decode()
            continue
        obj["data"][key] = base64.b64encode(_redact_text(text).encode()).decode()
    for key, val in list((obj.get("stringData") or {}).items()):
        obj["stringData"][key] = _redact_text(str(val))
    (obj.get("metadata", {}).get("annotations") or {}).pop(_LAST_APPLIED, None)
    return obj


API_SERVER_PRIVATE_IP = "172.16.0.2"  # the control plane's private endpoint (what pods connect to)

DATAPATH_PROVIDERS = ("DATAPATH_PROVIDER_UNSPECIFIED", "LEGACY_DATAPATH", "ADVANCED_DATAPATH",
                      "MIGRATE_TO_ADVANCED_DATAPATH", "MIGRATE_TO_LEGACY_DATAPATH")


def datapath_provider(body: dict) -> str:
    """networkConfig.datapathProvider by name (the Python client sends the enum as its number)."""
    v = (body.get("networkConfig") or {}).get("datapathProvider")
    if isinstance(v, int) and 0 <= v < len(DATAPATH_PROVIDERS):
        return DATAPATH_PROVIDERS[v]
    return str(v or "")


def enforcement_of(body: dict) -> bool:
    """Whether a GKE cluster with these fields (its create body) enforces NetworkPolicies."""
    if datapath_provider(body) == "ADVANCED_DATAPATH":
        return True
    addon = ((body.get("addonsConfig") or {}).get("networkPolicyConfig") or {})
    return bool((body.get("networkPolicy") or {}).get("enabled")) and not addon.get("disabled")


class ClusterSim:
    """The Kubernetes side of one GKE cluster (see the module docstring)."""

    def __init__(self, world: "World", key: str, *, plain_http: bool = False):
        self.world = world
        self.key = key
        self.project, self.location, self.name = key.split("/", 2)
        self.plain_http = plain_http
        self.clock = world.clock
        self.store = Store(clock=self.clock.now)
        self.logs = LogBook()
        self.k8s_port: int | None = None
        self.gateway_url: str | None = None
        self.server = None
        self.controllers = None
        self.dataplane = None
        self.faults = None
        self.store.add_hook(self._on_change)

    # --- properties the other parts read -----------------------------------------------------
    @property
    def scenario(self):
        return self.world.scenario

    @property
    def zone(self) -> str:
        return self.location

    @property
    def enforces_network_policy(self) -> bool:
        """Whether this cluster's data plane enforces NetworkPolicies, from its GKE create body: GKE
        Dataplane V2 (networkConfig.datapathProvider ADVANCED_DATAPATH), or Calico (networkPolicy
        .enabled with the NetworkPolicy add-on). Otherwise policies are stored and never enforced."""
        c = self.world.clusters.get(self.key)
        return enforcement_of(c.extra if c is not None else {})

    @property
    def running(self) -> bool:
        return self.server is not None

    @property
    def endpoint(self) -> str | None:
        """"127.0.0.1:PORT" (what GKE's cluster.endpoint holds), None before the control plane is up."""
        return f"{self.world.host}:{self.k8s_port}" if self.k8s_port else None

    @property
    def api_url(self) -> str | None:
        if not self.k8s_port:
            return None
        return f"{'http' if self.plain_http else 'https'}://{self.world.host}:{self.k8s_port}"

    def _on_change(self, etype, rt, obj, old) -> None:
        self.world.mark_dirty()

    # --- lifecycle ---------------------------------------------------------------------------
    def create_base_objects(self) -> None:
        """What a new cluster has before anyone touches it."""
        nst = self.store.type_for("namespaces")
        for ns in BASE_NAMESPACES:
            if self.store.try_get(nst, None, ns) is None:
                self.store.create(nst, {"metadata": {"name": ns}})
        svc = self.store.type_for("services")
        if self.store.try_get(svc, "default", "kubernetes") is None:
            self.store.create(svc, {
                "metadata": {"name": "kubernetes", "namespace": "default",
                             "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"type": "ClusterIP", "clusterIP": "34.118.224.1", "clusterIPs": ["34.118.224.1"],
                         "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}],
                         "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                         "internalTrafficPolicy": "Cluster"},
                "status": {"loadBalancer": {}},
            })
        self._api_endpoints()
        sa = self.store.type_for("serviceaccounts")
        for ns in BASE_NAMESPACES:
            if self.store.try_get(sa, ns, "default") is None:
                self.store.create(sa, {"metadata": {"name": "default", "namespace": ns}})

    def _api_endpoints(self) -> None:
        """The `kubernetes` Endpoints and EndpointSlice of `default`: where pods reach the API server.
        As on GKE, a private control-plane address (not the cluster's public `endpoint`)."""
        ep, es = self.store.type_for("endpoints"), self.store.type_for("endpointslices", "discovery.k8s.io")
        if self.store.try_get(ep, "default", "kubernetes") is None:
            self.store.create(ep, {
                "metadata": {"name": "kubernetes", "namespace": "default",
                             "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                "subsets": [{"addresses": [{"ip": API_SERVER_PRIVATE_IP}],
                             "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}]})
        if es is not None and self.store.try_get(es, "default", "kubernetes") is None:
            self.store.create(es, {
                "metadata": {"name": "kubernetes", "namespace": "default",
                             "labels": {"kubernetes.io/service-name": "kubernetes"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": [API_SERVER_PRIVATE_IP], "conditions": {"ready": True}}],
                "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]})

    def _make_faults(self) -> Faults:
        """The K8s API's faults: the world's revoked tokens (checked live), and the flaky knobs."""
        flaky = self.scenario.flaky
        if flaky:
            return Faults(error_rate=flaky.error_rate, watch_drop_seconds=flaky.watch_drop_seconds,
                          expire_once=flaky.expire_once, revoked=self.world.revoked_tokens)
        return Faults(revoked=self.world.revoked_tokens)

    async def start_control_plane(self) -> int:
        """Open the Kubernetes API (new port each time) and start controllers and data plane."""
        if self.server is not None:
            return self.k8s_port  # type: ignore[return-value]
        self._api_endpoints()  # (a world saved before they existed)
        if self.dataplane is None:
            self.dataplane = DataPlane(self)
        if self.controllers is None:
            self.controllers = Controllers(self)
        self.faults = self._make_faults()
        tls = None if self.plain_http else self.world.tls
        self.server = KubeApiServer(self.store, self.logs, token=self.world.token, tls=tls,
                                    proxy=self.dataplane.proxy, faults=self.faults,
                                    git_version=K8S_VERSION)
        self.k8s_port = await self.server.start(self.world.host, 0)
        await _maybe_await(self.dataplane.start())
        await _maybe_await(self.controllers.start())
        return self.k8s_port

    async def stop(self) -> None:
        for part in (self.controllers, self.dataplane):
            if part is not None:
                try:
                    await _maybe_await(part.stop())
                except Exception:  # noqa: BLE001 - shutdown goes on
                    log.exception("stopping %s", part)
        if self.server is not None:
            try:
                await _maybe_await(self.server.stop())
            except Exception:  # noqa: BLE001
                log.exception("stopping the K8s API of %s", self.key)
        self.server = None
        self.k8s_port = None

    # --- nodes -------------------------------------------------------------------------------
    def pool_nodes(self, pool_name: str) -> list[dict]:
        nodes, _ = self.store.list(self.store.type_for("nodes"),
                                   label_selector=f"cloud.google.com/gke-nodepool={pool_name}")
        return nodes

    def sync_nodes(self, pool_name: str, count: int, machine_type: str, labels: dict | None = None,
                   taints: list | None = None, capacity: dict | None = None) -> list[str]:
        """Make the pool have exactly `count` Node objects (create Ready nodes or remove the newest).
        Labels/taints/capacity default to what GKE sets for the machine type; given ones are merged.
        Returns the names of the pool's nodes."""
        nt = self.store.type_for("nodes")
        mt = MACHINE_TYPES.get(machine_type) or MachineType(machine_type, 4, 16384, machine_type.split("-")[0])
        existing = sorted(self.pool_nodes(pool_name), key=lambda n: (n["metadata"]["creationTimestamp"],
                                                                    n["metadata"]["name"]))
        while len(existing) > count:
            gone = existing.pop()
            try:
                self.store.delete(nt, None, gone["metadata"]["name"])
            except ApiError:
                pass
        base_labels, base_taints, base_cap, base_alloc = node_shape(mt, pool_name, self.zone, self.name)
        base_labels.update(labels or {})
        if taints is not None:
            base_taints = list(taints)
        if capacity:
            base_cap.update(capacity)
            base_alloc.update(capacity)
        while len(existing) < count:
            existing.append(self.store.create(nt, self._node_object(pool_name, mt, base_labels, base_taints,
                                                                    base_cap, base_alloc)))
        return [n["metadata"]["name"] for n in existing]

    def _node_object(self, pool: str, mt: MachineType, labels: dict, taints: list, capacity: dict,
                     allocatable: dict) -> dict:
        nt = self.store.type_for("nodes")
        for _ in range(50):
            name = node_name(self.name, pool)
            if self.store.try_get(nt, None, name) is None:
                break
        n = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) % 60000
        ts = now_rfc3339(self.clock.now())
        ip = f"10.164.{n // 250 % 240}.{n % 250 + 2}"

        def cond(type_: str, status: str, reason: str, message: str) -> dict:
            return {"type": type_, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": ts, "lastTransitionTime": ts}

        node_labels = dict(labels)
        node_labels["kubernetes.io/hostname"] = name
        return {
            "metadata": {
                "name": name,
                "labels": node_labels,
                "annotations": {
                    "container.googleapis.com/instance_id": str(int(hashlib.sha1(name.encode()).hexdigest()[:15], 16)),
                    "node.alpha.kubernetes.io/ttl": "0",
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                },
            },
            "spec": {
                "podCIDR": f"10.{52 + n // 60000}.{n % 250}.0/24",
                "podCIDRs": [f"10.{52 + n // 60000}.{n % 250}.0/24"],
                "providerID": f"gce://{self.project}/{self.zone}/{name}",
                **({"taints": taints} if taints else {}),
            },
            "status": {
                "capacity": capacity,
                "allocatable": allocatable,
                "conditions": [
                    cond("NetworkUnavailable", "False", "RouteCreated", "RouteController created a route"),
                    cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                    cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                    cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                    cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
                ],
                "addresses": [
                    {"type": "InternalIP", "address": ip},
                    {"type": "Hostname", "address": name},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "architecture": "amd64",
                    "bootID": secrets.token_hex(16),
                    "containerRuntimeVersion": "containerd://1.7.27",
                    "kernelVersion": "6.6.87+",
                    "kubeProxyVersion": K8S_VERSION,
                    "kubeletVersion": K8S_VERSION,
                    "machineID": secrets.token_hex(16),
                    "operatingSystem": "linux",
                    "osImage": "Container-Optimized OS from Google",
                    "systemUUID": secrets.token_hex(16),
                },
                "images": [],
            },
        }

    # --- data plane callback -----------------------------------------------------------------
    def on_gateway_url(self, url: str | None) -> None:
        """The data plane's gateway listener got (or lost) its loopback port."""
        if url != self.gateway_url:
            self.gateway_url = url
            self.world.endpoints_changed()

    # --- persistence -------------------------------------------------------------------------
    def dump(self) -> dict:
        """What the world saves. Secret values are replaced by stand-ins of the same shape (a valid
        HF token stays a valid-looking token, a registry login stays a login): the state file never
        holds a user's secret, and a restarted world behaves the same."""
        store = self.store.dump()
        store = dict(store, objects=[redact_secret(o) if o.get("kind") == "Secret" else o
                                     for o in store.get("objects", [])])
        return {"store": store, "logs": self.logs.dump()}

    def load(self, data: dict) -> None:
        if data.get("store"):
            self.store.load(data["store"])
        if data.get("logs"):
            self.logs.load(data["logs"])
