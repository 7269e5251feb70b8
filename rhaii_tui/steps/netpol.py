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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence
from urllib.parse import urlparse

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


def _api_server_cidrs(ctx: Any) -> list[str]:
    """The cluster endpoint as a /32, to narrow the EPP's egress to the Kubernetes API."""
    try:
        info = ctx.cluster()
    except CloudError:
        return []
    endpoint = getattr(info, "endpoint", "") or ""
    host = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}").hostname or ""
    try:
        import ipaddress

        ip = ipaddress.ip_address(host)
    except ValueError:
        return []
    if ip.is_loopback:
        return []  # the simulated cloud: no real address to pin
    return [f"{ip}/{32 if ip.version == 4 else 128}"]


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

    @property
    def isolated(self) -> bool:
        """The namespace is isolated: policies present AND enforced AND nothing needed is cut off."""
        return bool(self.policies) and self.enforced is True and not self.broken

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
        return calc.format_table(self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"policies": list(self.policies), "warnings": self.warnings(), "enforced": self.enforced,
                "enforcement": self.enforcement, "options": list(self.options), "isolated": self.isolated,
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
    pols = rendered(cfg, _api_server_cidrs(ctx))
    ours = {p["metadata"]["name"] for p in pols}
    others: list[dict] = []
    try:
        session = ctx.kube_or_none()
        if session is not None:
            others = [p for p in _live(session, cfg) if not ((p.get("metadata") or {}).get("namespace") == cfg.namespace
                                                              and (p.get("metadata") or {}).get("name") in ours)]
    except CloudError:
        others = []
    return report(pols + others, cfg, enforced=enforcement(ctx))


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
        try:
            pods = session.list("v1", "Pod", ns, label_selector=sel)
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
    return report(_live(session, ctx.cfg), ctx.cfg, _live_endpoints(session, ctx.cfg), enforcement(ctx), live=True)


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
        rep = report(live, cfg, _live_endpoints(session, cfg), enf, live=True) if live else None
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
    say(rep.text())
    for w in rep.warnings():
        say(f"WARNING: {w}")
    if rep.enforced is False:
        say(f"WARNING: {rep.enforcement_warning()}")
    st = probe(ctx)
    say(st.summary)
    return st


__all__ = ["run", "CRITERIA", "SKIP", "APPLY", "choice", "choose", "rendered", "preview", "apply", "live_report",
           "probe", "report", "NetpolReport", "commands", "Enforcement", "enforcement", "not_enforced_options"]
