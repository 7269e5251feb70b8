"""Compute Engine's view of a node pool: its managed instance groups (MIGs) and their errors.

A GKE node-pool create in a zone without capacity stays RUNNING for about 35 minutes before GKE
fails it, but the pool's managed instance group lists every failed instance creation
(`instanceGroupManagers.listErrors`) within a minute or two. This module reads that, cheaply and
without creating anything:

- `pool_instance_groups(gke, cluster, pool)`: the pool's `instanceGroupUrls` (GKE API).
- `list_errors(profile, url)`: the MIG's failed instance actions (Compute REST, `profile.rest`).
- `get_group(profile, url)`: target size, instances being created, `status.isStable`.
- `capacity_errors(...)`: the errors since an instant, classified (stockout / quota).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .gke import ErrorContext, Gke, parse_time
from .profile import ConnectionProfile
from .services import _request

STOCKOUT_CODES = ("ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", "STOCKOUT",
                  "RESOURCE_POOL_EXHAUSTED")
QUOTA_CODES = ("QUOTA_EXCEEDED",)

_IGM_RE = re.compile(r"/projects/([^/]+)/zones/([^/]+)/instanceGroupManagers/([^/?#]+)")


@dataclass
class MigRef:
    project: str
    zone: str
    name: str

    @property
    def path(self) -> str:
        return f"/compute/v1/projects/{self.project}/zones/{self.zone}/instanceGroupManagers/{self.name}"


def parse_group_url(url: str) -> MigRef | None:
    """projects/P/zones/Z/instanceGroupManagers/NAME out of an instanceGroupUrls entry (any host)."""
    m = _IGM_RE.search(url or "")
    return MigRef(m.group(1), m.group(2), m.group(3)) if m else None


@dataclass
class MigError:
    instance: str  # the instance's name (the URL's last segment)
    action: str  # CREATING, RECREATING...
    code: str
    message: str
    at: float | None  # epoch seconds
    zone: str = ""

    @property
    def kind(self) -> str | None:
        code = self.code.upper()
        if code in STOCKOUT_CODES or "RESOURCE_POOL_EXHAUSTED" in code or "STOCKOUT" in code:
            return "stockout"
        if code in QUOTA_CODES or "QUOTA" in code:
            return "quota"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"instance": self.instance, "action": self.action, "code": self.code, "message": self.message,
                "at": self.at, "zone": self.zone}


@dataclass
class MigStatus:
    name: str
    zone: str
    target_size: int
    running: int  # currentActions.none
    creating: int
    stable: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def pool_instance_groups(gke: Gke, cluster: str, pool: str) -> list[str]:
    """The node pool's instanceGroupUrls ([] while GKE has not made them yet, or no such pool).
    Read over REST (a fresh httpx client per call), so a background reader never shares the GKE
    client library's session with the thread following the operation."""
    ctx = ErrorContext(project=gke.project, zone=gke.zone, what=f"read node pool {pool}")
    body = _request(gke.profile, "container", "GET", f"/v1/{gke.pool_path(cluster, pool)}", ctx, allow_404=True)
    if not isinstance(body, dict):
        return []
    return [str(u) for u in body.get("instanceGroupUrls") or []]


def list_errors(profile: ConnectionProfile, url: str, *, max_pages: int = 4) -> list[MigError]:
    """The MIG's failed instance actions (instanceGroupManagers.listErrors), oldest first."""
    ref = parse_group_url(url)
    if ref is None:
        return []
    ctx = ErrorContext(project=ref.project, zone=ref.zone, what=f"list the errors of instance group {ref.name}")
    out: list[MigError] = []
    params: dict[str, str] = {"maxResults": "500"}
    for _ in range(max_pages):
        body = _request(profile, "compute", "GET", ref.path + "/listErrors", ctx, params=params)
        for item in (body.get("items") if isinstance(body, dict) else None) or []:
            err = item.get("error") or {}
            details = item.get("instanceActionDetails") or {}
            out.append(MigError(instance=str(details.get("instance", "")).rstrip("/").rsplit("/", 1)[-1],
                                action=str(details.get("action", "")), code=str(err.get("code", "")),
                                message=str(err.get("message", "")), at=parse_time(item.get("timestamp")),
                                zone=ref.zone))
        token = body.get("nextPageToken") if isinstance(body, dict) else None
        if not token:
            break
        params = {**params, "pageToken": str(token)}
    out.sort(key=lambda e: e.at or 0.0)
    return out


def get_group(profile: ConnectionProfile, url: str) -> MigStatus | None:
    """The MIG's size and what it is doing (instanceGroupManagers.get)."""
    ref = parse_group_url(url)
    if ref is None:
        return None
    ctx = ErrorContext(project=ref.project, zone=ref.zone, what=f"read instance group {ref.name}")
    body = _request(profile, "compute", "GET", ref.path, ctx, allow_404=True)
    if not isinstance(body, dict):
        return None
    actions = body.get("currentActions") or {}
    return MigStatus(name=ref.name, zone=ref.zone, target_size=int(body.get("targetSize") or 0),
                     running=int(actions.get("none") or 0), creating=int(actions.get("creating") or 0),
                     stable=bool((body.get("status") or {}).get("isStable")))


@dataclass
class CapacityReading:
    """What the pool's instance groups say about failed instance creations since `since`."""

    kind: str | None  # "stockout" | "quota" | None (no capacity error)
    errors: list[MigError] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)  # instanceGroupUrls read

    @property
    def first_at(self) -> float | None:
        times = [e.at for e in self.errors if e.at is not None]
        return min(times) if times else None

    @property
    def codes(self) -> list[str]:
        return sorted({e.code for e in self.errors})

    @property
    def instances(self) -> list[str]:
        return sorted({e.instance for e in self.errors})

    @property
    def zones(self) -> list[str]:
        return sorted({e.zone for e in self.errors if e.zone})


def capacity_errors(profile: ConnectionProfile, urls: list[str], since: float | None = None) -> CapacityReading:
    """Stockout / quota errors the pool's MIGs listed at or after `since` (epoch seconds; a second of
    slack for timestamps rounded down). A stockout wins over quota when both appear."""
    found: list[MigError] = []
    for url in urls:
        for e in list_errors(profile, url):
            if e.kind is None:
                continue
            if since is not None and e.at is not None and e.at < since - 1.0:
                continue
            found.append(e)
    kinds = {e.kind for e in found}
    kind = "stockout" if "stockout" in kinds else ("quota" if "quota" in kinds else None)
    return CapacityReading(kind=kind, errors=[e for e in found if e.kind == kind], groups=list(urls))


def safe(fn: Any, default: Any = None) -> Any:
    """fn() or `default` when the cloud cannot tell (the caller keeps following the operation)."""
    try:
        return fn()
    except Exception:  # noqa: BLE001 - CloudError or a transport error: a reader never stops the follow
        return default


__all__ = ["MigRef", "MigError", "MigStatus", "CapacityReading", "parse_group_url", "pool_instance_groups",
           "list_errors", "get_group", "capacity_errors", "STOCKOUT_CODES", "QUOTA_CODES"]
