"""Service Usage and Compute Engine over REST (no client library here): is the Kubernetes Engine API
enabled, which zones offer TPU v6e, does a zone have ct6e-standard-4t.

Requests go through `profile.rest(service)` (httpx, bearer token per request). Errors become
`CloudError`; zone discovery falls back to the known list (config.V6E_ZONES) with a warning.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ..config import TPU_ACCELERATOR, TPU_MACHINE_TYPE, V6E_ZONES
from .gke import CloudError, ErrorContext, google_verdict, http_error, map_error, retry_transient
from .profile import ConnectionProfile
from . import retry as _retry
from .retry import parse_retry_after

CONTAINER_API = "container.googleapis.com"


def _request(profile: ConnectionProfile, service: str, method: str, path: str, ctx: ErrorContext,
             *, params: dict[str, str] | None = None, json: Any = None, allow_404: bool = False) -> Any:
    """One REST call; returns the JSON body (None on an allowed 404). Raises CloudError. GETs are
    retried on transient errors."""
    if method == "GET":
        return retry_transient(lambda: _request_once(profile, service, method, path, ctx, params=params,
                                                     json=json, allow_404=allow_404))
    # not idempotent: retried only when Google refused it outright (429: nothing was done)
    return _retry.call(lambda: _request_once(profile, service, method, path, ctx, params=params, json=json,
                                             allow_404=allow_404), _refused_only, what="Google API")


def _refused_only(exc: BaseException) -> _retry.Verdict:
    if isinstance(exc, CloudError) and exc.details.get("code") == 429:
        return google_verdict(exc)
    return _retry.NO


def _request_once(profile: ConnectionProfile, service: str, method: str, path: str, ctx: ErrorContext,
                  *, params: dict[str, str] | None = None, json: Any = None, allow_404: bool = False) -> Any:
    try:
        with profile.rest(service) as client:
            resp = client.request(method, path, params=params, json=json)
            if allow_404 and resp.status_code == 404:
                return None
            try:
                body = resp.json() if resp.content else {}
            except ValueError:
                body = resp.text
            if resp.status_code >= 400:
                err = http_error(resp.status_code, body, ctx)
                err.details["retry_after"] = parse_retry_after(resp.headers.get("Retry-After"))
                raise err
            return body
    except CloudError:
        raise
    except Exception as e:  # noqa: BLE001 - transport errors, credentials
        raise map_error(e, ctx) from None


# --- Service Usage ---------------------------------------------------------------------------------


def service_state(profile: ConnectionProfile, project: str, service: str = CONTAINER_API) -> str:
    """'ENABLED', 'DISABLED' or 'STATE_UNSPECIFIED' (serviceusage v1 services.get)."""
    ctx = ErrorContext(project=project, what=f"check whether {service} is enabled")
    body = _request(profile, "serviceusage", "GET", f"/v1/projects/{project}/services/{service}", ctx)
    state = body.get("state") if isinstance(body, dict) else None
    return str(state or "STATE_UNSPECIFIED")


def is_api_enabled(profile: ConnectionProfile, project: str, service: str = CONTAINER_API) -> bool:
    return service_state(profile, project, service) == "ENABLED"


def enable_api(profile: ConnectionProfile, project: str, service: str = CONTAINER_API, *,
               wait_seconds: float = 120.0, poll: float = 2.0, recorder: Any = None) -> bool:
    """Enable an API (services.enable) and wait until services.get says ENABLED. True when enabled.
    `recorder`: a transcript.Recorder the enable call is recorded in."""
    from ..transcript import record_google

    ctx = ErrorContext(project=project, what=f"enable {service}")
    record_google(recorder, "serviceusage", f"enable {service}",
                  f"gcloud services enable {service} --project {project}",
                  lambda: _request(profile, "serviceusage", "POST", f"/v1/projects/{project}/services/{service}:enable",
                                   ctx, json={}))
    deadline = time.monotonic() + wait_seconds
    while True:
        if is_api_enabled(profile, project, service):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)


# --- Compute: zones with TPU v6e -------------------------------------------------------------------


@dataclass
class ZoneDiscovery:
    zones: list[str]
    live: bool  # True: read from the Compute API; False: the known list
    warning: str = ""

    def offers(self, zone: str) -> bool:
        return zone in self.zones


def v6e_zones(profile: ConnectionProfile, project: str, accelerator: str = TPU_ACCELERATOR) -> ZoneDiscovery:
    """Zones whose Compute acceleratorTypes include tpu-v6e-slice (aggregated list). Falls back to
    the known list when the Compute API cannot be read. Never raises."""
    ctx = ErrorContext(project=project, what="list the zones that offer TPU v6e")
    zones: set[str] = set()
    params: dict[str, str] = {"filter": f"name={accelerator}", "maxResults": "500"}
    try:
        for _ in range(50):  # pages
            body = _request(profile, "compute", "GET",
                            f"/compute/v1/projects/{project}/aggregated/acceleratorTypes", ctx, params=params)
            items = body.get("items", {}) if isinstance(body, dict) else {}
            for key, scoped in (items or {}).items():
                for at in (scoped or {}).get("acceleratorTypes", []) or []:
                    if at.get("name") != accelerator:
                        continue
                    zone = at.get("zone", "") or key
                    zone = zone.rstrip("/").rsplit("/", 1)[-1]
                    if (at.get("deprecated") or {}).get("state") in ("DELETED", "OBSOLETE"):
                        continue
                    if zone:
                        zones.add(zone)
            token = body.get("nextPageToken") if isinstance(body, dict) else None
            if not token:
                break
            params = {**params, "pageToken": token}
    except CloudError as e:
        return ZoneDiscovery(sorted(V6E_ZONES), live=False,
                             warning=f"Could not list TPU zones live ({e.message}); using the known list. {e.fix}".strip())
    if not zones:
        return ZoneDiscovery(sorted(V6E_ZONES), live=False,
                             warning="The Compute API listed no zone with tpu-v6e-slice for this project; using the known list.")
    return ZoneDiscovery(sorted(zones), live=True)


def machine_type_in_zone(profile: ConnectionProfile, project: str, zone: str,
                         machine_type: str = TPU_MACHINE_TYPE) -> bool:
    """Does the zone offer this machine type (machineTypes.get)? Raises CloudError when it cannot tell."""
    ctx = ErrorContext(project=project, zone=zone, what=f"check {machine_type} in {zone}")
    body = _request(profile, "compute", "GET",
                    f"/compute/v1/projects/{project}/zones/{quote(zone)}/machineTypes/{quote(machine_type)}",
                    ctx, allow_404=True)
    if body is None:
        return False
    if isinstance(body, dict) and (body.get("deprecated") or {}).get("state") in ("DELETED", "OBSOLETE"):
        return False
    return True


def zone_machine_types(profile: ConnectionProfile, project: str, zone: str) -> list[dict[str, Any]]:
    """The machine types a zone offers (machineTypes.list, every page). Raises CloudError."""
    ctx = ErrorContext(project=project, zone=zone, what=f"list the machine types of {zone}")
    out: list[dict[str, Any]] = []
    params: dict[str, str] = {"maxResults": "500"}
    for _ in range(50):  # pages
        body = _request(profile, "compute", "GET", f"/compute/v1/projects/{project}/zones/{quote(zone)}/machineTypes",
                        ctx, params=params)
        if not isinstance(body, dict):
            break
        for mt in body.get("items", []) or []:
            if isinstance(mt, dict) and (mt.get("deprecated") or {}).get("state") not in ("DELETED", "OBSOLETE"):
                out.append(mt)
        token = body.get("nextPageToken")
        if not token:
            break
        params = {**params, "pageToken": token}
    return out


# General-purpose series, most like N1 first (cost, then availability): what to propose instead.
GENERAL_PURPOSE_SERIES = ("e2", "n2", "n4", "n2d", "n1", "c3", "t2d")


def suggest_machine_type(available: list[dict[str, Any]], wanted: str) -> str | None:
    """The offered general-purpose `<series>-standard-<N>` closest to `wanted`: the same vCPUs, else
    the nearest larger count (the operators run on this pool), else the nearest smaller; series in
    GENERAL_PURPOSE_SERIES order. None when the zone has none."""
    try:
        want_cpus = int(wanted.rsplit("-", 1)[-1])
    except ValueError:
        want_cpus = 4
    best: tuple[Any, ...] | None = None
    choice = None
    for mt in available:
        name = str(mt.get("name") or "")
        series, _, rest = name.partition("-")
        if series not in GENERAL_PURPOSE_SERIES or not rest.startswith("standard-") or name == wanted:
            continue
        try:
            cpus = int(mt.get("guestCpus") or rest.rsplit("-", 1)[-1])
        except ValueError:
            continue
        key = (cpus < want_cpus, abs(cpus - want_cpus), GENERAL_PURPOSE_SERIES.index(series))
        if best is None or key < best:
            best, choice = key, name
    return choice


__all__ = ["CONTAINER_API", "service_state", "is_api_enabled", "enable_api", "ZoneDiscovery", "v6e_zones",
           "machine_type_in_zone", "zone_machine_types", "suggest_machine_type", "GENERAL_PURPOSE_SERIES"]
