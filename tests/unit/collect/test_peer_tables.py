"""A sampled run keeps the table entries of each node's selected peers and of unknown owners only."""

from __future__ import annotations

import pytest

from vxlan_conformance import cni
from vxlan_conformance.checks import peers
from vxlan_conformance.collect.peer_tables import keep_selected_peers
from vxlan_conformance.model.facts import NodeFacts
from vxlan_conformance.model.pairs import sample_pairs
from vxlan_conformance.model.records import Address, FdbEntry, Neighbour, Route, VxlanDevice
from vxlan_conformance.model.rundata import RunData

NODES = [f"node{i}" for i in range(1, 7)]
STALE_MAC = "de:ad:00:00:00:99"  # a removed node's entry: no checked node owns it


def mac(i: int) -> str:
    return f"02:00:00:00:00:{i:02x}"


def facts_of(i: int) -> NodeFacts:
    """Node i as flannel programs it: an FDB entry, a neighbour and a route per peer, plus a stale
    FDB entry and the default route."""
    peers = [j for j in range(1, len(NODES) + 1) if j != i]
    return NodeFacts(
        host=f"node{i}",
        device=VxlanDevice(name="flannel.1", mac=mac(i)),
        addresses=[Address(dev="flannel.1", family="inet", address=f"100.64.{i}.0", prefixlen=32)],
        fdb=[FdbEntry(mac=mac(j).upper(), dst=f"198.18.0.{j}") for j in peers]
        + [FdbEntry(mac=STALE_MAC, dst="198.18.0.99")],
        neighbours=[Neighbour(ip=f"100.64.{j}.0", mac=mac(j), state="PERMANENT") for j in peers],
        routes=[Route(dst=f"100.64.{j}.0/24", via=f"100.64.{j}.0", dev="flannel.1", onlink=True) for j in peers]
        + [Route(dst="default", via="198.18.0.254", dev="eth0")])


def run_with(mode: str) -> RunData:
    return RunData("lab.yaml", "2026-11-21T00:00:00Z", NODES, {n: f"198.18.0.{i}" for i, n in enumerate(NODES, 1)},
                   {"device": "flannel.1", "port": 8472},
                   facts={f"node{i}": facts_of(i) for i in range(1, len(NODES) + 1)}, options={"pairs": mode})


def test_sample_keeps_the_selected_peers_and_what_no_node_owns():
    run = run_with("sample:2")
    dropped = keep_selected_peers(run)
    peers = {a: {b for x, b in sample_pairs(NODES, 2) if x == a} for a in NODES}
    assert dropped == len(NODES) * 3 * (len(NODES) - 1 - 2)
    for host, facts in run.facts.items():
        wanted = {mac(int(p[4:])) for p in peers[host]}
        assert {e.mac.lower() for e in facts.fdb} == wanted | {STALE_MAC}
        assert {n.mac for n in facts.neighbours} == wanted
        assert {r.dst for r in facts.routes} == {f"100.64.{p[4:]}.0/24" for p in peers[host]} | {"default"}


@pytest.mark.parametrize("mode", ["all", "sample:16"])
def test_every_pair_keeps_everything(mode):
    run = run_with(mode)
    assert keep_selected_peers(run) == 0
    assert all(len(f.fdb) == len(NODES) for f in run.facts.values())


def test_without_a_view_a_peers_subnet_is_read_from_the_other_nodes_routes():
    """No cluster view: node3's pod subnet is what the other nodes route via its VTEP address, so node1
    missing that route is ROUTE_MISSING for node1->node3 while node2's route still names the subnet."""
    run = run_with("all")
    assert cni.of_run(run).vtep(run, "node3").pod_cidr == "100.64.3.0/24"
    assert peers.route(run, "node1", "node3").passed
    broken = run_with("all")
    broken.facts["node1"].routes = [r for r in broken.facts["node1"].routes if r.via != "100.64.3.0"]
    assert cni.of_run(broken).vtep(broken, "node3").pod_cidr == "100.64.3.0/24"
    assert peers.route(broken, "node1", "node3").codes == ("ROUTE_MISSING",)
