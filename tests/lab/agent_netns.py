"""Test-only flannel-style overlay: N network namespaces on one bridge, plus a subprocess agent launcher.

Names (reserved for these tests): netns ``agt-<i>``, root veth ``agtv<i>``, bridge ``agtbr``
(198.19.200.254/24), node i underlay 198.19.200.i, flannel.1 (VNI 1, port 8472) with 100.126.i.0/32.
Faults: UDP to a node's VXLAN port dropped on the bridge (the receiver's capture sees nothing), and a
wrong outer UDP checksum (0xffff) written on a node's egress (lab-notes 3d). Everything is removed by
``Overlay.close()``, also when a build fails half-way.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shlex
import subprocess
import sys
import threading
from dataclasses import dataclass, field

from vxlan_conformance.agent import python_command
from vxlan_conformance.mesh.agents import MeshNode

PREFIX = "agt-"
BRIDGE = "agtbr"
BRIDGE_ADDRESS = "198.19.200.254/24"
FAULT_TABLE = "agt_fault"
VXLAN_PORT = 8472
DEVICE_MTU = 1450
COMMAND_TIMEOUT_S = 20.0


def run(argv: list[str], stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run a setup command with a time limit; failures name the command."""
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    if check and done.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed: {done.stderr.strip()}")
    return done


def node_name(index: int) -> str:
    return f"{PREFIX}{index}"


def vtep_mac(index: int) -> str:
    return f"02:a9:00:00:{index >> 8:02x}:{index & 0xFF:02x}"


def underlay_mac(index: int) -> str:
    return f"02:a8:00:00:{index >> 8:02x}:{index & 0xFF:02x}"


def remove_leftovers() -> None:
    """Delete what an interrupted earlier run of these tests may have left (only our own names)."""
    for name in run(["ip", "netns", "list"]).stdout.split():
        if name.startswith(PREFIX) and name[len(PREFIX):].isdigit():
            run(["ip", "netns", "del", name], check=False)
    for line in run(["ip", "-o", "link", "show"]).stdout.splitlines():
        link = line.split(":")[1].strip().split("@")[0]
        if link == BRIDGE or (link.startswith("agtv") and link[4:].isdigit()):
            run(["ip", "link", "del", link], check=False)
    run(["nft", "delete", "table", "bridge", FAULT_TABLE], check=False)


def requires_root() -> str | None:
    """Skip reason for tests that build namespaces, or None when we may."""
    return None if os.geteuid() == 0 else "needs root: builds network namespaces and raw sockets"


