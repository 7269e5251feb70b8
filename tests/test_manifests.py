"""The rendered manifests: they parse, agree with each other for any config, and validate against
the CRD schemas the cluster serves (reference/crds beside the repo) and Kubernetes' own schemas."""

from __future__ import annotations

import copy
import json
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from jsonschema import Draft4Validator

from rhaii_tui import manifests as m
from rhaii_tui.config import DeployConfig

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"
CRDS = REFERENCE / "crds"
UPSTREAM_MANIFESTS = (REFERENCE / "upstream" / "rhaii-on-xks-gke" / "deployments" / "istio-kserve"
                      / "caching-pattern" / "manifests")
K8S_VERSION = "1.30"

CUSTOM = DeployConfig(project="my-project-1", service="my-llm", namespace="team-a", replicas=5,
                      model="hf://meta-llama/Llama-3.2-1B-Instruct",
                      image="quay.io/example/vllm-tpu:1.0")


def _needs_crds() -> Path:
    if not CRDS.is_dir():
        pytest.skip(f"CRD schemas not found at {CRDS} (the reference/ checkout beside the repo)")
    return CRDS


# --- strict CRD schema validation (what `kubectl apply` with strict field validation does) -------


def _strict(schema: Any) -> Any:
    """Copy of a structural schema where objects with declared properties reject unknown fields
    (the API server's strict field validation), unless they preserve unknown fields."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if "properties" in out:
        out["properties"] = {k: _strict(v) for k, v in out["properties"].items()}
        if "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if isinstance(out.get("items"), dict):
        out["items"] = _strict(out["items"])
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _strict(out["additionalProperties"])
    return out


@lru_cache(maxsize=None)
def _load_crd(path: Path) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the KServe CRDs are 40k lines
    return yaml.load(path.read_text(), Loader=loader)


def crd_errors(obj: dict[str, Any], crd_path: Path) -> list[str]:
    crd = _load_crd(crd_path)
    group, version = obj["apiVersion"].split("/")
    assert crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == obj["kind"]
    versions = {v["name"]: v for v in crd["spec"]["versions"]}
    assert version in versions, f"{crd_path.name} does not serve {version} (only {sorted(versions)})"
    assert versions[version]["served"], f"{crd_path.name}: {version} is not served"
    schema = _strict(versions[version]["schema"]["openAPIV3Schema"])
    # the API server always accepts these at the root, whatever the CRD declares
    schema["properties"] = {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                            "metadata": {"type": "object"}, **schema["properties"]}
    return sorted(f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}"
                  for e in Draft4Validator(schema).iter_errors(obj))


def core_errors(obj: dict[str, Any]) -> str | None:
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return f"{'.'.join(str(p) for p in e.path)}: {e.message}"
    return None


# --- rendering -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cfg", [DeployConfig(), CUSTOM], ids=["default", "custom"])
def test_every_manifest_is_one_yaml_object_with_a_stable_filename(cfg):
    texts = m.render_all(cfg)
    assert list(texts) == list(m.MANIFEST_FILES)
    assert set(texts) >= {"llminferenceservice.yaml", "envoyfilter-epp-mtls-fix.yaml", "envoyfilter-ext-proc.yaml",
                          "envoyfilter-route-extproc-body.yaml", "namespace.yaml", "httproute-health.yaml",
                          "networkpolicies/allow-gateway-to-vllm.yaml", "networkpolicies/allow-epp-scheduler.yaml",
                          "networkpolicies/allow-istio.yaml", "networkpolicies/allow-vllm-egress.yaml"}
    for name, text in texts.items():
        docs = [d for d in yaml.safe_load_all(text) if d]
        assert len(docs) == 1, name
        assert docs[0]["apiVersion"] and docs[0]["kind"] and docs[0]["metadata"]["name"], name


def test_no_template_is_left_out_of_the_file_list():
    on_disk = {p.relative_to(m.manifests_dir()).as_posix()[:-3] for p in m.manifests_dir().rglob("*.j2")}
    assert on_disk == set(m.MANIFEST_FILES)


def test_names_and_cross_references_follow_the_config():
    cfg = CUSTOM
    objs = m.render_objects(cfg)
    text = "\n".join(m.render_all(cfg).values())
    # nothing of the defaults leaks into a non-default render
    assert "qwen" not in text.lower() and "rhaii-inference" not in text

    svc = m.llmisvc(cfg)
    assert (svc["metadata"]["name"], svc["metadata"]["namespace"], svc["spec"]["replicas"]) == ("my-llm", "team-a", 5)
    assert svc["spec"]["model"] == {"uri": "hf://meta-llama/Llama-3.2-1B-Instruct", "name": "meta-llama/Llama-3.2-1B-Instruct"}
    assert svc["spec"]["template"]["containers"][0]["image"] == "quay.io/example/vllm-tpu:1.0"

    assert objs["namespace.yaml"][0]["metadata"]["name"] == "team-a"

    cluster = "outbound|9002||my-llm-epp-service.team-a.svc.cluster.local"
    assert m.epp_cluster_name("my-llm", "team-a") == cluster
    mtls, ext_proc, body = m.envoyfilters(cfg)
    assert [f["metadata"]["name"] for f in (mtls, ext_proc, body)] == list(m.envoyfilter_names("my-llm").values())
    for f in (mtls, ext_proc, body):
        assert f["metadata"]["namespace"] == "opendatahub"
        assert f["spec"]["workloadSelector"]["labels"] == {"gateway.networking.k8s.io/gateway-name": "inference-gateway"}
    patch = mtls["spec"]["configPatches"][0]
    assert patch["match"]["cluster"]["name"] == cluster
    assert patch["patch"]["value"]["transport_socket"]["typed_config"]["sni"] == \
        "outbound_.9002_._.my-llm-epp-service.team-a.svc.cluster.local"
    assert ext_proc["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["grpc_service"]["envoy_grpc"] == \
        {"cluster_name": cluster}
    assert [p["match"]["routeConfiguration"]["vhost"]["route"]["name"] for p in body["spec"]["configPatches"]] == \
        ["team-a.my-llm-kserve-route.0", "team-a.my-llm-kserve-route.1"]
    assert mtls["spec"]["priority"] < ext_proc["spec"]["priority"]

    route = m.health_route(cfg)
    assert route["metadata"]["namespace"] == "team-a"
    assert [r["matches"][0]["path"]["value"] for r in route["spec"]["rules"]] == \
        ["/team-a/my-llm/health", "/team-a/my-llm/v1/models"]
    assert {b["name"] for r in route["spec"]["rules"] for b in r["backendRefs"]} == {"my-llm-inference-pool"}

    pols = {p["metadata"]["name"]: p for p in m.networkpolicies(cfg)}
    assert list(pols) == ["allow-gateway-to-vllm", "allow-epp-scheduler", "allow-istio", "allow-vllm-egress"]
    assert {p["metadata"]["namespace"] for p in pols.values()} == {"team-a"}
    workload = {"kserve.io/component": "workload", "app.kubernetes.io/part-of": "llminferenceservice",
                "app.kubernetes.io/name": "my-llm"}
    assert pols["allow-gateway-to-vllm"]["spec"]["podSelector"]["matchLabels"] == workload
    assert pols["allow-vllm-egress"]["spec"]["podSelector"]["matchLabels"] == workload
    assert pols["allow-epp-scheduler"]["spec"]["podSelector"]["matchLabels"] == m.epp_labels("my-llm")
    assert m.epp_labels("my-llm")["app.kubernetes.io/component"] == "llminferenceservice-router-scheduler"
    assert pols["allow-epp-scheduler"]["spec"]["egress"][0]["to"][0]["podSelector"]["matchLabels"] == workload


def test_name_helpers_match_what_kserve_derives():
    assert m.epp_deployment_name("my-llm") == "my-llm-kserve-router-scheduler"
    assert m.epp_service_name("my-llm") == "my-llm-epp-service"
    assert m.workload_service_name("my-llm") == "my-llm-kserve-workload-svc"
    assert m.workload_deployment_name("my-llm") == "my-llm-kserve"
    assert m.inference_pool_name("my-llm") == "my-llm-inference-pool"
    assert m.route_name("my-llm") == "my-llm-kserve-route"
    assert m.service_path("team-a", "my-llm") == "/team-a/my-llm"
    assert m.label_selector(m.workload_labels("s")) == \
        "app.kubernetes.io/name=s,app.kubernetes.io/part-of=llminferenceservice,kserve.io/component=workload"


def test_llmisvc_carries_the_guides_tpu_and_vllm_settings():
    spec = m.llmisvc(DeployConfig())["spec"]
    tpl = spec["template"]
    assert tpl["nodeSelector"] == {"cloud.google.com/gke-tpu-accelerator": "tpu-v6e-slice",
                                   "cloud.google.com/gke-tpu-topology": "2x2"}
    assert {"key": "google.com/tpu", "operator": "Exists", "effect": "NoSchedule"} in tpl["tolerations"]
    assert tpl["imagePullSecrets"] == [{"name": "rhaiis-pull-secret"}]
    main = tpl["containers"][0]
    assert main["name"] == "main" and main["image"] == "registry.redhat.io/rhaiis/vllm-tpu-rhel9:3.2.5"
    assert main["resources"] == {"requests": {"google.com/tpu": "4"}, "limits": {"google.com/tpu": "4"}}
    for flag in ("--tensor-parallel-size=4", "--max-model-len=2048", "--enable-prefix-caching", "--model=/mnt/models"):
        assert flag in main["args"]
    hf = next(e for e in main["env"] if e["name"] == "HF_TOKEN")
    assert hf["valueFrom"]["secretKeyRef"] == {"name": "huggingface-token", "key": "token"}
    live, ready = main["livenessProbe"], main["readinessProbe"]
    assert live["httpGet"] == {"path": "/health", "port": 8000, "scheme": "HTTPS"}
    assert ready["httpGet"] == {"path": "/v1/models", "port": 8000, "scheme": "HTTPS"}
    assert live["initialDelaySeconds"] == ready["initialDelaySeconds"] == 240
    assert spec["router"]["gateway"] == {} and spec["router"]["route"] == {}
    epp = spec["router"]["scheduler"]["template"]["containers"]
    assert epp == [{"name": "main", "image": m.EPP_IMAGE}]  # image only: KServe's args stay
    assert "image" not in spec["router"]["scheduler"] and "args" not in spec["router"]["scheduler"]


def test_namespace_is_the_guides_plain_namespace():
    ns = m.namespace(DeployConfig())  # the guide's `kubectl create namespace`: no injection label
    assert ns["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "rhaii-tui"}


def test_api_server_cidrs_narrow_the_epp_egress():
    pol = m.networkpolicies(DeployConfig(), api_server_cidrs=["34.90.1.2/32"])[1]
    blocks = [peer["ipBlock"]["cidr"] for rule in pol["spec"]["egress"] for peer in rule.get("to", [])
              if "ipBlock" in peer]
    assert blocks == ["34.90.1.2/32"]


def test_bad_config_gets_a_clear_error_not_a_broken_manifest():
    with pytest.raises(ValueError, match="Service name must be a DNS-1123 label"):
        m.render_all(DeployConfig(service="My_LLM"))
    with pytest.raises(ValueError, match="Replicas must be at least 1"):
        m.render_all(DeployConfig(replicas=0))


# --- schema validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("kserve", ["3.4.0-ea.1", "3.4.0-ea.2"])
@pytest.mark.parametrize("cfg", [DeployConfig(), CUSTOM], ids=["default", "custom"])
def test_llmisvc_validates_against_the_kserve_crd(kserve, cfg):
    crd = _needs_crds() / "kserve" / kserve / "serving.kserve.io_llminferenceservices.yaml"
    obj = m.llmisvc(cfg)
    assert obj["apiVersion"] == "serving.kserve.io/v1alpha1"
    assert crd_errors(obj, crd) == []


def test_the_schema_check_rejects_scheduler_image_and_args():
    """The upstream's spec.router.scheduler.image/args are unknown fields: the check must catch them."""
    crd = _needs_crds() / "kserve" / "3.4.0-ea.2" / "serving.kserve.io_llminferenceservices.yaml"
    bad = copy.deepcopy(m.llmisvc(DeployConfig()))
    bad["spec"]["router"]["scheduler"]["image"] = m.EPP_IMAGE
    bad["spec"]["router"]["scheduler"]["args"] = ["--grpc-port=9002"]
    errors = crd_errors(bad, crd)
    assert any("'args', 'image' were unexpected" in e for e in errors), errors
    upstream = UPSTREAM_MANIFESTS / "llmisvc-tpu-caching.yaml"
    if upstream.is_file():
        assert any("spec.router.scheduler" in e for e in crd_errors(yaml.safe_load(upstream.read_text()), crd))


