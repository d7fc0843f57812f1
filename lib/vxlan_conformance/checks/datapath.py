"""From the mesh evidence of a directed pair A->B (and of B->A, which carries A->B's replies) to one root
cause, most specific first, with the configuration lines that explain it.

A->B is judged by what A sends and what B *receives*: B's capture on its underlay interface is the
ground truth (seed 002: "capture on both ends"). A probe whose request reached B intact but whose
answer was lost on the way back is B->A's failure, reported there, not here.
"""

from __future__ import annotations

from dataclasses import dataclass

from vxlan_conformance.checks.expect import vtep_of
from vxlan_conformance.model.result import CheckResult
from vxlan_conformance.model.rundata import RunData

CHECK = "datapath"


Cause = tuple[tuple[str, ...], str]


@dataclass(frozen=True)
class Arrival:
    """What of A's traffic B's capture saw: per probe kind, intact or with a bad outer checksum."""

    captured: bool               # B's capture worked at all
    vxlan_seen: int              # frames from A at B's VXLAN port
    probe_seen: int              # datagrams from A at B's probe port
    bad_csum: int                # invalid outer UDP checksums at the VXLAN port (re-verified with scapy)
    frame_requests: int          # the runner-built raw frames that reached B intact
    overlay_requests: int        # A's kernel-encapsulated echo requests that reached B intact
    outer_srcs: tuple[str, ...]  # outer source addresses A's VXLAN traffic came from


def arrival(run: RunData, a: str, b: str) -> Arrival | None:
    evidence = run.mesh.get(f"{a}->{b}")
    if evidence is None:
        return None
    cap = evidence["captured"]
    if not cap.get("available"):
        return Arrival(False, 0, 0, 0, 0, 0, ())
    by_port = {int(port): count for port, count in cap.get("by_dport", {}).items()}
    vxlan_port = evidence["vxlan_frame"].get("port") or int(run.overlay["port"])
    probe_port = evidence["udp_echo"].get("port")
    requests = cap.get("requests", {})
    return Arrival(True, by_port.get(vxlan_port, 0), by_port.get(probe_port, 0) if probe_port else 0,
                   _bad_checksums(evidence, vxlan_port),
                   requests.get("vxlan_frame", {}).get("intact", 0),
                   requests.get("overlay_ping", {}).get("intact", 0),
                   tuple(cap.get("outer_srcs", ())))


def _bad_checksums(evidence: dict, vxlan_port: int) -> int:
    """Bad outer checksums at the VXLAN port, re-verified with scapy from the captured bytes (only when
    the agent saw any: scapy is imported by the workers that need it, not by every worker)."""
    if not evidence["captured"].get("bad_csum"):
        return 0
    from vxlan_conformance.mesh.frames import parse_capture

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
    text = describe(run, a, b)
    answered = all(evidence[kind].get("reply_seen") for kind in ("vxlan_frame", "overlay_ping"))
    if answered and _echo_ok(evidence):
        if evidence["df_probe"].get("reply_seen"):
            return CheckResult(CHECK, subject, evidence=text)
        size = evidence["df_probe"].get("size")
        return CheckResult(CHECK, subject, ("MTU_MISMATCH",),
                           f"{a} reaches {b} over the overlay, but not with a {size}-byte packet that may "
                           f"not be fragmented ({evidence['df_probe'].get('error') or 'no reply'})",
                           evidence=text, values={**values, "mtu": size})
    if cause := forward_cause(run, a, b):
        extra = _sender_offloads(run, a) if "OUTER_CHECKSUM_BAD" in cause[0] else ""
        return CheckResult(CHECK, subject, cause[0], cause[1], evidence=text + extra, values=values)
    if not answered and (back := forward_cause(run, b, a)):
        return CheckResult(CHECK, subject, evidence=text,
                           note=f"{b} received {a}'s probes intact; the answers are lost on {b}->{a}: {back[1]}")
    if answered:
        return CheckResult(CHECK, subject, ("PROBE_PORT_BLOCKED",),
                           f"VXLAN from {a} to {b} works, but UDP {values['probe_port']} (the echo probe) does not",
                           evidence=text, values=values)
    return CheckResult(CHECK, subject, ("OVERLAY_UNREACHABLE",),
                       f"{a} cannot reach {b} over the overlay and no more specific cause was found",
                       evidence=text, values=values)


