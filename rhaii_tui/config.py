"""Deploy configuration: fields, validation rules, defaults and their precedence.

Precedence for every field: command-line flags > environment (PROJECT_ID, ZONE, CLUSTER_NAME,
NAMESPACE, the names the upstream scripts use) > the saved state for this target > the gcloud
CLI's configured project (read from its config files, no subprocess) > the guide's defaults.

No secrets ever live here: the state file holds the chosen config and timestamps only.
"""

from __future__ import annotations

import configparser
import dataclasses
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

# --- the guide's facts ---------------------------------------------------------------------------

V6E_ZONES: tuple[str, ...] = (
    "us-central1-b",
    "us-east1-d",
    "us-east5-a",
    "us-east5-b",
    "us-south1-a",
    "us-south1-b",
    "europe-west4-a",
    "asia-northeast1-b",
    "southamerica-west1-a",
)
CHIPS_PER_REPLICA = 4
TPU_MACHINE_TYPE = "ct6e-standard-4t"
TPU_TOPOLOGY = "2x2"
TPU_ACCELERATOR = "tpu-v6e-slice"
TPU_POOL_NAME = "tpu-pool"
DEFAULT_POOL_MACHINE_TYPE = "n1-standard-4"
GATEWAY_NAME = "inference-gateway"
GATEWAY_NAMESPACE = "opendatahub"
PULL_SECRET_NAME = "rhaiis-pull-secret"
HF_SECRET_NAME = "huggingface-token"
# Seed cost figures (GUIDE_FACTS): ~$377/day for 3 TPU nodes + cluster, ~$6/day scaled to zero.
CLUSTER_OVERHEAD_PER_DAY = 6.0
DEFAULT_PRICE_PER_NODE_HOUR = round((377.0 - CLUSTER_OVERHEAD_PER_DAY) / 3 / 24, 2)  # 5.15

DEFAULTS: dict[str, Any] = {
    "project": "",
    "zone": "europe-west4-a",
    "cluster": "rhaii-tpu-scaleout-cluster",
    "namespace": "rhaii-inference",
    "service": "qwen-3b-tpu-svc",
    "model": "hf://Qwen/Qwen2.5-3B-Instruct",
    "replicas": 3,
    "image": "registry.redhat.io/rhaiis/vllm-tpu-rhel9:3.2.5",
    "price_per_node_hour": DEFAULT_PRICE_PER_NODE_HOUR,
    "default_machine_type": DEFAULT_POOL_MACHINE_TYPE,  # the cluster's default (CPU) node pool
}

ENV_NAMES: dict[str, str] = {
    "project": "PROJECT_ID",
    "zone": "ZONE",
    "cluster": "CLUSTER_NAME",
    "namespace": "NAMESPACE",
}


# --- validation ----------------------------------------------------------------------------------

_PROJECT_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_CLUSTER_RE = re.compile(r"^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$")
_DNS1123_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_IMAGE_RE = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+(:[\w][\w.-]{0,127}|@sha256:[0-9a-f]{64})$")
_MODEL_RE = re.compile(r"^(hf|gs|s3|pvc|oci)://\S+$")


def validate_project(value: str) -> str | None:
    if not value:
        return "Project id is required: 6-30 characters, lowercase letter first, letters, digits, hyphens."
    if not (6 <= len(value) <= 30):
        return f"Project id must be 6-30 characters long (this one has {len(value)})."
    if not value[0].isalpha() or not value[0].islower():
        return "Project id must start with a lowercase letter."
    if value.endswith("-"):
        return "Project id must not end with a hyphen."
    if not _PROJECT_RE.match(value):
        return "Project id may contain only lowercase letters, digits and hyphens."
    return None


def validate_cluster(value: str) -> str | None:
    if not value:
        return "Cluster name is required: at most 40 characters, lowercase, starting with a letter."
    if len(value) > 40:
        return f"Cluster name must be at most 40 characters (this one has {len(value)})."
    if not value[0].isalpha() or not value[0].islower():
        return "Cluster name must start with a lowercase letter."
    if not _CLUSTER_RE.match(value):
        return "Cluster name may contain only lowercase letters, digits and hyphens, and must not end with a hyphen."
    return None


def _validate_dns_label(value: str, what: str) -> str | None:
    if not value:
        return f"{what} is required (DNS-1123 label: lowercase letters, digits, hyphens)."
    if len(value) > 63:
        return f"{what} must be at most 63 characters (DNS-1123 label)."
    if not _DNS1123_LABEL_RE.match(value):
        return (f"{what} must be a DNS-1123 label: lowercase letters, digits and hyphens, "
                "starting and ending with a letter or digit.")
    return None


def validate_namespace(value: str) -> str | None:
    return _validate_dns_label(value, "Namespace")


