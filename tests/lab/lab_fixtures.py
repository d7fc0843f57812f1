"""Reusable lab fixtures and helpers for the project's tests (the lead's conftest may import them).

The instance comes from VXLAB_TEST_INSTANCE (default 1) so a user's lab on instance 0 is left alone.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from vxlan_conformance.lab import Lab, LabState
from vxlan_conformance.lab.probe import ping_matrix

TEST_INSTANCE = int(os.environ.get("VXLAB_TEST_INSTANCE", "1"))
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, sshd, nftables)")


@pytest.fixture(scope="module")
def lab_4(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, LabState]]:
    """A healthy 4-node flannel lab for one test module; faults are cleared by the tests that add them."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    lab = Lab(TEST_INSTANCE)
    inventory = tmp_path_factory.mktemp("lab") / "lab.yaml"
    state = lab.up(nodes=4, inventory_path=str(inventory))
    yield lab, state
    lab.down()


def overlay_broken(state: LabState, timeout: float = 1.0) -> set[str]:
    """Directed pairs whose overlay ping fails, as 'AB' digit strings ('12' = node1 -> node2)."""
    matrix = ping_matrix({n.name: n.netns for n in state.nodes}, {n.name: n.vtep_ip for n in state.nodes},
                         timeout=timeout)
    return {f"{a[4:]}{b[4:]}" for (a, b), ok in matrix.items() if not ok}


def ssh_connect(state: LabState, node: str, timeout: float = 5, user: str = "root") -> paramiko.SSHClient:
    """Strict host keys from the lab's known_hosts, the lab key, TCP_NODELAY (lab-notes 2)."""
    address = state.node(node).address
    sock = socket.create_connection((address, 22), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client = paramiko.SSHClient()
    client.load_host_keys(state.known_hosts_path)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(address, username=user, key_filename=state.key_path, sock=sock, timeout=timeout,
                   allow_agent=False, look_for_keys=False)
    return client


def ssh_run(client: paramiko.SSHClient, command: str, timeout: float = 5) -> str:
    _, stdout, _ = client.exec_command(command, timeout=timeout)
    return stdout.read().decode()


def with_node(node: int, count: int = 4) -> set[str]:
    """Both directions of every pair that involves `node`."""
    return {f"{node}{o}" for o in range(1, count + 1) if o != node} | {f"{o}{node}" for o in range(1, count + 1)
                                                                        if o != node}


def nothing_left(instance: int) -> list[str]:
    """What a finished `down` must not leave behind, as readable findings (empty = clean)."""
    import subprocess

    found = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=5).stdout
    found += [f"netns {line.split()[0]}" for line in netns.splitlines() if line.startswith(f"vxlab{instance}-")]
    if subprocess.run(["ip", "link", "show", f"vxlab{instance}br"], capture_output=True, timeout=5).returncode == 0:
        found.append(f"bridge vxlab{instance}br")
    if Path(f"/run/vxlan-lab/{instance}").exists():
        found.append("state dir")
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, timeout=5).stdout
    found += [f"nft {line}" for line in tables.splitlines() if f"vxlab{instance}" in line]
    return found
