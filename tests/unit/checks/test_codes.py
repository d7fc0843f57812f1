"""Every diagnosis code from typed data, no root: each row takes a healthy run (tests/unit/builders.py),
breaks one thing as the kernel and the agents would then see it, runs every registered check, and asserts
the exact set of (check, subject, code) failures. The faults on the mesh evidence follow what the lab's
recorded runs show (tests/fixtures/evidence/): a receiver that drops a packet still captures it at its
NIC; an answer lost on the way back makes the reverse pair unanswered too, which the diagnosis must blame
on the direction that lost it.

The meta tests keep the table, the registry and data/checks.yaml in step: every code a check declares is
catalogued with remediation text, every catalogued code is declared by a check (or is run-level), and every
code appears in the table."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.unit import builders
from tests.unit.builders import calico_run, cilium_run, cilium_v118_run, failures, flannel_mac, flannel_run
from vxlan_conformance import catalog, checks
from vxlan_conformance.model.advertised import Advertised
from vxlan_conformance.model.evidence import Capture, PairEvidence, ReceivePath, RuleHits
from vxlan_conformance.model.records import FdbEntry, Interface, MacPolicy, NatFacts, Neighbour
from vxlan_conformance.model.rundata import RunData

RUN_LEVEL = {"NODE_UNREACHABLE": "a node the suite cannot reach: its tests error before any check runs "
                                  "(plugin/suite.py unreachable_result)"}


# -- faults on the typed data -----------------------------------------------------------------------------

def ev(run: RunData, a: str, b: str) -> PairEvidence:
    return run.mesh[f"{a}->{b}"]


def unanswered(run: RunData, a: str, b: str) -> None:
    """None of A's overlay probes (raw frame, kernel ping, DF ping) got an answer."""
    for probe in (ev(run, a, b).vxlan_frame, ev(run, a, b).overlay_ping, ev(run, a, b).df_probe):
        probe.reply_seen, probe.rtt_ms = False, None


def not_captured(run: RunData, a: str, b: str, *kinds: str) -> None:
    """B's capture did not see A's requests of these kinds (all three: nothing at B's VXLAN port)."""
    cap = ev(run, a, b).captured
    port = int(run.overlay["port"])
    for kind in kinds:
        if cap.requests[kind].intact:
            cap.requests[kind].intact = 0
            cap.by_dport[port] -= 1
            cap.count -= 1
    if not cap.by_dport[port]:
        del cap.by_dport[port]


def vxlan_dropped(run: RunData, a: str, b: str) -> None:
    """The network drops A's VXLAN to B (a security group): none of it reaches B's NIC. A's answers to B's
    probes travel as VXLAN A->B too, so B->A goes unanswered."""
    unanswered(run, a, b)
    not_captured(run, a, b, "vxlan_frame", "overlay_ping", "df_probe")
    unanswered(run, b, a)


def kernel_path_lost(run: RunData, a: str, b: str) -> None:
    """A's own kernel does not send its overlay packets for B to B (FDB, neighbour or route wrong); the
    runner-built raw frame still reaches B and is answered. A's answers to B's probes take the same wrong
    path: B->A goes unanswered."""
    not_captured(run, a, b, "overlay_ping", "df_probe")
    for probe in (ev(run, a, b).overlay_ping, ev(run, a, b).df_probe):
        probe.reply_seen, probe.rtt_ms = False, None
    unanswered(run, b, a)


def dropped_inside(run: RunData, b: str) -> None:
    """B takes every peer's VXLAN off the wire, then drops it itself: captured intact, never answered, and
    B's own probes lose their answers on the way in."""
    for a in run.nodes:
        if a != b:
            unanswered(run, a, b)
            unanswered(run, b, a)


def receive_path(run: RunData, b: str, **changes: object) -> None:
    """B's own receive path counters, as every pair into B reports them."""
    for a in run.nodes:
        if a != b:
            for key, value in changes.items():
                setattr(ev(run, a, b).receive_path, key, value)


def fdb_to(run: RunData, host: str, mac: str, dst: str | None) -> None:
    """`host`'s FDB entry for `mac`: pointed at `dst`, or removed (None)."""
    facts = run.facts[host]
    facts.fdb = [e for e in facts.fdb if e.mac != mac] + ([FdbEntry(mac, dst=dst, dev=run.overlay["device"])]
                                                          if dst else [])
    facts._index = None


def without_route(run: RunData, host: str, dst: str) -> None:
    facts = run.facts[host]
    facts.routes = [r for r in facts.routes if r.dst != dst]
    facts._index = None


def advertise(run: RunData, host: str, **changes: object) -> None:
    run.view[host] = Advertised(**{**run.view[host].to_dict(), **changes})


def excluded(run: RunData, host: str, why: str) -> None:
    """The mesh left `host` out (the agent cannot run there): no evidence for its pairs."""
    run.mesh_excluded[host] = why
    for pair in [p for p in run.mesh if host in p.split("->")]:
        del run.mesh[pair]
    run.mesh_pairs = [p for p in run.mesh_pairs if host not in p.split("->")]


