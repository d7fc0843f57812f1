"""Issue 8.2: the suite is read-only on the nodes. Everything a run could change on a node is
snapshotted before and after a full run (all suites, the datapath mesh included) and must be identical:
for a passing run, a failing run and a run interrupted during the mesh."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tests.lab.lab_fixtures import lab_4
from tests.lab.suite_runner import run_suite, run_with_trigger

pytestmark = pytest.mark.root
__all__ = ["lab_4"]  # the fixture is used by name

DEVICE = "flannel.1"
# (what, argv run inside the node); kernel caches (ARP, conntrack, counters) are not state we own
NODE_STATE = [
    ("links", ["ip", "-d", "-j", "link", "show"]),
    ("addresses", ["ip", "-j", "address", "show"]),
    ("fdb", ["bridge", "-j", "fdb", "show"]),
    ("neighbours", ["ip", "-j", "neigh", "show", "nud", "permanent"]),
    ("routes", ["ip", "-j", "route", "show", "table", "all"]),
    ("nftables", ["sh", "-c", "nft list ruleset | grep -v 'counter packets'"]),
    ("iptables", ["sh", "-c", "for t in filter nat mangle raw; do iptables -t $t -S; done"]),
    ("offloads-vxlan", ["ethtool", "-k", DEVICE]),
    ("offloads-eth0", ["ethtool", "-k", "eth0"]),
    ("sysctls", ["grep", "-r", ".", "/proc/sys/net/ipv4/conf"]),
    ("listening", ["ss", "-H", "-lntup"]),
    # files an agent or a copied script could leave: names only, in the node's view of the filesystem
    ("tmp-files", ["sh", "-c", "ls -A /tmp /var/tmp /dev/shm | grep -Ei 'vxlan|agent|probe|plan' || true"]),
]


def snapshot(lab, state) -> dict[str, str]:
    _wait_for_dad(lab, state)
    taken = {}
    for node in state.nodes:
        for what, argv in NODE_STATE:
            taken[f"{node.name} {what}"] = lab.exec(node.name, argv, timeout=10).stdout
        pids = subprocess.run(["ip", "netns", "pids", node.netns], capture_output=True, text=True,
                              timeout=5).stdout.split()
        taken[f"{node.name} processes"] = "\n".join(sorted(_cmdline(pid) for pid in pids))
    return taken


def _wait_for_dad(lab, state, timeout: float = 5) -> None:
    """A freshly built or re-programmed lab device has tentative IPv6 link-local addresses for a moment
    (duplicate address detection); their completion is the kernel's doing, not the run's."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any("tentative" in lab.exec(n.name, ["ip", "-j", "address", "show"]).stdout for n in state.nodes):
            return
        time.sleep(0.2)


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            args = handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""
    return f"{pid} {args}"


def changed(lab, state, before: dict[str, str], settle_s: float = 10) -> list[str]:
    """What differs from `before`; SSH sessions and agents get a few seconds to leave."""
    deadline = time.monotonic() + settle_s
    while True:
        after = snapshot(lab, state)
        diff = [key for key in before if before[key] != after[key]]
        if not diff or time.monotonic() > deadline:
            return [f"{key}:\n--- before\n{before[key]}\n--- after\n{after[key]}" for key in diff]
        time.sleep(0.5)


@pytest.mark.parametrize("faults", [[], ["blocked-port@node2", "mtu=1400@node3"]], ids=["passing", "failing"])
def test_full_run_changes_nothing_on_any_node(lab_4, tmp_path, faults):
    lab, state = lab_4
    try:
        if faults:
            lab.fault(faults)
        before = snapshot(lab, state)
        result = run_suite(state.inventory_path, tmp_path / "reports", workers="0")
        assert result.exit_code == (1 if faults else 0), result.output[-3000:]
        assert result.summary["counts"]["passed"] > 90
        assert changed(lab, state, before) == []
    finally:
        lab.clear_faults()


def test_interrupted_run_changes_nothing_on_any_node(lab_4, tmp_path):
    lab, state = lab_4
    before = snapshot(lab, state)
    def ctrl_c_while_agents_run(proc: subprocess.Popen) -> None:
        time.sleep(0.3)  # the agents hold their sockets now
        proc.send_signal(signal.SIGINT)

    result, _ = run_with_trigger(state.inventory_path, tmp_path / "reports", "mesh:", ctrl_c_while_agents_run)
    assert result.exit_code == 2
    assert changed(lab, state, before) == []
