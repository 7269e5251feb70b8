"""cloud/quotas.py: most-specific dimensions match, unknown quota ids are warnings, never crashes."""

from __future__ import annotations

from google.api_core import exceptions as gexc
from google.cloud import cloudquotas_v1

from rhaii_tui.cloud import quotas
from rhaii_tui.cloud.profile import ConnectionProfile


def _info(entries, qid=quotas.TPU_QUOTA_ID):
    return cloudquotas_v1.QuotaInfo(quota_id=qid, quota_display_name="TPUs per TPU family", dimensions_infos=[
        {"dimensions": d, "details": {"value": v}} for d, v in entries])


class FakeQuotas:
    def __init__(self, infos=None, error=None):
        self.infos = infos or {}
        self.error = error
        self.names = []

    def get_quota_info(self, request):
        self.names.append(request["name"])
        if self.error:
            raise self.error
        qid = request["name"].rsplit("/", 1)[-1]
        if qid not in self.infos:
            raise gexc.NotFound(f"QuotaInfo {qid} not found.")
        return self.infos[qid]


class P(ConnectionProfile):
    def __init__(self, client):
        super().__init__()
        self.client = client

    def quotas(self):
        return self.client


def test_most_specific_entry_wins():
    entries = [({}, 0), ({"region": "europe-west4"}, 4), ({"region": "europe-west4", "tpu_family": "CT6E"}, 16),
               ({"region": "us-east5", "tpu_family": "CT6E"}, 64), ({"tpu_family": "CT5LP"}, 99)]
    fake = FakeQuotas({quotas.TPU_QUOTA_ID: _info(entries),
                       quotas.SPOT_QUOTA_ID: _info([({}, 0), ({"region": "europe-west4"}, 64)], quotas.SPOT_QUOTA_ID)})
    pane = quotas.tpu_quota(P(fake), "proj-1", "europe-west4", 3)
    assert pane.on_demand.limit == 16 and pane.need == 12 and pane.enough is True
    assert pane.spot.limit == 64 and pane.spot_enough is True
    assert fake.names[0] == ("projects/proj-1/locations/global/services/compute.googleapis.com/quotaInfos/"
                             "TPUS-PER-TPU-FAMILY-per-project-region")
    # a region without an override falls back to the default entry
    other = quotas.tpu_quota(P(fake), "proj-1", "asia-northeast1", 3)
    assert other.on_demand.limit == 0 and other.enough is False and other.shortfall == 12
    assert "tpu_family=CT6E" in other.request_text and "--preferred-value=12" in other.request_command


def test_unlimited_and_low():
    fake = FakeQuotas({quotas.TPU_QUOTA_ID: _info([({"region": "r1", "tpu_family": "CT6E"}, -1)]),
                       quotas.SPOT_QUOTA_ID: _info([({"region": "r1"}, 8)], quotas.SPOT_QUOTA_ID)})
    pane = quotas.tpu_quota(P(fake), "proj-1", "r1", 5)
    assert pane.on_demand.unlimited and pane.enough is True
    assert pane.spot_enough is False


def test_unknown_quota_id_is_a_warning_with_the_console_link():
    pane = quotas.tpu_quota(P(FakeQuotas({})), "proj-1", "europe-west4", 3)
    assert pane.enough is None and pane.on_demand.limit is None
    assert "https://console.cloud.google.com/iam-admin/quotas?project=proj-1" in pane.on_demand.warning
    assert quotas.TPU_QUOTA_ID in pane.on_demand.warning


def test_permission_and_outage_are_warnings_not_crashes(monkeypatch):
    monkeypatch.setattr("rhaii_tui.cloud.gke.time.sleep", lambda s: None)
    denied = quotas.tpu_quota(P(FakeQuotas(error=gexc.Forbidden("denied"))), "p1", "r", 3)
    assert denied.enough is None and "roles/cloudquotas.viewer" in denied.on_demand.warning
    assert denied.on_demand.error_kind == "permission" and "cloudquotas.quotas.get" in denied.on_demand.fix
    down = quotas.tpu_quota(P(FakeQuotas(error=gexc.ServiceUnavailable("down"))), "p1", "r", 3)
    assert down.enough is None and "console.cloud.google.com" in down.on_demand.warning
    assert down.to_dict()["enough"] is None


def test_no_matching_entry():
    fake = FakeQuotas({quotas.TPU_QUOTA_ID: _info([({"region": "elsewhere", "tpu_family": "CT6E"}, 8)])})
    r = quotas.read_quota(P(fake), "p1", quotas.TPU_QUOTA_ID, "europe-west4", {"tpu_family": "CT6E"})
    assert r.limit is None and not r.found and "europe-west4" in r.warning
