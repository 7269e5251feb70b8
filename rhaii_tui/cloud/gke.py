"""GKE: clusters, the TPU node pool, operations, cluster access and kubeconfig.

Thin typed wrapper over `google.cloud.container_v1.ClusterManagerClient` (REST transport, from the
connection profile). Every failure becomes a `CloudError(kind, message, fix)`: a message that says
what happened and a fix that says what to do. Nothing here raises a raw client exception.

Also home of `CloudError` and the error mapping the other cloud modules share.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

from ..config import (
    DEFAULT_POOL_MACHINE_TYPE,
    TPU_ACCELERATOR,
    TPU_MACHINE_TYPE,
    TPU_POOL_NAME,
    TPU_TOPOLOGY,
    V6E_ZONES,
    region_of,
)
from .profile import ClusterAccess, ConnectionProfile, CredentialsError, report_credentials_failure
from .profile import NETWORK_FIX, cannot_reach_google, network_problem, transient_auth_error

log = logging.getLogger(__name__)

# --- errors --------------------------------------------------------------------------------------

ErrorKind = Literal["quota", "stockout", "permission", "not_found", "api_disabled", "credentials",
                    "conflict", "unavailable", "unknown", "quota_project"]
ERROR_KINDS: tuple[str, ...] = ("quota", "stockout", "permission", "not_found", "api_disabled",
                                "credentials", "conflict", "unavailable", "unknown", "quota_project")

CREDENTIALS_FIX = "Run: gcloud auth application-default login, then retry."
QUOTAS_CONSOLE = "https://console.cloud.google.com/iam-admin/quotas?project={project}"


class CloudError(Exception):
    """A cloud failure a user can act on. `kind` is one of ERROR_KINDS; `message` says what went
    wrong, `fix` what to do. Never carries secret values."""

    def __init__(self, kind: str, message: str, fix: str = "", **details: Any) -> None:
        if kind not in ERROR_KINDS:
            kind = "unknown"
        self.kind: str = kind
        self.message = message
        self.fix = fix
        self.details: dict[str, Any] = details
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.message} {self.fix}".strip() if self.fix else self.message

    def __repr__(self) -> str:
        return f"CloudError(kind={self.kind!r}, message={self.message!r}, fix={self.fix!r})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "fix": self.fix}


_STOCKOUT_RE = re.compile(
    r"ZONE_RESOURCE_POOL_EXHAUSTED|GCE_STOCKOUT|stockout|resource pool exhausted|"
    r"does not have enough resources available|insufficient capacity|no capacity|"
    r"currently unavailable in the .* zone", re.IGNORECASE)
_QUOTA_RE = re.compile(r"QUOTA_EXCEEDED|insufficient (regional |project )?quota|quota exceeded|"
                       r"exceeded quota|TPUS[_-]PER[_-]TPU[_-]FAMILY|\bquota\b", re.IGNORECASE)
_API_DISABLED_RE = re.compile(r"SERVICE_DISABLED|has not been used in project|API has not been used|"
                              r"is disabled|API not enabled|it is disabled", re.IGNORECASE)
# user ADC without a quota project calling a client-based API (Service Usage, Cloud Quotas): Google
# answers 403 with reason SERVICE_DISABLED (on gcloud's own client project), which is not the fix
_QUOTA_PROJECT_RE = re.compile(r"requires a quota project|quota project, which is not set", re.IGNORECASE)
_RATE_LIMIT_RE = re.compile(r"per minute|per second|rate limit|Read requests|Write requests|RATE_LIMIT_EXCEEDED|"
                            r"requests per", re.IGNORECASE)
_PERMISSION_RE = re.compile(r"PERMISSION_DENIED|permission|forbidden|iam\.serviceAccounts\.actAs|"
                            r"not authorized|does not have", re.IGNORECASE)


def classify_text(text: str) -> str | None:
    """The error kind a GKE/GCE message names, if it names one."""
    if not text:
        return None
    if _STOCKOUT_RE.search(text):
        return "stockout"
    if _API_DISABLED_RE.search(text):
        return "api_disabled"
    if _QUOTA_RE.search(text):
        return "quota"
    if _PERMISSION_RE.search(text):
        return "permission"
    return None


# GKE runs one cluster operation at a time: "Operation operation-... is currently creating a node pool for
# cluster X. Please wait and try again once it is done." (older: "Cluster is running incompatible operation")
_CLUSTER_BUSY_RE = re.compile(r"incompatible operation|is currently .{0,120}please wait and try again", re.I | re.S)

# google.rpc.Code -> kind (operation errors carry these numbers)
_RPC_CODE_KIND = {5: "not_found", 6: "conflict", 7: "permission", 8: "quota", 9: "unknown",
                  10: "conflict", 14: "unavailable", 4: "unavailable", 16: "credentials"}


@dataclass
class ErrorContext:
    """What the fix texts need to be specific."""

    project: str = ""
    zone: str = ""
    what: str = ""  # "create the cluster", "read the TPU quota", ...
    need_chips: int | None = None
    alternatives: tuple[str, ...] = ()

    @property
    def region(self) -> str:
        return region_of(self.zone) if self.zone else ""


def fix_for(kind: str, ctx: ErrorContext, text: str = "") -> str:
    p = ctx.project or "PROJECT"
    if kind == "credentials":
        return CREDENTIALS_FIX
    if kind == "quota_project":
        return quota_project_fix(p)
    if kind == "api_disabled":
        api = "container.googleapis.com"
        m = re.search(r"([a-z]+\.googleapis\.com)", text or "")
        if m:
            api = m.group(1)
        return (f"Enable the API: gcloud services enable {api} --project {p} "
                "(needs roles/serviceusage.serviceUsageAdmin), wait a minute, then retry.")
    if kind == "permission":
        return (f"Ask a project owner to grant your account roles/container.admin and "
                f"roles/iam.serviceAccountUser on project {p} (step 1 lists exactly what is missing), then retry.")
    if kind == "quota":
        need = f"{ctx.need_chips} chips of " if ctx.need_chips else ""
        region = ctx.region or "the region"
        return (f"Request {need}TPU v6e quota (TPUS-PER-TPU-FAMILY, tpu_family=CT6E) in {region} at "
                f"{QUOTAS_CONSOLE.format(project=p)}, or lower the number of replicas.")
    if kind == "stockout":
        alts = [z for z in (ctx.alternatives or V6E_ZONES) if z != ctx.zone]
        return (f"Zone {ctx.zone or '?'} has no free TPU v6e capacity right now (a stockout, not a quota "
                f"problem). Retry later, or choose another zone that offers v6e: {', '.join(alts)}.")
    if kind == "not_found":
        return f"Check the project id ({p}), the zone ({ctx.zone or '?'}) and the names in the config."
    if kind == "conflict":
        return ("Another operation is running on this cluster or the object already exists; wait for it to "
                "finish (the wizard reattaches to it), then retry.")
    if kind == "unavailable":
        return "Google Cloud did not answer; check your network connection and retry in a minute."
    return "Retry; if it keeps failing, check the message above in the Google Cloud console."


def quota_project_fix(project: str) -> str:
    return (f"Give your Application Default Credentials a quota project: gcloud auth application-default "
            f"set-quota-project {project or 'PROJECT'} (needs serviceusage.services.use on it, e.g. "
            "roles/serviceusage.serviceUsageConsumer), then retry.")


def _exc_text(exc: BaseException) -> str:
    msg = getattr(exc, "message", None) or str(exc)
    return " ".join(str(msg).split())[:600]


def map_error(exc: BaseException, ctx: ErrorContext | None = None) -> CloudError:
    """Any exception from a Google client or from httpx -> CloudError with a fix."""
    ctx = ctx or ErrorContext()
    if isinstance(exc, CloudError):
        return exc
    what = f"Could not {ctx.what}: " if ctx.what else ""
    if isinstance(exc, CredentialsError):
        return CloudError("credentials", f"{what}{exc}", CREDENTIALS_FIX)
    try:
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as aexc
    except ImportError:  # pragma: no cover - deps always installed
        gexc = aexc = None  # type: ignore[assignment]
    text = _exc_text(exc)
    kind = "unknown"
    if aexc is not None and isinstance(exc, aexc.GoogleAuthError) and transient_auth_error(exc):
        return cannot_reach_google(exc)  # a network blip is not expired credentials
    if aexc is not None and isinstance(exc, aexc.GoogleAuthError):
        message = f"{what}your Google credentials were refused or could not be refreshed ({text})."
        report_credentials_failure(message)
        return CloudError("credentials", message, CREDENTIALS_FIX)
    if gexc is not None and isinstance(exc, gexc.GoogleAPICallError):
        code = getattr(exc, "code", None)
        if isinstance(exc, (gexc.Unauthenticated, gexc.Unauthorized)) or code == 401:
            kind = "credentials"
        elif (isinstance(exc, gexc.Forbidden) or code == 403) and _QUOTA_PROJECT_RE.search(text):
            kind = "quota_project"
        elif isinstance(exc, gexc.Forbidden) or code == 403:
            kind = "api_disabled" if _API_DISABLED_RE.search(text) else (
                "quota" if re.search(r"QUOTA_EXCEEDED|quota exceeded", text, re.I) else "permission")
        elif isinstance(exc, gexc.NotFound):
            kind = "not_found"
        elif isinstance(exc, (gexc.Conflict, gexc.AlreadyExists)):
            kind = "conflict"
        elif isinstance(exc, (gexc.ResourceExhausted, gexc.TooManyRequests)):
            if _RATE_LIMIT_RE.search(text):
                kind = "unavailable"  # API rate limit, not a resource quota: retry later
            else:
                kind = classify_text(text) or "quota"
                if kind not in ("stockout", "quota"):
                    kind = "quota"
        elif isinstance(exc, gexc.FailedPrecondition):
            kind = classify_text(text) or "conflict"
        elif isinstance(exc, (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError,
                              gexc.GatewayTimeout, gexc.BadGateway)):
            kind = "unavailable"
        elif isinstance(exc, gexc.BadRequest):  # GKE's busy cluster is an HTTP 400 FAILED_PRECONDITION
            kind = classify_text(text) or ("conflict" if _CLUSTER_BUSY_RE.search(text) else "unknown")
        else:
            kind = classify_text(text) or "unknown"
    elif gexc is not None and isinstance(exc, gexc.RetryError):
        kind = "unavailable"
    else:
        try:
            import httpx

            if isinstance(exc, httpx.HTTPError):
                kind = "unavailable"
        except ImportError:  # pragma: no cover
            pass
        try:
            import requests

            if isinstance(exc, requests.exceptions.RequestException):
                kind = "unavailable"
        except ImportError:  # pragma: no cover
            pass
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            kind = "unavailable"
        if kind == "unavailable":
            found = network_problem(exc)
            if found is not None:  # not an answer from Google: the host could not be reached at all
                host, why = found
                return CloudError("unavailable", f"{what}cannot reach {host}: {why}.", NETWORK_FIX,
                                  host=host, network=why)
    code = getattr(exc, "code", None)
    code = int(code) if isinstance(code, int) else None
    if kind == "credentials":
        message = f"{what}Google Cloud rejected the credentials ({text})."
        report_credentials_failure(message)
        return CloudError(kind, message, CREDENTIALS_FIX, code=code)
    return CloudError(kind, f"{what}{text}", fix_for(kind, ctx, text), code=code)


def http_error(status: int, body: Any, ctx: ErrorContext) -> CloudError:
    """A Google REST error response ({"error": {"code", "message", "status"}}) -> CloudError."""
    message = ""
    reason = ""
    if isinstance(body, dict):
        err = body.get("error") or {}
        if isinstance(err, dict):
            message = str(err.get("message") or "")
            reason = str(err.get("status") or "")
            for d in err.get("details") or []:
                if isinstance(d, dict) and d.get("reason"):
                    reason += " " + str(d["reason"])
    elif isinstance(body, str):
        message = body[:300]
    text = " ".join(f"{message} {reason}".split()) or f"HTTP {status}"
    what = f"Could not {ctx.what}: " if ctx.what else ""
    if status == 401:
        message = f"{what}Google Cloud rejected the credentials ({text})."
        report_credentials_failure(message)
        return CloudError("credentials", message, CREDENTIALS_FIX, code=status)
    if status == 403 and _QUOTA_PROJECT_RE.search(text):
        kind = "quota_project"
    elif status == 403:
        kind = "api_disabled" if _API_DISABLED_RE.search(text) else "permission"
    elif status == 404:
        kind = "not_found"
    elif status == 409:
        kind = "conflict"
    elif status == 429:
        kind = "quota" if "quota" in text.lower() and not _RATE_LIMIT_RE.search(text) else "unavailable"
    elif status >= 500:
        kind = "unavailable"
    else:
        kind = classify_text(text) or "unknown"
    return CloudError(kind, f"{what}{text}", fix_for(kind, ctx, text), code=status)


def retry_transient(fn: Callable[[], Any], *, policy: Any = None) -> Any:
    """Call fn under the wizard's retry policy (`cloud/retry.py`): retried when it raises a
    CloudError of kind "unavailable" (5xx, rate limits, connection errors), with back-off and
    jitter, honouring the server's Retry-After, bounded in time. Only for idempotent calls."""
    from . import retry as _retry

    try:
        return _retry.call(fn, google_verdict, policy=policy or _retry.DEFAULT_POLICY, what="Google API")
    except CloudError as e:
        if e.kind == "unavailable" and _retry.attempts_of(e) > 1 and "attempts in a row)" not in e.message:
            e.message = f"{e.message} (the same {_retry.attempts_of(e)} attempts in a row)"
        raise


