"""cloud/gke.py without a cloud: error mapping, operation following, reattach filter, kubeconfig."""

from __future__ import annotations

import stat
import threading

import pytest
import yaml
from google.api_core import exceptions as gexc
from google.cloud import container_v1

from rhaii_tui.cloud.gke import (
    CloudError,
    ErrorContext,
    Gke,
    classify_text,
    http_error,
    map_error,
    op_targets,
)
from rhaii_tui.cloud.profile import ClusterAccess, ConnectionProfile, CredentialsError

STOCKOUT = ("Not all instances running in IGM after 10s. Current errors: [ZONE_RESOURCE_POOL_EXHAUSTED]: Instance "
            "'gke-x' creation failed: The zone 'projects/p/zones/europe-west4-a' does not have enough resources "
            "available to fulfill the request.")
QUOTA = ("Insufficient quota to satisfy the request: Current errors: [QUOTA_EXCEEDED]: Quota 'TPUS_PER_TPU_FAMILY' "
         "exceeded. Limit: 8.0 in region europe-west4.")


@pytest.mark.parametrize("exc,kind", [
    (gexc.NotFound("Not found: clusters/c"), "not_found"),
    (gexc.Forbidden("Required \"container.clusters.create\" permission(s)"), "permission"),
    (gexc.Forbidden("Kubernetes Engine API has not been used in project 1 before or it is disabled."), "api_disabled"),
    (gexc.Conflict("Already exists: clusters/c"), "conflict"),
    (gexc.ResourceExhausted(QUOTA), "quota"),
    (gexc.TooManyRequests("Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute'"),
     "unavailable"),
    (gexc.FailedPrecondition("Cluster is running incompatible operation operation-1."), "conflict"),
    (gexc.Unauthenticated("Request had invalid authentication credentials."), "credentials"),
    (gexc.Unauthorized("401"), "credentials"),
    (gexc.ServiceUnavailable("The service is currently unavailable."), "unavailable"),
    (CredentialsError("No Application Default Credentials found."), "credentials"),
    (ConnectionError("refused"), "unavailable"),
    (ValueError("weird"), "unknown"),
])
def test_map_error_kinds_and_every_error_has_a_fix(exc, kind):
    err = map_error(exc, ErrorContext(project="my-proj", zone="europe-west4-a", what="do it", need_chips=12))
    assert err.kind == kind
    assert err.fix, "every error says what to do"
    assert "Traceback" not in str(err)


def test_fix_texts_name_the_right_remedy():
    ctx = ErrorContext(project="my-proj", zone="europe-west4-a", need_chips=12)
    quota = map_error(gexc.ResourceExhausted(QUOTA), ctx)
    assert "12 chips" in quota.fix and "europe-west4" in quota.fix
    assert "https://console.cloud.google.com/iam-admin/quotas?project=my-proj" in quota.fix
    api = map_error(gexc.Forbidden("Kubernetes Engine API has not been used in project 1 before or it is disabled."), ctx)
    assert "gcloud services enable container.googleapis.com --project my-proj" in api.fix
    perm = map_error(gexc.Forbidden("permission denied"), ctx)
    assert "roles/container.admin" in perm.fix
    cred = map_error(gexc.Unauthenticated("expired"), ctx)
    assert "gcloud auth application-default login" in cred.fix


def test_classify_operation_texts():
    assert classify_text(STOCKOUT) == "stockout"
    assert classify_text(QUOTA) == "quota"
    assert classify_text("GCE_STOCKOUT") == "stockout"
    assert classify_text("all good") is None


def test_http_error_shapes():
    ctx = ErrorContext(project="p", what="check")
    body = {"error": {"code": 403, "message": "Kubernetes Engine API has not been used in project 1",
                      "status": "PERMISSION_DENIED", "details": [{"reason": "SERVICE_DISABLED"}]}}
    assert http_error(403, body, ctx).kind == "api_disabled"
    assert http_error(401, {}, ctx).kind == "credentials"
    assert http_error(404, "nope", ctx).kind == "not_found"
    assert http_error(503, {}, ctx).kind == "unavailable"


def test_op_targets_matches_by_tail_with_project_number_and_zones():
    link = "https://container.googleapis.com/v1/projects/123456/zones/europe-west4-a/clusters/c1"
    assert op_targets(link, "c1")
    assert not op_targets(link, "c10")
    assert not op_targets(link, "c1", "tpu-pool")
    pool = link + "/nodePools/tpu-pool"
    assert op_targets(pool, "c1")
    assert op_targets(pool, "c1", "tpu-pool")
    assert not op_targets(pool, "c1", "other")


# --- a fake ClusterManagerClient ----------------------------------------------------------------


