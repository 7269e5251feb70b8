"""The simulated Google APIs refuse what Google refuses: request bodies are parsed with the
services' own message types (unknown fields, wrong JSON types, bad enum values, nested included:
400 INVALID_ARGUMENT with a google.rpc.BadRequest detail), GKE's refused field combinations are
refused, and the bodies the real clients and gcloud send are taken. Also: the simulated cluster's
API server is never older than its nodes."""

from __future__ import annotations

import time

import httpx
import pytest
from google.api_core import exceptions as gexc
from kubernetes import client as k8s

from rhaii_tui.sim import google_schema

PROJECT = "rhaii-demo-project"
ZONE = "europe-west4-a"
PARENT = f"projects/{PROJECT}/locations/{ZONE}"
POOL = {"name": "default-pool", "initial_node_count": 2, "config": {"machine_type": "n1-standard-4"}}


def post(world, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{world.google_url}{path}", json=body, headers={"Authorization": f"Bearer {world.token}"},
                      timeout=30)


def clusters(world) -> list[str]:
    return [c.name for c in world.profile().gke().list_clusters(request={"parent": PARENT}).clusters]


# --- the parse (no emulator) -----------------------------------------------------------------------


def refusal(method: str, path: str, body: dict) -> dict:
    with pytest.raises(google_schema.GoogleError) as ei:
        google_schema.check_request(method, path, body)
    assert ei.value.code == 400 and ei.value.status == "INVALID_ARGUMENT"
    return ei.value.body()["error"]


def test_unknown_fields_wrong_types_and_bad_enums_are_named_as_google_names_them():
    err = refusal("POST", f"/v1/{PARENT}/clusters", {"cluster": {
        "name": "c1", "foo": 1, "nodePools": [{"name": "p", "initialNodeCount": "two"}],
        "releaseChannel": {"channel": "FAST"}}})
    lines = err["message"].split("\n")
    assert lines == [
        "Invalid JSON payload received. Unknown name \"foo\" at 'cluster': Cannot find field.",
        "Invalid value at 'cluster.node_pools[0].initial_node_count' (TYPE_INT32), \"two\"",
        "Invalid value at 'cluster.release_channel.channel' "
        "(type.googleapis.com/google.container.v1.ReleaseChannel.Channel), \"FAST\""]
    (detail,) = err["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert [v["field"] for v in detail["fieldViolations"]] == [
        "cluster", "cluster.node_pools[0].initial_node_count", "cluster.release_channel.channel"]
    # a top-level unknown name has no path
    err = refusal("POST", f"/v1/{PARENT}/clusters/c1/nodePools/p:setSize", {"nodeCount": 1, "count": 2})
    assert err["message"] == "Invalid JSON payload received. Unknown name \"count\": Cannot find field."
    assert err["details"][0]["fieldViolations"] == [{"description": err["message"]}]


def test_enums_by_name_or_number_and_path_fields_in_the_body_are_taken():
    # gcloud sends names (and the path's parent again in the body); the Python clients send numbers
    google_schema.check_request("POST", f"/v1/{PARENT}/clusters", {
        "parent": PARENT, "cluster": {"name": "c1", "releaseChannel": {"channel": "REGULAR"}, "nodePools": [{"name": "p"}]}})
    google_schema.check_request("POST", f"/v1/projects/{PROJECT}/zones/{ZONE}/clusters", {
        "cluster": {"name": "c1", "releaseChannel": {"channel": 2}, "nodePools": [{"name": "p"}]}})


@pytest.mark.parametrize("body, says", [
    ({"cluster": {"name": "c1", "initialNodeCount": 3, "nodePools": [{"name": "p"}]}},
     "Cluster.initial_node_count must be unset when Cluster.node_pools is specified"),
    ({"cluster": {"name": "c1", "nodeConfig": {"machineType": "e2-medium"}, "nodePools": [{"name": "p"}]}},
     "Cluster.node_config must be unset when Cluster.node_pools is specified"),
    ({"cluster": {"nodePools": [{"name": "p"}]}}, "Cluster.name must be specified."),
    ({"cluster": {"name": "c1", "nodePools": [{"initialNodeCount": 1}]}}, "Cluster.node_pools[0].name must be specified."),
    ({"cluster": {"name": "c1", "nodePools": [{"name": "p"}, {"name": "p"}]}}, "used by more than one node pool"),
    ({"cluster": {"name": "c1", "nodePools": [{"name": "p", "autoscaling": {
        "enabled": True, "minNodeCount": 3, "maxNodeCount": 1}}]}}, "must be greater than or equal to min_node_count"),
    ({"cluster": {"name": "c1", "nodePools": [{"name": "p", "autoscaling": {
        "enabled": True, "minNodeCount": 1, "totalMaxNodeCount": 4}}]}}, "are mutually exclusive"),
])
def test_gke_refuses_these_cluster_bodies(body, says):
    assert says in refusal("POST", f"/v1/{PARENT}/clusters", body)["message"]