def bad_checksum_frame(src: str, dst: str, port: int) -> str:
    """A captured VXLAN probe whose outer UDP checksum is wrong (as seed 003's tcpdump showed)."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    from vxlan_conformance.mesh.frames import vxlan_probe

    inner = vxlan_probe(1, flannel_mac(1), flannel_mac(2), "100.64.1.0", "100.64.2.0", 7, 1)
    frame = Ether() / IP(src=src, dst=dst) / UDP(sport=41234, dport=port, chksum=0x7A0D) / Raw(inner)
    return bytes(frame).hex()


def pairs_of(run: RunData, host: str) -> set[str]:
    return {f"{a}->{b}" for a, b in run.pairs() if host in (a, b)}


def into(run: RunData, host: str) -> set[str]:
    return {f"{a}->{host}" for a in run.nodes if a != host}


# -- the rows ---------------------------------------------------------------------------------------------

Expected = set[tuple[str, str, str]]


@dataclass(frozen=True)
class Row:
    id: str
    build: Callable[[], RunData]
    fault: Callable[[RunData], None]
    expected: Callable[[RunData], Expected]   # of the broken run (some rows name every check of a scope)


def row(id: str, build: Callable[[], RunData], fault: Callable[[RunData], None],
        expected: Expected | Callable[[RunData], Expected]) -> Row:
    return Row(id, build, fault, expected if callable(expected) else (lambda run, e=expected: e))


def each(check: str, subjects: set[str], code: str) -> Expected:
    return {(check, s, code) for s in subjects}


def _nothing(run: RunData) -> None:
    """No fault: the healthy run."""


def _dup_mac(run: RunData) -> None:
    """node3's flannel.1 got node2's MAC (cloned VM, MACAddressPolicy=persistent): both advertise it, each
    peer's FDB holds one entry for it (the last lease wins: node3's address), and each node drops the
    frames that carry its own MAC as source."""
    mac = flannel_mac(2)
    run.facts["node3"].device.mac = mac
    advertise(run, "node3", vtep_mac=mac)
    fdb_to(run, "node1", flannel_mac(3), None)
    fdb_to(run, "node1", mac, "198.18.0.3")
    fdb_to(run, "node2", flannel_mac(3), None)
    fdb_to(run, "node2", mac, "198.18.0.3")
    fdb_to(run, "node3", mac, "198.18.0.2")
    for host in run.nodes:
        for n in run.facts[host].neighbours:
            if n.mac == flannel_mac(3):
                n.mac = mac
    kernel_path_lost(run, "node1", "node2")
    for a, b in (("node2", "node3"), ("node3", "node2")):
        unanswered(run, a, b)


def _mac_changed(run: RunData, mac: str, managed: bool = False) -> None:
    """node2's VTEP MAC changed under the CNI (NetworkManager, flannel#1330): peers still use the advertised
    one, node2 drops frames for it; node2's own probes lose their answers the same way."""
    run.facts["node2"].device.mac = mac
    if managed:
        run.facts["node2"].mac_policy = MacPolicy(nm_state="connected (externally)", nm_managed=True)
    dropped_inside(run, "node2")


def _stale_public_ip(run: RunData) -> None:
    """node2 advertises its old address; flannel on the peers sends its VXLAN there."""
    advertise(run, "node2", public_ip="198.18.0.99")
    for a in ("node1", "node3"):
        fdb_to(run, a, flannel_mac(2), "198.18.0.99")
        kernel_path_lost(run, a, "node2")


def _nat_public_ip(run: RunData) -> None:
    """Seed 001: node2 and node3 advertise the NAT NIC's 10.0.2.15; their peers' FDB sends there."""
    for host, i in (("node2", 2), ("node3", 3)):
        advertise(run, host, public_ip="10.0.2.15")
        for a in run.nodes:
            if a != host:
                fdb_to(run, a, flannel_mac(i), "10.0.2.15")
    for a, b in (("node1", "node2"), ("node1", "node3"), ("node2", "node3"), ("node3", "node2")):
        kernel_path_lost(run, a, b)
    for a, b in (("node2", "node3"), ("node3", "node2")):
        unanswered(run, a, b)


def _blocked_into_node3(run: RunData) -> None:
    for a in ("node1", "node2", "node4"):
        vxlan_dropped(run, a, "node3")


def _wrong_local(run: RunData) -> None:
    """node2's flannel.1 sends from the NAT NIC's 10.0.2.15: its packets arrive, the answers go there."""
    run.facts["node2"].device.local = "10.0.2.15"
    for b in ("node1", "node3"):
        ev(run, "node2", b).captured.outer_srcs = ["10.0.2.15"]
        unanswered(run, "node2", b)


def _fdb_missing(run: RunData) -> None:
    fdb_to(run, "node1", flannel_mac(2), None)
    kernel_path_lost(run, "node1", "node2")


def _fdb_wrong(run: RunData) -> None:
    fdb_to(run, "node1", flannel_mac(2), "198.18.0.77")
    kernel_path_lost(run, "node1", "node2")


def _neigh(run: RunData, mac: str | None) -> None:
    facts = run.facts["node1"]
    facts.neighbours = [n for n in facts.neighbours if n.ip != "100.64.2.0"]
    if mac:
        facts.neighbours.append(Neighbour("100.64.2.0", mac, "PERMANENT", "flannel.1"))
    facts._index = None
    kernel_path_lost(run, "node1", "node2")


