"""TPU v6e quota through the Cloud Quotas API.

GKE TPU node pools consume Compute Engine quota, per region, in chips:
  on demand: quotaId TPUS-PER-TPU-FAMILY-per-project-region, dimensions region + tpu_family=CT6E
  Spot:      quotaId PREEMPTIBLE-TPU-V6E-per-project-region, dimension region
A QuotaInfo lists `dimensionsInfos[]`; an entry without a key applies to every value of that key
not overridden elsewhere, so the most specific matching entry wins. There is no usage figure.

These ids come from third-party notes: an unknown id (404) is a warning with the console link,
never a crash. Every failure here is a warning for the pane, not an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..config import CHIPS_PER_REPLICA
from .gke import QUOTAS_CONSOLE, CloudError, ErrorContext, map_error, quota_project_fix, retry_transient
from .profile import ConnectionProfile

COMPUTE_SERVICE = "compute.googleapis.com"
TPU_QUOTA_ID = "TPUS-PER-TPU-FAMILY-per-project-region"
TPU_FAMILY = "CT6E"
SPOT_QUOTA_ID = "PREEMPTIBLE-TPU-V6E-per-project-region"
QUOTAS_API = "cloudquotas.googleapis.com"  # not enabled by default on a new project
QUOTA_PERMISSION = "cloudquotas.quotas.get"  # quotaInfos.get / list
QUOTA_VIEWER_ROLE = "roles/cloudquotas.viewer"


def console_url(project: str) -> str:
    return QUOTAS_CONSOLE.format(project=project or "PROJECT")


@dataclass
class QuotaReading:
    """One quota's effective limit for a region."""

    quota_id: str
    region: str
    limit: int | None  # None: unknown (see warning)
    unlimited: bool = False
    found: bool = False  # the quota id exists and a dimensions entry matched
    warning: str = ""  # why limit is None, with what to do
    error_kind: str = ""  # the CloudError kind that kept it unread ("permission", "api_disabled", ...)
    fix: str = ""  # what to do about error_kind, one command where there is one
    display_name: str = ""
    matched_dimensions: dict[str, str] | None = None

    def covers(self, need: int) -> bool | None:
        if self.unlimited:
            return True
        if self.limit is None:
            return None
        return self.limit >= need


@dataclass
class QuotaPane:
    """What the quota pane shows for step 1."""

    project: str
    region: str
    replicas: int
    need: int  # chips = 4 x replicas
    on_demand: QuotaReading
    spot: QuotaReading
    console_url: str

    @property
    def enough(self) -> bool | None:
        """True/False when the on-demand limit is known; None when it could not be read."""
        return self.on_demand.covers(self.need)

    @property
    def spot_enough(self) -> bool | None:
        return self.spot.covers(self.need)

    @property
    def shortfall(self) -> int:
        if self.on_demand.limit is None or self.on_demand.unlimited:
            return 0
        return max(0, self.need - self.on_demand.limit)

    @property
    def request_text(self) -> str:
        """What to ask for, in the words of the quotas console."""
        return (f"TPUs per TPU family (quota id {TPU_QUOTA_ID}), dimensions region={self.region}, "
                f"tpu_family={TPU_FAMILY}: at least {self.need} chips ({self.replicas} replicas x "
                f"{CHIPS_PER_REPLICA} chips)")

    @property
    def request_command(self) -> str:
        return (f"gcloud beta quotas preferences create --service={COMPUTE_SERVICE} --project={self.project} "
                f"--quota-id={TPU_QUOTA_ID} --dimensions=region={self.region},tpu_family={TPU_FAMILY} "
                f"--preferred-value={self.need}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region, "need": self.need, "replicas": self.replicas,
            "limit": self.on_demand.limit, "unlimited": self.on_demand.unlimited,
            "enough": self.enough, "warning": self.on_demand.warning,
            "spot_limit": self.spot.limit, "spot_unlimited": self.spot.unlimited,
            "spot_enough": self.spot_enough, "spot_warning": self.spot.warning,
            "request": self.request_text, "request_command": self.request_command,
            "console_url": self.console_url,
        }


