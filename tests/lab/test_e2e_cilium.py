"""Issue 18 end to end: the suite against the cilium lab preset (Cilium's VXLAN tunnel mode with the
kernel's flow-based tunnelling standing in for BPF, lab/cilium.py), run as a user runs it (pytest -n auto,
a subprocess, summary.json). Healthy: every applicable check passes, the checks that do not apply to
Cilium are one skip each with the reason, nothing claims an FDB, neighbour or VTEP MAC problem. Faults:
exactly the broken subjects, with their codes."""

from __future__ import annotations

import pytest

from tests.lab.suite_runner import run_suite

pytestmark = pytest.mark.root

NOT_APPLICABLE = {"peer-fdb", "peer-neigh", "vtep-mac-unique", "vtep-mac-advertised", "vtep-local",
                  "vtep-mac-predicted-unique"}
NEVER_FOR_CILIUM = {"FDB_MISSING", "FDB_WRONG_DST", "NEIGH_MISSING", "NEIGH_WRONG_MAC", "VTEP_MAC_MISMATCH",
                    "VTEP_MAC_DUPLICATE", "VTEP_LOCAL_MISMATCH", "MESH_FAILED"}

SCENARIOS = {
    # the tunnel port dropped from node1 to node2 only: node2->node1's answers are lost too, reported there
    "blocked-one-way": (["blocked-port@node1->node2"], {("node1->node2", "UDP_PORT_BLOCKED")}),
    # node2's outer UDP checksums are wrong (Cilium sends 0, which is valid; 0xffff is not)
    "bad-checksum": (["bad-checksum@node2"], {("node2->node1", "OUTER_CHECKSUM_BAD"),
                                              ("node2->node3", "OUTER_CHECKSUM_BAD")}),
    # node1 lost its route to node2's pod CIDR via cilium_host
    "missing-route": (["missing-route@node1->node2"], {("node1->node2", "ROUTE_MISSING")}),
    # node1's tunnel entry for node2 is gone (read with the lab's cilium-dbg stand-in): peer-tunnel and datapath
    "missing-tunnel": (["missing-tunnel@node1->node2"], {("node1->node2", "TUNNEL_MISSING")}),
    # node3's CiliumNode advertises a wrong InternalIP: peers tunnel node3's traffic there
    "wrong-address": (["wrong-public-ip@node3"], {("node3", "PUBLIC_IP_MISMATCH"),
                                                  ("node1->node3", "PUBLIC_IP_MISMATCH"),
                                                  ("node2->node3", "PUBLIC_IP_MISMATCH")}),
}

# which check names each failure: the node/pair checks (from node facts and the view) and the datapath
CHECKS = {
    "blocked-one-way": {("datapath", "node1->node2")},
    "bad-checksum": {("datapath", "node2->node1"), ("datapath", "node2->node3")},
    "missing-route": {("peer-route", "node1->node2"), ("datapath", "node1->node2")},
    "missing-tunnel": {("peer-tunnel", "node1->node2"), ("datapath", "node1->node2")},
    "wrong-address": {("public-ip", "node3"), ("datapath", "node1->node3"), ("datapath", "node2->node3")},
}


def test_healthy_cilium_passes_every_applicable_check_and_says_what_does_not_apply(lab, tmp_path):
    state = lab.up(nodes=3, preset="cilium", inventory_path=str(tmp_path / "lab.yaml"))
    result = run_suite(state.inventory_path, tmp_path / "reports", "suites")
    summary = result.summary
    assert result.failures() == set(), result.output[-4000:]
    assert result.exit_code == 0
    results = summary["results"]
    skipped = [r for r in results if r["status"] == "skipped"]
    # once per run (one subject, "*" or "*->*"), with the reason
    assert sorted(r["check"] for r in skipped) == sorted(NOT_APPLICABLE)
    assert {r["subject"] for r in skipped} == {"*", "*->*"}
    assert all(r["message"] for r in skipped)
    assert not {c for r in results for c in r["codes"]} & NEVER_FOR_CILIUM
    checks = summary["checks"]
    assert checks["cni"] == "cilium" and set(checks["not_applicable"]) == NOT_APPLICABLE
    assert "FDB" in checks["not_applicable"]["peer-fdb"]
    ran = {"datapath", "peer-route", "peer-tunnel", "vtep-config", "vtep-mtu", "public-ip", "cluster-view"}
    assert ran <= set(checks["ran"])
    passed = {(r["check"], r["subject"]) for r in results if r["status"] == "passed"}
    pairs = {f"{a}->{b}" for a in ("node1", "node2", "node3") for b in ("node1", "node2", "node3") if a != b}
    for check in ("datapath", "peer-route", "peer-tunnel"):
        assert {(check, p) for p in pairs} <= passed, check


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_cilium_faults_are_named_exactly(lab, tmp_path, scenario):
    faults, expected = SCENARIOS[scenario]
    state = lab.up(nodes=3, preset="cilium", faults=faults, inventory_path=str(tmp_path / "lab.yaml"))
    result = run_suite(state.inventory_path, tmp_path / "reports", "suites")
    assert result.failures() == expected, result.output[-4000:]
    failing = {(r["check"], r["subject"]) for r in result.summary["results"] if r["status"] == "failed"}
    assert failing == CHECKS[scenario]
    assert not {c for r in result.summary["results"] for c in r["codes"]} & NEVER_FOR_CILIUM
