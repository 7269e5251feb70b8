"""Step 1: preflight checks, before anything costs money.

`run_checks(ctx, on_result)` runs the checks concurrently (threads) and reports each one as it
finishes: credentials (which identity), project reachable, permissions (missing ones + the role that
grants them), Kubernetes Engine API enabled, zone offers TPU v6e with ct6e-standard-4t (live, else
the known list), TPU v6e quota (limit vs 4 x replicas, Spot beside it), secrets ready.

A check reports "pass" only for what it actually verified; what it could not verify is "warn"
(with why), and what it did not run because an earlier check failed is "skip".
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

from ..cloud import projects, quotas, services
from ..cloud.gke import CREDENTIALS_FIX, CloudError, map_error
from ..cloud.profile import CredentialsError
from ..config import TPU_MACHINE_TYPE, V6E_ZONES
from ..guide import step as guide_step
from ..secrets import SecretInputError, load_secret_files
from ..threads import DaemonExecutor
from .base import Status, StepState
from .context import StepContext

log = logging.getLogger(__name__)

CheckStatus = Literal["pass", "warn", "fail", "skip"]

PASS_VALID_SECONDS = 3600  # a remembered pass stands in for step 1 this long (then it runs again)

CHECKS: tuple[tuple[str, str], ...] = (
    ("credentials", "Google credentials"),
    ("project", "Project reachable"),
    ("permissions", "Permissions"),
    ("api", "Kubernetes Engine API enabled"),
    ("zone", "Zone offers TPU v6e"),
    ("quota", "TPU v6e quota"),
    ("secrets", "Secrets ready"),
)
TITLES = dict(CHECKS)


@dataclass
class CheckResult:
    id: str
    title: str
    status: CheckStatus
    detail: str
    fix: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in ("pass", "warn")

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "status": self.status, "detail": self.detail,
                "fix": self.fix, "data": self.data}


@dataclass
class PreflightReport:
    results: list[CheckResult]

    def by_id(self, check_id: str) -> CheckResult | None:
        return next((r for r in self.results if r.id == check_id), None)

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status in ("fail", "skip")]

    @property
    def warnings(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "warn"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def state(self) -> StepState:
        fails = [r for r in self.results if r.status == "fail"]
        if fails:
            first = fails[0]
            names = ", ".join(r.title.lower() for r in fails)
            return StepState(Status.FAILED, f"{len(fails)} check(s) failed: {names}", detail=first.detail,
                             fix=first.fix, data={"checks": [r.to_dict() for r in self.results]})
        warn = f" ({len(self.warnings)} warning(s))" if self.warnings else ""
        return StepState(Status.DONE, f"All checks passed{warn}",
                         detail="; ".join(f"{r.title}: {r.detail}" for r in self.warnings),
                         data={"checks": [r.to_dict() for r in self.results]})

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [r.to_dict() for r in self.results]}


def _result(check_id: str, status: CheckStatus, detail: str, fix: str = "", **data: Any) -> CheckResult:
    return CheckResult(check_id, TITLES.get(check_id, check_id), status, detail, fix, dict(data))


def _from_error(check_id: str, err: CloudError, prefix: str = "") -> CheckResult:
    return _result(check_id, "fail", f"{prefix}{err.message}", err.fix, error_kind=err.kind)


# --- the checks -----------------------------------------------------------------------------------


def check_credentials(ctx: StepContext) -> CheckResult:
    try:
        ctx.profile.access_token()
        who = ctx.profile.identity()
    except CredentialsError as e:
        return _result("credentials", "fail", str(e), CREDENTIALS_FIX, error_kind="credentials")
    except Exception as e:  # noqa: BLE001
        err = map_error(e)
        return _from_error("credentials", err)
    # a token in hand is not proof: make one authenticated call (any answer but 401 proves it)
    try:
        client = ctx.profile.projects()
        client.test_iam_permissions(request={"resource": f"projects/{ctx.cfg.project or 'unknown-project'}",
                                             "permissions": ["resourcemanager.projects.get"]})
    except Exception as e:  # noqa: BLE001
        err = map_error(e)
        if err.kind == "credentials":
            return _result("credentials", "fail",
                           f"Google Cloud refused your credentials{f' ({who})' if who else ''}: {err.message}",
                           CREDENTIALS_FIX, error_kind="credentials")
        if err.kind == "unavailable":
            return _result("credentials", "warn",
                           f"Got a token{f' for {who}' if who else ''}, but Google Cloud could not be reached to "
                           f"confirm it ({err.message}).", err.fix)
    if who:
        return _result("credentials", "pass", f"Signed in as {who} ({ctx.profile.describe()}).", identity=who)
    return _result("credentials", "pass",
                   "Credentials work (the account name is not exposed by this credential type).", identity="")


def check_project(ctx: StepContext) -> CheckResult:
    p = ctx.cfg.project
    try:
        info = projects.get_project(ctx.profile, p)
    except CloudError as e:
        return _from_error("project", e)
    name = f" ({info.display_name})" if info.display_name and info.display_name != p else ""
    return _result("project", "pass", f"Project {info.project_id}{name} is active.", number=info.number)


def check_permissions(ctx: StepContext) -> CheckResult:
    p = ctx.cfg.project
    try:
        rep = projects.check_permissions(ctx.profile, p)
    except CloudError as e:
        return _from_error("permissions", e)
    who = None
    try:
        who = ctx.profile.identity()
    except Exception:  # noqa: BLE001
        who = None
    missing = [{"permission": m.name, "role": m.role, "why": m.why, "required": m.required} for m in rep.missing]
    data = {"missing": missing, "roles": rep.roles_to_grant(), "granted": rep.granted, "untestable": rep.unknown,
            "commands": rep.grant_commands(p, who)}
    if rep.missing_required:
        names = ", ".join(m.name for m in rep.missing_required)
        roles = ", ".join(rep.roles_to_grant(required_only=True))
        return CheckResult("permissions", TITLES["permissions"], "fail",
                           f"Missing {len(rep.missing_required)} permission(s) the next steps need: {names}.",
                           f"Ask a project owner to grant you {roles} on {p}: "
                           + "; ".join(rep.grant_commands(p, who, required_only=True)), data)
    if rep.missing_optional or rep.unknown:
        parts = []
        if rep.missing_optional:
            parts.append("missing optional permission(s): " + ", ".join(
                f"{m.name} ({m.why})" for m in rep.missing_optional))
        if rep.unknown:
            parts.append("could not test: " + ", ".join(rep.unknown))
        return CheckResult("permissions", TITLES["permissions"], "warn",
                           "All required permissions granted; " + "; ".join(parts) + ".",
                           f"Optional: ask for {', '.join(sorted({m.role for m in rep.missing_optional}))}.", data)
    return CheckResult("permissions", TITLES["permissions"], "pass",
                       f"All {len(rep.granted)} permissions the steps need are granted.", "", data)


def check_api(ctx: StepContext) -> CheckResult:
    p = ctx.cfg.project
    try:
        state = services.service_state(ctx.profile, p, services.CONTAINER_API)
    except CloudError as e:
        if e.kind == "permission":
            return _result("api", "warn", f"Could not read whether the API is enabled ({e.message}).",
                           "Ask for roles/serviceusage.serviceUsageConsumer, or check at "
                           f"https://console.cloud.google.com/apis/library/container.googleapis.com?project={p}.")
        return _from_error("api", e)
    if state == "ENABLED":
        return _result("api", "pass", f"{services.CONTAINER_API} is enabled.")
    return _result("api", "fail", f"{services.CONTAINER_API} is not enabled in {p} (state {state}).",
                   f"Enable it: gcloud services enable {services.CONTAINER_API} --project {p} "
                   "(or let the wizard enable it; needs roles/serviceusage.serviceUsageAdmin).",
                   can_enable=True, service=services.CONTAINER_API)


def enable_container_api(ctx: StepContext, wait_seconds: float = 120.0) -> CheckResult:
    """The api check's fix, done by the wizard: enable container.googleapis.com, then check again."""
    try:
        services.enable_api(ctx.profile, ctx.cfg.project, services.CONTAINER_API, wait_seconds=wait_seconds,
                            recorder=getattr(ctx, "transcript", None))
    except CloudError as e:
        return _from_error("api", e, prefix="Could not enable the API: ")
    return check_api(ctx)


