"""Issue 17 end to end: Calico with `vxlanMode: CrossSubnet` over a routed two-subnet underlay (node1, node3
on one subnet, node2, node4 on the other), run as a user runs it. Same-subnet pairs are routed by felix
without VXLAN and must not fail for VXLAN reasons; cross-subnet pairs are still VXLAN and still checked."""

from __future__ import annotations

import pytest

from tests.lab.suite_runner import run_suite

pytestmark = pytest.mark.root

SAME_SUBNET = {"node1->node3", "node3->node1", "node2->node4", "node4->node2"}


def up(lab, tmp_path, faults=()):
    return lab.up(nodes=4, preset="calico", faults=list(faults), inventory_path=str(tmp_path / "calico-cs.yaml"),
                  underlay_subnets=2, vxlan_mode="CrossSubnet")


def datapath(result) -> dict[str, dict]:
    return {r["subject"]: r for r in result.summary["results"] if r["check"] == "datapath"}


def test_healthy_crosssubnet_passes_and_notes_direct_pairs(lab, tmp_path):
    state = up(lab, tmp_path)
    routes = lab.exec("node1", ["ip", "route", "show"]).stdout
    node3 = state.node("node3").address
    assert f"100.64.3.0/26 via {node3} dev eth0 proto 80 onlink" in routes, routes   # node3: same subnet
    assert "100.64.2.0/26 via 100.64.2.0 dev vxlan.calico onlink" in routes, routes       # node2: across
    status = lab.status()
    assert status["underlay"] == {"subnets": 2, "direct_routing": False, "vxlan_mode": "CrossSubnet"}, status
    assert status["flanneld"] is None
    result = run_suite(state.inventory_path, tmp_path / "reports")
    assert result.failures() == set(), result.output[-4000:]
    assert result.exit_code == 0
    pairs = datapath(result)
    assert len(pairs) == 12 and all(r["status"] == "passed" for r in pairs.values())
    for subject, r in pairs.items():
        if subject in SAME_SUBNET:
            assert "direct pair, not VXLAN" in r["message"], r
        else:
            assert "direct pair" not in r["message"], r


@pytest.mark.parametrize(("faults", "expected"), [
    # across the router: VXLAN, named as on a flat underlay
    (["blocked-port@node3->node2"], {("node3->node2", "UDP_PORT_BLOCKED")}),
    (["stale-fdb@node1->node4"], {("node1->node4", "FDB_WRONG_DST")}),
    # on one subnet: felix's direct route missing is the cause, not VXLAN
    (["missing-route@node1->node3"], {("node1->node3", "ROUTE_MISSING")}),
    # VXLAN blocked between same-subnet nodes: their pods do not use it, nothing fails
    (["blocked-port@node1->node3"], set()),
], ids=["cross-blocked-port", "cross-stale-fdb", "same-missing-route", "same-blocked-port"])
def test_crosssubnet_faults_are_named(lab, tmp_path, faults, expected):
    state = up(lab, tmp_path, faults)
    result = run_suite(state.inventory_path, tmp_path / "reports")
    assert result.failures() == expected, result.output[-4000:]


def test_faults_on_a_running_lab_reprogram_the_direct_routes(lab, tmp_path):
    """`lab fault` re-programs the overlay: felix's direct routes live on eth0, not on the re-created device."""
    state = up(lab, tmp_path)
    direct = f"100.64.3.0/26 via {state.node('node3').address} dev eth0 proto 80 onlink"
    lab.fault(["missing-route@node1->node3"])
    assert "100.64.3." not in lab.exec("node1", ["ip", "route", "show"]).stdout
    lab.clear_faults()
    assert direct in lab.exec("node1", ["ip", "route", "show"]).stdout
    assert lab.exec("node1", ["ping", "-c1", "-W1", "100.64.3.0"]).returncode == 0
    assert lab.exec("node1", ["ping", "-c1", "-W1", "100.64.2.0"]).returncode == 0   # across the router
