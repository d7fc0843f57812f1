"""Subprocess helpers: every call has a time limit and fails with a one-line LabError."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .errors import LabError

TOOLS = {
    "ip": "iproute2",
    "bridge": "iproute2",
    "sshd": "openssh-server",
    "nft": "nftables",
    "ethtool": "ethtool",
    "etcd": "etcd-server",
    "etcdctl": "etcd-client",
    "iptables-restore": "iptables",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "mount": "mount",
}
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def require_tools() -> None:
    for tool, package in TOOLS.items():
        if shutil.which(tool, path=SBIN_PATH) is None:
            raise LabError(f"{tool} not found: install the Debian package {package} (apt-get install -y {package})")


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def run(argv: Sequence[str], *, input: str | None = None, timeout: float = 10, check: bool = True,
        what: str = "") -> subprocess.CompletedProcess:
    """Run argv; on failure raise LabError naming what was attempted and the tool's first error line."""
    try:
        proc = subprocess.run(list(argv), input=input, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise LabError(f"{what or argv[0]}: timed out after {timeout:g} s ({' '.join(argv[:4])} ...)") from None
    if check and proc.returncode != 0:
        raise LabError(f"{what or argv[0]} failed: {_first_line(proc.stderr or proc.stdout)}")
    return proc


def run_many(jobs: Sequence[tuple[list[str], str | None, str]], *, timeout: float = 30,
             check: bool = True) -> None:
    """Start every job at once (argv, stdin, description) and wait: the nodes are independent."""
    procs = []
    for argv, stdin, what in jobs:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if stdin is not None:
            proc.stdin.write(stdin)
            proc.stdin.close()
            proc.stdin = None  # written in full; communicate() must not touch it again
        procs.append((proc, what))
    errors = []
    for proc, what in procs:
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            errors.append(f"{what}: timed out after {timeout:g} s")
            continue
        if check and proc.returncode != 0:
            errors.append(f"{what} failed: {_first_line(err)}")
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise LabError(errors[0] + more)


def proc_start(pid: int) -> str:
    """Start time (clock ticks since boot) of pid, '' if gone: tells a recycled PID from ours."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rpartition(")")[2].split()
    return "" if fields[0] == "Z" else fields[19]
