"""Step 8 (optional): the four NetworkPolicies, or skipping them by choice.

- `CRITERIA`: the guide's skip (PoC) and apply (production) criteria, for the choice screen.
- `choose(ctx, "skip"|"apply")` remembers the choice in the state file (`netpol_choice`);
  `choice(ctx)` reads it back. `probe` returns SKIPPED when skipped by choice.
- `preview(ctx)`: the reachability table of the rendered set, with warnings when it would cut the
  gateway off from vLLM or the EPP (or any other path the deployment needs), before applying.
- `apply(ctx)`: server-side apply of the four policies (refuses when the rendered set breaks a
  required path, unless forced), then the table of the live set.
- `live_report(ctx)`: the table of the live policies (workload and gateway namespaces), computed by
  cloud/netpol.py with the live pods' labels where they exist.
- `enforcement(ctx)`: whether the cluster enforces NetworkPolicies at all, read from GKE (Dataplane V2:
  networkConfig.datapathProvider ADVANCED_DATAPATH; or Calico: networkPolicy.enabled with the add-on).
  On a cluster that does not, policies are stored and have no effect: step 8 says so before applying
  (with the options and their costs), `apply` refuses unless forced, the live table shows every path
  open, and the namespace is never reported as isolated.
- `observe(ctx)`: proves reachability on the live cluster. Short-lived probe pods (busybox,
  `nc -zv -w 3 <vLLM pod IP> 8000`, restartPolicy Never, no sidecar, never Ready so no Service
  sends them traffic) run where the policies must let them through (a pod labelled like the
  gateway's pods in the gateway namespace) and where they must not (a fresh `rhaii-probe-...`
  namespace, and an unlabelled pod in the workload namespace); each pod's phase (Succeeded:
  connected, Failed: not) and log line are read, then the pods and the namespace are deleted. The
  table shows what was observed next to what was intended.
"""

from __future__ import annotations

import secrets as _secrets
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from .. import manifests as m
from ..cloud import netpol as calc
from ..cloud.gke import CloudError
from ..config import GATEWAY_NAMESPACE, DeployConfig
from ..guide import step as guide_step
from .base import Status, StepState

CHOICE_KEY = "netpol_choice"
SKIP, APPLY = "skip", "apply"

CRITERIA: dict[str, Any] = {
    "skip": {
        "title": "Skip (PoC)",
        "when": ("PoC or demo environment (less than 2 weeks lifetime)",
                 "Non-sensitive test data only",
                 "Single-purpose cluster (no other workloads)",
                 "Time-constrained evaluation"),
    },
    "apply": {
        "title": "Apply (production)",
        "when": ("Production deployment or production pilot",
                 "Multi-tenant cluster with multiple workloads",
                 "Compliance requirements (SOC2, HIPAA, PCI-DSS)",
                 "Handling any sensitive or customer data"),
    },
    "note": "NetworkPolicies are not required for cache-aware routing; they add network isolation.",
}


def choice(ctx: Any) -> str | None:
    v = (ctx.saved() or {}).get(CHOICE_KEY)
    return v if v in (SKIP, APPLY) else None


def choose(ctx: Any, value: str) -> None:
    """Remember the user's choice for this target (never fails a step on a full disk)."""
    if value not in (SKIP, APPLY):
        raise ValueError(f"NetworkPolicy choice must be {SKIP!r} or {APPLY!r}")
    ctx.record(**{CHOICE_KEY: value})


