"""The simulated Google APIs: one plain-HTTP aiohttp listener on 127.0.0.1.

The services' paths are disjoint, so one port serves them all and every client override points at
it: GKE (container v1), Resource Manager (v1/v3), Cloud Quotas v1, Service Usage v1, Compute v1
(under /compute/v1) and the emulator's control API (/_emu). Errors have Google's JSON shape
`{"error": {"code", "message", "status"}}` so the client libraries raise their typed exceptions
(google.api_core.exceptions.NotFound, Forbidden, Conflict...) and gcloud prints the message.
Requests need the world's bearer token (401 UNAUTHENTICATED otherwise, or once it is revoked).
Both `?$alt=json;enum-encoding=int` (Python clients) and `?alt=json` (gcloud) are accepted;
responses always carry enum names, which both accept.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import random
import re
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from aiohttp import web

from ..config import V6E_ZONES, region_of
from . import google_schema
from .cluster import GKE_VERSION, MACHINE_TYPES
from .world import REGIONS, V6E_REGIONS, ZONES, Cluster, GoogleError, NodePool, Operation, _ts, mig_name

if TYPE_CHECKING:  # pragma: no cover
    from .world import World

log = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[Any]]

# The project of the OAuth client behind `gcloud auth application-default login`: Google names it as
# the consumer when user credentials without a quota project call a client-based API.
ADC_CLIENT_PROJECT_NUMBER = "764086051850"
MAX_FAST_FORWARD_S = 30 * 86400.0  # /_emu/fast-forward: at most 30 simulated days at once

VALID_VERSIONS = [GKE_VERSION, "1.33.4-gke.1350000", "1.32.9-gke.1108000", "1.31.13-gke.1023000"]


# --- serializers ---------------------------------------------------------------------------------


def _ca_b64(world: "World") -> str | None:
    if world.tls is None:
        return None
    from .world import _ca_b64 as ca

    return ca(world.tls)


def pool_json(world: "World", c: Cluster, p: NodePool) -> dict:
    base = world.google_url
    group = mig_name(c.name, p.name)
    out: dict[str, Any] = {
        "name": p.name,
        "config": p.config,
        "initialNodeCount": p.initial_count,
        "maxPodsConstraint": {"maxPodsPerNode": "110"},
        "podIpv4CidrSize": 24,
        "locations": [c.location if c.location in ZONES else f"{c.location}-a"],
        "management": {"autoUpgrade": True, "autoRepair": True},
        "upgradeSettings": {"maxSurge": 1, "strategy": "SURGE"},
        "networkConfig": {"podRange": f"gke-{c.name}-pods", "podIpv4CidrBlock": "10.52.0.0/14"},
        "selfLink": f"{base}/v1/projects/{c.project}/locations/{c.location}/clusters/{c.name}/nodePools/{p.name}",
        "version": GKE_VERSION,
        "instanceGroupUrls": [f"{base}/compute/v1/projects/{c.project}/zones/{world.pool_zone(c, p)}/instanceGroupManagers/{group}"],
        "status": p.status,
        "etag": f"{abs(hash((p.name, p.status, p.nodes))) % 10**8:08d}",
    }
    out.update(p.extra)
    if p.status_message:
        out["statusMessage"] = p.status_message
    if p.conditions:
        out["conditions"] = p.conditions
    return out


def cluster_json(world: "World", c: Cluster) -> dict:
    base = world.google_url
    sim = world.sims.get(c.key)
    pools = [pool_json(world, c, p) for p in c.pools.values()]
    zone = c.location if c.location in ZONES else f"{c.location}-a"
    out: dict[str, Any] = {
        "name": c.name,
        "nodeConfig": pools[0]["config"] if pools else {},
        "masterAuth": {},
        "loggingService": "logging.googleapis.com/kubernetes",
        "monitoringService": "monitoring.googleapis.com/kubernetes",
        "network": "default",
        "subnetwork": "default",
        "clusterIpv4Cidr": "10.52.0.0/14",
        "addonsConfig": {"httpLoadBalancing": {}, "horizontalPodAutoscaling": {},
                         "networkPolicyConfig": {"disabled": True}, "gcePersistentDiskCsiDriverConfig": {"enabled": True}},
        "nodePools": pools,
        "locations": [zone],
        "labelFingerprint": "a9dc16a7",
        "legacyAbac": {},
        "ipAllocationPolicy": {"useIpAliases": True, "clusterIpv4Cidr": "10.52.0.0/14",
                               "servicesIpv4Cidr": "34.118.224.0/20", "clusterIpv4CidrBlock": "10.52.0.0/14",
                               "servicesIpv4CidrBlock": "34.118.224.0/20", "stackType": "IPV4"},
        "masterAuthorizedNetworksConfig": {},
        "networkConfig": {"network": f"projects/{c.project}/global/networks/default",
                          "subnetwork": f"projects/{c.project}/regions/{region_of(zone)}/subnetworks/default"},
        "defaultMaxPodsConstraint": {"maxPodsPerNode": "110"},
        "releaseChannel": {"channel": "REGULAR"},
        "selfLink": f"{base}/v1/projects/{c.project}/locations/{c.location}/clusters/{c.name}",
        "zone": c.location,
        "initialClusterVersion": GKE_VERSION,
        "currentMasterVersion": GKE_VERSION,
        "currentNodeVersion": GKE_VERSION,
        "createTime": c.create_time,
        "status": c.status,
        "nodeIpv4CidrSize": 24,
        "servicesIpv4Cidr": "34.118.224.0/20",
        "currentNodeCount": sum(p.nodes for p in c.pools.values()),
        "location": c.location,
        "id": c.id,
        "etag": f"{abs(hash((c.name, c.status))) % 10**8:08d}",
    }
    for k, v in c.extra.items():  # the create body's fields; nested ones on top of GKE's defaults
        out[k] = {**out[k], **v} if k in ("networkConfig", "addonsConfig") and isinstance(v, dict) else v
    if isinstance((c.extra.get("networkConfig") or {}).get("datapathProvider"), int):  # by name, as GKE answers
        from .cluster import datapath_provider
        out["networkConfig"]["datapathProvider"] = datapath_provider(c.extra)
    if (c.extra.get("networkPolicy") or {}).get("enabled"):  # Calico: GKE names the provider, adds the add-on
        out["networkPolicy"] = {**c.extra["networkPolicy"], "provider": "CALICO"}
        if (c.extra.get("addonsConfig") or {}).get("networkPolicyConfig") is None:
            out["addonsConfig"]["networkPolicyConfig"] = {}
    if c.status_message:
        out["statusMessage"] = c.status_message
    if c.control_plane_up and sim is not None and sim.endpoint:
        out["endpoint"] = sim.endpoint
        ca = _ca_b64(world)
        if ca:
            out["masterAuth"] = {"clusterCaCertificate": ca}
    return out


_STAGES = {
    "CREATE_CLUSTER": [("control_plane", "Creating the control plane"),
                       ("pool_nodes", "Creating the node pools"),
                       ("done", "Running health checks")],
}


def op_json(world: "World", op: Operation) -> dict:
    base = world.google_url
    target = f"{base}/v1/projects/{world.projects.get(op.project, op.project)}/zones/{op.location}/clusters/{op.cluster}"
    if op.pool:
        target += f"/nodePools/{op.pool}"
    applied = op.plan[:op.applied]
    node_steps = [s for s in op.plan if s[1] == "pool_nodes" and s[2]["count"] > 0]
    total = max((s[2]["count"] for s in node_steps), default=0)
    done_nodes = max((s[2]["count"] for s in applied if s[1] == "pool_nodes"), default=0)
    metrics = [{"name": "NODES_TOTAL", "intValue": str(total)}, {"name": "NODES_DONE", "intValue": str(done_nodes)}]
    stages = []
    if op.type in _STAGES:
        reached = {s[1] for s in applied}
        prev_done = True
        for action, label in _STAGES[op.type]:
            is_done = action in reached or op.status == "DONE"
            status = "DONE" if is_done else ("RUNNING" if prev_done else "PENDING")
            stages.append({"name": label, "status": status})
            prev_done = is_done
    if op.status == "DONE":
        detail = ""  # gcloud prints a finished operation's detail as a warning
    elif op.type == "CREATE_CLUSTER" and not any(s[1] == "control_plane" for s in applied):
        detail = "Creating the control plane"
    elif total:
        detail = f"{done_nodes} of {total} nodes created"
    else:
        detail = "Operation in progress"
    status = op.status
    if status == "RUNNING" and world.clock.sim_elapsed(op.start) < 1.0:
        status = "PENDING"  # queued for about a simulated second, as GKE reports new operations
    out: dict[str, Any] = {
        "name": op.name,
        "zone": op.location,
        "operationType": op.type,
        "status": status,
        **({"detail": detail} if detail else {}),
        "selfLink": f"{base}/v1/projects/{world.projects.get(op.project, op.project)}/zones/{op.location}/operations/{op.name}",
        "targetLink": target,
        "location": op.location,
        "startTime": _ts_ms(op.start).replace("+00:00", "Z"),  # GKE gives sub-second precision
        "progress": {"name": op.type, "status": status, "metrics": metrics, **({"stages": stages} if stages else {})},
    }
    if op.end is not None:
        out["endTime"] = _ts(op.end)
    if op.error:
        out["error"] = op.error
        out["statusMessage"] = op.error["message"]  # gcloud reads this one
    if op.nodepool_conditions:
        out["nodepoolConditions"] = op.nodepool_conditions
    if op.cluster_conditions:
        out["clusterConditions"] = op.cluster_conditions
    return out


def server_config() -> dict:
    return {
        "defaultClusterVersion": GKE_VERSION,
        "validNodeVersions": VALID_VERSIONS,
        "defaultImageType": "COS_CONTAINERD",
        "validImageTypes": ["COS_CONTAINERD", "UBUNTU_CONTAINERD"],
        "validMasterVersions": VALID_VERSIONS,
        "channels": [
            {"channel": ch, "defaultVersion": GKE_VERSION, "validVersions": VALID_VERSIONS}
            for ch in ("RAPID", "REGULAR", "STABLE", "EXTENDED")
        ],
    }


# --- quotas --------------------------------------------------------------------------------------


def quota_infos(world: "World", project: str) -> list[dict]:
    sc = world.scenario
    prefix = f"projects/{project}/locations/global/services/compute.googleapis.com/quotaInfos"

    def info(qid: str, metric: str, metric_name: str, quota_name: str, unit: str, dims: list[str],
             entries: list[dict]) -> dict:
        return {
            "name": f"{prefix}/{qid}",
            "quotaId": qid,
            "metric": metric,
            "service": "compute.googleapis.com",
            "isPrecise": True,
            "containerType": "PROJECT",
            "dimensions": dims,
            "metricDisplayName": metric_name,
            "quotaDisplayName": quota_name,
            "metricUnit": unit,
            "quotaIncreaseEligibility": {"isEligible": True},
            "isFixed": False,
            "dimensionsInfos": entries,
            "isConcurrent": False,
        }

    def entry(dims: dict, value: int, locations: list[str]) -> dict:
        return {"dimensions": dims, "details": {"value": str(value)}, "applicableLocations": locations}

    tpu = [entry({"region": r, "tpu_family": "CT6E"}, sc.quota_chips, [r]) for r in V6E_REGIONS]
    tpu.append(entry({}, 0, list(REGIONS)))
    pre = [entry({"region": r}, sc.preemptible_chips, [r]) for r in V6E_REGIONS]
    pre.append(entry({}, 0, list(REGIONS)))
    cpus = [entry({"region": r}, sc.cpus_quota, [r]) for r in REGIONS]
    return [
        info("CPUS-per-project-region", "compute.googleapis.com/cpus", "CPUs", "CPUs per project per region",
             "1/{project}/{region}", ["region"], cpus),
        info("PREEMPTIBLE-TPU-V6E-per-project-region", "compute.googleapis.com/preemptible_tpu_v6e",
             "Preemptible TPU slices v6e", "Preemptible TPU slices v6e per project per region",
             "1/{project}/{region}", ["region"], pre),
        info("TPUS-PER-TPU-FAMILY-per-project-region", "compute.googleapis.com/tpus_per_tpu_family",
             "TPUs per TPU family", "TPUs per TPU family per project per region",
             "1/{project}/{region}/{tpu_family}", ["region", "tpu_family"], tpu),
    ]


# --- compute -------------------------------------------------------------------------------------

ACCELERATORS: dict[str, tuple[str, int, tuple[str, ...]]] = {
    # name: (description, maximumCardsPerInstance, zones)
    "tpu-v6e-slice": ("TPU v6e", 8, tuple(V6E_ZONES)),
    "tpu-v5-lite-podslice": ("TPU v5 Lite PodSlice", 8, ("us-central1-a", "europe-west4-b", "us-west1-c",
                                                          "us-east5-a", "us-south1-a")),
    "nvidia-tesla-t4": ("NVIDIA T4", 4, ("us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f",
                                          "us-east1-c", "us-east1-d", "us-west1-a", "us-west1-b",
                                          "europe-west4-a", "europe-west4-b", "europe-west4-c",
                                          "asia-northeast1-a", "asia-east1-a")),
    "nvidia-l4": ("NVIDIA L4", 8, ("us-central1-a", "us-central1-b", "us-central1-c", "us-east1-b",
                                    "us-east1-c", "us-east1-d", "europe-west4-a", "europe-west4-b",
                                    "europe-west4-c", "asia-northeast1-a", "us-west1-a", "us-west1-b")),
}


def _zone_machine_types(zone: str, scenario: Any = None) -> list[str]:
    from .zone_machines import zone_machine_types

    return zone_machine_types(zone, scenario)


def _stable_id(*parts: str) -> str:
    import hashlib

    return str(int(hashlib.sha1("/".join(parts).encode()).hexdigest()[:15], 16))


class ComputeCatalog:
    def __init__(self, world: "World"):
        self.world = world

    @property
    def base(self) -> str:
        return f"{self.world.google_url}/compute/v1"

    def zone_url(self, project: str, zone: str) -> str:
        return f"{self.base}/projects/{project}/zones/{zone}"

    def accelerator(self, project: str, zone: str, name: str) -> dict:
        desc, cards, _ = ACCELERATORS[name]
        return {"kind": "compute#acceleratorType", "id": _stable_id("acc", zone, name),
                "creationTimestamp": "1969-12-31T16:00:00.000-08:00", "name": name, "description": desc,
                "zone": self.zone_url(project, zone),
                "selfLink": f"{self.zone_url(project, zone)}/acceleratorTypes/{name}",
                "maximumCardsPerInstance": cards}

    def accelerators(self, project: str, zone: str) -> list[dict]:
        return [self.accelerator(project, zone, n) for n, (_, _, zones) in ACCELERATORS.items() if zone in zones]

    def machine(self, project: str, zone: str, name: str) -> dict:
        mt = MACHINE_TYPES[name]
        out = {"kind": "compute#machineType", "id": _stable_id("mt", zone, name),
               "creationTimestamp": "1969-12-31T16:00:00.000-08:00", "name": name,
               "description": mt.description, "guestCpus": mt.cpus, "memoryMb": mt.memory_mb,
               "imageSpaceGb": 0, "maximumPersistentDisks": 128, "maximumPersistentDisksSizeGb": "263168",
               "zone": zone, "selfLink": f"{self.zone_url(project, zone)}/machineTypes/{name}",
               "isSharedCpu": name == "e2-medium", "architecture": "X86_64"}
        if mt.is_tpu:
            out["accelerators"] = [{"guestAcceleratorType": "tpu-v6e-slice", "guestAcceleratorCount": mt.tpu_chips}]
        return out

    def machines(self, project: str, zone: str) -> list[dict]:
        return [self.machine(project, zone, m) for m in _zone_machine_types(zone, self.world.scenario)]

    def zone(self, project: str, zone: str) -> dict:
        return {"kind": "compute#zone", "id": _stable_id("zone", zone), "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
                "name": zone, "description": zone, "status": "UP",
                "region": f"{self.base}/projects/{project}/regions/{region_of(zone)}",
                "selfLink": self.zone_url(project, zone),
                "availableCpuPlatforms": ["Intel Emerald Rapids", "Intel Sapphire Rapids", "AMD Genoa"],
                "supportsPzs": False}

    def region(self, project: str, region: str) -> dict:
        w = self.world
        usage = w.cpus_in_use(project, region)
        zones = [z for z in ZONES if region_of(z) == region]
        return {"kind": "compute#region", "id": _stable_id("region", region),
                "creationTimestamp": "1969-12-31T16:00:00.000-08:00", "name": region, "description": region,
                "status": "UP", "zones": [self.zone_url(project, z) for z in zones],
                "quotas": [
                    {"metric": "CPUS", "limit": float(w.scenario.cpus_quota), "usage": float(usage)},
                    {"metric": "DISKS_TOTAL_GB", "limit": 40960.0, "usage": float(sum(
                        p.nodes * 100 for c in w.clusters.values() if c.project == project
                        and region_of(c.location) == region for p in c.pools.values()))},
                    {"metric": "IN_USE_ADDRESSES", "limit": 69.0, "usage": 0.0},
                    {"metric": "INSTANCES", "limit": 6000.0, "usage": float(sum(
                        p.nodes for c in w.clusters.values() if c.project == project
                        and region_of(c.location) == region for p in c.pools.values()))},
                ],
                "selfLink": f"{self.base}/projects/{project}/regions/{region}", "supportsPzs": False}


# --- the listener --------------------------------------------------------------------------------


class Route:
    def __init__(self, method: str, pattern: str, handler: Handler, *, auth: bool = True, control: bool = False,
                 compute: bool = False):
        self.method = method
        self.regex = re.compile("^" + pattern + "$")
        self.handler = handler
        self.auth = auth
        self.control = control
        self.compute = compute


_SEG = r"([^/:]+)"
REQUEST_LOG = 4000  # requests GoogleApi.requests keeps (a full deploy and its day-2 operations send ~1000)
_CONTAINER = r"/v1(?:beta1)?/projects/" + _SEG + r"/(?:locations|zones)/" + _SEG


class GoogleApi:
    """The Google APIs listener of a world."""

    def __init__(self, world: "World"):
        self.world = world
        self.compute = ComputeCatalog(world)
        self._runner: web.AppRunner | None = None
        self._rng = random.Random()
        self.routes: list[Route] = self._routes()
        # the last requests to the Google APIs (control API excluded): (method, path, query, body)
        self.requests: collections.deque[tuple[str, str, str, Any]] = collections.deque(maxlen=REQUEST_LOG)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- dispatch ----------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.Response:
        path = request.path
        route, m = None, None
        for r in self.routes:
            mm = r.regex.match(path)
            if mm:
                if r.method == request.method:
                    route, m = r, mm
                    break
        compute = path.startswith("/compute/")
        try:
            if route is None:
                raise GoogleError(404, "NOT_FOUND", f"The requested URL {path} was not found on this server.")
            if route.auth:
                self.world.check_token(request.headers.get("Authorization"), allow_revoked=route.control)
            if not route.control and self.world.scenario.google_error_rate:
                self._maybe_fail()
            body: dict = {}
            if request.can_read_body:
                raw = await request.read()
                if raw.strip():
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        raise GoogleError(400, "INVALID_ARGUMENT",
                                          "Invalid JSON payload received. Unexpected token.") from None
                    if not isinstance(body, dict):
                        raise GoogleError(400, "INVALID_ARGUMENT", "Invalid JSON payload received: expected an object.")
            if not route.control:
                self.requests.append((request.method, path, request.query_string, body))
                await google_schema.check(request.method, path, body)  # Google's 400 for a bad body
            if not route.control:
                await self.world.advance()
            result = await route.handler(request, *m.groups(), body=body)  # type: ignore[union-attr]
            if isinstance(result, web.StreamResponse):
                return result
            return _json(200, result)
        except GoogleError as e:
            return _json(e.code, _compute_error(e) if compute else e.body())
        except Exception:  # noqa: BLE001 - answer like Google would, keep serving
            log.exception("google api %s %s", request.method, path)
            return _json(500, GoogleError(500, "INTERNAL", "Internal error encountered.").body())

    def _maybe_fail(self) -> None:
        if self._rng.random() >= self.world.scenario.google_error_rate:
            return
        if self._rng.random() < 0.5:
            raise GoogleError(503, "UNAVAILABLE", "The service is currently unavailable.")
        num = self.world.projects.get(self.world.project, "0")
        raise GoogleError(429, "RESOURCE_EXHAUSTED",
                          "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute' "
                          f"of service 'container.googleapis.com' for consumer 'project_number:{num}'.")

    def _routes(self) -> list[Route]:
        R = Route
        C = _CONTAINER
        S = _SEG
        return [
            # control API
            R("GET", r"/_emu/health", self.emu_health, auth=False, control=True),
            R("GET", r"/_emu/state", self.emu_state, control=True),
            R("GET", r"/_emu/clock", self.emu_clock, control=True),
            R("POST", r"/_emu/fast-forward", self.emu_fast_forward, control=True),
            R("POST", r"/_emu/revoke-token", self.emu_revoke, control=True),
            R("POST", r"/_emu/restore-token", self.emu_restore, control=True),
            R("POST", r"/_emu/login", self.emu_login, control=True),
            R("POST", r"/_emu/clusters/" + S + "/" + S + "/" + S + r"/install-operators", self.emu_install, control=True),
            # cloud quotas (before container: same /v1/projects/P/locations/L prefix)
            R("GET", r"/v1(?:beta)?/projects/" + S + r"/locations/global/services/" + S + r"/quotaInfos",
              self.quota_list),  # v1beta: gcloud beta quotas
            R("GET", r"/v1(?:beta)?/projects/" + S + r"/locations/global/services/" + S + r"/quotaInfos/" + S,
              self.quota_get),
            # container
            R("GET", C + r"/clusters", self.clusters_list),
            R("POST", C + r"/clusters", self.clusters_create),
            R("GET", C + r"/clusters/" + S, self.clusters_get),
            R("DELETE", C + r"/clusters/" + S, self.clusters_delete),
            R("GET", C + r"/clusters/" + S + r"/nodePools", self.pools_list),
            R("POST", C + r"/clusters/" + S + r"/nodePools", self.pools_create),
            R("GET", C + r"/clusters/" + S + r"/nodePools/" + S, self.pools_get),
            R("DELETE", C + r"/clusters/" + S + r"/nodePools/" + S, self.pools_delete),
            R("POST", C + r"/clusters/" + S + r"/nodePools/" + S + r"(?::setSize|/setSize)", self.pools_set_size),
            R("POST", C + r"/clusters/" + S + r"/nodePools/" + S + r"(?::setAutoscaling|/autoscaling)",
              self.pools_set_autoscaling),
            R("GET", C + r"/operations", self.ops_list),
            R("GET", C + r"/operations/" + S, self.ops_get),
            R("GET", C + r"/(?:serverConfig|serverconfig)", self.server_config),
            # resource manager
            R("GET", r"/v3/projects/" + S, self.project_get_v3),
            R("POST", r"/v3/projects/" + S + r":testIamPermissions", self.test_iam),
            R("GET", r"/v1/projects/" + S, self.project_get_v1),
            R("POST", r"/v1/projects/" + S + r":testIamPermissions", self.test_iam),
            # service usage
            R("GET", r"/v1/projects/" + S + r"/services", self.services_list),
            R("GET", r"/v1/projects/" + S + r"/services:batchGet", self.services_batch_get),
            R("GET", r"/v1/projects/" + S + r"/services/" + S, self.service_get),
            R("POST", r"/v1/projects/" + S + r"/services/" + S + r":enable", self.service_enable),
            R("POST", r"/v1/projects/" + S + r"/services/" + S + r":disable", self.service_disable),
            R("GET", r"/v1/operations/" + r"(.+)", self.su_operation),
            # compute
            R("GET", r"/compute/v1/projects/" + S, self.compute_project, compute=True),
            R("GET", r"/compute/v1/projects/" + S + r"/zones", self.compute_zones, compute=True),
            R("GET", r"/compute/v1/projects/" + S + r"/zones/" + S, self.compute_zone, compute=True),
            R("GET", r"/compute/v1/projects/" + S + r"/zones/" + S + r"/acceleratorTypes", self.acc_list, compute=True),
            R("GET", r"/compute/v1/projects/" + S + r"/zones/" + S + r"/acceleratorTypes/" + S, self.acc_get, compute=True),
            R("GET", r"/compute/v1/projects/" + S + r"/aggregated/acceleratorTypes", self.acc_aggregated, compute=True),
            R("GET", r"/compute/v1/projects/" + S + r"/zones/" + S + r"/machineTypes", self.mt_list, compute=True),
            R("GET", r"/compute/v1/projects/" + S + r"/zones/" + S + r"/machineTypes/" + S, self.mt_get, compute=True),
            R("GET", r"/compute/v1/projects/" + S + r"/aggregated/machineTypes", self.mt_aggregated, compute=True),
            R("GET", r"/compute/v1/projects/" + S + r"/regions", self.regions_list, compute=True),
            R("GET", r"/compute/v1/projects/" + S + r"/regions/" + S, self.region_get, compute=True),
            R("GET", r"/compute/v1/projects/" + S + r"/zones/" + S + r"/instanceGroupManagers", self.igm_list,
              compute=True),
            R("GET", r"/compute/v1/projects/" + S + r"/zones/" + S + r"/autoscalers", self.autoscalers_list,
              compute=True),
            R("GET", r"/compute/v1/projects/" + S + r"/zones/" + S + r"/instanceGroups", self.ig_list, compute=True),
            R("GET", r"/compute/v1/projects/" + S + r"/zones/" + S + r"/instanceGroups/" + S, self.ig_get,
              compute=True),
            R("GET", r"/compute/v1/projects/" + S + r"/zones/" + S + r"/instanceGroupManagers/" + S, self.igm_get,
              compute=True),
            R("GET", r"/compute/v1/projects/" + S + r"/zones/" + S + r"/instanceGroupManagers/" + S + r"/listErrors",
              self.igm_errors, compute=True),
        ]

    # --- control -----------------------------------------------------------------------------
    async def emu_health(self, request, body):
        return {"ok": True, "scenario": self.world.scenario.name}

    async def emu_state(self, request, body):
        return self.world.state_summary()

    async def emu_clock(self, request, body):
        """The simulated clock (seconds; only differences mean anything) and its speed."""
        return {"clock": "simulated", "now_s": self.world.clock.sim_now(), "speed": self.world.clock.speed}

    async def emu_fast_forward(self, request, body):
        """Let simulated time pass at once ({"seconds": N}): running operations and the clusters'
        controllers move on, and every age grows by N (a rehearsal's skip ahead; a benchmark's old pods)."""
        seconds = body.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) \
                or not math.isfinite(seconds) or not 0 < seconds <= MAX_FAST_FORWARD_S:
            raise GoogleError(400, "INVALID_ARGUMENT",
                              f"seconds: a number of simulated seconds in (0, {MAX_FAST_FORWARD_S:.0f}].")
        await self.world.fast_forward(float(seconds))
        return {"clock": "simulated", "now_s": self.world.clock.sim_now(), "skipped_s": float(seconds)}

    async def emu_revoke(self, request, body):
        self.world.revoke_token()
        return {"revoked": True}

    async def emu_restore(self, request, body):
        self.world.restore_token()
        return {"revoked": False}

    async def emu_login(self, request, body):
        """A fresh token, written to endpoints.json (never in the answer: clients read the file)."""
        self.world.login()
        return {"account": self.world.account, "endpoints": str(self.world.endpoints_file)}

    async def emu_install(self, request, project, location, cluster, body):
        w = self.world
        c = w.cluster(project, location, cluster)
        sim = w.sims.get(c.key)
        if not c.control_plane_up or sim is None or sim.server is None:
            raise GoogleError(400, "FAILED_PRECONDITION",
                              f"Cluster {cluster} has no running control plane yet (status {c.status}).")
        if sim.controllers is None:
            raise GoogleError(501, "UNIMPLEMENTED", "This emulator build has no cluster controllers.")
        from .cluster import _maybe_await

        await _maybe_await(sim.controllers.install_operators())
        w.mark_dirty()
        return {"status": "started", "cluster": c.key}

    # --- client-based APIs: the quota project -------------------------------------------------
    def _billed_project(self, request, api: str, pid: str) -> str:
        """The project a client-based API (Service Usage, Cloud Quotas) bills a call to: the
        `x-goog-user-project` header, else the credentials' own project. User credentials from
        `gcloud auth application-default login` have none: Google refuses them with the error below
        (gcloud's own credentials carry gcloud's project, so gcloud itself is not refused)."""
        w = self.world
        header = (request.headers.get("x-goog-user-project") or "").strip()
        if header:
            try:
                return w.project_id(header)
            except GoogleError:
                raise GoogleError(
                    403, "PERMISSION_DENIED",
                    f"Caller does not have required permission to use project {header}. Grant the caller the "
                    "roles/serviceusage.serviceUsageConsumer role, or a custom role with the "
                    "serviceusage.services.use permission, by visiting "
                    f"https://console.developers.google.com/iam-admin/iam/project?project={header} and then "
                    "retry. Propagation of the new permission may take a few minutes.",
                    [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "USER_PROJECT_DENIED",
                      "domain": "googleapis.com",
                      "metadata": {"consumer": f"projects/{header}", "service": api}}]) from None
        if w.scenario.credentials == "user" and "gcloud/" not in request.headers.get("User-Agent", ""):
            raise GoogleError(
                403, "PERMISSION_DENIED",
                "Your application is authenticating by using local Application Default Credentials. The "
                f"{api} API requires a quota project, which is not set by default. To learn how to set your "
                "quota project, see https://cloud.google.com/docs/authentication/adc-troubleshooting/user-creds .",
                [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "SERVICE_DISABLED",
                  "domain": "googleapis.com",
                  "metadata": {"service": api, "consumer": f"projects/{ADC_CLIENT_PROJECT_NUMBER}"}}])
        return pid

    # --- quotas ------------------------------------------------------------------------------
    def _quota_read(self, request, project: str, name: str) -> str:
        """Cloud Quotas reads: a quota project, the API enabled there, cloudquotas.quotas.get."""
        w = self.world
        pid = w.project_id(project)
        billed = self._billed_project(request, "cloudquotas.googleapis.com", pid)
        w.require_service(billed, "cloudquotas.googleapis.com", "Cloud Quotas API")
        if not w.scenario.permits("cloudquotas.quotas.get"):
            raise GoogleError(
                403, "PERMISSION_DENIED",
                f"Permission 'cloudquotas.quotas.get' denied on resource '//cloudquotas.googleapis.com/{name}' "
                "(or it may not exist).",
                [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "IAM_PERMISSION_DENIED",
                  "domain": "cloudquotas.googleapis.com",
                  "metadata": {"permission": "cloudquotas.quotas.get", "resource": name}}])
        return pid

    async def quota_list(self, request, project, service, body):
        self._quota_read(request, project, f"projects/{project}/locations/global/services/{service}")
        items = quota_infos(self.world, project) if service == "compute.googleapis.com" else []
        return {"quotaInfos": items}

    async def quota_get(self, request, project, service, quota_id, body):
        self._quota_read(request, project,
                         f"projects/{project}/locations/global/services/{service}/quotaInfos/{quota_id}")
        if service == "compute.googleapis.com":
            for q in quota_infos(self.world, project):
                if q["quotaId"] == quota_id:
                    return q
        raise GoogleError(404, "NOT_FOUND",
                          f"QuotaInfo projects/{project}/locations/global/services/{service}/quotaInfos/{quota_id} "
                          "not found.")

    # --- container ---------------------------------------------------------------------------
    async def clusters_list(self, request, project, location, body):
        w = self.world
        if location != "-":
            w._check_location(location)
        return {"clusters": [cluster_json(w, c) for c in w.list_clusters(project, location)]}

    def _container(self, project: str) -> str:
        pid = self.world.project_id(project)
        self.world.require_service(pid, "container.googleapis.com", "Kubernetes Engine API")
        return pid

    async def clusters_create(self, request, project, location, body):
        return op_json(self.world, self.world.create_cluster(project, location, body))

    async def clusters_get(self, request, project, location, name, body):
        pid = self._container(project)
        return cluster_json(self.world, self.world.cluster(pid, location, name))

    async def clusters_delete(self, request, project, location, name, body):
        return op_json(self.world, self.world.delete_cluster(project, location, name))

    async def pools_list(self, request, project, location, cluster, body):
        pid = self._container(project)
        c = self.world.cluster(pid, location, cluster)
        return {"nodePools": [pool_json(self.world, c, p) for p in c.pools.values()]}

    async def pools_create(self, request, project, location, cluster, body):
        return op_json(self.world, self.world.create_node_pool(project, location, cluster, body))

    async def pools_get(self, request, project, location, cluster, pool, body):
        pid = self._container(project)
        c = self.world.cluster(pid, location, cluster)
        return pool_json(self.world, c, self.world.node_pool(c, pool))

    async def pools_delete(self, request, project, location, cluster, pool, body):
        return op_json(self.world, self.world.delete_node_pool(project, location, cluster, pool))

    async def pools_set_size(self, request, project, location, cluster, pool, body):
        # proto3 JSON leaves a 0 out: a missing nodeCount is 0 (scale to zero)
        return op_json(self.world, self.world.set_node_pool_size(project, location, cluster, pool,
                                                                 body.get("nodeCount", 0)))

    async def pools_set_autoscaling(self, request, project, location, cluster, pool, body):
        return op_json(self.world, self.world.set_node_pool_autoscaling(project, location, cluster, pool,
                                                                        (body or {}).get("autoscaling") or {}))

    async def ops_list(self, request, project, location, body):
        pid = self._container(project)
        return {"operations": [op_json(self.world, op) for op in self.world.list_operations(pid, location)]}

    async def ops_get(self, request, project, location, name, body):
        pid = self._container(project)
        return op_json(self.world, self.world.operation(pid, location, name))

    async def server_config(self, request, project, location, body):
        self._container(project)
        self.world._check_location(location)
        return server_config()

    # --- resource manager --------------------------------------------------------------------
    def _rm_project(self, project: str) -> str:
        try:
            return self.world.project_id(project)
        except GoogleError:
            raise GoogleError(403, "PERMISSION_DENIED",
                              f"Permission 'resourcemanager.projects.get' denied on resource "
                              f"'//cloudresourcemanager.googleapis.com/projects/{project}' (or it may not exist).",
                              [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "IAM_PERMISSION_DENIED",
                                "domain": "cloudresourcemanager.googleapis.com",
                                "metadata": {"permission": "resourcemanager.projects.get",
                                             "resource": f"projects/{project}"}}]) from None

    async def project_get_v3(self, request, project, body):
        pid = self._rm_project(project)
        w = self.world
        created = _ts(w.created_at)
        return {"name": f"projects/{w.projects[pid]}", "parent": "organizations/123456789", "projectId": pid,
                "state": "ACTIVE", "displayName": pid.replace("-", " ").title(), "createTime": created,
                "updateTime": created, "etag": "W/\"sim\"", "labels": {}}

    async def project_get_v1(self, request, project, body):
        pid = self._rm_project(project)
        w = self.world
        return {"projectNumber": w.projects[pid], "projectId": pid, "lifecycleState": "ACTIVE",
                "name": pid.replace("-", " ").title(), "createTime": _ts(w.created_at),
                "parent": {"type": "organization", "id": "123456789"}}

    async def test_iam(self, request, project, body):
        self._rm_project(project)
        perms = body.get("permissions") or []
        if not isinstance(perms, list):
            raise GoogleError(400, "INVALID_ARGUMENT", "permissions must be a list.")
        granted = self.world.scenario.granted([str(p) for p in perms])
        return {"permissions": granted} if granted else {}

    # --- service usage -----------------------------------------------------------------------
    def _service(self, pid: str, name: str) -> dict:
        w = self.world
        num = w.projects[pid]
        titles = {"container.googleapis.com": "Kubernetes Engine API", "compute.googleapis.com": "Compute Engine API",
                  "cloudquotas.googleapis.com": "Cloud Quotas API",
                  "cloudresourcemanager.googleapis.com": "Cloud Resource Manager API",
                  "serviceusage.googleapis.com": "Service Usage API",
                  "iam.googleapis.com": "Identity and Access Management (IAM) API",
                  "logging.googleapis.com": "Cloud Logging API",
                  "monitoring.googleapis.com": "Cloud Monitoring API"}
        return {"name": f"projects/{num}/services/{name}", "parent": f"projects/{num}",
                "config": {"name": name, "title": titles.get(name, name)},
                "state": w.services.get(name, "DISABLED")}

    async def services_list(self, request, project, body):
        pid = self._rm_project(project)
        self._billed_project(request, "serviceusage.googleapis.com", pid)
        flt = request.query.get("filter", "")
        items = [self._service(pid, s) for s in sorted(self.world.services)]
        if "state:ENABLED" in flt:
            items = [i for i in items if i["state"] == "ENABLED"]
        elif "state:DISABLED" in flt:
            items = [i for i in items if i["state"] == "DISABLED"]
        return {"services": items}

    async def services_batch_get(self, request, project, body):
        pid = self._rm_project(project)
        self._billed_project(request, "serviceusage.googleapis.com", pid)
        names = request.query.getall("names", [])
        return {"services": [self._service(pid, n.rsplit("/", 1)[-1]) for n in names]}

    async def service_get(self, request, project, service, body):
        pid = self._rm_project(project)
        self._billed_project(request, "serviceusage.googleapis.com", pid)
        return self._service(pid, service)

    async def service_enable(self, request, project, service, body):
        pid = self._rm_project(project)
        self._billed_project(request, "serviceusage.googleapis.com", pid)
        self.world.set_service_state(service, True)
        return {"name": "operations/noop.DONE_OPERATION", "done": True,
                "response": {"@type": "type.googleapis.com/google.api.serviceusage.v1.EnableServiceResponse",
                             "service": self._service(pid, service)}}

    async def service_disable(self, request, project, service, body):
        pid = self._rm_project(project)
        self._billed_project(request, "serviceusage.googleapis.com", pid)
        self.world.set_service_state(service, False)
        return {"name": "operations/noop.DONE_OPERATION", "done": True,
                "response": {"@type": "type.googleapis.com/google.api.serviceusage.v1.DisableServiceResponse",
                             "service": self._service(pid, service)}}

    async def su_operation(self, request, name, body):
        return {"name": f"operations/{name}", "done": True}

    # --- compute -----------------------------------------------------------------------------
    def _cproject(self, project: str) -> str:
        try:
            return self.world.project_id(project)
        except GoogleError:
            raise GoogleError(404, "NOT_FOUND", f"The resource 'projects/{project}' was not found") from None

    def _czone(self, project: str, zone: str) -> None:
        if zone not in ZONES:
            raise GoogleError(404, "NOT_FOUND", f"The resource 'projects/{project}/zones/{zone}' was not found")

    def _list(self, kind: str, items: list, link: str) -> dict:
        return {"kind": kind, "id": link, "items": items, "selfLink": f"{self.compute.base}/{link}"}

    async def compute_project(self, request, project, body):
        pid = self._cproject(project)
        return {"kind": "compute#project", "id": self.world.projects[pid], "name": pid,
                "selfLink": f"{self.compute.base}/projects/{pid}",
                "quotas": [{"metric": "NETWORKS", "limit": 15.0, "usage": 1.0},
                           {"metric": "FIREWALLS", "limit": 200.0, "usage": 4.0}],
                "defaultServiceAccount": f"{self.world.projects[pid]}-compute@developer.gserviceaccount.com"}

    async def compute_zones(self, request, project, body):
        pid = self._cproject(project)
        return self._list("compute#zoneList", [self.compute.zone(pid, z) for z in ZONES], f"projects/{pid}/zones")

    async def compute_zone(self, request, project, zone, body):
        pid = self._cproject(project)
        self._czone(pid, zone)
        return self.compute.zone(pid, zone)

    async def acc_list(self, request, project, zone, body):
        pid = self._cproject(project)
        self._czone(pid, zone)
        return self._list("compute#acceleratorTypeList", self.compute.accelerators(pid, zone),
                          f"projects/{pid}/zones/{zone}/acceleratorTypes")

    async def acc_get(self, request, project, zone, name, body):
        pid = self._cproject(project)
        self._czone(pid, zone)
        if name not in ACCELERATORS or zone not in ACCELERATORS[name][2]:
            raise GoogleError(404, "NOT_FOUND",
                              f"The resource 'projects/{pid}/zones/{zone}/acceleratorTypes/{name}' was not found")
        return self.compute.accelerator(pid, zone, name)

    async def acc_aggregated(self, request, project, body):
        pid = self._cproject(project)
        items = {f"zones/{z}": {"acceleratorTypes": self.compute.accelerators(pid, z)} for z in ZONES}
        items = {k: _filter(v, "acceleratorTypes", request.query.get("filter")) for k, v in items.items()}
        return {"kind": "compute#acceleratorTypeAggregatedList", "id": f"projects/{pid}/aggregated/acceleratorTypes",
                "items": items, "selfLink": f"{self.compute.base}/projects/{pid}/aggregated/acceleratorTypes"}

    async def mt_list(self, request, project, zone, body):
        pid = self._cproject(project)
        self._czone(pid, zone)
        return self._list("compute#machineTypeList", self.compute.machines(pid, zone),
                          f"projects/{pid}/zones/{zone}/machineTypes")

    async def mt_get(self, request, project, zone, name, body):
        pid = self._cproject(project)
        self._czone(pid, zone)
        if name not in _zone_machine_types(zone, self.world.scenario):
            raise GoogleError(404, "NOT_FOUND",
                              f"The resource 'projects/{pid}/zones/{zone}/machineTypes/{name}' was not found")
        return self.compute.machine(pid, zone, name)

    async def mt_aggregated(self, request, project, body):
        pid = self._cproject(project)
        items = {f"zones/{z}": {"machineTypes": self.compute.machines(pid, z)} for z in ZONES}
        items = {k: _filter(v, "machineTypes", request.query.get("filter")) for k, v in items.items()}
        return {"kind": "compute#machineTypeAggregatedList", "id": f"projects/{pid}/aggregated/machineTypes",
                "items": items, "selfLink": f"{self.compute.base}/projects/{pid}/aggregated/machineTypes"}

    async def regions_list(self, request, project, body):
        pid = self._cproject(project)
        return self._list("compute#regionList", [self.compute.region(pid, r) for r in REGIONS],
                          f"projects/{pid}/regions")

    async def region_get(self, request, project, region, body):
        pid = self._cproject(project)
        if region not in REGIONS:
            raise GoogleError(404, "NOT_FOUND", f"The resource 'projects/{pid}/regions/{region}' was not found")
        return self.compute.region(pid, region)

    # --- compute: the managed instance groups behind node pools ------------------------------
    def _migs(self, pid: str, zone: str) -> list[tuple[Cluster, NodePool]]:
        w = self.world
        return [(c, p) for c in w.clusters.values() if c.project == pid for p in c.pools.values()
                if w.pool_zone(c, p) == zone]

    def _compute_permission(self, permission: str, resource: str) -> None:
        """Compute's 403 for a permission the caller lacks (roles/compute.viewer grants the reads)."""
        if not self.world.scenario.permits(permission):
            raise GoogleError(403, "PERMISSION_DENIED", f"Required '{permission}' permission for '{resource}'")

    def _mig(self, pid: str, zone: str, name: str) -> tuple[Cluster, NodePool]:
        self._compute_permission("compute.instanceGroupManagers.get",
                                 f"projects/{pid}/zones/{zone}/instanceGroupManagers/{name}")
        for c, p in self._migs(pid, zone):
            if mig_name(c.name, p.name) == name:
                return c, p
        raise GoogleError(404, "NOT_FOUND",
                          f"The resource 'projects/{pid}/zones/{zone}/instanceGroupManagers/{name}' was not found")

    def igm_json(self, pid: str, zone: str, c: Cluster, p: NodePool) -> dict:
        name = mig_name(c.name, p.name)
        zurl = self.compute.zone_url(pid, zone)
        template = f"{self.compute.base}/projects/{pid}/global/instanceTemplates/{name[:-4]}-tmpl"
        creating = 0 if p.status == "STOPPING" else max(0, p.target - p.nodes)
        deleting = max(0, p.nodes - p.target)
        actions = {k: 0 for k in ("abandoning", "creatingWithoutRetries", "recreating", "refreshing", "restarting",
                                  "resuming", "starting", "stopping", "suspending", "verifying")}
        actions.update(none=min(p.nodes, p.target), creating=creating, deleting=deleting)
        return {
            "kind": "compute#instanceGroupManager", "id": _stable_id("igm", pid, zone, name),
            "creationTimestamp": p.create_time, "name": name, "zone": zurl,
            "instanceTemplate": template, "versions": [{"instanceTemplate": template, "targetSize": {}}],
            "instanceGroup": f"{zurl}/instanceGroups/{name}", "baseInstanceName": name[:-4],
            "fingerprint": _fingerprint(name, str(p.target), str(p.nodes)),
            "currentActions": actions,
            "status": {"isStable": creating == 0 and deleting == 0, "versionTarget": {"isReached": True},
                       "stateful": {"hasStatefulConfig": False, "perInstanceConfigs": {"allEffective": True}}},
            "targetSize": p.target,
            "listManagedInstancesResults": "PAGELESS",
            "selfLink": f"{zurl}/instanceGroupManagers/{name}",
            "updatePolicy": {"type": "OPPORTUNISTIC", "minimalAction": "REPLACE", "replacementMethod": "SUBSTITUTE",
                             "maxSurge": {"fixed": 1, "calculated": 1}, "maxUnavailable": {"fixed": 1, "calculated": 1}},
        }

    async def igm_list(self, request, project, zone, body):
        pid = self._cproject(project)
        self._czone(pid, zone)
        self._compute_permission("compute.instanceGroupManagers.list", f"projects/{pid}/zones/{zone}")
        items = [self.igm_json(pid, zone, c, p) for c, p in self._migs(pid, zone)]
        return self._list("compute#instanceGroupManagerList", items,
                          f"projects/{pid}/zones/{zone}/instanceGroupManagers")

    async def autoscalers_list(self, request, project, zone, body):
        """No Compute autoscalers: GKE node pools scale through the cluster autoscaler."""
        pid = self._cproject(project)
        self._czone(pid, zone)
        return self._list("compute#autoscalerList", [], f"projects/{pid}/zones/{zone}/autoscalers")

    def ig_json(self, pid: str, zone: str, c: Cluster, p: NodePool) -> dict:
        name = mig_name(c.name, p.name)
        zurl = self.compute.zone_url(pid, zone)
        return {"kind": "compute#instanceGroup", "id": _stable_id("ig", pid, zone, name),
                "creationTimestamp": p.create_time, "name": name, "zone": zurl, "size": p.nodes,
                "network": f"{self.compute.base}/projects/{pid}/global/networks/default",
                "subnetwork": f"{self.compute.base}/projects/{pid}/regions/{region_of(zone)}/subnetworks/default",
                "fingerprint": _fingerprint("ig", name), "selfLink": f"{zurl}/instanceGroups/{name}"}

    async def ig_list(self, request, project, zone, body):
        pid = self._cproject(project)
        self._czone(pid, zone)
        return self._list("compute#instanceGroupList", [self.ig_json(pid, zone, c, p) for c, p in self._migs(pid, zone)],
                          f"projects/{pid}/zones/{zone}/instanceGroups")

    async def ig_get(self, request, project, zone, name, body):
        pid = self._cproject(project)
        self._czone(pid, zone)
        c, p = self._mig(pid, zone, name)
        return self.ig_json(pid, zone, c, p)

    async def igm_get(self, request, project, zone, name, body):
        pid = self._cproject(project)
        self._czone(pid, zone)
        c, p = self._mig(pid, zone, name)
        return self.igm_json(pid, zone, c, p)

    async def igm_errors(self, request, project, zone, name, body):
        """instanceGroupManagers.listErrors: each failed instance action, oldest first (maxResults,
        pageToken)."""
        pid = self._cproject(project)
        self._czone(pid, zone)
        c, p = self._mig(pid, zone, name)
        zurl = self.compute.zone_url(pid, zone)
        template = f"{self.compute.base}/projects/{pid}/global/instanceTemplates/{mig_name(c.name, p.name)[:-4]}-tmpl"
        items = [{"instanceActionDetails": {"action": "CREATING", "instance": f"{zurl}/instances/{e['instance']}",
                                            "version": {"instanceTemplate": template}},
                  "error": {"code": e["code"], "message": e["message"]},
                  "timestamp": _ts_ms(e["at"])} for e in p.mig_errors]
        try:
            start = int(request.query.get("pageToken") or 0)
            size = int(request.query.get("maxResults") or 500)
        except ValueError:
            raise GoogleError(400, "INVALID_ARGUMENT", "Invalid value for pageToken or maxResults.") from None
        size = max(1, min(500, size))
        out: dict[str, Any] = {"items": items[start:start + size],
                               "selfLink": f"{zurl}/instanceGroupManagers/{mig_name(c.name, p.name)}/listErrors"}
        if start + size < len(items):
            out["nextPageToken"] = str(start + size)
        return out