def google_verdict(exc: BaseException) -> Any:
    """The retry policy's verdict on a Google call's failure (a CloudError, or a raw client
    exception): retry "unavailable" ones; Retry-After from the CloudError's details or from the
    HTTP response of the client exception it was mapped from."""
    from . import retry as _retry

    if isinstance(exc, CloudError):
        if exc.kind != "unavailable":
            return _retry.NO
        ra = exc.details.get("retry_after")
        cur: BaseException | None = exc.__cause__ or exc.__context__
        seen = 0
        while ra is None and cur is not None and seen < 4:
            resp = getattr(cur, "response", None)
            ra = _retry.parse_retry_after(_retry.header(getattr(resp, "headers", None), "Retry-After"))
            cur, seen = cur.__cause__ or cur.__context__, seen + 1
        code = exc.details.get("code")
        return _retry.Verdict(True, ra, str(code) if code else "unavailable")
    return _retry.Verdict(True, None, type(exc).__name__) if _retry.is_connection_failure(exc) else _retry.NO


# --- data the screens render ----------------------------------------------------------------------

CLUSTER_STATUS = {0: "STATUS_UNSPECIFIED", 1: "PROVISIONING", 2: "RUNNING", 3: "RECONCILING",
                  4: "STOPPING", 5: "ERROR", 6: "DEGRADED"}