def _route_missing(run: RunData, fdb_too: bool = False) -> None:
    without_route(run, "node1", "100.64.2.0/24")
    if fdb_too:
        fdb_to(run, "node1", flannel_mac(2), None)
    kernel_path_lost(run, "node1", "node2")


def _bad_checksums(run: RunData) -> None:
    """Seed 003: node1 runs the ky10 kernel whose VXLAN packets carry a bad outer UDP checksum; every peer
    drops them (and so node1's answers to its peers' probes)."""
    run.facts["node1"].kernel_release = "4.19.90-52.49.v2207.ky10.x86_64"
    for b in ("node2", "node3"):
        evidence = ev(run, "node1", b)
        cap = evidence.captured
        cap.bad_csum, cap.valid_csum = 3, cap.valid_csum - 3
        for kind in ("vxlan_frame", "overlay_ping", "df_probe"):
            cap.requests[kind].intact, cap.requests[kind].bad = 0, 1
        evidence.pcap_frames = [bad_checksum_frame("198.18.0.1", f"198.18.0.{b[-1]}", 8472)] * 3
        unanswered(run, "node1", b)
        unanswered(run, b, "node1")


def _kernel(release: str, **facts: object) -> Callable[[RunData], None]:
    def fault(run: RunData) -> None:
        run.facts["node2"].kernel_release = release
        for key, value in facts.items():
            setattr(run.facts["node2"], key, value)
    return fault


def _allowlist(run: RunData) -> None:
    run.options["kernel_policy"] = "allowlist"
    run.facts["node1"].kernel_release = "4.19.90-52.22.v2207.ky10.x86_64"   # listed good


def _device_mtu(run: RunData) -> None:
    """node2's flannel.1 has MTU 1400: its DF probes of the cluster's 1450 (mesh/phase.py expected_mtu) are
    refused by its own kernel (as the lab's mtu fault shows); packets into node2 are not limited by it."""
    run.facts["node2"].device.mtu = 1400
    for b in ("node1", "node3"):
        ev(run, "node2", b).df_probe.reply_seen = False
        ev(run, "node2", b).df_probe.error = "[Errno 90] Message too long"
        not_captured(run, "node2", b, "df_probe")


def _df_lost(run: RunData) -> None:
    """A DF packet of the device MTU from node1 to node2 is lost, everything smaller arrives."""
    ev(run, "node1", "node2").df_probe.reply_seen = False
    ev(run, "node1", "node2").df_probe.error = "no reply"
    not_captured(run, "node1", "node2", "df_probe")


def _path_mtu(run: RunData) -> None:
    """A router between node1 and node2 has MTU 1400: the 1472-byte UDP echo and the DF probe (1450 + 50 bytes
    VXLAN) die there both ways; the nodes' own interfaces are all 1500."""
    for a, b in (("node1", "node2"), ("node2", "node1")):
        evidence = ev(run, a, b)
        evidence.udp_echo.per_size["1472"].replied = 0
        evidence.udp_echo.replied -= 1
        evidence.captured.by_dport[builders.PROBE_PORT] -= 1
        evidence.df_probe.reply_seen = False
        not_captured(run, a, b, "df_probe")


def _underlay_mtu(run: RunData) -> None:
    """node3's NIC has MTU 1400 (its flannel.1 1350, as flannel derives it): the peers' big packets die at it."""
    run.facts["node3"].underlay = Interface("eth0", ifindex=2, mtu=1400, up=True,
                                            addresses=run.facts["node3"].underlay.addresses)
    run.facts["node3"].device.mtu = 1350
    for b in ("node1", "node2"):
        ev(run, "node3", b).df_probe.size = 1350
        echo = ev(run, "node3", b).udp_echo   # node3's biggest echo fits its own MTU: 1400 - 28
        echo.per_size = {size.replace("1472", "1372"): v for size, v in echo.per_size.items()}
    for a in ("node1", "node2"):
        evidence = ev(run, a, "node3")
        evidence.udp_echo.per_size["1472"].replied = 0
        evidence.udp_echo.replied -= 1
        evidence.df_probe.reply_seen = False
        not_captured(run, a, "node3", "df_probe")


def _port_mismatch(run: RunData) -> None:
    """node2's flannel.1 listens on 8475 (as the lab's vxlan-port fault leaves it): the raw frames aim at each
    receiver's own port, the kernels at 8472 and 8475."""
    run.facts["node2"].device.port = 8475
    for a in ("node1", "node3"):
        into2, from2 = ev(run, a, "node2"), ev(run, "node2", a)
        into2.vxlan_frame.port = 8475
        into2.captured.by_dport = {8472: 2, 8475: 1, builders.PROBE_PORT: 3}
        from2.captured.by_dport = {8472: 1, 8475: 2, builders.PROBE_PORT: 3}
        into2.receive_path.udp_delta["NoPorts"] = 6
        into2.icmp_errors = {"port_unreachable/8472": 6}
        from2.icmp_errors = {"port_unreachable/8475": 6}
        unanswered(run, a, "node2")
        unanswered(run, "node2", a)


def _firewall(run: RunData) -> None:
    dropped_inside(run, "node2")
    receive_path(run, "node2", netfilter_delta=[
        RuleHits("iptables filter INPUT :policy ACCEPT", 85),
        RuleHits("iptables filter INPUT -A INPUT -p udp -m udp --dport 8472 -j DROP", 54)])


