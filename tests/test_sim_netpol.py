"""The emulator's own NetworkPolicy evaluator (rhaii_tui/sim/netpol.py), on the examples of the
Kubernetes documentation's "Network Policies" page. Pure unit tests: no emulator."""

from __future__ import annotations

import pytest

from rhaii_tui.sim import netpol as np


def policy(name: str, spec: dict, ns: str = "default") -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


# the documentation's test-network-policy
TEST_NETWORK_POLICY = policy("test-network-policy", {
    "podSelector": {"matchLabels": {"role": "db"}},
    "policyTypes": ["Ingress", "Egress"],
    "ingress": [{
        "from": [
            {"ipBlock": {"cidr": "172.17.0.0/16", "except": ["172.17.1.0/24"]}},
            {"namespaceSelector": {"matchLabels": {"project": "myproject"}}},
            {"podSelector": {"matchLabels": {"role": "frontend"}}},
        ],
        "ports": [{"protocol": "TCP", "port": 6379}],
    }],
    "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/24"}}], "ports": [{"protocol": "TCP", "port": 5978}]}],
})

DB = np.make_pod("db-0", "default", {"role": "db"}, "10.8.0.5")
FRONTEND = np.make_pod("web-0", "default", {"role": "frontend"}, "10.8.0.6")
OTHER = np.make_pod("other-0", "default", {"role": "other"}, "10.8.0.7")
MYPROJECT_POD = np.make_pod("x", "team-a", {"app": "x"}, "10.8.1.2", {"project": "myproject"})
ELSEWHERE_POD = np.make_pod("y", "team-b", {"role": "frontend"}, "10.8.2.2", {"project": "other"})


def allowed(pols, src, dst, port, proto="TCP", **kw) -> bool:
    return np.evaluate(pols, src, dst, port, proto, **kw).allowed


class TestTheDocumentationsExample:
    def test_frontend_pods_of_the_namespace_reach_the_db_on_6379_only(self):
        assert allowed([TEST_NETWORK_POLICY], FRONTEND, DB, 6379)
        assert not allowed([TEST_NETWORK_POLICY], FRONTEND, DB, 6380)
        assert not allowed([TEST_NETWORK_POLICY], FRONTEND, DB, 6379, "UDP")

    def test_a_pod_without_the_label_is_denied(self):
        v = np.evaluate([TEST_NETWORK_POLICY], OTHER, DB, 6379)
        assert not v.allowed and v.ingress_isolated and not v.ingress_allowed
        assert v.ingress_by == ("test-network-policy",)
        assert "denied" in v.why()

    def test_every_pod_of_a_namespace_labelled_project_myproject(self):
        assert allowed([TEST_NETWORK_POLICY], MYPROJECT_POD, DB, 6379)

    def test_pod_selector_alone_means_the_policys_namespace(self):
        assert not allowed([TEST_NETWORK_POLICY], ELSEWHERE_POD, DB, 6379)

    def test_ip_block_with_except(self):
        assert allowed([TEST_NETWORK_POLICY], np.address("172.17.0.9"), DB, 6379)
        assert allowed([TEST_NETWORK_POLICY], np.address("172.17.200.1"), DB, 6379)
        assert not allowed([TEST_NETWORK_POLICY], np.address("172.17.1.9"), DB, 6379)
        assert not allowed([TEST_NETWORK_POLICY], np.address("172.18.0.1"), DB, 6379)

    def test_egress_to_the_cidr_on_5978_only(self):
        assert allowed([TEST_NETWORK_POLICY], DB, np.address("10.0.0.77"), 5978)
        assert not allowed([TEST_NETWORK_POLICY], DB, np.address("10.0.0.77"), 5979)
        assert not allowed([TEST_NETWORK_POLICY], DB, np.address("10.0.1.1"), 5978)

    def test_pods_the_policy_does_not_select_are_not_isolated(self):
        v = np.evaluate([TEST_NETWORK_POLICY], OTHER, FRONTEND, 12345)
        assert v.allowed and not v.egress_isolated and not v.ingress_isolated

    def test_a_policy_of_another_namespace_does_not_apply(self):
        moved = policy("p", TEST_NETWORK_POLICY["spec"], ns="elsewhere")
        assert allowed([moved], OTHER, DB, 6379)

    def test_a_connection_needs_the_egress_of_the_source_and_the_ingress_of_the_destination(self):
        # the db may only send to 10.0.0.0/24:5978: reaching the frontend is denied on the db's side
        v = np.evaluate([TEST_NETWORK_POLICY], DB, FRONTEND, 80)
        assert not v.allowed and not v.egress_allowed and v.ingress_allowed