class FakeGke:
    def __init__(self):
        self.ops: dict[str, list[container_v1.Operation]] = {}
        self.created: list[dict] = []
        self.get_calls = 0
        self.fail_next_gets = 0

    def add_op(self, name, seq):
        self.ops[name] = seq

    def get_operation(self, request):
        self.get_calls += 1
        if self.fail_next_gets:
            self.fail_next_gets -= 1
            raise gexc.ServiceUnavailable("flaky")
        name = request["name"].rsplit("/", 1)[-1]
        seq = self.ops[name]
        return seq.pop(0) if len(seq) > 1 else seq[0]

    def list_operations(self, request):
        ops = [seq[0] for seq in self.ops.values()]
        return container_v1.ListOperationsResponse(operations=ops)

    def create_cluster(self, request):
        self.created.append(request)
        return _op("op-new", "CREATE_CLUSTER", "RUNNING", "/clusters/" + request["cluster"]["name"])

    def create_node_pool(self, request):
        self.created.append(request)
        return _op("op-pool", "CREATE_NODE_POOL", "RUNNING", "/clusters/c1/nodePools/tpu-pool")

    def get_cluster(self, request):
        raise gexc.NotFound("no such cluster")


def _op(name, typ, status, target, error=None, start="2026-01-01T00:00:00Z", **kw):
    op = container_v1.Operation(name=name, operation_type=typ, status=status,
                                target_link="https://container.googleapis.com/v1/projects/42/zones/z/" + target.lstrip("/"),
                                start_time=start, **kw)
    if error:
        op.error = {"code": 8, "message": error}
    return op


class FakeProfile(ConnectionProfile):
    def __init__(self, client):
        super().__init__()
        self.client = client

    def gke(self):
        return self.client

    def credentials(self):  # pragma: no cover - not used
        raise CredentialsError("no")


def test_wait_reports_progress_and_survives_transient_errors(monkeypatch):
    import rhaii_tui.cloud.gke as gke_mod

    monkeypatch.setattr(gke_mod.time, "sleep", lambda s: None)
    fake = FakeGke()
    fake.add_op("op1", [_op("op1", "CREATE_CLUSTER", "RUNNING", "clusters/c1", detail="Creating the control plane"),
                        _op("op1", "CREATE_CLUSTER", "RUNNING", "clusters/c1"),
                        _op("op1", "CREATE_CLUSTER", "DONE", "clusters/c1", end_time="2026-01-01T00:05:00Z")])
    g = Gke(FakeProfile(fake), "p", "z")
    first = g.get_operation("op1")
    from rhaii_tui.cloud.retry import DEFAULT_POLICY

    fake.fail_next_gets = DEFAULT_POLICY.attempts + 1  # more than one call's retries: the follow loop sees it
    seen = []
    info = g.wait(first, seen.append, poll_min=0.001, poll_max=0.002)
    assert info.done and not info.failed
    assert seen[-1].fraction == 1.0
    assert any(p.reconnecting for p in seen), "a failed poll shows as reconnecting, not as an error"
    assert seen[0].expected == 300 and seen[0].message


def test_wait_turns_a_stockout_into_a_cloud_error_with_zones():
    fake = FakeGke()
    fake.add_op("op2", [_op("op2", "CREATE_NODE_POOL", "DONE", "clusters/c1/nodePools/tpu-pool", error=STOCKOUT)])
    g = Gke(FakeProfile(fake), "p", "europe-west4-a")
    with pytest.raises(CloudError) as ei:
        g.wait("op2", poll_min=0.001, alternatives=("us-east5-a", "us-south1-a"))
    assert ei.value.kind == "stockout"
    assert "us-east5-a" in ei.value.fix and "europe-west4-a" in ei.value.fix


def test_wait_quota_failure():
    fake = FakeGke()
    fake.add_op("op3", [_op("op3", "CREATE_NODE_POOL", "DONE", "clusters/c1/nodePools/tpu-pool", error=QUOTA)])
    with pytest.raises(CloudError) as ei:
        Gke(FakeProfile(fake), "p", "europe-west4-a").wait("op3", poll_min=0.001, need_chips=12)
    assert ei.value.kind == "quota" and "12 chips" in ei.value.fix


def test_wait_stops_on_request_without_error():
    fake = FakeGke()
    fake.add_op("op4", [_op("op4", "CREATE_CLUSTER", "RUNNING", "clusters/c1")])
    stop = threading.Event()
    stop.set()
    info = Gke(FakeProfile(fake), "p", "z").wait("op4", stop=stop, poll_min=0.001)
    assert not info.done


def test_in_flight_filters_by_cluster_pool_and_status():
    fake = FakeGke()
    fake.add_op("a", [_op("a", "CREATE_CLUSTER", "DONE", "clusters/c1")])
    fake.add_op("b", [_op("b", "CREATE_CLUSTER", "RUNNING", "clusters/other")])
    fake.add_op("c", [_op("c", "CREATE_NODE_POOL", "RUNNING", "clusters/c1/nodePools/tpu-pool")])
    g = Gke(FakeProfile(fake), "p", "z")
    assert g.in_flight("c1", {"CREATE_CLUSTER"}) is None
    op = g.in_flight("c1")
    assert op is not None and op.name == "c"
    assert g.in_flight("c1", {"CREATE_NODE_POOL"}, pool="tpu-pool").name == "c"
    assert g.in_flight("c1", {"CREATE_NODE_POOL"}, pool="other-pool") is None


