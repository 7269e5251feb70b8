"""The guide's manifests, rendered from the deploy config, and the names KServe derives.

The Jinja2 templates live in `manifests/` (and the secret templates in `templates/`) at the repo
root; the wheel ships them as `rhaii_tui/_data/{manifests,templates}`. Templates get plain values
only: every name, label and port is computed here, so this module is the one place that knows
them. Other modules import the name helpers below instead of spelling names themselves.

No Textual here, no cluster access: rendering is pure.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import jinja2
import yaml

from .config import (
    CHIPS_PER_REPLICA,
    GATEWAY_NAME,
    GATEWAY_NAMESPACE,
    HF_SECRET_NAME,
    PULL_SECRET_NAME,
    TPU_ACCELERATOR,
    TPU_TOPOLOGY,
    DeployConfig,
    validate_image,
    validate_model,
    validate_namespace,
    validate_replicas,
    validate_service,
)

# --- facts the manifests encode ------------------------------------------------------------------

LLMISVC_API_VERSION = "serving.kserve.io/v1alpha1"  # served by KServe 3.4 EA1 and EA2
ENVOYFILTER_API_VERSION = "networking.istio.io/v1alpha3"
HTTPROUTE_API_VERSION = "gateway.networking.k8s.io/v1"
# The InferencePool APIs KServe 3.4 writes its pool in: 3.4.0-ea.1 (what the upstream installer of
# step 4 pins) inference.networking.x-k8s.io/v1alpha2, 3.4.0-ea.2 inference.networking.k8s.io/v1.
# Which one a cluster has is read live (steps/deploy.py kserve_pool) and the health route follows
# it; INFERENCE_POOL_GROUP is only what render-manifests writes without a cluster to ask.
INFERENCE_POOL_APIS: dict[str, str] = {
    "inference.networking.x-k8s.io": "v1alpha2",
    "inference.networking.k8s.io": "v1",
}
INFERENCE_POOL_GROUP = "inference.networking.x-k8s.io"

# The EPP image with ALPN h2 on its TLS gRPC port (upstream bug report BUG-EPP-Scheduler-ALPN.md);
# the guide's deployment uses it until KServe's default scheduler image carries the fix.
EPP_IMAGE = "gcr.io/ecoeng-llmd/llm-d-inference-scheduler:alpn-fix"

VLLM_PORT = 8000
EPP_GRPC_PORT = 9002
EPP_HEALTH_PORT = 9003
EPP_METRICS_PORT = 9090
MODEL_PATH = "/mnt/models"  # where the storage initializer puts the model; also the served name
MAX_MODEL_LEN = 2048
MAX_NUM_SEQS = 128
PROBE_INITIAL_DELAY_SECONDS = 240
HF_SECRET_KEY = "token"
KSERVE_TLS_DIR = "/var/run/kserve/tls"

ISTIO_NAMESPACE = "istio-system"
ISTIOD_LABELS: dict[str, str] = {"app": "istiod"}
ISTIOD_PORTS: tuple[int, ...] = (15012, 15017)
MONITORING_NAMESPACES: tuple[str, ...] = ("gmp-system", "monitoring")
# Everything that is not the public internet: private ranges, shared (CGNAT) space, link-local
# (incl. the metadata server). vLLM's HTTPS egress excludes them.
NON_PUBLIC_CIDRS: tuple[str, ...] = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
)
MANAGED_BY_LABELS: dict[str, str] = {"app.kubernetes.io/managed-by": "rhaii-tui"}

# Rules of KServe's HTTPRoute that go to the InferencePool (completions, chat completions); the
# last rule (the catch-all to the workload Service) bypasses the EPP.
ROUTE_POOL_RULE_INDEXES: tuple[int, ...] = (0, 1)
HEALTH_PATHS: tuple[str, ...] = ("/health", "/v1/models")

NETWORK_POLICY_NAMES: tuple[str, ...] = (
    "allow-gateway-to-vllm",
    "allow-epp-scheduler",
    "allow-istio",
    "allow-vllm-egress",
)

# output file -> template, in apply order
MANIFEST_FILES: tuple[str, ...] = (
    "namespace.yaml",
    "llminferenceservice.yaml",
    "httproute-health.yaml",
    "envoyfilter-epp-mtls-fix.yaml",
    "envoyfilter-ext-proc.yaml",
    "envoyfilter-route-extproc-body.yaml",
    *(f"networkpolicies/{name}.yaml" for name in NETWORK_POLICY_NAMES),
)

SECRET_TEMPLATES: dict[str, str] = {
    PULL_SECRET_NAME: "redhat-pull-secret.yaml.template",
    HF_SECRET_NAME: "huggingface-token-secret.yaml.template",
}
# placeholder -> what the user puts there
PLACEHOLDERS: dict[str, str] = {
    "PLACEHOLDER_REGISTRY_AUTH_BASE64": "base64 of USERNAME:PASSWORD for registry.redhat.io",
    "PLACEHOLDER_HF_TOKEN": "a HuggingFace read token (hf_...)",
}


# --- names KServe derives from the LLMInferenceService -------------------------------------------
# (kmeta.ChildName would hash names over 63 characters; config.validate_service keeps them shorter.)


def workload_deployment_name(svc: str) -> str:
    return f"{svc}-kserve"


def epp_deployment_name(svc: str) -> str:
    return f"{svc}-kserve-router-scheduler"


def epp_service_name(svc: str) -> str:
    """Service of the EPP: 9002 grpc (ext_proc), 9003 grpc health, 9090 metrics."""
    return f"{svc}-epp-service"


def workload_service_name(svc: str) -> str:
    """Service in front of the vLLM pods (port 8000, HTTPS)."""
    return f"{svc}-kserve-workload-svc"


def inference_pool_name(svc: str) -> str:
    return f"{svc}-inference-pool"


def route_name(svc: str) -> str:
    """The HTTPRoute KServe creates on the gateway."""
    return f"{svc}-kserve-route"


def tls_secret_name(svc: str) -> str:
    """KServe's self-signed serving certificate, mounted at /var/run/kserve/tls."""
    return f"{svc}-kserve-self-signed-certs"


