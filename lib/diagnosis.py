"""From the mesh evidence of a directed pair A->B (and of B->A, which carries A->B's replies) to one root
cause, most specific first, with the configuration lines that explain it.

A->B is judged by what A sends and what B *receives*: B's capture on its underlay interface is the
ground truth (seed 002: "capture on both ends"). A probe whose request reached B intact but whose
answer was lost on the way back is B->A's failure, reported there, not here.
"""

from __future__ import annotations

from dataclasses import dataclass

from lib.checks.expect import vtep_of
from lib.results import CheckResult
from lib.rundata import RunData

CHECK = "datapath"


@dataclass(frozen=True)
class Forward:
    """How A's VXLAN traffic fared on the way to B, as B's capture saw it."""

    captured: bool        # B's capture worked at all
    vxlan_seen: int       # frames from A at B's VXLAN port
    probe_seen: int       # datagrams from A at B's probe port
    bad_csum: int         # of those, with an invalid outer UDP checksum (verified on the runner)

    @property
    def intact(self) -> bool:
        return self.captured and self.vxlan_seen > 0 and self.bad_csum == 0


def forward(run: RunData, a: str, b: str) -> Forward | None:
    evidence = run.mesh.get(f"{a}->{b}")
    if evidence is None:
        return None
    cap = evidence["captured"]
    if not cap.get("available"):
        return Forward(False, 0, 0, 0)
    by_port = {int(port): count for port, count in cap.get("by_dport", {}).items()}
    vxlan_port = evidence["vxlan_frame"].get("port") or int(run.overlay["port"])
    probe_port = evidence["udp_echo"].get("port")
    return Forward(True, by_port.get(vxlan_port, 0), by_port.get(probe_port, 0) if probe_port else 0,
                   _bad_checksums(evidence, vxlan_port))


def _bad_checksums(evidence: dict, vxlan_port: int) -> int:
    """Bad outer checksums at the VXLAN port, re-verified with scapy from the captured bytes (only when
    the agent saw any: scapy is imported by the workers that need it, not by every worker)."""
    if not evidence["captured"].get("bad_csum"):
        return 0
    from lib.frames import parse_capture

    frames = [parse_capture(h) for h in evidence["pcap_frames"]]
    return sum(1 for f in frames if f.dport == vxlan_port and f.csum_valid is False)


def _echo_ok(evidence: dict) -> bool:
    per_size = evidence["udp_echo"].get("per_size", {})
    return bool(per_size) and all(s["replied"] and not s["corrupted"] for s in per_size.values())


def diagnose(run: RunData, a: str, b: str) -> CheckResult:
    subject = f"{a}->{b}"
    evidence = run.mesh.get(subject)
    values = {"node": a, "peer": b, "device": run.overlay["device"], "port": run.overlay["port"],
              "probe_port": run.overlay.get("probe_port"), "address": run.addresses[b]}
    if evidence is None:
        why = "; ".join(f"{h}: {run.mesh_excluded[h]}" for h in (a, b) if h in run.mesh_excluded)
        return CheckResult(CHECK, subject, ("MESH_FAILED",),
                           f"{subject} was not probed: {why or run.mesh_error or 'no evidence'}", values=values)
    if evidence["errors"] and not evidence["udp_echo"]:
        return CheckResult(CHECK, subject, ("MESH_FAILED",), "; ".join(evidence["errors"]), values=values)
    raw_ok = bool(evidence["vxlan_frame"].get("reply_seen"))
    overlay_ok = bool(evidence["overlay_ping"].get("reply_seen"))
    df_ok = bool(evidence["df_probe"].get("reply_seen"))
    echo_ok = _echo_ok(evidence)
    text = describe(run, a, b)
    if raw_ok and overlay_ok and echo_ok:
        if df_ok:
            return CheckResult(CHECK, subject, evidence=text)
        size = evidence["df_probe"].get("size")
        return CheckResult(CHECK, subject, ("MTU_MISMATCH",),
                           f"{a} reaches {b} over the overlay, but not with a {size}-byte packet that may "
                           f"not be fragmented ({evidence['df_probe'].get('error') or 'no reply'})",
                           evidence=text, values={**values, "mtu": size})
    fwd = forward(run, a, b)
    assert fwd is not None
    if fwd.captured and fwd.bad_csum:
        facts = run.facts.get(a)
        kernel = facts.kernel_release if facts else "?"
        return CheckResult(CHECK, subject, ("OUTER_CHECKSUM_BAD",),
                           f"{b} receives {a}'s VXLAN packets with an invalid outer UDP checksum and drops them "
                           f"({fwd.bad_csum} bad at port {values['port']}); {a} runs kernel {kernel}",
                           evidence=text + _sender_offloads(run, a), values={**values, "kernel": kernel})
    if fwd.captured and evidence["vxlan_frame"].get("sent") and fwd.vxlan_seen == 0:
        nothing = " and nothing at all from it at the probe port either" if fwd.probe_seen == 0 else ""
        return CheckResult(CHECK, subject, ("UDP_PORT_BLOCKED",),
                           f"{a}'s packets to {b}:{values['port']}/udp never reach {b}'s network interface"
                           f"{nothing}: a firewall or security group drops them on the way",
                           evidence=text, values=values)
    if not raw_ok:
        if fwd.intact and (mismatch := _mac_mismatch(run, b)):
            return CheckResult(CHECK, subject, ("VTEP_MAC_MISMATCH",),
                               f"{b} drops frames for its advertised VtepMAC: {mismatch}", evidence=text,
                               values={**values, "node": b})
        if fwd.intact:
            reverse = forward(run, b, a)
            if reverse is not None and reverse.captured and not reverse.intact:
                return CheckResult(CHECK, subject, evidence=text,
                                   note=f"{b} received {a}'s probes intact; the answers are lost on {b}->{a}")
            if cause := config_cause(run, b, a, reply=True):
                return CheckResult(CHECK, subject, cause[0], cause[1], evidence=text, values=values)
        return _unexplained(subject, a, b, text, values)
    if not overlay_ok:
        if cause := config_cause(run, a, b, reply=False):
            return CheckResult(CHECK, subject, cause[0], cause[1], evidence=text, values=values)
        return _unexplained(subject, a, b, text, values)
    return CheckResult(CHECK, subject, ("PROBE_PORT_BLOCKED",),
                       f"VXLAN from {a} to {b} works, but UDP {values['probe_port']} (the echo probe) does not",
                       evidence=text, values=values)


