"""Benchmark: the simulated cloud, from an empty project to a serving, cache-aware deployment.

Drives a fresh world with the real clients, as the wizard does (google-cloud-container for the
cluster and the TPU pool, the control API for the operators, the kubernetes client over HTTPS with
the cluster CA for namespace/secrets/LLMInferenceService/EPP patch/EnvoyFilters, httpx to the
gateway), waiting at each step for what the guide's "done when" says. Reports wall seconds per
phase and in total (median of --runs).

    python benchmarks/sim_time_to_serving.py [--speed 2000] [--runs 3] [--json]

Goal (BENCHMARKS.md, "Emulator: time to serving"): well under 30 s wall at speed 2000.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PHASES = ("world_start", "cluster", "tpu_pool", "operators", "secrets", "llmisvc_ready", "epp_sidecar",
          "envoyfilters", "first_completion")


def poll(what: str, fn: Callable[[], Any], timeout: float = 60.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = fn()
        except Exception as e:  # noqa: BLE001 - transient (e.g. not created yet): retry until timeout
            value, err = None, e
        else:
            err = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {timeout:g} s" + (f" (last error: {err})" if err else ""))
        time.sleep(interval)


def run_once(speed: float) -> dict[str, float]:
    from google.cloud import container_v1
    from kubernetes import client

    from rhaii_tui import manifests
    from rhaii_tui.cloud.profile import ClusterAccess, cluster_key
    from rhaii_tui.config import HF_SECRET_NAME, PULL_SECRET_NAME, DeployConfig
    from rhaii_tui.sim.scenarios import DEMO_HF_TOKEN
    from rhaii_tui.sim.testing import run_world

    times: dict[str, float] = {}
    t_phase = time.perf_counter()

    def mark(name: str) -> None:
        nonlocal t_phase
        now = time.perf_counter()
        times[name] = now - t_phase
        t_phase = now

    with tempfile.TemporaryDirectory(prefix="rhaii-bench-") as d, run_world(d, "fresh", speed) as w:
        mark("world_start")
        prof = w.profile()
        cfg = DeployConfig(project=w.endpoints["project"])
        parent = f"projects/{cfg.project}/locations/{cfg.zone}"
        gke = prof.gke()
        done = container_v1.Operation.Status.DONE

        def wait_op(op):
            op = poll("operation", lambda: (lambda o: o if o.status == done else None)(
                gke.get_operation(request={"name": f"{parent}/operations/{op.name}"})))
            if op.error.message:
                raise RuntimeError(op.error.message)

        # step 2: cluster (default pool n1-standard-4 x2), then the TPU pool
        wait_op(gke.create_cluster(request={"parent": parent, "cluster": {"name": cfg.cluster, "node_pools": [
            {"name": "default-pool", "initial_node_count": 2, "config": {"machine_type": "n1-standard-4"},
             "autoscaling": {"enabled": True, "min_node_count": 1, "max_node_count": 5}}]}}))
        mark("cluster")
        wait_op(gke.create_node_pool(request={"parent": f"{parent}/clusters/{cfg.cluster}", "node_pool": {
            "name": "tpu-pool", "initial_node_count": cfg.replicas, "config": {"machine_type": "ct6e-standard-4t"}}}))
        c = gke.get_cluster(request={"name": f"{parent}/clusters/{cfg.cluster}"})
        api = prof.kube_api_client(ClusterAccess(c.endpoint, c.master_auth.cluster_ca_certificate))
        v1, apps, co = client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api)

        def tpu_nodes_ready():
            nodes = v1.list_node(label_selector="cloud.google.com/gke-tpu-accelerator=tpu-v6e-slice").items
            return len([n for n in nodes if any(x.type == "Ready" and x.status == "True"
                                                for x in n.status.conditions)]) == cfg.replicas

        poll("TPU nodes Ready", tpu_nodes_ready)
        mark("tpu_pool")

        # step 4: operators; done when the gateway has an address
        key = cluster_key(cfg.project, cfg.zone, cfg.cluster)
        prof.install_operators(key)

        def gateway_address():
            gw = co.get_namespaced_custom_object("gateway.networking.k8s.io", "v1", "opendatahub", "gateways",
                                                 "inference-gateway")
            return (gw.get("status", {}).get("addresses") or [{}])[0].get("value")

        address = poll("gateway address", gateway_address)
        mark("operators")

        # step 3: namespace + the two secrets
        v1.create_namespace(manifests.namespace(cfg))
        auth = base64.b64encode(b"demo:demo").decode()
        docker = json.dumps({"auths": {"registry.redhat.io": {"auth": auth}}}).encode()
        v1.create_namespaced_secret(cfg.namespace, {
            "metadata": {"name": PULL_SECRET_NAME}, "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64.b64encode(docker).decode()}})
        v1.create_namespaced_secret(cfg.namespace, {
            "metadata": {"name": HF_SECRET_NAME}, "data": {"token": base64.b64encode(DEMO_HF_TOKEN.encode()).decode()}})
        mark("secrets")

        # step 5: the LLMInferenceService; done when Ready=True
        obj = manifests.llmisvc(cfg)
        group, version = obj["apiVersion"].split("/")
        co.create_namespaced_custom_object(group, version, cfg.namespace, "llminferenceservices", obj)

        def llmisvc_ready():
            o = co.get_namespaced_custom_object(group, version, cfg.namespace, "llminferenceservices", cfg.service)
            return {x["type"]: x["status"] for x in o.get("status", {}).get("conditions", [])}.get("Ready") == "True"

        poll("LLMInferenceService Ready", llmisvc_ready)
        mark("llmisvc_ready")

        # step 6: EPP sidecar injection; done when the EPP deployment rolled out (pod 2/2)
        epp = manifests.epp_deployment_name(cfg.service)
        apps.patch_namespaced_deployment(epp, cfg.namespace, {"spec": {"template": {"metadata": {
            "labels": {"sidecar.istio.io/inject": "true"}}}}})

        def epp_rolled_out():
            d_ = apps.read_namespaced_deployment(epp, cfg.namespace)
            s = d_.status
            if not (s.observed_generation or 0) >= d_.metadata.generation:
                return False
            if s.updated_replicas != d_.spec.replicas or s.ready_replicas != d_.spec.replicas or s.replicas != d_.spec.replicas:
                return False
            pods = v1.list_namespaced_pod(cfg.namespace, label_selector=manifests.label_selector(
                manifests.epp_labels(cfg.service))).items
            return pods and all(len(p.spec.containers) == 2 and p.status.container_statuses
                                and all(cs.ready for cs in p.status.container_statuses) for p in pods)

        poll("EPP rollout", epp_rolled_out)
        mark("epp_sidecar")

        # step 7: the three EnvoyFilters
        for f in manifests.envoyfilters(cfg):
            g, v = f["apiVersion"].split("/")
            co.create_namespaced_custom_object(g, v, f["metadata"]["namespace"], "envoyfilters", f)
        mark("envoyfilters")

        # step 9 (first check): the gateway answers a completion
        import httpx

        base = prof.gateway_base_url(address, key) + manifests.service_path(cfg.namespace, cfg.service)

        def completion():
            r = httpx.post(f"{base}/v1/completions", json={"model": "/mnt/models", "prompt": "Hello",
                                                            "max_tokens": 8}, timeout=10)
            return r.status_code == 200 and bool(r.json().get("choices"))

        poll("a completion through the gateway", completion, interval=0.05)
        mark("first_completion")
        api.close()
    return times


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, {platform.system()}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--speed", type=float, default=2000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    runs = [run_once(args.speed) for _ in range(args.runs)]
    totals = [sum(r.values()) for r in runs]
    median = {k: statistics.median(r[k] for r in runs) for k in PHASES}
    result = {"speed": args.speed, "runs": args.runs, "machine": machine(),
              "total_s": {"median": statistics.median(totals), "min": min(totals), "max": max(totals)},
              "phases_median_s": median}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"time to serving at speed {args.speed:g}, {args.runs} runs, {result['machine']}")
        for k in PHASES:
            print(f"  {k:<18} {median[k]:7.2f} s")
        print(f"  {'total (median)':<18} {result['total_s']['median']:7.2f} s   "
              f"(min {result['total_s']['min']:.2f}, max {result['total_s']['max']:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