def validate_service(value: str) -> str | None:
    err = _validate_dns_label(value, "Service name")
    if err:
        return err
    # KServe derives "<svc>-kserve-router-scheduler" (and a pod-name suffix) from it.
    if len(value) > 63 - len("-kserve-router-scheduler"):
        return f"Service name must be at most {63 - len('-kserve-router-scheduler')} characters: KServe appends '-kserve-router-scheduler'."
    return None


def validate_zone(value: str, known: tuple[str, ...] = V6E_ZONES) -> str | None:
    if not value:
        return "Zone is required."
    if value not in known:
        return f"Zone {value!r} does not offer TPU v6e. Choose one of: {', '.join(known)}."
    return None


def validate_replicas(value: Any) -> str | None:
    try:
        n = int(value)
    except (TypeError, ValueError):
        return "Replicas must be a whole number, at least 1."
    if str(value).strip() != str(n) and not isinstance(value, int):
        return "Replicas must be a whole number, at least 1."
    if n < 1:
        return "Replicas must be at least 1 (each replica needs one ct6e-standard-4t node, 4 chips)."
    if n > 64:
        return "Replicas above 64 are not supported by this wizard."
    return None


def validate_model(value: str) -> str | None:
    if not value:
        return "Model URI is required, e.g. hf://Qwen/Qwen2.5-3B-Instruct."
    if not _MODEL_RE.match(value):
        return "Model URI must look like hf://ORG/NAME (or gs://, s3://, pvc://, oci://)."
    return None


def validate_image(value: str) -> str | None:
    if not value:
        return "Image is required, e.g. registry.redhat.io/rhaiis/vllm-tpu-rhel9:3.2.5."
    if not _IMAGE_RE.match(value):
        return "Image must be REGISTRY/PATH:TAG (or @sha256:DIGEST), lowercase."
    return None


def validate_price(value: Any) -> str | None:
    if value in (None, ""):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "Price per TPU node-hour must be a number in USD, e.g. 5.15."
    if v < 0:
        return "Price per TPU node-hour must not be negative."
    return None


_MACHINE_TYPE_RE = re.compile(r"^[a-z][a-z0-9]*-[a-z0-9-]*[a-z0-9]$")


def validate_machine_type(value: str) -> str | None:
    if not value:
        return f"The default pool's machine type is required, e.g. {DEFAULT_POOL_MACHINE_TYPE}."
    if not _MACHINE_TYPE_RE.match(value) or len(value) > 63:
        return "Machine type must be a Compute Engine machine type name, e.g. e2-standard-4."
    if value.startswith("ct6e-"):
        return "The default pool runs the CPU workloads; TPU v6e machine types go in the TPU pool only."
    return None


VALIDATORS = {
    "project": validate_project,
    "zone": validate_zone,
    "cluster": validate_cluster,
    "namespace": validate_namespace,
    "service": validate_service,
    "model": validate_model,
    "replicas": validate_replicas,
    "image": validate_image,
    "price_per_node_hour": validate_price,
    "default_machine_type": validate_machine_type,
}


# --- the config ----------------------------------------------------------------------------------


@dataclass
class DeployConfig:
    project: str = DEFAULTS["project"]
    zone: str = DEFAULTS["zone"]
    cluster: str = DEFAULTS["cluster"]
    namespace: str = DEFAULTS["namespace"]
    service: str = DEFAULTS["service"]
    model: str = DEFAULTS["model"]
    replicas: int = DEFAULTS["replicas"]
    image: str = DEFAULTS["image"]
    price_per_node_hour: float = DEFAULTS["price_per_node_hour"]
    default_machine_type: str = DEFAULTS["default_machine_type"]
    # where each value came from: "flag" | "env" | "state" | "gcloud" | "default" (for the UI)
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    # derived ---------------------------------------------------------------------------------
    @property
    def region(self) -> str:
        return region_of(self.zone)

    @property
    def chips_needed(self) -> int:
        return CHIPS_PER_REPLICA * int(self.replicas)

    @property
    def model_name(self) -> str:
        """The model's short name, e.g. 'Qwen2.5-3B-Instruct'."""
        return self.model.rstrip("/").rsplit("/", 1)[-1]

    @property
    def model_repo(self) -> str:
        """'Qwen/Qwen2.5-3B-Instruct' for hf://Qwen/Qwen2.5-3B-Instruct."""
        return self.model.split("://", 1)[-1]

    @property
    def target(self) -> str:
        return f"{self.project or '?'}/{self.zone}/{self.cluster}/{self.namespace}"

    def cost_per_day(self, tpu_nodes: int | None = None) -> float:
        return cost_per_day(self.replicas if tpu_nodes is None else tpu_nodes, self.price_per_node_hour)

    def errors(self) -> dict[str, str]:
        out = {}
        for name, fn in VALIDATORS.items():
            err = fn(getattr(self, name))
            if err:
                out[name] = err
        return out

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "sources"}

    def replace(self, **changes: Any) -> "DeployConfig":
        new = dataclasses.replace(self, **changes)
        new.sources = dict(self.sources)
        for k in changes:
            new.sources[k] = "user"
        return new


