"""Reading the TPU quota as Google allows it: the Cloud Quotas API enabled, cloudquotas.quotas.get, and
for user Application Default Credentials a quota project sent as `x-goog-user-project`. Each refusal
is a failed step-1 check with the one command that fixes it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from rhaii_tui.cloud import gke, quotas
from rhaii_tui.cloud.profile import SimProfile
from rhaii_tui.config import DeployConfig, StateStore
from rhaii_tui.steps import preflight
from rhaii_tui.steps.base import Status
from rhaii_tui.steps.context import StepContext

PROJECT = "rhaii-demo-project"
QUOTA_NAME = (f"projects/{PROJECT}/locations/global/services/compute.googleapis.com/quotaInfos/"
              f"{quotas.TPU_QUOTA_ID}")
ADC_MESSAGE = ("Your application is authenticating by using local Application Default Credentials. The "
               "cloudquotas.googleapis.com API requires a quota project, which is not set by default. To learn "
               "how to set your quota project, see https://cloud.google.com/docs/authentication/adc-troubleshooting"
               "/user-creds .")


def run_preflight(world, tmp_path: Path, profile=None):
    ctx = StepContext(DeployConfig(project=PROJECT, zone="europe-west4-a", cluster="rhaii-tpu-scaleout-cluster",
                                   replicas=3), profile or world.profile(), StateStore(tmp_path / "state"))
    report = preflight.run_checks(ctx)
    return report, {r.id: r for r in report.results}


def raw_quota_get(world, **headers) -> httpx.Response:
    return httpx.get(f"{world.google_url}/v1/{QUOTA_NAME}", timeout=30.0,
                     headers={"Authorization": f"Bearer {world.token}", **headers})


# --- the failed checks and their fixes ------------------------------------------------------------


@pytest.mark.parametrize("scenario,failed,fix", [
    ("quotas-api-disabled", {"quota"},
     "Enable the Cloud Quotas API: gcloud services enable cloudquotas.googleapis.com --project rhaii-demo-project"),
    ("no-quota-permission", {"permissions", "quota"},
     "gcloud projects add-iam-policy-binding rhaii-demo-project --member=user:demo-user@example.com "
     "--role=roles/cloudquotas.viewer"),
    ("adc-no-quota-project", {"api", "quota"},
     "gcloud auth application-default set-quota-project rhaii-demo-project"),
])
def test_a_refused_quota_read_is_a_failed_check_with_its_fix(make_sim_world, tmp_path, scenario, failed, fix):
    world = make_sim_world(scenario)
    report, got = run_preflight(world, tmp_path)
    assert {cid for cid, r in got.items() if r.status == "fail"} == failed
    quota = got["quota"]
    assert fix in quota.fix and "Traceback" not in quota.detail
    assert quota.data["error_kind"] in ("api_disabled", "permission", "quota_project")
    state = report.state()
    assert state.status == Status.FAILED and fix in state.fix  # the first failed check's fix leads


def test_no_quota_permission_names_the_cloud_quotas_permission_and_role(make_sim_world, tmp_path):
    _, got = run_preflight(make_sim_world("no-quota-permission"), tmp_path)
    perm = got["permissions"]
    assert "cloudquotas.quotas.get" in perm.detail and "roles/cloudquotas.viewer" in perm.fix
    assert [m["permission"] for m in perm.data["missing"]] == ["cloudquotas.quotas.get"]
    assert "permission cloudquotas.quotas.get" in got["quota"].fix


def test_without_the_instance_group_read_preflight_warns_that_stockouts_show_late(make_sim_world, tmp_path):
    """Reading a stocked-out pool's VM errors (instanceGroupManagers.listErrors) needs
    compute.instanceGroupManagers.get; without it the wizard only learns of a stockout from GKE's
    operation, ~35 minutes later. Preflight says so, as a warning, with the role; Compute refuses
    the read as Google does."""
    world = make_sim_world("fresh", denied_permissions=("compute.instanceGroupManagers.get",))
    _, got = run_preflight(world, tmp_path)
    perm = got["permissions"]
    assert perm.status == "warn"
    assert "compute.instanceGroupManagers.get" in perm.detail and "stockout" in perm.detail
    assert "roles/compute.viewer" in perm.fix
    r = httpx.get(f"{world.google_url}/compute/v1/projects/{PROJECT}/zones/europe-west4-a/instanceGroupManagers/any-grp",
                  headers={"Authorization": f"Bearer {world.token}"}, timeout=30.0)
    assert r.status_code == 403
    assert "Required 'compute.instanceGroupManagers.get' permission" in r.json()["error"]["message"]


def test_without_a_quota_project_the_check_says_so(make_sim_world, tmp_path):
    _, got = run_preflight(make_sim_world("adc-no-quota-project"), tmp_path)
    assert "no quota project" in got["quota"].detail
    assert "requires a quota project" in got["api"].detail
    assert "set-quota-project rhaii-demo-project" in got["api"].fix
    assert got["api"].data.get("error_kind") == "quota_project"


# --- the header ---------------------------------------------------------------------------------------


def test_credentials_with_a_quota_project_send_the_header_and_pass(sim_world, tmp_path):
    profile = sim_world.profile()
    assert profile.quota_project() == PROJECT  # from the emulator's description of its credentials
    seen: list[str | None] = []
    client = profile.rest("serviceusage")
    client.event_hooks["request"].append(lambda req: seen.append(req.headers.get("x-goog-user-project")))
    r = client.get(f"/v1/projects/{PROJECT}/services/cloudquotas.googleapis.com")
    assert r.status_code == 200 and r.json()["state"] == "ENABLED" and seen == [PROJECT]
    info = profile.quotas().get_quota_info(request={"name": QUOTA_NAME})
    assert info.quota_id == quotas.TPU_QUOTA_ID
    _, got = run_preflight(sim_world, tmp_path)
    assert got["quota"].status == "pass" and got["api"].status == "pass"


def test_a_client_that_drops_the_quota_project_is_refused_as_google_refuses_it(sim_world, tmp_path):
    """User ADC with a quota project only works because the header goes out: without it, the same
    world answers with Google's error."""
    r = raw_quota_get(sim_world)
    assert r.status_code == 403
    err = r.json()["error"]
    assert err["status"] == "PERMISSION_DENIED" and err["message"] == ADC_MESSAGE
    info = err["details"][0]
    assert info["reason"] == "SERVICE_DISABLED" and info["metadata"]["service"] == "cloudquotas.googleapis.com"
    assert raw_quota_get(sim_world, **{"x-goog-user-project": PROJECT}).status_code == 200
    unknown = raw_quota_get(sim_world, **{"x-goog-user-project": "someone-elses-project"})
    assert unknown.status_code == 403 and "serviceusage.services.use" in unknown.json()["error"]["message"]

    class NoQuotaProject(SimProfile):
        def adc_quota_project(self):
            return None

    _, got = run_preflight(sim_world, tmp_path, NoQuotaProject(sim_world.endpoints_file))
    assert got["quota"].status == "fail" and "set-quota-project" in got["quota"].fix