def health_route_name(svc: str) -> str:
    """Our HTTPRoute for /health and /v1/models (httproute-health.yaml)."""
    return f"{svc}-health-models"


def service_path(namespace: str, svc: str) -> str:
    """Path prefix of the service on the gateway: base URL is http://<gateway address><this>."""
    return f"/{namespace}/{svc}"


def epp_host(svc: str, namespace: str) -> str:
    return f"{epp_service_name(svc)}.{namespace}.svc.cluster.local"


def epp_cluster_name(svc: str, namespace: str) -> str:
    """The gateway's Envoy cluster for the EPP's ext_proc port, as Istio names it."""
    return f"outbound|{EPP_GRPC_PORT}||{epp_host(svc, namespace)}"


def epp_sni(svc: str, namespace: str) -> str:
    return f"outbound_.{EPP_GRPC_PORT}_._.{epp_host(svc, namespace)}"


def route_rule_names(svc: str, namespace: str) -> list[str]:
    """Istio's Envoy route names for the InferencePool rules of KServe's HTTPRoute."""
    return [f"{namespace}.{route_name(svc)}.{i}" for i in ROUTE_POOL_RULE_INDEXES]


def envoyfilter_names(svc: str) -> dict[str, str]:
    """Our EnvoyFilters in the gateway namespace, keyed mtls / ext_proc / body.

    Named after the service so that two deployments (or a teardown) never touch each other's."""
    return {
        "mtls": f"{svc}-epp-mtls-fix",
        "ext_proc": f"{svc}-ext-proc",
        "body": f"{svc}-route-body-forwarding",
    }


# --- labels --------------------------------------------------------------------------------------


def workload_labels(svc: str) -> dict[str, str]:
    """Labels KServe puts on the vLLM pods of `svc` (a selector for exactly those pods)."""
    return {
        "app.kubernetes.io/name": svc,
        "app.kubernetes.io/part-of": "llminferenceservice",
        "kserve.io/component": "workload",
    }


def epp_labels(svc: str) -> dict[str, str]:
    """Labels KServe puts on the EPP scheduler pods of `svc`."""
    return {
        "app.kubernetes.io/component": "llminferenceservice-router-scheduler",
        "app.kubernetes.io/name": svc,
        "app.kubernetes.io/part-of": "llminferenceservice",
    }


def gateway_pod_labels() -> dict[str, str]:
    """Labels of the inference gateway's pods (in GATEWAY_NAMESPACE)."""
    return {"gateway.networking.k8s.io/gateway-name": GATEWAY_NAME}


def label_selector(labels: Mapping[str, str]) -> str:
    """'k=v,k2=v2' for list calls and kubectl -l."""
    return ",".join(f"{k}={v}" for k, v in labels.items())


# --- vLLM ----------------------------------------------------------------------------------------


def vllm_command() -> list[str]:
    return ["python3", "-m", "vllm.entrypoints.openai.api_server"]


def vllm_flags(cfg: DeployConfig) -> list[str]:
    """vLLM's arguments in the workload pod (step 11 checks prefix caching is among them)."""
    return [
        f"--model={MODEL_PATH}",
        f"--port={VLLM_PORT}",
        "--dtype=half",
        f"--max-model-len={MAX_MODEL_LEN}",
        f"--tensor-parallel-size={CHIPS_PER_REPLICA}",
        "--enable-prefix-caching",
        f"--max-num-seqs={MAX_NUM_SEQS}",
        "--disable-log-requests",
        f"--ssl-certfile={KSERVE_TLS_DIR}/tls.crt",
        f"--ssl-keyfile={KSERVE_TLS_DIR}/tls.key",
    ]


