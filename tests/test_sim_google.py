"""The simulated Google APIs, driven by the real google-cloud-* clients (REST) through SimProfile,
as the wizard reaches them."""

from __future__ import annotations

import base64
import time

import httpx
import pytest
from google.api_core import exceptions as gexc
from google.cloud import container_v1

PROJECT = "rhaii-demo-project"
ZONE = "europe-west4-a"
PARENT = f"projects/{PROJECT}/locations/{ZONE}"
TPU_QUOTA = f"projects/{PROJECT}/locations/global/services/compute.googleapis.com/quotaInfos/TPUS-PER-TPU-FAMILY-per-project-region"
DONE = container_v1.Operation.Status.DONE


def wait_op(gke, op, timeout=20.0, parent=PARENT):
    deadline = time.monotonic() + timeout
    while True:
        op = gke.get_operation(request={"name": f"{parent}/operations/{op.name}"})
        if op.status == DONE:
            return op
        assert time.monotonic() < deadline, f"operation {op.name} still {op.status.name}"
        time.sleep(0.02)


def create_cluster(gke, name="c1", parent=PARENT, pools=None):
    pools = pools if pools is not None else [
        {"name": "default-pool", "initial_node_count": 2, "config": {"machine_type": "n1-standard-4"}}]
    return gke.create_cluster(request={"parent": parent, "cluster": {"name": name, "node_pools": pools}})


def create_tpu_pool(gke, cluster="c1", nodes=3, parent=PARENT, name="tpu-pool"):
    return gke.create_node_pool(request={"parent": f"{parent}/clusters/{cluster}", "node_pool": {
        "name": name, "initial_node_count": nodes, "config": {"machine_type": "ct6e-standard-4t"}}})


def k8s_nodes(world, label=None):
    sim = world.sim()
    nodes, _ = world.call(lambda: sim.store.list(sim.store.type_for("nodes"), label_selector=label))
    return nodes


# --- container: clusters, node pools, operations -------------------------------------------------


def test_create_cluster_runs_with_endpoint_and_ca(sim_world):
    gke = sim_world.profile().gke()
    op = create_cluster(gke)
    assert op.operation_type == container_v1.Operation.Type.CREATE_CLUSTER
    assert op.status in (container_v1.Operation.Status.PENDING, container_v1.Operation.Status.RUNNING, DONE)
    op = wait_op(gke, op)
    assert not op.error.message
    c = gke.get_cluster(request={"name": f"{PARENT}/clusters/c1"})
    assert c.status == container_v1.Cluster.Status.RUNNING
    assert c.endpoint.startswith("127.0.0.1:")
    ca = base64.b64decode(c.master_auth.cluster_ca_certificate).decode()
    assert ca.startswith("-----BEGIN CERTIFICATE-----")
    assert c.current_master_version and c.current_node_version
    assert [p.name for p in c.node_pools] == ["default-pool"]
    assert c.current_node_count == 2
    # the cluster's Kubernetes side has the default pool's nodes and the base namespaces
    assert len(k8s_nodes(sim_world, "cloud.google.com/gke-nodepool=default-pool")) == 2
    sim = sim_world.sim()
    names = {n["metadata"]["name"] for n in sim_world.call(
        lambda: sim.store.list(sim.store.type_for("namespaces"))[0])}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
    # endpoints.json names the cluster with its endpoint and kubeconfig
    entry = sim_world.endpoints["clusters"][f"{PROJECT}/{ZONE}/c1"]
    assert entry["endpoint"] == c.endpoint
    assert "certificate-authority-data" in open(entry["kubeconfig"]).read()


