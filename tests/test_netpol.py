"""NetworkPolicy reachability: the calculator's semantics, our policies' effect (gateway-only
ingress, DNS + HTTPS egress) and the upstream policies' gaps."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rhaii_tui import manifests as m
from rhaii_tui.cloud import netpol as n
from rhaii_tui.config import DeployConfig

ROOT = Path(__file__).resolve().parents[1]
UPSTREAM_NETPOL = (ROOT.parent / "shared" / "reference" / "upstream" / "rhaii-on-xks-gke" / "deployments"
                   / "istio-kserve" / "caching-pattern" / "manifests" / "networkpolicies")

DEFAULT = DeployConfig()
CUSTOM = DeployConfig(service="my-llm", namespace="team-a", replicas=5)


def rows_by_key(rows):
    return {r.key: r for r in rows}


def np(name, ns, spec):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


WEB = n.pod("web", "app", {"app": "web"}, "10.0.1.1", {"http": (8080, "TCP")})
CLIENT = n.pod("client", "app", {"app": "client"}, "10.0.1.2")
GATEWAY = n.pod("gw", "opendatahub", {"gateway.networking.k8s.io/gateway-name": "inference-gateway"}, "10.0.2.1")
OTHER_ODH = n.pod("ctrl", "opendatahub", {"control-plane": "kserve-controller-manager"}, "10.0.2.2")
FAKE_GW = n.pod("gw", "elsewhere", {"gateway.networking.k8s.io/gateway-name": "inference-gateway"}, "10.0.3.1")
INTERNET = n.external("example.com", "93.184.216.34")


# --- our policies --------------------------------------------------------------------------------


@pytest.mark.parametrize("cfg", [DEFAULT, CUSTOM], ids=["default", "custom"])
def test_our_policies_do_what_the_guide_says(cfg):
    rows = n.reachability_table(m.networkpolicies(cfg), cfg)
    assert [r.label for r in rows if not r.ok] == []
    r = rows_by_key(rows)
    # gateway-only ingress to vLLM (the EPP may scrape metrics; kubelet probes come from the node)
    assert r["gw-vllm"].allowed and r["gw-vllm"].policies == ("allow-gateway-to-vllm",)
    assert r["epp-vllm"].allowed and r["kubelet-vllm"].allowed
    for key in ("samens-vllm", "otherns-vllm", "ctrl-vllm"):
        assert not r[key].allowed, key
    # EPP reachable from the gateway only
    assert r["gw-epp"].allowed and not r["otherns-epp"].allowed and not r["vllm-epp"].allowed
    # vLLM egress: DNS and HTTPS to the internet, istiod; nothing else
    assert r["vllm-https"].allowed and r["vllm-dns"].allowed and r["vllm-istiod"].allowed
    assert not r["vllm-http"].allowed and not r["vllm-otherpod"].allowed and not r["vllm-metadata"].allowed
    assert "allow-vllm-egress" in r["vllm-http"].policies
    assert n.breaks_required_paths(m.networkpolicies(cfg), cfg) == []


def test_policies_of_one_config_do_not_protect_another():
    """Selectors and namespaces follow the config: team-a's policies leave rhaii-inference open."""
    rows = n.reachability_table(m.networkpolicies(CUSTOM), DEFAULT)
    assert rows_by_key(rows)["otherns-vllm"].allowed
    assert rows_by_key(rows)["vllm-http"].allowed


def test_live_pod_labels_can_replace_the_assumed_ones():
    """If KServe labelled the pods differently, the policies would not select them: the table shows it."""
    live_vllm = n.pod("qwen-3b-tpu-svc-kserve-abc", "rhaii-inference", {"kserve.io/component": "workload"}, "10.8.1.99")
    rows = rows_by_key(n.reachability_table(m.networkpolicies(DEFAULT), DEFAULT, endpoints={"vllm": live_vllm}))
    assert rows["otherns-vllm"].allowed and not rows["otherns-vllm"].ok
    assert rows["otherns-vllm"].policies == ()


def test_dropping_allow_istio_cuts_the_sidecars_off_istiod():
    pols = [p for p in m.networkpolicies(DEFAULT) if p["metadata"]["name"] != "allow-istio"]
    broken = {r.key for r in n.breaks_required_paths(pols, DEFAULT)}
    assert broken == {"vllm-istiod", "epp-istiod"}


