"""Scenarios: the knobs a simulated world starts with (`rhaii-tui --sim --scenario NAME`).

A `Scenario` is plain data. Every part of the emulator reads it (`world.scenario`,
`cluster.scenario`): the Google APIs (quota, stockout, permissions, API enablement, flaky 5xx/429),
the world builder (how far the world is prebuilt: `start_state`), and the cluster's controllers
(bad HF token, bad pull secret, compile time factor, K8s API faults).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

START_STATES = ("fresh", "cluster-ready", "partial", "deployed")
CREDENTIAL_KINDS = ("user", "service_account")

# TPU chips of the on-demand family quota (TPUS-PER-TPU-FAMILY, tpu_family=CT6E) in every v6e
# region when the scenario says nothing else: enough for the guide's 3 replicas (12 chips) and a
# bit more, as on a project whose quota request was granted.
DEFAULT_QUOTA_CHIPS = 32

# The KServe releases the simulated operator install can play. 3.4.0-ea.1 is what the upstream
# installer's values.yaml pins (kserveChartVersion 3.4.0-ea.1-dev-...) and what the guide's step 4
# installs (KServe in namespace opendatahub); it writes its InferencePool in
# inference.networking.x-k8s.io/v1alpha2. 3.4.0-ea.2 writes it in inference.networking.k8s.io/v1.
KSERVE_VERSIONS: tuple[str, ...] = ("3.4.0-ea.1", "3.4.0-ea.2")
DEFAULT_KSERVE_VERSION = KSERVE_VERSIONS[0]


@dataclass(frozen=True)
class FlakySpec:
    """Fault injection on the K8s API (passed to `sim.kube.faults.Faults`) and on the Google API."""

    error_rate: float = 0.10  # K8s API: share of requests answered 5xx/429
    watch_drop_seconds: float = 20.0  # K8s API: watches are cut after this many wall seconds
    expire_once: bool = True  # K8s API: the first resumed watch gets 410 Expired
    google_error_rate: float = 0.10  # Google API: share of requests answered 503/429

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Scenario:
    name: str = "fresh"
    description: str = "Empty project: nothing deployed yet."
    start_state: str = "fresh"  # "fresh" | "cluster-ready" | "partial" | "deployed"
    # Google side
    quota_chips: int = DEFAULT_QUOTA_CHIPS  # TPUS-PER-TPU-FAMILY-per-project-region, CT6E, per v6e region
    preemptible_chips: int = 64  # PREEMPTIBLE-TPU-V6E-per-project-region, per v6e region
    cpus_quota: int = 96  # CPUS-per-project-region
    stockout_zones: tuple[str, ...] = ()  # zones with no v6e capacity (node pool create fails)
    # simulated seconds a stocked-out node-pool operation stays RUNNING before GKE fails it (~35 min;
    # the pool's managed instance group lists each failed instance creation long before)
    stockout_fail_seconds: float = 2100.0
    granted_permissions: tuple[str, ...] | None = None  # None: every permission asked is granted
    denied_permissions: tuple[str, ...] = ()
    container_api_enabled: bool = True
    quotas_api_enabled: bool = True  # cloudquotas.googleapis.com (a new real project does not have it enabled)
    # the simulated Application Default Credentials: "user" (gcloud auth application-default login) or
    # "service_account" (a key file); a user's ADC may carry a quota project (set-quota-project)
    credentials: str = "user"
    adc_quota_project: bool = True
    machine_series_absent: tuple[str, ...] = ()  # "ZONE:SERIES" (e.g. "europe-west4-a:n1"): not offered there
    max_tpu_nodes: int | None = None  # the zone provides at most this many TPU nodes per pool
    # a prebuilt cluster (start_state other than fresh) is created with GKE Dataplane V2, as the wizard
    # creates it, so NetworkPolicies are enforced; False: a cluster that stores them but enforces none
    dataplane_v2: bool = True
    # cluster side (read by the controllers)
    hf_token_rejected: bool = False  # model download gets 401 from Hugging Face
    pull_secret_rejected: bool = False  # registry.redhat.io answers 401: ImagePullBackOff
    compile_factor: float = 1.0  # XLA compile time multiplier
    kserve_version: str = DEFAULT_KSERVE_VERSION  # the KServe release step 4 installs (KSERVE_VERSIONS)
    flaky: FlakySpec | None = None

    def permits(self, permission: str) -> bool:
        if permission in self.denied_permissions:
            return False
        return self.granted_permissions is None or permission in self.granted_permissions

    def granted(self, permissions: list[str]) -> list[str]:
        """testIamPermissions: the subset of `permissions` the caller has."""
        return [p for p in permissions if self.permits(p)]

    @property
    def google_error_rate(self) -> float:
        return self.flaky.google_error_rate if self.flaky else 0.0

    def with_overrides(self, **overrides: Any) -> "Scenario":
        """A copy with some knobs changed (tests: e.g. `start_state="cluster-ready"`)."""
        if not overrides:
            return self
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown scenario knob(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if "flaky" in overrides and isinstance(overrides["flaky"], dict):
            overrides = dict(overrides, flaky=FlakySpec(**overrides["flaky"]))
        for k in ("stockout_zones", "granted_permissions", "denied_permissions", "machine_series_absent"):
            if isinstance(overrides.get(k), list):
                overrides = dict(overrides, **{k: tuple(overrides[k])})
        if overrides.get("credentials", self.credentials) not in CREDENTIAL_KINDS:
            raise ValueError(f"credentials must be one of: {', '.join(CREDENTIAL_KINDS)}")
        if overrides.get("kserve_version", self.kserve_version) not in KSERVE_VERSIONS:
            raise ValueError(f"kserve_version must be one of: {', '.join(KSERVE_VERSIONS)}")
        if overrides.get("start_state", self.start_state) not in START_STATES:
            raise ValueError(f"start_state must be one of: {', '.join(START_STATES)}")
        return dataclasses.replace(self, **overrides)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["flaky"] = self.flaky.to_json() if self.flaky else None
        for k in ("stockout_zones", "granted_permissions", "denied_permissions", "machine_series_absent"):
            if d[k] is not None:
                d[k] = list(d[k])
        return d


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario(),
    Scenario("cluster-ready", "Step 2 done: the cluster is RUNNING with 3 TPU v6e nodes Ready.",
             start_state="cluster-ready"),
    Scenario("partial", "Steps 1-5 done: the service answers, but without cache-aware routing "
             "(no EPP sidecar, no EnvoyFilters).", start_state="partial"),
    Scenario("deployed", "Steps 1-8 done: serving with prefix caching and cache-aware routing.",
             start_state="deployed"),
    Scenario("low-quota", "The project has only 8 TPU v6e chips of quota per region (the guide needs 12).",
             quota_chips=8),
    Scenario("stockout", "europe-west4-a has no TPU v6e capacity: the node pool create stays RUNNING ~35 min "
             "before it fails with a stockout (the instance group lists the failures within minutes); "
             "other v6e zones have capacity.", stockout_zones=("europe-west4-a",)),
    Scenario("missing-permission", "The account lacks container.clusters.create.",
             denied_permissions=("container.clusters.create",)),
    Scenario("api-disabled", "The Kubernetes Engine API (container.googleapis.com) is disabled in the project.",
             container_api_enabled=False),
    Scenario("quotas-api-disabled", "The Cloud Quotas API (cloudquotas.googleapis.com) is not enabled in the "
             "project: the TPU v6e quota cannot be read.", quotas_api_enabled=False),
    Scenario("no-quota-permission", "The account lacks cloudquotas.quotas.get (roles/cloudquotas.viewer): the TPU "
             "v6e quota cannot be read.", denied_permissions=("cloudquotas.quotas.get",)),
    Scenario("adc-no-quota-project", "User Application Default Credentials without a quota project: Service Usage "
             "and Cloud Quotas refuse the requests.", adc_quota_project=False),
    Scenario("no-n1-zone", "europe-west4-a offers no N1 machine types, so not the default pool's n1-standard-4 "
             "(as some newer regions): step 1 proposes a machine type the zone has.",
             machine_series_absent=("europe-west4-a:n1",)),
    Scenario("bad-hf-token", "The Hugging Face token is rejected: the model download fails (Init:CrashLoopBackOff)."
             , hf_token_rejected=True),
    Scenario("bad-pull-secret", "The registry pull secret is rejected: the vLLM image cannot be pulled "
             "(ImagePullBackOff).", pull_secret_rejected=True),
    Scenario("two-nodes", "The zone could only provide 2 TPU nodes: the pool has 2 of 3 nodes, so one "
             "vLLM replica stays Pending.", start_state="cluster-ready", max_tpu_nodes=2),
    Scenario("no-netpol-enforcement", "Step 2 done on an existing cluster created without Dataplane V2 or "
             "network policy enforcement: NetworkPolicies are stored but not enforced.",
             start_state="cluster-ready", dataplane_v2=False),
    Scenario("slow-compile", "A cold XLA compile cache: vLLM takes about 4x longer to become Ready.",
             compile_factor=4.0),
    Scenario("flaky-api", "Unreliable APIs: 10% of requests fail (5xx/429), watches drop every 20 s, "
             "one watch resume gets 410 Expired.", flaky=FlakySpec()),
)}

SCENARIO_NAMES: tuple[str, ...] = tuple(SCENARIOS)


def fault_rate_overrides(rate: float, scenario: str | None = None) -> dict[str, Any]:
    """Scenario overrides for `--fault-rate`: that share of Kubernetes and Google API requests fail
    with 5xx/429 (the scenario's other flaky knobs are kept; a scenario without any gets the
    flaky-api defaults for them). Raises ValueError outside 0..1."""
    try:
        r = float(rate)
    except (TypeError, ValueError):
        raise ValueError(f"--fault-rate must be a number from 0 to 1 (e.g. 0.25), not {rate!r}") from None
    if not 0.0 <= r <= 1.0:  # also refuses nan
        raise ValueError(f"--fault-rate must be a number from 0 to 1 (e.g. 0.25), not {rate!r}")
    base = SCENARIOS.get(scenario or "", None)
    spec = base.flaky if base is not None and base.flaky is not None else FlakySpec()
    return {"flaky": dataclasses.replace(spec, error_rate=r, google_error_rate=r).to_json()}


def get_scenario(name: str, **overrides: Any) -> Scenario:
    try:
        base = SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIO_NAMES)}") from None
    return base.with_overrides(**overrides)


def scenario_from_json(data: dict[str, Any]) -> Scenario:
    data = dict(data)
    name = data.get("name", "fresh")
    base = SCENARIOS.get(name, Scenario(name=name))
    known = {f.name for f in dataclasses.fields(Scenario)}
    return base.with_overrides(**{k: v for k, v in data.items() if k in known and k != "name"})


# --- building a scenario's starting state --------------------------------------------------------

DEMO_HF_TOKEN = "hf_simulatedDemoTokenNotReal0000000000"
DEMO_REGISTRY_AUTH = ("demo-user", "simulated-not-a-real-password")


async def build_start_state(world) -> None:
    """Prebuild the world as the wizard would have left it (start_state): the cluster and its TPU
    pool for "cluster-ready"; plus operators, namespace, secrets and the LLMInferenceService for
    "partial"; plus the EPP sidecar, EnvoyFilters and NetworkPolicies for "deployed". Everything is
    created through the same code paths as live requests, then settled (operations finished,
    controllers fast-forwarded)."""
    state = world.scenario.start_state
    if state == "fresh":
        return
    from ..config import DEFAULT_POOL_MACHINE_TYPE, TPU_MACHINE_TYPE, TPU_POOL_NAME, DeployConfig

    cfg = DeployConfig(project=world.project)
    op = world.create_cluster(cfg.project, cfg.zone, {"cluster": {
        "name": cfg.cluster,
        "nodePools": [{"name": "default-pool", "initialNodeCount": 2,
                       "config": {"machineType": DEFAULT_POOL_MACHINE_TYPE},
                       "autoscaling": {"enabled": True, "minNodeCount": 1, "maxNodeCount": 5}}],
        "ipAllocationPolicy": {"useIpAliases": True},
        **({"networkConfig": {"datapathProvider": "ADVANCED_DATAPATH"}} if world.scenario.dataplane_v2 else {}),
    }})
    await world.finish_operation(op, backdate=True)
    op = world.create_node_pool(cfg.project, cfg.zone, cfg.cluster, {"nodePool": {
        "name": TPU_POOL_NAME, "initialNodeCount": cfg.replicas, "config": {"machineType": TPU_MACHINE_TYPE}}})
    await world.finish_operation(op, backdate=True)
    if state in ("partial", "deployed"):
        await deploy_workload(world, cfg, full=(state == "deployed"))


async def deploy_workload(world, cfg, full: bool) -> None:
    from .cluster import _maybe_await
    from .world import WorldError

    sim = world.sims[f"{cfg.project}/{cfg.zone}/{cfg.cluster}"]
    if sim.controllers is None:
        raise WorldError(f"Scenario {world.scenario.name!r} needs the emulator's cluster controllers, which this "
                         "build does not have.")
    try:
        from .. import manifests
    except ImportError:
        raise WorldError(f"Scenario {world.scenario.name!r} needs rhaii_tui.manifests, which this build does not "
                         "have.") from None
    await _maybe_await(sim.controllers.install_operators())
    await world.settle(3600)
    # step 3: namespace + secrets; step 5: the LLMInferenceService (+ the health route)
    for obj in [manifests.namespace(cfg), *workload_secrets(cfg)[1:], manifests.llmisvc(cfg)]:
        apply_object(sim.store, obj, namespace=cfg.namespace)
    await world.settle(3600)
    # the health route, pointed (as the wizard does) at the InferencePool KServe created, in its group
    group = next((g for g in manifests.INFERENCE_POOL_APIS
                  if (t := sim.store.resolve_kind(f"{g}/{manifests.INFERENCE_POOL_APIS[g]}", "InferencePool"))
                  is not None and sim.store.try_get(t, cfg.namespace, manifests.inference_pool_name(cfg.service))),
                 None)
    if group is not None:
        apply_object(sim.store, manifests.health_route(cfg, pool_group=group), namespace=cfg.namespace)
        await world.settle(60)
    if not full:
        return
    # step 6: EPP sidecar injection
    epp = manifests.epp_deployment_name(cfg.service)
    dt = sim.store.type_for("deployments", "apps")
    if sim.store.try_get(dt, cfg.namespace, epp) is None:
        raise WorldError(f"Scenario {world.scenario.name!r}: the LLMInferenceService controller did not create "
                         f"deployment {epp}.")

    def inject(d: dict) -> None:
        tpl = d.setdefault("spec", {}).setdefault("template", {}).setdefault("metadata", {})
        tpl.setdefault("labels", {})["sidecar.istio.io/inject"] = "true"

    sim.store.mutate(dt, cfg.namespace, epp, inject)
    # step 7: EnvoyFilters; step 8: NetworkPolicies
    for obj in [*manifests.envoyfilters(cfg), *manifests.networkpolicies(cfg)]:
        apply_object(sim.store, obj, namespace=cfg.namespace)
    await world.settle(3600)


def workload_secrets(cfg) -> list[dict]:
    """The guide's two secrets with dummy values (step 3)."""
    import base64
    import json

    from ..config import HF_SECRET_NAME, PULL_SECRET_NAME

    user, password = DEMO_REGISTRY_AUTH
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    dockercfg = json.dumps({"auths": {"registry.redhat.io": {"username": user, "password": password, "auth": auth}}})
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": cfg.namespace}},
        {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
         "metadata": {"name": PULL_SECRET_NAME, "namespace": cfg.namespace},
         "data": {".dockerconfigjson": base64.b64encode(dockercfg.encode()).decode()}},
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
         "metadata": {"name": HF_SECRET_NAME, "namespace": cfg.namespace},
         "data": {"token": base64.b64encode(DEMO_HF_TOKEN.encode()).decode()}},
    ]


def apply_object(store, obj: dict, namespace: str | None = None) -> dict:
    """Create, or replace the spec of, one object in a cluster's store (what `kubectl apply` ends with)."""
    from .store import ApiError

    rt = store.resolve_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
    if rt is None:
        raise ApiError(404, "NotFound", f"no matches for kind \"{obj.get('kind')}\" in version \"{obj.get('apiVersion')}\"")
    ns = (obj.get("metadata", {}).get("namespace") or namespace) if rt.namespaced else None
    cur = store.try_get(rt, ns, obj["metadata"]["name"])
    if cur is None:
        return store.create(rt, obj, ns)
    new = dict(cur)
    for k, v in obj.items():
        if k not in ("metadata", "status"):
            new[k] = v
    md = dict(cur["metadata"])
    for k in ("labels", "annotations"):
        if obj["metadata"].get(k):
            md[k] = {**(md.get(k) or {}), **obj["metadata"][k]}
    new["metadata"] = md
    return store.update(rt, new, check_rv=False)
