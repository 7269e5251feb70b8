"""The eleven steps of the RHAII TPU deployment guide, as data.

One source for the sidebar, the help screen, the commands panel, and `status`.
Texts are this project's own words for the guide's steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .config import (
    DEFAULT_POOL_MACHINE_TYPE,
    GATEWAY_NAME,
    GATEWAY_NAMESPACE,
    HF_SECRET_NAME,
    PULL_SECRET_NAME,
    TPU_ACCELERATOR,
    TPU_MACHINE_TYPE,
    TPU_POOL_NAME,
    DeployConfig,
)


@dataclass(frozen=True)
class Step:
    number: int
    key: str
    title: str
    purpose: str
    expected_seconds: int
    success: tuple[str, ...]
    commands: Callable[[DeployConfig], list[str]]
    optional: bool = False

    @property
    def expected_text(self) -> str:
        s = self.expected_seconds
        return f"~{s // 60} min" if s >= 60 else f"~{s} s"

    @property
    def label(self) -> str:
        return f"{self.number}. {self.title}" + (" (optional)" if self.optional else "")


def _c1(c: DeployConfig) -> list[str]:
    return [
        "gcloud auth application-default print-access-token >/dev/null && echo credentials ok",
        f"gcloud projects describe {c.project}",
        f"gcloud services list --enabled --project {c.project} --filter=name:container.googleapis.com",
        f"gcloud compute accelerator-types list --project {c.project} --filter='name=tpu-v6e-slice' --format='value(zone)'",
        f"gcloud beta quotas info describe TPUS-PER-TPU-FAMILY-per-project-region --service=compute.googleapis.com --project={c.project}",
    ]


def _c2(c: DeployConfig) -> list[str]:
    return [
        f"gcloud container clusters create {c.cluster} --project {c.project} --zone {c.zone} "
        f"--machine-type {getattr(c, 'default_machine_type', '') or DEFAULT_POOL_MACHINE_TYPE} --num-nodes 2 "
        "--enable-ip-alias "
        "--enable-autoscaling --min-nodes 1 --max-nodes 5 --enable-dataplane-v2",
        f"gcloud container node-pools create {TPU_POOL_NAME} --cluster {c.cluster} --project {c.project} "
        f"--zone {c.zone} --machine-type {TPU_MACHINE_TYPE} --num-nodes {c.replicas}",
        f"gcloud container clusters get-credentials {c.cluster} --project {c.project} --zone {c.zone}",
        f"kubectl get nodes -l cloud.google.com/gke-tpu-accelerator={TPU_ACCELERATOR}",
    ]


def _c3(c: DeployConfig) -> list[str]:
    return [
        f"kubectl create namespace {c.namespace}",
        f"kubectl apply -n {c.namespace} -f redhat-pull-secret.yaml",
        f"kubectl apply -n {c.namespace} -f huggingface-token-secret.yaml",
        f"kubectl get secret -n {c.namespace} {PULL_SECRET_NAME} {HF_SECRET_NAME}",
    ]


def _c4(c: DeployConfig) -> list[str]:
    return [
        "git clone https://github.com/opendatahub-io/rhaii-on-xks && cd rhaii-on-xks",
        f"gcloud container clusters get-credentials {c.cluster} --project {c.project} --zone {c.zone}",
        "make deploy-all",
        "kubectl get pods -n cert-manager -l app.kubernetes.io/instance=cert-manager",
        "kubectl get pods -n istio-system -l app=istiod",
        "kubectl get pods -n opendatahub -l control-plane=kserve-controller-manager",
        "kubectl get pods -n openshift-lws-operator -l name=openshift-lws-operator",
        f"kubectl get gateway {GATEWAY_NAME} -n {GATEWAY_NAMESPACE}",
        "kubectl get crd llminferenceservices.serving.kserve.io",
    ]


def _c5(c: DeployConfig) -> list[str]:
    return [
        "rhaii-tui render-manifests --out manifests-out",
        "kubectl apply --server-side -f manifests-out/llminferenceservice.yaml",
        f"kubectl get pods -n {c.namespace} -l kserve.io/component=workload -w",
        f"kubectl logs -n {c.namespace} -l kserve.io/component=workload -c storage-initializer",
        f"kubectl logs -n {c.namespace} -l kserve.io/component=workload -c main -f",
        f"kubectl wait --for=condition=Ready llminferenceservice/{c.service} -n {c.namespace} --timeout=20m",
    ]


def _c6(c: DeployConfig) -> list[str]:
    return [
        f"kubectl patch deployment {c.service}-kserve-router-scheduler -n {c.namespace} "
        "-p '{\"spec\":{\"template\":{\"metadata\":{\"labels\":{\"sidecar.istio.io/inject\":\"true\"}}}}}'",
        f"kubectl rollout status deployment/{c.service}-kserve-router-scheduler -n {c.namespace} --timeout=120s",
        f"kubectl get pods -n {c.namespace} -l app.kubernetes.io/component=llminferenceservice-router-scheduler",
    ]


def _c7(c: DeployConfig) -> list[str]:
    return [
        "rhaii-tui render-manifests --out manifests-out",  # each step's commands stand on their own
        "kubectl apply -f manifests-out/envoyfilter-epp-mtls-fix.yaml",
        "kubectl apply -f manifests-out/envoyfilter-ext-proc.yaml",
        "kubectl apply -f manifests-out/envoyfilter-route-extproc-body.yaml",
        f"kubectl get envoyfilter -n {GATEWAY_NAMESPACE}",
    ]


def _c8(c: DeployConfig) -> list[str]:
    return [
        "rhaii-tui render-manifests --out manifests-out",
        "kubectl apply -f manifests-out/networkpolicies/",
        f"kubectl get networkpolicies -n {c.namespace}",
        f"gcloud container clusters describe {c.cluster} --project {c.project} --zone {c.zone} "
        "--format='value(networkConfig.datapathProvider,networkPolicy.enabled)'  # enforced?",
        f"VLLM_POD_IP=$(kubectl get pod -n {c.namespace} -l kserve.io/component=workload "
        "-o jsonpath='{.items[0].status.podIP}')",
        "kubectl run rhaii-probe -n default --rm -i --restart=Never --image=busybox:1.36 "
        "-- nc -zv -w 3 $VLLM_POD_IP 8000  # another namespace: must time out",
    ]


def _base(c: DeployConfig) -> str:
    return f"http://$GATEWAY_IP/{c.namespace}/{c.service}"


def _c9(c: DeployConfig) -> list[str]:
    return [
        f"GATEWAY_IP=$(kubectl get gateway {GATEWAY_NAME} -n {GATEWAY_NAMESPACE} -o jsonpath='{{.status.addresses[0].value}}')",
        f"curl -s {_base(c)}/v1/models",
        f"curl -s {_base(c)}/v1/completions -H 'Content-Type: application/json' "
        "-d '{\"model\":\"/mnt/models\",\"prompt\":\"Hello\",\"max_tokens\":10}'",
        f"kubectl get llminferenceservice {c.service} -n {c.namespace}",
        f"kubectl get pods -n {c.namespace} -l kserve.io/component=workload",
    ]


def _c10(c: DeployConfig) -> list[str]:
    return [
        f"kubectl get --raw '/api/v1/namespaces/{c.namespace}/pods/POD:8000/proxy/metrics' | grep prefix_cache",
        "rhaii-tui verify --json",
        "rhaii-tui bench --concurrency 10 --duration 60",
    ]


def _c11(c: DeployConfig) -> list[str]:
    return [
        f"curl -s {_base(c)}/v1/models",
        f"kubectl logs -n {c.namespace} POD -c main | grep -E 'Loading weights took|KV cache size'",
        f"kubectl get pods -n {c.namespace} -l kserve.io/component=workload "
        "-o jsonpath='{.items[0].spec.containers[0].args}' | tr ',' '\\n' | grep prefix-caching",
    ]


STEPS: tuple[Step, ...] = (
    Step(1, "preflight", "Preflight checks",
         "Confirms, before anything costs money, that your credentials work, the project is reachable, "
         "you hold the permissions the later steps need, the Kubernetes Engine API is on, the zone offers "
         "TPU v6e, the region has enough TPU v6e chips of quota (4 per replica), and the two secrets are ready.",
         180,
         ("Credentials valid and identity known", "Project reachable and permissions granted",
          "Kubernetes Engine API enabled", "Zone offers TPU v6e (ct6e-standard-4t)",
          "TPU v6e quota >= 4 x replicas chips in the region", "Both secrets ready"),
         _c1),
    Step(2, "cluster", "GKE cluster and TPU node pool",
         "Creates (or reuses) the GKE cluster with a small default pool, then the TPU v6e pool with one "
         "ct6e-standard-4t node per replica, and connects to its Kubernetes API. This is the step that starts billing.",
         1200,
         ("Cluster RUNNING", "One Ready TPU v6e node per replica, labelled tpu-v6e-slice",
          "Kubernetes API reachable with the cluster's credentials"),
         _c2),
    Step(3, "secrets", "Namespace and secrets",
         "Creates the workload namespace and the two secrets the service needs: the Red Hat registry pull "
         "secret and the Hugging Face token. Values are never shown, logged or saved.",
         120,
         (f"Namespace exists", f"Secret {PULL_SECRET_NAME} (dockerconfigjson) present",
          f"Secret {HF_SECRET_NAME} (key 'token') present"),
         _c3),
    Step(4, "operators", "Operators",
         "Installs cert-manager, Istio (sail operator), KServe and LeaderWorkerSet with the upstream "
         "rhaii-on-xks installer, and waits for the inference gateway to get an address.",
         600,
         ("cert-manager, istiod, KServe controller and LWS operator pods Running",
          "CRDs present (llminferenceservices, gateways, httproutes, inferencepools, envoyfilters, leaderworkersets)",
          f"Gateway {GATEWAY_NAME} has an address"),
         _c4),
    Step(5, "deploy", "Deploy the inference service",
         "Applies the LLMInferenceService with prefix caching. Each pod waits for a TPU node, downloads the "
         "model, loads the weights and compiles for the TPU before it is Ready.",
         600,
         ("LLMInferenceService Ready=True", "One workload pod 1/1 per replica, each on its own TPU node"),
         _c5),
    Step(6, "epp-sidecar", "EPP sidecar injection",
         "Adds the Istio sidecar to the EPP scheduler so the gateway can reach it over mTLS; without it the "
         "ext_proc call fails and routing is not cache-aware.",
         60,
         ("EPP pod Ready 2/2 (scheduler + istio-proxy)",),
         _c6),
    Step(7, "envoyfilters", "EnvoyFilters for cache-aware routing",
         "Applies the three EnvoyFilters in the gateway namespace: mTLS to the EPP, the ext_proc cluster, "
         "and request-body forwarding so the scheduler can see the prompt prefix.",
         120,
         ("3 EnvoyFilters present", "Each targets the live EPP service of this deployment"),
         _c7),
    Step(8, "netpol", "NetworkPolicies",
         "Optional isolation for production: only the gateway reaches vLLM on 8000, the EPP is reachable only "
         "from the gateway, the Istio control plane stays reachable, and vLLM egress is limited to DNS and HTTPS.",
         60,
         ("4 NetworkPolicies present, or the step skipped by choice",),
         _c8, optional=True),
    Step(9, "verify", "Verify the deployment",
         "Calls the service through the gateway: health, models (/mnt/models), a completion and a chat "
         "completion, and checks every replica is Ready and answers.",
         300,
         ("Health OK", "Models lists /mnt/models", "Completion returns choices",
          "All replicas Ready and answering"),
         _c9),
    Step(10, "performance", "Cache routing and throughput",
         "Proves cache-aware routing from the servers' own counters (a multi-block shared prefix, replica "
         "affinity, hit deltas) and measures sustained throughput and latency percentiles.",
         300,
         ("Prefix cache hits on one replica for a repeated prefix", "Throughput near the guide's figures"),
         _c10),
    Step(11, "identity", "Model identity and cache behaviour",
         "Shows which model each replica serves, how long weights took to load, the KV cache size, that "
         "prefix caching is on in the live pod spec, and a summary of the cache proof.",
         60,
         ("Model and KV cache size read from each replica", "--enable-prefix-caching in the live pod spec"),
         _c11),
)

BY_NUMBER: dict[int, Step] = {s.number: s for s in STEPS}
BY_KEY: dict[str, Step] = {s.key: s for s in STEPS}


def step(ref: int | str) -> Step:
    if isinstance(ref, int) or str(ref).isdigit():
        return BY_NUMBER[int(ref)]
    return BY_KEY[str(ref)]


TOTAL_EXPECTED_SECONDS = sum(s.expected_seconds for s in STEPS)
