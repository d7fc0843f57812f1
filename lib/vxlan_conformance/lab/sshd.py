"""A real OpenSSH sshd per node: own netns, mount and UTS namespace, hostname = node name.

Keys are generated in-process (cryptography, which paramiko already depends on): 100 host keys cost
milliseconds instead of 100 ssh-keygen processes.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from . import node_files
from .errors import LabError
from .run import SBIN_PATH
from .state import LabNode, LabState

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")
BASHRC = Path("/root/.bashrc")


def node_path(state_dir: Path, node: str) -> str:
    """The PATH an SSH session on `node` sees: its own bin dir first (node1's holds kubectl)."""
    return f"{state_dir / 'nodes' / node / 'bin'}:{SBIN_PATH}"


def write_keypair(path: Path, comment: str) -> str:
    """Write an OpenSSH ed25519 private key (0600) and .pub; return the public key line."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private)
    line = f"{public.decode()} {comment}"
    Path(f"{path}.pub").write_text(line + "\n")
    return line


def prepare(state: LabState) -> None:
    """Lab key, authorized_keys, per-node host keys + sshd_config + bin dir, and known_hosts."""
    root = state.state_dir
    client = write_keypair(Path(state.key_path), f"vxlan-lab-{state.instance}")
    (root / "authorized_keys").write_text(client + "\n")
    (root / "empty").write_text("")
    known = []
    for node in state.nodes:
        node_dir = root / "nodes" / node.name
        (node_dir / "bin").mkdir(parents=True, exist_ok=True)
        host_key = node_dir / "ssh_host_ed25519_key"
        public = write_keypair(host_key, node.name)
        known.append(f"{node.address} {' '.join(public.split()[:2])}")
        write_config(state, node)
    Path(state.known_hosts_path).write_text("\n".join(known) + "\n")


def write_config(state: LabState, node: LabNode, slow_s: int | None = None, mitm: bool = False) -> None:
    """The node's sshd_config; `slow_s` makes every command wait that long first (the `slow` fault);
    `mitm` serves another host key than known_hosts has (a man in the middle, the `mitm` fault)."""
    node_dir = state.state_dir / "nodes" / node.name
    host_key = node_dir / "ssh_host_ed25519_key"
    if mitm:
        host_key = node_dir / "mitm_host_ed25519_key"
        if not host_key.exists():
            write_keypair(host_key, f"mitm-{node.name}")
    text = _config(state, node, host_key)
    if slow_s:
        text += f'ForceCommand sleep {slow_s}; exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n'
    (node_dir / "sshd_config").write_text(text)


def _config(state: LabState, node: LabNode, host_key: Path) -> str:
    root = state.state_dir
    return "\n".join([
        f"ListenAddress {node.address}:22",
        f"HostKey {host_key}",
        f"AuthorizedKeysFile {root / 'authorized_keys'}",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "PidFile none",
        "StrictModes no",
        "MaxStartups 1000",
        "MaxSessions 100",
        "LogLevel ERROR",
        "UseDNS no",
        "Subsystem sftp internal-sftp",
        f"SetEnv PATH={node_path(root, node.name)}",
        "",
    ])


def start(state: LabState) -> list[subprocess.Popen]:
    """Start every sshd; the Popen pid IS sshd (ip netns exec, unshare and sh all exec)."""
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    empty = state.state_dir / "empty"
    procs = []
    for node in state.nodes:
        config = state.state_dir / "nodes" / node.name / "sshd_config"
        # hide /root/.bashrc: pyenv init there costs ~110 ms per SSH command (lab-notes 2)
        hide = f"mount --bind {shlex.quote(str(empty))} {BASHRC}; " if BASHRC.exists() else ""
        script = (f"hostname {shlex.quote(node.name)}; {hide}{node_files.bind_machine_id(state, node)}"
                  f"exec {SSHD} -D -f {shlex.quote(str(config))}")
        with open(log_path(state, node), "wb") as log:  # a file, not a pipe: sshd outlives the CLI process
            procs.append(subprocess.Popen(
                ["ip", "netns", "exec", node.netns, "unshare", "--mount", "--uts", "--propagation", "private",
                 "--", "sh", "-c", script],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True))
    for node, proc in zip(state.nodes, procs, strict=True):
        node.sshd_pid = proc.pid
    return procs


def log_path(state: LabState, node: LabNode) -> Path:
    return state.state_dir / "nodes" / node.name / "sshd.log"


def reload(state: LabState, node: LabNode, timeout: float = 10) -> None:
    """SIGHUP: sshd re-executes itself (same PID) with the new config and opens a new listening socket;
    done when that new socket accepts (the old one may still accept for a moment after the signal)."""
    old = _sockets(node.sshd_pid)
    os.kill(node.sshd_pid, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while True:
        if _sockets(node.sshd_pid).isdisjoint(old):
            try:
                with socket.create_connection((node.address, 22), timeout=0.2):
                    return
            except OSError:
                pass
        if time.monotonic() > deadline:
            raise LabError(f"sshd on {node.name} not accepting on {node.address}:22 {timeout:g} s after a "
                           f"config reload; see {log_path(state, node)}")
        time.sleep(0.02)


def _sockets(pid: int) -> set[str]:
    fds = Path(f"/proc/{pid}/fd")
    found = set()
    for fd in fds.iterdir() if fds.exists() else ():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


def wait_listening(state: LabState, procs: list[subprocess.Popen], timeout: float = 20) -> None:
    """Poll each node's :22 from the root namespace (over the lab bridge) until all accept."""
    deadline = time.monotonic() + timeout
    pending = list(zip(state.nodes, procs, strict=True))
    while pending:
        still = []
        for node, proc in pending:
            if proc.poll() is not None:
                err = log_path(state, node).read_text(errors="replace").strip().splitlines()
                raise LabError(f"sshd on {node.name} exited ({proc.returncode}): {err[0] if err else 'no output'}")
            try:
                with socket.create_connection((node.address, 22), timeout=0.2):
                    pass
            except OSError:
                still.append((node, proc))
        pending = still
        if pending:
            if time.monotonic() > deadline:
                node = pending[0][0]
                raise LabError(f"sshd on {node.name} (pid {node.sshd_pid}, running) not accepting on "
                               f"{node.address}:22 after {timeout:g} s; see {log_path(state, node)}")
            time.sleep(0.02)