class TestAndVersusOr:
    AND = policy("and", {"podSelector": {"matchLabels": {"role": "db"}}, "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"user": "alice"}}, "podSelector": {"matchLabels": {"role": "client"}}},
    ]}]})
    OR = policy("or", {"podSelector": {"matchLabels": {"role": "db"}}, "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"user": "alice"}}},
        {"podSelector": {"matchLabels": {"role": "client"}}},
    ]}]})
    ALICE_CLIENT = np.make_pod("c", "alice-ns", {"role": "client"}, "10.1.0.1", {"user": "alice"})
    ALICE_OTHER = np.make_pod("o", "alice-ns", {"role": "other"}, "10.1.0.2", {"user": "alice"})
    LOCAL_CLIENT = np.make_pod("l", "default", {"role": "client"}, "10.1.0.3")

    def test_both_selectors_in_one_peer_select_the_clients_of_alices_namespaces(self):
        assert allowed([self.AND], self.ALICE_CLIENT, DB, 5432)
        assert not allowed([self.AND], self.ALICE_OTHER, DB, 5432)
        assert not allowed([self.AND], self.LOCAL_CLIENT, DB, 5432)

    def test_two_peers_select_any_pod_of_alices_namespaces_or_local_clients(self):
        assert allowed([self.OR], self.ALICE_CLIENT, DB, 5432)
        assert allowed([self.OR], self.ALICE_OTHER, DB, 5432)
        assert allowed([self.OR], self.LOCAL_CLIENT, DB, 5432)
        assert not allowed([self.OR], OTHER, DB, 5432)

    def test_namespace_by_its_automatic_name_label(self):
        pol = policy("by-name", {"podSelector": {}, "ingress": [{"from": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "alice-ns"}}}]}]})
        assert allowed([pol], self.ALICE_OTHER, DB, 1)
        assert not allowed([pol], OTHER, DB, 1)


