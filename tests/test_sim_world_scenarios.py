"""Prebuilt scenarios: the world is where the wizard would have left it, seen through the real
clients (kubernetes over HTTPS with the cluster's CA, google-cloud-container, httpx to the
gateway)."""

from __future__ import annotations

import httpx
import pytest
from kubernetes import client

from rhaii_tui.cloud.profile import ClusterAccess
from rhaii_tui.config import DeployConfig
from rhaii_tui import manifests

PROJECT = "rhaii-demo-project"
CFG = DeployConfig(project=PROJECT)
CLUSTER = f"projects/{PROJECT}/locations/{CFG.zone}/clusters/{CFG.cluster}"
KEY = f"{PROJECT}/{CFG.zone}/{CFG.cluster}"


def kube(world) -> client.ApiClient:
    prof = world.profile()
    c = prof.gke().get_cluster(request={"name": CLUSTER})
    return prof.kube_api_client(ClusterAccess(c.endpoint, c.master_auth.cluster_ca_certificate))


def llmisvc(api: client.ApiClient) -> dict:
    return client.CustomObjectsApi(api).get_namespaced_custom_object(
        "serving.kserve.io", "v1alpha1", CFG.namespace, "llminferenceservices", CFG.service)


def ready(obj: dict) -> str | None:
    return {c["type"]: c["status"] for c in obj.get("status", {}).get("conditions", [])}.get("Ready")


def complete(world) -> httpx.Response:
    base = world.profile().gateway_base_url("", KEY)
    return httpx.post(f"{base}/{CFG.namespace}/{CFG.service}/v1/completions",
                      json={"model": "/mnt/models", "prompt": "The capital of France is", "max_tokens": 8},
                      timeout=30)


def custom(api, group, version, ns, plural) -> list[str]:
    items = client.CustomObjectsApi(api).list_namespaced_custom_object(group, version, ns, plural)["items"]
    return sorted(i["metadata"]["name"] for i in items)


def test_partial_serves_without_cache_aware_routing(make_sim_world):
    w = make_sim_world("partial")
    api = kube(w)
    assert ready(llmisvc(api)) == "True"
    v1 = client.CoreV1Api(api)
    pods = v1.list_namespaced_pod(CFG.namespace, label_selector="kserve.io/component=workload").items
    assert len(pods) == 3 and all(p.status.phase == "Running" for p in pods)
    assert len({p.spec.node_name for p in pods}) == 3  # one replica per TPU node
    secrets = {s.metadata.name for s in v1.list_namespaced_secret(CFG.namespace).items}
    assert {"rhaiis-pull-secret", "huggingface-token"} <= secrets
    epp = client.AppsV1Api(api).read_namespaced_deployment(manifests.epp_deployment_name(CFG.service), CFG.namespace)
    assert (epp.spec.template.metadata.labels or {}).get("sidecar.istio.io/inject") != "true"
    assert custom(api, "networking.istio.io", "v1alpha3", "opendatahub", "envoyfilters") == []
    r = complete(w)
    assert r.status_code == 200 and r.json()["choices"]


def test_deployed_serves_with_cache_aware_routing(make_sim_world):
    w = make_sim_world("deployed")
    api = kube(w)
    assert ready(llmisvc(api)) == "True"
    epp = client.AppsV1Api(api).read_namespaced_deployment(manifests.epp_deployment_name(CFG.service), CFG.namespace)
    assert epp.spec.template.metadata.labels["sidecar.istio.io/inject"] == "true"
    assert epp.status.ready_replicas == 1
    epp_pods = client.CoreV1Api(api).list_namespaced_pod(
        CFG.namespace, label_selector="app.kubernetes.io/component=llminferenceservice-router-scheduler").items
    assert [len(p.spec.containers) for p in epp_pods] == [2]  # EPP + istio-proxy: 2/2
    assert custom(api, "networking.istio.io", "v1alpha3", "opendatahub", "envoyfilters") == \
        sorted(f["metadata"]["name"] for f in manifests.envoyfilters(CFG))
    netpols = client.NetworkingV1Api(api).list_namespaced_network_policy(CFG.namespace).items
    assert sorted(p.metadata.name for p in netpols) == sorted(manifests.NETWORK_POLICY_NAMES)
    r = complete(w)
    assert r.status_code == 200 and r.json()["choices"]