def api_server_addresses(ctx: Any) -> list[str]:
    """Where pods reach the Kubernetes API: the addresses of the `kubernetes` EndpointSlice(s) of
    `default` (discovery.k8s.io/v1, label kubernetes.io/service-name=kubernetes), else of the
    `kubernetes` Endpoints. Not the cluster's public `endpoint`: on GKE pods connect to the control
    plane's private address, which a policy pinned to the public one would cut off. [] when unknown."""
    import ipaddress

    try:
        session = ctx.kube_or_none()
    except CloudError:
        return []
    if session is None:
        return []
    found: list[str] = []
    try:
        for es in session.list("discovery.k8s.io/v1", "EndpointSlice", "default",
                               label_selector="kubernetes.io/service-name=kubernetes"):
            for ep in es.get("endpoints") or []:
                found += [a for a in ep.get("addresses") or [] if a]
    except CloudError:
        found = []
    if not found:
        try:
            ep = session.get("v1", "Endpoints", "kubernetes", "default") or {}
            found = [a.get("ip") for sub in ep.get("subsets") or [] for a in sub.get("addresses") or [] if a.get("ip")]
        except CloudError:
            found = []
    out = []
    for a in dict.fromkeys(found):
        try:
            ipaddress.ip_address(a)
        except ValueError:
            continue
        out.append(a)
    return out


def _api_server_cidrs(ctx: Any, addresses: Sequence[str] | None = None) -> list[str]:
    """The API server's addresses (see api_server_addresses) as /32 (/128), to narrow the EPP's egress."""
    import ipaddress

    addrs = api_server_addresses(ctx) if addresses is None else addresses
    return [f"{a}/{32 if ipaddress.ip_address(a).version == 4 else 128}" for a in addrs]


def _api_endpoint(addresses: Sequence[str]) -> dict[str, calc.Endpoint]:
    """The table's "Kubernetes API" party at its live address (when known)."""
    if not addresses:
        return {}
    return {"api-server": calc.external("Kubernetes API (kubernetes EndpointSlice)", addresses[0])}


@dataclass(frozen=True)
class Enforcement:
    """Whether the cluster enforces NetworkPolicies (None: unknown, the cluster could not be read)."""

    enforced: bool | None
    by: str = ""  # "GKE Dataplane V2" / "Calico (network policy enforcement)"
    cluster: str = ""

    def text(self) -> str:
        if self.enforced is None:
            return "Enforcement unknown (the cluster could not be read)."
        if self.enforced:
            return f"Enforced by {self.by}."
        return (f"Cluster {self.cluster} does not enforce NetworkPolicies (created without Dataplane V2 or "
                "network policy enforcement): policies are stored but have no effect.")


def not_enforced_options(cfg: DeployConfig) -> list[str]:
    """What a user can do on a cluster that does not enforce NetworkPolicies, with what each costs."""
    where = f"--zone {cfg.zone} --project {cfg.project}"
    return [
        f"Enable Calico enforcement on this cluster: gcloud container clusters update {cfg.cluster} {where} "
        f"--update-addons=NetworkPolicy=ENABLED, then gcloud container clusters update {cfg.cluster} {where} "
        "--enable-network-policy. Enabling it recreates every node of every pool (a rolling update, TPU "
        "nodes included: the vLLM replicas restart and load the model again) and blocks other cluster "
        "operations until it finishes.",
        f"Or create a new cluster with Dataplane V2 (gcloud container clusters create ... --enable-dataplane-v2; "
        "step 2 creates clusters so) and deploy there: Dataplane V2 can only be chosen when a cluster is "
        "created; the new cluster and its TPU pool are billed from creation.",
        "Or apply anyway: the policies are stored and take effect once enforcement is enabled; until then "
        "the namespace is not isolated.",
    ]


def enforcement(ctx: Any) -> Enforcement:
    """The cluster's NetworkPolicy enforcement, read from GKE."""
    try:
        info = ctx.cluster()
    except CloudError:
        return Enforcement(None, cluster=ctx.cfg.cluster)
    if info is None:
        return Enforcement(None, cluster=ctx.cfg.cluster)
    return Enforcement(bool(info.enforces_network_policy), info.network_policy_enforcement, info.name)


