"""The emulator's own NetworkPolicy evaluator (networking.k8s.io/v1), used by the simulated data plane.

Written from the Kubernetes documentation ("Network Policies", kubernetes.io/docs/concepts/
services-networking/network-policies/), independently of the wizard's calculator
(`rhaii_tui/cloud/netpol.py`, which it must never import): where the two disagree, a test catches it.

Semantics implemented:

- A policy applies to the pods of ITS namespace that `spec.podSelector` selects (`{}`: all of them).
- `spec.policyTypes` absent: ["Ingress"], plus "Egress" when `spec.egress` has rules.
- A pod is isolated for ingress (egress) when at least one policy with that type applies to it; an
  isolated pod accepts (opens) only what the union of those policies' rules allows. A pod no policy
  isolates accepts (opens) everything. A policy with the type and no rules allows nothing (deny).
- A connection needs both: the source pod's egress allows it AND the destination pod's ingress does.
  Traffic from the node the destination runs on (kubelet probes) is always allowed.
- A rule matches when ANY of its peers matches (`from`/`to` absent or empty: every peer) and ANY of
  its ports matches (`ports` absent or empty: every port and protocol). `{}` as a rule: allow all.
- Peer kinds: `podSelector` only: pods of the policy's namespace; `namespaceSelector` only: all pods
  of the selected namespaces; both in ONE peer: the selected pods of the selected namespaces (AND; two
  separate peers are OR); `ipBlock`: addresses inside `cidr` but not inside any `except` CIDR.
  Whether `ipBlock` matches pod addresses is implementation-defined; GKE Dataplane V2 (Cilium) does
  not match in-cluster pods with CIDR rules, the default here (`cidr_matches_pods=False`).
- Ports: `protocol` defaults to TCP; `port` a number (with `endPort` an inclusive range) or the name
  of a container port of the destination pod (a named port never matches a non-pod destination);
  `port` absent: every port of that protocol.
- Label selectors: `matchLabels` and `matchExpressions` (In, NotIn, Exists, DoesNotExist) ANDed;
  an empty selector selects everything. Namespaces carry `kubernetes.io/metadata.name`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

POD, ADDRESS, NODE = "pod", "address", "node"
NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Party:
    """One end of a connection: a pod, an address outside the pod network, or a node."""

    kind: str
    ip: str = ""
    namespace: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    ports: Mapping[str, tuple[int, str]] = field(default_factory=dict)  # named container ports
    name: str = ""

    def describe(self) -> str:
        if self.kind == POD:
            return f"pod {self.namespace}/{self.name or '?'}"
        return f"{self.kind} {self.ip}"


def make_pod(name: str, namespace: str, labels: Mapping[str, str] | None = None, ip: str = "",
             namespace_labels: Mapping[str, str] | None = None,
             ports: Mapping[str, tuple[int, str]] | None = None) -> Party:
    nsl = dict(namespace_labels or {})
    nsl.setdefault(NAME_LABEL, namespace)  # the API server sets it on every namespace
    return Party(POD, ip, namespace, dict(labels or {}), nsl, dict(ports or {}), name)


def pod_party(pod: Mapping[str, Any], namespace: Mapping[str, Any] | None = None) -> Party:
    """A Party from a Pod object (and its Namespace object, for the namespace's labels)."""
    md = pod.get("metadata") or {}
    named: dict[str, tuple[int, str]] = {}
    for c in (pod.get("spec") or {}).get("containers") or []:
        for cp in c.get("ports") or []:
            if cp.get("name") and cp.get("containerPort") is not None:
                named[cp["name"]] = (int(cp["containerPort"]), (cp.get("protocol") or "TCP").upper())
    ns_labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    return make_pod(md.get("name", ""), md.get("namespace") or "default", md.get("labels") or {},
                    (pod.get("status") or {}).get("podIP") or "", ns_labels, named)


def address(ip: str) -> Party:
    return Party(ADDRESS, ip)


def node(ip: str = "") -> Party:
    return Party(NODE, ip)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    egress_isolated: bool = False
    egress_allowed: bool = True
    egress_by: tuple[str, ...] = ()  # allowing policies, or isolating ones when denied
    ingress_isolated: bool = False
    ingress_allowed: bool = True
    ingress_by: tuple[str, ...] = ()

    def why(self) -> str:
        def side(name: str, isolated: bool, ok: bool, by: tuple[str, ...]) -> str:
            if not isolated:
                return f"{name}: not isolated"
            return f"{name}: {'allowed by' if ok else 'denied, isolated by'} {', '.join(by)}"
        return "; ".join((side("egress", self.egress_isolated, self.egress_allowed, self.egress_by),
                          side("ingress", self.ingress_isolated, self.ingress_allowed, self.ingress_by)))


# --- label selectors -----------------------------------------------------------------------------


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector: every matchLabels pair and every expression must hold."""
    if not selector:
        return True
    for k, v in (selector.get("matchLabels") or {}).items():
        if k not in labels or labels[k] != v:
            return False
    for req in selector.get("matchExpressions") or []:
        key = req.get("key")
        op = req.get("operator")
        vals = set(req.get("values") or ())
        has = key in labels
        if op == "In":
            ok = has and labels[key] in vals
        elif op == "NotIn":
            ok = not has or labels[key] not in vals
        elif op == "Exists":
            ok = has
        elif op == "DoesNotExist":
            ok = not has
        else:
            ok = False
        if not ok:
            return False
    return True


# --- peers and ports -----------------------------------------------------------------------------


def _in_cidr(ip: str, cidr: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


def _peer_matches(peer: Mapping[str, Any], policy_ns: str, other: Party, cidr_matches_pods: bool) -> bool:
    block = peer.get("ipBlock")
    if block:
        if other.kind == NODE or not other.ip:
            return False
        if other.kind == POD and not cidr_matches_pods:
            return False
        if not _in_cidr(other.ip, block.get("cidr", "")):
            return False
        return not any(_in_cidr(other.ip, ex) for ex in block.get("except") or ())
    has_pod_sel = "podSelector" in peer and peer["podSelector"] is not None
    has_ns_sel = "namespaceSelector" in peer and peer["namespaceSelector"] is not None
    if not (has_pod_sel or has_ns_sel) or other.kind != POD:
        return False
    if has_ns_sel:
        if not selects(peer["namespaceSelector"], other.namespace_labels):
            return False
    elif other.namespace != policy_ns:
        return False
    return selects(peer["podSelector"], other.labels) if has_pod_sel else True


def _port_matches(entry: Mapping[str, Any], port: int, protocol: str, dest: Party) -> bool:
    proto = (entry.get("protocol") or "TCP").upper()
    if proto != protocol.upper():
        return False
    want = entry.get("port")
    if want is None:
        return True
    if isinstance(want, int) or (isinstance(want, str) and want.isdigit()):
        first = int(want)
        last = int(entry["endPort"]) if entry.get("endPort") is not None else first
        return first <= port <= last
    if dest.kind != POD:
        return False
    named = dest.ports.get(str(want))
    return named is not None and named[0] == port and named[1].upper() == protocol.upper()


def _types(spec: Mapping[str, Any]) -> tuple[str, ...]:
    declared = spec.get("policyTypes")
    if declared:
        return tuple(declared)
    return ("Ingress", "Egress") if spec.get("egress") else ("Ingress",)


def _applies(policy: Mapping[str, Any], subject: Party) -> bool:
    if subject.kind != POD:
        return False
    ns = (policy.get("metadata") or {}).get("namespace") or "default"
    return ns == subject.namespace and selects((policy.get("spec") or {}).get("podSelector"), subject.labels)


def _direction(policies: list[Mapping[str, Any]], direction: str, subject: Party, other: Party, dest: Party,
               port: int, protocol: str, cidr_matches_pods: bool) -> tuple[bool, bool, tuple[str, ...]]:
    """(isolated, allowed, policies) for the subject's ingress (other = source) or egress (other = dest)."""
    rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    isolating: list[str] = []
    allowing: list[str] = []
    for pol in policies:
        spec = pol.get("spec") or {}
        if direction not in _types(spec) or not _applies(pol, subject):
            continue
        pname = (pol.get("metadata") or {}).get("name") or "?"
        pns = (pol.get("metadata") or {}).get("namespace") or "default"
        isolating.append(pname)
        for rule in spec.get(rules_key) or []:
            rule = rule or {}
            peers = rule.get(peers_key) or []
            ports = rule.get("ports") or []
            if peers and not any(_peer_matches(p or {}, pns, other, cidr_matches_pods) for p in peers):
                continue
            if ports and not any(_port_matches(p or {}, port, protocol, dest) for p in ports):
                continue
            allowing.append(pname)
            break
    if not isolating:
        return False, True, ()
    if allowing:
        return True, True, tuple(allowing)
    return True, False, tuple(isolating)


def evaluate(policies: Iterable[Mapping[str, Any]], src: Party, dst: Party, port: int, protocol: str = "TCP",
             *, cidr_matches_pods: bool = False) -> Verdict:
    """Whether `src` may open a connection to `dst`:`port`/`protocol` under `policies` (dicts)."""
    pols = [p for p in policies if (p.get("kind") or "NetworkPolicy") == "NetworkPolicy"
            and not (p.get("metadata") or {}).get("deletionTimestamp")]
    e_iso, e_ok, e_by = False, True, ()
    if src.kind == POD:
        e_iso, e_ok, e_by = _direction(pols, "Egress", src, dst, dst, port, protocol, cidr_matches_pods)
    i_iso, i_ok, i_by = False, True, ()
    if dst.kind == POD and src.kind != NODE:
        i_iso, i_ok, i_by = _direction(pols, "Ingress", dst, src, dst, port, protocol, cidr_matches_pods)
    return Verdict(e_ok and i_ok, e_iso, e_ok, e_by, i_iso, i_ok, i_by)


__all__ = ["Party", "Verdict", "make_pod", "pod_party", "address", "node", "selects", "evaluate",
           "POD", "ADDRESS", "NODE"]
