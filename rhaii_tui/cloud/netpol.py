"""Who can reach whom under a set of Kubernetes NetworkPolicies (the semantics of networking.k8s.io/v1).

The rules implemented:

- A policy applies to the pods its `podSelector` selects in its own namespace (`{}` selects all).
- `policyTypes` defaults to ["Ingress"], plus "Egress" when the policy has egress rules.
- A pod that no policy of a type selects is not isolated for that type: everything is allowed.
- An isolated pod admits a connection if ANY selecting policy has a rule that allows it (union).
- A rule allows when one of its peers matches (no `from`/`to`, or an empty list: any peer) AND one
  of its ports matches (no `ports`: any port). A port is a number (with `endPort` a range) or a
  name resolved against the destination pod's container ports; protocol defaults to TCP.
- Peers: `podSelector` alone = pods of the policy's namespace; `namespaceSelector` alone = every pod
  of the matching namespaces; both in ONE peer = those pods in those namespaces (AND); `ipBlock` =
  addresses in `cidr` and not in `except`.
- A connection between two pods needs both the source's egress and the destination's ingress.
- Traffic from the pod's own node (kubelet probes) is always allowed.
- `ipBlock` and pod addresses: implementation-defined. GKE Dataplane V2 (Cilium) does not apply
  CIDR rules to in-cluster pods, which is the default here (`ipblock_matches_pods=False`).

`reachability_table(policies, cfg)` answers the wizard's step 8 with standard probes; every row
says whether the connection is allowed, which policies decided it, and whether that is what the
guide intends. No Textual, no cluster access: policies are plain dicts (or kubernetes models).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from ..config import GATEWAY_NAME, GATEWAY_NAMESPACE, DeployConfig
from .. import manifests as m

# --- endpoints -----------------------------------------------------------------------------------

POD, EXTERNAL, NODE = "pod", "external", "node"


@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace + labels), an address outside the pod network, or the pod's own node."""

    name: str
    kind: str = POD
    namespace: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    ip: str = ""
    # container port name -> (port, protocol), for named ports
    named_ports: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    namespace_labels: Mapping[str, str] | None = None  # default: kubernetes.io/metadata.name only

    def ns_labels(self) -> Mapping[str, str]:
        if self.namespace_labels is not None:
            return self.namespace_labels
        return {"kubernetes.io/metadata.name": self.namespace}

    def describe(self) -> str:
        if self.kind == POD:
            return f"{self.namespace}/{self.name}"
        return f"{self.name} ({self.ip})" if self.ip else self.name


def pod(name: str, namespace: str, labels: Mapping[str, str], ip: str = "",
        named_ports: Mapping[str, tuple[int, str]] | None = None) -> Endpoint:
    return Endpoint(name=name, kind=POD, namespace=namespace, labels=dict(labels), ip=ip,
                    named_ports=dict(named_ports or {}))


def external(name: str, ip: str) -> Endpoint:
    return Endpoint(name=name, kind=EXTERNAL, ip=ip)


# --- decisions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SideDecision:
    """One side (egress of the source, or ingress of the destination)."""

    isolated: bool
    allowed: bool
    policies: tuple[str, ...]  # allowing policies if allowed; the isolating ones if denied

    def explain(self, side: str) -> str:
        if not self.isolated:
            return f"{side}: no policy selects the pod (allowed by default)"
        names = ", ".join(self.policies)
        return f"{side}: allowed by {names}" if self.allowed else f"{side}: denied (isolated by {names})"


OPEN = SideDecision(isolated=False, allowed=True, policies=())


@dataclass(frozen=True)
class Decision:
    allowed: bool
    egress: SideDecision
    ingress: SideDecision

    @property
    def policies(self) -> tuple[str, ...]:
        """The policies that decided: the allowing ones, or the isolating ones on the denying side."""
        if self.allowed:
            return tuple(dict.fromkeys(self.egress.policies + self.ingress.policies))
        out: tuple[str, ...] = ()
        for side in (self.egress, self.ingress):
            if not side.allowed:
                out += side.policies
        return tuple(dict.fromkeys(out))

    def reason(self) -> str:
        return "; ".join((self.egress.explain("egress"), self.ingress.explain("ingress")))


# --- policy semantics ----------------------------------------------------------------------------


