"""The receiving node's own path, from recorded evidence (no root): each fixture under
tests/fixtures/evidence/ is the run data (facts + typed PairEvidence) of a real 4-node lab run
(`python -m vxlan_conformance.lab up --instance 2 --fault SPEC`, then the datapath suite). The diagnosis
must blame the direction in which the packets die, quote the hop, and pass the other way with a note."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vxlan_conformance import catalog
from vxlan_conformance.checks.datapath import diagnose
from vxlan_conformance.model.evidence import PairEvidence, RuleHits
from vxlan_conformance.model.rundata import RunData

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "evidence"
NODES = ["node1", "node2", "node3", "node4"]


def into(node: str) -> set[str]:
    return {f"{peer}->{node}" for peer in NODES if peer != node}


def out_of(node: str) -> set[str]:
    return {f"{node}->{peer}" for peer in NODES if peer != node}


def verdicts(name: str) -> dict[str, object]:
    run = RunData.load(FIXTURES / f"{name}.json")
    return {f"{a}->{b}": diagnose(run, a, b) for a, b in run.pairs()}


# fixture -> (failing pairs, code, text every failure quotes, text of the reverse direction's note)
FIREWALLS = {
    "firewall-iptables-node2": "-A INPUT -p udp -m udp --dport 8472 -j DROP",
    "firewall-nftables-node2": "nft inet filter chain input: counter drop",
    "firewall-firewalld-node2": "-A INPUT -j REJECT --reject-with icmp-host-prohibited",
}


@pytest.mark.parametrize("name", sorted(FIREWALLS))
def test_host_firewall_is_blamed_on_the_direction_into_the_node(name):
    results = verdicts(name)
    failed = {pair for pair, r in results.items() if not r.passed}
    assert failed == into("node2")
    for pair in into("node2"):
        result = results[pair]
        assert result.codes == ("HOST_FIREWALL_DROP",)
        assert FIREWALLS[name] in result.message
        assert "reach node2's network interface intact" in result.message
        assert "firewall-cmd --permanent" in result.remediation()
        assert "nft insert rule inet filter input udp dport 8472" in result.remediation()
    for pair in out_of("node2"):  # node2's requests arrive; the answers die at node2's own firewall
        result = results[pair]
        assert result.passed and result.note and "answers are lost" in result.note
        assert FIREWALLS[name] in result.note


def test_firewalld_is_named_with_its_zone_and_its_reject_reaches_the_sender():
    results = verdicts("firewall-firewalld-node2")
    message = results["node1->node2"].message
    assert "firewalld ruleset (zone public)" in message
    assert "node1 got" in message and "ICMP host prohibited from node2 for udp/8472" in message


def test_a_firewall_that_allows_the_vxlan_port_raises_no_alarm():
    results = verdicts("firewall-firewalld-allow-node2")
    assert all(r.passed and not r.note for r in results.values()), {p: r.message for p, r in results.items()}


def test_port_mismatch_fails_both_ways_of_every_pair_of_the_node_with_the_ports_named():
    results = verdicts("vxlan-port-8475-node2")
    failed = {pair for pair, r in results.items() if not r.passed}
    assert failed == into("node2") | out_of("node2")
    for pair in into("node2"):
        assert results[pair].codes == ("VXLAN_PORT_MISMATCH",)
        assert "to udp/8472, but node2's flannel.1 listens on udp/8475" in results[pair].message
        assert "UdpNoPorts +" in results[pair].message
    for pair in out_of("node2"):
        assert results[pair].codes == ("VXLAN_PORT_MISMATCH",)
        assert "node2's flannel.1 sends its VXLAN packets" in results[pair].message
        assert "to udp/8475" in results[pair].message and "ICMP port unreachable" in results[pair].message


def test_small_underlay_mtu_fails_only_the_direction_into_the_node():
    results = verdicts("underlay-mtu-1400-node4")
    failed = {pair for pair, r in results.items() if not r.passed}
    assert failed == into("node4")
    for pair in into("node4"):
        assert results[pair].codes == ("UNDERLAY_MTU_TOO_SMALL",)
        assert "node4's underlay interface eth0 has MTU 1400" in results[pair].message
        assert "on node4\n`ip link set eth0 mtu 1500`" in results[pair].remediation()


def test_without_the_receive_path_evidence_the_firewall_is_not_guessed():
    """Evidence of an older agent (no receive_path): the suite falls back to what it knew, no new code."""
    run = RunData.load(FIXTURES / "firewall-iptables-node2.json")
    for evidence in run.mesh.values():
        evidence.receive_path.available = False
    codes = {code for a, b in run.pairs() for code in diagnose(run, a, b).codes}
    assert "HOST_FIREWALL_DROP" not in codes


def test_recorded_evidence_round_trips_and_keeps_only_probe_frames():
    data = json.loads((FIXTURES / "firewall-nftables-node2.json").read_text())
    for pair, raw in data["mesh"].items():
        evidence = PairEvidence.from_dict(raw)
        assert evidence.to_dict() == PairEvidence.from_dict(evidence.to_dict()).to_dict()
        for frame in evidence.pcap_frames:  # every kept frame is a probe: the VXLAN ICMP tag or the echo magic
            raw_bytes = bytes.fromhex(frame)
            assert b"vxlan-conformance" in raw_bytes or b"VXC1" in raw_bytes, pair


@pytest.mark.parametrize(("rule", "verdict", "input_path"), [
    ("iptables filter INPUT -A INPUT -p udp -m udp --dport 8472 -j DROP", "drop", True),
    ("iptables filter INPUT -A INPUT -j REJECT --reject-with icmp-host-prohibited", "reject", True),
    ("iptables filter INPUT :policy DROP", "drop", True),
    ("iptables filter FORWARD -A FORWARD -j REJECT", "reject", False),
    ("iptables filter INPUT -A INPUT -j INPUT_ZONES", None, True),
    ("nft inet filter input counter drop", "drop", True),
    ("nft inet filter forward counter drop", "drop", False),
    ("nft inet filter input tcp dport 22 counter accept", None, True),
])
def test_rule_verdicts(rule, verdict, input_path):
    hit = RuleHits(rule, 3)
    assert hit.verdict == verdict and hit.input_path == input_path


def test_rp_filter_drops_are_named_when_no_rule_dropped():
    """The iptables run's evidence with the firewall's hits taken away and rp_filter's drop counter risen
    instead (as TcpExt IPReversePathFilter does when strict rp_filter drops the decapsulated packets)."""
    run = RunData.load(FIXTURES / "firewall-iptables-node2.json")
    for evidence in run.mesh.values():
        if evidence.receiver == "node2":
            evidence.receive_path.netfilter_delta = []
            evidence.receive_path.rp_filter_drops_delta = 54
            evidence.receive_path.rp_filter = {"all": 1, "default": 1, "flannel.1": 1, "eth0": 0}
    results = {f"{a}->{b}": diagnose(run, a, b) for a, b in run.pairs()}
    assert {p for p, r in results.items() if not r.passed} == into("node2")
    assert all(results[p].codes == ("RP_FILTER_DROP",) for p in into("node2"))
    assert "IPReversePathFilter +54" in results["node1->node2"].message
    assert "answers are lost" in results["node2->node1"].note


def test_the_evidence_shows_the_receivers_counters_and_the_icmp_errors():
    results = verdicts("firewall-firewalld-node2")
    evidence = results["node1->node2"].evidence
    assert "at node2 during the probes: Udp" in evidence and "rx_packets +0" in evidence
    assert "node2's netfilter rules that dropped or rejected packets" in evidence
    assert "ICMP errors node1 got from node2: " in evidence and "host prohibited/8472 x" in evidence


def test_rp_filter_fault_is_blamed_on_the_direction_into_the_node_with_the_route_back():
    """rp-filter@node2: eth1, /32 routes to the peers by it, strict rp_filter on all and eth0 (a real drop)."""
    results = verdicts("rp-filter-node2")
    failed = {(pair, r.codes) for pair, r in results.items() if not r.passed}
    assert failed == {(pair, ("RP_FILTER_DROP",)) for pair in into("node2")}
    for pair in into("node2"):
        sender = pair.split("->")[0]
        address = f"198.18.64.{sender[4:]}"
        message = results[pair].message
        assert "node2's reverse path filter drops them (IPReversePathFilter +" in message
        assert "rp_filter all=1" in message and "eth0=1" in message
        assert (f"node2's route back to {sender}'s {address} leaves by eth1, not by eth0 where they arrive: "
                f"`{address} dev eth1 src 198.18.64.2`") in message
        fix = results[pair].remediation()
        assert "`sysctl net.ipv4.conf.all.rp_filter net.ipv4.conf.eth0.rp_filter" in fix
        assert "`nstat -az TcpExtIPReversePathFilter`" in fix
        assert f"`ip route get {address}` must leave by `dev eth0`" in fix
        assert f"`ip route get 198.18.64.2 from {address} iif eth0`" in fix
    noted = {pair for pair, r in results.items() if r.passed and r.note}
    assert noted == out_of("node2")
    for pair in out_of("node2"):
        peer = pair.split("->")[1]
        assert results[pair].note.startswith(f"{peer} received node2's probes intact; the answers are lost on "
                                             f"{peer}->node2: ")
        assert "reverse path filter drops them" in results[pair].note


def test_a_firewall_open_only_for_vxlan_blames_the_echo_probe_where_it_died_not_vxlan():
    """firewall=firewalld-vxlan-only@node3: VXLAN passes node3's zone, the UDP echo meets its REJECT."""
    results = verdicts("firewall-firewalld-vxlan-only-node3")
    failed = {(pair, r.codes) for pair, r in results.items() if not r.passed}
    assert failed == {(pair, ("PROBE_PORT_BLOCKED",)) for pair in into("node3")}
    assert not any(r.note for r in results.values())
    for pair in into("node3"):
        sender = pair.split("->")[0]
        message = results[pair].message
        assert message.startswith(f"VXLAN from {sender} to node3 works, but UDP 18472 (the echo probe) does not: "
                                  f"{sender}'s echo datagrams reach node3's network interface intact (9 captured), "
                                  "then node3's own firewall drops them: ")
        assert "`iptables -t filter -A INPUT -j REJECT --reject-with icmp-host-prohibited`" in message
        assert "a firewalld ruleset (zone public)" in message
        assert f"{sender} got 6 ICMP host prohibited from node3 for udp/18472" in message
        assert "firewall-cmd --zone=<zone> --add-port=18472/udp" in results[pair].remediation()