def region_of(zone: str) -> str:
    return zone.rsplit("-", 1)[0] if "-" in zone else zone


def cost_per_day(tpu_nodes: int, price_per_node_hour: float) -> float:
    return round(CLUSTER_OVERHEAD_PER_DAY + tpu_nodes * price_per_node_hour * 24, 2)


# --- sources of defaults -------------------------------------------------------------------------


def gcloud_config_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("CLOUDSDK_CONFIG"):
        return Path(env["CLOUDSDK_CONFIG"])
    return Path(env.get("HOME", str(Path.home()))) / ".config" / "gcloud"


def gcloud_project(env: Mapping[str, str] | None = None) -> str | None:
    """The gcloud CLI's configured core/project, read from its files (no subprocess)."""
    env = os.environ if env is None else env
    if env.get("CLOUDSDK_CORE_PROJECT"):
        return env["CLOUDSDK_CORE_PROJECT"]
    base = gcloud_config_dir(env)
    name = env.get("CLOUDSDK_ACTIVE_CONFIG_NAME")
    if not name:
        try:
            name = (base / "active_config").read_text().strip() or "default"
        except OSError:
            name = "default"
    parser = configparser.ConfigParser()
    try:
        parser.read(base / "configurations" / f"config_{name}")
    except (configparser.Error, UnicodeDecodeError):
        return None
    project = parser.get("core", "project", fallback=None)
    return project.strip() if project else None