def check_zone(ctx: StepContext) -> CheckResult:
    p, zone = ctx.cfg.project, ctx.cfg.zone
    disc = services.v6e_zones(ctx.profile, p)
    others = [z for z in disc.zones if z != zone]
    data: dict[str, Any] = {"zones": disc.zones, "live": disc.live, "zone": zone}
    if not disc.offers(zone):
        src = "the Compute API" if disc.live else "the known list"
        return CheckResult("zone", TITLES["zone"], "fail", f"{zone} does not offer TPU v6e (per {src}).",
                           f"Choose a zone that does (--zone): {', '.join(others)}. The guide recommends "
                           "europe-west4-a, us-south1-a, us-east5-a, us-central1-b.", data)
    try:
        has_machine = services.machine_type_in_zone(ctx.profile, p, zone, TPU_MACHINE_TYPE)
    except CloudError as e:
        detail = (f"{zone} offers TPU v6e" + (" (live)" if disc.live else " (known list)") +
                  f", but {TPU_MACHINE_TYPE} could not be confirmed: {e.message}")
        return CheckResult("zone", TITLES["zone"], "warn", detail, disc.warning or e.fix, data)
    data["machine_type"] = has_machine
    if not has_machine:
        return CheckResult("zone", TITLES["zone"], "fail", f"{zone} does not offer {TPU_MACHINE_TYPE}.",
                           f"Choose another v6e zone (--zone): {', '.join(others)}.", data)
    default_pool = check_default_pool_machine(ctx, data)
    if default_pool is not None:
        return default_pool
    if not disc.live:
        return CheckResult("zone", TITLES["zone"], "warn",
                           f"{zone} has {TPU_MACHINE_TYPE}; the v6e zone list could not be read live, the known "
                           f"list includes {zone}. {disc.warning}".strip(), "", data)
    return CheckResult("zone", TITLES["zone"], "pass", f"{zone} offers TPU v6e ({TPU_MACHINE_TYPE}).", "", data)