class TestDefaults:
    DENY_INGRESS = policy("default-deny-ingress", {"podSelector": {}, "policyTypes": ["Ingress"]})
    ALLOW_ALL_INGRESS = policy("allow-all-ingress", {"podSelector": {}, "ingress": [{}],
                                                     "policyTypes": ["Ingress"]})
    DENY_EGRESS = policy("default-deny-egress", {"podSelector": {}, "policyTypes": ["Egress"]})
    ALLOW_ALL_EGRESS = policy("allow-all-egress", {"podSelector": {}, "egress": [{}], "policyTypes": ["Egress"]})
    DENY_ALL = policy("default-deny-all", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})

    def test_default_deny_ingress_isolates_every_pod_of_the_namespace_for_ingress_only(self):
        assert not allowed([self.DENY_INGRESS], FRONTEND, DB, 80)
        assert not allowed([self.DENY_INGRESS], np.address("8.8.8.8"), DB, 80)
        assert allowed([self.DENY_INGRESS], DB, np.address("8.8.8.8"), 443)
        # another namespace is not affected
        assert allowed([self.DENY_INGRESS], FRONTEND, MYPROJECT_POD, 80)

    def test_allow_all_ingress_wins_over_default_deny(self):
        assert allowed([self.DENY_INGRESS, self.ALLOW_ALL_INGRESS], FRONTEND, DB, 80)

    def test_default_deny_egress_and_allow_all_egress(self):
        assert not allowed([self.DENY_EGRESS], DB, np.address("8.8.8.8"), 53, "UDP")
        assert allowed([self.DENY_EGRESS], np.address("8.8.8.8"), DB, 80)
        assert allowed([self.DENY_EGRESS, self.ALLOW_ALL_EGRESS], DB, np.address("8.8.8.8"), 53, "UDP")

    def test_default_deny_all(self):
        assert not allowed([self.DENY_ALL], FRONTEND, DB, 80)
        assert not allowed([self.DENY_ALL], DB, np.address("1.1.1.1"), 443)

    def test_policy_types_default_to_ingress_plus_egress_when_there_are_egress_rules(self):
        ingress_only = policy("i", {"podSelector": {}})
        assert not allowed([ingress_only], FRONTEND, DB, 80)
        assert allowed([ingress_only], DB, np.address("1.1.1.1"), 443)
        with_egress = policy("e", {"podSelector": {}, "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]})
        assert not allowed([with_egress], DB, np.address("1.1.1.1"), 443)  # egress isolated too
        assert not allowed([with_egress], np.address("1.1.1.1"), DB, 80)  # and ingress
        assert allowed([with_egress], DB, np.address("1.1.1.1"), 53, "UDP")

    def test_the_node_of_the_pod_is_always_admitted(self):
        assert allowed([self.DENY_ALL], np.node("10.164.0.2"), DB, 8000)

    def test_policies_are_additive(self):
        only_frontend = policy("f", {"podSelector": {"matchLabels": {"role": "db"}}, "ingress": [
            {"from": [{"podSelector": {"matchLabels": {"role": "frontend"}}}]}]})
        only_other = policy("o", {"podSelector": {"matchLabels": {"role": "db"}}, "ingress": [
            {"from": [{"podSelector": {"matchLabels": {"role": "other"}}}]}]})
        v = np.evaluate([only_frontend, only_other], OTHER, DB, 1)
        assert v.allowed and v.ingress_by == ("o",)


class TestPorts:
    END_PORT = policy("multi-port-egress", {
        "podSelector": {"matchLabels": {"role": "db"}}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/24"}}],
                    "ports": [{"protocol": "TCP", "port": 32000, "endPort": 32768}]}]})

    @pytest.mark.parametrize("port,ok", [(31999, False), (32000, True), (32500, True), (32768, True),
                                         (32769, False)])
    def test_end_port_is_an_inclusive_range(self, port, ok):
        assert allowed([self.END_PORT], DB, np.address("10.0.0.1"), port) is ok

    def test_named_port_of_the_destination_pod(self):
        vllm = np.make_pod("v", "default", {"app": "vllm"}, "10.2.0.1", ports={"https": (8000, "TCP")})
        pol = policy("named", {"podSelector": {"matchLabels": {"app": "vllm"}}, "ingress": [
            {"ports": [{"port": "https"}]}]})
        assert allowed([pol], FRONTEND, vllm, 8000)
        assert not allowed([pol], FRONTEND, vllm, 8001)
        nameless = np.make_pod("v2", "default", {"app": "vllm"}, "10.2.0.2")
        assert not allowed([pol], FRONTEND, nameless, 8000)

    def test_port_without_number_is_every_port_of_the_protocol(self):
        pol = policy("udp", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
            {"ports": [{"protocol": "UDP"}]}]})
        assert allowed([pol], DB, np.address("1.1.1.1"), 53, "UDP")
        assert not allowed([pol], DB, np.address("1.1.1.1"), 53, "TCP")

    def test_protocol_defaults_to_tcp(self):
        pol = policy("tcp", {"podSelector": {}, "ingress": [{"ports": [{"port": 53}]}]})
        assert allowed([pol], FRONTEND, DB, 53, "TCP")
        assert not allowed([pol], FRONTEND, DB, 53, "UDP")