def test_cluster_is_provisioning_until_the_control_plane_is_up(make_sim_world):
    w = make_sim_world(speed=1)  # nothing moves unless fast-forwarded
    gke = w.profile().gke()
    op = create_cluster(gke)
    assert op.status == container_v1.Operation.Status.PENDING
    w.fast_forward(2)
    assert gke.get_operation(request={"name": f"{PARENT}/operations/{op.name}"}).status == \
        container_v1.Operation.Status.RUNNING
    c = gke.get_cluster(request={"name": f"{PARENT}/clusters/c1"})
    assert c.status == container_v1.Cluster.Status.PROVISIONING
    assert not c.endpoint
    listed = gke.list_clusters(request={"parent": f"projects/{PROJECT}/locations/-"})
    assert [x.name for x in listed.clusters] == ["c1"]
    w.fast_forward(250)  # control plane after ~4 minutes, cluster still provisioning the pool
    c = gke.get_cluster(request={"name": f"{PARENT}/clusters/c1"})
    assert c.endpoint.startswith("127.0.0.1:")
    assert c.status == container_v1.Cluster.Status.PROVISIONING
    stages = gke.get_operation(request={"name": f"{PARENT}/operations/{op.name}"}).progress.stages
    assert [s.status.name for s in stages][:1] == ["DONE"]
    w.fast_forward(60)
    assert gke.get_cluster(request={"name": f"{PARENT}/clusters/c1"}).status == container_v1.Cluster.Status.RUNNING


def test_tpu_pool_nodes_appear_progressively_with_gke_labels(make_sim_world):
    w = make_sim_world(speed=1)
    gke = w.profile().gke()
    create_cluster(gke)
    w.fast_forward(301)
    op = create_tpu_pool(gke)
    seen = []
    for _ in range(4):
        w.fast_forward(230)
        o = gke.get_operation(request={"name": f"{PARENT}/operations/{op.name}"})
        metrics = {m.name: m.int_value for m in o.progress.metrics}
        seen.append((len(k8s_nodes(w, "cloud.google.com/gke-nodepool=tpu-pool")), metrics["NODES_DONE"], o.status))
    assert seen[0][:2] == (0, 0)
    assert [s[0] for s in seen] == sorted(s[0] for s in seen)  # grows, never shrinks
    assert any(0 < s[0] < 3 for s in seen), seen  # progressively, not all at once
    assert seen[-1][0] == 3 and seen[-1][2] == DONE
    assert 800 < sum(230 for _ in seen) < 1000  # ~15 simulated minutes
    nodes = k8s_nodes(w, "cloud.google.com/gke-tpu-accelerator=tpu-v6e-slice")
    assert len(nodes) == 3
    n = nodes[0]
    labels = n["metadata"]["labels"]
    assert labels["cloud.google.com/gke-tpu-topology"] == "2x2"
    assert labels["cloud.google.com/gke-nodepool"] == "tpu-pool"
    assert labels["node.kubernetes.io/instance-type"] == "ct6e-standard-4t"
    assert labels["topology.kubernetes.io/zone"] == ZONE
    assert labels["cloud.google.com/machine-family"] == "ct6e"
    assert n["spec"]["taints"] == [{"key": "google.com/tpu", "value": "present", "effect": "NoSchedule"}]
    assert n["status"]["capacity"]["google.com/tpu"] == "4"
    assert n["status"]["allocatable"]["google.com/tpu"] == "4"
    assert {c["type"]: c["status"] for c in n["status"]["conditions"]}["Ready"] == "True"
    # the typed client accepts them
    from kubernetes.client import V1Node

    assert V1Node.from_dict(n).status.node_info.kubelet_version
    pool = gke.get_node_pool(request={"name": f"{PARENT}/clusters/c1/nodePools/tpu-pool"})
    assert pool.status == container_v1.NodePool.Status.RUNNING
    assert pool.config.machine_type == "ct6e-standard-4t"


def test_set_size_scales_the_tpu_pool_down_and_up(make_sim_world):
    w = make_sim_world(scenario="cluster-ready", speed=1)
    gke = w.profile().gke()
    name = f"{PARENT}/clusters/rhaii-tpu-scaleout-cluster/nodePools/tpu-pool"
    op = gke.set_node_pool_size(request={"name": name, "node_count": 0})
    assert op.operation_type == container_v1.Operation.Type.SET_NODE_POOL_SIZE
    w.fast_forward(70)
    assert wait_op(gke, op).error.message == ""
    assert k8s_nodes(w, "cloud.google.com/gke-nodepool=tpu-pool") == []
    op = gke.set_node_pool_size(request={"name": name, "node_count": 2})
    w.fast_forward(700)
    assert wait_op(gke, op).error.message == ""
    assert len(k8s_nodes(w, "cloud.google.com/gke-nodepool=tpu-pool")) == 2