def test_deny_all_breaks_the_required_paths():
    deny_all = np("deny-all", DEFAULT.namespace, {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    broken = {r.key for r in n.breaks_required_paths([deny_all], DEFAULT)}
    assert {"gw-vllm", "gw-epp", "epp-vllm", "vllm-dns", "vllm-https", "vllm-istiod"} <= broken
    assert "kubelet-vllm" not in broken  # the node always reaches its pods


# --- upstream policies ---------------------------------------------------------------------------


def upstream_equivalent(ns: str) -> list[dict]:
    """The semantics of the upstream allow-gateway-to-vllm and allow-vllm-egress, written here."""
    return [
        np("allow-gateway-to-vllm", ns, {
            "podSelector": {"matchLabels": {"kserve.io/component": "workload"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "opendatahub"}},
                           "podSelector": {"matchLabels": {"gateway.networking.k8s.io/gateway-name": "inference-gateway"}}}],
                 "ports": [{"protocol": "TCP", "port": 8000}]},
                # "for kubelet probes": every pod of every namespace
                {"from": [{"namespaceSelector": {}, "podSelector": {}}], "ports": [{"protocol": "TCP", "port": 8000}]},
            ]}),
        np("allow-vllm-egress", ns, {
            "podSelector": {"matchLabels": {"kserve.io/component": "workload"}},
            "policyTypes": ["Egress"], "egress": [{}]}),
    ]


def test_upstream_style_policies_show_the_gaps():
    rows = rows_by_key(n.reachability_table(upstream_equivalent(DEFAULT.namespace), DEFAULT))
    assert rows["otherns-vllm"].allowed and not rows["otherns-vllm"].ok
    assert rows["samens-vllm"].allowed
    assert rows["vllm-http"].allowed and not rows["vllm-http"].ok
    assert rows["vllm-otherpod"].allowed
    assert rows["gw-vllm"].allowed  # it does not break the service, it just does not isolate it
    assert "should be denied" in n.format_table(list(rows.values()))


def test_the_upstream_files_show_the_same_gaps_and_break_the_epp_api_access():
    if not UPSTREAM_NETPOL.is_dir():
        pytest.skip(f"upstream reference not found at {UPSTREAM_NETPOL}")
    pols = [yaml.safe_load(p.read_text()) for p in sorted(UPSTREAM_NETPOL.glob("*.yaml"))]
    rows = rows_by_key(n.reachability_table(pols, DEFAULT))
    assert rows["otherns-vllm"].allowed and rows["vllm-http"].allowed
    # their API-server rules select pods; GKE's control plane is not a pod
    assert [r.key for r in n.breaks_required_paths(pols, DEFAULT)] == ["epp-api"]


# --- semantics -----------------------------------------------------------------------------------


def test_no_policy_means_everything_is_allowed():
    d = n.can_reach([], CLIENT, WEB, 8080)
    assert d.allowed and not d.ingress.isolated and not d.egress.isolated and d.policies == ()


def test_namespace_and_pod_selector_in_one_peer_is_and_in_two_peers_is_or():
    same_peer = np("p", "app", {"podSelector": {}, "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "opendatahub"}},
         "podSelector": {"matchLabels": {"gateway.networking.k8s.io/gateway-name": "inference-gateway"}}}]}]})
    two_peers = np("p", "app", {"podSelector": {}, "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "opendatahub"}}},
        {"podSelector": {"matchLabels": {"gateway.networking.k8s.io/gateway-name": "inference-gateway"}}}]}]})
    assert n.can_reach([same_peer], GATEWAY, WEB, 80).allowed
    assert not n.can_reach([same_peer], OTHER_ODH, WEB, 80).allowed
    assert not n.can_reach([same_peer], FAKE_GW, WEB, 80).allowed
    assert n.can_reach([two_peers], OTHER_ODH, WEB, 80).allowed  # any pod of opendatahub
    # a podSelector-only peer means pods of the policy's own namespace, not FAKE_GW's
    assert not n.can_reach([two_peers], FAKE_GW, WEB, 80).allowed