def _fingerprint(*parts: str) -> str:
    """Compute fingerprints are base64 bytes."""
    import base64
    import hashlib

    return base64.b64encode(hashlib.sha1("/".join(parts).encode()).digest()[:8]).decode()


def _ts_ms(t: float) -> str:
    """RFC 3339 with milliseconds, as Compute writes timestamps."""
    import datetime as _dt

    d = _dt.datetime.fromtimestamp(t, _dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}+00:00"


_NAME_FILTER = re.compile(r"""^\s*\(?\s*name\s*(?:=|eq|:)\s*["']?([A-Za-z0-9_.*\\-]+)["']?\s*\)?\s*$""")


def _filter(scoped: dict, key: str, flt: str | None) -> dict:
    """Compute's list `filter` for the one form clients send here: name = / eq / : VALUE."""
    if not flt:
        return scoped
    m = _NAME_FILTER.match(flt)
    if not m:
        return scoped
    pat = m.group(1).replace("\\", "")
    rx = re.compile("^" + (pat if ".*" in pat else re.escape(pat)) + "$")
    items = [i for i in scoped.get(key, []) if rx.match(i["name"])]
    if items:
        return {key: items}
    return {"warning": {"code": "NO_RESULTS_ON_PAGE", "message": "There are no results for scope on this page.",
                        "data": [{"key": "scope", "value": "zones"}]}}


def _compute_error(e: GoogleError) -> dict:
    reason = {404: "notFound", 403: "forbidden", 401: "authError", 400: "invalid", 409: "alreadyExists",
              429: "rateLimitExceeded", 503: "backendError"}.get(e.code, "backendError")
    return {"error": {"code": e.code, "message": e.message, "status": e.status,
                      "errors": [{"message": e.message, "domain": "global", "reason": reason}]}}


def _json(status: int, body: Any) -> web.Response:
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
    return web.Response(status=status, text=json.dumps(body), content_type="application/json",
                        charset="utf-8", headers=headers)