def test_typed_errors_for_missing_duplicate_and_busy(make_sim_world):
    w = make_sim_world(speed=1)  # time moves only when fast-forwarded
    gke = w.profile().gke()
    with pytest.raises(gexc.NotFound):
        gke.get_cluster(request={"name": f"{PARENT}/clusters/nope"})
    create_cluster(gke)
    with pytest.raises(gexc.Conflict):
        create_cluster(gke)
    with pytest.raises(gexc.BadRequest, match="is currently creating cluster .* Please wait and try again"):
        create_tpu_pool(gke)  # the cluster is still being created
    w.fast_forward(301)
    create_tpu_pool(gke)
    with pytest.raises(gexc.BadRequest, match="is currently creating a node pool for cluster .* Please wait"):
        create_tpu_pool(gke, name="tpu-pool-2")
    with pytest.raises(gexc.NotFound):
        gke.get_operation(request={"name": f"{PARENT}/operations/operation-123-nope"})
    other = "projects/rhaii-demo-project/locations/us-central1-a"
    create_cluster(gke, parent=other)
    w.fast_forward(301)
    with pytest.raises(gexc.BadRequest, match="not available in zone"):
        create_tpu_pool(gke, parent=other)


def test_delete_node_pool_and_cluster(make_sim_world):
    w = make_sim_world(speed=1)
    gke = w.profile().gke()
    create_cluster(gke)
    w.fast_forward(301)
    create_tpu_pool(gke)
    w.fast_forward(910)
    op = gke.delete_node_pool(request={"name": f"{PARENT}/clusters/c1/nodePools/tpu-pool"})
    assert op.operation_type == container_v1.Operation.Type.DELETE_NODE_POOL
    assert gke.get_node_pool(request={"name": f"{PARENT}/clusters/c1/nodePools/tpu-pool"}).status == \
        container_v1.NodePool.Status.STOPPING
    w.fast_forward(61)
    assert wait_op(gke, op).status == DONE
    assert [p.name for p in gke.list_node_pools(request={"parent": f"{PARENT}/clusters/c1"}).node_pools] == ["default-pool"]
    assert k8s_nodes(w, "cloud.google.com/gke-nodepool=tpu-pool") == []
    kubeconfig = w.endpoints["clusters"][f"{PROJECT}/{ZONE}/c1"]["kubeconfig"]
    op = gke.delete_cluster(request={"name": f"{PARENT}/clusters/c1"})
    assert gke.get_cluster(request={"name": f"{PARENT}/clusters/c1"}).status == container_v1.Cluster.Status.STOPPING
    w.fast_forward(151)
    wait_op(gke, op)
    assert list(gke.list_clusters(request={"parent": PARENT}).clusters) == []
    assert w.endpoints["clusters"] == {}
    import os

    assert not os.path.exists(kubeconfig)
    ops = gke.list_operations(request={"parent": PARENT}).operations
    assert [o.operation_type.name for o in ops] == ["CREATE_CLUSTER", "CREATE_NODE_POOL", "DELETE_NODE_POOL",
                                                   "DELETE_CLUSTER"]


def test_server_config(sim_world):
    sc = sim_world.profile().gke().get_server_config(request={"name": PARENT})
    assert sc.default_cluster_version in sc.valid_master_versions
    assert "COS_CONTAINERD" in sc.valid_image_types


# --- quota and capacity --------------------------------------------------------------------------