def _unenforced(rows: list[calc.Row], cluster: str) -> list[calc.Row]:
    """What the policies give on a cluster that does not enforce them: every path open."""
    import dataclasses

    why = f"not enforced: cluster {cluster} does not enforce NetworkPolicies, so every path is open"
    return [dataclasses.replace(r, allowed=True, policies=(), reason=why) for r in rows]


def rendered(cfg: DeployConfig, api_server_cidrs: Sequence[str] = ()) -> list[dict[str, Any]]:
    return m.networkpolicies(cfg, api_server_cidrs=list(api_server_cidrs))


@dataclass
class NetpolReport:
    rows: list[calc.Row]
    broken: list[calc.Row]  # required paths denied (the deployment breaks)
    gaps: list[calc.Row]  # not what the guide intends (too open or too closed)
    policies: list[str] = field(default_factory=list)
    enforced: bool | None = None  # does the cluster enforce NetworkPolicies (None: unknown / no cluster)
    enforcement: str = ""  # what enforces them, or why nothing does
    options: list[str] = field(default_factory=list)  # what to do when not enforced
    observed: dict[str, "Observation"] = field(default_factory=dict)  # row key -> a probe pod's result

    @property
    def observed_gaps(self) -> list["Observation"]:
        """Live probes whose result is not what the guide intends (connected where it must be blocked...)."""
        return [o for o in self.observed.values() if o.observed is not None and o.observed != o.intended]

    @property
    def isolated(self) -> bool:
        """The namespace is isolated: policies present AND enforced AND nothing needed is cut off."""
        return bool(self.policies) and self.enforced is True and not self.broken and not self.observed_gaps

    def enforcement_warning(self) -> str:
        if self.enforced is not False:
            return ""
        return self.enforcement + " " + " ".join(self.options)

    @property
    def gateway_cut_off(self) -> bool:
        return any(r.key in ("gw-vllm", "gw-epp") for r in self.broken)

    def warnings(self) -> list[str]:
        out = []
        for r in self.broken:
            who = "the gateway can no longer reach " + ("vLLM" if r.key == "gw-vllm" else "the EPP") \
                if r.key in ("gw-vllm", "gw-epp") else f"{r.label} is blocked"
            out.append(f"{who} ({r.label}: {r.reason})")
        return out

    def text(self) -> str:
        out = calc.format_table(self.rows)
        if self.observed:
            out += "\nObserved on the cluster (probe pods):\n" + "\n".join(
                f"  {'as intended' if o.ok else 'NOT as intended'}: {o.text()}" for o in self.observed.values())
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"policies": list(self.policies), "warnings": self.warnings(), "enforced": self.enforced,
                "enforcement": self.enforcement, "options": list(self.options), "isolated": self.isolated,
                "observed": {k: o.to_dict() for k, o in self.observed.items()},
                "rows": [{"key": r.key, "label": r.label, "allowed": r.allowed, "expected": r.expected,
                          "required": r.required, "ok": r.ok, "verdict": r.verdict,
                          "policies": list(r.policies), "reason": r.reason} for r in self.rows]}


def report(policies: Iterable[Any], cfg: DeployConfig, endpoints: dict[str, calc.Endpoint] | None = None,
           enforced: Enforcement | None = None, *, live: bool = False) -> NetpolReport:
    """The reachability table. `enforced`: the cluster's enforcement; on a cluster that does not
    enforce, a `live` table shows what really happens (every path open), a preview shows what the
    policies say, and both carry the warning and the options."""
    pols = list(policies)
    rows = calc.reachability_table(pols, cfg, endpoints=endpoints)
    if live and enforced is not None and enforced.enforced is False:
        rows = _unenforced(rows, enforced.cluster or cfg.cluster)
    names = []
    for p in pols:
        md = p.get("metadata") if isinstance(p, dict) else None
        names.append(f"{(md or {}).get('namespace', '')}/{(md or {}).get('name', '')}")
    e = enforced or Enforcement(None)
    return NetpolReport(rows, [r for r in rows if r.required and not r.allowed], [r for r in rows if not r.ok],
                        names, e.enforced, e.text() if enforced is not None else "",
                        not_enforced_options(cfg) if e.enforced is False else [])