def _rp_filter(run: RunData) -> None:
    dropped_inside(run, "node2")
    receive_path(run, "node2", rp_filter={"all": 1, "default": 1, "flannel.1": 1, "eth0": 0},
                 rp_filter_drops_delta=54)


def _probe_port(run: RunData) -> None:
    """node2's firewall drops UDP 18472 only: every echo into it is lost, VXLAN works."""
    for a in ("node1", "node3"):
        echo = ev(run, a, "node2").udp_echo
        echo.replied = 0
        for size in echo.per_size.values():
            size.replied, size.rtt_ms = 0, None


def _unexplained(run: RunData) -> None:
    """node1's kernel-sent VXLAN to node2 disappears although its FDB, neighbour and route are right."""
    kernel_path_lost(run, "node1", "node2")


def _agent_failed(run: RunData) -> None:
    ev(run, "node1", "node2").probed = False
    ev(run, "node1", "node2").errors = ["node1: agent timed out after 30 s"]


def _receiver_agent_failed(run: RunData) -> None:
    """node2's agent failed (lab: hostile=agent-garbage): no capture, no echo responder and no probes of its
    own; the kernel still answers the pings into node2."""
    for peer in ("node1", "node3"):
        into_node2 = ev(run, peer, "node2")
        into_node2.captured, into_node2.receive_path = Capture(), ReceivePath()
        into_node2.pcap_frames = []
        into_node2.errors = ["receiver node2: agent answered with a report of the wrong shape"]
        for size in into_node2.udp_echo.per_size.values():
            size.replied, size.rtt_ms = 0, None
        into_node2.udp_echo.replied = 0
        out_of_node2 = ev(run, "node2", peer)
        out_of_node2.probed = False
        out_of_node2.errors = ["sender node2: agent answered with a report of the wrong shape"]


def _no_python(run: RunData) -> None:
    run.facts["node3"].python = []
    excluded(run, "node3", "no Python 2.7/3.6+ for the agent")


def _not_root(run: RunData) -> None:
    run.facts["node2"].uid, run.facts["node2"].sudo_ok = 1000, False
    excluded(run, "node2", "connected as uid 1000, not root: the agent's raw sockets need root")


def _no_device(run: RunData) -> None:
    """flanneld never ran on node3: no flannel.1 (so no FDB, neighbours or routes through it); the Node
    annotations of an earlier install remain."""
    facts = run.facts["node3"]
    facts.device, facts.fdb, facts.neighbours = None, [], []
    facts.addresses = [a for a in facts.addresses if a.dev != "flannel.1"]
    facts.routes = [r for r in facts.routes if r.dev != "flannel.1"]
    facts._index = None
    excluded(run, "node3", "no VXLAN device flannel.1 with an address")


def _device_down(run: RunData) -> None:
    """`ip link set flannel.1 down` on node2: the kernel drops its routes and neighbours through it and closes
    its UDP socket (the permanent FDB entries stay); node2 sends no overlay packet and drops every one
    that arrives (UdpNoPorts)."""
    facts = run.facts["node2"]
    facts.device.up = False
    facts.neighbours = []
    facts.routes = [r for r in facts.routes if r.dev != "flannel.1"]
    facts._index = None
    for b in ("node1", "node3"):
        not_captured(run, "node2", b, "overlay_ping", "df_probe")
        ev(run, "node2", b).overlay_ping.error = "[Errno 101] Network is unreachable"
        ev(run, "node2", b).overlay_ping.sent = 0
    receive_path(run, "node2", udp_delta={"InDatagrams": 0, "NoPorts": 12, "InErrors": 0, "InCsumErrors": 0})
    dropped_inside(run, "node2")


def _vni_mismatch(run: RunData) -> None:
    """node2's flannel.1 has VNI 2: the kernels' packets between node2 and its peers are dropped by the
    receiver (no device for that VNI); the raw frames carry each receiver's own VNI and arrive, but their
    answers are the kernel's and die the same way."""
    run.facts["node2"].device.vni = 2
    for a in ("node1", "node3"):
        ev(run, a, "node2").captured.vnis = [1, 2]   # A's kernel's VNI 1, the raw frame's 2
        ev(run, "node2", a).captured.vnis = [1, 2]
        unanswered(run, a, "node2")
        unanswered(run, "node2", a)


def _view_down(run: RunData) -> None:
    run.view, run.view_error = {}, "kubectl get nodes: The connection to the server 10.0.0.1:6443 was refused"


def _view_missing(run: RunData) -> None:
    del run.view["node3"]


def _view_unknown(run: RunData) -> None:
    run.view_unmatched = [Advertised("node9", "kubectl", "02:f1:00:00:00:09", "198.18.0.9")]


def _predicted(macs: dict[str, str], errors: dict[str, str]) -> Callable[[RunData], None]:
    def fault(run: RunData) -> None:
        run.options["predict"] = True
        run.predicted_macs, run.predict_errors = macs, errors
    return fault


def _unreachable(run: RunData) -> None:
    run.unreachable["node3"] = "timed out after 10 s"
    del run.facts["node3"]
    excluded(run, "node3", "unreachable")