@pytest.mark.parametrize("cfg", [DeployConfig(), CUSTOM], ids=["default", "custom"])
def test_envoyfilters_validate_against_the_istio_crd(cfg):
    crd = _needs_crds() / "istio" / "customresourcedefinition-envoyfilters-networking-istio-io.yaml"
    for obj in m.envoyfilters(cfg):
        assert crd_errors(obj, crd) == [], obj["metadata"]["name"]


@pytest.mark.parametrize("cfg", [DeployConfig(), CUSTOM], ids=["default", "custom"])
def test_health_route_validates_against_the_gateway_api_crd(cfg):
    crd = _needs_crds() / "gateway-api" / "v1.4.0" / "gateway.networking.k8s.io_httproutes.yaml"
    assert crd_errors(m.health_route(cfg), crd) == []
    # and it points at an InferencePool kind the cluster has
    group = m.health_route(cfg)["spec"]["rules"][0]["backendRefs"][0]["group"]
    pool_crd = _needs_crds() / "inference-extension" / "v1.2.0" / f"{group}_inferencepools.yaml"
    assert pool_crd.is_file()


@pytest.mark.parametrize("cfg", [DeployConfig(), CUSTOM], ids=["default", "custom"])
def test_core_kinds_validate_against_kubernetes_schemas(cfg):
    objs = [m.namespace(cfg), *m.networkpolicies(cfg), *m.networkpolicies(cfg, api_server_cidrs=["10.0.0.2/32"])]
    for obj in objs:
        assert core_errors(obj) is None, (obj["metadata"]["name"], core_errors(obj))
    broken = copy.deepcopy(m.networkpolicies(cfg)[0])
    broken["spec"]["ingress"][0]["from"][0]["podSelectors"] = {}
    assert core_errors(broken) is not None


