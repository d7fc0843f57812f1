"""Issue 16 end to end: flannel's DirectRouting on REAL flanneld over a routed underlay of two /20s
(lab/subnets.py: one bridge per /20, a router namespace between them), the suite run as a user does.
node1 and node3 share one /20, node2 and node4 the other: flanneld routes same-/20 peers via their
address without VXLAN (flannel-io/flannel backend/vxlan/vxlan_network.go handleSubnetEvents, pkg/ip
DirectRouting) and the cross-/20 peers over flannel.1. Healthy passes with the direct pairs noted; a fault
on a cross-/20 pair is named exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lab.suite_runner import run_suite
from tests.lab.test_e2e_checks import STATIC_SUITES
from tests.lab.test_real_flannel import DATAPATH, failed
from vxlan_conformance.lab.errors import LabError

pytestmark = pytest.mark.root

DIRECT = {"node1->node3", "node3->node1", "node2->node4", "node4->node2"}
CROSS = {f"{a}->{b}" for a in ("node1", "node3") for b in ("node2", "node4")}
CROSS |= {f"{b}->{a}" for a, b in (p.split("->") for p in CROSS)}


@pytest.fixture(scope="module", params=["v0.20.2", "v0.12.0"])
def routed(request, lab, flanneld, tmp_path_factory):
    """One DirectRouting lab per flanneld version for the module (etcd view: the network config is read)."""
    state = lab.up(nodes=4, cluster_view="etcd", flanneld=flanneld(request.param), direct_routing=True,
                   inventory_path=str(tmp_path_factory.mktemp("dr") / "lab.yaml"))
    return lab, state


def test_same_subnet_peers_are_routed_directly_and_cross_subnet_peers_over_vxlan(routed):
    lab, state = routed
    routes = lab.exec("node1", ["ip", "route"]).stdout
    fdb = lab.exec("node1", ["bridge", "fdb", "show", "dev", state.device]).stdout
    assert f"{state.node('node3').subnet} via {state.node('node3').address} dev eth0" in routes, routes
    for peer in ("node2", "node4"):
        assert f"{state.node(peer).subnet} via {state.node(peer).vtep_ip} dev {state.device} onlink" in routes
        assert f"dst {state.node(peer).address} " in fdb
    assert f"dst {state.node('node3').address} " not in fdb
    status = lab.status()
    assert status["underlay"] == {"subnets": 2, "direct_routing": True, "vxlan_mode": None}, status
    assert status["flanneld"] == {"version": state.flanneld_version, "alive": ["node1", "node2", "node3", "node4"]}
    assert state.flanneld_version.startswith("v0."), state.flanneld_version


@pytest.mark.parametrize("view", ["etcd", "kubectl"])
def test_healthy_directrouting_passes_with_the_direct_pairs_noted(routed, tmp_path, view):
    """etcd view: DirectRouting read from the network config; kubectl view: inferred from the routes."""
    _, state = routed
    inventory = tmp_path / "lab.yaml"
    inventory.write_text(Path(state.inventory_path).read_text().replace("vxlan_cluster_view: etcd",
                                                                        f"vxlan_cluster_view: {view}"))
    result = run_suite(inventory, tmp_path / "reports", *STATIC_SUITES, DATAPATH)
    assert failed(result) == set() and result.exit_code == 0, result.output[-4000:]
    known = "the network config" if view == "etcd" else "the nodes' routes"
    notes = {r["subject"]: r["message"] or "" for r in result.summary["results"] if r["check"] == "peer-fdb"}
    assert {s for s, note in notes.items() if f"DirectRouting ({known})" in note and "without VXLAN" in note} == DIRECT
    assert not any("without VXLAN" in notes[pair] for pair in CROSS)
    datapath = {r["subject"] for r in result.summary["results"] if r["check"] == "datapath" and r["status"] == "passed"}
    assert datapath == DIRECT | CROSS


def test_a_blocked_cross_subnet_pair_is_named_exactly(routed, tmp_path):
    lab, state = routed
    with pytest.raises(LabError, match="made at start"):  # flanneld owns the devices: no hand-made FDB
        lab.fault(["stale-fdb@node1->node3"])
    lab.fault(["blocked-port@node1->node2"])
    try:
        result = run_suite(state.inventory_path, tmp_path / "reports", *STATIC_SUITES, DATAPATH)
    finally:
        lab.clear_faults()
    assert failed(result) == {("datapath", "node1->node2", "UDP_PORT_BLOCKED")}, result.output[-4000:]