POOL_STATUS = {0: "STATUS_UNSPECIFIED", 1: "PROVISIONING", 2: "RUNNING", 3: "RUNNING_WITH_ERROR",
               4: "RECONCILING", 5: "STOPPING", 6: "ERROR"}
OP_STATUS = {0: "STATUS_UNSPECIFIED", 1: "PENDING", 2: "RUNNING", 3: "DONE", 4: "ABORTING"}

# guide durations (seconds) per operation type: what "expected" means in the progress pane
EXPECTED_SECONDS = {
    "CREATE_CLUSTER": 300,
    "CREATE_NODE_POOL": 900,
    "SET_NODE_POOL_SIZE": 600,
    "DELETE_CLUSTER": 300,
    "DELETE_NODE_POOL": 240,
}
DEFAULT_EXPECTED = 300


def _enum_name(value: Any, table: dict[int, str]) -> str:
    name = getattr(value, "name", None)
    if isinstance(name, str):
        return name
    try:
        return table.get(int(value), str(value))
    except (TypeError, ValueError):
        return str(value)


@dataclass
class PoolInfo:
    name: str
    machine_type: str
    initial_node_count: int
    status: str
    status_message: str = ""
    autoscaling: tuple[int, int] | None = None  # (min, max) when enabled
    spot: bool = False
    tpu_topology: str = ""

    @property
    def is_tpu(self) -> bool:
        return self.machine_type.startswith("ct6e") or self.name == TPU_POOL_NAME


