"""A receiver whose probe agent failed (recorded: `python -m vxlan_conformance.lab up --instance 3 --fault
hostile=agent-garbage@node3`, then suites/test_datapath.py; tests/fixtures/evidence/hostile-agent-garbage-node3.json)
leaves the pairs into it without a capture and without an echo responder: they are MESH_FAILED naming the
agent, not a network code (the probe port was never blocked), and every pair without node3 passes."""

from __future__ import annotations

from pathlib import Path

from vxlan_conformance.checks.datapath import diagnose
from vxlan_conformance.model.rundata import RunData

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "evidence" / "hostile-agent-garbage-node3.json"


def test_pairs_into_a_node_whose_agent_failed_are_mesh_failed():
    run = RunData.load(FIXTURE)
    results = {f"{a}->{b}": diagnose(run, a, b) for a, b in run.pairs()}
    into = {f"{peer}->node3" for peer in ("node1", "node2", "node4")}
    for pair in into:
        assert run.mesh[pair].probed and not run.mesh[pair].captured.available  # what was recorded
        assert results[pair].codes == ("MESH_FAILED",), (pair, results[pair].codes, results[pair].message)
        assert results[pair].message.startswith("node3's probe agent failed"), results[pair].message
        assert "receiver node3: " in results[pair].message
    out_of = {f"node3->{peer}" for peer in ("node1", "node2", "node4")}
    assert {p for p, r in results.items() if r.codes} == into | out_of
    assert all(r.codes == ("MESH_FAILED",) for p, r in results.items() if p.startswith("node3->"))