def state_dir() -> Path:
    override = os.environ.get("RHAII_TUI_STATE_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_state_dir("rhaii-tui", appauthor=False))


def _target_key(project: str, zone: str, cluster: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]", "_", f"{project or 'noproject'}__{zone}__{cluster}")


class StateStore:
    """Per-target state file: config + timestamps + choices. Never secrets."""

    FORBIDDEN_KEYS = ("token", "password", "secret", "dockerconfig", "auth")

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root else state_dir()

    def path_for(self, project: str, zone: str, cluster: str) -> Path:
        return self.root / "targets" / f"{_target_key(project, zone, cluster)}.json"

    def last_target_path(self) -> Path:
        return self.root / "last-target.json"

    def load(self, project: str, zone: str, cluster: str) -> dict[str, Any]:
        try:
            return json.loads(self.path_for(project, zone, cluster).read_text())
        except (OSError, ValueError):
            return {}

    def load_last(self) -> dict[str, Any]:
        try:
            return json.loads(self.last_target_path().read_text())
        except (OSError, ValueError):
            return {}

    def save(self, cfg: DeployConfig, **extra: Any) -> Path:
        for key in extra:
            if any(bad in key.lower() for bad in self.FORBIDDEN_KEYS):
                raise ValueError(f"refusing to store {key!r} in the state file")
        path = self.path_for(cfg.project, cfg.zone, cfg.cluster)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.load(cfg.project, cfg.zone, cfg.cluster)
        data.update(extra)
        data["config"] = cfg.to_dict()
        data["saved_at"] = time.time()
        _atomic_write(path, json.dumps(data, indent=2, sort_keys=True))
        _atomic_write(self.last_target_path(), json.dumps(
            {"project": cfg.project, "zone": cfg.zone, "cluster": cfg.cluster}))
        return path

    def update(self, cfg: DeployConfig, **extra: Any) -> None:
        """Merge extra keys (e.g. step choices, timestamps) into the target's state."""
        self.save(cfg, **extra)

    def forget(self, cfg: DeployConfig, keep: tuple[str, ...] = ("config",)) -> None:
        """Drop every remembered value of the target but `keep` (e.g. when it was remembered in
        another environment: another project number behind the same project id)."""
        path = self.path_for(cfg.project, cfg.zone, cfg.cluster)
        data = self.load(cfg.project, cfg.zone, cfg.cluster)
        if not data:
            return
        _atomic_write(path, json.dumps({k: v for k, v in data.items() if k in keep}, indent=2, sort_keys=True))


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def resolve_config(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    state: StateStore | None = None,
    file_values: Mapping[str, Any] | None = None,
) -> DeployConfig:
    """Build the config from flags > env > (--config file) > saved state > gcloud > defaults."""
    flags = {k: v for k, v in (flags or {}).items() if v not in (None, "")}
    env = os.environ if env is None else env
    file_values = {k: v for k, v in (file_values or {}).items() if v not in (None, "")}
    env_values = {k: env[n] for k, n in ENV_NAMES.items() if env.get(n)}

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def take(layer: Mapping[str, Any], source: str) -> None:
        for k, v in layer.items():
            if k in DEFAULTS and k not in values:
                values[k] = v
                sources[k] = source

    take(flags, "flag")
    take(env_values, "env")
    take(file_values, "file")
    # the saved state is keyed by target: use what we know so far, else the last target used
    saved: dict[str, Any] = {}
    if state is not None:
        last = state.load_last()
        project = values.get("project") or last.get("project") or gcloud_project(env) or ""
        zone = values.get("zone") or last.get("zone") or DEFAULTS["zone"]
        cluster = values.get("cluster") or last.get("cluster") or DEFAULTS["cluster"]
        saved = state.load(project, zone, cluster).get("config", {})
    take(saved, "state")
    gp = gcloud_project(env)
    if gp:
        take({"project": gp}, "gcloud")
    take(DEFAULTS, "default")

    values["replicas"] = int(values["replicas"]) if validate_replicas(values["replicas"]) is None else DEFAULTS["replicas"]
    try:
        values["price_per_node_hour"] = float(values["price_per_node_hour"])
    except (TypeError, ValueError):
        values["price_per_node_hour"] = DEFAULTS["price_per_node_hour"]
    cfg = DeployConfig(**values)
    cfg.sources = sources
    return cfg


def yaml_error_text(e: Exception) -> str:
    """Where and what a YAML error is (line, column, the parser's problem), never the file's
    content (PyYAML's own message quotes the offending lines: a secret passed by mistake would
    show)."""
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    problem = getattr(e, "problem", None) or getattr(e, "context", None) or "invalid YAML"
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"


_STRING_FIELDS = ("project", "zone", "cluster", "namespace", "service", "model", "image")
_ALLOWED = {
    "project": "a project id, 6-30 lowercase letters, digits and hyphens, starting with a letter",
    "zone": "a zone offering TPU v6e, e.g. europe-west4-a",
    "cluster": "a cluster name, at most 40 lowercase letters, digits and hyphens, starting with a letter",
    "namespace": "a namespace name (DNS-1123 label: lowercase letters, digits, hyphens)",
    "service": "a service name (DNS-1123 label: lowercase letters, digits, hyphens)",
    "model": "a model URI such as hf://Qwen/Qwen2.5-3B-Instruct",
    "image": "an image reference REGISTRY/PATH:TAG, e.g. registry.redhat.io/rhaiis/vllm-tpu-rhel9:3.2.5",
}


def check_field(name: str, value: Any) -> str | None:
    """What is wrong with one config value of any origin (a file's values come typed: 12345678,
    {a: 1}, True), or None. The message names what is allowed."""
    if name in _STRING_FIELDS:
        if not isinstance(value, str):
            return f"must be text, not {_type_name(value)}: {_ALLOWED[name]}"
        return VALIDATORS[name](value)
    if name == "replicas":
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            return f"must be a whole number from 1 to 64, not {_type_name(value)}"
        return validate_replicas(value)
    if name == "price_per_node_hour":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            return f"must be a number in USD, e.g. 5.15, not {_type_name(value)}"
        err = validate_price(value)
        if err is None and value not in (None, "") and not _finite(value):
            return "Price per TPU node-hour must be a finite number in USD, e.g. 5.15."
        return err
    return None


def _finite(value: Any) -> bool:
    import math

    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return f"true/false ({str(value).lower()})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    return type(value).__name__


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a --config file (YAML or JSON mapping of the config fields), every value validated as
    a flag's would be. Raises ValueError with a message naming the file and the field (and, for a
    YAML error, the line and column; never the file's content)."""
    import yaml

    p = Path(path)
    try:
        raw = p.read_bytes()
    except IsADirectoryError:
        raise ValueError(f"config file {p} is a directory; give the YAML/JSON file itself") from None
    except OSError as e:
        raise ValueError(f"cannot read config file {p}: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"config file {p} is not a text file (a YAML or JSON mapping of fields is expected)") from None
    if "\x00" in text:
        raise ValueError(f"config file {p} is not a text file (a YAML or JSON mapping of fields is expected)")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"config file {p} is not valid YAML ({yaml_error_text(e)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {p} must hold a mapping of fields ({', '.join(DEFAULTS)})")
    unknown = sorted(str(k) for k in set(data) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"config file {p} has unknown field(s): {', '.join(unknown)}; known: {', '.join(DEFAULTS)}")
    for name, value in data.items():
        if value is None:
            continue
        err = check_field(name, value)
        if err:
            raise ValueError(f"config file {p}: field {name!r}: {err}")
    return data