@dataclass
class ClusterInfo:
    name: str
    location: str
    status: str
    status_message: str
    endpoint: str
    ca_cert_b64: str
    node_pools: list[PoolInfo]
    master_version: str = ""
    current_node_count: int = 0
    create_time: str = ""
    self_link: str = ""
    datapath_provider: str = ""  # networkConfig.datapathProvider: ADVANCED_DATAPATH is Dataplane V2
    network_policy_enabled: bool = False  # networkPolicy.enabled (Calico enforcement)
    network_policy_addon: bool = False  # addonsConfig.networkPolicyConfig not disabled

    @property
    def dataplane_v2(self) -> bool:
        return self.datapath_provider == "ADVANCED_DATAPATH"

    @property
    def enforces_network_policy(self) -> bool:
        """GKE enforces NetworkPolicies only with Dataplane V2, or with Calico (networkPolicy.enabled
        and the NetworkPolicy add-on); otherwise they are stored and have no effect."""
        return self.dataplane_v2 or (self.network_policy_enabled and self.network_policy_addon)

    @property
    def network_policy_enforcement(self) -> str:
        if self.dataplane_v2:
            return "GKE Dataplane V2"
        if self.network_policy_enabled and self.network_policy_addon:
            return "Calico (network policy enforcement)"
        return ""

    def pool(self, name: str) -> PoolInfo | None:
        return next((p for p in self.node_pools if p.name == name), None)

    @property
    def running(self) -> bool:
        return self.status == "RUNNING"

    @property
    def serving_api(self) -> bool:
        """The Kubernetes API answers: RUNNING, or RECONCILING after its creation (a node pool being
        created or resized keeps the control plane up)."""
        return self.status in ("RUNNING", "RECONCILING") and bool(self.endpoint)

    @property
    def access(self) -> ClusterAccess:
        return ClusterAccess(endpoint=self.endpoint, ca_cert_b64=self.ca_cert_b64 or None)


@dataclass
class OperationInfo:
    name: str  # short id ("operation-123")
    op_type: str  # CREATE_CLUSTER, CREATE_NODE_POOL, ...
    status: str  # PENDING, RUNNING, DONE, ABORTING
    target: str  # target_link
    location: str
    detail: str = ""
    start_time: str = ""
    end_time: str = ""
    stage: str = ""  # from progress stages/metrics, when GKE reports them
    fraction: float | None = None  # 0..1 from progress metrics, when reported
    error_text: str = ""
    error_code: int = 0

    @property
    def done(self) -> bool:
        return self.status == "DONE"

    @property
    def failed(self) -> bool:
        return self.done and bool(self.error_text)

    @property
    def expected_seconds(self) -> int:
        return EXPECTED_SECONDS.get(self.op_type, DEFAULT_EXPECTED)

    @property
    def started_at(self) -> float | None:
        return parse_time(self.start_time)

    def elapsed(self, now: float | None = None) -> float:
        start = self.started_at
        if start is None:
            return 0.0
        end = parse_time(self.end_time) if self.done else None
        return max(0.0, (end or (now or time.time())) - start)

    def targets(self, cluster: str, pool: str | None = None) -> bool:
        return op_targets(self.target, cluster, pool)

    def describe(self) -> str:
        t = self.op_type.replace("_", " ").lower()
        return f"{t} ({self.name}, {self.status.lower()})"


@dataclass
class OpProgress:
    """One progress report while following an operation."""

    op: OperationInfo
    elapsed: float
    expected: float
    message: str
    reconnecting: str = ""  # non-empty while polling fails transiently

    @property
    def fraction(self) -> float:
        if self.op.fraction is not None:
            return max(0.0, min(1.0, self.op.fraction))
        if self.op.done:
            return 1.0
        return min(0.99, self.elapsed / self.expected) if self.expected else 0.0

    @property
    def overdue(self) -> bool:
        return not self.op.done and self.elapsed > self.expected


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    v = str(value).strip()
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    # trim nanoseconds to microseconds
    v = re.sub(r"(\.\d{6})\d+", r"\1", v)
    try:
        dt = _dt.datetime.fromisoformat(v)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_dt.timezone.utc)
    return dt.timestamp()


def op_targets(target_link: str, cluster: str, pool: str | None = None) -> bool:
    """Does an operation's targetLink point at this cluster (or this pool of it)? The link may carry
    the project number instead of its id and 'zones' or 'locations': match on the tail."""
    if not target_link:
        return False
    m = re.search(r"/clusters/([^/]+)(?:/nodePools/([^/]+))?/?$", target_link)
    if not m or m.group(1) != cluster:
        return False
    if pool is None:
        return True
    return m.group(2) == pool


def _pool_info(p: Any) -> PoolInfo:
    cfg = getattr(p, "config", None)
    auto = getattr(p, "autoscaling", None)
    autoscaling = None
    if auto is not None and getattr(auto, "enabled", False):
        autoscaling = (int(auto.min_node_count or 0), int(auto.max_node_count or 0))
    placement = getattr(p, "placement_policy", None)
    return PoolInfo(
        name=p.name,
        machine_type=getattr(cfg, "machine_type", "") or "",
        initial_node_count=int(getattr(p, "initial_node_count", 0) or 0),
        status=_enum_name(p.status, POOL_STATUS),
        status_message=getattr(p, "status_message", "") or "",
        autoscaling=autoscaling,
        spot=bool(getattr(cfg, "spot", False) or getattr(cfg, "preemptible", False)),
        tpu_topology=getattr(placement, "tpu_topology", "") or "",
    )