def test_an_echo_probe_that_never_reaches_the_receiver_is_blamed_on_the_way():
    """The same evidence with node3's capture showing no echo datagram: it died before node3's NIC."""
    run = RunData.load(FIXTURES / "firewall-firewalld-vxlan-only-node3.json")
    for evidence in run.mesh.values():
        evidence.captured.by_dport.pop(18472, None)
    result = diagnose(run, "node1", "node3")
    assert result.codes == ("PROBE_PORT_BLOCKED",)
    assert result.message.endswith(": node1's echo datagrams never reach node3's network interface (a firewall or "
                                   "security group on the way)")


def test_the_underlay_mtu_code_says_why_the_reverse_direction_may_pass():
    what = catalog.info("UNDERLAY_MTU_TOO_SMALL").what
    assert "Only the direction into {peer} fails" in what and "{peer}->{node} may pass" in what


def test_rp_filter_drops_at_a_receiver_without_a_route_back_name_its_route_not_rp_filter():
    """A Calico eBPF lab (felix sets rp_filter 2 on vxlan.calico, bpf_ep_mgr.go) with
    missing-route@node3->node1: node3 has no route back to node1's pods, so its loose rp_filter drops node1's
    decapsulated probes. The fault is node3's route: named once, on node3->node1; node1->node3 passes with
    a note that says so (it said RP_FILTER_DROP, whose fix - loose mode - was already in place)."""
    run = RunData.load(FIXTURES / "calico-bpf-missing-route-node3-node1.json")
    assert run.mesh["node1->node3"].receive_path.rp_filter_drops_delta > 0
    assert run.mesh["node1->node3"].receive_path.rp_filter["vxlan.calico"] == 2
    results = {f"{a}->{b}": diagnose(run, a, b) for a, b in run.pairs()}
    assert {p: r.codes for p, r in results.items() if not r.passed} == {"node3->node1": ("ROUTE_MISSING",)}
    note = results["node1->node3"].note
    assert "answers are lost on node3->node1" in note and "node3 has no 100.64.1.0/26 via 100.64.1.0" in note
