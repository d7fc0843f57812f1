"""Issue 15 end to end: where a pair's packets die on the receiving node's own path (its host firewall in
three flavours, a firewall open for VXLAN only, a VXLAN port that differs, an underlay MTU too small, strict
rp_filter with an asymmetric route), run as a user runs the suite
(pytest -n auto against the lab inventory, a subprocess) and read from summary.json: exactly the pairs
into (or out of) the faulty node fail, in the direction the packets die, with the new code and the rule
quoted; the reverse direction passes with a note; an allowing firewall and pods' traffic raise nothing;
pods' packets never reach a file the run writes, and the attached pcapng carries the receiver's verdicts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.lab.lab_fixtures import lab_4  # noqa: F401 - the module's lab (instance VXLAB_TEST_INSTANCE)
from tests.lab.suite_runner import run_suite

pytestmark = pytest.mark.root

NODES = ["node1", "node2", "node3", "node4"]
MARKER = b"POD-SECRET-c0ffee-7f3a"  # what a customer's pod sends: must never reach a report


def into(node: str) -> set[str]:
    return {f"{peer}->{node}" for peer in NODES if peer != node}


def out_of(node: str) -> set[str]:
    return {f"{node}->{peer}" for peer in NODES if peer != node}


# fault -> (failing pairs, code, what every failure quotes, pairs that pass with a note quoting the same)
SCENARIOS = {
    "iptables": (["firewall=iptables@node2"], into("node2"), "HOST_FIREWALL_DROP",
                 ("`iptables -t filter -A INPUT -p udp -m udp --dport 8472 -j DROP`",), out_of("node2")),
    "nftables": (["firewall=nftables@node2"], into("node2"), "HOST_FIREWALL_DROP",
                 ("`nft inet filter chain input: counter drop`",), out_of("node2")),
    "firewalld": (["firewall=firewalld@node2"], into("node2"), "HOST_FIREWALL_DROP",
                  ("`iptables -t filter -A INPUT -j REJECT --reject-with icmp-host-prohibited`",), out_of("node2")),
    # VXLAN passes node3's zone; the echo probe meets its REJECT: the probe port is named, not VXLAN
    "firewalld-vxlan-only": (["firewall=firewalld-vxlan-only@node3"], into("node3"), "PROBE_PORT_BLOCKED",
                             ("echo datagrams reach node3's network interface intact",
                              "then node3's own firewall drops them: "
                              "`iptables -t filter -A INPUT -j REJECT --reject-with icmp-host-prohibited`",
                              "ICMP host prohibited from node3 for udp/18472"), set()),
    "vxlan-port": (["vxlan-port=8475@node2"], into("node2") | out_of("node2"), "VXLAN_PORT_MISMATCH",
                   ("listens on udp/",), set()),
    "underlay-mtu": (["underlay-mtu=1400@node4"], into("node4"), "UNDERLAY_MTU_TOO_SMALL",
                     ("node4's underlay interface eth0 has MTU 1400",), set()),
    # node2's replies to its peers leave by eth1, theirs arrive on eth0: strict rp_filter drops them there
    "rp-filter": (["rp-filter@node2"], into("node2"), "RP_FILTER_DROP",
                  ("node2's reverse path filter drops them (IPReversePathFilter +",
                   "leaves by eth1, not by eth0 where they arrive"), out_of("node2")),
}


@contextmanager
def faults(lab, specs: list[str]) -> Iterator[None]:
    lab.fault(specs)
    try:
        yield
    finally:
        lab.clear_faults()


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_the_direction_where_packets_die_fails_with_the_hop_named(lab_4, tmp_path, scenario):  # noqa: F811
    lab, state = lab_4
    specs, failing, code, quoted, noted = SCENARIOS[scenario]
    with faults(lab, specs):
        result = run_suite(state.inventory_path, tmp_path / "reports", "suites/test_datapath.py")
    assert result.summary is not None, result.output[-3000:]
    results = result.summary["results"]
    failed = {(r["check"], r["subject"], c) for r in results if r["status"] in ("failed", "error") for c in r["codes"]}
    assert failed == {("datapath", pair, code) for pair in failing}, result.output[-3000:]
    by_subject = {r["subject"]: r for r in results}
    for pair in failing:
        assert all(q in by_subject[pair]["message"] for q in quoted), by_subject[pair]["message"]
    passed_with_note = {r["subject"] for r in results if r["status"] == "passed" and r["message"]}
    assert passed_with_note == noted, {p: by_subject[p]["message"] for p in passed_with_note}
    for pair in noted:
        assert "answers are lost" in by_subject[pair]["message"]
        assert all(q in by_subject[pair]["message"] for q in quoted), by_subject[pair]["message"]
    assert result.summary["counts"]["passed"] == 12 - len(failing)


def background_traffic(state, duration: float = 40.0) -> list[subprocess.Popen]:
    """Pods talking during the mesh: every node sends UDP and pings with a marker through the overlay to
    the next node's pod address (its VTEP IP stands in for a pod), and a stray datagram to the next node's
    probe port. Returns the processes (ended by PID by the caller)."""
    procs = []
    for index, node in enumerate(state.nodes):
        peer = state.nodes[(index + 1) % len(state.nodes)]
        code = ("import socket,time,sys\n"
                f"m={MARKER!r}\nend=time.time()+{duration}\n"
                "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                "while time.time()<end:\n"
                f"  s.sendto(m*20,({peer.vtep_ip!r},8080))\n"
                f"  s.sendto(m,({peer.address!r},18472))\n"
                "  time.sleep(0.02)\n")
        procs.append(subprocess.Popen(["ip", "netns", "exec", node.netns, sys.executable, "-c", code]))
        procs.append(subprocess.Popen(["ip", "netns", "exec", node.netns, "ping", "-q", "-i", "0.05", "-w",
                                       str(int(duration)), "-p", MARKER[:16].hex(), "-s", "200", peer.vtep_ip],
                                      stdout=subprocess.DEVNULL))
    return procs


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(10)


def test_pod_traffic_never_reaches_a_file_the_run_writes_and_pcapng_carries_verdicts(lab_4, tmp_path):  # noqa: F811
    lab, state = lab_4
    reports = tmp_path / "reports"
    with faults(lab, ["firewall=firewalld@node2"]):  # failing pairs keep their captured frames
        procs = background_traffic(state)
        try:
            result = run_suite(state.inventory_path, reports, "suites/test_datapath.py")
        finally:
            stop(procs)
    assert result.failures() == {(pair, "HOST_FIREWALL_DROP") for pair in into("node2")}, result.output[-3000:]
    needles = [MARKER, MARKER.hex().encode(), MARKER.hex().upper().encode(), MARKER[:16].hex().encode()]
    written = [p for p in reports.rglob("*") if p.is_file()]
    assert any(p.name == "run.json" for p in written) and any(p.suffix == ".pcapng" for p in written)
    for path in written:
        data = path.read_bytes()
        assert not any(needle in data for needle in needles), f"pod traffic in {path}"
    for pcap in (p for p in written if p.suffix == ".pcapng"):
        from scapy.utils import rdpcap

        for frame in rdpcap(str(pcap)):
            raw = bytes(frame)
            assert b"vxlan-conformance" in raw or b"VXC1" in raw, f"non-probe frame in {pcap}"


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed (scripts/install.sh installs it)")
def test_tshark_reads_the_attached_pcapng_and_shows_the_verdicts(lab_4, tmp_path):  # noqa: F811
    lab, state = lab_4
    reports = tmp_path / "reports"
    with faults(lab, ["firewall=nftables@node3"]):
        result = run_suite(state.inventory_path, reports, "suites/test_datapath.py")
    assert result.failures() == {(pair, "HOST_FIREWALL_DROP") for pair in into("node3")}
    pcaps = sorted(Path(reports).rglob("*.pcapng"))
    assert pcaps
    out = subprocess.run(["tshark", "-r", str(pcaps[0]), "-T", "fields", "-e", "frame.comment"],
                         capture_output=True, text=True, timeout=60)
    comments = [line for line in out.stdout.splitlines() if line]
    assert comments and all(c.startswith("receiver's verdict: ") for c in comments), out.stdout + out.stderr


def test_an_allowing_firewall_and_pod_traffic_raise_no_alarm(lab_4, tmp_path):  # noqa: F811
    lab, state = lab_4
    with faults(lab, ["firewall=firewalld-allow@node2"]):
        procs = background_traffic(state)
        try:
            result = run_suite(state.inventory_path, tmp_path / "reports", "suites/test_datapath.py")
        finally:
            stop(procs)
    assert result.failures() == set(), result.output[-3000:]
    assert result.summary["counts"]["passed"] == 12