@pytest.mark.parametrize("scenario", ["bad-hf-token", "bad-pull-secret", "slow-compile", "flaky-api"])
def test_cluster_side_scenarios_start_fresh_on_the_google_side(make_sim_world, scenario):
    from rhaii_tui.cloud.gke import Gke

    w = make_sim_world(scenario)
    # through the wizard's own client layer, which retries the 5xx/429 that flaky-api injects
    assert Gke(w.profile(), PROJECT, CFG.zone).list_clusters(all_locations=True) == []
    knobs = w.state()["scenario"]
    assert (knobs["hf_token_rejected"], knobs["pull_secret_rejected"], knobs["compile_factor"] > 1,
            knobs["flaky"] is not None) == (scenario == "bad-hf-token", scenario == "bad-pull-secret",
                                            scenario == "slow-compile", scenario == "flaky-api")


def test_deployed_world_keeps_serving_after_a_restart(tmp_path):
    from rhaii_tui.sim.testing import run_world

    with run_world(tmp_path, "deployed") as w:
        assert complete(w).status_code == 200
    with run_world(tmp_path, "deployed") as w:
        assert w.world.resumed
        w.wait_until(lambda: w.world.sim_for(KEY).gateway_url, message="the gateway listener")
        assert ready(llmisvc(kube(w))) == "True"
        r = complete(w)
        assert r.status_code == 200, r.text


def test_prebuilt_clusters_are_created_with_dataplane_v2_as_the_wizard_creates_them(make_sim_world):
    w = make_sim_world("cluster-ready")
    c = w.profile().gke().get_cluster(request={"name": CLUSTER})
    assert c.network_config.datapath_provider.name == "ADVANCED_DATAPATH"
    assert c.network_config.network.endswith("/networks/default")  # GKE's own fields are kept
    assert w.world.sim_for(KEY).enforces_network_policy


def test_an_existing_cluster_without_enforcement(make_sim_world):
    w = make_sim_world("no-netpol-enforcement")
    c = w.profile().gke().get_cluster(request={"name": CLUSTER})
    assert c.status.name == "RUNNING"
    assert c.network_config.datapath_provider.name != "ADVANCED_DATAPATH"
    assert not c.network_policy.enabled
    assert not w.world.sim_for(KEY).enforces_network_policy


def test_calico_enforcement_from_the_create_body():
    from rhaii_tui.sim.cluster import enforcement_of

    assert enforcement_of({"networkConfig": {"datapathProvider": "ADVANCED_DATAPATH"}})
    assert enforcement_of({"networkConfig": {"datapathProvider": 2}})  # as the Python client sends it
    assert enforcement_of({"networkPolicy": {"enabled": True, "provider": "CALICO"}})
    assert not enforcement_of({"networkPolicy": {"enabled": True},
                               "addonsConfig": {"networkPolicyConfig": {"disabled": True}}})
    assert not enforcement_of({"networkConfig": {"datapathProvider": "LEGACY_DATAPATH"}})
    assert not enforcement_of({})


def test_pods_reach_the_api_server_at_a_private_address_as_on_gke(make_sim_world):
    w = make_sim_world("cluster-ready")
    api = kube(w)
    slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        "default", label_selector="kubernetes.io/service-name=kubernetes").items
    addrs = [a for s in slices for e in s.endpoints for a in e.addresses]
    assert addrs == ["172.16.0.2"]
    c = w.profile().gke().get_cluster(request={"name": CLUSTER})
    assert not c.endpoint.startswith("172.16.0.2")  # not the cluster's public endpoint
    ep = client.CoreV1Api(api).read_namespaced_endpoints("kubernetes", "default")
    assert [a.ip for a in ep.subsets[0].addresses] == ["172.16.0.2"]
