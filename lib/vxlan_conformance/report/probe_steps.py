"""One Allure step per probe of a directed pair, from its mesh evidence: what was sent, what came back,
and what the receiver captured. A step is failed when its probe saw no (intact) answer, so a reader
sees which probes broke before reading the diagnosis.

Steps are observations, not the verdict: a missing reply can also be the reverse pair's fault, which
the diagnosis (the test's own status) sorts out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

from allure_commons import plugin_manager

from vxlan_conformance.model.evidence import Capture, PairEvidence


@dataclass
class ProbeStep:
    title: str
    ok: bool
    params: dict[str, Any] = field(default_factory=dict)
    problem: str = ""


def probe_steps(evidence: PairEvidence, device: str) -> list[ProbeStep]:
    """The steps of one pair's evidence, in the order the agent runs the probes."""
    steps = []
    echo = evidence.udp_echo
    for size, result in sorted(echo.per_size.items(), key=lambda kv: int(kv[0])):
        ok = bool(result.replied) and not result.corrupted
        steps.append(ProbeStep(f"UDP echo {size} bytes to port {echo.port}", ok,
                               _fields(result, "sent", "replied", "corrupted", "rtt_ms"),
                               result.error or ("" if ok else "no intact reply")))
    if evidence.probed:
        for probe, title in ((evidence.vxlan_frame, f"Raw VXLAN frame to UDP {evidence.vxlan_frame.port}"),
                             (evidence.overlay_ping, f"Overlay ping through {device}"),
                             (evidence.df_probe, f"DF probe of {evidence.df_probe.size} bytes")):
            steps.append(ProbeStep(title, probe.reply_seen, _fields(probe, "sent", "reply_seen", "rtt_ms"),
                                   probe.error or ("" if probe.reply_seen else "no reply seen")))
    steps.append(_capture_step(evidence.captured, evidence.sender, evidence.receiver, evidence.vxlan_frame.port))
    return steps


def _capture_step(captured: Capture, sender: str, receiver: str, vxlan_port: int | None) -> ProbeStep:
    """Passed when VXLAN frames from the sender arrived at the receiver's VXLAN port with good checksums."""
    title = f"Capture at {receiver} of traffic from {sender}"
    if not captured.available:
        return ProbeStep(title, False, problem="no capture from the receiver")
    params = {"frames": captured.count, "by port": captured.by_dport,
              "checksums ok": captured.valid_csum, "checksums bad": captured.bad_csum,
              "outer sources": ", ".join(captured.outer_srcs)}
    if captured.bad_csum:
        return ProbeStep(title, False, params, f"{captured.bad_csum} frames with a bad outer UDP checksum")
    if vxlan_port is not None and not captured.at_port(vxlan_port):
        return ProbeStep(title, False, params, f"no frame arrived at the VXLAN port {vxlan_port}")
    return ProbeStep(title, True, params)


def _fields(data: object, *keys: str) -> dict[str, Any]:
    return {key: getattr(data, key) for key in keys if getattr(data, key) is not None}


def record_probe_steps(evidence: PairEvidence, device: str, parent: str | None = None) -> None:
    """Add the steps to the running Allure test, under a `parent` step when given (through allure's own
    step hooks, which let a step end failed without raising in the test).

    A `parent` is one pair of a test that judges a sender's pairs (large clusters): a pair whose probes
    all passed is that one step, a failing one nests its probes. 99 passing pairs x 7 probe steps per test
    made the Allure results of a 100-node run cost more than every other part of its tests, and hid the
    failing pairs among 70,000 green steps."""
    steps = probe_steps(evidence, device)
    if parent is None:
        for step in steps:
            _record(step)
        return
    ok = all(step.ok for step in steps)
    uuid = _start(ProbeStep(parent, ok))
    if not ok:
        for step in steps:
            _record(step)
    _stop(uuid, ProbeStep(parent, ok, problem="a probe failed"))


def _record(step: ProbeStep) -> None:
    _stop(_start(step), step)


def _start(step: ProbeStep) -> str:
    uuid = uuid4().hex
    plugin_manager.hook.start_step(uuid=uuid, title=step.title, params={k: str(v) for k, v in step.params.items()})
    return uuid


def _stop(uuid: str, step: ProbeStep) -> None:
    failure = None if step.ok else AssertionError(step.problem)
    plugin_manager.hook.stop_step(uuid=uuid, exc_type=type(failure) if failure else None, exc_val=failure,
                                  exc_tb=None)