def test_policy_types_default_from_the_rules():
    ingress_only = np("i", "app", {"podSelector": {}, "ingress": [{}]})
    with_egress = np("e", "app", {"podSelector": {}, "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]})
    assert n.can_reach([ingress_only], CLIENT, INTERNET, 443).allowed  # not egress-isolated
    d = n.can_reach([with_egress], CLIENT, INTERNET, 443)
    assert not d.allowed and d.egress.isolated and d.policies == ("e",)
    assert n.can_reach([with_egress], CLIENT, INTERNET, 53, "UDP").allowed
    # with_egress has no ingress rules but is an Ingress policy too: ingress to its pods is closed
    assert not n.can_reach([with_egress], n.pod("x", "other", {}), WEB, 8080).allowed


def test_both_egress_of_the_source_and_ingress_of_the_destination_are_needed():
    open_ingress = np("web-in", "app", {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{}]})
    no_egress = np("client-out", "app", {"podSelector": {"matchLabels": {"app": "client"}},
                                         "policyTypes": ["Egress"]})
    d = n.can_reach([open_ingress, no_egress], CLIENT, WEB, 8080)
    assert not d.allowed and d.ingress.allowed and not d.egress.allowed
    assert d.policies == ("client-out",)
    assert "egress: denied (isolated by client-out)" in d.reason()


def test_ports_named_protocol_and_ranges():
    def only(ports):
        return [np("p", "app", {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"ports": ports}]})]

    assert n.can_reach(only([{"port": "http"}]), CLIENT, WEB, 8080).allowed
    assert not n.can_reach(only([{"port": "http"}]), CLIENT, WEB, 8081).allowed
    assert not n.can_reach(only([{"port": "http"}]), WEB, CLIENT, 8080).allowed  # CLIENT has no such port
    assert not n.can_reach(only([{"port": 53, "protocol": "UDP"}]), CLIENT, WEB, 53, "TCP").allowed
    assert n.can_reach(only([{"port": 53, "protocol": "UDP"}]), CLIENT, WEB, 53, "UDP").allowed
    assert n.can_reach(only([{"port": 9000, "endPort": 9100}]), CLIENT, WEB, 9050).allowed
    assert not n.can_reach(only([{"port": 9000, "endPort": 9100}]), CLIENT, WEB, 9101).allowed
    assert n.can_reach(only([{"protocol": "TCP"}]), CLIENT, WEB, 1234).allowed  # no port: all TCP ports
    assert n.can_reach(only([]), CLIENT, WEB, 1234, "UDP").allowed  # empty list: all ports


def test_ip_blocks_with_except_and_pods():
    pols = [np("out", "app", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]}]})]
    assert n.can_reach(pols, CLIENT, INTERNET, 443).allowed
    assert not n.can_reach(pols, CLIENT, n.external("private", "10.1.2.3"), 443).allowed
    wide = [np("out", "app", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]})]
    assert not n.can_reach(wide, CLIENT, WEB, 8080).allowed  # Dataplane V2: CIDR rules skip pods
    assert n.can_reach(wide, CLIENT, WEB, 8080, ipblock_matches_pods=True).allowed


def test_label_selector_expressions():
    labels = {"tier": "api", "env": "prod"}
    sel = n.selector_matches
    assert sel({}, labels) and sel(None, labels)
    assert sel({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["api", "web"]}]}, labels)
    assert not sel({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["api"]}]}, labels)
    assert sel({"matchExpressions": [{"key": "env", "operator": "Exists"}]}, labels)
    assert not sel({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, labels)
    assert sel({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, labels)
    assert not sel({"matchLabels": {"tier": "api", "env": "dev"}}, labels)


def test_policies_select_only_their_own_namespace():
    elsewhere = np("deny", "other", {"podSelector": {}, "policyTypes": ["Ingress"]})
    assert n.can_reach([elsewhere], CLIENT, WEB, 8080).allowed


def test_external_sources_need_an_ip_block_rule():
    pols = [np("p", "app", {"podSelector": {}, "ingress": [
        {"from": [{"namespaceSelector": {}}]},
        {"from": [{"ipBlock": {"cidr": "203.0.113.0/24"}}], "ports": [{"port": 8080}]}]})]
    assert not n.can_reach(pols, INTERNET, WEB, 8080).allowed
    assert n.can_reach(pols, n.external("lb", "203.0.113.7"), WEB, 8080).allowed
    assert n.can_reach(pols, GATEWAY, WEB, 1).allowed  # namespaceSelector {}: every pod


def test_kubernetes_client_models_are_accepted():
    from kubernetes import client as k

    pol = k.V1NetworkPolicy(
        api_version="networking.k8s.io/v1", kind="NetworkPolicy",
        metadata=k.V1ObjectMeta(name="only-gw", namespace="app"),
        spec=k.V1NetworkPolicySpec(
            pod_selector=k.V1LabelSelector(match_labels={"app": "web"}), policy_types=["Ingress"],
            ingress=[k.V1NetworkPolicyIngressRule(
                _from=[k.V1NetworkPolicyPeer(
                    namespace_selector=k.V1LabelSelector(match_labels={"kubernetes.io/metadata.name": "opendatahub"}),
                    pod_selector=k.V1LabelSelector(match_labels={"gateway.networking.k8s.io/gateway-name": "inference-gateway"}))],
                ports=[k.V1NetworkPolicyPort(port=8080, protocol="TCP")])]))
    assert n.can_reach([pol], GATEWAY, WEB, 8080).allowed
    assert not n.can_reach([pol], OTHER_ODH, WEB, 8080).allowed


def test_format_table_lists_every_probe():
    rows = n.reachability_table(m.networkpolicies(DEFAULT), DEFAULT)
    text = n.format_table(rows)
    assert len(text.splitlines()) == len(rows) + 2
    assert "gateway -> vLLM:8000" in text and "allow-gateway-to-vllm" in text
