"""Issue 17 end to end: the suite against the Calico lab (felix's derived MACs, two IPAM blocks per node and
a borrowed /32, no MAC annotation), run as a user runs it; healthy passes every check, each fault is named
with its exact subjects and codes."""

from __future__ import annotations

import pytest

from tests.lab.suite_runner import run_suite

pytestmark = pytest.mark.root

NODES = ["node1", "node2", "node3"]


def up(lab, tmp_path, faults=()):
    return lab.up(nodes=3, preset="calico", faults=list(faults), inventory_path=str(tmp_path / "calico.yaml"))


def test_healthy_calico_passes_every_check(lab, tmp_path):
    state = up(lab, tmp_path)
    routes = lab.exec("node3", ["ip", "route", "show", "dev", "vxlan.calico"]).stdout
    assert "100.64.1.64/26 via 100.64.1.0" in routes and "100.64.1.5 via 100.64.2.0" in routes
    result = run_suite(state.inventory_path, tmp_path / "reports")
    assert result.failures() == set(), result.output[-4000:]
    assert result.exit_code == 0
    checks = {r["check"] for r in result.summary["results"] if r["status"] == "passed"}
    assert {"peer-route", "peer-fdb", "peer-neigh", "vtep-mac-advertised", "datapath"} <= checks


@pytest.mark.parametrize(("faults", "expected"), [
    (["blocked-port@node3->node1"], {("node3->node1", "UDP_PORT_BLOCKED")}),
    (["bad-checksum@node2"], {("node2->node1", "OUTER_CHECKSUM_BAD"), ("node2->node3", "OUTER_CHECKSUM_BAD")}),
    (["stale-fdb@node1->node2"], {("node1->node2", "FDB_WRONG_DST")}),
    (["missing-route@node3->node1"], {("node3->node1", "ROUTE_MISSING")}),
], ids=["blocked-one-way", "bad-checksum", "stale-fdb", "missing-route"])
def test_calico_faults_are_named(lab, tmp_path, faults, expected):
    state = up(lab, tmp_path, faults)
    result = run_suite(state.inventory_path, tmp_path / "reports")
    assert result.failures() == expected, result.output[-4000:]


def test_calico_seed_004(lab, tmp_path):
    """kube-proxy's --random-fully + TX checksum offload on vxlan.calico on the CentOS 7.8 kernel."""
    state = up(lab, tmp_path, ["kernel=3.10.0-1127.el7.x86_64@node2", "random-fully@node2", "offload=on@node2"])
    result = run_suite(state.inventory_path, tmp_path / "reports")
    assert result.failures() == {("node2", "CHECKSUM_OFFLOAD_RISK")}, result.output[-4000:]


def test_calico_missing_block_route_and_wrong_mac(lab, tmp_path):
    state = up(lab, tmp_path)
    lab.exec("node3", ["ip", "route", "del", "100.64.1.64/26"])
    # a MAC changed under felix (the kernel flushes the device's neighbours; felix's resync re-adds them)
    lab.exec("node2", ["ip", "link", "set", "vxlan.calico", "address", "66:00:00:00:00:02"])
    for peer in state.nodes:
        if peer.name != "node2":
            lab.exec("node2", ["ip", "neigh", "replace", peer.vtep_ip, "lladdr", peer.vtep_mac, "dev",
                               "vxlan.calico", "nud", "permanent"])
    result = run_suite(state.inventory_path, tmp_path / "reports")
    assert result.failures() == {("node3->node1", "ROUTE_MISSING"), ("node2", "VTEP_MAC_MISMATCH"),
                                 ("node1->node2", "VTEP_MAC_MISMATCH"), ("node3->node2", "VTEP_MAC_MISMATCH")}, \
        result.output[-4000:]
