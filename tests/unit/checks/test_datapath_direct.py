"""The datapath verdict of a pair that is not VXLAN: Calico vxlanMode CrossSubnet routes a peer on the node's
own subnet via its node IP on eth0 (felix route_mgr.go noEncapRoute). node1 (10.0.0.11) and node2 (10.0.0.12)
share 10.0.0.0/24; node3 (10.0.1.13) does not."""

from __future__ import annotations

from dataclasses import replace

from tests.unit.builders import PROBE_PORT, calico_cluster_view, calico_routes, calico_run
from vxlan_conformance.checks import datapath
from vxlan_conformance.model.evidence import Probe
from vxlan_conformance.model.rundata import RunData


def crosssubnet_run() -> RunData:
    run = calico_run()
    for host, facts in run.facts.items():
        facts.routes = calico_routes(host, "CrossSubnet")
    run.view_cluster = calico_cluster_view("crosssubnet")
    return run


def no_vxlan(run: RunData, pair: str) -> None:
    """Nothing of A's VXLAN reaches B (port 4789 blocked on the way): no raw frame, no answer to it."""
    ev = run.mesh[pair]
    run.mesh[pair] = replace(ev, vxlan_frame=Probe(sent=1, port=4789),
                             captured=replace(ev.captured, by_dport={PROBE_PORT: 3}, requests={}))


def test_healthy_direct_pair_passes_with_a_note_and_vxlan_pairs_without():
    run = crosssubnet_run()
    direct = datapath.diagnose(run, "node1", "node2")
    assert direct.passed and "direct pair, not VXLAN" in direct.note and "eth0" in direct.note
    across = datapath.diagnose(run, "node1", "node3")
    assert across.passed and not across.note


def test_blocked_vxlan_does_not_fail_a_direct_pair_but_fails_a_vxlan_pair():
    run = crosssubnet_run()
    no_vxlan(run, "node1->node2")
    no_vxlan(run, "node1->node3")
    run.mesh["node1->node3"] = replace(run.mesh["node1->node3"], overlay_ping=Probe(sent=1),
                                       df_probe=Probe(sent=1, size=1450))
    assert datapath.diagnose(run, "node1", "node2").passed
    assert datapath.diagnose(run, "node1", "node3").codes == ("UDP_PORT_BLOCKED",)


def test_missing_direct_route_is_named_on_its_pair_and_the_reverse_pair_passes():
    run = crosssubnet_run()
    run.facts["node1"].routes = [r for r in run.facts["node1"].routes if r.via != "10.0.0.12"]
    run.facts["node1"]._index = None
    for pair in ("node1->node2", "node2->node1"):   # node1's pings have no route; node2's answers neither
        run.mesh[pair] = replace(run.mesh[pair], overlay_ping=Probe(sent=1), df_probe=Probe(sent=1, size=1450))
    forward = datapath.diagnose(run, "node1", "node2")
    assert forward.codes == ("ROUTE_MISSING",) and "via 10.0.0.12 dev eth0" in forward.message
    back = datapath.diagnose(run, "node2", "node1")
    assert back.passed and "lost on node1->node2" in back.note
