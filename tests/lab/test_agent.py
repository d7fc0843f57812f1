"""The node agent itself, driven line by line under Python 2.7, 3.6 and 3.11 inside agt- namespaces."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import time

import pytest

from tests.lab.agent_netns import Overlay, SubprocessAgent, requires_root, three_node_overlay
from vxlan_conformance.agent import agent_source, launch_payload, python_command
from vxlan_conformance.agent.vxlan_agent import ECHO_HEADER, ECHO_MAGIC
from vxlan_conformance.mesh.agents import build_plans

PROBE_PORT = 18472
PYTHONS = {
    "py2.7": "/root/.pyenv/versions/2.7.18/bin/python2.7",
    "py3.6": "/root/.pyenv/versions/3.6.15/bin/python3.6",
    "py3.11": "/usr/bin/python3",
}
pytestmark = pytest.mark.skipif(requires_root() is not None, reason=str(requires_root()))


def interpreter(label: str) -> str:
    path = PYTHONS[label]
    if not os.path.exists(path):
        pytest.skip(f"{path} is not installed")
    return path


overlay = pytest.fixture(scope="module")(three_node_overlay)


def plans_for(overlay: Overlay, pairs, python: str, **options) -> dict[str, dict]:
    nodes = [dataclasses.replace(node, python=python) for node in overlay.nodes]
    return build_plans(nodes, pairs, options.pop("probe_port", PROBE_PORT), **options)


def start(overlay: Overlay, name: str, plan: dict, python: str) -> SubprocessAgent:
    agent = SubprocessAgent(["ip", "netns", "exec", name, *python_command(python)])
    overlay.agents.append(agent)
    agent.write(launch_payload(plan))
    return agent


def expect(agent: SubprocessAgent, tag: str, timeout: float = 10.0) -> dict:
    line = agent.readline(timeout)
    assert line is not None, f"no {tag}; stderr: {b''.join(agent.stderr)[-800:]!r}"
    word, _, rest = line.partition(" ")
    assert word == tag, line[:300]
    return json.loads(rest)


@pytest.mark.parametrize("label", sorted(PYTHONS))
def test_agent_source_compiles_on_every_supported_python(label):
    python = interpreter(label)
    assert agent_source().isascii()  # characters == bytes on the wire
    check = "import sys; compile(sys.stdin.read(), 'vxlan_agent.py', 'exec'); print('ok')"
    done = subprocess.run([python, "-c", check], input=agent_source(), capture_output=True, text=True,
                          timeout=20)
    assert done.stdout.strip() == "ok", done.stderr


@pytest.mark.parametrize("label", sorted(PYTHONS))
def test_protocol_ready_go_sent_stop_evidence(overlay, label):
    python = interpreter(label)
    plans = plans_for(overlay, [("agt-1", "agt-2"), ("agt-2", "agt-1")], python, deadline_s=20)
    agents = {name: start(overlay, name, plan, python) for name, plan in plans.items()}
    ready = {name: expect(agent, "READY") for name, agent in agents.items()}
    assert ready["agt-1"]["responder"] == f"198.19.200.1:{PROBE_PORT}"
    assert ready["agt-1"]["python"].startswith(label[2:] + ".")
    assert ready["agt-1"]["echo_sizes"] == [37, 1200, 1472]  # underlay MTU 1500 - 28
    for agent in agents.values():
        agent.write(b"GO\n")
    sent = {name: expect(agent, "SENT") for name, agent in agents.items()}
    assert sent["agt-1"]["unanswered"] == 0
    for agent in agents.values():
        agent.write(b"STOP\n")
    evidence = {name: expect(agent, "EVIDENCE") for name, agent in agents.items()}
    probes = evidence["agt-1"]["targets"]["agt-2"]
    assert probes["udp_echo"]["replied"] == 3 and probes["udp_echo"]["corrupted"] == 0
    assert probes["vxlan_frame"]["reply_seen"] and probes["overlay_ping"]["reply_seen"]
    assert probes["df_probe"]["reply_seen"] and probes["df_probe"]["size"] == 1450
    captured = evidence["agt-2"]["captured"]["agt-1"]
    assert captured["by_dport"][str(PROBE_PORT)] == 3 and captured["by_dport"]["8472"] >= 3
    assert captured["csum"]["bad"] == 0 and captured["csum"]["ok"] == captured["count"]
    assert evidence["agt-2"]["responder"]["answered"] == {"agt-1": 3}
    for agent in agents.values():
        assert agent.proc.wait(5) == 0


@pytest.mark.parametrize("label", sorted(PYTHONS))
def test_agent_leaves_at_its_deadline_without_stop(overlay, label):
    python = interpreter(label)
    plan = plans_for(overlay, [("agt-1", "agt-2")], python, deadline_s=1.5)["agt-1"]
    started = time.monotonic()
    agent = start(overlay, "agt-1", plan, python)
    expect(agent, "READY")
    agent.write(b"GO\n")  # stdin stays open and silent: the SSH session hangs
    expect(agent, "SENT")
    evidence = expect(agent, "EVIDENCE", timeout=5)
    assert evidence["deadline"] is True
    assert agent.proc.wait(2) == 0
    assert 1.4 < time.monotonic() - started < 4


@pytest.mark.parametrize("label", sorted(PYTHONS))
def test_agent_leaves_when_stdin_closes(overlay, label):
    python = interpreter(label)
    plan = plans_for(overlay, [("agt-1", "agt-2")], python, deadline_s=30)["agt-1"]
    agent = start(overlay, "agt-1", plan, python)
    expect(agent, "READY")
    started = time.monotonic()
    agent.close_stdin()
    assert expect(agent, "EVIDENCE", timeout=5)["deadline"] is False
    assert agent.proc.wait(2) == 0
    assert time.monotonic() - started < 2


def udp_echo_from(overlay: Overlay, name: str, target: str, payload: bytes) -> str:
    """Send one datagram from inside `name` to the responder and say whether an echo came back."""
    code = ("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.settimeout(1.0)\n"
            f"s.sendto({payload!r}, ({target!r}, {PROBE_PORT}))\n"
            f"try:\n    print('reply' if s.recvfrom(100)[0] == {payload!r} else 'other')\n"
            "except socket.timeout:\n    print('none')\n")
    return overlay.exec(name, ["python3", "-c", code]).stdout.strip()


def test_responder_answers_only_plan_peers_probes_of_its_run(overlay):
    python = interpreter("py3.11")
    plan = plans_for(overlay, [("agt-1", "agt-2")], python, deadline_s=20)["agt-2"]
    agent = start(overlay, "agt-2", plan, python)
    expect(agent, "READY")
    probe = ECHO_HEADER.pack(ECHO_MAGIC, int(plan["run_id"]) & 0xFFFF, 0, 0, 1) + b"payload"
    foreign_run = ECHO_HEADER.pack(ECHO_MAGIC, (int(plan["run_id"]) + 1) & 0xFFFF, 0, 0, 1)
    assert udp_echo_from(overlay, "agt-3", "198.19.200.2", probe) == "none"  # agt-3 is not in the plan
    assert udp_echo_from(overlay, "agt-1", "198.19.200.2", b"hello") == "none"  # no probe header
    assert udp_echo_from(overlay, "agt-1", "198.19.200.2", foreign_run) == "none"  # another run's probe
    assert udp_echo_from(overlay, "agt-1", "198.19.200.2", probe) == "reply"
    agent.write(b"STOP\n")
    evidence = expect(agent, "EVIDENCE")
    assert evidence["responder"] == {"answered": {"agt-1": 1},
                                     "refused": {"198.19.200.3": 1, "198.19.200.1": 2}}


@pytest.mark.parametrize(("change", "message"), [
    ({"underlay_if": "nope0"}, "underlay interface 'nope0' not found on node agt-1"),
    ({"probe_port": 8472}, "EADDRINUSE (the kernel VXLAN device owns it"),
    ({"targets": None}, "bad plan: TypeError"),
])
@pytest.mark.parametrize("label", ["py2.7", "py3.11"])
def test_bad_setup_gives_one_error_line(overlay, label, change, message):
    python = interpreter(label)
    plan = plans_for(overlay, [("agt-1", "agt-2")], python, deadline_s=5)["agt-1"]
    plan.update(change)
    agent = start(overlay, "agt-1", plan, python)
    line = agent.readline(10)
    assert line is not None and line.startswith("ERROR ") and message in line, line
    assert agent.proc.wait(5) == 2
    agent.close()
    assert agent.stderr == []  # no traceback
