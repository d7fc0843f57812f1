"""Run the node agents on every node at once and turn their reports into evidence per directed pair.

Transport-agnostic: the caller supplies ``launch(name) -> AgentHandle`` (SSH exec channel in the product,
``ip netns exec`` in the tests). Every agent gets the same barriers: all READY -> GO to all -> all SENT
-> short grace (late frames and answers still land) -> STOP to all -> EVIDENCE. A node that fails or
hangs costs at most the time limit and yields an error entry; it never holds back the other nodes.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from vxlan_conformance.agent import launch_payload
from vxlan_conformance.mesh.frames import pack_vxlan_probe
from vxlan_conformance.model.evidence import Capture, PairEvidence, ReceivePath
from vxlan_conformance.model.records import from_plain

KIND_FRAME, KIND_OVERLAY, KIND_DF = 0, 1, 2  # ICMP seq = target index * 4 + kind (agent uses the same)
MAX_TARGETS = 0xFFFF // 4
READY_SHARE, SENT_SHARE = 0.4, 0.8  # parts of timeout_s by which all agents must be READY / SENT


@dataclass(frozen=True)
class MeshNode:
    """What the mesh needs to know about one node (from facts or the lab)."""

    name: str
    address: str  # underlay address: the VXLAN device's `local`
    underlay_if: str
    vtep_ip: str
    vtep_mac: str
    device_mtu: int
    port: int  # VXLAN UDP port of the node's device
    vni: int
    python: str  # interpreter on the node (python3, python2.7, ...)
    device: str = ""  # the VXLAN device (its counters tell whether it decapsulated anything)


class AgentHandle(Protocol):
    """One running agent: its stdin and its stdout lines."""

    def write(self, data: bytes) -> None: ...

    def readline(self, timeout: float) -> str | None:
        """Next stdout line without its newline; None on timeout or end of output."""

    def close(self) -> None: ...


def build_plans(nodes: list[MeshNode], pairs: Iterable[tuple[str, str]], probe_port: int,
                deadline_s: float, *, echo_sizes: tuple[int, ...] = (37, 1200), attempts: int = 3,
                retry_s: float = 0.3, keep_frames: int = 4, snap: int = 160) -> dict[str, dict]:
    """One plan per node taking part in `pairs`; raises ValueError naming the bad pair or node."""
    by_name = {node.name: node for node in nodes}
    if len(by_name) != len(nodes):
        raise ValueError("node names in the mesh are not unique; fix the inventory host names")
    targets: dict[str, list[str]] = {}
    for sender, receiver in pairs:
        for name in (sender, receiver):
            if name not in by_name:
                raise ValueError(f"pair {sender}->{receiver} names unknown node {name!r}; "
                                 "use inventory host names")
        if sender == receiver:
            raise ValueError(f"pair {sender}->{receiver} probes a node from itself; drop it")
        if receiver not in targets.setdefault(sender, []):
            targets[sender].append(receiver)
        targets.setdefault(receiver, [])
    run_id = random.randrange(1, 0x10000)
    vxlan_ports = sorted({node.port for node in nodes})  # a node listening elsewhere still sees its peers' packets
    involved = [node for node in nodes if node.name in targets]
    plans = {}
    for node in involved:
        receivers = [by_name[name] for name in targets[node.name]]
        if len(receivers) > MAX_TARGETS:
            raise ValueError(f"{node.name} would probe {len(receivers)} peers; sample at most {MAX_TARGETS}")
        plans[node.name] = {
            "node": node.name, "address": node.address, "underlay_if": node.underlay_if,
            "vtep_ip": node.vtep_ip, "device_mtu": node.device_mtu, "vxlan_port": node.port,
            "probe_port": probe_port, "deadline_s": deadline_s, "run_id": run_id, "icmp_id": run_id,
            "echo_sizes": list(echo_sizes), "attempts": attempts, "retry_s": retry_s,
            "keep_frames": keep_frames, "snap": snap, "device": node.device, "vxlan_ports": vxlan_ports,
            "peers": [{"name": peer.name, "address": peer.address, "vtep_ip": peer.vtep_ip}
                      for peer in involved if peer is not node],
            "targets": [_target(node, peer, index, run_id) for index, peer in enumerate(receivers)],
        }
    return plans


def _target(sender: MeshNode, receiver: MeshNode, index: int, icmp_id: int) -> dict:
    frame = pack_vxlan_probe(receiver.vni, sender.vtep_mac, receiver.vtep_mac, sender.vtep_ip,
                             receiver.vtep_ip, icmp_id, index * 4 + KIND_FRAME)
    return {"name": receiver.name, "address": receiver.address, "vtep_ip": receiver.vtep_ip,
            "vtep_mac": receiver.vtep_mac, "port": receiver.port, "vni": receiver.vni, "frame": frame.hex()}


@dataclass
class _Session:
    """Progress of one agent through the protocol."""

    name: str
    phase: str = "launch"
    handle: AgentHandle | None = None
    report: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    failed_in: str | None = None
    noise: list[str] = field(default_factory=list)


class _AgentFailed(Exception):
    pass


class _AgentSilent(_AgentFailed):
    """The agent said nothing expected within the time limit (it may still answer STOP)."""


def _expect(session: _Session, tag: str, until: float) -> dict:
    """Read lines until `tag <json>`; EVIDENCE is accepted at any time (agent hit its own deadline)."""
    assert session.handle is not None
    while True:
        left = until - time.monotonic()
        if left <= 0:
            raise _AgentSilent(f"no {tag} from the agent within the time limit (phase {session.phase})")
        line = session.handle.readline(left)
        if line is None:
            if time.monotonic() < until:
                raise _AgentFailed(f"agent output ended before {tag} (phase {session.phase})")
            continue
        word, _, rest = line.strip().partition(" ")
        if word == "ERROR":
            raise _AgentFailed(rest or "agent reported an error")
        if word in (tag, "EVIDENCE"):
            try:
                payload = json.loads(rest)
            except ValueError as exc:
                raise _AgentFailed(f"unreadable {word} line from the agent: {exc}") from None
            if word == "EVIDENCE" and tag != "EVIDENCE":
                session.report.update(payload)
                raise _AgentFailed(f"agent stopped on its own deadline before {tag}")
            return payload
        if len(session.noise) < 10:
            session.noise.append(line[:200])


def run_mesh(plans: dict[str, dict], launch: Callable[[str], AgentHandle], timeout_s: float,
             grace_s: float = 0.3) -> dict[str, dict]:
    """Run every planned agent at once; returns per node its EVIDENCE (plus ready/sent info) or an error.

    A failed node's entry has ``error`` and ``phase`` (where it failed), plus whatever it had reported so
    far (an agent that stopped on its own deadline still delivers its EVIDENCE).
    """
    start = time.monotonic()
    limits = {"ready": start + timeout_s * READY_SHARE, "sent": start + timeout_s * SENT_SHARE,
              "evidence": start + timeout_s}
    sessions = {name: _Session(name) for name in plans}
    changed = threading.Condition()
    go, stop = threading.Event(), threading.Event()

    def advance(session: _Session, phase: str) -> None:
        with changed:
            session.phase = phase
            changed.notify_all()

    def converse(session: _Session) -> None:
        try:
            session.handle = launch(session.name)
            session.handle.write(launch_payload(plans[session.name]))
            advance(session, "ready")
            session.report["ready"] = _expect(session, "READY", limits["ready"])
            advance(session, "go")
            if not go.wait(max(0.0, limits["sent"] - time.monotonic())):
                raise _AgentFailed("the runner never started the probes")
            session.handle.write(b"GO\n")
            advance(session, "sent")
            try:
                session.report["sent"] = _expect(session, "SENT", limits["sent"])
            except _AgentSilent as exc:  # still collect what it saw: STOP makes it report anyway
                session.report.setdefault("warnings", []).append(str(exc))
            advance(session, "stop")
            stop.wait(max(0.0, limits["evidence"] - time.monotonic()))
            session.handle.write(b"STOP\n")
            advance(session, "evidence")
            session.report.update(_expect(session, "EVIDENCE", limits["evidence"]))
            advance(session, "done")
        except _AgentFailed as exc:
            fail(session, str(exc))
        except Exception as exc:  # transport errors of any kind (SSH, broken pipe): one node, one entry
            fail(session, f"{type(exc).__name__}: {exc}")

    def fail(session: _Session, error: str) -> None:
        session.error, session.failed_in = error, session.phase
        advance(session, "failed")

    threads = [threading.Thread(target=converse, args=(session,), name=f"agent-{session.name}", daemon=True)
               for session in sessions.values()]
    for thread in threads:
        thread.start()
    _wait_all(changed, sessions, {"launch", "ready"}, limits["ready"])
    go.set()
    _wait_all(changed, sessions, {"go", "sent"}, limits["sent"])
    time.sleep(grace_s)
    stop.set()
    for thread in threads:
        thread.join(max(0.0, limits["evidence"] - time.monotonic()) + 1.0)
    return {name: _finish(session) for name, session in sessions.items()}


def _wait_all(changed: threading.Condition, sessions: dict[str, _Session], phases: set[str],
              until: float) -> None:
    """Block until no agent is in one of `phases` any more, or until the time limit."""
    with changed:
        while any(session.phase in phases for session in sessions.values()):
            left = until - time.monotonic()
            if left <= 0:
                return
            changed.wait(left)


def _finish(session: _Session) -> dict:
    if session.handle is not None:
        try:
            session.handle.close()
        except Exception as exc:  # closing a dead channel must not hide the evidence we already have
            session.noise.append(f"close failed: {exc}")
    if session.phase == "done":
        return session.report
    error = session.error or f"agent did not finish in time (phase {session.phase})"
    entry = {**session.report, "node": session.name, "error": error, "phase": session.failed_in or session.phase}
    if session.noise:
        entry["output"] = session.noise
    return entry


def pair_evidence(plans: dict[str, dict], reports: dict[str, dict]) -> dict[tuple[str, str], PairEvidence]:
    """PairEvidence for every planned directed pair, from the sender's probes and the receiver's capture.

    A report of the wrong shape (a broken or hostile agent) costs only the pairs it speaks for: they get
    an error naming the node, every other pair is built as usual."""
    result = {}
    for sender, plan in plans.items():
        for target in plan["targets"]:
            receiver = target["name"]
            try:
                result[(sender, receiver)] = _one_pair(sender, receiver, reports)
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
                evidence = PairEvidence(sender=sender, receiver=receiver)
                evidence.errors.append(f"agent report of {sender} or {receiver} has the wrong shape ({_what(exc)}); "
                                       "is the node's Python or agent tampered with?")
                result[(sender, receiver)] = evidence
    return result


def _one_pair(sender: str, receiver: str, reports: dict[str, dict]) -> PairEvidence:
    evidence = PairEvidence(sender=sender, receiver=receiver)
    sent_report = reports.get(sender, {})
    recv_report = reports.get(receiver, {})
    probes = sent_report.get("targets", {}).get(receiver)
    if probes:
        evidence = PairEvidence.from_dict({"sender": sender, "receiver": receiver, **{
            kind: probes[kind] for kind in ("udp_echo", "vxlan_frame", "overlay_ping", "df_probe")}})
        evidence.probed = True
    else:
        evidence.errors.append(f"sender {sender}: {sent_report.get('error', 'no probe results')}")
    if "receive_path" in recv_report:
        evidence.receive_path = from_plain(ReceivePath, {**recv_report["receive_path"], "available": True},
                                           strict=True)
    evidence.icmp_errors = {str(k): int(v) for k, v in sent_report.get("icmp_errors", {}).get(receiver, {}).items()}
    capture = recv_report.get("captured", {}).get(sender)
    if capture is not None:
        evidence.captured = from_plain(Capture, _capture_summary(capture, recv_report), strict=True)
        evidence.pcap_frames = [str(frame["hex"]) for frame in capture["frames"]]
    else:
        evidence.errors.append(f"receiver {receiver}: {recv_report.get('error', 'no capture')}")
    return evidence


def _what(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc)[:120]}"


def _capture_summary(capture: dict, receiver_report: dict) -> dict:
    snmp = receiver_report.get("snmp_udp", {})
    before, after = snmp.get("before", {}), snmp.get("after", {})
    return {
        "available": True, "count": capture["count"], "by_dport": capture["by_dport"],
        "bad_csum": capture["csum"]["bad"], "valid_csum": capture["csum"]["ok"],
        "no_csum": capture["csum"]["none"], "unverifiable": capture["csum"]["unverifiable"],
        "tp_status": capture["tp_status"], "inner_dst_macs": capture["inner_dst_macs"],
        "vnis": capture["vnis"], "outer_srcs": capture["outer_srcs"], "requests": capture["requests"],
        "frames": [{key: frame[key] for key in ("tp_status", "csum", "wire_len")} for frame in capture["frames"]],
        "receiver_in_csum_errors_delta": after.get("InCsumErrors", 0) - before.get("InCsumErrors", 0),
    }