def test_create_requests_follow_the_guide():
    fake = FakeGke()
    g = Gke(FakeProfile(fake), "p", "europe-west4-a")
    g.create_cluster("c1")
    g.create_tpu_pool("c1", 3)
    cluster = fake.created[0]["cluster"]
    pool0 = cluster["node_pools"][0]
    assert fake.created[0]["parent"] == "projects/p/locations/europe-west4-a"
    assert pool0["config"]["machine_type"] == "n1-standard-4" and pool0["initial_node_count"] == 2
    assert pool0["autoscaling"] == {"enabled": True, "min_node_count": 1, "max_node_count": 5}
    assert cluster["ip_allocation_policy"]["use_ip_aliases"] is True
    # GKE Dataplane V2: the only way step 8's NetworkPolicies are enforced, chosen at creation only
    assert cluster["network_config"] == {"datapath_provider": "ADVANCED_DATAPATH"}
    tpu = fake.created[1]["node_pool"]
    assert tpu["name"] == "tpu-pool" and tpu["config"]["machine_type"] == "ct6e-standard-4t"
    assert tpu["initial_node_count"] == 3 and "autoscaling" not in tpu
    # they are valid requests for the real client types
    container_v1.CreateClusterRequest(fake.created[0])
    container_v1.CreateNodePoolRequest(fake.created[1])


def test_get_cluster_missing_is_none():
    assert Gke(FakeProfile(FakeGke()), "p", "z").get_cluster("c1") is None


def test_write_kubeconfig_merges_uses_exec_plugin_never_a_token(tmp_path):
    from rhaii_tui.cloud.gke import ClusterInfo

    kc = tmp_path / "kube" / "config"
    kc.parent.mkdir()
    kc.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "other",
                                  "clusters": [{"name": "other", "cluster": {"server": "https://1.2.3.4"}}],
                                  "users": [{"name": "other", "user": {"token": "keep-me"}}],
                                  "contexts": [{"name": "other", "context": {"cluster": "other", "user": "other"}}]}))

    class P(FakeProfile):
        def access_token(self):
            return "SECRET-ACCESS-TOKEN"

    g = Gke(P(FakeGke()), "proj-1", "europe-west4-a")
    info = ClusterInfo("c1", "europe-west4-a", "RUNNING", "", "127.0.0.1:6443", "Q0FDRVJU", [])
    path = g.write_kubeconfig(info, kc)
    g.write_kubeconfig(info, kc)  # twice: still one entry
    doc = yaml.safe_load(path.read_text())
    name = "gke_proj-1_europe-west4-a_c1"
    assert doc["current-context"] == name
    assert [c["name"] for c in doc["clusters"]] == ["other", name]
    entry = next(c for c in doc["clusters"] if c["name"] == name)["cluster"]
    assert entry == {"server": "https://127.0.0.1:6443", "certificate-authority-data": "Q0FDRVJU"}
    user = next(u for u in doc["users"] if u["name"] == name)["user"]
    assert user["exec"]["command"] == "gke-gcloud-auth-plugin" and "token" not in user
    assert "SECRET-ACCESS-TOKEN" not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_cluster_access_without_endpoint_is_a_clear_error():
    from rhaii_tui.cloud.gke import ClusterInfo

    g = Gke(FakeProfile(FakeGke()), "p", "z")
    with pytest.raises(CloudError) as ei:
        g.cluster_access(ClusterInfo("c1", "z", "PROVISIONING", "", "", "", []))
    assert ei.value.kind == "conflict" and "RUNNING" in ei.value.fix
    acc = g.cluster_access(ClusterInfo("c1", "z", "RUNNING", "", "1.2.3.4", "Q0E=", []))
    assert acc == ClusterAccess("1.2.3.4", "Q0E=")


@pytest.mark.parametrize("fields,enforced,by", [
    ({"network_config": {"datapath_provider": container_v1.DatapathProvider.ADVANCED_DATAPATH}}, True,
     "GKE Dataplane V2"),
    ({"network_policy": {"enabled": True, "provider": container_v1.NetworkPolicy.Provider.CALICO},
      "addons_config": {"network_policy_config": {"disabled": False}}}, True, "Calico (network policy enforcement)"),
    ({"network_policy": {"enabled": True}, "addons_config": {"network_policy_config": {"disabled": True}}}, False, ""),
    ({"network_config": {"datapath_provider": container_v1.DatapathProvider.LEGACY_DATAPATH},
      "addons_config": {"network_policy_config": {"disabled": True}}}, False, ""),
    ({}, False, ""),
])
def test_cluster_info_says_whether_network_policies_are_enforced(fields, enforced, by):
    from rhaii_tui.cloud.gke import _cluster_info

    info = _cluster_info(container_v1.Cluster(name="c1", **fields))
    assert (info.enforces_network_policy, info.network_policy_enforcement) == (enforced, by)