def preview(ctx: Any) -> NetpolReport:
    """The rendered set's reachability (before applying), on top of policies already live in the
    gateway namespace (they also decide the gateway's egress) when the cluster is reachable."""
    cfg = ctx.cfg
    api = api_server_addresses(ctx)
    pols = rendered(cfg, _api_server_cidrs(ctx, api))
    ours = {p["metadata"]["name"] for p in pols}
    others: list[dict] = []
    try:
        session = ctx.kube_or_none()
        if session is not None:
            others = [p for p in _live(session, cfg) if not ((p.get("metadata") or {}).get("namespace") == cfg.namespace
                                                              and (p.get("metadata") or {}).get("name") in ours)]
    except CloudError:
        others = []
    return report(pols + others, cfg, _api_endpoint(api), enforced=enforcement(ctx))


def _live(session: Any, cfg: DeployConfig) -> list[dict]:
    out = []
    for ns in dict.fromkeys((cfg.namespace, GATEWAY_NAMESPACE)):
        try:
            out += session.list("networking.k8s.io/v1", "NetworkPolicy", ns)
        except CloudError as e:
            if e.kind != "not_found":
                raise
    return out


def _live_endpoints(session: Any, cfg: DeployConfig) -> dict[str, calc.Endpoint]:
    """The live vLLM, EPP and gateway pods' labels (when they exist) for the probes."""
    eps: dict[str, calc.Endpoint] = {}
    wanted = (("vllm", cfg.namespace, m.label_selector(m.workload_labels(cfg.service))),
              ("epp", cfg.namespace, m.label_selector(m.epp_labels(cfg.service))),
              ("gateway", GATEWAY_NAMESPACE, m.label_selector(m.gateway_pod_labels())))
    for key, ns, sel in wanted:
        try:  # never a probe pod (it carries the gateway's labels while a live test runs)
            pods = session.list("v1", "Pod", ns, label_selector=f"{sel},!{PROBE_LABEL}")
        except CloudError:
            continue
        if pods:
            md = pods[0].get("metadata") or {}
            ports = {}
            for c in (pods[0].get("spec") or {}).get("containers") or []:
                for p in c.get("ports") or []:
                    if p.get("name") and p.get("containerPort"):
                        ports[p["name"]] = (int(p["containerPort"]), p.get("protocol") or "TCP")
            base = calc.standard_endpoints(cfg)[key]
            eps[key] = calc.pod(md.get("name", base.name), ns, md.get("labels") or {}, base.ip,
                                ports or dict(base.named_ports))
    return eps


def live_report(ctx: Any) -> NetpolReport:
    """Reachability under the live policies. Raises CloudError."""
    session = ctx.kube()
    eps = {**_live_endpoints(session, ctx.cfg), **_api_endpoint(api_server_addresses(ctx))}
    return report(_live(session, ctx.cfg), ctx.cfg, eps, enforcement(ctx), live=True)


def apply(ctx: Any, *, force: bool = False) -> NetpolReport:
    """Apply the four policies (server-side apply) and return the live report. Refuses (CloudError)
    when the rendered set would cut a required path, or when the cluster does not enforce
    NetworkPolicies (they would be stored, not enforced), unless `force`."""
    cfg = ctx.cfg
    before = preview(ctx)
    if before.enforced is False and not force:
        raise CloudError("conflict", before.enforcement + " Applying the policies would not isolate "
                         f"namespace {cfg.namespace}.", " ".join(before.options))
    if before.broken and not force:
        raise CloudError("conflict", "These NetworkPolicies would block paths the deployment needs: "
                         + "; ".join(before.warnings()),
                         "Review the policies (render-manifests) or apply anyway with force.")
    session = ctx.kube()
    for obj in rendered(cfg, _api_server_cidrs(ctx)):
        session.apply(obj, cfg.namespace)
    choose(ctx, APPLY)
    return live_report(ctx)


