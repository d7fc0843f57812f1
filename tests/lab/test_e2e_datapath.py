"""Issue 5 end to end: the datapath suite names exactly the broken directed pairs, run as a user runs it
(pytest -n auto against the lab inventory, a subprocess), for flannel, flannel on port 8475 (seed 002)
and the Calico preset; and no agent is left on any node afterwards, even after Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.lab.suite_runner import run_suite, run_with_trigger
from vxlan_conformance.model.pairs import sample_pairs

pytestmark = pytest.mark.root

NODES = ["node1", "node2", "node3", "node4"]


def into(node: str) -> set[str]:
    return {f"{peer}->{node}" for peer in NODES if peer != node}


def out_of(node: str) -> set[str]:
    return {f"{node}->{peer}" for peer in NODES if peer != node}


SCENARIOS = {
    "healthy": ([], {}),
    "blocked-port": (["blocked-port@node2"], {p: "UDP_PORT_BLOCKED" for p in into("node2")}),
    "blocked-one-direction": (["blocked-port@node3->node1"], {"node3->node1": "UDP_PORT_BLOCKED"}),
    "bad-checksum": (["bad-checksum@node2"], {p: "OUTER_CHECKSUM_BAD" for p in out_of("node2")}),
    # node3 took node2's MAC: peers' FDB sends node2's traffic to node3, and the twins drop each other
    "dup-vtep-mac": (["dup-vtep-mac@node2,node3"],
                     {p: "VTEP_MAC_DUPLICATE" for p in into("node2") | {"node2->node3"}}),
    # node2 sends from and advertises the NAT address: broken both ways
    "wrong-public-ip": (["wrong-public-ip@node2"],
                        {p: "PUBLIC_IP_MISMATCH" for p in into("node2") | out_of("node2")}),
    "mtu": (["mtu=1400@node4"], {p: "MTU_MISMATCH" for p in out_of("node4")}),
    "stale-fdb": (["stale-fdb@node1->node2"], {"node1->node2": "FDB_WRONG_DST"}),
}

VARIANTS = {"flannel": {}, "port-8475": {"port": 8475}, "calico": {"preset": "calico"}}


# mtu and stale-fdb do not depend on the port or the preset: run them once, on flannel
CASES = [(s, v) for s in SCENARIOS for v in VARIANTS if v == "flannel" or s not in ("mtu", "stale-fdb")]


@pytest.mark.parametrize(("scenario", "variant"), CASES, ids=[f"{s}-{v}" for s, v in CASES])
def test_datapath_names_exactly_the_broken_pairs(lab, tmp_path, scenario, variant):
    faults, expected = SCENARIOS[scenario]
    state = lab.up(nodes=4, faults=faults, inventory_path=str(tmp_path / "lab.yaml"), **VARIANTS[variant])
    result = run_suite(state.inventory_path, tmp_path / "reports", "suites/test_datapath.py")
    assert result.failures() == {(pair, code) for pair, code in expected.items()}, result.output[-4000:]
    assert result.summary["counts"]["passed"] == 12 - len(expected)
    assert _agents_left(lab, state) == []


def _agents_left(lab, state) -> list[str]:
    """Agent processes or probe-port sockets still present in any node's network namespace (only that
    namespace: other labs on the machine may be running agents of their own)."""
    left = []
    for node in state.nodes:
        pids = subprocess.run(["ip", "netns", "pids", node.netns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue  # ended meanwhile
            if "#--plan--" in cmdline:
                left.append(f"{node.name}: {pid} {cmdline[:80]}")
        ss = lab.exec(node.name, ["ss", "-Huan", "sport", "= :18472"], timeout=5)
        if ss.stdout.strip():
            left.append(f"{node.name}: {ss.stdout.strip()}")
    return left


def test_interrupted_run_leaves_no_agent(lab, tmp_path):
    state = lab.up(nodes=4, inventory_path=str(tmp_path / "lab.yaml"))

    def ctrl_c_while_agents_run(proc: subprocess.Popen) -> None:
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)

    run_with_trigger(state.inventory_path, tmp_path / "reports", "mesh:", ctrl_c_while_agents_run,
                     "suites/test_datapath.py")
    deadline = time.monotonic() + 10
    while _agents_left(lab, state) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _agents_left(lab, state) == []


def test_new_nodes_limits_the_mesh_not_the_node_checks(lab, tmp_path):
    """After an expansion: only pairs touching the new node are probed; node checks still see all."""
    state = lab.up(nodes=4, faults=["dup-vtep-mac@node1,node2"], inventory_path=str(tmp_path / "lab.yaml"))
    result = run_suite(state.inventory_path, tmp_path / "reports", "suites/test_datapath.py",
                       "suites/test_vtep.py", "--new-nodes", "node4")
    pairs = {r["subject"] for r in result.summary["results"] if r["check"] == "datapath"}
    assert pairs == into("node4") | out_of("node4")
    # node checks still see the old nodes' duplicate MAC; of node4's pairs only node4->node1 breaks on it
    # (node2 registered the shared MAC last, so node4 sends node1's traffic to node2)
    assert result.failures() == {("node1", "VTEP_MAC_DUPLICATE"), ("node2", "VTEP_MAC_DUPLICATE"),
                                 ("node4->node1", "VTEP_MAC_DUPLICATE")}


def test_sample_checks_and_probes_the_same_seeded_pairs(lab, tmp_path):
    """--pairs sample:K: configuration and datapath tests cover the same K pairs per sender (grouped per
    sender here), both directions of each, and a fault shows on exactly the sampled pairs it breaks:
    node2's sampled peers reach it no more, and node2's own probes pass (their answers are what is lost)."""
    names = [f"node{i}" for i in range(1, 7)]
    state = lab.up(nodes=6, faults=["blocked-port@node2"], inventory_path=str(tmp_path / "lab.yaml"))
    result = run_suite(state.inventory_path, tmp_path / "reports", "suites/test_datapath.py",
                       "suites/test_peers.py", "--pairs", "sample:2", "--pairs-seed", "3", "--group-pairs", "4")
    sample = {f"{a}->{b}" for a, b in sample_pairs(names, 2, seed=3)}
    for check in ("datapath", "peer-fdb", "peer-neigh", "peer-route"):
        assert {r["subject"] for r in result.summary["results"] if r["check"] == check} == sample, check
    assert result.failures() == {(p, "UDP_PORT_BLOCKED") for p in sample if p.endswith("->node2")}
    # each node's FDB, neighbour and route entries of its 3 unselected peers stay out of the run data
    counters = json.loads((tmp_path / "reports" / ".run" / "run.json").read_text())["counters"]
    assert counters["peer_entries_dropped"] == 6 * 3 * 3


@pytest.mark.parametrize("args", [["--new-nodes", "node9"], ["--pairs", "sample:x"], ["--pairs", "new"]])
def test_bad_pair_selection_is_usage_error(lab, tmp_path, args):
    state = lab.up(nodes=2, inventory_path=str(tmp_path / "lab.yaml"))
    result = run_suite(state.inventory_path, tmp_path / "reports", "suites/test_datapath.py", *args)
    assert result.exit_code == 4 and "Traceback" not in result.output
    assert [line for line in result.output.splitlines() if line.startswith("ERROR")], result.output