def check_default_pool_machine(ctx: StepContext, data: dict[str, Any]) -> CheckResult | None:
    """The cluster's default (CPU) pool needs its machine type in the zone too (N1, the guide's
    n1-standard-4, is missing from some regions). None when it is offered; a failed check proposing
    one the zone has when it is not; a warning when it cannot be told."""
    p, zone = ctx.cfg.project, ctx.cfg.zone
    wanted = ctx.cfg.default_machine_type
    try:
        offered = services.machine_type_in_zone(ctx.profile, p, zone, wanted)
    except CloudError as e:
        return CheckResult("zone", TITLES["zone"], "warn",
                           f"{zone} offers TPU v6e ({TPU_MACHINE_TYPE}), but the default pool's machine type {wanted} "
                           f"could not be confirmed there: {e.message}", e.fix, data)
    data["default_machine_type"] = wanted
    data["default_machine_type_offered"] = offered
    if offered:
        return None
    try:
        suggestion = services.suggest_machine_type(services.zone_machine_types(ctx.profile, p, zone), wanted)
    except CloudError:
        suggestion = None
    data["suggested_machine_type"] = suggestion
    if suggestion:
        fix = (f"Use a machine type {zone} offers for the default pool: --default-machine-type {suggestion} "
               f"(or default_machine_type: {suggestion} in the --config file), then run step 1 again.")
    else:
        fix = (f"Choose a machine type {zone} offers (gcloud compute machine-types list --zones {zone}) and pass it "
               "with --default-machine-type TYPE (or default_machine_type in the --config file).")
    return CheckResult("zone", TITLES["zone"], "fail",
                       f"{zone} offers TPU v6e ({TPU_MACHINE_TYPE}) but not {wanted}, the machine type of the "
                       "cluster's default pool.", fix, data)


