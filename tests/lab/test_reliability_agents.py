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
# sends a datagram every 50 ms for `seconds` and prints how many echoes came back
ECHO_PROBE = """
import socket, sys, time
target, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.05)
replies, end = 0, time.monotonic() + seconds
while time.monotonic() < end:
    s.sendto(b"reflect-me", (target, port))
    try:
        replies += s.recvfrom(100)[0] == b"reflect-me"
    except socket.timeout:
        pass
print(replies)
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


def finish(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


def test_responder_answers_inventory_peers_only(lab_4, tmp_path):
    lab, state = lab_4
    node1 = state.node("node1").address
    proc = start_suite(state, tmp_path / "reports", "--limit", "!node4")
    try:
        wait_for_line(proc, "mesh:")
        probes = {name: subprocess.Popen(
            ["ip", "netns", "exec", state.node(name).netns, "python3", "-c", ECHO_PROBE, node1, str(PROBE_PORT), "3"],
            stdout=subprocess.PIPE, text=True) for name in ("node2", "node4")}
        replies = {name: int(p.communicate(timeout=15)[0]) for name, p in probes.items()}
        proc.communicate(timeout=60)
    finally:
        finish(proc)
    assert proc.returncode == 0
    assert replies["node2"] > 0  # the responder was up and answering while node4 was sending
    assert replies["node4"] == 0
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
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