def _every_subject_of(host: str) -> Callable[[RunData], Expected]:
    """NODE_UNREACHABLE on every node and pair subject of `host`, of every check the CNI applies."""
    def expected(run: RunData) -> Expected:
        out = set()
        for spec in checks.REGISTRY.values():
            if spec.scope == "node":
                out.add((spec.id, host, "NODE_UNREACHABLE"))
            elif spec.scope == "pair" and spec.id != "peer-tunnel":   # flannel: not applicable, one skip
                out |= each(spec.id, pairs_of(run, host), "NODE_UNREACHABLE")
        return out
    return expected


# calico and cilium faults

def _calico_block_route(run: RunData) -> None:
    without_route(run, "node3", "10.244.1.64/26")


def _calico_wrong_mac(run: RunData) -> None:
    run.facts["node2"].device.mac = "66:00:00:00:00:02"
    dropped_inside(run, "node2")


def _calico_fdb(run: RunData) -> None:
    from vxlan_conformance.cni.calico import felix_mac

    fdb_to(run, "node1", felix_mac("node2"), "10.0.9.99")
    kernel_path_lost(run, "node1", "node2")


def _tunnel(dst: str | None, peer: str = "node2") -> Callable[[RunData], None]:
    def fault(run: RunData) -> None:
        key = builders.CIDR[peer].split("/")[0]
        if dst is None:
            del run.facts["node1"].tunnel_map[key]
        else:
            run.facts["node1"].tunnel_map[key] = dst
        kernel_path_lost(run, "node1", peer)
    return fault


def _cilium_route(run: RunData) -> None:
    without_route(run, "node1", builders.CIDR["node2"])
    kernel_path_lost(run, "node1", "node2")


def _cilium_internal_ip(run: RunData) -> None:
    """node3's CiliumNode names a wrong InternalIP: every tunnel map sends node3's pods there."""
    advertise(run, "node3", public_ip="198.19.6.15")
    for a in ("node1", "node2"):
        run.facts[a].tunnel_map[builders.CIDR["node3"].split("/")[0]] = "198.19.6.15"
        kernel_path_lost(run, a, "node3")