def match_dimensions(infos: Iterable[Any], wanted: Mapping[str, str]) -> Any | None:
    """The most specific dimensionsInfo applying to `wanted`: every key it sets must equal the wanted
    value; among those, the one setting the most keys wins."""
    best, best_n = None, -1
    for info in infos:
        dims = dict(_get(info, "dimensions") or {})
        if all(wanted.get(k) == v for k, v in dims.items()):
            if len(dims) > best_n:
                best, best_n = info, len(dims)
    return best


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def read_quota(profile: ConnectionProfile, project: str, quota_id: str, region: str,
               dimensions: Mapping[str, str] | None = None) -> QuotaReading:
    """The effective limit of `quota_id` for `region` (+ extra dimensions). Never raises."""
    wanted = {"region": region, **dict(dimensions or {})}
    url = console_url(project)
    name = f"projects/{project}/locations/global/services/{COMPUTE_SERVICE}/quotaInfos/{quota_id}"
    ctx = ErrorContext(project=project, what=f"read quota {quota_id}")

    def once() -> Any:
        try:
            return profile.quotas().get_quota_info(request={"name": name})
        except Exception as e:  # noqa: BLE001 - a quota read never stops the wizard
            raise map_error(e, ctx) from None

    try:
        info = retry_transient(once)
    except CloudError as err:
        fix = ""
        if err.kind == "not_found":
            warning = (f"The Cloud Quotas API does not know quota id {quota_id} for this project; check the TPU "
                       f"v6e quota by hand at {url} (filter: TPU v6e / TPUs per TPU family, region {region}).")
        elif err.kind == "permission":
            fix = (f"Ask a project owner to grant you {QUOTA_VIEWER_ROLE} on {project} (permission "
                   f"{QUOTA_PERMISSION}): gcloud projects add-iam-policy-binding {project} "
                   f"--member=user:YOU@example.com --role={QUOTA_VIEWER_ROLE}; or check the quota by hand at {url}.")
            warning = f"Your account may not read quotas ({err.message})."
        elif err.kind == "api_disabled":
            fix = (f"Enable the Cloud Quotas API: gcloud services enable {QUOTAS_API} --project {project}, "
                   f"then run step 1 again; or check the quota by hand at {url}.")
            warning = f"The Cloud Quotas API ({QUOTAS_API}) is not enabled ({err.message})."
        elif err.kind == "quota_project":
            fix = quota_project_fix(project)
            warning = (f"Your Application Default Credentials have no quota project, so the Cloud Quotas API "
                       f"refuses them ({err.message}).")
        else:
            warning = f"Could not read quota {quota_id} ({err.message}). Check it at {url}. {err.fix}".strip()
        if fix:
            warning = f"{warning} {fix}"
        return QuotaReading(quota_id, region, None, warning=warning, error_kind=err.kind, fix=fix)
    display = _get(info, "quota_display_name") or _get(info, "metric_display_name") or ""
    entry = match_dimensions(_get(info, "dimensions_infos") or [], wanted)
    if entry is None:
        return QuotaReading(quota_id, region, None, found=False, display_name=display,
                            warning=(f"Quota {quota_id} has no value for {_dims_text(wanted)}; check it at {url}."))
    details = _get(entry, "details")
    raw = _get(details, "value") if details is not None else None
    try:
        value = int(raw) if raw is not None else 0
    except (TypeError, ValueError):
        return QuotaReading(quota_id, region, None, display_name=display,
                            warning=f"Quota {quota_id} has an unreadable value; check it at {url}.")
    matched = {str(k): str(v) for k, v in dict(_get(entry, "dimensions") or {}).items()}
    if value < 0:  # -1 means unlimited in the Cloud Quotas API
        return QuotaReading(quota_id, region, None, unlimited=True, found=True, display_name=display,
                            matched_dimensions=matched)
    return QuotaReading(quota_id, region, value, found=True, display_name=display, matched_dimensions=matched)


def _dims_text(d: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items())


def tpu_quota(profile: ConnectionProfile, project: str, region: str, replicas: int) -> QuotaPane:
    """On-demand TPU v6e chips quota (what the wizard's pool uses) and Spot beside it."""
    need = CHIPS_PER_REPLICA * int(replicas)
    on_demand = read_quota(profile, project, TPU_QUOTA_ID, region, {"tpu_family": TPU_FAMILY})
    spot = read_quota(profile, project, SPOT_QUOTA_ID, region)
    return QuotaPane(project=project, region=region, replicas=int(replicas), need=need,
                     on_demand=on_demand, spot=spot, console_url=console_url(project))


__all__ = ["TPU_QUOTA_ID", "SPOT_QUOTA_ID", "TPU_FAMILY", "QuotaReading", "QuotaPane", "read_quota",
           "tpu_quota", "match_dimensions", "console_url"]