def _cluster_info(c: Any) -> ClusterInfo:
    master_auth = getattr(c, "master_auth", None)
    return ClusterInfo(
        name=c.name,
        location=getattr(c, "location", "") or getattr(c, "zone", "") or "",
        status=_enum_name(c.status, CLUSTER_STATUS),
        status_message=getattr(c, "status_message", "") or "",
        endpoint=getattr(c, "endpoint", "") or "",
        ca_cert_b64=getattr(master_auth, "cluster_ca_certificate", "") or "",
        node_pools=[_pool_info(p) for p in getattr(c, "node_pools", [])],
        master_version=getattr(c, "current_master_version", "") or "",
        current_node_count=int(getattr(c, "current_node_count", 0) or 0),
        create_time=getattr(c, "create_time", "") or "",
        self_link=getattr(c, "self_link", "") or "",
        **_netpol_enforcement(c),
    )


DATAPATH_PROVIDER = {0: "DATAPATH_PROVIDER_UNSPECIFIED", 1: "LEGACY_DATAPATH", 2: "ADVANCED_DATAPATH",
                     3: "MIGRATE_TO_ADVANCED_DATAPATH", 4: "MIGRATE_TO_LEGACY_DATAPATH"}


def _netpol_enforcement(c: Any) -> dict[str, Any]:
    """The cluster's NetworkPolicy enforcement: its datapath provider, Calico flag and add-on."""
    net = getattr(c, "network_config", None)
    dp = getattr(net, "datapath_provider", 0) if net is not None else 0
    npol = getattr(c, "network_policy", None)
    addon = getattr(getattr(c, "addons_config", None), "network_policy_config", None)
    return {"datapath_provider": _enum_name(dp or 0, DATAPATH_PROVIDER) if dp else "",
            "network_policy_enabled": bool(getattr(npol, "enabled", False)) if npol is not None else False,
            "network_policy_addon": addon is not None and not bool(getattr(addon, "disabled", False))}


def _op_info(op: Any) -> OperationInfo:
    err = getattr(op, "error", None)
    err_text = (getattr(err, "message", "") or "") if err is not None else ""
    err_code = int(getattr(err, "code", 0) or 0) if err is not None else 0
    status = _enum_name(op.status, OP_STATUS)
    if not err_text and status == "DONE" and getattr(op, "status_message", ""):
        err_text = op.status_message  # deprecated field some paths still use for errors
    stage, fraction = "", None
    prog = getattr(op, "progress", None)
    if prog is not None:
        stages = list(getattr(prog, "stages", []) or [])
        running = [s for s in stages if _enum_name(s.status, OP_STATUS) in ("RUNNING", "PENDING")]
        if running and running[0].name:
            stage = running[0].name
        metrics = {m.name: m for m in getattr(prog, "metrics", []) or []}
        total = metrics.get("NODES_TOTAL") or metrics.get("total")
        done = metrics.get("NODES_DONE") or metrics.get("done") or metrics.get("NODES_COMPLETE")
        if total is not None and done is not None and int(total.int_value or 0) > 0:
            fraction = int(done.int_value or 0) / int(total.int_value)
    return OperationInfo(
        name=op.name.rsplit("/", 1)[-1],
        op_type=_enum_name(op.operation_type, {i: n for i, n in enumerate(
            ["TYPE_UNSPECIFIED", "CREATE_CLUSTER", "DELETE_CLUSTER", "UPGRADE_MASTER", "UPGRADE_NODES",
             "REPAIR_CLUSTER", "UPDATE_CLUSTER", "CREATE_NODE_POOL", "DELETE_NODE_POOL",
             "SET_NODE_POOL_MANAGEMENT", "AUTO_REPAIR_NODES", "AUTO_UPGRADE_NODES", "SET_LABELS",
             "SET_MASTER_AUTH", "SET_NODE_POOL_SIZE", "SET_NETWORK_POLICY", "SET_MAINTENANCE_POLICY"])}),
        status=status,
        target=getattr(op, "target_link", "") or "",
        location=getattr(op, "location", "") or getattr(op, "zone", "") or "",
        detail=getattr(op, "detail", "") or "",
        start_time=getattr(op, "start_time", "") or "",
        end_time=getattr(op, "end_time", "") or "",
        stage=stage,
        fraction=fraction,
        error_text=err_text,
        error_code=err_code,
    )


# --- the client -----------------------------------------------------------------------------------


