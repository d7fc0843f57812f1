"""Issue 18 end to end: the suite against the cilium lab preset (Cilium's VXLAN tunnel mode with the
kernel's flow-based tunnelling standing in for BPF, lab/cilium.py), run as a user runs it (pytest -n auto,
a subprocess, summary.json). Healthy: every applicable check passes, the checks that do not apply to
Cilium are one skip each with the reason, nothing claims an FDB, neighbour or VTEP MAC problem. Faults:
exactly the broken subjects, with their codes. Both as Cilium up to v1.17 (the tunnel map, `cilium-dbg bpf
tunnel list`) and as v1.18 (no tunnel map: the suite reads `cilium-dbg bpf ipcache list`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.lab.suite_runner import run_suite
from vxlan_conformance.model.rundata import RunData

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

# the command each version's tunnel endpoints are read with (lab/cilium.py's cilium-dbg stand-in answers it)
READ = {"1.17": "cilium-dbg bpf tunnel list -o json", "1.18": "cilium-dbg bpf ipcache list -o json"}
TABLE = {"1.17": "tunnel map", "1.18": "ipcache"}
# every scenario as Cilium up to v1.17; the ones that break a tunnel endpoint also as v1.18
CASES = [(s, "1.17") for s in SCENARIOS] + [("missing-tunnel", "1.18"), ("wrong-address", "1.18")]

# which check names each failure: the node/pair checks (from node facts and the view) and the datapath
CHECKS = {
    "blocked-one-way": {("datapath", "node1->node2")},
    "bad-checksum": {("datapath", "node2->node1"), ("datapath", "node2->node3")},
    "missing-route": {("peer-route", "node1->node2"), ("datapath", "node1->node2")},
    "missing-tunnel": {("peer-tunnel", "node1->node2"), ("datapath", "node1->node2")},
    "wrong-address": {("public-ip", "node3"), ("datapath", "node1->node3"), ("datapath", "node2->node3")},
}


@pytest.mark.parametrize("version", list(READ))
def test_healthy_cilium_passes_every_applicable_check_and_says_what_does_not_apply(lab, tmp_path, version):
    state = lab.up(nodes=3, preset="cilium", cilium_version=version, inventory_path=str(tmp_path / "lab.yaml"))
    assert lab.status()["cilium_version"] == version
    status = subprocess.run([sys.executable, "-m", "vxlan_conformance.lab", "status", "--instance", str(lab.instance)],
                            capture_output=True, text=True, timeout=30)
    assert status.stdout.startswith(f"lab {lab.instance}: cilium v{version} cilium_vxlan port 8472"), status
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
    run = RunData.load(tmp_path / "reports" / ".run" / "run.json")  # every pair compared, none skipped
    for host, node in run.facts.items():
        peers = {n.subnet.split("/")[0]: n.address for n in state.nodes if n.name != host}
        assert (node.tunnel_source, node.tunnel_map) == (READ[version], peers), host


@pytest.mark.parametrize(("scenario", "version"), CASES, ids=[f"{s}-v{v}" for s, v in CASES])
def test_cilium_faults_are_named_exactly(lab, tmp_path, scenario, version):
    faults, expected = SCENARIOS[scenario]
    state = lab.up(nodes=3, preset="cilium", cilium_version=version, faults=faults,
                   inventory_path=str(tmp_path / "lab.yaml"))
    result = run_suite(state.inventory_path, tmp_path / "reports", "suites")
    assert result.failures() == expected, result.output[-4000:]
    failing = {(r["check"], r["subject"]) for r in result.summary["results"] if r["status"] == "failed"}
    assert failing == CHECKS[scenario]
    assert not {c for r in result.summary["results"] for c in r["codes"]} & NEVER_FOR_CILIUM
    tunnel = [r for r in result.summary["results"] if r["check"] == "peer-tunnel" and r["status"] == "failed"]
    assert all(f"node1's {TABLE[version]} " in r["message"] for r in tunnel)  # names what was read