class TestSelectorsAndAddresses:
    @pytest.mark.parametrize("expr,labels,ok", [
        ({"key": "env", "operator": "In", "values": ["prod", "staging"]}, {"env": "prod"}, True),
        ({"key": "env", "operator": "In", "values": ["prod"]}, {}, False),
        ({"key": "env", "operator": "NotIn", "values": ["prod"]}, {"env": "dev"}, True),
        ({"key": "env", "operator": "NotIn", "values": ["prod"]}, {}, True),
        ({"key": "env", "operator": "NotIn", "values": ["prod"]}, {"env": "prod"}, False),
        ({"key": "env", "operator": "Exists"}, {"env": ""}, True),
        ({"key": "env", "operator": "Exists"}, {}, False),
        ({"key": "env", "operator": "DoesNotExist"}, {}, True),
        ({"key": "env", "operator": "DoesNotExist"}, {"env": "x"}, False),
    ])
    def test_match_expressions(self, expr, labels, ok):
        assert np.selects({"matchExpressions": [expr]}, labels) is ok

    def test_match_labels_and_expressions_are_anded(self):
        sel = {"matchLabels": {"a": "1"}, "matchExpressions": [{"key": "b", "operator": "Exists"}]}
        assert np.selects(sel, {"a": "1", "b": "x"})
        assert not np.selects(sel, {"a": "1"})
        assert not np.selects(sel, {"b": "x"})

    def test_ip_block_does_not_match_pods_unless_asked(self):
        pol = policy("cidr", {"podSelector": {"matchLabels": {"role": "db"}}, "ingress": [
            {"from": [{"ipBlock": {"cidr": "10.8.0.0/16"}}]}]})
        assert not allowed([pol], FRONTEND, DB, 1)
        assert allowed([pol], FRONTEND, DB, 1, cidr_matches_pods=True)

    def test_selectors_never_match_addresses(self):
        pol = policy("sel", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}]}]})
        assert allowed([pol], FRONTEND, DB, 1)
        assert not allowed([pol], np.address("10.8.0.6"), DB, 1)

    def test_pod_party_from_objects(self):
        pod = {"metadata": {"name": "p", "namespace": "ns1", "labels": {"a": "b"}},
               "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 80}]}]},
               "status": {"podIP": "10.9.0.1"}}
        ns = {"metadata": {"name": "ns1", "labels": {"team": "x"}}}
        party = np.pod_party(pod, ns)
        assert party.ip == "10.9.0.1" and party.ports == {"http": (80, "TCP")}
        assert party.namespace_labels == {"team": "x", "kubernetes.io/metadata.name": "ns1"}


def test_the_emulator_does_not_use_the_wizards_evaluator():
    import ast
    import pathlib

    import rhaii_tui.sim as sim_pkg

    root = pathlib.Path(sim_pkg.__file__).parent
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                names = {a.name for a in node.names}
                assert not ("cloud" in mod.split(".") and ("netpol" in mod or "netpol" in names)), path


# --- the two evaluators agree (a mistake in one is caught by the other) --------------------------


def _party(ep):
    from rhaii_tui.cloud import netpol as calc

    if ep.kind == calc.POD:
        return np.make_pod(ep.name, ep.namespace, ep.labels, ep.ip, ep.namespace_labels, ep.named_ports)
    if ep.kind == calc.NODE:
        return np.node(ep.ip)
    return np.address(ep.ip)


@pytest.mark.parametrize("variant", ["rendered", "pinned-api", "deny-all", "gateway-egress-denied"])
def test_the_wizards_calculator_and_the_emulator_agree_on_every_standard_probe(variant):
    from rhaii_tui import manifests as m
    from rhaii_tui.cloud import netpol as calc
    from rhaii_tui.config import GATEWAY_NAMESPACE, DeployConfig

    cfg = DeployConfig(project="p")
    pols = m.networkpolicies(cfg, api_server_cidrs=["34.90.10.20/32"] if variant == "pinned-api" else [])
    if variant == "deny-all":
        pols.append(policy("deny-all", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, cfg.namespace))
    if variant == "gateway-egress-denied":
        pols.append(policy("gw", {"podSelector": {"matchLabels": m.gateway_pod_labels()}, "policyTypes": ["Egress"]},
                           GATEWAY_NAMESPACE))
    eps = calc.standard_endpoints(cfg)
    rows = calc.reachability_table(pols, cfg)
    assert rows
    for probe, row in zip(calc.standard_probes(cfg), rows):
        ours = np.evaluate(pols, _party(eps[probe.src]), _party(eps[probe.dst]), probe.port, probe.protocol)
        assert ours.allowed == row.allowed, (variant, row.label, ours.why(), row.reason)