# --- files and data locations --------------------------------------------------------------------


def test_write_manifests_writes_every_file_and_is_repeatable(tmp_path):
    first = m.write_manifests(CUSTOM, tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in first] == list(m.MANIFEST_FILES)
    assert (tmp_path / "networkpolicies" / "allow-istio.yaml").is_file()
    before = {p: p.read_text() for p in first}
    second = m.write_manifests(CUSTOM, tmp_path)
    assert {p: p.read_text() for p in second} == before


def test_templates_are_found_in_an_installed_wheel_layout(tmp_path, monkeypatch):
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert include == {"manifests": "rhaii_tui/_data/manifests", "templates": "rhaii_tui/_data/templates"}

    pkg = tmp_path / "site-packages" / "rhaii_tui"
    (pkg / "_data" / "manifests").mkdir(parents=True)
    (pkg / "_data" / "templates").mkdir(parents=True)
    monkeypatch.setattr(m, "__file__", str(pkg / "manifests.py"))
    assert m.manifests_dir() == pkg / "_data" / "manifests"
    assert m.templates_dir() == pkg / "_data" / "templates"

    monkeypatch.setattr(m, "__file__", str(tmp_path / "nowhere" / "rhaii_tui" / "manifests.py"))
    with pytest.raises(FileNotFoundError, match="reinstall rhaii-tui"):
        m.manifests_dir()