def test_low_quota_fails_the_tpu_pool_fast_with_the_real_text(make_sim_world):
    w = make_sim_world(scenario="low-quota", speed=100)  # a full pool would take 9 s here
    gke = w.profile().gke()
    create_cluster(gke)
    w.fast_forward(301)
    t0 = time.monotonic()
    op = wait_op(gke, create_tpu_pool(gke))
    assert time.monotonic() - t0 < 6.0  # fails at once: a full pool would take 9 s here, 35 min on GKE
    assert op.error.code == 8  # RESOURCE_EXHAUSTED
    assert op.error.message.startswith("Insufficient quota to satisfy the request")
    assert "TPUS_PER_TPU_FAMILY" in op.error.message and "Limit: 8.0 in region europe-west4" in op.error.message
    assert op.status_message == op.error.message  # gcloud reads statusMessage
    assert op.nodepool_conditions[0].code == container_v1.StatusCondition.Code.GCE_QUOTA_EXCEEDED
    pool = gke.get_node_pool(request={"name": f"{PARENT}/clusters/c1/nodePools/tpu-pool"})
    assert pool.status == container_v1.NodePool.Status.ERROR
    assert "TPUS_PER_TPU_FAMILY" in pool.status_message
    assert gke.get_cluster(request={"name": f"{PARENT}/clusters/c1"}).status == container_v1.Cluster.Status.RUNNING
    assert k8s_nodes(w, "cloud.google.com/gke-nodepool=tpu-pool") == []
    # two nodes (8 chips) fit
    gke.delete_node_pool(request={"name": f"{PARENT}/clusters/c1/nodePools/tpu-pool"})
    w.fast_forward(100)
    op = create_tpu_pool(gke, nodes=2)
    w.fast_forward(1000)
    assert not wait_op(gke, op).error.message