def _chips_per_host_bounds() -> str:
    x, y = (int(v) for v in TPU_TOPOLOGY.split("x"))
    return f"{x},{y},1"


# --- locating the templates ----------------------------------------------------------------------


def _data_dir(kind: str) -> Path:
    """`kind` is "manifests" or "templates": the wheel's copy, else the source checkout's."""
    here = Path(__file__).resolve().parent
    candidates = (here / "_data" / kind, here.parent / kind)
    for cand in candidates:
        if cand.is_dir():
            return cand
    raise FileNotFoundError(
        f"the {kind} directory is missing (looked in {', '.join(str(c) for c in candidates)}); "
        "reinstall rhaii-tui")


def manifests_dir() -> Path:
    return _data_dir("manifests")


def templates_dir() -> Path:
    return _data_dir("templates")


def _indent_labels(labels: Mapping[str, str], indent: int) -> str:
    pad = " " * indent
    return "\n".join(f"{pad}{k}: {json.dumps(str(v))}" for k, v in labels.items())


@lru_cache(maxsize=4)
def _env(root: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    # q: a YAML-safe scalar (a JSON string is a valid YAML double-quoted scalar)
    env.filters["q"] = lambda v: json.dumps(v)
    env.filters["labels"] = _indent_labels
    return env


# --- rendering -----------------------------------------------------------------------------------


def _check(cfg: DeployConfig) -> None:
    errors = [err for err in (
        validate_namespace(cfg.namespace),
        validate_service(cfg.service),
        validate_model(cfg.model),
        validate_image(cfg.image),
        validate_replicas(cfg.replicas),
    ) if err]
    if errors:
        raise ValueError("cannot render the manifests: " + " ".join(errors))


def context(cfg: DeployConfig, *, epp_image: str = EPP_IMAGE,
            api_server_cidrs: Sequence[str] = (), inference_pool_group: str | None = None) -> dict[str, Any]:
    """Every value the templates use. `inference_pool_group`: the API group of the InferencePool
    KServe created (default INFERENCE_POOL_GROUP)."""
    svc, ns = cfg.service, cfg.namespace
    return {
        "namespace": ns,
        "service": svc,
        "model": cfg.model,
        "model_repo": cfg.model_repo,
        "replicas": int(cfg.replicas),
        "image": cfg.image,
        "epp_image": epp_image,
        "common_labels": dict(MANAGED_BY_LABELS),
        "gateway_name": GATEWAY_NAME,
        "gateway_namespace": GATEWAY_NAMESPACE,
        "gateway_pod_labels": gateway_pod_labels(),
        "workload_labels": workload_labels(svc),
        "epp_labels": epp_labels(svc),
        "route_name": route_name(svc),
        "route_rule_names": route_rule_names(svc, ns),
        "route_rule_indexes": [str(i) for i in ROUTE_POOL_RULE_INDEXES],
        "inference_pool_name": inference_pool_name(svc),
        "inference_pool_group": inference_pool_group or INFERENCE_POOL_GROUP,
        "health_route_name": health_route_name(svc),
        "health_paths": list(HEALTH_PATHS),
        "base_path": service_path(ns, svc),
        "epp_cluster_name": epp_cluster_name(svc, ns),
        "epp_sni": epp_sni(svc, ns),
        "envoyfilter_names": envoyfilter_names(svc),
        "tpu_accelerator": TPU_ACCELERATOR,
        "tpu_topology": TPU_TOPOLOGY,
        "tpu_chips_per_host_bounds": _chips_per_host_bounds(),
        "chips_per_replica": CHIPS_PER_REPLICA,
        "pull_secret_name": PULL_SECRET_NAME,
        "hf_secret_name": HF_SECRET_NAME,
        "hf_secret_key": HF_SECRET_KEY,
        "vllm_command": vllm_command(),
        "vllm_flags": vllm_flags(cfg),
        "vllm_port": VLLM_PORT,
        "probe_initial_delay": PROBE_INITIAL_DELAY_SECONDS,
        "epp_grpc_port": EPP_GRPC_PORT,
        "epp_metrics_port": EPP_METRICS_PORT,
        "monitoring_namespaces": list(MONITORING_NAMESPACES),
        "istio_namespace": ISTIO_NAMESPACE,
        "istiod_labels": dict(ISTIOD_LABELS),
        "istiod_ports": list(ISTIOD_PORTS),
        "non_public_cidrs": list(NON_PUBLIC_CIDRS),
        "api_server_cidrs": list(api_server_cidrs),
    }


def render_all(cfg: DeployConfig, *, epp_image: str = EPP_IMAGE,
               api_server_cidrs: Sequence[str] = (), inference_pool_group: str | None = None) -> dict[str, str]:
    """{relative filename: YAML text} for every manifest, in apply order.

    `api_server_cidrs` (e.g. ["172.16.0.2/32"]: the addresses of the `kubernetes` EndpointSlice in
    `default`, where pods reach the API server; not the cluster's public endpoint) narrows the EPP's
    egress to the Kubernetes API; without it the EPP may reach any address on 443. Raises ValueError on a config
    that cannot be rendered."""
    _check(cfg)
    env = _env(str(manifests_dir()))
    ctx = context(cfg, epp_image=epp_image, api_server_cidrs=api_server_cidrs,
                  inference_pool_group=inference_pool_group)
    return {name: env.get_template(name + ".j2").render(ctx) for name in MANIFEST_FILES}


def render_objects(cfg: DeployConfig, **options: Any) -> dict[str, list[dict[str, Any]]]:
    """{relative filename: [objects]} (each file holds one object today)."""
    return {name: [doc for doc in yaml.safe_load_all(text) if doc]
            for name, text in render_all(cfg, **options).items()}


def all_objects(cfg: DeployConfig, **options: Any) -> list[dict[str, Any]]:
    """Every object, in apply order (namespace first)."""
    return [obj for objs in render_objects(cfg, **options).values() for obj in objs]


def _one(cfg: DeployConfig, name: str, **options: Any) -> dict[str, Any]:
    return render_objects(cfg, **options)[name][0]


def namespace(cfg: DeployConfig) -> dict[str, Any]:
    return _one(cfg, "namespace.yaml")


def llmisvc(cfg: DeployConfig, **options: Any) -> dict[str, Any]:
    return _one(cfg, "llminferenceservice.yaml", **options)


def health_route(cfg: DeployConfig, pool_group: str | None = None) -> dict[str, Any]:
    """The health HTTPRoute, its backend the InferencePool in `pool_group` (the group of the pool
    KServe created; default INFERENCE_POOL_GROUP)."""
    if pool_group is not None and pool_group not in INFERENCE_POOL_APIS:
        raise ValueError(f"unknown InferencePool group {pool_group!r}; known: {', '.join(INFERENCE_POOL_APIS)}")
    return _one(cfg, "httproute-health.yaml", inference_pool_group=pool_group)


def envoyfilters(cfg: DeployConfig) -> list[dict[str, Any]]:
    """The three EnvoyFilters: mTLS fix, ext_proc cluster, body forwarding (in that order)."""
    objs = render_objects(cfg)
    return [objs[name][0] for name in MANIFEST_FILES if name.startswith("envoyfilter-")]


def networkpolicies(cfg: DeployConfig, **options: Any) -> list[dict[str, Any]]:
    """The four NetworkPolicies (NETWORK_POLICY_NAMES order)."""
    objs = render_objects(cfg, **options)
    return [objs[name][0] for name in MANIFEST_FILES if name.startswith("networkpolicies/")]


def write_manifests(cfg: DeployConfig, out_dir: str | Path, **options: Any) -> list[Path]:
    """Write every manifest under out_dir (networkpolicies/ in a subfolder); returns the paths.

    Atomic: everything is rendered, then written into a temporary directory next to out_dir, which
    is moved into place (a new out_dir is one rename; into an existing one each file is replaced
    by a rename once all are written). A failure (render, disk full, permissions) leaves no partial
    output and removes the temporary directory; it raises (ValueError, OSError)."""
    import os
    import shutil
    import tempfile

    out = Path(out_dir)
    rendered = render_all(cfg, **options)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(20, "Not a directory", str(out))
    parent = out.parent if str(out.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name or 'manifests'}.tmp-", dir=parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; the manifests are not secret
        for name, text in rendered.items():
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        if not out.exists():
            os.rename(tmp, out)
        else:
            for name in rendered:
                (out / name).parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp / name, out / name)
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [out / name for name in rendered]


# --- secret templates ----------------------------------------------------------------------------


def template_names() -> list[str]:
    return list(SECRET_TEMPLATES.values())


def template_text(name: str) -> str:
    """Text of a secret template, by file name or by secret name (rhaiis-pull-secret,
    huggingface-token). The placeholders are in PLACEHOLDERS."""
    filename = SECRET_TEMPLATES.get(name, name)
    if filename not in SECRET_TEMPLATES.values():
        known = ", ".join([*SECRET_TEMPLATES, *SECRET_TEMPLATES.values()])
        raise ValueError(f"unknown secret template {name!r}; known: {known}")
    return (templates_dir() / filename).read_text()


def placeholders_in(text: str) -> list[str]:
    """Placeholders still present in a (filled-in) template."""
    return [p for p in PLACEHOLDERS if p in text]