ROWS = [
    row("flannel healthy, 3 nodes", flannel_run, _nothing, set()),
    row("flannel healthy, 5 nodes", lambda: flannel_run(5), _nothing, set()),
    row("calico healthy", calico_run, _nothing, set()),
    row("cilium healthy", cilium_run, _nothing, set()),
    row("receiver drops all VXLAN from node1 to node2", flannel_run, lambda r: vxlan_dropped(r, "node1", "node2"),
        {("datapath", "node1->node2", "UDP_PORT_BLOCKED")}),
    row("security group drops all VXLAN into node3 of 4", lambda: flannel_run(4), _blocked_into_node3,
        lambda r: each("datapath", into(r, "node3"), "UDP_PORT_BLOCKED")),
    row("calico: VXLAN from node1 to node2 dropped", calico_run, lambda r: vxlan_dropped(r, "node1", "node2"),
        {("datapath", "node1->node2", "UDP_PORT_BLOCKED")}),
    row("cilium: VXLAN from node1 to node2 dropped", cilium_run, lambda r: vxlan_dropped(r, "node1", "node2"),
        {("datapath", "node1->node2", "UDP_PORT_BLOCKED")}),
    row("duplicate VTEP MAC", flannel_run, _dup_mac,
        {("vtep-mac-unique", "node2", "VTEP_MAC_DUPLICATE"), ("vtep-mac-unique", "node3", "VTEP_MAC_DUPLICATE"),
         ("peer-fdb", "node1->node2", "VTEP_MAC_DUPLICATE"), ("datapath", "node1->node2", "VTEP_MAC_DUPLICATE"),
         ("datapath", "node2->node3", "VTEP_MAC_DUPLICATE"), ("datapath", "node3->node2", "VTEP_MAC_DUPLICATE")}),
    row("cloned machine-id", flannel_run,
        lambda r: setattr(r.facts["node3"], "machine_id", r.facts["node1"].machine_id),
        each("machine-id-unique", {"node1", "node3"}, "MACHINE_ID_DUPLICATE")),
    row("VTEP MAC changed under flannel", flannel_run, lambda r: _mac_changed(r, "02:f1:00:00:00:99"),
        {("vtep-mac-advertised", "node2", "VTEP_MAC_MISMATCH"), ("datapath", "node1->node2", "VTEP_MAC_MISMATCH"),
         ("datapath", "node3->node2", "VTEP_MAC_MISMATCH")}),
    row("NetworkManager manages flannel.1 and changed its MAC", flannel_run,
        lambda r: _mac_changed(r, "02:f1:00:00:00:99", managed=True),
        {("vtep-nm-unmanaged", "node2", "VTEP_NM_MANAGED"), ("vtep-mac-advertised", "node2", "VTEP_MAC_MISMATCH"),
         ("datapath", "node1->node2", "VTEP_MAC_MISMATCH"), ("datapath", "node3->node2", "VTEP_MAC_MISMATCH")}),
    row("backend-data null", flannel_run,
        lambda r: advertise(r, "node2", vtep_mac=None, problem="backend-data is null"),
        {("vtep-mac-advertised", "node2", "VTEP_MAC_MISMATCH")}),
    row("stale advertised public IP", flannel_run, _stale_public_ip,
        {("public-ip", "node2", "PUBLIC_IP_MISMATCH"), ("datapath", "node1->node2", "PUBLIC_IP_MISMATCH"),
         ("datapath", "node3->node2", "PUBLIC_IP_MISMATCH")}),
    row("two nodes advertise the NAT address (seed 001)", flannel_run, _nat_public_ip,
        {("public-ip", "node2", "PUBLIC_IP_MISMATCH"), ("public-ip", "node3", "PUBLIC_IP_MISMATCH"),
         ("public-ip-unique", "node2", "PUBLIC_IP_DUPLICATE"), ("public-ip-unique", "node3", "PUBLIC_IP_DUPLICATE"),
         ("datapath", "node1->node2", "PUBLIC_IP_MISMATCH"), ("datapath", "node1->node3", "PUBLIC_IP_MISMATCH"),
         ("datapath", "node2->node3", "PUBLIC_IP_MISMATCH"), ("datapath", "node3->node2", "PUBLIC_IP_MISMATCH")}),
    row("VTEP bound to the wrong address", flannel_run, _wrong_local,
        lambda r: each("datapath", {"node2->node1", "node2->node3"}, "VTEP_LOCAL_MISMATCH")
        | {("vtep-local", "node2", "VTEP_LOCAL_MISMATCH")}),
    row("FDB entry missing", flannel_run, _fdb_missing,
        {("peer-fdb", "node1->node2", "FDB_MISSING"), ("datapath", "node1->node2", "FDB_MISSING")}),
    row("FDB entry to a wrong address", flannel_run, _fdb_wrong,
        {("peer-fdb", "node1->node2", "FDB_WRONG_DST"), ("datapath", "node1->node2", "FDB_WRONG_DST")}),
    row("neighbour entry missing", flannel_run, lambda r: _neigh(r, None),
        {("peer-neigh", "node1->node2", "NEIGH_MISSING"), ("datapath", "node1->node2", "NEIGH_MISSING")}),
    row("neighbour entry with a wrong MAC", flannel_run, lambda r: _neigh(r, "02:f1:00:00:00:77"),
        {("peer-neigh", "node1->node2", "NEIGH_WRONG_MAC"), ("datapath", "node1->node2", "NEIGH_WRONG_MAC")}),
    row("route missing", flannel_run, _route_missing,
        {("peer-route", "node1->node2", "ROUTE_MISSING"), ("datapath", "node1->node2", "ROUTE_MISSING")}),
    row("route and FDB entry missing: the route is the first hop", flannel_run,
        lambda r: _route_missing(r, fdb_too=True),
        {("peer-route", "node1->node2", "ROUTE_MISSING"), ("peer-fdb", "node1->node2", "FDB_MISSING"),
         ("datapath", "node1->node2", "ROUTE_MISSING")}),
    row("bad outer checksum from a ky10 kernel (seed 003)", flannel_run, _bad_checksums,
        {("kernel-known", "node1", "KERNEL_KNOWN_BAD"), ("datapath", "node1->node2", "OUTER_CHECKSUM_BAD"),
         ("datapath", "node1->node3", "OUTER_CHECKSUM_BAD")}),
    row("kernel known bad", flannel_run, _kernel("4.19.90-52.49.v2207.ky10.x86_64"),
        {("kernel-known", "node2", "KERNEL_KNOWN_BAD")}),
    row("kernel bad with offload and random-fully (seed 004)", flannel_run,
        _kernel("5.4.40", offloads={"tx-checksum-ip-generic": "on"},
                nat=NatFacts("iptables", readable=True, random_fully=True)),
        {("checksum-offload-risk", "node2", "CHECKSUM_OFFLOAD_RISK")}),
    row("kernel not validated under the allowlist", flannel_run, _allowlist,
        {("kernel-known", "node2", "KERNEL_NOT_VALIDATED"), ("kernel-known", "node3", "KERNEL_NOT_VALIDATED")}),
    row("device MTU not underlay - 50", flannel_run, _device_mtu,
        {("vtep-mtu", "node2", "MTU_MISMATCH"), ("datapath", "node2->node1", "MTU_MISMATCH"),
         ("datapath", "node2->node3", "MTU_MISMATCH")}),
    row("DF packet of the device MTU lost", flannel_run, _df_lost, {("datapath", "node1->node2", "MTU_MISMATCH")}),
    row("a router with a smaller MTU between node1 and node2", flannel_run, _path_mtu,
        {("datapath", "node1->node2", "MTU_MISMATCH"), ("datapath", "node2->node1", "MTU_MISMATCH")}),
    row("underlay MTU of the receiver too small", flannel_run, _underlay_mtu,
        each("datapath", {"node1->node3", "node2->node3"}, "UNDERLAY_MTU_TOO_SMALL")),
    row("VXLAN port mismatch", flannel_run, _port_mismatch,
        lambda r: each("datapath", pairs_of(r, "node2"), "VXLAN_PORT_MISMATCH")
        | {("vtep-config", "node2", "CONFIG_INCONSISTENT")}),
    row("VNI mismatch", flannel_run, _vni_mismatch,
        lambda r: each("datapath", pairs_of(r, "node2"), "CONFIG_INCONSISTENT")
        | {("vtep-config", "node2", "CONFIG_INCONSISTENT")}),
    row("host firewall drops VXLAN", flannel_run, _firewall,
        lambda r: each("datapath", into(r, "node2"), "HOST_FIREWALL_DROP")),
    row("rp_filter drops VXLAN", flannel_run, _rp_filter,
        lambda r: each("datapath", into(r, "node2"), "RP_FILTER_DROP")),
    row("probe port blocked", flannel_run, _probe_port,
        {("datapath", "node1->node2", "PROBE_PORT_BLOCKED"), ("datapath", "node3->node2", "PROBE_PORT_BLOCKED")}),
    row("overlay lost with the tables right", flannel_run, _unexplained,
        {("datapath", "node1->node2", "OVERLAY_UNREACHABLE")}),
    row("agent failed for one pair", flannel_run, _agent_failed, {("datapath", "node1->node2", "MESH_FAILED")}),
    row("receiver's agent failed", flannel_run, _receiver_agent_failed,
        lambda r: each("datapath", pairs_of(r, "node2"), "MESH_FAILED")),
    row("no Python for the agent", flannel_run, _no_python,
        lambda r: each("datapath", pairs_of(r, "node3"), "MESH_FAILED")
        | {("python-for-agent", "node3", "PYTHON_MISSING")}),
    row("not root and no sudo", flannel_run, _not_root,
        lambda r: each("datapath", pairs_of(r, "node2"), "MESH_FAILED")
        | {("privileges", "node2", "PRIVILEGES_INSUFFICIENT")}),
    row("no VXLAN device", flannel_run, _no_device,
        lambda r: each("datapath", pairs_of(r, "node3"), "MESH_FAILED")
        | {("vxlan-device", "node3", "VTEP_MISSING"), ("peer-fdb", "node3->node1", "FDB_MISSING"),
           ("peer-fdb", "node3->node2", "FDB_MISSING"), ("peer-neigh", "node3->node1", "NEIGH_MISSING"),
           ("peer-neigh", "node3->node2", "NEIGH_MISSING"), ("peer-route", "node3->node1", "ROUTE_MISSING"),
           ("peer-route", "node3->node2", "ROUTE_MISSING")}),
    row("VXLAN device down", flannel_run, _device_down,
        lambda r: each("datapath", pairs_of(r, "node2"), "VTEP_DOWN")
        | {("vxlan-device", "node2", "VTEP_DOWN"), ("peer-neigh", "node2->node1", "NEIGH_MISSING"),
           ("peer-neigh", "node2->node3", "NEIGH_MISSING"), ("peer-route", "node2->node1", "ROUTE_MISSING"),
           ("peer-route", "node2->node3", "ROUTE_MISSING")}),
    row("cluster view unavailable", flannel_run, _view_down, {("cluster-view", "cluster", "VIEW_UNAVAILABLE")}),
    row("node missing from the view", flannel_run, _view_missing,
        {("vtep-mac-advertised", "node3", "VIEW_NODE_MISSING"), ("public-ip", "node3", "VIEW_NODE_MISSING")}),
    row("view advertises a node not in the inventory", flannel_run, _view_unknown,
        {("view-nodes-known", "cluster", "VIEW_NODE_UNKNOWN")}),
    row("prediction failed on a node", flannel_run,
        _predicted({"node1": "1a:00:00:00:00:01", "node2": "1a:00:00:00:00:02"},
                   {"node3": "ip link add: Operation not permitted"}),
        {("vtep-mac-predicted-unique", "node3", "PREDICT_FAILED")}),
    row("predicted VTEP MACs collide", flannel_run,
        _predicted({"node1": "1a:00:00:00:00:01", "node2": "1a:00:00:00:00:01", "node3": "1a:00:00:00:00:03"}, {}),
        {("vtep-mac-predicted-unique", "node1", "VTEP_MAC_DUPLICATE"),
         ("vtep-mac-predicted-unique", "node2", "VTEP_MAC_DUPLICATE")}),
    row("node unreachable", flannel_run, _unreachable, _every_subject_of("node3")),
    row("calico: missing route to a peer's second block", calico_run, _calico_block_route,
        {("peer-route", "node3->node1", "ROUTE_MISSING")}),
    row("calico: VTEP MAC not felix's", calico_run, _calico_wrong_mac,
        {("vtep-mac-advertised", "node2", "VTEP_MAC_MISMATCH"), ("datapath", "node1->node2", "VTEP_MAC_MISMATCH"),
         ("datapath", "node3->node2", "VTEP_MAC_MISMATCH")}),
    row("calico: FDB entry to a wrong address", calico_run, _calico_fdb,
        {("peer-fdb", "node1->node2", "FDB_WRONG_DST"), ("datapath", "node1->node2", "FDB_WRONG_DST")}),
    row("cilium: tunnel map entry missing", cilium_run, _tunnel(None),
        {("peer-tunnel", "node1->node2", "TUNNEL_MISSING"), ("datapath", "node1->node2", "TUNNEL_MISSING")}),
    row("cilium: tunnel map entry to a wrong address", cilium_run, _tunnel("198.18.192.77", "node3"),
        {("peer-tunnel", "node1->node3", "TUNNEL_WRONG_DST"), ("datapath", "node1->node3", "TUNNEL_WRONG_DST")}),
    row("cilium v1.18 healthy (tunnel endpoints from the ipcache)", cilium_v118_run, _nothing, set()),
    row("cilium v1.18: ipcache pod CIDR entry missing", cilium_v118_run, _tunnel(None),
        {("peer-tunnel", "node1->node2", "TUNNEL_MISSING"), ("datapath", "node1->node2", "TUNNEL_MISSING")}),
    row("cilium v1.18: ipcache pod CIDR entry to a wrong address", cilium_v118_run, _tunnel("198.18.192.77", "node3"),
        {("peer-tunnel", "node1->node3", "TUNNEL_WRONG_DST"), ("datapath", "node1->node3", "TUNNEL_WRONG_DST")}),
    row("cilium v1.18: CiliumNode names a wrong InternalIP", cilium_v118_run, _cilium_internal_ip,
        {("public-ip", "node3", "PUBLIC_IP_MISMATCH"), ("datapath", "node1->node3", "PUBLIC_IP_MISMATCH"),
         ("datapath", "node2->node3", "PUBLIC_IP_MISMATCH")}),
    row("cilium: route to a peer's pod CIDR missing", cilium_run, _cilium_route,
        {("peer-route", "node1->node2", "ROUTE_MISSING"), ("datapath", "node1->node2", "ROUTE_MISSING")}),
    row("cilium: CiliumNode names a wrong InternalIP", cilium_run, _cilium_internal_ip,
        {("public-ip", "node3", "PUBLIC_IP_MISMATCH"), ("datapath", "node1->node3", "PUBLIC_IP_MISMATCH"),
         ("datapath", "node2->node3", "PUBLIC_IP_MISMATCH")}),
]


