"""The simulated cloud: one persistent world per state directory.

`World` owns the Google side (projects, services, GKE clusters, node pools, operations, quotas),
the scenario, the access token and the clock, plus one `ClusterSim` per cluster (the Kubernetes
side). It runs on one asyncio loop; nothing here blocks it for long.

Time: every GKE operation is a *plan*, a list of `(sim_offset, action, args)` steps fixed when the
operation starts. The world applies the steps whose offset has passed (`advance()`), from a ticker
and before answering any Google API call. Start times are wall-clock instants, so a world that was
stopped and restarted has moved on: due steps are applied at once (operations finish, node pools
reach their size).

Persistence: `DIR/state.json` (atomic, mode 0600) holds the Google-side objects, each cluster's
store and container logs, the token and the TLS material; it is written shortly after every batch
of changes and at shutdown. The world also writes `DIR/endpoints.json`, a kubeconfig per cluster and
a gcloud config directory (`write_files`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import V6E_ZONES, region_of
from .clock import SimClock
from .cluster import MACHINE_TYPES, ClusterSim, node_name
from .scenarios import Scenario, get_scenario, scenario_from_json
from .store import now_rfc3339
from .tls import TlsMaterial, make_tls

log = logging.getLogger(__name__)

DEFAULT_PROJECT = "rhaii-demo-project"
DEFAULT_ACCOUNT = "demo-user@example.com"
STATE_FILE = "state.json"
ENDPOINTS_FILE = "endpoints.json"
STATE_VERSION = 1

# zones the simulated Compute Engine knows: the v6e zones and a few without v6e
OTHER_ZONES = ("us-central1-a", "us-central1-c", "us-central1-f", "us-east1-b", "us-east1-c",
               "us-east5-c", "us-south1-c", "us-west1-a", "us-west1-b", "europe-west4-b",
               "europe-west4-c", "europe-west1-b", "asia-northeast1-a", "asia-east1-a",
               "southamerica-west1-b")
ZONES: tuple[str, ...] = tuple(sorted(set(V6E_ZONES) | set(OTHER_ZONES)))
REGIONS: tuple[str, ...] = tuple(sorted({region_of(z) for z in ZONES}))
V6E_REGIONS: tuple[str, ...] = tuple(sorted({region_of(z) for z in V6E_ZONES}))

# GKE timings in simulated seconds (the guide: ~5 min control plane, ~15 min TPU pool)
T_CONTROL_PLANE = 240.0
T_DEFAULT_POOL = 285.0
T_CLUSTER_DONE = 300.0
T_TPU_POOL = 900.0
T_CPU_POOL = 120.0
T_QUOTA_FAIL = 5.0
T_STOCKOUT_FAIL = 2100.0  # GKE gives up on a stocked-out pool after ~35 min (scenario knob stockout_fail_seconds)
T_MIG_FIRST_ERROR = 45.0  # the managed instance group's first failed instance creation, after the create starts
T_MIG_RETRY = 60.0  # a MIG retries a failed instance creation about every minute
T_SCALE_DOWN = 60.0
T_POOL_DELETE = 60.0
T_CLUSTER_DELETE = 150.0

CLUSTER_NAME_RE = r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$"


class GoogleError(Exception):
    """A Google API error: becomes {"error": {"code", "message", "status"}}."""

    def __init__(self, code: int, status: str, message: str, details: list | None = None):
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.details = details or []

    def body(self) -> dict:
        err: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            err["details"] = self.details
        return {"error": err}


class WorldError(Exception):
    """The world cannot start as asked (bad state dir, scenario mismatch...). Message says what to do."""


# --- Google-side model ---------------------------------------------------------------------------


@dataclass
class NodePool:
    name: str
    machine_type: str
    initial_count: int  # as requested at create (GKE keeps this)
    target: int  # the size the pool is driven to (create, setSize)
    nodes: int = 0  # Node objects that exist now
    status: str = "PROVISIONING"
    status_message: str = ""
    conditions: list = field(default_factory=list)
    spot: bool = False
    create_time: str = ""
    config: dict = field(default_factory=dict)  # nodeConfig as sent (merged with defaults)
    extra: dict = field(default_factory=dict)  # other fields the client sent (autoscaling, management...)
    # failed instance creations of the pool's managed instance group (Compute listErrors):
    # [{"instance", "zone", "code", "message", "at" (wall-clock)}], oldest first
    mig_errors: list = field(default_factory=list)

    @property
    def mt(self):
        return MACHINE_TYPES.get(self.machine_type)

    @property
    def tpu_chips_per_node(self) -> int:
        mt = self.mt
        return mt.tpu_chips if mt else 0


@dataclass
class Cluster:
    project: str
    location: str
    name: str
    status: str = "PROVISIONING"
    status_message: str = ""
    create_time: str = ""
    control_plane_up: bool = False
    id: str = ""
    pools: dict[str, NodePool] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.project}/{self.location}/{self.name}"


@dataclass
class Operation:
    name: str
    project: str
    location: str
    type: str
    cluster: str
    pool: str | None
    start: float  # wall-clock
    plan: list  # [[sim_offset, action, args], ...]
    applied: int = 0
    status: str = "RUNNING"
    end: float | None = None
    error: dict | None = None
    nodepool_conditions: list = field(default_factory=list)
    cluster_conditions: list = field(default_factory=list)
    detail: str = ""

    @property
    def duration(self) -> float:
        return self.plan[-1][0] if self.plan else 0.0


def _project_number(project: str) -> str:
    """A new project's number: random, as Google gives each new project its own (two worlds with the
    same project id are two environments; the wizard tells them apart by this number)."""
    return str(100000000000 + secrets.randbelow(899999999999))


def _ts(t: float) -> str:
    return now_rfc3339(t)


def mig_name(cluster: str, pool: str) -> str:
    """The managed instance group behind a node pool (named in the pool's instanceGroupUrls)."""
    return f"gke-{cluster[:20]}-{pool[:14]}-grp"


def mig_instance_name(cluster: str, pool: str, index: int) -> str:
    """The stable name of the MIG's index-th instance (a MIG retries creating the same instance)."""
    h = hashlib.sha1(f"{cluster}/{pool}/{index}".encode()).hexdigest()
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    suffix = "".join(alphabet[int(h[2 * k:2 * k + 2], 16) % len(alphabet)] for k in range(4))
    return node_name(cluster, pool, suffix)


def _fmt_duration(sim_seconds: float) -> str:
    m, s = divmod(max(0.0, sim_seconds), 60)
    return f"{int(m)}m{s:.1f}s" if m else f"{s:.1f}s"


# --- TLS (cached per process: generating a CA and a cert costs tens of milliseconds) ------------

_TLS_CACHE: dict[tuple, Any] = {}


def _world_tls() -> TlsMaterial:
    key = ("127.0.0.1", "localhost")
    if key not in _TLS_CACHE:
        _TLS_CACHE[key] = make_tls(key)
    return _TLS_CACHE[key]


def _tls_from_json(data: dict | None) -> TlsMaterial | None:
    if not data:
        return None
    try:
        return TlsMaterial(ca_pem=data["ca_pem"], cert_pem=data["cert_pem"], key_pem=data["key_pem"])
    except (KeyError, TypeError):
        return None


def _ca_b64(tls: TlsMaterial) -> str:
    return tls.ca_b64


# --- the world -----------------------------------------------------------------------------------


class World:
    def __init__(self, state_dir: str | Path, scenario: str | None = "fresh", speed: float | None = 30.0, *,
                 host: str = "127.0.0.1", port: int = 0, project: str | None = None,
                 plain_http: bool = False, overrides: dict | None = None, reset: bool = False,
                 persist: bool = True):
        self.state_dir = Path(state_dir)
        self.host = host
        self.port = port
        self.plain_http = plain_http
        self.persist = persist
        self._asked_scenario = scenario
        self._asked_overrides = dict(overrides or {})
        self._asked_speed = speed
        self._asked_project = project
        self._reset = reset
        # set by start() (from the saved state or fresh)
        self.scenario: Scenario = get_scenario(scenario or "fresh", **self._asked_overrides)
        self.clock = SimClock(speed or 30.0)
        self.project = project or DEFAULT_PROJECT
        self.projects: dict[str, str] = {}
        self.account = DEFAULT_ACCOUNT
        self.token = ""
        self.revoked_tokens: set[str] = set()
        self.services: dict[str, str] = {}
        self.tls = None
        self.clusters: dict[str, Cluster] = {}
        self.sims: dict[str, ClusterSim] = {}
        self.operations: dict[str, Operation] = {}
        self.created_at = time.time()
        self.google = None
        self.google_port: int | None = None
        self._tasks: list[asyncio.Task] = []
        self._dirty = False
        self._advance_lock: asyncio.Lock | None = None
        self._save_lock: asyncio.Lock | None = None
        self._started = False
        # endpoints.json names the gcloud dir and kubeconfigs: it is written only once start() has
        # written them (write_files), never while control planes come up during start()
        self._files_ready = False
        self._resumed = False

    # --- paths -------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.state_dir / STATE_FILE

    @property
    def endpoints_file(self) -> Path:
        return self.state_dir / ENDPOINTS_FILE

    @property
    def gcloud_dir(self) -> Path:
        return self.state_dir / "gcloud"

    @property
    def google_url(self) -> str:
        return f"http://{self.host}:{self.google_port}"

    @property
    def speed(self) -> float:
        return self.clock.speed

    @property
    def resumed(self) -> bool:
        return self._resumed

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> "World":
        from .google_api import GoogleApi

        self._advance_lock = asyncio.Lock()
        self._save_lock = asyncio.Lock()
        self._files_ready = False
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            os.chmod(self.state_dir, 0o700)
        except OSError:
            pass
        if self.state_file.exists() and not self._reset:
            self._load_state()
            self._resumed = True
        else:
            self._init_fresh()
        self.google = GoogleApi(self)
        self.google_port = await self.google.start(self.host, self.port)
        self._started = True
        for c in self.clusters.values():
            if c.control_plane_up and c.status != "STOPPING":
                await self.sims[c.key].start_control_plane()
        await self.advance()
        if not self._resumed:
            from .scenarios import build_start_state

            await build_start_state(self)
        self._files_ready = True
        self.write_files()
        await self.save()
        tick = max(0.02, min(0.5, 2.0 / self.clock.speed))
        self._tasks = [asyncio.create_task(self._ticker(tick), name="sim-world-ticker"),
                       asyncio.create_task(self._saver(), name="sim-world-saver")]
        return self

    async def stop(self, save: bool = True) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        self._tasks = []
        if save and self._started:
            await self.save()
        for sim in list(self.sims.values()):
            await sim.stop()
        if self.google is not None:
            await self.google.stop()
            self.google = None
        self._started = False

    def _init_fresh(self) -> None:
        self.scenario = get_scenario(self._asked_scenario or "fresh", **self._asked_overrides)
        self.clock = SimClock(self._asked_speed or 30.0)
        self.project = self._asked_project or DEFAULT_PROJECT
        self.projects = {self.project: _project_number(self.project)}
        self.token = "sim-" + secrets.token_urlsafe(24)
        self.services = {s: "ENABLED" for s in (
            "compute.googleapis.com", "cloudresourcemanager.googleapis.com", "cloudquotas.googleapis.com",
            "serviceusage.googleapis.com", "iam.googleapis.com", "logging.googleapis.com",
            "monitoring.googleapis.com")}
        self.services["container.googleapis.com"] = "ENABLED" if self.scenario.container_api_enabled else "DISABLED"
        self.services["cloudquotas.googleapis.com"] = "ENABLED" if self.scenario.quotas_api_enabled else "DISABLED"
        if self.scenario.credentials == "service_account":
            self.account = f"rhaii-deployer@{self.project}.iam.gserviceaccount.com"
        self.tls = None if self.plain_http else _world_tls()
        self.created_at = time.time()

    def _load_state(self) -> None:
        try:
            data = json.loads(self.state_file.read_text())
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"state version {data.get('version')!r}")
        except (OSError, ValueError) as e:
            raise WorldError(f"The simulated world in {self.state_dir} cannot be read ({e}). Start over with "
                             f"'rhaii-tui sim serve --reset --state-dir {self.state_dir}' or remove that directory."
                             ) from None
        scen = scenario_from_json(data["scenario"])
        if self._asked_scenario and self._asked_scenario != scen.name:
            raise WorldError(
                f"The simulated world in {self.state_dir} runs scenario {scen.name!r}, not "
                f"{self._asked_scenario!r}. Use --scenario {scen.name} (or none) to continue it, start the other "
                f"scenario in another directory (--sim-state DIR, or --state-dir DIR for sim serve), or start "
                f"over with "
                f"'rhaii-tui sim serve --reset --scenario {self._asked_scenario} --state-dir {self.state_dir}'.")
        if self._asked_overrides:
            scen = scen.with_overrides(**self._asked_overrides)
        self.scenario = scen
        self.clock = SimClock(self._asked_speed or data.get("speed", 30.0))
        self.project = data["project"]
        self.projects = dict(data["projects"])
        self.account = data.get("account", DEFAULT_ACCOUNT)
        self.token = data["token"]
        self.revoked_tokens = set(data.get("revoked_tokens", []))
        self.services = dict(data["services"])
        self.created_at = data.get("created_at", time.time())
        self.plain_http = bool(data.get("plain_http", self.plain_http))
        self.tls = None if self.plain_http else (_tls_from_json(data.get("tls")) or _world_tls())
        for cd in data.get("clusters", []):
            pools = {p["name"]: NodePool(**p) for p in cd.pop("pools", [])}
            sim_data = cd.pop("sim", {})
            c = Cluster(**cd, pools=pools)
            self.clusters[c.key] = c
            sim = ClusterSim(self, c.key, plain_http=self.plain_http)
            sim.load(sim_data)
            self.sims[c.key] = sim
        for od in data.get("operations", []):
            op = Operation(**od)
            self.operations[op.name] = op

    def _snapshot(self) -> dict:
        clusters = []
        for c in self.clusters.values():
            d = dataclasses.asdict(c)
            d["pools"] = [dataclasses.asdict(p) for p in c.pools.values()]
            sim = self.sims.get(c.key)
            d["sim"] = sim.dump() if sim else {}
            clusters.append(d)
        tls = None
        if self.tls is not None:
            tls = {"ca_pem": self.tls.ca_pem, "cert_pem": self.tls.cert_pem, "key_pem": self.tls.key_pem}
        return {
            "version": STATE_VERSION,
            "saved_at": time.time(),
            "created_at": self.created_at,
            "scenario": self.scenario.to_json(),
            "speed": self.clock.speed,
            "project": self.project,
            "projects": self.projects,
            "account": self.account,
            "token": self.token,
            "revoked_tokens": sorted(self.revoked_tokens),
            "services": self.services,
            "plain_http": self.plain_http,
            "tls": tls,
            "clusters": clusters,
            "operations": [dataclasses.asdict(op) for op in self.operations.values()],
        }

    async def save(self) -> None:
        if not self.persist or self._save_lock is None:
            return
        async with self._save_lock:
            self._dirty = False
            text = json.dumps(self._snapshot(), separators=(",", ":"))
            await asyncio.to_thread(_atomic_write, self.state_file, text)

    def mark_dirty(self) -> None:
        self._dirty = True

    async def _saver(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.5)
            if self._dirty or (self.clusters and time.monotonic() - last > 10):
                try:
                    await self.save()
                    last = time.monotonic()
                except Exception:  # noqa: BLE001 - keep the world running, say so in the log
                    log.exception("saving the simulated world")

    async def _ticker(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.advance()
            except Exception:  # noqa: BLE001
                log.exception("advancing the simulated world")

    # --- files for clients -------------------------------------------------------------------
    def endpoints(self) -> dict:
        clusters = {}
        for key, c in self.clusters.items():
            sim = self.sims.get(key)
            endpoint = sim.endpoint if sim and sim.k8s_port else None
            clusters[key] = {
                "endpoint": (sim.api_url if self.plain_http else endpoint) if endpoint else None,
                "api_url": sim.api_url if sim else None,
                "kubeconfig": str(self.kubeconfig_path(c)) if endpoint else None,
                "gateway_url": sim.gateway_url if sim else None,
                "status": c.status,
            }
        return {
            "pid": os.getpid(),
            "google_api": self.google_url,
            "control": f"{self.google_url}/_emu",
            "token": self.token,
            "account": self.account,
            "credentials": self.adc_info(),
            "speed": self.clock.speed,
            "scenario": self.scenario.name,
            "project": self.project,
            "gcloud_config": str(self.gcloud_dir),
            "state_dir": str(self.state_dir),
            "plain_http": self.plain_http,
            "clusters": clusters,
        }

    def adc_info(self) -> dict:
        """What the simulated Application Default Credentials are (endpoints.json "credentials"): the
        ADC file's type and its quota project (None: user credentials without one)."""
        sc = self.scenario
        if sc.credentials == "service_account":
            return {"type": "service_account", "quota_project_id": None}
        return {"type": "authorized_user", "quota_project_id": self.project if sc.adc_quota_project else None}

    def kubeconfig_path(self, c: Cluster) -> Path:
        return self.state_dir / f"kubeconfig-{c.name}"

    def write_files(self, gcloud: bool = True) -> None:
        """The gcloud config dir and the kubeconfigs, then (last, atomically) endpoints.json, which
        names them: whenever endpoints.json exists, every path in it does."""
        if not self._started or not self._files_ready:
            return
        if gcloud or not (self.gcloud_dir / "configurations" / "config_default").is_file():
            self._write_gcloud_config()
        for c in self.clusters.values():
            sim = self.sims.get(c.key)
            if sim and sim.k8s_port:
                self._write_kubeconfig(c, sim)
        _atomic_write(self.endpoints_file, json.dumps(self.endpoints(), indent=2) + "\n")

    def _write_gcloud_config(self) -> None:
        """DIR/gcloud: a gcloud config dir (CLOUDSDK_CONFIG) whose API endpoints point here and whose
        access token is the world's; nothing in it makes gcloud contact Google. Settings the user
        added with `gcloud config set` are kept; the world's own keys are rewritten (new port)."""
        import configparser

        d = self.gcloud_dir
        (d / "configurations").mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
        token_file = d / "token"
        _atomic_write(token_file, self.token)
        base = self.google_url + "/"
        ini_path = d / "configurations" / "config_default"
        ini = configparser.ConfigParser(interpolation=None)
        try:
            ini.read(ini_path)
        except configparser.Error:
            ini = configparser.ConfigParser(interpolation=None)
        ours = {
            "core": {"project": self.project, "account": self.account, "disable_usage_reporting": "true",
                     "check_gce_metadata": "false"},
            "auth": {"access_token_file": str(token_file)},
            "api_endpoint_overrides": {"container": base, "serviceusage": base, "cloudresourcemanager": base,
                                       "cloudquotas": base, "compute": f"{self.google_url}/compute/v1/"},
            "component_manager": {"disable_update_check": "true"},
            "survey": {"disable_prompts": "true"},
        }
        defaults = {"compute": {"zone": self._default_zone(), "region": region_of(self._default_zone())}}
        for section, values in ours.items():
            if not ini.has_section(section):
                ini.add_section(section)
            for k, v in values.items():
                ini.set(section, k, v)
        for section, values in defaults.items():
            if not ini.has_section(section):
                ini.add_section(section)
            for k, v in values.items():
                if not ini.has_option(section, k):
                    ini.set(section, k, v)
        import io

        buf = io.StringIO()
        ini.write(buf)
        _atomic_write(ini_path, buf.getvalue())
        _atomic_write(d / "active_config", "default")

    def _default_zone(self) -> str:
        from ..config import DEFAULTS

        return DEFAULTS["zone"]

    def _write_kubeconfig(self, c: "Cluster", sim: ClusterSim) -> None:
        """A kubeconfig kubectl uses as is: server, CA data, the world's bearer token."""
        import yaml

        ctx = f"gke_{c.project}_{c.location}_{c.name}"
        cluster: dict[str, Any] = {"server": sim.api_url}
        if not self.plain_http and self.tls is not None:
            cluster["certificate-authority-data"] = _ca_b64(self.tls)
        doc = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": ctx, "cluster": cluster}],
            "users": [{"name": ctx, "user": {"token": self.token}}],
            "contexts": [{"name": ctx, "context": {"cluster": ctx, "user": ctx}}],
            "current-context": ctx,
        }
        _atomic_write(self.kubeconfig_path(c), yaml.safe_dump(doc, sort_keys=False))

    def endpoints_changed(self) -> None:
        self.mark_dirty()
        if self._started:
            try:
                self.write_files(gcloud=False)
            except OSError:
                log.exception("writing endpoints.json")

    # --- auth --------------------------------------------------------------------------------
    def check_token(self, header: str | None, allow_revoked: bool = False) -> None:
        if not self.token:
            return
        unauth = GoogleError(401, "UNAUTHENTICATED",
                             "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                             "login cookie or other valid authentication credential. See "
                             "https://developers.google.com/identity/sign-in/web/devconsole-project.")
        if not header or not header.lower().startswith("bearer "):
            raise unauth
        tok = header.split(None, 1)[1].strip()
        if tok != self.token:
            raise unauth
        if tok in self.revoked_tokens and not allow_revoked:
            raise unauth

    def revoke_token(self) -> None:
        self.revoked_tokens.add(self.token)
        self.mark_dirty()

    def restore_token(self) -> None:
        self.revoked_tokens.clear()
        self.mark_dirty()

    def login(self) -> str:
        """A new sign-in (`rhaii-tui sim login`, the simulated `gcloud auth application-default
        login`): a fresh token that every Google and Kubernetes API accepts; the old one stops
        working (a revoked one stays revoked). endpoints.json, the kubeconfigs and the gcloud
        config dir get the new token."""
        self.token = "sim-" + secrets.token_urlsafe(24)
        for sim in self.sims.values():
            server = getattr(sim, "server", None)
            if server is not None:
                server.token = self.token
        self.mark_dirty()
        if self._started:
            try:
                self.write_files()
            except OSError:
                log.exception("writing the new token to endpoints.json")
        return self.token

    # --- projects, services, permissions -----------------------------------------------------
    def project_id(self, ref: str) -> str:
        """Project id for an id or number; unknown → 403 (Google does not say whether it exists)."""
        if ref in self.projects:
            return ref
        for pid, num in self.projects.items():
            if num == ref:
                return pid
        raise GoogleError(403, "PERMISSION_DENIED",
                          f"Permission denied on resource project {ref}.",
                          [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "CONSUMER_INVALID",
                            "domain": "googleapis.com",
                            "metadata": {"service": "container.googleapis.com", "consumer": f"projects/{ref}"}}])

    def require_service(self, project: str, service: str, title: str) -> None:
        if self.services.get(service, "ENABLED") != "ENABLED":
            num = self.projects[project]
            raise GoogleError(
                403, "PERMISSION_DENIED",
                f"{title} has not been used in project {num} before or it is disabled. Enable it by visiting "
                f"https://console.developers.google.com/apis/api/{service}/overview?project={num} then retry. "
                "If you enabled this API recently, wait a few minutes for the action to propagate to our "
                "systems and retry.",
                [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "SERVICE_DISABLED",
                  "domain": "googleapis.com",
                  "metadata": {"service": service, "consumer": f"projects/{num}"}}])

    def require_permission(self, project: str, permission: str) -> None:
        if not self.scenario.permits(permission):
            raise GoogleError(403, "PERMISSION_DENIED",
                              f"Required \"{permission}\" permission(s) for \"projects/{project}\".",
                              [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "IAM_PERMISSION_DENIED",
                                "domain": "container.googleapis.com",
                                "metadata": {"permission": permission, "resource": f"projects/{project}"}}])

    def set_service_state(self, service: str, enabled: bool) -> None:
        self.services[service] = "ENABLED" if enabled else "DISABLED"
        self.mark_dirty()

    # --- quota -------------------------------------------------------------------------------
    def tpu_quota(self, region: str, spot: bool = False) -> int:
        if region not in V6E_REGIONS:
            return 0
        return self.scenario.preemptible_chips if spot else self.scenario.quota_chips

    def tpu_chips_in_use(self, project: str, region: str, spot: bool, exclude: tuple[str, str] | None = None) -> int:
        used = 0
        for c in self.clusters.values():
            if c.project != project or region_of(c.location) != region:
                continue
            for p in c.pools.values():
                if p.tpu_chips_per_node == 0 or p.spot != spot or (c.key, p.name) == exclude:
                    continue
                count = p.nodes if p.status in ("ERROR", "RUNNING_WITH_ERROR") else max(p.target, p.nodes)
                used += count * p.tpu_chips_per_node
        return used

    def cpus_in_use(self, project: str, region: str) -> int:
        used = 0
        for c in self.clusters.values():
            if c.project == project and region_of(c.location) == region:
                for p in c.pools.values():
                    if p.mt and not p.mt.is_tpu:
                        used += p.nodes * p.mt.cpus
        return used

    # --- lookups -----------------------------------------------------------------------------
    def cluster(self, project: str, location: str, name: str) -> Cluster:
        c = self.clusters.get(f"{project}/{location}/{name}")
        if c is None:
            raise GoogleError(404, "NOT_FOUND", f"Not found: projects/{project}/locations/{location}/clusters/{name}.")
        return c

    def node_pool(self, c: Cluster, name: str) -> NodePool:
        p = c.pools.get(name)
        if p is None:
            raise GoogleError(404, "NOT_FOUND",
                              f"Not found: projects/{c.project}/locations/{c.location}/clusters/{c.name}/nodePools/{name}.")
        return p

    def _check_location(self, location: str) -> None:
        if location not in ZONES and location not in REGIONS:
            raise GoogleError(400, "INVALID_ARGUMENT", f"Location \"{location}\" does not exist.")

    def _busy(self, c: Cluster) -> None:
        for op in self.operations.values():
            if op.status != "DONE" and op.project == c.project and op.location == c.location and op.cluster == c.name:
                # GKE runs one cluster-level operation at a time and refuses a second one like this
                doing = {"CREATE_CLUSTER": "creating cluster", "DELETE_CLUSTER": "deleting cluster",
                         "CREATE_NODE_POOL": "creating a node pool for cluster",
                         "DELETE_NODE_POOL": "deleting a node pool for cluster",
                         "SET_NODE_POOL_SIZE": "resizing a node pool for cluster"}.get(op.type, "upgrading cluster")
                raise GoogleError(400, "FAILED_PRECONDITION",
                                  f"Operation {op.name} is currently {doing} {c.name}. Please wait and try again "
                                  "once it is done.")
        if c.status not in ("RUNNING",):
            raise GoogleError(400, "FAILED_PRECONDITION",
                              f"Cluster {c.name} is not ready (status {c.status}); retry when it is RUNNING.")

    # --- node pool parsing -------------------------------------------------------------------
    def _parse_pool(self, body: dict, location: str) -> NodePool:
        name = body.get("name") or ""
        if not name:
            raise GoogleError(400, "INVALID_ARGUMENT", "Node pool name must be specified.")
        cfg = dict(body.get("config") or {})
        mt_name = cfg.get("machineType") or "e2-medium"
        mt = MACHINE_TYPES.get(mt_name)
        if mt is None:
            raise GoogleError(400, "INVALID_ARGUMENT", f"Invalid machine type \"{mt_name}\": not found in zone {location}.")
        zone = location if location in ZONES else f"{location}-a"
        if mt.is_tpu and zone not in V6E_ZONES:
            raise GoogleError(400, "INVALID_ARGUMENT",
                              f"Machine type \"{mt_name}\" is not available in zone \"{zone}\": TPU v6e is offered in "
                              f"{', '.join(V6E_ZONES)}.")
        from .zone_machines import zone_offers

        if not zone_offers(zone, mt_name, self.scenario):
            raise GoogleError(400, "INVALID_ARGUMENT", f"Invalid machine type \"{mt_name}\": not found in zone {zone}.")
        try:
            count = int(body.get("initialNodeCount", 0))  # proto3 JSON leaves a 0 out
        except (TypeError, ValueError):
            raise GoogleError(400, "INVALID_ARGUMENT", "Invalid value for field 'nodePool.initialNodeCount'.") from None
        if count < 0:
            raise GoogleError(400, "INVALID_ARGUMENT", "Node pool initialNodeCount must be non-negative.")
        defaults = {
            "machineType": mt_name, "diskSizeGb": 100, "diskType": "hyperdisk-balanced" if mt.is_tpu else "pd-balanced",
            "imageType": "COS_CONTAINERD", "serviceAccount": "default",
            "oauthScopes": ["https://www.googleapis.com/auth/devstorage.read_only",
                            "https://www.googleapis.com/auth/logging.write",
                            "https://www.googleapis.com/auth/monitoring",
                            "https://www.googleapis.com/auth/service.management.readonly",
                            "https://www.googleapis.com/auth/servicecontrol",
                            "https://www.googleapis.com/auth/trace.append"],
            "metadata": {"disable-legacy-endpoints": "true"},
        }
        spot = bool(cfg.get("spot") or cfg.get("preemptible"))
        extra = {k: v for k, v in body.items() if k not in ("name", "config", "initialNodeCount", "status",
                                                             "statusMessage", "selfLink", "version",
                                                             "instanceGroupUrls", "conditions", "etag")}
        return NodePool(name=name, machine_type=mt_name, initial_count=count, target=count, spot=spot,
                        create_time=_ts(self.clock.now()), config={**defaults, **cfg}, extra=extra)

    def pool_zone(self, c: Cluster, pool: NodePool) -> str:
        """The zone a pool's nodes live in: its first `locations` entry, else the cluster's zone."""
        locs = pool.extra.get("locations")
        if isinstance(locs, list) and locs and isinstance(locs[0], str) and locs[0] in ZONES:
            return locs[0]
        return c.location if c.location in ZONES else f"{c.location}-a"

    def _pool_problem(self, c: Cluster, pool: NodePool, add: int) -> tuple[str, str, str, float] | None:
        """Why adding `add` nodes to a TPU pool fails now: (kind, code, message, when) or None."""
        if add <= 0 or pool.tpu_chips_per_node == 0:
            return None
        zone = self.pool_zone(c, pool)
        region = region_of(zone)
        limit = self.tpu_quota(region, pool.spot)
        used = self.tpu_chips_in_use(c.project, region, pool.spot, exclude=(c.key, pool.name))
        need = (pool.nodes + add) * pool.tpu_chips_per_node
        node = node_name(c.name, pool.name, "xxxx")
        if used + need > limit:
            metric = "PREEMPTIBLE_TPU_V6E" if pool.spot else "TPUS_PER_TPU_FAMILY"
            msg = (f"Insufficient quota to satisfy the request: Not all instances running in IGM after "
                   f"{_fmt_duration(T_QUOTA_FAIL)}. Expected {pool.nodes + add}, running {pool.nodes}, transitioning "
                   f"{add}. Current errors: [QUOTA_EXCEEDED]: Instance '{node}' creation failed: Quota '{metric}' "
                   f"exceeded.  Limit: {float(limit)} in region {region}. Requested {float(used + need)} "
                   f"(tpu_family=CT6E).")
            return ("quota", "GCE_QUOTA_EXCEEDED", msg, T_QUOTA_FAIL)
        if zone in self.scenario.stockout_zones:
            when = self.scenario.stockout_fail_seconds
            msg = (f"Not all instances running in IGM after {_fmt_duration(when)}. Expected "
                   f"{pool.nodes + add}, running {pool.nodes}, transitioning {add}. Current errors: "
                   f"[ZONE_RESOURCE_POOL_EXHAUSTED]: Instance '{node}' creation failed: The zone "
                   f"'projects/{c.project}/zones/{zone}' does not have enough resources available to fulfill the "
                   f"request.  Try a different zone, or try again later. (ZONE_RESOURCE_POOL_EXHAUSTED)")
            return ("stockout", "GCE_STOCKOUT", msg, when)
        return None

    def _mig_error_steps(self, c: Cluster, pool: NodePool, first: int, last: int, code: str, start: float,
                         until: float) -> list:
        """Plan steps for the pool's managed instance group failing to create instances first..last-1
        (0-based): the first attempt T_MIG_FIRST_ERROR after `start`, retried every T_MIG_RETRY while
        before `until` (Compute's listErrors shows each attempt)."""
        zone = self.pool_zone(c, pool)
        names = [mig_instance_name(c.name, pool.name, i) for i in range(first, last)]
        if code == "QUOTA_EXCEEDED":
            metric = "PREEMPTIBLE_TPU_V6E" if pool.spot else "TPUS_PER_TPU_FAMILY"
            msg = (f"Quota '{metric}' exceeded.  Limit: {float(self.tpu_quota(region_of(zone), pool.spot))} in "
                   f"region {region_of(zone)}.")
        else:
            msg = (f"The zone 'projects/{c.project}/zones/{zone}' does not have enough resources available to "
                   f"fulfill the request.  Try a different zone, or try again later.")
        steps = []
        t = min(start + T_MIG_FIRST_ERROR, until - 0.5)
        while t < until and names:
            steps.append([t, "mig_error", {"pool": pool.name, "zone": zone, "code": code, "message": msg,
                                            "instances": names}])
            t += T_MIG_RETRY
        return steps

    def _tpu_cap(self, pool: NodePool) -> int:
        cap = self.scenario.max_tpu_nodes
        if pool.tpu_chips_per_node and cap is not None:
            return min(pool.target, cap)
        return pool.target

    def _grow_plan(self, c: Cluster, pool: NodePool, start_offset: float, duration: float, from_nodes: int,
                   fail_status: str = "ERROR") -> tuple[list, float]:
        """Plan steps that grow a pool from `from_nodes` to its target over `duration` sim seconds,
        nodes appearing progressively; a quota/stockout problem fails it fast; a capacity cap
        (max_tpu_nodes) stops short and fails at the end. Returns (steps, end offset)."""
        add = pool.target - from_nodes
        problem = self._pool_problem(c, pool, add)
        steps: list = []
        if problem:
            kind, code, msg, when = problem
            t = start_offset + when
            steps += self._mig_error_steps(c, pool, from_nodes, pool.target,
                                           "QUOTA_EXCEEDED" if kind == "quota" else "ZONE_RESOURCE_POOL_EXHAUSTED",
                                           start_offset, t)
            if fail_status == "ERROR":
                steps.append([t, "pool_status", {"pool": pool.name, "status": "ERROR", "message": msg,
                                                 "condition": code}])
            else:  # a failed resize leaves the pool as it was
                steps.append([t, "pool_target", {"pool": pool.name, "count": from_nodes}])
                steps.append([t, "pool_status", {"pool": pool.name, "status": fail_status, "message": ""}])
            steps.append([t, "fail", {"message": msg, "code": code, "pool": pool.name}])
            return steps, t
        cap = self._tpu_cap(pool)
        reach = max(from_nodes, cap)
        n_new = reach - from_nodes
        for k in range(1, n_new + 1):
            frac = 0.5 + 0.5 * k / max(1, n_new) if pool.tpu_chips_per_node else 1.0
            t = start_offset + duration * frac
            steps.append([t, "pool_nodes", {"pool": pool.name, "count": from_nodes + k}])
        end = start_offset + duration + 5
        if reach < pool.target:
            # the zone gives no more: the MIG keeps retrying the missing instances, GKE gives up late
            end = start_offset + max(duration + 5, self.scenario.stockout_fail_seconds)
            steps += self._mig_error_steps(c, pool, reach, pool.target, "ZONE_RESOURCE_POOL_EXHAUSTED",
                                           start_offset, end)
            zone = self.pool_zone(c, pool)
            node = node_name(c.name, pool.name, "xxxx")
            msg = (f"Not all instances running in IGM after {_fmt_duration(end - start_offset)}. Expected {pool.target}, "
                   f"running {reach}, transitioning {pool.target - reach}. Current errors: "
                   f"[ZONE_RESOURCE_POOL_EXHAUSTED]: Instance '{node}' creation failed: The zone "
                   f"'projects/{c.project}/zones/{zone}' does not have enough resources available to fulfill the "
                   f"request.  Try a different zone, or try again later. (ZONE_RESOURCE_POOL_EXHAUSTED)")
            steps.append([end, "pool_status", {"pool": pool.name, "status": "RUNNING_WITH_ERROR", "message": msg,
                                               "condition": "GCE_STOCKOUT"}])
            steps.append([end, "fail", {"message": msg, "code": "GCE_STOCKOUT", "pool": pool.name}])
        else:
            steps.append([end, "pool_status", {"pool": pool.name, "status": "RUNNING", "message": ""}])
        return steps, end

    # --- operations --------------------------------------------------------------------------
    _RANK = {"cluster_status": 1, "done": 2, "fail": 2}

    def _new_op(self, c: Cluster, op_type: str, pool: str | None, plan: list) -> Operation:
        name = f"operation-{int(time.time() * 1000)}-{secrets.token_hex(4)}"
        plan = sorted(plan, key=lambda s: (s[0], self._RANK.get(s[1], 0)))
        op = Operation(name=name, project=c.project, location=c.location, type=op_type, cluster=c.name,
                       pool=pool, start=self.clock.now(), plan=plan)
        self.operations[name] = op
        self.mark_dirty()
        return op

    @staticmethod
    def _terminate(steps: list, end: float, ok_status: str = "RUNNING", fail_status: str = "RUNNING") -> list:
        """Close a plan: on a `fail` step the cluster takes `fail_status` and the operation ends with
        the error; otherwise the cluster is `ok_status` and the operation is done at `end`."""
        fail = [s for s in steps if s[1] == "fail"]
        body = [s for s in steps if s[1] != "fail"]
        if fail:
            t, _, args = fail[0]
            msg = args["message"] if fail_status == "ERROR" else ""
            return [s for s in body if s[0] <= t] + [
                [t, "cluster_status", {"status": fail_status, "message": msg}], fail[0]]
        return body + [[end, "cluster_status", {"status": ok_status, "message": ""}], [end, "done", {}]]

    def create_cluster(self, project: str, location: str, body: dict) -> Operation:
        project = self.project_id(project)
        self.require_service(project, "container.googleapis.com", "Kubernetes Engine API")
        self.require_permission(project, "container.clusters.create")
        self._check_location(location)
        spec = body.get("cluster") or {}
        name = spec.get("name") or ""
        if not re.match(CLUSTER_NAME_RE, name):
            raise GoogleError(400, "INVALID_ARGUMENT",
                              f"Invalid value for field 'cluster.name': {name!r}. Must be a match of regex "
                              "'(?:[a-z](?:[-a-z0-9]{0,38}[a-z0-9])?)' (only alphanumerics and '-' allowed, must "
                              "start with a letter and end with an alphanumeric, and must be no longer than 40 "
                              "characters).")
        key = f"{project}/{location}/{name}"
        if key in self.clusters:
            raise GoogleError(409, "ALREADY_EXISTS",
                              f"Already exists: projects/{project}/locations/{location}/clusters/{name}.")
        pool_bodies = list(spec.get("nodePools") or [])
        if not pool_bodies:
            count = spec.get("initialNodeCount")
            node_config = spec.get("nodeConfig") or {}
            if count is None and not node_config:
                # the guide's default pool: n1-standard-4 x2, autoscaling 1-5
                pool_bodies = [{"name": "default-pool", "initialNodeCount": 2,
                                "config": {"machineType": "n1-standard-4"},
                                "autoscaling": {"enabled": True, "minNodeCount": 1, "maxNodeCount": 5}}]
            else:
                pool_bodies = [{"name": "default-pool", "initialNodeCount": int(count or 3),
                                "config": node_config or {"machineType": "e2-medium"}}]
        pools: dict[str, NodePool] = {}
        for pb in pool_bodies:
            p = self._parse_pool(pb, location)
            if p.name in pools:
                raise GoogleError(400, "INVALID_ARGUMENT", f"Duplicate node pool name {p.name!r}.")
            pools[p.name] = p
        extra = {k: v for k, v in spec.items() if k not in (
            "name", "nodePools", "initialNodeCount", "nodeConfig", "status", "statusMessage", "endpoint",
            "masterAuth", "selfLink", "zone", "location", "currentMasterVersion", "currentNodeVersion",
            "createTime", "currentNodeCount", "id", "nodeIpv4CidrSize", "servicesIpv4Cidr", "etag",
            "instanceGroupUrls", "conditions")}
        c = Cluster(project=project, location=location, name=name, status="PROVISIONING",
                    create_time=_ts(self.clock.now()), id=secrets.token_hex(16), pools=pools, extra=extra)
        self.clusters[key] = c
        sim = ClusterSim(self, key, plain_http=self.plain_http)
        sim.create_base_objects()
        self.sims[key] = sim
        steps: list = [[T_CONTROL_PLANE, "control_plane", {}]]
        end = T_CLUSTER_DONE
        for p in pools.values():
            if p.tpu_chips_per_node:
                pool_steps, pend = self._grow_plan(c, p, T_CLUSTER_DONE, T_TPU_POOL, 0)
                steps += pool_steps
                end = max(end, pend)
            else:
                steps.append([T_DEFAULT_POOL, "pool_nodes", {"pool": p.name, "count": p.target}])
                steps.append([T_DEFAULT_POOL, "pool_status", {"pool": p.name, "status": "RUNNING", "message": ""}])
        # a pool that cannot be created leaves the cluster in ERROR (delete it and create it elsewhere)
        return self._new_op(c, "CREATE_CLUSTER", None, self._terminate(steps, end, fail_status="ERROR"))

    def delete_cluster(self, project: str, location: str, name: str) -> Operation:
        project = self.project_id(project)
        self.require_service(project, "container.googleapis.com", "Kubernetes Engine API")
        self.require_permission(project, "container.clusters.delete")
        c = self.cluster(project, location, name)
        if c.status == "STOPPING":
            raise GoogleError(400, "FAILED_PRECONDITION", f"Cluster {name} is already being deleted.")
        for op in self.operations.values():  # deleting cancels running work on the cluster
            if op.status != "DONE" and op.cluster == name and op.location == location and op.project == project:
                op.status, op.end = "DONE", self.clock.now()
                op.error = {"code": 10, "message": "Operation was aborted: the cluster is being deleted."}
        c.status = "STOPPING"
        for p in c.pools.values():
            p.status = "STOPPING"
        plan = [[T_CLUSTER_DELETE, "remove_cluster", {}], [T_CLUSTER_DELETE, "done", {}]]
        return self._new_op(c, "DELETE_CLUSTER", None, plan)

    def create_node_pool(self, project: str, location: str, cluster: str, body: dict) -> Operation:
        project = self.project_id(project)
        self.require_service(project, "container.googleapis.com", "Kubernetes Engine API")
        self.require_permission(project, "container.clusters.update")
        c = self.cluster(project, location, cluster)
        pool = self._parse_pool(body.get("nodePool") or {}, location)
        if pool.name in c.pools:
            raise GoogleError(409, "ALREADY_EXISTS", f"Already exists: projects/{project}/locations/{location}/"
                              f"clusters/{cluster}/nodePools/{pool.name}.")
        self._busy(c)
        c.pools[pool.name] = pool
        c.status = "RECONCILING"
        duration = T_TPU_POOL if pool.tpu_chips_per_node else T_CPU_POOL
        steps, end = self._grow_plan(c, pool, 0.0, duration, 0)
        return self._new_op(c, "CREATE_NODE_POOL", pool.name, self._terminate(steps, end))

    def set_node_pool_size(self, project: str, location: str, cluster: str, pool_name: str, count: Any) -> Operation:
        project = self.project_id(project)
        self.require_service(project, "container.googleapis.com", "Kubernetes Engine API")
        self.require_permission(project, "container.clusters.update")
        c = self.cluster(project, location, cluster)
        pool = self.node_pool(c, pool_name)
        try:
            count = int(count)
        except (TypeError, ValueError):
            raise GoogleError(400, "INVALID_ARGUMENT", "Invalid value for field 'nodeCount'.") from None
        if count < 0:
            raise GoogleError(400, "INVALID_ARGUMENT", "nodeCount must be non-negative.")
        self._busy(c)
        if pool.status in ("ERROR", "STOPPING", "PROVISIONING"):
            raise GoogleError(400, "FAILED_PRECONDITION",
                              f"Node pool {pool_name} is in status {pool.status}; it cannot be resized.")
        c.status = "RECONCILING"
        from_nodes = pool.nodes
        pool.target = count
        if count >= from_nodes:
            duration = 600.0 if pool.tpu_chips_per_node else 90.0
            steps, end = self._grow_plan(c, pool, 0.0, duration, from_nodes, fail_status="RUNNING")
        else:
            end = T_SCALE_DOWN + 5
            steps = [[T_SCALE_DOWN, "pool_nodes", {"pool": pool.name, "count": count}],
                     [end, "pool_status", {"pool": pool.name, "status": "RUNNING", "message": ""}]]
        return self._new_op(c, "SET_NODE_POOL_SIZE", pool.name, self._terminate(steps, end))

    def delete_node_pool(self, project: str, location: str, cluster: str, pool_name: str) -> Operation:
        project = self.project_id(project)
        self.require_service(project, "container.googleapis.com", "Kubernetes Engine API")
        self.require_permission(project, "container.clusters.update")
        c = self.cluster(project, location, cluster)
        pool = self.node_pool(c, pool_name)
        self._busy(c)
        pool.status = "STOPPING"
        c.status = "RECONCILING"
        plan = [[T_POOL_DELETE, "pool_nodes", {"pool": pool.name, "count": 0}],
                [T_POOL_DELETE, "remove_pool", {"pool": pool.name}],
                [T_POOL_DELETE, "cluster_status", {"status": "RUNNING", "message": ""}],
                [T_POOL_DELETE, "done", {}]]
        return self._new_op(c, "DELETE_NODE_POOL", pool.name, plan)

    def operation(self, project: str, location: str, name: str) -> Operation:
        project = self.project_id(project)
        op = self.operations.get(name)
        if op is None or op.project != project or (location not in ("-", op.location)):
            raise GoogleError(404, "NOT_FOUND", f"Not found: projects/{project}/locations/{location}/operations/{name}.")
        return op

    def list_operations(self, project: str, location: str) -> list[Operation]:
        project = self.project_id(project)
        return [op for op in self.operations.values()
                if op.project == project and location in ("-", op.location)]

    def list_clusters(self, project: str, location: str) -> list[Cluster]:
        project = self.project_id(project)
        self.require_service(project, "container.googleapis.com", "Kubernetes Engine API")
        return [c for c in self.clusters.values()
                if c.project == project and (location == "-" or c.location == location)]

    # --- applying plans ----------------------------------------------------------------------
    async def advance(self) -> None:
        """Apply every plan step whose time has come."""
        if self._advance_lock is None:
            return
        async with self._advance_lock:
            for op in list(self.operations.values()):
                if op.status == "DONE":
                    continue
                elapsed = self.clock.sim_elapsed(op.start)
                while op.status != "DONE" and op.applied < len(op.plan) and op.plan[op.applied][0] <= elapsed:
                    offset, action, args = op.plan[op.applied]
                    op.applied += 1
                    self.mark_dirty()
                    try:
                        await self._apply(op, action, args, offset)
                    except Exception:  # noqa: BLE001 - one broken step must not stop the world
                        log.exception("applying %s of %s", action, op.name)

    async def _apply(self, op: Operation, action: str, args: dict, offset: float) -> None:
        key = f"{op.project}/{op.location}/{op.cluster}"
        c = self.clusters.get(key)
        sim = self.sims.get(key)
        at = self.clock.at(op.start, offset)
        if action in ("done", "fail"):
            op.status = "DONE"
            op.end = min(at, self.clock.now())
            if action == "fail":
                op.error = {"code": 8, "message": args["message"]}
                cond = {"code": args.get("code", "GCE_STOCKOUT"), "message": args["message"],
                        "canonicalCode": "RESOURCE_EXHAUSTED"}
                if args.get("pool"):
                    op.nodepool_conditions = [cond]
                else:
                    op.cluster_conditions = [cond]
            return
        if c is None:
            return
        if action == "control_plane":
            c.control_plane_up = True
            if sim is not None:
                await sim.start_control_plane()
            self.endpoints_changed()
        elif action == "cluster_status":
            if c.status != "STOPPING":
                c.status = args["status"]
                c.status_message = args.get("message", "")
            if args.get("message") and args["status"] == "ERROR":
                c.extra.setdefault("conditions", [{"code": "GCE_STOCKOUT", "message": args["message"],
                                                   "canonicalCode": "RESOURCE_EXHAUSTED"}])
            self.endpoints_changed()
        elif action == "pool_nodes":
            pool = c.pools.get(args["pool"])
            if pool is None:
                return
            pool.nodes = int(args["count"])
            if sim is not None:
                sim.sync_nodes(pool.name, pool.nodes, pool.machine_type,
                               labels=(pool.config.get("labels") or None),
                               taints=self._k8s_taints(pool))
        elif action == "mig_error":
            pool = c.pools.get(args["pool"])
            if pool is not None:
                for inst in args.get("instances") or []:
                    pool.mig_errors.append({"instance": inst, "zone": args.get("zone", c.location),
                                            "code": args["code"], "message": args["message"], "at": at})
                del pool.mig_errors[:-500]  # listErrors keeps a bounded history
        elif action == "pool_target":
            pool = c.pools.get(args["pool"])
            if pool is not None:
                pool.target = int(args["count"])
        elif action == "pool_status":
            pool = c.pools.get(args["pool"])
            if pool is None:
                return
            pool.status = args["status"]
            pool.status_message = args.get("message", "")
            pool.conditions = ([{"code": args["condition"], "message": args["message"],
                                 "canonicalCode": "RESOURCE_EXHAUSTED"}] if args.get("condition") else [])
        elif action == "remove_pool":
            pool = c.pools.pop(args["pool"], None)
            if pool is not None and sim is not None:
                sim.sync_nodes(pool.name, 0, pool.machine_type)
        elif action == "remove_cluster":
            self.clusters.pop(key, None)
            sim = self.sims.pop(key, None)
            if sim is not None:
                await sim.stop()
            try:
                self.kubeconfig_path(c).unlink()
            except OSError:
                pass
            self.endpoints_changed()

    def _k8s_taints(self, pool: NodePool) -> list | None:
        mt = pool.mt
        extra = []
        for t in pool.config.get("taints") or []:
            effect = {"NO_SCHEDULE": "NoSchedule", "PREFER_NO_SCHEDULE": "PreferNoSchedule",
                      "NO_EXECUTE": "NoExecute"}.get(str(t.get("effect", "")), t.get("effect", "NoSchedule"))
            extra.append({"key": t.get("key"), "value": t.get("value", ""), "effect": effect})
        if not extra:
            return None
        base = [{"key": "google.com/tpu", "value": "present", "effect": "NoSchedule"}] if mt and mt.is_tpu else []
        return base + [t for t in extra if t["key"] != "google.com/tpu"]

    # --- helpers for scenario building and tests ---------------------------------------------
    async def finish_operation(self, op: Operation, backdate: bool = True) -> Operation:
        """Move an operation's start back so all its steps are due, and apply them (prebuilt
        scenarios, tests): the operation is DONE, as if it had started long enough ago."""
        shift = self.clock.wall(op.duration + 1.0)
        op.start -= shift
        if op.type == "CREATE_CLUSTER":
            c = self.clusters.get(f"{op.project}/{op.location}/{op.cluster}")
            if c is not None:
                c.create_time = _ts(op.start)
        await self.advance()
        return op

    async def fast_forward(self, sim_seconds: float) -> None:
        """Let `sim_seconds` of simulated time pass at once: running operations and the clusters'
        controllers move on by that much."""
        shift = self.clock.wall(sim_seconds)
        self.clock.skipped += sim_seconds
        for op in self.operations.values():
            if op.status != "DONE":
                op.start -= shift
        await self.advance()
        await self.settle(sim_seconds)

    async def settle(self, sim_seconds: float = 3600.0) -> None:
        """Fast-forward every cluster's controllers by `sim_seconds` and let them react."""
        from .cluster import _maybe_await

        for sim in list(self.sims.values()):
            if sim.controllers is not None and hasattr(sim.controllers, "fast_forward"):
                await _maybe_await(sim.controllers.fast_forward(sim_seconds))
        for _ in range(3):
            await asyncio.sleep(0.01)

    def sim_for(self, key: str | None = None) -> ClusterSim:
        if key is None:
            if len(self.sims) != 1:
                raise KeyError("name the cluster: the world has " + str(len(self.sims)))
            return next(iter(self.sims.values()))
        return self.sims[key]

    def state_summary(self) -> dict:
        out = {"scenario": self.scenario.to_json(), "speed": self.clock.speed, "project": self.project,
               "token_revoked": self.token in self.revoked_tokens, "services": self.services,
               "clusters": {}, "operations": []}
        for key, c in self.clusters.items():
            sim = self.sims.get(key)
            out["clusters"][key] = {
                "status": c.status, "status_message": c.status_message, "endpoint": sim.endpoint if sim else None,
                "gateway_url": sim.gateway_url if sim else None,
                "node_pools": {p.name: {"status": p.status, "machine_type": p.machine_type, "nodes": p.nodes,
                                        "target": p.target, "message": p.status_message}
                               for p in c.pools.values()},
            }
        for op in self.operations.values():
            out["operations"].append({"name": op.name, "type": op.type, "status": op.status,
                                      "cluster": op.cluster, "pool": op.pool, "location": op.location,
                                      "error": op.error})
        return out


def _atomic_write(path: Path, text: str, mode: int = 0o600) -> None:
    # unique per writer: the saver task and a control request may write the same file at once
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