def _mac_mismatch(run: RunData, host: str) -> str:
    facts = run.facts.get(host)
    advertised = vtep_of(run, host).mac
    if facts is None or facts.device is None or not facts.device.mac or not advertised:
        return ""
    actual = facts.device.mac.lower()
    return "" if actual == advertised else f"advertised {advertised}, {facts.device.name} has {actual}"


def _unexplained(subject: str, a: str, b: str, text: str, values: dict) -> CheckResult:
    return CheckResult(CHECK, subject, ("OVERLAY_UNREACHABLE",),
                       f"{a} cannot reach {b} over the overlay and no more specific cause was found",
                       evidence=text, values=values)


def config_cause(run: RunData, x: str, y: str, *, reply: bool) -> tuple[tuple[str, ...], str] | None:
    """Why x's kernel does not deliver overlay packets to y, from x's FDB and neighbour entries for y."""
    facts = run.facts.get(x)
    if facts is None:
        return None
    peer = vtep_of(run, y)
    way = f"{x}'s answers to {y}" if reply else f"{x}'s overlay packets for {y}"
    address = run.addresses[y]
    dsts = {e.dst for e in facts.fdb if (e.mac or "").lower() == peer.mac}
    if not dsts:
        return ("FDB_MISSING",), f"{way} have nowhere to go: no FDB entry for {y}'s VtepMAC {peer.mac}"
    if address not in dsts:
        owners = [h for h in run.nodes if h != y and vtep_of(run, h).mac == peer.mac]
        if owners:
            return (("VTEP_MAC_DUPLICATE",),
                    f"{way} go to {', '.join(sorted(dsts))}: {y}'s VtepMAC {peer.mac} is also "
                    f"{', '.join(owners)}'s")
        if peer.public_ip in dsts and peer.public_ip != address:
            return (("PUBLIC_IP_MISMATCH",),
                    f"{way} go to {peer.public_ip}, the public IP {y} advertises, not to its address {address}")
        return ("FDB_WRONG_DST",), f"{way} go to {', '.join(sorted(dsts))}, not to {y}'s address {address}"
    neigh = {(n.mac or "").lower() for n in facts.neighbours if n.ip == peer.vtep_ip}
    if peer.mac not in neigh:
        return (("NEIGH_WRONG_MAC",),
                f"{x} resolves {y}'s VTEP {peer.vtep_ip} to {', '.join(sorted(neigh)) or 'nothing'}, "
                f"not {peer.mac}")
    return None


def describe(run: RunData, a: str, b: str) -> str:
    """The evidence of A->B in a few lines, for failure messages and the report."""
    ev = run.mesh[f"{a}->{b}"]
    echo = ev["udp_echo"]
    sizes = ", ".join(f"{size} B {_echo_state(s)}" for size, s in echo.get("per_size", {}).items())
    cap = ev["captured"]
    lines = [
        f"udp echo {a} -> {b}:{echo.get('port')}: {sizes or 'not sent'}",
        f"raw VXLAN frame {a} -> {b}:{ev['vxlan_frame'].get('port')}: "
        f"{'answered' if ev['vxlan_frame'].get('reply_seen') else 'no answer'}",
        f"overlay ping {a} -> {b} via {run.overlay['device']}: "
        f"{'answered' if ev['overlay_ping'].get('reply_seen') else 'no answer'}",
        f"DF ping size {ev['df_probe'].get('size')}: {'answered' if ev['df_probe'].get('reply_seen') else 'no answer'}",
    ]
    if cap.get("available"):
        lines.append(f"captured at {b} from {a}: {cap.get('count', 0)} frames by port {cap.get('by_dport')}, "
                     f"checksums ok {cap.get('valid_csum', 0)} / bad {cap.get('bad_csum', 0)}, "
                     f"{b} UdpInCsumErrors +{cap.get('receiver_in_csum_errors_delta', 0)}")
    else:
        lines.append(f"no capture at {b}")
    lines += ev["errors"]
    return "\n".join(lines)


def _echo_state(size: dict) -> str:
    if not size["replied"]:
        return "LOST"
    return "CORRUPTED" if size["corrupted"] else "ok"


def _sender_offloads(run: RunData, a: str) -> str:
    facts = run.facts.get(a)
    if facts is None or not facts.offloads:
        return ""
    shown = [f"{k}: {v}" for k, v in facts.offloads.items() if k.startswith("tx-checksum")]
    return "\n" + f"{a} ethtool -k {run.overlay['device']}: " + "; ".join(shown)