def test_source_checkout_uses_the_repo_folders():
    assert m.manifests_dir() == ROOT / "manifests"
    assert m.templates_dir() == ROOT / "templates"


# --- secret templates ----------------------------------------------------------------------------


def test_secret_templates_have_placeholders_and_become_valid_secrets():
    pull = m.template_text("rhaiis-pull-secret")
    hf = m.template_text("huggingface-token-secret.yaml.template")
    assert m.placeholders_in(pull) == ["PLACEHOLDER_REGISTRY_AUTH_BASE64"]
    assert m.placeholders_in(hf) == ["PLACEHOLDER_HF_TOKEN"]

    pull_obj = yaml.safe_load(pull.replace("PLACEHOLDER_REGISTRY_AUTH_BASE64", "dXNlcjpwYXNz"))
    assert pull_obj["metadata"]["name"] == "rhaiis-pull-secret"
    assert pull_obj["type"] == "kubernetes.io/dockerconfigjson"
    auths = json.loads(pull_obj["stringData"][".dockerconfigjson"])["auths"]
    assert auths == {"registry.redhat.io": {"auth": "dXNlcjpwYXNz"}}

    hf_obj = yaml.safe_load(hf.replace("PLACEHOLDER_HF_TOKEN", "hf_abc"))
    assert (hf_obj["metadata"]["name"], hf_obj["type"], hf_obj["stringData"]) == \
        ("huggingface-token", "Opaque", {"token": "hf_abc"})
    for obj in (pull_obj, hf_obj):
        assert core_errors(obj) is None
    assert m.placeholders_in(hf.replace("PLACEHOLDER_HF_TOKEN", "hf_abc")) == []


def test_unknown_secret_template_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown secret template 'nope'.*huggingface-token"):
        m.template_text("nope")


# --- CLI -----------------------------------------------------------------------------------------


def test_cli_render_manifests_uses_the_config(tmp_path, monkeypatch, capsys):
    from rhaii_tui import cli

    monkeypatch.setenv("RHAII_TUI_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("NAMESPACE", "team-a")
    out = tmp_path / "out"
    assert cli.main(["--replicas", "5", "render-manifests", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == len(m.MANIFEST_FILES)
    svc = yaml.safe_load((out / "llminferenceservice.yaml").read_text())
    assert (svc["metadata"]["namespace"], svc["spec"]["replicas"]) == ("team-a", 5)
    assert yaml.safe_load((out / "networkpolicies" / "allow-istio.yaml").read_text())["metadata"]["namespace"] == "team-a"