def test_gke_refuses_a_nameless_pool_and_a_negative_size():
    assert refusal("POST", f"/v1/{PARENT}/clusters/c1/nodePools", {"nodePool": {"initialNodeCount": 1}})[
        "message"] == "NodePool.name must be specified."
    assert "greater than or equal to zero" in refusal(
        "POST", f"/v1/{PARENT}/clusters/c1/nodePools/p:setSize", {"nodeCount": -1})["message"]
    google_schema.check_request("POST", f"/v1/{PARENT}/clusters/c1/nodePools/p:setSize", {})  # 0: scale to zero


def test_services_without_a_client_library_are_checked_against_googles_discovery_documents():
    pytest.importorskip("googleapiclient")  # ships them; without it these bodies are not checked
    google_schema.check_request("POST", f"/v1/projects/{PROJECT}/services/container.googleapis.com:enable", {})
    err = refusal("POST", f"/v1/projects/{PROJECT}/services/container.googleapis.com:disable",
                  {"disableDependentServices": True, "checkIfServiceHasUsage": "NEVER"})
    assert err["details"][0]["fieldViolations"][0]["field"] == "checkIfServiceHasUsage"
    assert "Unknown name \"permission\"" in refusal("POST", f"/v1/projects/{PROJECT}:testIamPermissions",
                                                    {"permission": ["container.clusters.create"]})["message"]


# --- through the listener ----------------------------------------------------------------------


def test_an_unknown_field_is_answered_400_and_nothing_is_created(sim_world):
    r = post(sim_world, f"/v1/{PARENT}/clusters", {"cluster": {"name": "c1", "nodePool": [{"name": "p"}]}})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["status"] == "INVALID_ARGUMENT" and err["code"] == 400
    assert err["message"] == "Invalid JSON payload received. Unknown name \"nodePool\" at 'cluster': Cannot find field."
    assert clusters(sim_world) == []


def test_the_client_library_sees_gkes_refusal_as_bad_request(sim_world):
    gke = sim_world.profile().gke()
    with pytest.raises(gexc.BadRequest) as ei:
        gke.create_cluster(request={"parent": PARENT, "cluster": {"name": "c1", "initial_node_count": 3,
                                                                  "node_pools": [POOL]}})
    assert "Cluster.initial_node_count must be unset" in ei.value.message
    assert clusters(sim_world) == []
    gke.create_cluster(request={"parent": PARENT, "cluster": {"name": "c1", "node_pools": [POOL]}})
    assert clusters(sim_world) == ["c1"]


def test_the_request_log_keeps_what_was_sent(sim_world):
    body = {"cluster": {"name": "c1", "nodePools": [{"name": "p", "initialNodeCount": 1}]}}
    assert post(sim_world, f"/v1/{PARENT}/clusters", body).status_code == 200
    sent = sim_world.call(lambda: list(sim_world.world.google.requests))
    assert ("POST", f"/v1/{PARENT}/clusters", "", body) in sent


# --- versions ----------------------------------------------------------------------------------


def _semver(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.lstrip("v").split("-")[0].split("."))


def test_the_api_server_is_never_older_than_its_nodes(make_sim_world):
    w = make_sim_world("cluster-ready")
    prof = w.profile()
    from rhaii_tui.cloud.gke import Gke

    gke = Gke(prof, w.endpoints["project"], ZONE)
    (info,) = gke.list_clusters()
    api = prof.kube_api_client(gke.cluster_access(info))
    server = k8s.VersionApi(api).get_code().git_version
    deadline = time.monotonic() + 60
    nodes = k8s.CoreV1Api(api).list_node().items
    while not nodes and time.monotonic() < deadline:
        nodes = k8s.CoreV1Api(api).list_node().items
    assert nodes
    kubelets = {n.status.node_info.kubelet_version for n in nodes}
    assert all(_semver(k) <= _semver(server) for k in kubelets), (server, kubelets)
    master = prof.gke().get_cluster(request={"name": f"{PARENT}/clusters/{info.name}"}).current_master_version
    assert server == f"v{master}"   # GKE's master version is the API server's