def check_quota(ctx: StepContext) -> CheckResult:
    cfg = ctx.cfg
    pane = quotas.tpu_quota(ctx.profile, cfg.project, cfg.region, cfg.replicas)
    data = pane.to_dict()
    spot = ""
    if pane.spot.unlimited:
        spot = " Spot quota: unlimited."
    elif pane.spot.limit is not None:
        spot = f" Spot quota beside it: {pane.spot.limit} chips."
    refused = pane.on_demand.error_kind in QUOTA_READ_REFUSED
    if pane.enough is None and refused:
        # the read was refused for a reason the user can fix in a minute: a failed check with that fix
        fix = pane.on_demand.fix
        if pane.on_demand.error_kind == "permission":
            who = None
            try:
                who = ctx.profile.identity()
            except Exception:  # noqa: BLE001
                who = None
            perm = projects.PERMISSION_BY_NAME[quotas.QUOTA_PERMISSION]
            grant = projects.PermissionReport([], [perm]).grant_commands(cfg.project, who)
            fix = (f"Ask a project owner to grant you {perm.role} on {cfg.project} (permission {perm.name}): "
                   + "; ".join(grant) + f". Or check the quota by hand at {pane.console_url}.")
        return CheckResult("quota", TITLES["quota"], "fail",
                           f"Could not read the TPU v6e quota in {pane.region}: "
                           + pane.on_demand.warning.replace(pane.on_demand.fix, "").strip(),
                           fix, {**data, "error_kind": pane.on_demand.error_kind})
    if pane.enough is None:
        return CheckResult("quota", TITLES["quota"], "warn",
                           f"Could not read the TPU v6e quota in {pane.region}: {pane.on_demand.warning}{spot}",
                           f"Make sure {pane.request_text}. {pane.console_url}", data)
    limit = "unlimited" if pane.on_demand.unlimited else f"{pane.on_demand.limit} chips"
    if pane.enough:
        return CheckResult("quota", TITLES["quota"], "pass",
                           f"{limit} of TPU v6e in {pane.region}; {pane.need} needed ({cfg.replicas} x 4).{spot}",
                           "", data)
    spot_hint = ""
    if pane.spot_enough:
        spot_hint = " (Spot quota would cover it, but Spot nodes can be preempted at any time.)"
    return CheckResult("quota", TITLES["quota"], "fail",
                       f"Only {limit} of TPU v6e in {pane.region}; {pane.need} needed ({cfg.replicas} replicas x 4 "
                       f"chips).{spot}",
                       f"Request {pane.request_text} at {pane.console_url} or with: {pane.request_command}; or lower "
                       f"the replicas to {max(0, (pane.on_demand.limit or 0) // 4)}.{spot_hint}", data)


# Quota reads refused for a reason with a one-command fix (not "unknown id" or an outage): the check
# fails with that fix rather than passing on a quota nobody could read.
QUOTA_READ_REFUSED = ("permission", "api_disabled", "quota_project")


def check_secrets(ctx: StepContext, secret_files: Iterable[str | Path] = ()) -> CheckResult:
    files = [str(f) for f in secret_files]
    if files:
        try:
            loaded = load_secret_files(files)
        except SecretInputError as e:
            return _result("secrets", "fail", str(e),
                           "Fix the file (start from templates/), or leave it out and use the form in step 3.",
                           files=files)
        for spec in loaded.specs:
            ctx.secrets.add(spec)
    have = ctx.secrets
    if have.complete:
        src = ", ".join(sorted({s.source for s in have.specs}))
        return _result("secrets", "pass", f"Both secrets are ready (from {src}); they are created in step 3.",
                       sources=src)
    present: list[str] = []
    try:
        info = ctx.cluster()
        if info is not None and info.running:
            from .secrets import secret_statuses

            present = [s.name for s in secret_statuses(ctx) if s.ok]
    except CloudError:
        present = []
    missing = [n for n in have.missing() if n not in present]
    if not missing:
        return _result("secrets", "pass", "Both secrets already exist in the cluster"
                       + (" or were entered." if have.specs else "."), present=present)
    entered = [s.name for s in have.specs]
    known = ", ".join(entered + present)
    return _result("secrets", "warn",
                   f"Not ready yet: {', '.join(missing)}" + (f" (ready: {known})" if known else "")
                   + "; they will be entered in step 3.",
                   "Have your Red Hat registry credentials and a Hugging Face read token at hand for step 3 "
                   "(or pass the filled-in secret files from templates/).", missing=missing)


# --- running them ---------------------------------------------------------------------------------

CheckFn = Callable[[StepContext], CheckResult]