# --- live proof: probe pods ----------------------------------------------------------------------

PROBE_IMAGE = "busybox:1.36"
PROBE_TIMEOUT_S = 3  # nc -w: a dropped connection fails after this
PROBE_LABEL = "rhaii-tui.io/reachability-probe"


@dataclass
class Observation:
    key: str  # the table row it proves (a standard probe key)
    label: str
    namespace: str
    pod: str
    target: str  # "IP:port"
    intended: bool  # the guide's intent: connect (True) or be blocked (False)
    observed: bool | None = None  # connected; None: no result
    detail: str = ""  # the tool's log line, or why there is no result

    @property
    def ok(self) -> bool:
        return self.observed is not None and self.observed == self.intended

    def text(self) -> str:
        if self.observed is None:
            return f"{self.label}: no result ({self.detail})"
        word = "connected" if self.observed else "blocked"
        return f"{self.label}: {word} ({self.detail})" if self.detail else f"{self.label}: {word}"

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "namespace": self.namespace, "pod": self.pod,
                "target": self.target, "intended": self.intended, "observed": self.observed, "ok": self.ok,
                "detail": self.detail}


def _probe_pod(name: str, namespace: str, labels: dict[str, str], ip: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace,
                     # no sidecar (the pod must end), and never a Service endpoint (never Ready)
                     "labels": {**labels, PROBE_LABEL: "true", "sidecar.istio.io/inject": "false"},
                     "annotations": {"sidecar.istio.io/inject": "false"}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "probe", "image": PROBE_IMAGE,
                "command": ["nc", "-zv", "-w", str(PROBE_TIMEOUT_S), ip, str(port)],
                "readinessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 60},
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                              "limits": {"cpu": "100m", "memory": "32Mi"}},
                # passes the "restricted" Pod Security Standard
                "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": 65534,
                                    "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
            }],
        },
    }


def _vllm_target(session: Any, cfg: DeployConfig) -> tuple[str, str]:
    """(pod name, pod IP) of a running vLLM pod."""
    pods = session.list("v1", "Pod", cfg.namespace, label_selector=m.label_selector(m.workload_labels(cfg.service)))
    for p in pods:
        ip = (p.get("status") or {}).get("podIP")
        if ip and (p.get("status") or {}).get("phase") == "Running" and not (p.get("metadata") or {}).get(
                "deletionTimestamp"):
            return (p.get("metadata") or {}).get("name", ""), ip
    raise CloudError("not_found", f"No running vLLM pod in {cfg.namespace} to test the policies against.",
                     "Deploy the inference service first (step 5), then test again.")