class Gke:
    """GKE in one project and location (the zone of a zonal cluster)."""

    def __init__(self, profile: ConnectionProfile, project: str, zone: str) -> None:
        self.profile = profile
        self.project = project
        self.zone = zone
        self.recorder: Any = None  # transcript.Recorder: mutating calls are recorded there

    # paths ----------------------------------------------------------------------------------------
    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.zone}"

    def cluster_path(self, cluster: str) -> str:
        return f"{self.parent}/clusters/{cluster}"

    def pool_path(self, cluster: str, pool: str) -> str:
        return f"{self.cluster_path(cluster)}/nodePools/{pool}"

    def op_path(self, op_name: str) -> str:
        return f"{self.parent}/operations/{op_name.rsplit('/', 1)[-1]}"

    def _ctx(self, what: str, **kw: Any) -> ErrorContext:
        return ErrorContext(project=self.project, zone=self.zone, what=what, **kw)

    def _client(self) -> Any:
        try:
            return self.profile.gke()
        except CredentialsError as e:
            raise CloudError("credentials", str(e), CREDENTIALS_FIX) from None

    def _call(self, what: str, fn: Callable[[], Any], *, idempotent: bool = False, record: str | None = None,
              **ctx_kw: Any) -> Any:
        """`record`: the equivalent gcloud command of a mutating call (it goes to the transcript)."""
        if record is not None and self.recorder is not None:
            from ..transcript import record_google

            return record_google(self.recorder, "gke", what, record,
                                 lambda: self._call(what, fn, idempotent=idempotent, **ctx_kw))

        def once() -> Any:
            try:
                return fn()
            except CloudError:
                raise
            except Exception as e:  # noqa: BLE001 - every failure becomes a CloudError
                raise map_error(e, self._ctx(what, **ctx_kw)) from None

        return retry_transient(once) if idempotent else once()

    def _where(self) -> str:
        return f"--project {self.project} --zone {self.zone}"

    def _gcloud_create_cluster(self, body: dict[str, Any]) -> str:
        """The gcloud line for a create_cluster request body (the guide's wording)."""
        pool = (body.get("node_pools") or [{}])[0]
        auto = pool.get("autoscaling") or {}
        line = (f"gcloud container clusters create {body.get('name')} {self._where()} "
                f"--machine-type {(pool.get('config') or {}).get('machine_type', DEFAULT_POOL_MACHINE_TYPE)} "
                f"--num-nodes {pool.get('initial_node_count', 2)} --enable-ip-alias")
        if auto.get("enabled"):
            line += f" --enable-autoscaling --min-nodes {auto.get('min_node_count')} --max-nodes {auto.get('max_node_count')}"
        if (body.get("network_config") or {}).get("datapath_provider") == "ADVANCED_DATAPATH":
            line += " --enable-dataplane-v2"
        return line

    # clusters -------------------------------------------------------------------------------------
    def get_cluster(self, cluster: str) -> ClusterInfo | None:
        """The cluster, or None when it does not exist."""
        client = self._client()
        try:
            return _cluster_info(self._call(f"read cluster {cluster}",
                                            lambda: client.get_cluster(request={"name": self.cluster_path(cluster)}),
                                            idempotent=True))
        except CloudError as err:
            if err.kind == "not_found":
                return None
            raise

    def list_clusters(self, all_locations: bool = False) -> list[ClusterInfo]:
        client = self._client()
        parent = f"projects/{self.project}/locations/-" if all_locations else self.parent
        resp = self._call("list clusters", lambda: client.list_clusters(request={"parent": parent}), idempotent=True)
        return [_cluster_info(c) for c in resp.clusters]

    def find_elsewhere(self, cluster: str) -> list[str]:
        """Locations other than ours holding a cluster of this name (a common config mistake)."""
        try:
            return [c.location for c in self.list_clusters(all_locations=True)
                    if c.name == cluster and c.location != self.zone]
        except CloudError:
            return []

    def cluster_body(self, cluster: str, *, default_nodes: int = 2, min_nodes: int = 1,
                     max_nodes: int = 5, machine_type: str = DEFAULT_POOL_MACHINE_TYPE) -> dict[str, Any]:
        """The create request's cluster: the guide's default pool (n1-standard-4 x2, autoscaling 1-5;
        `machine_type` where the zone lacks N1), IP aliases, HPA and HTTP load balancing add-ons, and GKE
        Dataplane V2 (ADVANCED_DATAPATH), which enforces step 8's NetworkPolicies and can only be chosen
        when the cluster is created."""
        return {
            "name": cluster,
            "description": "RHAII vLLM on TPU v6e (created by rhaii-tui)",
            "resource_labels": {"created-by": "rhaii-tui"},
            "node_pools": [{
                "name": "default-pool",
                "initial_node_count": default_nodes,
                "config": {"machine_type": machine_type or DEFAULT_POOL_MACHINE_TYPE,
                           "oauth_scopes": ["https://www.googleapis.com/auth/cloud-platform"]},
                "autoscaling": {"enabled": True, "min_node_count": min_nodes, "max_node_count": max_nodes},
                "management": {"auto_repair": True, "auto_upgrade": True},
            }],
            "ip_allocation_policy": {"use_ip_aliases": True},
            "network_config": {"datapath_provider": "ADVANCED_DATAPATH"},
            "addons_config": {"horizontal_pod_autoscaling": {"disabled": False},
                              "http_load_balancing": {"disabled": False}},
        }

    def create_cluster(self, cluster: str, **kw: Any) -> OperationInfo:
        client = self._client()
        body = self.cluster_body(cluster, **kw)
        op = self._call(f"create cluster {cluster}",
                        lambda: client.create_cluster(request={"parent": self.parent, "cluster": body}),
                        record=self._gcloud_create_cluster(body))
        return _op_info(op)

    def delete_cluster(self, cluster: str) -> OperationInfo:
        client = self._client()
        op = self._call(f"delete cluster {cluster}",
                        lambda: client.delete_cluster(request={"name": self.cluster_path(cluster)}),
                        record=f"gcloud container clusters delete {cluster} {self._where()} --quiet")
        return _op_info(op)

    # node pools -----------------------------------------------------------------------------------
    def tpu_pool_body(self, nodes: int, *, spot: bool = False, name: str = TPU_POOL_NAME) -> dict[str, Any]:
        """TPU v6e pool: ct6e-standard-4t (4 chips, single-host 2x2; GKE derives the topology and puts the
        gke-tpu-accelerator/topology labels and the google.com/tpu taint on the nodes), one per replica.
        No placement policy: that is for multi-host slices only. No autoscaling: one node per replica."""
        config: dict[str, Any] = {
            "machine_type": TPU_MACHINE_TYPE,
            "oauth_scopes": ["https://www.googleapis.com/auth/cloud-platform"],
            "resource_labels": {"created-by": "rhaii-tui"},
        }
        if spot:
            config["spot"] = True
        return {
            "name": name,
            "initial_node_count": nodes,
            "config": config,
            "management": {"auto_repair": True, "auto_upgrade": True},
        }

    def create_tpu_pool(self, cluster: str, nodes: int, *, spot: bool = False) -> OperationInfo:
        if nodes < 1:
            raise CloudError("unknown", f"A TPU pool needs at least one node (asked for {nodes}).",
                             "Set replicas to 1 or more.")
        client = self._client()
        body = self.tpu_pool_body(nodes, spot=spot)
        op = self._call(f"create node pool {TPU_POOL_NAME}",
                        lambda: client.create_node_pool(request={"parent": self.cluster_path(cluster),
                                                                 "node_pool": body}),
                        need_chips=4 * nodes,
                        record=f"gcloud container node-pools create {TPU_POOL_NAME} --cluster {cluster} {self._where()} "
                               f"--machine-type {TPU_MACHINE_TYPE} --num-nodes {nodes}" + (" --spot" if spot else ""))
        return _op_info(op)

    def list_node_pools(self, cluster: str) -> list[PoolInfo]:
        client = self._client()
        resp = self._call("list node pools",
                          lambda: client.list_node_pools(request={"parent": self.cluster_path(cluster)}),
                          idempotent=True)
        return [_pool_info(p) for p in resp.node_pools]

    def set_pool_size(self, cluster: str, pool: str, nodes: int) -> OperationInfo:
        if nodes < 0:
            raise CloudError("unknown", f"Node count must not be negative (asked for {nodes}).",
                             "Give a node count of 0 or more.")
        client = self._client()
        op = self._call(f"resize node pool {pool} to {nodes}",
                        lambda: client.set_node_pool_size(request={"name": self.pool_path(cluster, pool),
                                                                   "node_count": nodes}),
                        need_chips=4 * nodes,
                        record=f"gcloud container clusters resize {cluster} --node-pool {pool} --num-nodes {nodes} "
                               f"{self._where()} --quiet")
        return _op_info(op)

    def delete_node_pool(self, cluster: str, pool: str) -> OperationInfo:
        client = self._client()
        op = self._call(f"delete node pool {pool}",
                        lambda: client.delete_node_pool(request={"name": self.pool_path(cluster, pool)}),
                        record=f"gcloud container node-pools delete {pool} --cluster {cluster} {self._where()} --quiet")
        return _op_info(op)

    # operations -----------------------------------------------------------------------------------
    def get_operation(self, op_name: str) -> OperationInfo:
        client = self._client()
        op = self._call("read the operation", lambda: client.get_operation(request={"name": self.op_path(op_name)}),
                        idempotent=True)
        return _op_info(op)

    def list_operations(self, cluster: str | None = None, pool: str | None = None,
                        running_only: bool = True) -> list[OperationInfo]:
        """Operations in this location, optionally only those targeting a cluster (or one pool of it),
        optionally only unfinished ones. Oldest first."""
        client = self._client()
        resp = self._call("list operations", lambda: client.list_operations(request={"parent": self.parent}),
                          idempotent=True)
        ops = [_op_info(o) for o in resp.operations]
        if cluster is not None:
            ops = [o for o in ops if o.targets(cluster, pool)]
        if running_only:
            ops = [o for o in ops if not o.done]
        ops.sort(key=lambda o: o.started_at or 0.0)
        return ops

    def in_flight(self, cluster: str, op_types: Iterable[str] | None = None,
                  pool: str | None = None) -> OperationInfo | None:
        """The unfinished operation on this cluster (of the given types), if one is running: what a
        restarted wizard reattaches to instead of starting a second create."""
        types = set(op_types) if op_types else None
        for op in self.list_operations(cluster, running_only=True):
            if types and op.op_type not in types:
                continue
            if pool is not None and not op_targets(op.target, cluster, pool) and op.op_type in (
                    "CREATE_NODE_POOL", "SET_NODE_POOL_SIZE", "DELETE_NODE_POOL"):
                continue
            return op
        return None

    def operation_error(self, op: OperationInfo, *, need_chips: int | None = None,
                        alternatives: tuple[str, ...] = ()) -> CloudError:
        """A finished operation's error as a CloudError (quota, stockout, permission...)."""
        text = " ".join(op.error_text.split())[:600]
        kind = classify_text(text) or _RPC_CODE_KIND.get(op.error_code, "unknown")
        ctx = self._ctx("", need_chips=need_chips, alternatives=alternatives)
        what = op.op_type.replace("_", " ").lower()
        return CloudError(kind, f"The {what} operation failed: {text or 'no reason given'}",
                          fix_for(kind, ctx, text), operation=op.name)

    def wait(self, op: OperationInfo | str, on_progress: Callable[[OpProgress], None] | None = None, *,
             timeout: float | None = None, stop: threading.Event | None = None,
             poll_min: float = 0.2, poll_max: float = 10.0, need_chips: int | None = None,
             alternatives: tuple[str, ...] = ()) -> OperationInfo:
        """Follow an operation until DONE: poll with backoff, report progress (elapsed vs expected,
        stage), ride out transient errors (reported as reconnecting). Raises CloudError when the
        operation fails, when credentials fail, or on timeout (the operation keeps running in Google
        Cloud: re-running reattaches). Returns early (not done) when `stop` is set."""
        info = op if isinstance(op, OperationInfo) else self.get_operation(op)
        t0 = time.monotonic()
        delay = poll_min
        failures = 0

        def report(msg: str, reconnecting: str = "") -> None:
            if on_progress is None:
                return
            try:
                on_progress(OpProgress(info, info.elapsed(), info.expected_seconds, msg, reconnecting))
            except Exception:  # noqa: BLE001 - a consumer bug must not stop the follow
                log.exception("progress callback failed")

        while True:
            if info.done:
                report("done" if not info.error_text else "failed")
                if info.error_text:
                    raise self.operation_error(info, need_chips=need_chips, alternatives=alternatives)
                return info
            report(info.stage or info.detail or info.describe())
            if timeout is not None and time.monotonic() - t0 > timeout:
                raise CloudError("unavailable",
                                 f"The {info.op_type.replace('_', ' ').lower()} operation is still running after "
                                 f"{int(time.monotonic() - t0)} s.",
                                 "It continues in Google Cloud; run this step again to reattach and follow it.",
                                 operation=info.name)
            if stop is not None:
                if stop.wait(delay):
                    return info
            else:
                time.sleep(delay)
            delay = min(poll_max, delay * 1.5)
            try:
                info = self.get_operation(info.name)
                failures = 0
            except CloudError as e:
                if e.kind in ("credentials", "permission", "not_found", "api_disabled"):
                    raise
                failures += 1
                report(info.describe(), reconnecting=f"attempt {failures}: {e.message}")
                delay = min(poll_max, max(delay, 1.0) * 2)

    # access ---------------------------------------------------------------------------------------
    def cluster_access(self, cluster: str | ClusterInfo) -> ClusterAccess:
        info = cluster if isinstance(cluster, ClusterInfo) else self.get_cluster(cluster)
        if info is None:
            raise CloudError("not_found", f"Cluster {cluster} does not exist in {self.zone}.",
                             "Create it in step 2, or check the cluster name and zone.")
        if not info.endpoint:
            raise CloudError("conflict", f"Cluster {info.name} has no API endpoint yet (status {info.status}).",
                             "Wait until the cluster is RUNNING (step 2 follows it), then retry.")
        return info.access

    def context_name(self, cluster: str) -> str:
        return f"gke_{self.project}_{self.zone}_{cluster}"

    def write_kubeconfig(self, cluster: str | ClusterInfo, path: str | Path | None = None, *,
                         set_current: bool = True) -> Path:
        """Add (or replace) this cluster's entry in a kubeconfig, like `gcloud container clusters
        get-credentials`: server + CA + a user that runs gke-gcloud-auth-plugin. Never a token.
        The file is written 0600. Default path: first entry of $KUBECONFIG, else ~/.kube/config."""
        import yaml

        info = cluster if isinstance(cluster, ClusterInfo) else self.get_cluster(cluster)
        access = self.cluster_access(info if info is not None else cluster)  # raises when missing
        name = self.context_name(info.name if info else str(cluster))
        target = Path(path) if path else default_kubeconfig_path()
        server = access.endpoint if access.endpoint.startswith(("http://", "https://")) else f"https://{access.endpoint}"
        try:
            existing = yaml.safe_load(target.read_text()) if target.exists() else None
        except yaml.YAMLError as e:  # line and column, never the content (a kubeconfig holds credentials)
            from ..config import yaml_error_text

            raise CloudError("unknown", f"The kubeconfig {target} is not valid YAML ({yaml_error_text(e)}).",
                             "Fix or move that file, or choose another path.") from None
        except UnicodeDecodeError:
            raise CloudError("unknown", f"The kubeconfig {target} is not a text file.",
                             "Fix or move that file, or choose another path.") from None
        except OSError as e:
            raise CloudError("unknown", f"Cannot read the kubeconfig {target}: {e.__class__.__name__}.",
                             "Fix or move that file, or choose another path.") from None
        doc: dict[str, Any] = existing if isinstance(existing, dict) else {}
        doc.setdefault("apiVersion", "v1")
        doc.setdefault("kind", "Config")
        doc.setdefault("preferences", {})
        cluster_entry: dict[str, Any] = {"server": server}
        if access.ca_cert_b64:
            cluster_entry["certificate-authority-data"] = access.ca_cert_b64
        user_entry = {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "gke-gcloud-auth-plugin",
            "installHint": ("Install gke-gcloud-auth-plugin for use with kubectl by following "
                            "https://cloud.google.com/kubernetes-engine/docs/how-to/cluster-access-for-kubectl#install_plugin"),
            "provideClusterInfo": True,
            "interactiveMode": "IfAvailable",
        }}
        _upsert(doc, "clusters", name, "cluster", cluster_entry)
        _upsert(doc, "users", name, "user", user_entry)
        _upsert(doc, "contexts", name, "context", {"cluster": name, "user": name})
        if set_current or not doc.get("current-context"):
            doc["current-context"] = name
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".rhaii-tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                yaml.safe_dump(doc, f, default_flow_style=False, sort_keys=False)
            os.chmod(tmp, 0o600)
            os.replace(tmp, target)
        except OSError as e:
            raise CloudError("unknown", f"Cannot write the kubeconfig {target}: {e.strerror}.",
                             "Choose a writable path (or set KUBECONFIG).") from None
        return target


def _upsert(doc: dict[str, Any], section: str, name: str, key: str, value: dict[str, Any]) -> None:
    items = doc.get(section)
    if not isinstance(items, list):
        items = []
    items = [i for i in items if not (isinstance(i, dict) and i.get("name") == name)]
    items.append({"name": name, key: value})
    doc[section] = items


def default_kubeconfig_path(env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ) if env is None else env
    kc = env.get("KUBECONFIG", "")
    if kc:
        first = kc.split(os.pathsep)[0]
        if first:
            return Path(first)
    return Path(env.get("HOME", str(Path.home()))) / ".kube" / "config"


__all__ = [
    "CloudError", "ERROR_KINDS", "ErrorContext", "map_error", "http_error", "classify_text", "fix_for",
    "Gke", "ClusterInfo", "PoolInfo", "OperationInfo", "OpProgress", "op_targets", "parse_time",
    "default_kubeconfig_path", "TPU_ACCELERATOR", "TPU_TOPOLOGY",
]