def _mig_get(w, url, suffix=""):
    r = httpx.get(url + suffix, headers={"Authorization": f"Bearer {w.token}"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def _sim_since(w, op_name, ts):
    """Simulated seconds between an operation's start and an RFC 3339 timestamp."""
    from rhaii_tui.cloud.gke import parse_time

    op = w.world.operations[op_name]
    return (parse_time(ts) - op.start) * w.world.clock.speed


def test_stockout_pool_create_runs_35_minutes_but_its_mig_lists_the_errors_early(make_sim_world):
    w = make_sim_world(scenario="stockout", speed=50)  # wall seconds do not eat the 35 simulated minutes
    gke = w.profile().gke()
    create_cluster(gke)
    w.fast_forward(301)
    op = create_tpu_pool(gke)
    pool = gke.get_node_pool(request={"name": f"{PARENT}/clusters/c1/nodePools/tpu-pool"})
    [url] = pool.instance_group_urls
    assert f"/compute/v1/projects/{PROJECT}/zones/{ZONE}/instanceGroupManagers/" in url
    # Compute's listErrors names each failed creation within a simulated minute or two
    deadline = time.monotonic() + 60
    while not (errors := _mig_get(w, url, "/listErrors").get("items")):
        assert time.monotonic() < deadline, "listErrors stayed empty"
        time.sleep(0.02)
    assert {e["error"]["code"] for e in errors} == {"ZONE_RESOURCE_POOL_EXHAUSTED"}
    assert {e["instanceActionDetails"]["action"] for e in errors} == {"CREATING"}
    assert len({e["instanceActionDetails"]["instance"] for e in errors}) == 3
    assert "/zones/europe-west4-a/instances/gke-c1-tpu-pool-" in errors[0]["instanceActionDetails"]["instance"]
    assert "does not have enough resources available" in errors[0]["error"]["message"]
    assert _sim_since(w, op.name, errors[0]["timestamp"]) <= 120
    mig = _mig_get(w, url)
    assert mig["targetSize"] == 3 and mig["currentActions"]["creating"] == 3 and mig["currentActions"]["none"] == 0
    assert mig["status"]["isStable"] is False
    listed = _mig_get(w, url.rsplit("/", 1)[0])["items"]
    assert sorted(m["name"] for m in listed) == sorted(["gke-c1-default-pool-grp", mig["name"]])
    # GKE's operation is still RUNNING long after the old 10 s failure, and after 20 minutes
    w.fast_forward(20 * 60)
    got = gke.get_operation(request={"name": f"{PARENT}/operations/{op.name}"})
    assert got.status == container_v1.Operation.Status.RUNNING
    assert len(_mig_get(w, url, "/listErrors")["items"]) >= 3 * 18  # the MIG retries every minute
    # ... and fails at about 35 minutes with GKE's text
    w.fast_forward(20 * 60)
    op = wait_op(gke, op)
    assert "does not have enough resources available to fulfill the request" in op.error.message
    assert "ZONE_RESOURCE_POOL_EXHAUSTED" in op.error.message
    assert "Not all instances running in IGM after 35m" in op.error.message
    assert f"projects/{PROJECT}/zones/{ZONE}" in op.error.message
    assert op.nodepool_conditions[0].code == container_v1.StatusCondition.Code.GCE_STOCKOUT
    other = f"projects/{PROJECT}/locations/us-east5-a"
    create_cluster(gke, parent=other)
    w.fast_forward(400)
    op = create_tpu_pool(gke, parent=other)
    w.fast_forward(1000)
    assert not wait_op(gke, op, parent=other).error.message
    [url] = gke.get_node_pool(request={"name": f"{other}/clusters/c1/nodePools/tpu-pool"}).instance_group_urls
    assert _mig_get(w, url, "/listErrors")["items"] == [] and _mig_get(w, url)["status"]["isStable"] is True


def test_stockout_time_is_a_scenario_knob(make_sim_world):
    w = make_sim_world(scenario="stockout", speed=200, stockout_fail_seconds=120)
    gke = w.profile().gke()
    create_cluster(gke)
    w.fast_forward(301)
    op = wait_op(gke, create_tpu_pool(gke))
    assert "Not all instances running in IGM after 2m0.0s" in op.error.message


def test_quota_errors_and_a_partial_pool_show_in_list_errors(make_sim_world):
    w = make_sim_world(scenario="low-quota", speed=100)
    gke = w.profile().gke()
    create_cluster(gke)
    w.fast_forward(301)
    wait_op(gke, create_tpu_pool(gke))
    [url] = gke.get_node_pool(request={"name": f"{PARENT}/clusters/c1/nodePools/tpu-pool"}).instance_group_urls
    errors = _mig_get(w, url, "/listErrors")["items"]
    assert errors and {e["error"]["code"] for e in errors} == {"QUOTA_EXCEEDED"}
    assert "TPUS_PER_TPU_FAMILY" in errors[0]["error"]["message"]
    # two-nodes: the zone gives 2 of 3; the third instance fails with a stockout while GKE keeps going
    w2 = make_sim_world(scenario="two-nodes", speed=200)
    gke2 = w2.profile().gke()
    cluster = f"{PARENT}/clusters/rhaii-tpu-scaleout-cluster"
    [url2] = gke2.get_node_pool(request={"name": f"{cluster}/nodePools/tpu-pool"}).instance_group_urls
    old = _mig_get(w2, url2, "/listErrors")["items"]
    assert len({e["instanceActionDetails"]["instance"] for e in old}) == 1
    op = gke2.set_node_pool_size(request={"name": f"{cluster}/nodePools/tpu-pool", "node_count": 4})
    deadline = time.monotonic() + 60
    while len(new := _mig_get(w2, url2, "/listErrors")["items"]) <= len(old):
        assert time.monotonic() < deadline, "no new error for the resize"
        time.sleep(0.02)
    assert {e["error"]["code"] for e in new} == {"ZONE_RESOURCE_POOL_EXHAUSTED"}
    assert _sim_since(w2, op.name, new[-1]["timestamp"]) <= 120
    mig = _mig_get(w2, url2)
    assert mig["targetSize"] == 4 and mig["currentActions"]["none"] == 2 and mig["currentActions"]["creating"] == 2
    assert gke2.get_operation(request={"name": f"{PARENT}/operations/{op.name}"}).status == \
        container_v1.Operation.Status.RUNNING


def test_instance_group_manager_not_found(sim_world):
    r = httpx.get(f"{sim_world.google_url}/compute/v1/projects/{PROJECT}/zones/{ZONE}/instanceGroupManagers/nope",
                  headers={"Authorization": f"Bearer {sim_world.token}"})
    assert r.status_code == 404
    assert r.json()["error"]["message"] == \
        f"The resource 'projects/{PROJECT}/zones/{ZONE}/instanceGroupManagers/nope' was not found"
    assert r.json()["error"]["errors"][0]["reason"] == "notFound"  # Compute's error shape, as gcloud reads it


def test_two_nodes_scenario_has_a_partial_pool(make_sim_world):
    w = make_sim_world(scenario="two-nodes")
    gke = w.profile().gke()
    cluster = f"{PARENT}/clusters/rhaii-tpu-scaleout-cluster"
    pool = gke.get_node_pool(request={"name": f"{cluster}/nodePools/tpu-pool"})
    assert pool.status == container_v1.NodePool.Status.RUNNING_WITH_ERROR
    assert pool.initial_node_count == 3
    assert "Expected 3, running 2" in pool.status_message
    assert len(k8s_nodes(w, "cloud.google.com/gke-tpu-accelerator=tpu-v6e-slice")) == 2
    ops = gke.list_operations(request={"parent": PARENT}).operations
    assert [o.status == DONE for o in ops] == [True, True]
    assert "ZONE_RESOURCE_POOL_EXHAUSTED" in ops[1].error.message


def test_cluster_ready_scenario(make_sim_world):
    w = make_sim_world(scenario="cluster-ready")
    gke = w.profile().gke()
    c = gke.get_cluster(request={"name": f"{PARENT}/clusters/rhaii-tpu-scaleout-cluster"})
    assert c.status == container_v1.Cluster.Status.RUNNING
    assert {p.name: p.status.name for p in c.node_pools} == {"default-pool": "RUNNING", "tpu-pool": "RUNNING"}
    assert len(k8s_nodes(w, "cloud.google.com/gke-tpu-accelerator=tpu-v6e-slice")) == 3
    assert len(k8s_nodes(w, "cloud.google.com/gke-nodepool=default-pool")) == 2


def test_quota_infos(make_sim_world):
    q = make_sim_world().profile().quotas()
    info = q.get_quota_info(name=TPU_QUOTA)
    assert list(info.dimensions) == ["region", "tpu_family"]
    by_region = {(d.dimensions.get("region"), d.dimensions.get("tpu_family")): d.details.value
                 for d in info.dimensions_infos}
    assert by_region[("europe-west4", "CT6E")] == 32
    assert by_region[(None, None)] == 0
    ids = {i.quota_id for i in q.list_quota_infos(
        parent=f"projects/{PROJECT}/locations/global/services/compute.googleapis.com")}
    assert {"TPUS-PER-TPU-FAMILY-per-project-region", "PREEMPTIBLE-TPU-V6E-per-project-region",
            "CPUS-per-project-region"} <= ids
    with pytest.raises(gexc.NotFound):
        q.get_quota_info(name=TPU_QUOTA.replace("TPUS-PER-TPU-FAMILY", "TPU-V6E"))
    low = make_sim_world("low-quota").profile().quotas().get_quota_info(name=TPU_QUOTA)
    assert {d.dimensions.get("region"): d.details.value for d in low.dimensions_infos}["us-east5"] == 8


# --- projects, permissions, services ---------------------------------------------------------------


ASKED = ["container.clusters.create", "container.clusters.get", "container.clusters.update",
         "resourcemanager.projects.get"]


def test_project_and_permissions(make_sim_world):
    projects = make_sim_world().profile().projects()
    p = projects.get_project(name=f"projects/{PROJECT}")
    assert p.project_id == PROJECT and p.state.name == "ACTIVE"
    with pytest.raises(gexc.Forbidden, match="or it may not exist"):
        projects.get_project(name="projects/someone-elses-project")
    got = projects.test_iam_permissions(request={"resource": f"projects/{PROJECT}", "permissions": ASKED})
    assert list(got.permissions) == ASKED


def test_missing_permission_scenario(make_sim_world):
    w = make_sim_world("missing-permission")
    got = w.profile().projects().test_iam_permissions(request={"resource": f"projects/{PROJECT}", "permissions": ASKED})
    assert list(got.permissions) == [p for p in ASKED if p != "container.clusters.create"]
    with pytest.raises(gexc.Forbidden, match="container.clusters.create"):
        create_cluster(w.profile().gke())


def test_api_disabled_scenario_and_enable(make_sim_world):
    w = make_sim_world("api-disabled")
    prof = w.profile()
    su = prof.rest("serviceusage")
    r = su.get(f"/v1/projects/{PROJECT}/services/container.googleapis.com")
    assert r.json()["state"] == "DISABLED"
    with pytest.raises(gexc.Forbidden) as ei:
        prof.gke().list_clusters(request={"parent": PARENT})
    assert ei.value.reason == "SERVICE_DISABLED"
    assert "Kubernetes Engine API has not been used in project" in ei.value.message
    r = su.post(f"/v1/projects/{PROJECT}/services/container.googleapis.com:enable")
    assert r.status_code == 200 and r.json()["done"] is True
    assert su.get(f"/v1/projects/{PROJECT}/services/container.googleapis.com").json()["state"] == "ENABLED"
    assert list(prof.gke().list_clusters(request={"parent": PARENT}).clusters) == []


# --- compute -------------------------------------------------------------------------------------


def test_compute_catalog(sim_world):
    c = sim_world.profile().rest("compute")
    accs = c.get(f"/compute/v1/projects/{PROJECT}/zones/{ZONE}/acceleratorTypes").json()["items"]
    assert "tpu-v6e-slice" in {a["name"] for a in accs}
    accs = c.get(f"/compute/v1/projects/{PROJECT}/zones/us-central1-a/acceleratorTypes").json()["items"]
    assert "tpu-v6e-slice" not in {a["name"] for a in accs}
    agg = c.get(f"/compute/v1/projects/{PROJECT}/aggregated/acceleratorTypes",
                params={"filter": "name=tpu-v6e-slice"}).json()["items"]
    v6e_zones = sorted(k.split("/")[1] for k, v in agg.items() if v.get("acceleratorTypes"))
    from rhaii_tui.config import V6E_ZONES

    assert v6e_zones == sorted(V6E_ZONES)
    mt = c.get(f"/compute/v1/projects/{PROJECT}/zones/{ZONE}/machineTypes/ct6e-standard-4t").json()
    assert mt["guestCpus"] == 180 and mt["accelerators"][0]["guestAcceleratorCount"] == 4
    r = c.get(f"/compute/v1/projects/{PROJECT}/zones/us-central1-a/machineTypes/ct6e-standard-4t")
    assert r.status_code == 404 and "was not found" in r.json()["error"]["message"]
    region = c.get(f"/compute/v1/projects/{PROJECT}/regions/europe-west4").json()
    assert {q["metric"]: q["limit"] for q in region["quotas"]}["CPUS"] == 96.0


# --- auth, control API, faults -------------------------------------------------------------------


def test_bearer_token_required(sim_world):
    url = sim_world.endpoints["google_api"]
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = httpx.get(f"{url}/v1/{PARENT}/clusters", headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["status"] == "UNAUTHENTICATED"
    r = httpx.get(f"{url}/v1/{PARENT}/clusters?$alt=json;enum-encoding=int",
                  headers={"Authorization": f"Bearer {sim_world.token}"})
    assert r.status_code == 200


def test_revoked_token_is_refused_until_restored(sim_world):
    prof = sim_world.profile()
    control = sim_world.endpoints["control"]
    auth = {"Authorization": f"Bearer {sim_world.token}"}
    assert httpx.post(f"{control}/revoke-token", headers=auth).status_code == 200
    r = httpx.get(f"{sim_world.endpoints['google_api']}/v1/{PARENT}/clusters", headers=auth)
    assert r.status_code == 401
    import google.auth.exceptions

    # the client library tries to refresh a refused token; a static token cannot be refreshed
    with pytest.raises((gexc.Unauthorized, google.auth.exceptions.RefreshError)):
        prof.gke().list_clusters(request={"parent": PARENT})
    assert httpx.get(f"{control}/state", headers=auth).json()["token_revoked"] is True
    assert httpx.post(f"{control}/restore-token", headers=auth).status_code == 200
    assert list(sim_world.profile().gke().list_clusters(request={"parent": PARENT}).clusters) == []


def test_control_state_and_install_operators(sim_world):
    auth = {"Authorization": f"Bearer {sim_world.token}"}
    control = sim_world.endpoints["control"]
    r = httpx.post(f"{control}/clusters/{PROJECT}/{ZONE}/nope/install-operators", headers=auth)
    assert r.status_code == 404
    gke = sim_world.profile().gke()
    wait_op(gke, create_cluster(gke))
    state = httpx.get(f"{control}/state", headers=auth).json()
    assert state["clusters"][f"{PROJECT}/{ZONE}/c1"]["status"] == "RUNNING"
    assert httpx.get(f"{control}/state").status_code == 401
    inst = sim_world.profile().install_operators(f"{PROJECT}/{ZONE}/c1")
    assert "simulated" in inst.message
    sim = sim_world.sim()
    crd = sim.store.type_for("customresourcedefinitions", "apiextensions.k8s.io")
    sim_world.fast_forward(1200)
    names = {c["metadata"]["name"] for c in sim_world.call(lambda: sim.store.list(crd)[0])}
    assert "llminferenceservices.serving.kserve.io" in names


def test_flaky_api_fails_some_requests_with_5xx_or_429(make_sim_world):
    w = make_sim_world("flaky-api")
    url = f"{w.endpoints['google_api']}/v1/{PARENT}/clusters"
    auth = {"Authorization": f"Bearer {w.token}"}
    with httpx.Client() as client:
        codes = [client.get(url, headers=auth).status_code for _ in range(300)]
    failed = [c for c in codes if c != 200]
    assert set(failed) <= {429, 503}
    assert 8 <= len(failed) <= 70, len(failed)  # ~10%
    # the control API never fails
    assert all(httpx.get(f"{w.endpoints['control']}/state", headers=auth).status_code == 200 for _ in range(30))


def test_cluster_create_with_a_tpu_pool_in_the_body(make_sim_world):
    w = make_sim_world(speed=1)
    gke = w.profile().gke()
    pools = [{"name": "default-pool", "initial_node_count": 2, "config": {"machine_type": "n1-standard-4"}},
             {"name": "tpu-pool", "initial_node_count": 3, "config": {"machine_type": "ct6e-standard-4t"}}]
    op = create_cluster(gke, pools=pools)
    w.fast_forward(310)  # control plane and default pool up, TPU nodes still coming
    c = gke.get_cluster(request={"name": f"{PARENT}/clusters/c1"})
    assert c.status == container_v1.Cluster.Status.PROVISIONING and c.endpoint
    w.fast_forward(1000)
    assert not wait_op(gke, op).error.message
    assert len(k8s_nodes(w, "cloud.google.com/gke-nodepool=tpu-pool")) == 3


def test_cluster_create_whose_tpu_pool_exceeds_quota_ends_in_error(make_sim_world):
    w = make_sim_world("low-quota", speed=1)
    gke = w.profile().gke()
    pools = [{"name": "default-pool", "initial_node_count": 2, "config": {"machine_type": "n1-standard-4"}},
             {"name": "tpu-pool", "initial_node_count": 3, "config": {"machine_type": "ct6e-standard-4t"}}]
    op = create_cluster(gke, pools=pools)
    w.fast_forward(320)
    op = wait_op(gke, op)
    assert "TPUS_PER_TPU_FAMILY" in op.error.message
    c = gke.get_cluster(request={"name": f"{PARENT}/clusters/c1"})
    assert c.status == container_v1.Cluster.Status.ERROR
    assert "Insufficient quota" in c.status_message