def forward_cause(run: RunData, a: str, b: str) -> Cause | None:
    """Why A's VXLAN traffic does not get to B and into B's kernel, most specific first; None when it does."""
    seen = arrival(run, a, b)
    evidence = run.mesh.get(f"{a}->{b}")
    if seen is None or evidence is None or not seen.captured:
        return None
    port = run.overlay["port"]
    if seen.bad_csum:
        facts = run.facts.get(a)
        kernel = facts.kernel_release if facts else "?"
        return (("OUTER_CHECKSUM_BAD",),
                f"{b} receives {a}'s VXLAN packets with an invalid outer UDP checksum and drops them "
                f"({seen.bad_csum} bad at port {port}); {a} runs kernel {kernel}")
    if evidence["vxlan_frame"].get("sent") and seen.vxlan_seen == 0:
        nothing = " and nothing at all from it at the probe port either" if seen.probe_seen == 0 else ""
        return (("UDP_PORT_BLOCKED",),
                f"{a}'s packets to {b}:{port}/udp never reach {b}'s network interface{nothing}: a firewall "
                "or security group drops them on the way")
    if seen.frame_requests and (cause := _acceptance_cause(run, a, b)):
        return cause
    if evidence["overlay_ping"].get("sent") and not seen.overlay_requests:
        return config_cause(run, a, b)
    return source_cause(run, a, seen.outer_srcs)


def _acceptance_cause(run: RunData, a: str, b: str) -> Cause | None:
    """B drops frames that reach it: they carry its own MAC as source, or a MAC that is not its own."""
    facts_a, facts_b = run.facts.get(a), run.facts.get(b)
    if facts_b is None or facts_b.device is None or not facts_b.device.mac:
        return None
    mac_b = facts_b.device.mac.lower()
    if facts_a is not None and facts_a.device is not None and (facts_a.device.mac or "").lower() == mac_b:
        return (("VTEP_MAC_DUPLICATE",),
                f"{a} and {b} have the same VTEP MAC {mac_b}: {b} drops {a}'s frames as its own")
    advertised = vtep_of(run, b).mac
    if advertised and advertised != mac_b:
        return (("VTEP_MAC_MISMATCH",),
                f"{b} drops frames for its advertised VtepMAC {advertised}: {facts_b.device.name} has {mac_b}")
    return None


def config_cause(run: RunData, x: str, y: str) -> Cause:
    """Why x's kernel does not send its overlay packets for y to y, from x's FDB and neighbour entries."""
    facts = run.facts.get(x)
    peer = vtep_of(run, y)
    address = run.addresses[y]
    unexplained = (("OVERLAY_UNREACHABLE",),
                   f"{x}'s overlay packets for {y} never reach {y}, and {x}'s FDB and neighbour entries for "
                   f"{y} look right")
    if facts is None:
        return unexplained
    way = f"{x}'s overlay packets for {y}"
    dsts = {e.dst for e in facts.fdb_for(peer.mac)}
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
    neigh = {(n.mac or "").lower() for n in facts.neighbours_of(peer.vtep_ip)}
    if peer.mac not in neigh:
        return (("NEIGH_WRONG_MAC",),
                f"{x} resolves {y}'s VTEP {peer.vtep_ip} to {', '.join(sorted(neigh)) or 'nothing'}, "
                f"not {peer.mac}")
    return unexplained


def source_cause(run: RunData, a: str, outer_srcs: tuple[str, ...]) -> Cause | None:
    """A's VXLAN packets leave from an address that is not A's: the answers go there and are lost."""
    address = run.addresses[a]
    wrong = sorted(set(outer_srcs) - {address})
    if not wrong:
        return None
    advertised = vtep_of(run, a).public_ip
    if advertised in wrong:
        return (("PUBLIC_IP_MISMATCH",),
                f"{a} sends VXLAN from {advertised}, the public IP it advertises, not from its address {address}: "
                "the answers go there")
    return (("VTEP_LOCAL_MISMATCH",),
            f"{a} sends VXLAN from {', '.join(wrong)}, not from its address {address}: the answers go there")


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