def run_checks(ctx: StepContext, on_result: Callable[[CheckResult], None] | None = None, *,
               secret_files: Iterable[str | Path] = (), max_workers: int = 6) -> PreflightReport:
    """Run every check; `on_result` gets each result as it finishes (from a worker thread)."""
    lock = threading.Lock()
    results: dict[str, CheckResult] = {}

    def done(r: CheckResult) -> None:
        with lock:
            results[r.id] = r
        if on_result is not None:
            try:
                on_result(r)
            except Exception:  # noqa: BLE001
                log.exception("on_result callback failed")

    def timed(fn: Callable[[], CheckResult], check_id: str) -> CheckResult:
        t0 = time.monotonic()
        try:
            r = fn()
        except CloudError as e:
            r = _from_error(check_id, e)
        except Exception as e:  # noqa: BLE001 - a check never takes the wizard down
            log.exception("check %s crashed", check_id)
            r = _result(check_id, "fail", f"The check could not run ({e.__class__.__name__}: {e}).",
                        "Retry; if it keeps failing, report it with the log file.")
        r.seconds = round(time.monotonic() - t0, 3)
        return r

    files = list(secret_files)
    cloud_checks: list[tuple[str, Callable[[], CheckResult]]] = [
        ("project", lambda: check_project(ctx)),
        ("permissions", lambda: check_permissions(ctx)),
        ("api", lambda: check_api(ctx)),
        ("zone", lambda: check_zone(ctx)),
        ("quota", lambda: check_quota(ctx)),
    ]
    config_errors = {k: v for k, v in ctx.cfg.errors().items() if k in ("project", "zone", "replicas")}
    with DaemonExecutor(max_workers=max_workers, thread_name_prefix="preflight") as pool:  # quit never waits
        secrets_future = pool.submit(timed, lambda: check_secrets(ctx, files), "secrets")
        cred = timed(lambda: check_credentials(ctx), "credentials")
        done(cred)
        futures = {}
        if config_errors:
            for cid, _ in cloud_checks:
                done(_result(cid, "skip", "Not checked: the configuration is invalid ("
                             + "; ".join(config_errors.values()) + ")", "Fix the configuration, then re-run step 1."))
        elif cred.status == "fail":
            for cid, _ in cloud_checks:
                done(_result(cid, "skip", "Not checked: no usable Google credentials.", CREDENTIALS_FIX))
        else:
            futures = {pool.submit(timed, fn, cid): cid for cid, fn in cloud_checks}
        for fut in cf.as_completed([*futures, secrets_future]):
            done(fut.result())
    report = PreflightReport([results[cid] for cid, _ in CHECKS if cid in results])
    ctx.record(preflight={"ok": report.ok, "at": time.time(), "replicas": ctx.cfg.replicas, "zone": ctx.cfg.zone,
                          "failed": [r.id for r in report.failed], "warnings": [r.id for r in report.warnings]})
    return report


def probe(ctx: StepContext) -> StepState:
    """Step 1's state without re-running every check: done when the cluster already exists (the
    later steps happened) or the last run for this target and config passed."""
    try:
        info = ctx.cluster()
    except CloudError as e:
        return StepState(Status.FAILED, e.message, fix=e.fix, data={"error_kind": e.kind})
    if info is not None:
        return StepState(Status.DONE, f"Cluster {info.name} exists; preflight is behind you.")
    saved = ctx.saved().get("preflight") or {}
    note = getattr(ctx, "state_note", "") or ""
    if saved and saved.get("replicas") == ctx.cfg.replicas and saved.get("zone") == ctx.cfg.zone:
        at = float(saved.get("at") or 0)
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(at))
        age = time.time() - at
        if saved.get("ok"):
            if 0 <= age <= PASS_VALID_SECONDS:
                return StepState(Status.DONE, f"Passed on {when} (remembered from that run; valid "
                                 f"{PASS_VALID_SECONDS // 60} min).", data={"remembered_at": at})
            return StepState(Status.NOT_STARTED, f"Passed on {when}, over {PASS_VALID_SECONDS // 60} min ago: "
                             "quota and permissions may have changed since.",
                             fix="Run step 1 again.", data={"remembered_at": at})
        return StepState(Status.FAILED, f"Failed on {when}: {', '.join(saved.get('failed') or [])}.",
                         fix="Run step 1 again after fixing what it reported.", data={"remembered_at": at})
    return StepState(Status.NOT_STARTED, "Not run yet for this target." + (f" {note}" if note else ""))


def commands(ctx: StepContext) -> list[str]:
    return guide_step(1).commands(ctx.cfg)


def known_zones() -> tuple[str, ...]:
    return V6E_ZONES


__all__ = ["CheckResult", "CheckStatus", "PreflightReport", "CHECKS", "run_checks", "probe", "commands",
           "enable_container_api",
           "check_credentials", "check_project", "check_permissions", "check_api", "check_zone", "check_quota",
           "check_secrets"]
