"""Resource Manager: the project, and which of the permissions the wizard needs the caller lacks.

`check_permissions()` asks `projects.testIamPermissions` for every permission the later steps use
and maps each missing one to the predefined role that grants it, so step 1 can say exactly what to
ask a project owner for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .gke import CloudError, ErrorContext, map_error, retry_transient
from .profile import ConnectionProfile


@dataclass(frozen=True)
class Permission:
    name: str
    role: str  # the predefined role that grants it (the one to ask for)
    why: str  # which step needs it, in the user's words
    required: bool = True  # False: the wizard works around it (warning only)


# What the steps do, and the permission each action needs. GKE's Kubernetes-level IAM permissions
# (container.namespaces.*, container.secrets.*, container.nodes.list) let the same account act
# inside the cluster; roles/container.admin covers all container.* ones.
PERMISSIONS: tuple[Permission, ...] = (
    Permission("resourcemanager.projects.get", "roles/browser", "read the project (step 1)"),
    Permission("serviceusage.services.get", "roles/serviceusage.serviceUsageConsumer",
               "check that the Kubernetes Engine API is enabled (step 1)"),
    Permission("cloudquotas.quotas.get", "roles/cloudquotas.viewer",
               "read the TPU v6e quota through the Cloud Quotas API (step 1)"),
    Permission("compute.acceleratorTypes.list", "roles/compute.viewer",
               "discover the zones that offer TPU v6e (step 1; falls back to the known list)", required=False),
    Permission("compute.machineTypes.get", "roles/compute.viewer",
               "confirm ct6e-standard-4t exists in the zone (step 1)", required=False),
    Permission("container.clusters.create", "roles/container.admin", "create the cluster (step 2)"),
    Permission("container.clusters.get", "roles/container.admin", "read the cluster and its endpoint (step 2)"),
    Permission("container.clusters.list", "roles/container.admin", "find the cluster (step 2)"),
    Permission("container.clusters.update", "roles/container.admin",
               "create and resize the TPU node pool (step 2)"),
    Permission("container.operations.get", "roles/container.admin", "follow cluster operations (step 2)"),
    Permission("container.operations.list", "roles/container.admin",
               "reattach to an operation already running (step 2)"),
    Permission("compute.instanceGroupManagers.get", "roles/compute.viewer",
               "see why TPU VMs do not start (a stockout) within minutes, not after GKE's ~35 (step 2)",
               required=False),
    Permission("iam.serviceAccounts.actAs", "roles/iam.serviceAccountUser",
               "let the nodes run as the Compute Engine default service account (step 2)"),
    Permission("container.nodes.list", "roles/container.admin", "see the TPU nodes become Ready (step 2)"),
    Permission("container.namespaces.create", "roles/container.admin", "create the namespace (step 3)"),
    Permission("container.secrets.create", "roles/container.admin", "create the two secrets (step 3)"),
    Permission("container.secrets.update", "roles/container.admin", "update the secrets on a re-run (step 3)"),
    Permission("container.clusters.delete", "roles/container.admin",
               "delete the cluster when you tear down (optional)", required=False),
)

PERMISSION_BY_NAME: dict[str, Permission] = {p.name: p for p in PERMISSIONS}


@dataclass
class ProjectInfo:
    project_id: str
    display_name: str
    state: str
    number: str = ""  # from name "projects/123456"


@dataclass
class PermissionReport:
    granted: list[str]
    missing: list[Permission]
    unknown: list[str] = field(default_factory=list)  # the API refused to test these

    @property
    def missing_required(self) -> list[Permission]:
        return [p for p in self.missing if p.required]

    @property
    def missing_optional(self) -> list[Permission]:
        return [p for p in self.missing if not p.required]

    @property
    def ok(self) -> bool:
        return not self.missing_required

    def roles_to_grant(self, required_only: bool = False) -> list[str]:
        src = self.missing_required if required_only else self.missing
        return sorted({p.role for p in src})

    def grant_commands(self, project: str, member: str | None = None, required_only: bool = False) -> list[str]:
        who = member or "user:YOU@example.com"
        if who and ":" not in who:
            who = (f"serviceAccount:{who}" if who.endswith(".gserviceaccount.com") else f"user:{who}")
        return [f"gcloud projects add-iam-policy-binding {project} --member={who} --role={r}"
                for r in self.roles_to_grant(required_only)]


def get_project(profile: ConnectionProfile, project: str) -> ProjectInfo:
    """The project, or CloudError (not_found when it does not exist or is not visible to you)."""
    ctx = ErrorContext(project=project, what=f"read project {project}")
    def once() -> Any:
        try:
            return profile.projects().get_project(request={"name": f"projects/{project}"})
        except Exception as e:  # noqa: BLE001
            raise map_error(e, ctx) from None

    try:
        p = retry_transient(once)
    except CloudError as err:
        if err.kind in ("not_found", "permission"):
            raise CloudError(
                "not_found" if err.kind == "not_found" else "permission",
                f"Project {project} does not exist or your account cannot see it ({err.message}).",
                f"Check the project id (gcloud projects list shows the ones you can use), or ask an owner of "
                f"{project} to grant you roles/browser.") from None
        raise err from None
    state = getattr(p.state, "name", str(p.state))
    number = (getattr(p, "name", "") or "").rsplit("/", 1)[-1]
    info = ProjectInfo(project_id=getattr(p, "project_id", "") or project,
                       display_name=getattr(p, "display_name", "") or "", state=state, number=number)
    if state not in ("ACTIVE", "STATE_UNSPECIFIED", "1"):
        raise CloudError("not_found", f"Project {project} is {state.lower().replace('_', ' ')}, not active.",
                         "Restore it in the console (IAM & Admin > Manage resources) or choose another project.")
    return info


def check_permissions(profile: ConnectionProfile, project: str,
                      permissions: tuple[Permission, ...] = PERMISSIONS) -> PermissionReport:
    """Which of `permissions` the caller holds on the project (testIamPermissions)."""
    names = [p.name for p in permissions]
    ctx = ErrorContext(project=project, what="test your permissions on the project")
    client = profile.projects()

    def test(batch: list[str]) -> list[str]:
        def once() -> list[str]:
            try:
                resp = client.test_iam_permissions(request={"resource": f"projects/{project}", "permissions": batch})
            except Exception as e:  # noqa: BLE001
                raise map_error(e, ctx) from None
            return list(resp.permissions)

        return retry_transient(once)

    unknown: list[str] = []
    try:
        granted = set(test(names))
    except CloudError as err:
        if err.details.get("code") != 400:  # credentials, not_found, api_disabled, unavailable: as such
            raise
        # INVALID_ARGUMENT: one name is not testable on a project; test one by one, keep going
        granted = set()
        for n in names:
            try:
                granted |= set(test([n]))
            except CloudError as err2:
                if err2.details.get("code") != 400:
                    raise
                unknown.append(n)
    missing = [p for p in permissions if p.name not in granted and p.name not in unknown]
    return PermissionReport(granted=sorted(granted), missing=missing, unknown=unknown)


__all__ = ["Permission", "PERMISSIONS", "PERMISSION_BY_NAME", "ProjectInfo", "PermissionReport",
           "get_project", "check_permissions"]