@pytest.mark.parametrize("case", ROWS, ids=[r.id for r in ROWS])
def test_one_fault_gives_exactly_its_failures(case: Row) -> None:
    run = case.build()
    case.fault(run)
    assert failures(run) == case.expected(run)


def test_the_table_is_large_and_healthy_runs_of_every_cni_pass() -> None:
    assert len(ROWS) >= 35
    for name, build in builders.BUILDERS.items():
        assert failures(build()) == set(), name


def declared() -> dict[str, set[str]]:
    """code -> the checks that declare it in @check(codes=...)."""
    out: dict[str, set[str]] = {}
    for spec in checks.REGISTRY.values():
        for code in spec.codes:
            out.setdefault(code, set()).add(spec.id)
    return out


def test_every_declared_code_is_catalogued_with_remediation() -> None:
    known = catalog.load()
    for code, by in declared().items():
        assert code in known, (code, by)
        assert known[code].remediation.strip() and known[code].what.strip(), code


def test_every_catalogued_code_is_declared_by_a_check_or_run_level() -> None:
    catalogued = set(catalog.load())
    assert catalogued - set(declared()) == set(RUN_LEVEL)
    assert set(RUN_LEVEL) <= catalogued


def test_every_code_has_a_row() -> None:
    """Every code the diagnosis can return is produced by at least one row of the table above."""
    produced = set()
    for case in ROWS:
        run = case.build()
        case.fault(run)
        produced |= {code for _, _, code in case.expected(run)}
    assert set(catalog.load()) - produced == set()


