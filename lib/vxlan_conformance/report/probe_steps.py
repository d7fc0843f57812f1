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


@dataclass
class ProbeStep:
    title: str
    ok: bool
    params: dict[str, Any] = field(default_factory=dict)
    problem: str = ""


def probe_steps(evidence: dict[str, Any], device: str) -> list[ProbeStep]:
    """The steps of one pair's evidence, in the order the agent runs the probes."""
    sender, receiver = evidence["sender"], evidence["receiver"]
    steps = []
    echo = evidence.get("udp_echo") or {}
    for size, result in sorted((echo.get("per_size") or {}).items(), key=lambda kv: int(kv[0])):
        ok = bool(result.get("replied")) and not result.get("corrupted")
        steps.append(ProbeStep(f"UDP echo {size} bytes to port {echo.get('port')}", ok,
                               _fields(result, "sent", "replied", "corrupted", "rtt_ms"),
                               result.get("error") or ("" if ok else "no intact reply")))
    for key, title in (("vxlan_frame", "Raw VXLAN frame to UDP {port}"),
                       ("overlay_ping", f"Overlay ping through {device}"),
                       ("df_probe", "DF probe of {size} bytes")):
        probe = evidence.get(key) or {}
        if not probe:
            continue
        ok = bool(probe.get("reply_seen"))
        steps.append(ProbeStep(title.format(port=probe.get("port"), size=probe.get("size")), ok,
                               _fields(probe, "sent", "reply_seen", "rtt_ms"),
                               probe.get("error") or ("" if ok else "no reply seen")))
    vxlan_port = (evidence.get("vxlan_frame") or {}).get("port")
    steps.append(_capture_step(evidence.get("captured") or {}, sender, receiver, vxlan_port))
    return steps


def _capture_step(captured: dict[str, Any], sender: str, receiver: str, vxlan_port: int | None) -> ProbeStep:
    """Passed when VXLAN frames from the sender arrived at the receiver's VXLAN port with good checksums."""
    title = f"Capture at {receiver} of traffic from {sender}"
    if not captured.get("available"):
        return ProbeStep(title, False, problem="no capture from the receiver")
    by_port = {int(port): count for port, count in (captured.get("by_dport") or {}).items()}
    params = {"frames": captured.get("count", 0), "by port": by_port,
              "checksums ok": captured.get("valid_csum", 0), "checksums bad": captured.get("bad_csum", 0),
              "outer sources": ", ".join(captured.get("outer_srcs", []))}
    bad = captured.get("bad_csum", 0)
    if bad:
        return ProbeStep(title, False, params, f"{bad} frames with a bad outer UDP checksum")
    if vxlan_port is not None and not by_port.get(vxlan_port):
        return ProbeStep(title, False, params, f"no frame arrived at the VXLAN port {vxlan_port}")
    return ProbeStep(title, True, params)


def _fields(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: data[key] for key in keys if data.get(key) is not None}


def record_probe_steps(evidence: dict[str, Any], device: str, parent: str | None = None) -> None:
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