class SubprocessAgent:
    """AgentHandle over a local process (``ip netns exec <ns> python -u -c LOADER``)."""

    def __init__(self, argv: list[str]):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[bytes] = []
        self._readers = [threading.Thread(target=self._pump_stdout, daemon=True),
                         threading.Thread(target=self._pump_stderr, daemon=True)]
        for reader in self._readers:
            reader.start()

    def _pump_stdout(self) -> None:
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self.lines.put(None)

    def _pump_stderr(self) -> None:
        for raw in self.proc.stderr:
            if len(self.stderr) < 50:
                self.stderr.append(raw)

    def write(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def readline(self, timeout: float) -> str | None:
        try:
            line = self.lines.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None
        if line is None:
            self.lines.put(None)  # stay at end of output for later calls
        return line

    def close_stdin(self) -> None:
        if not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()

    def close(self, timeout: float = 5.0) -> None:
        """Close stdin, wait for the agent; kill it (by our own PID) only if it overstays."""
        self.close_stdin()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        self.proc.stdout.close()
        self.proc.stderr.close()


@dataclass
class Overlay:
    """A running test overlay; `nodes` are ready for vxlan_conformance.mesh.agents."""

    count: int
    python: str = sys.executable
    nodes: list[MeshNode] = field(default_factory=list)
    agents: list[SubprocessAgent] = field(default_factory=list)

    def address(self, index: int) -> str:
        return f"198.19.200.{index}"

    def build(self) -> Overlay:
        """Create bridge, namespaces and VTEPs; on any failure remove what was made and re-raise."""
        if not 1 <= self.count <= 250:
            raise ValueError("the agt- overlay supports 1..250 nodes")
        remove_leftovers()
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _build(self) -> None:
        root = [f"link add {BRIDGE} type bridge", f"addr add {BRIDGE_ADDRESS} dev {BRIDGE}",
                f"link set {BRIDGE} up"]
        for i in range(1, self.count + 1):
            run(["ip", "netns", "add", node_name(i)])
            root += [f"link add agtv{i} type veth peer name eth0 netns {node_name(i)} address {underlay_mac(i)}",
                     f"link set agtv{i} master {BRIDGE} up"]
        run(["ip", "-batch", "-"], stdin="\n".join(root) + "\n")
        for i in range(1, self.count + 1):
            links, fdb = self._node_commands(i)
            run(["ip", "-n", node_name(i), "-batch", "-"], stdin="\n".join(links) + "\n")
            run(["bridge", "-n", node_name(i), "-batch", "-"], stdin="\n".join(fdb) + "\n")
            run(["ip", "netns", "exec", node_name(i), "ethtool", "-K", "eth0", "tx", "off"])
            self.nodes.append(MeshNode(name=node_name(i), address=self.address(i), underlay_if="eth0",
                                       vtep_ip=f"100.126.{i}.0", vtep_mac=vtep_mac(i), device_mtu=DEVICE_MTU,
                                       port=VXLAN_PORT, vni=1, python=self.python))

    def _node_commands(self, i: int) -> tuple[list[str], list[str]]:
        """`ip -batch` lines and `bridge -batch` lines that make node i a flannel.1 VTEP."""
        commands = ["link set lo up", f"addr add {self.address(i)}/24 dev eth0", "link set eth0 up",
                    f"link add flannel.1 address {vtep_mac(i)} mtu {DEVICE_MTU} type vxlan id 1 "
                    f"local {self.address(i)} dev eth0 dstport {VXLAN_PORT} nolearning",
                    f"addr add 100.126.{i}.0/32 dev flannel.1", "link set flannel.1 up"]
        fdb = []
        for j in range(1, self.count + 1):
            if j != i:
                # permanent underlay entries: ARP entries of all namespaces share one kernel table whose
                # gc_thresh3 (1024) a 50-node mesh exceeds ("neighbor table overflow", sends fail ENOBUFS)
                commands += [f"neigh add {self.address(j)} lladdr {underlay_mac(j)} dev eth0 nud permanent",
                             f"route add 100.126.{j}.0/24 via 100.126.{j}.0 dev flannel.1 onlink",
                             f"neigh add 100.126.{j}.0 lladdr {vtep_mac(j)} dev flannel.1 nud permanent"]
                fdb.append(f"fdb append {vtep_mac(j)} dev flannel.1 dst {self.address(j)}")
        return commands, fdb

    def launch(self, name: str) -> SubprocessAgent:
        """AgentHandle for vxlan_conformance.mesh.agents.run_mesh: the agent inside the node's namespace."""
        node = next(node for node in self.nodes if node.name == name)
        agent = SubprocessAgent(["ip", "netns", "exec", name, *python_command(node.python)])
        self.agents.append(agent)
        return agent

    def exec(self, name: str, argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
        return run(["ip", "netns", "exec", name, *argv], stdin=stdin)

    def block_udp_into(self, index: int, port: int = VXLAN_PORT) -> None:
        """Drop UDP to `port` on the bridge port towards node `index` (a cloud security group)."""
        chain = "type filter hook forward priority 0; policy accept;"
        rule = f'oifname "agtv{index}" udp dport {port} counter drop'
        rules = f"table bridge {FAULT_TABLE} {{\n chain forward {{\n  {chain}\n  {rule}\n }}\n}}\n"
        run(["nft", "-f", "-"], stdin=rules)

    def corrupt_checksum_from(self, index: int, port: int = VXLAN_PORT) -> None:
        """Write outer UDP checksum 0xffff on node `index`'s egress to `port` (seed 004's symptom)."""
        chain = 'type filter hook egress device "eth0" priority 0; policy accept;'
        rule = f"ip protocol udp udp dport {port} counter udp checksum set 0xffff"
        rules = f"table netdev {FAULT_TABLE} {{\n chain egress {{\n  {chain}\n  {rule}\n }}\n}}\n"
        self.exec(node_name(index), ["nft", "-f", "-"], stdin=rules)

    def close(self) -> None:
        """Stop our agents, then remove links before namespaces (netns deletion is asynchronous)."""
        for agent in self.agents:
            agent.close()
        self.agents.clear()
        links = [f"link del agtv{i}" for i in range(1, self.count + 1)] + [f"link del {BRIDGE}"]
        run(["ip", "-force", "-batch", "-"], stdin="\n".join(links) + "\n", check=False)
        for i in range(1, self.count + 1):
            run(["ip", "netns", "del", node_name(i)], check=False)
        run(["nft", "delete", "table", "bridge", FAULT_TABLE], check=False)


def three_node_overlay():
    """Fixture body for the test modules: a built 3-node overlay, removed afterwards even on failure."""
    built = Overlay(3).build()
    try:
        yield built
    finally:
        built.close()
