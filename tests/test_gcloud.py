"""Fidelity: the real gcloud (and kubectl, through gke-gcloud-auth-plugin or the world's own
kubeconfig) against the simulated cloud, using the gcloud config dir the world writes.
Skipped where the binaries are absent."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

GCLOUD = shutil.which("gcloud")
KUBECTL = shutil.which("kubectl")
PLUGIN = shutil.which("gke-gcloud-auth-plugin")
ZONE = "europe-west4-a"

pytestmark = [pytest.mark.gcloud, pytest.mark.skipif(GCLOUD is None, reason="gcloud is not installed")]

FAST = 1_000_000  # gcloud polls operations every 5 s: make them finish before its first poll


def _env(world, tmp_path) -> dict:
    env = dict(os.environ)
    env.update({
        "CLOUDSDK_CONFIG": world.endpoints["gcloud_config"],
        "KUBECONFIG": str(tmp_path / "kubeconfig"),  # never ~/.kube/config
        "HOME": str(tmp_path),  # kubectl's discovery cache
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
    })
    return env


def gcloud(env, *args, timeout=90) -> subprocess.CompletedProcess:
    return subprocess.run([GCLOUD, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_gcloud_creates_lists_and_gets_credentials(make_sim_world, tmp_path):
    w = make_sim_world(speed=FAST)
    env = _env(w, tmp_path)
    r = gcloud(env, "container", "clusters", "create", "c1", "--zone", ZONE, "--num-nodes", "2",
               "--machine-type", "n1-standard-4", "--enable-ip-alias", "--enable-autoscaling",
               "--min-nodes", "1", "--max-nodes", "5", "--addons", "HorizontalPodAutoscaling,HttpLoadBalancing")
    assert r.returncode == 0, r.stderr
    assert "Created [" in r.stderr and "WARNING" not in r.stderr.replace("WARNING: Starting in", "")
    r = gcloud(env, "container", "node-pools", "create", "tpu-pool", "--cluster", "c1", "--zone", ZONE,
               "--machine-type", "ct6e-standard-4t", "--num-nodes", "3")
    assert r.returncode == 0, r.stderr
    r = gcloud(env, "container", "clusters", "list")  # the table needs both versions to render
    assert r.returncode == 0, r.stderr
    c = w.profile().gke().get_cluster(request={"name": f"projects/{w.endpoints['project']}/locations/{ZONE}/clusters/c1"})
    # MASTER_IP is host:port here: the port is how several clusters share 127.0.0.1
    assert r.stdout.split("\n")[1].split() == ["c1", ZONE, c.current_master_version, c.endpoint, "n1-standard-4",
                                                c.current_node_version, "5", "RUNNING"]
    assert [p.name for p in c.node_pools] == ["default-pool", "tpu-pool"]
    r = gcloud(env, "container", "clusters", "get-credentials", "c1", "--zone", ZONE)
    assert r.returncode == 0, r.stderr
    kubeconfig = (tmp_path / "kubeconfig").read_text()
    assert f"server: https://{c.endpoint}" in kubeconfig
    assert c.master_auth.cluster_ca_certificate in kubeconfig
    if KUBECTL and PLUGIN:
        # gcloud's kubeconfig → gke-gcloud-auth-plugin → the world's token → the K8s API over TLS
        r = subprocess.run([KUBECTL, "get", "nodes", "-l", "cloud.google.com/gke-tpu-accelerator=tpu-v6e-slice",
                            "-o", "json"], env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert len(json.loads(r.stdout)["items"]) == 3


def test_gcloud_shows_the_quota_error(make_sim_world, tmp_path):
    w = make_sim_world("low-quota", speed=FAST)
    env = _env(w, tmp_path)
    w.profile().gke().create_cluster(request={"parent": f"projects/{w.endpoints['project']}/locations/{ZONE}",
                                              "cluster": {"name": "c1"}})
    w.wait_until(lambda: w.world.clusters[f"{w.endpoints['project']}/{ZONE}/c1"].status == "RUNNING")
    r = gcloud(env, "container", "node-pools", "create", "tpu-pool", "--cluster", "c1", "--zone", ZONE,
               "--machine-type", "ct6e-standard-4t", "--num-nodes", "3")
    assert r.returncode != 0
    assert "Insufficient quota to satisfy the request" in r.stderr and "TPUS_PER_TPU_FAMILY" in r.stderr


def test_gcloud_finds_the_v6e_zones(make_sim_world, tmp_path):
    w = make_sim_world()
    r = gcloud(_env(w, tmp_path), "compute", "accelerator-types", "list", "--filter=name=tpu-v6e-slice",
               "--format=value(zone)")
    assert r.returncode == 0, r.stderr
    from rhaii_tui.config import V6E_ZONES

    assert sorted(r.stdout.split()) == sorted(V6E_ZONES)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_uses_the_worlds_kubeconfig_as_is(make_sim_world, tmp_path):
    w = make_sim_world("cluster-ready")
    (entry,) = w.endpoints["clusters"].values()
    env = dict(os.environ, HOME=str(tmp_path))
    env.pop("KUBECONFIG", None)
    r = subprocess.run([KUBECTL, "--kubeconfig", entry["kubeconfig"], "get", "nodes", "-o", "json"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    labels = [n["metadata"]["labels"] for n in json.loads(r.stdout)["items"]]
    assert sorted(lb["cloud.google.com/gke-nodepool"] for lb in labels) == ["default-pool"] * 2 + ["tpu-pool"] * 3


def test_gcloud_lists_the_instance_group_errors_of_a_stocked_out_pool(make_sim_world, tmp_path):
    w = make_sim_world("stockout", speed=200)
    env = _env(w, tmp_path)
    project = w.endpoints["project"]
    gke = w.profile().gke()
    gke.create_cluster(request={"parent": f"projects/{project}/locations/{ZONE}", "cluster": {"name": "c1"}})
    w.fast_forward(301)
    w.wait_until(lambda: w.world.clusters[f"{project}/{ZONE}/c1"].status == "RUNNING")
    gke.create_node_pool(request={"parent": f"projects/{project}/locations/{ZONE}/clusters/c1", "node_pool": {
        "name": "tpu-pool", "initial_node_count": 3, "config": {"machine_type": "ct6e-standard-4t"}}})
    pool = w.world.clusters[f"{project}/{ZONE}/c1"].pools["tpu-pool"]
    w.wait_until(lambda: pool.mig_errors, timeout=60, message="the MIG's first failed creation")
    url = gke.get_node_pool(request={"name": f"projects/{project}/locations/{ZONE}/clusters/c1/nodePools/tpu-pool"}
                            ).instance_group_urls[0]
    name = url.rsplit("/", 1)[-1]
    r = gcloud(env, "compute", "instance-groups", "managed", "list-errors", name, "--zone", ZONE)
    assert r.returncode == 0, r.stderr
    assert "ZONE_RESOURCE_POOL_EXHAUSTED" in r.stdout and "CREATING" in r.stdout
    assert "gke-c1-tpu-pool-" in r.stdout
    r = gcloud(env, "compute", "instance-groups", "managed", "describe", name, "--zone", ZONE, "--format", "json")
    assert r.returncode == 0, r.stderr
    mig = json.loads(r.stdout)
    assert mig["targetSize"] == 3 and mig["currentActions"]["creating"] == 3 and mig["status"]["isStable"] is False
    r = gcloud(env, "compute", "instance-groups", "managed", "list", "--zones", ZONE, "--format",
               "value(name,size,targetSize)")
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split("\n")[:2]) == ["gke-c1-default-pool-grp\t2\t2", f"{name}\t0\t3"]
    r = gcloud(env, "compute", "instance-groups", "managed", "list-errors", "nope", "--zone", ZONE)
    assert r.returncode != 0 and "was not found" in r.stderr