def observe(ctx: Any, *, timeout: float = 120.0, poll: float = 1.0,
            on_line: Callable[[str], None] | None = None) -> dict[str, Observation]:
    """Run the probe pods against a live vLLM pod and return what they observed (by row key). The
    pods and the probe namespace are deleted afterwards, whatever happens. Raises CloudError."""
    say = on_line or (lambda _l: None)
    cfg = ctx.cfg
    session = ctx.kube()
    vllm_pod, ip = _vllm_target(session, cfg)
    port = m.VLLM_PORT
    suffix = _secrets.token_hex(3)
    probe_ns = f"rhaii-probe-{suffix}"
    plan = [
        Observation("gw-vllm", f"gateway-labelled pod in {GATEWAY_NAMESPACE} -> vLLM:{port}", GATEWAY_NAMESPACE,
                    f"rhaii-probe-gw-{suffix}", f"{ip}:{port}", True),
        Observation("otherns-vllm", f"pod in a new namespace ({probe_ns}) -> vLLM:{port}", probe_ns,
                    f"rhaii-probe-ns-{suffix}", f"{ip}:{port}", False),
        Observation("samens-vllm", f"other pod in {cfg.namespace} -> vLLM:{port}", cfg.namespace,
                    f"rhaii-probe-same-{suffix}", f"{ip}:{port}", False),
    ]
    labels = {"gw-vllm": m.gateway_pod_labels(), "otherns-vllm": {"app": "rhaii-probe"},
              "samens-vllm": {"app": "rhaii-probe"}}
    say(f"Testing reachability of {vllm_pod} ({ip}:{port}) with {len(plan)} probe pods ({PROBE_IMAGE}, nc).")
    created: list[Observation] = []
    try:
        session.ensure_namespace(probe_ns, {PROBE_LABEL: "true", "app.kubernetes.io/managed-by": "rhaii-tui"})
        for o in plan:
            session.apply(_probe_pod(o.pod, o.namespace, labels[o.key], ip, port), o.namespace)
            created.append(o)
        deadline = time.monotonic() + timeout
        pending = list(created)
        while pending and time.monotonic() < deadline:
            for o in list(pending):
                pod = session.get("v1", "Pod", o.pod, o.namespace) or {}
                phase = (pod.get("status") or {}).get("phase")
                if phase in ("Succeeded", "Failed"):
                    o.observed = phase == "Succeeded"
                    o.detail = _last_log_line(session, o)
                    pending.remove(o)
            if pending:
                time.sleep(poll)
        for o in pending:
            o.detail = f"the probe pod did not finish within {int(timeout)} s (image pull or scheduling?)"
    finally:
        for o in created:
            try:
                session.delete("v1", "Pod", o.pod, o.namespace)
            except CloudError:
                pass
        try:
            session.delete("v1", "Namespace", probe_ns)
        except CloudError:
            pass
    return {o.key: o for o in plan}