def _as_dict(policy: Any) -> dict[str, Any]:
    if isinstance(policy, Mapping):
        return dict(policy)
    # a kubernetes client model (V1NetworkPolicy): convert to the API's camelCase form
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(policy)


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics; an empty selector matches everything."""
    if selector is None:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), list(expr.get("values") or [])
        if op == "In":
            if key not in labels or labels[key] not in values:
                return False
        elif op == "NotIn":
            if key in labels and labels[key] in values:
                return False
        elif op == "Exists":
            if key not in labels:
                return False
        elif op == "DoesNotExist":
            if key in labels:
                return False
        else:
            return False  # an unknown operator selects nothing (the API server rejects it anyway)
    return True


def _policy_types(spec: Mapping[str, Any]) -> set[str]:
    types = spec.get("policyTypes")
    if types:
        return set(types)
    # the API server's defaulting: Egress only when there are egress rules
    return {"Ingress", "Egress"} if spec.get("egress") else {"Ingress"}


def _selects(policy: Mapping[str, Any], ep: Endpoint) -> bool:
    if ep.kind != POD:
        return False
    meta = policy.get("metadata") or {}
    if (meta.get("namespace") or "default") != ep.namespace:
        return False
    return selector_matches((policy.get("spec") or {}).get("podSelector") or {}, ep.labels)


def _ip_in_block(ip: str, block: Mapping[str, Any]) -> bool:
    if not ip:
        return False
    try:
        addr = ipaddress.ip_address(ip)
        if addr not in ipaddress.ip_network(block.get("cidr", ""), strict=False):
            return False
        return not any(addr in ipaddress.ip_network(ex, strict=False) for ex in block.get("except") or [])
    except ValueError:
        return False


def _peer_matches(peer: Mapping[str, Any], policy_ns: str, ep: Endpoint, ipblock_matches_pods: bool) -> bool:
    if "ipBlock" in peer and peer["ipBlock"] is not None:
        if ep.kind == POD and not ipblock_matches_pods:
            return False
        return _ip_in_block(ep.ip, peer["ipBlock"])
    if ep.kind != POD:
        return False  # pod/namespace selectors only ever match pods
    ns_sel = peer.get("namespaceSelector")
    pod_sel = peer.get("podSelector")
    if ns_sel is None and pod_sel is None:
        return False
    if ns_sel is None:
        if ep.namespace != policy_ns:
            return False
    elif not selector_matches(ns_sel, ep.ns_labels()):
        return False
    return selector_matches(pod_sel, ep.labels) if pod_sel is not None else True


def _port_matches(entry: Mapping[str, Any], port: int, protocol: str, dst: Endpoint) -> bool:
    if (entry.get("protocol") or "TCP").upper() != protocol.upper():
        return False
    want = entry.get("port")
    if want is None:
        return True  # all ports of this protocol
    if isinstance(want, str) and not want.isdigit():
        named = dst.named_ports.get(want)
        return named is not None and named[0] == port and named[1].upper() == protocol.upper()
    lo = int(want)
    hi = int(entry.get("endPort") or lo)
    return lo <= port <= hi


def _rule_allows(rule: Mapping[str, Any], peers_key: str, policy_ns: str, peer: Endpoint, dst: Endpoint,
                 port: int, protocol: str, ipblock_matches_pods: bool) -> bool:
    peers = rule.get(peers_key)
    if peers and not any(_peer_matches(p or {}, policy_ns, peer, ipblock_matches_pods) for p in peers):
        return False
    ports = rule.get("ports")
    if ports and not any(_port_matches(p or {}, port, protocol, dst) for p in ports):
        return False
    return True


def _side(policies: Sequence[Mapping[str, Any]], kind: str, subject: Endpoint, peer: Endpoint,
          dst: Endpoint, port: int, protocol: str, ipblock_matches_pods: bool) -> SideDecision:
    """kind "Ingress": subject is the destination pod, peer the source; "Egress": the reverse."""
    rules_key, peers_key = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
    isolating: list[str] = []
    allowing: list[str] = []
    for pol in policies:
        spec = pol.get("spec") or {}
        if kind not in _policy_types(spec) or not _selects(pol, subject):
            continue
        name = (pol.get("metadata") or {}).get("name", "?")
        isolating.append(name)
        ns = (pol.get("metadata") or {}).get("namespace") or "default"
        if any(_rule_allows(r or {}, peers_key, ns, peer, dst, port, protocol, ipblock_matches_pods)
               for r in spec.get(rules_key) or []):
            allowing.append(name)
    if not isolating:
        return OPEN
    if allowing:
        return SideDecision(True, True, tuple(allowing))
    return SideDecision(True, False, tuple(isolating))


def can_reach(policies: Iterable[Any], src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP",
              *, ipblock_matches_pods: bool = False) -> Decision:
    """Whether `src` can open a connection to `dst`:`port`/`protocol` under `policies`."""
    pols = [_as_dict(p) for p in policies]
    pols = [p for p in pols if (p.get("kind") or "NetworkPolicy") == "NetworkPolicy"]
    if src.kind == NODE and dst.kind == POD:
        # the node a pod runs on (kubelet probes) is always admitted
        return Decision(True, OPEN, OPEN)
    egress = (_side(pols, "Egress", src, dst, dst, port, protocol, ipblock_matches_pods)
              if src.kind == POD else OPEN)
    ingress = (_side(pols, "Ingress", dst, src, dst, port, protocol, ipblock_matches_pods)
               if dst.kind == POD else OPEN)
    return Decision(egress.allowed and ingress.allowed, egress, ingress)


# --- the wizard's standard probes ----------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    key: str
    label: str
    src: str  # endpoint key
    dst: str
    port: int
    protocol: str
    expected: bool  # what the guide's intent ("gateway only in, DNS and HTTPS out") requires
    required: bool = False  # the deployment breaks if this is denied


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    source: str
    destination: str
    port: int
    protocol: str
    allowed: bool
    expected: bool
    required: bool
    policies: tuple[str, ...]
    reason: str

    @property
    def ok(self) -> bool:
        return self.allowed == self.expected

    @property
    def verdict(self) -> str:
        word = "allowed" if self.allowed else "denied"
        if self.ok:
            return word
        return f"{word} (should be {'allowed' if self.expected else 'denied'})"


def standard_endpoints(cfg: DeployConfig) -> dict[str, Endpoint]:
    """The parties of the standard probes, labelled as KServe, Istio and GKE label them."""
    svc, ns = cfg.service, cfg.namespace
    return {
        "gateway": pod(f"{GATEWAY_NAME}-istio", GATEWAY_NAMESPACE, m.gateway_pod_labels(), "10.8.0.10"),
        "kserve-controller": pod("kserve-controller-manager", GATEWAY_NAMESPACE,
                                 {"control-plane": "kserve-controller-manager"}, "10.8.0.11"),
        "vllm": pod(f"{m.workload_deployment_name(svc)}-0", ns, m.workload_labels(svc), "10.8.1.10",
                    {"https": (m.VLLM_PORT, "TCP")}),
        "epp": pod(f"{m.epp_deployment_name(svc)}-0", ns, m.epp_labels(svc), "10.8.1.20",
                   {"grpc": (m.EPP_GRPC_PORT, "TCP"), "grpc-health": (m.EPP_HEALTH_PORT, "TCP"),
                    "metrics": (m.EPP_METRICS_PORT, "TCP")}),
        "same-ns-pod": pod("debug-shell", ns, {"app": "debug-shell"}, "10.8.1.30"),
        "other-ns-pod": pod("client", "default", {"app": "client"}, "10.8.2.10",
                            {"http-alt": (8080, "TCP")}),
        "monitoring": pod("collector", "gmp-system", {"app.kubernetes.io/name": "collector"}, "10.8.3.10"),
        "kube-dns": pod("kube-dns", "kube-system", {"k8s-app": "kube-dns"}, "10.8.4.10",
                        {"dns": (53, "UDP"), "dns-tcp": (53, "TCP")}),
        "istiod": pod("istiod", m.ISTIO_NAMESPACE, dict(m.ISTIOD_LABELS), "10.8.5.10"),
        "node": Endpoint(name="node (kubelet)", kind=NODE, ip="10.164.0.2"),
        "internet": external("huggingface.co", "18.239.50.10"),
        "api-server": external("GKE control plane", "34.90.10.20"),
        "metadata": external("metadata server", "169.254.169.254"),
    }


def standard_probes(cfg: DeployConfig) -> list[Probe]:
    v, e = m.VLLM_PORT, m.EPP_GRPC_PORT
    return [
        Probe("gw-vllm", f"gateway -> vLLM:{v}", "gateway", "vllm", v, "TCP", True, True),
        Probe("kubelet-vllm", f"kubelet probes -> vLLM:{v}", "node", "vllm", v, "TCP", True, True),
        Probe("epp-vllm", f"EPP -> vLLM:{v} (metrics)", "epp", "vllm", v, "TCP", True, True),
        Probe("samens-vllm", f"other pod, same namespace -> vLLM:{v}", "same-ns-pod", "vllm", v, "TCP", False),
        Probe("otherns-vllm", f"pod in another namespace -> vLLM:{v}", "other-ns-pod", "vllm", v, "TCP", False),
        Probe("ctrl-vllm", f"non-gateway pod in {GATEWAY_NAMESPACE} -> vLLM:{v}", "kserve-controller", "vllm",
              v, "TCP", False),
        Probe("gw-epp", f"gateway -> EPP:{e}", "gateway", "epp", e, "TCP", True, True),
        Probe("otherns-epp", f"pod in another namespace -> EPP:{e}", "other-ns-pod", "epp", e, "TCP", False),
        Probe("vllm-epp", f"vLLM -> EPP:{e}", "vllm", "epp", e, "TCP", False),
        Probe("mon-epp", f"monitoring -> EPP:{m.EPP_METRICS_PORT} (metrics)", "monitoring", "epp",
              m.EPP_METRICS_PORT, "TCP", True),
        Probe("epp-api", "EPP -> Kubernetes API:443", "epp", "api-server", 443, "TCP", True, True),
        Probe("vllm-dns", "vLLM -> kube-dns:53/UDP", "vllm", "kube-dns", 53, "UDP", True, True),
        Probe("vllm-dns-tcp", "vLLM -> kube-dns:53/TCP", "vllm", "kube-dns", 53, "TCP", True),
        Probe("vllm-https", "vLLM -> internet:443 (model download)", "vllm", "internet", 443, "TCP", True, True),
        Probe("vllm-http", "vLLM -> internet:80", "vllm", "internet", 80, "TCP", False),
        Probe("vllm-istiod", "vLLM -> istiod:15012", "vllm", "istiod", 15012, "TCP", True, True),
        Probe("epp-istiod", "EPP -> istiod:15012", "epp", "istiod", 15012, "TCP", True, True),
        Probe("vllm-otherpod", "vLLM -> pod in another namespace:8080", "vllm", "other-ns-pod", 8080, "TCP", False),
        Probe("vllm-metadata", "vLLM -> metadata server:80", "vllm", "metadata", 80, "TCP", False),
    ]


def reachability_table(policies: Iterable[Any], cfg: DeployConfig, *,
                       endpoints: Mapping[str, Endpoint] | None = None,
                       ipblock_matches_pods: bool = False) -> list[Row]:
    """One row per standard probe. `endpoints` replaces standard parties by key (e.g. the live
    vLLM pod's labels: {"vllm": pod(name, ns, labels)})."""
    pols = [_as_dict(p) for p in policies]
    eps = {**standard_endpoints(cfg), **(endpoints or {})}
    rows = []
    for probe in standard_probes(cfg):
        src, dst = eps[probe.src], eps[probe.dst]
        d = can_reach(pols, src, dst, probe.port, probe.protocol, ipblock_matches_pods=ipblock_matches_pods)
        rows.append(Row(probe.key, probe.label, src.describe(), dst.describe(), probe.port, probe.protocol,
                        d.allowed, probe.expected, probe.required, d.policies, d.reason()))
    return rows


def breaks_required_paths(policies: Iterable[Any], cfg: DeployConfig, **kwargs: Any) -> list[Row]:
    """The required paths these policies deny (gateway -> vLLM and EPP, EPP -> vLLM and the API,
    DNS, model download, istiod). Empty: nothing the deployment needs is blocked."""
    return [r for r in reachability_table(policies, cfg, **kwargs) if r.required and not r.allowed]


def gaps(policies: Iterable[Any], cfg: DeployConfig, **kwargs: Any) -> list[Row]:
    """Rows where the policies do not do what the guide intends (too open or too closed)."""
    return [r for r in reachability_table(policies, cfg, **kwargs) if not r.ok]


def format_table(rows: Sequence[Row]) -> str:
    """Plain-text table (for the headless CLI and reports)."""
    head = ("connection", "result", "decided by")
    body = [(r.label, r.verdict, ", ".join(r.policies) or "no policy (default allow)") for r in rows]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [head, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
