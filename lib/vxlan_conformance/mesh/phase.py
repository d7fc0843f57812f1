"""The mesh phase of a run: node agents on every node at once over SSH, evidence per directed pair.

Runs once per run on the controller, after facts and view, and only when the datapath suite is
selected. It probes the run's pairs (vxlan_conformance.model.pairs) between nodes that can take an agent.
"""

from __future__ import annotations

import shlex
import time

from vxlan_conformance import cni
from vxlan_conformance.agent import python_command
from vxlan_conformance.collect.gather import Progress
from vxlan_conformance.inventory import Inventory
from vxlan_conformance.mesh.agents import MeshNode, build_plans, pair_evidence, run_mesh
from vxlan_conformance.model.evidence import PairEvidence
from vxlan_conformance.model.facts import usable_python
from vxlan_conformance.model.rundata import RunData
from vxlan_conformance.transport import Pool, Stream


def mesh_timeout(agents: int) -> float:
    """The runner's limit for the whole mesh. Starting the agents costs a Python start-up per node on
    the runner's and the nodes' cores, so it grows with N."""
    return 15.0 + 0.1 * agents


def agent_deadline(agents: int) -> float:
    """The agent leaves by itself after this, even if the SSH session is gone (after the runner's limit)."""
    return mesh_timeout(agents) + 25.0


def agent_line_limit(agents: int) -> int:
    """The longest line an agent may print (its EVIDENCE: per peer a few probe states, bounded sets and
    at most keep_frames snapped frames, well under 16 KiB); a longer one is that node's error."""
    return (1 << 20) + agents * (64 << 10)


def mesh_nodes(run: RunData) -> tuple[list[MeshNode], dict[str, str]]:
    """MeshNodes for the nodes the mesh can use, and why each other node cannot take part."""
    nodes, excluded = [], {}
    for host in run.nodes:
        facts = run.facts.get(host)
        if facts is None:
            excluded[host] = "unreachable"
            continue
        python = usable_python(facts)
        vtep_ip = cni.of_run(run).device_ip(run, host)  # Cilium: the router IP on cilium_host
        if facts.device is None or vtep_ip is None:
            where = "" if run.overlay.get("cni") != "cilium" else " (and no router IP on cilium_host)"
            excluded[host] = f"no VXLAN device {run.overlay['device']} with an address{where}"
            continue
        if python is None:
            excluded[host] = "no Python 2.7/3.6+ for the agent"
            continue
        if facts.uid not in (0, None):  # the facts ran as the agent would (same user, same become)
            excluded[host] = f"connected as uid {facts.uid}, not root: the agent's raw sockets need root"
            continue
        underlay = facts.underlay.name if facts.underlay else facts.device.dev
        nodes.append(MeshNode(name=host, address=run.addresses[host], underlay_if=underlay or "",
                              vtep_ip=vtep_ip, vtep_mac=cni.of_run(run).vtep(run, host).mac or facts.device.mac or "",
                              device_mtu=expected_mtu(run, host),
                              port=facts.device.port or int(run.overlay["port"]),
                              vni=cni.of_run(run).probe_vni(run, host),
                              python=python, device=facts.device.name or run.overlay["device"]))
    return nodes, excluded


def expected_mtu(run: RunData, host: str) -> int:
    """The DF probe's size: the overlay MTU the cluster should have (vxlan_mtu, or underlay MTU - 50),
    so a node whose device MTU is smaller fails it (MTU_MISMATCH)."""
    facts = run.facts[host]
    if run.overlay.get("mtu"):
        return int(run.overlay["mtu"])
    if facts.underlay is not None and facts.underlay.mtu:
        return facts.underlay.mtu - 50
    return facts.device.mtu if facts.device and facts.device.mtu else 1450


def _slim(evidence: PairEvidence) -> PairEvidence:
    """Captured bytes are evidence of a failure; a pair whose every probe was answered with good
    checksums keeps its counts only (at 100 nodes the frames would be most of the run data)."""
    if evidence.answered and evidence.df_probe.reply_seen and evidence.udp_echo.ok and not evidence.captured.bad_csum:
        evidence.pcap_frames = []
        evidence.captured.frames = []
    return evidence


def run_mesh_phase(inventory: Inventory, pool: Pool, run: RunData, *, progress: Progress) -> None:
    if not run.options.get("mesh"):
        return
    start = time.perf_counter()
    nodes, excluded = mesh_nodes(run)
    names = {n.name for n in nodes}
    pairs = [(a, b) for a, b in run.pairs() if a in names and b in names]
    run.mesh_pairs = [f"{a}->{b}" for a, b in pairs]
    run.mesh_excluded = excluded
    if excluded:
        progress("mesh: left out " + ", ".join(f"{h} ({why})" for h, why in excluded.items()))
    if not pairs:
        run.mesh_error = "no node pair can be probed" + (f" ({len(excluded)} nodes left out)" if excluded else "")
        return
    progress(f"mesh: {len(pairs)} directed pairs, {len(nodes)} agents")
    deadline = agent_deadline(len(nodes))
    plans = build_plans(nodes, pairs, int(run.overlay["probe_port"]), deadline)
    by_name = {n.name: n for n in nodes}
    max_line = agent_line_limit(len(nodes))

    def launch(name: str) -> Stream:
        command = shlex.join(python_command(by_name[name].python))
        return pool.connection(name).stream(command, limit=deadline + 5, max_line=max_line)

    reports = run_mesh(plans, launch, timeout_s=mesh_timeout(len(nodes)))
    failed = {name: r["error"] for name, r in reports.items() if "error" in r}
    for name, error in failed.items():
        progress(f"mesh: agent on {name} failed: {error}")
    run.mesh = {f"{a}->{b}": _slim(ev) for (a, b), ev in pair_evidence(plans, reports).items()}
    run.timings["mesh"] = round(time.perf_counter() - start, 3)