def _last_log_line(session: Any, o: Observation) -> str:
    try:
        text = session.core.read_namespaced_pod_log(o.pod, o.namespace, container="probe", tail_lines=3,
                                                    _request_timeout=10)
    except Exception:  # noqa: BLE001 - the phase is the answer; the log only explains it
        return ""
    lines = [ln.strip() for ln in str(text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def with_observations(rep: NetpolReport, observed: dict[str, Observation]) -> NetpolReport:
    rep.observed = dict(observed)
    return rep


def probe(ctx: Any) -> StepState:
    cfg = ctx.cfg
    chosen = choice(ctx)
    try:
        session = ctx.kube_or_none()
        if session is None:
            if chosen == SKIP:
                return StepState(Status.SKIPPED, "NetworkPolicies skipped by choice (PoC).")
            return StepState(Status.NOT_STARTED, "The cluster is not ready yet (step 2).")
        live = _live(session, cfg)
        names = {(p.get("metadata") or {}).get("name") for p in live
                 if (p.get("metadata") or {}).get("namespace") == cfg.namespace}
        present = [n for n in m.NETWORK_POLICY_NAMES if n in names]
        enf = enforcement(ctx)
        eps = {**_live_endpoints(session, cfg), **_api_endpoint(api_server_addresses(ctx))} if live else {}
        rep = report(live, cfg, eps, enf, live=True) if live else None
    except CloudError as e:
        return StepState(Status.FAILED, e.message, fix=e.fix, data={"error_kind": e.kind})
    data: dict[str, Any] = {"choice": chosen, "present": present, "wanted": list(m.NETWORK_POLICY_NAMES),
                            "criteria": CRITERIA, "enforced": enf.enforced, "enforcement": enf.text()}
    if rep is not None:
        data["report"] = rep.to_dict()
    if enf.enforced is False:
        options = " ".join(not_enforced_options(cfg))
        data["options"] = not_enforced_options(cfg)
        if chosen == SKIP:
            return StepState(Status.SKIPPED, "NetworkPolicies skipped by choice (PoC); this cluster does not "
                                             "enforce them anyway.", data=data)
        if present:
            return StepState(Status.FAILED, f"{len(present)}/{len(m.NETWORK_POLICY_NAMES)} NetworkPolicies are "
                             f"stored, but cluster {enf.cluster} does not enforce NetworkPolicies: namespace "
                             f"{cfg.namespace} is NOT isolated.", detail=enf.text(), fix=options, data=data)
        return StepState(Status.NOT_STARTED, f"No NetworkPolicies yet, and cluster {enf.cluster} does not enforce "
                         "them: applying would store them without isolating anything.", fix=options, data=data)
    if rep is not None and rep.broken:
        return StepState(Status.FAILED, "NetworkPolicies block paths the deployment needs: "
                         + "; ".join(rep.warnings()), detail=rep.text(),
                         fix=f"Fix or delete the blocking policy: kubectl get networkpolicy -n {cfg.namespace}",
                         data=data)
    if len(present) == len(m.NETWORK_POLICY_NAMES):
        how = f" and enforced by {enf.by}" if enf.enforced else ""
        return StepState(Status.DONE, f"All {len(present)} NetworkPolicies present{how}; the gateway reaches vLLM "
                                      f"and the EPP.", data=data)
    if chosen == SKIP:
        return StepState(Status.SKIPPED, "NetworkPolicies skipped by choice (PoC).", data=data)
    if present:
        missing = [n for n in m.NETWORK_POLICY_NAMES if n not in present]
        return StepState(Status.IN_PROGRESS, f"{len(present)}/{len(m.NETWORK_POLICY_NAMES)} NetworkPolicies "
                                             f"present; missing {', '.join(missing)}.", fix="Apply step 8.", data=data)
    return StepState(Status.NOT_STARTED, "No NetworkPolicies yet (optional: recommended for production).",
                     fix="Apply them (production) or skip this step (PoC).", data=data)


def commands(ctx: Any) -> list[str]:
    return guide_step(8).commands(ctx.cfg)


def run(ctx: Any, on_line: Any = None, *, decision: str | None = None, force: bool = False,
        **_: Any) -> StepState:
    """Headless step 8. `decision`: "skip" or "apply"; default: the saved choice, else apply (the
    guide recommends the policies for production)."""
    say = on_line or (lambda _l: None)
    chosen = decision or choice(ctx) or APPLY
    if chosen == SKIP:
        choose(ctx, SKIP)
        st = probe(ctx)
        say(st.summary)
        return st
    try:
        rep = apply(ctx, force=force)
    except CloudError as e:
        say(e.message)
        return StepState(Status.FAILED, e.message, fix=e.fix, data={"error_kind": e.kind})
    try:
        with_observations(rep, observe(ctx, on_line=say))
    except CloudError as e:
        say(f"Live reachability test not run: {e.message} {e.fix}".strip())
    say(rep.text())
    for w in rep.warnings():
        say(f"WARNING: {w}")
    if rep.enforced is False:
        say(f"WARNING: {rep.enforcement_warning()}")
    for o in rep.observed_gaps:
        say(f"WARNING: observed on the cluster: {o.text()}; the policies intend it "
            f"{'to connect' if o.intended else 'to be blocked'}.")
    st = probe(ctx)
    if rep.observed_gaps and st.status is Status.DONE:
        st = StepState(Status.FAILED, "The probe pods did not see what the policies intend: "
                       + "; ".join(o.text() for o in rep.observed_gaps), detail=rep.text(),
                       fix=f"Check the policies and the cluster's enforcement: kubectl get networkpolicy -n "
                           f"{ctx.cfg.namespace}", data=st.data)
    say(st.summary)
    return st


__all__ = ["run", "CRITERIA", "SKIP", "APPLY", "choice", "choose", "rendered", "preview", "apply", "live_report",
           "probe", "report", "NetpolReport", "commands", "Enforcement", "enforcement", "not_enforced_options",
           "Observation", "observe", "with_observations"]
