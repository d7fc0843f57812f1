"""The mesh end to end on a real 3-node flannel-style overlay (network namespaces), healthy and broken."""

from __future__ import annotations

import json
import sys
import time

import pytest

from tests.lab.agent_netns import Overlay, SubprocessAgent, requires_root, three_node_overlay
from vxlan_conformance.mesh.agents import MeshNode, build_plans, pair_evidence, run_mesh
from vxlan_conformance.model.evidence import Echo, PairEvidence

PROBE_PORT = 18472
needs_root = pytest.mark.skipif(requires_root() is not None, reason=str(requires_root()))


def all_pairs(nodes: list[MeshNode]) -> list[tuple[str, str]]:
    return [(a.name, b.name) for a in nodes for b in nodes if a is not b]


def mesh_run(overlay: Overlay, pairs: list[tuple[str, str]] | None = None):
    plans = build_plans(overlay.nodes, pairs or all_pairs(overlay.nodes), PROBE_PORT, deadline_s=20)
    reports = run_mesh(plans, overlay.launch, timeout_s=15)
    return reports, pair_evidence(plans, reports)


overlay = pytest.fixture(three_node_overlay)


def node(i: int) -> str:
    return f"agt-{i}"


# --- plans (no root needed) -----------------------------------------------------------------------------
def fake_nodes(count: int) -> list[MeshNode]:
    return [MeshNode(name=node(i), address=f"198.19.200.{i}", underlay_if="eth0", vtep_ip=f"100.126.{i}.0",
                     vtep_mac=f"02:a9:00:00:00:{i:02x}", device_mtu=1450, port=8472, vni=1, python="python3")
            for i in range(1, count + 1)]


def test_plans_follow_the_requested_pairs_only():
    plans = build_plans(fake_nodes(4), [(node(1), node(2)), (node(3), node(2))], PROBE_PORT, 10)
    assert sorted(plans) == [node(1), node(2), node(3)]  # agt-4 takes no part
    assert [t["name"] for t in plans[node(1)]["targets"]] == [node(2)]
    assert plans[node(2)]["targets"] == []  # receives only, but still answers and captures
    assert {p["name"] for p in plans[node(2)]["peers"]} == {node(1), node(3)}
    assert json.loads(json.dumps(plans)) == plans


def test_plan_frame_carries_the_receiver_vtep():
    plans = build_plans(fake_nodes(2), [(node(1), node(2))], PROBE_PORT, 10)
    frame = bytes.fromhex(plans[node(1)]["targets"][0]["frame"])
    assert frame[4:7] == b"\x00\x00\x01"  # VNI 1
    assert frame[8:14] == bytes.fromhex("02a900000002")  # inner dst MAC = agt-2's VTEP MAC


@pytest.mark.parametrize(("pairs", "message"), [
    ([("agt-1", "agt-9")], "unknown node 'agt-9'"),
    ([("agt-1", "agt-1")], "probes a node from itself"),
])
def test_bad_pairs_are_named(pairs, message):
    with pytest.raises(ValueError, match=message):
        build_plans(fake_nodes(2), pairs, PROBE_PORT, 10)


def test_pair_evidence_round_trips_through_json():
    evidence = PairEvidence(sender="a", receiver="b", udp_echo=Echo(replied=3), pcap_frames=["00"],
                            errors=["x"])
    assert PairEvidence.from_dict(json.loads(json.dumps(evidence.to_dict()))) == evidence


# --- real overlay ---------------------------------------------------------------------------------------
@needs_root
def test_healthy_overlay_every_pair_passes(overlay):
    reports, evidence = mesh_run(overlay)
    assert all("error" not in report for report in reports.values()), reports
    assert len(evidence) == 6
    for pair, item in evidence.items():
        assert item.udp_echo.replied == 3 and item.udp_echo.corrupted == 0, pair
        assert item.vxlan_frame.reply_seen, pair
        assert item.overlay_ping.reply_seen, pair
        assert item.df_probe.reply_seen and item.df_probe.size == 1450, pair
        assert item.captured.at_port(8472) >= 3, pair
        assert item.captured.bad_csum == 0 and item.captured.valid_csum == item.captured.count, pair
        assert item.captured.inner_dst_macs == [next(n.vtep_mac for n in overlay.nodes
                                                        if n.name == item.receiver)], pair
        assert item.errors == [], pair


@needs_root
def test_blocked_udp_into_node3_fails_exactly_pairs_into_it(overlay):
    overlay.block_udp_into(3, 8472)
    overlay.block_udp_into(3, PROBE_PORT)
    _reports, evidence = mesh_run(overlay)
    for (sender, receiver), item in evidence.items():
        into3 = receiver == node(3)
        touches3 = node(3) in (sender, receiver)
        assert (item.captured.count == 0) is into3, (sender, receiver)
        assert (item.udp_echo.replied == 0) is into3, (sender, receiver)
        # the VXLAN answer to node3 travels on 8472 too, so both directions of node3's pairs lose it
        assert item.vxlan_frame.reply_seen is not touches3, (sender, receiver)
        assert item.overlay_ping.reply_seen is not touches3, (sender, receiver)


@needs_root
def test_bad_checksum_from_node2_is_seen_by_the_receiver(overlay):
    overlay.corrupt_checksum_from(2)
    reports, evidence = mesh_run(overlay)
    item = evidence[(node(2), node(3))]
    assert item.captured.bad_csum >= 3
    assert item.captured.receiver_in_csum_errors_delta >= 3
    assert not item.vxlan_frame.reply_seen and not item.overlay_ping.reply_seen
    assert item.udp_echo.replied == 3  # the probe port is not corrupted: UDP itself works
    healthy = evidence[(node(1), node(3))]
    assert healthy.captured.bad_csum == 0 and healthy.vxlan_frame.reply_seen
    assert reports[node(2)]["snmp_udp"]["after"]["InCsumErrors"] == \
        reports[node(2)]["snmp_udp"]["before"]["InCsumErrors"]


@needs_root
def test_failed_and_hung_agents_do_not_block_the_others(overlay):
    plans = build_plans(overlay.nodes, all_pairs(overlay.nodes), PROBE_PORT, deadline_s=20)

    def launch(name: str):
        if name == node(2):
            raise ConnectionError("ssh: connect to host agt-2 port 22: No route to host")
        if name == node(3):  # swallows its input and never says READY
            agent = SubprocessAgent(["ip", "netns", "exec", name, sys.executable, "-c",
                                     "import sys; sys.stdin.buffer.read()"])
            overlay.agents.append(agent)
            return agent
        return overlay.launch(name)

    started = time.monotonic()
    reports = run_mesh(plans, launch, timeout_s=5)
    assert time.monotonic() - started < 7
    assert "No route to host" in reports[node(2)]["error"]
    assert "READY" in reports[node(3)]["error"] and reports[node(3)]["phase"] == "ready"
    assert "error" not in reports[node(1)] and reports[node(1)]["deadline"] is False
    evidence = pair_evidence(plans, reports)
    assert evidence[(node(1), node(2))].errors == [f"receiver {node(2)}: {reports[node(2)]['error']}"]
    assert not evidence[(node(1), node(2))].udp_echo.replied