def test_service_account_credentials_need_no_quota_project(make_sim_world, tmp_path):
    world = make_sim_world("fresh", credentials="service_account")
    assert world.endpoints["credentials"] == {"type": "service_account", "quota_project_id": None}
    assert world.profile().quota_project() is None
    assert raw_quota_get(world).status_code == 200
    _, got = run_preflight(world, tmp_path)
    assert got["quota"].status == "pass" and got["api"].status == "pass"
    assert "iam.gserviceaccount.com" in got["credentials"].detail


def test_sim_profile_reads_the_quota_project_from_endpoints_json(tmp_path):
    ep = tmp_path / "endpoints.json"
    ep.write_text(json.dumps({"google_api": "http://127.0.0.1:1", "token": "t",
                              "credentials": {"type": "authorized_user", "quota_project_id": "my-quota-proj"}}))
    prof = SimProfile(ep)
    assert prof.quota_project() == "my-quota-proj"
    headers: dict[str, str] = {}
    prof.credentials().apply(headers)
    assert headers["x-goog-user-project"] == "my-quota-proj"
    ep.write_text(json.dumps({"google_api": "http://127.0.0.1:1", "token": "t"}))
    assert prof.quota_project() is None


# --- error mapping ------------------------------------------------------------------------------------


def test_the_quota_project_error_is_not_mistaken_for_a_disabled_api():
    body = {"error": {"code": 403, "status": "PERMISSION_DENIED", "message": ADC_MESSAGE,
                      "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "SERVICE_DISABLED"}]}}
    err = gke.http_error(403, body, gke.ErrorContext(project="p-1234567", what="read the quota"))
    assert err.kind == "quota_project"
    assert "gcloud auth application-default set-quota-project p-1234567" in err.fix
    assert "services enable" not in err.fix
    from google.api_core import exceptions as gexc

    mapped = gke.map_error(gexc.Forbidden(ADC_MESSAGE), gke.ErrorContext(project="p-1234567"))
    assert mapped.kind == "quota_project" and "set-quota-project p-1234567" in mapped.fix


@pytest.mark.parametrize("quota_project,expect", [(PROJECT, "pass"), (None, "fail")])
def test_real_mode_user_adc_sends_its_quota_project(sim_world, tmp_path, monkeypatch, quota_project, expect):
    """GcpProfile with user credentials as google.auth.default() returns them (the ADC file's
    quota_project_id), talking to the emulator: the client libraries and rest() send the header
    when the file has a quota project; without one, step 1 names set-quota-project."""
    import google.auth
    from google.oauth2.credentials import Credentials

    from rhaii_tui.cloud.profile import GcpProfile

    creds = Credentials(token=sim_world.token, quota_project_id=quota_project)
    monkeypatch.setattr(google.auth, "default", lambda scopes=None, **kw: (creds, PROJECT))

    class AtEmulator(GcpProfile):
        def api_base(self, service):
            return sim_world.google_url

    prof = AtEmulator()
    assert prof.quota_project() == quota_project
    _, got = run_preflight(sim_world, tmp_path, prof)
    assert got["quota"].status == expect and got["api"].status == expect
    if expect == "fail":
        assert "gcloud auth application-default set-quota-project rhaii-demo-project" in got["quota"].fix