def test_every_failure_fills_its_remediation() -> None:
    """The fix a user reads names real things: no failure of any row leaves a `{placeholder}` of its
    remediation unfilled (the datapath's ROUTE_MISSING once printed `ip route show {cidr}`)."""
    unfilled = set()
    for case in ROWS:
        run = case.build()
        case.fault(run)
        for results in builders.every_result(run).values():
            unfilled |= {(case.id, r.check, r.subject, name) for r in results if r.codes
                         for name in re.findall(r"\{([a-z_]+)\}", r.remediation())}
    assert unfilled == set()


def _diagnosis(fault: Callable[[RunData], None], a: str, b: str):
    from vxlan_conformance.checks.datapath import diagnose

    run = flannel_run()
    fault(run)
    return diagnose(run, a, b)


def test_the_new_datapath_causes_say_what_they_saw() -> None:
    """The causes the table made the diagnosis name: the VNIs of both ends, the missing neighbour and route
    (before the FDB), a device that is down (with the fix for that node), a small MTU on the path."""
    vni = _diagnosis(_vni_mismatch, "node1", "node2")
    assert "with VNI 1, but node2's flannel.1 takes VNI 2" in vni.message and "saw VNIs 1, 2" in vni.message
    assert "no neighbour entry for node2's VTEP 100.64.2.0" in _diagnosis(lambda r: _neigh(r, None), "node1",
                                                                         "node2").message
    route = _diagnosis(lambda r: _route_missing(r, fdb_too=True), "node1", "node2")
    assert "node1 has no 100.64.2.0/24 via 100.64.2.0 dev flannel.1" in route.message
    down = _diagnosis(_device_down, "node1", "node2")
    assert "node2's flannel.1 is down" in down.message and down.values["node"] == "node2"
    assert "node2's flannel.1 is down" in _diagnosis(_device_down, "node2", "node1").message
    path = _diagnosis(_path_mtu, "node1", "node2")
    assert "the 1472-byte echoes to udp/18472 are lost and so is the DF probe" in path.message
