"""Issue 8.5: the node agents never become an open UDP reflector and never outlive the run. During a real
run the echo responder answers an inventory peer but not a lab address left out of the inventory
(--limit '!node4'), and agents whose runner is killed outright (no clean-up at all) leave by themselves."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from tests.lab.lab_fixtures import lab_4
from tests.lab.suite_runner import PROJECT_ROOT
from tests.lab.test_e2e_datapath import _agents_left

pytestmark = pytest.mark.root
__all__ = ["lab_4"]  # the fixture is used by name

PROBE_PORT = 18472
# sends a datagram every 50 ms for `seconds` and prints how many it sent and how many echoes came back
ECHO_PROBE = """
import socket, sys, time
target, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.05)
sent, replies, end = 0, 0, time.monotonic() + seconds
while time.monotonic() < end:
    sent += s.sendto(b"reflect-me", (target, port)) > 0
    try:
        replies += s.recvfrom(100)[0] == b"reflect-me"
    except socket.timeout:
        pass
print(sent, replies)
"""
# sends a probe-shaped datagram for every possible run id (the run's is random) from source port
# `sport` (0: any), paced, for `seconds`; prints how many it sent and how many came back
PROBE_SPRAY = """
import socket, struct, sys, time
target, port, seconds, sport = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("", sport))
s.setblocking(False)
sent, replies, end, run_id = 0, 0, time.monotonic() + seconds, 0
while time.monotonic() < end:
    for _ in range(256):
        try:
            sent += s.sendto(struct.pack("!4sHHHH", b"VXC1", run_id, 0, 0, 1) + b"x" * 20, (target, port)) > 0
        except BlockingIOError:
            pass
        run_id = (run_id + 1) & 0xFFFF
    time.sleep(0.01)
    try:
        while True:
            replies += s.recvfrom(100)[0][:4] == b"VXC1"
    except OSError:
        pass
print(sent, replies)
"""


def start_suite(state, reports, *args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "pytest", "-p", "no:xdist", "--inventory", state.inventory_path,
               "--reports-dir", str(reports), "-p", "no:cacheprovider", "suites/test_datapath.py", *args]
    return subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def wait_for_line(proc: subprocess.Popen, text: str) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if text in line:
            return
    raise AssertionError(f"the run ended without printing {text!r}")


def responder_listening(netns: str, timeout: float = 15) -> bool:
    """Whether the agent's echo responder (a UDP socket on the probe port) is bound in the node, waiting for it:
    datagrams that nobody hears are no test of what the responder answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["ip", "netns", "exec", netns, "ss", "-Hlun", f"sport = :{PROBE_PORT}"],
                             capture_output=True, text=True, timeout=5).stdout
        if out.strip():
            return True
        time.sleep(0.02)
    return False


def finish(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


def test_responder_answers_probes_of_inventory_peers_only(lab_4, tmp_path):
    """The responder answers the probes of this run from inventory peers (the mesh passes) and nothing else
    while they run: not node4 (left out with --limit) even with probe-shaped datagrams of every run id, not
    a peer's payload that is no probe, not a probe from a peer whose source port is a VXLAN port."""
    lab, state = lab_4
    node1 = state.node("node1").address
    proc = start_suite(state, tmp_path / "reports", "--limit", "!node4")
    senders = {"node3": (PROBE_SPRAY, "4789"), "node4": (PROBE_SPRAY, "0"), "node2": (ECHO_PROBE, None)}
    try:
        wait_for_line(proc, "mesh:")
        listening = responder_listening(state.node("node1").netns)
        probes = {}
        for label, (script, sport) in senders.items():
            name = label
            argv = ["ip", "netns", "exec", state.node(name).netns, "python3", "-c", script, node1, str(PROBE_PORT), "3"]
            probes[label] = subprocess.Popen(argv + ([sport] if sport is not None else []), stdout=subprocess.PIPE,
                                             text=True)
        counts = {label: tuple(map(int, p.communicate(timeout=15)[0].split())) for label, p in probes.items()}
        proc.communicate(timeout=60)
    finally:
        finish(proc)
    assert listening  # the senders started while node1's responder was there to answer them
    assert all(sent > 0 for sent, _ in counts.values()), counts  # and each of them sent its datagrams
    assert {label: replies for label, (_, replies) in counts.items()} == {"node2": 0, "node3": 0, "node4": 0}
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
    assert proc.returncode == 0, summary
    assert summary["counts"]["passed"] == 6


def test_agents_leave_when_the_runner_is_killed(lab_4, tmp_path):
    _, state = lab_4
    proc = start_suite(state, tmp_path / "reports")
    try:
        wait_for_line(proc, "mesh:")
        time.sleep(0.3)  # the agents are running
        proc.send_signal(signal.SIGKILL)
    finally:
        finish(proc)
    deadline = time.monotonic() + 10
    while _agents_left(lab_4[0], state) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _agents_left(lab_4[0], state) == []
