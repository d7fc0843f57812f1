"""From the mesh evidence of a directed pair A->B (and of B->A, which carries A->B's replies) to one root
cause, most specific first, with the configuration lines that explain it.

A->B is judged by what A sends and what B *receives*: B's capture on its underlay interface is the
ground truth (seed 002: "capture on both ends"). A probe whose request reached B intact but whose
answer was lost on the way back is B->A's failure, reported there, not here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from vxlan_conformance import cni
from vxlan_conformance.checks.registry import check
from vxlan_conformance.model.evidence import EchoSize, PairEvidence, Probe
from vxlan_conformance.model.result import CheckResult
from vxlan_conformance.model.rundata import RunData

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
    cap = evidence.captured
    if not cap.available:
        return Arrival(False, 0, 0, 0, 0, 0, ())
    vxlan_port = evidence.vxlan_frame.port or int(run.overlay["port"])
    return Arrival(True, cap.at_port(vxlan_port), cap.at_port(evidence.udp_echo.port),
                   _bad_checksums(evidence, vxlan_port), cap.intact("vxlan_frame"), cap.intact("overlay_ping"),
                   tuple(cap.outer_srcs))


def _bad_checksums(evidence: PairEvidence, vxlan_port: int) -> int:
    """Bad outer checksums at the VXLAN port, re-verified with scapy from the captured bytes (only when
    the agent saw any: scapy is imported by the workers that need it, not by every worker)."""
    if not evidence.captured.bad_csum:
        return 0
    from vxlan_conformance.mesh.frames import parse_capture

    frames = [parse_capture(h) for h in evidence.pcap_frames]
    return sum(1 for f in frames if f.dport == vxlan_port and f.csum_valid is False)


@check("datapath", "Datapath", "pair", codes=(
    "MESH_FAILED", "MTU_MISMATCH", "OUTER_CHECKSUM_BAD", "UDP_PORT_BLOCKED", "PROBE_PORT_BLOCKED",
    "OVERLAY_UNREACHABLE", "VTEP_MAC_DUPLICATE", "VTEP_MAC_MISMATCH", "FDB_MISSING", "FDB_WRONG_DST",
    "NEIGH_WRONG_MAC", "PUBLIC_IP_MISMATCH", "VTEP_LOCAL_MISMATCH", "ROUTE_MISSING", "TUNNEL_MISSING",
    "TUNNEL_WRONG_DST"))
def diagnose(run: RunData, a: str, b: str) -> CheckResult:
    subject = f"{a}->{b}"
    evidence = run.mesh.get(subject)
    values = {"node": a, "peer": b, "device": run.overlay["device"], "port": run.overlay["port"],
              "probe_port": run.overlay.get("probe_port"), "address": run.addresses[b]}
    if evidence is None:
        why = "; ".join(f"{h}: {run.mesh_excluded[h]}" for h in (a, b) if h in run.mesh_excluded)
        return CheckResult(subject, ("MESH_FAILED",),
                           f"{subject} was not probed: {why or run.mesh_error or 'no evidence'}", values=values)
    if evidence.errors and not evidence.probed:
        return CheckResult(subject, ("MESH_FAILED",), "; ".join(evidence.errors), values=values)
    text = describe(run, a, b)
    answered = evidence.answered
    if answered and evidence.udp_echo.ok:
        if evidence.df_probe.reply_seen:
            return CheckResult(subject, evidence=text)
        size = evidence.df_probe.size
        return CheckResult(subject, ("MTU_MISMATCH",),
                           f"{a} reaches {b} over the overlay, but not with a {size}-byte packet that may "
                           f"not be fragmented ({evidence.df_probe.error or 'no reply'})",
                           evidence=text, values={**values, "mtu": size})
    if cause := forward_cause(run, a, b):
        extra = _sender_offloads(run, a) if "OUTER_CHECKSUM_BAD" in cause[0] else ""
        return CheckResult(subject, cause[0], cause[1], evidence=text + extra, values=values)
    if not answered and (back := forward_cause(run, b, a)):
        return CheckResult(subject, evidence=text,
                           note=f"{b} received {a}'s probes intact; the answers are lost on {b}->{a}: {back[1]}")
    if answered:
        return CheckResult(subject, ("PROBE_PORT_BLOCKED",),
                           f"VXLAN from {a} to {b} works, but UDP {values['probe_port']} (the echo probe) does not",
                           evidence=text, values=values)
    return CheckResult(subject, ("OVERLAY_UNREACHABLE",),
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
    if evidence.vxlan_frame.sent and seen.vxlan_seen == 0:
        nothing = " and nothing at all from it at the probe port either" if seen.probe_seen == 0 else ""
        return (("UDP_PORT_BLOCKED",),
                f"{a}'s packets to {b}:{port}/udp never reach {b}'s network interface{nothing}: a firewall "
                "or security group drops them on the way")
    if seen.frame_requests and (cause := _acceptance_cause(run, a, b)):
        return cause
    # a send refused by A's kernel (no route: ENETUNREACH) is a request that never left either
    if (evidence.overlay_ping.sent or evidence.overlay_ping.error) and not seen.overlay_requests:
        return config_cause(run, a, b)
    return source_cause(run, a, seen.outer_srcs)


def _acceptance_cause(run: RunData, a: str, b: str) -> Cause | None:
    """B drops frames that reach it: they carry its own MAC as source, or a MAC that is not its own."""
    facts_a, facts_b = run.facts.get(a), run.facts.get(b)
    if cni.of_run(run).not_applicable("vtep-mac-unique"):  # Cilium: no peer addresses a VTEP MAC
        return None
    if facts_b is None or facts_b.device is None or not facts_b.device.mac:
        return None
    mac_b = facts_b.device.mac.lower()
    if facts_a is not None and facts_a.device is not None and (facts_a.device.mac or "").lower() == mac_b:
        return (("VTEP_MAC_DUPLICATE",),
                f"{a} and {b} have the same VTEP MAC {mac_b}: {b} drops {a}'s frames as its own")
    advertised = cni.of_run(run).vtep(run, b).mac
    if advertised and advertised != mac_b:
        return (("VTEP_MAC_MISMATCH",),
                f"{b} drops frames for its advertised VtepMAC {advertised}: {facts_b.device.name} has {mac_b}")
    return None


def config_cause(run: RunData, x: str, y: str) -> Cause:
    """Why x's kernel does not send its overlay packets for y to y, from x's FDB and neighbour entries."""
    if cni.of_run(run).not_applicable("peer-fdb"):
        return routed_cause(run, x, y)
    facts = run.facts.get(x)
    peer = cni.of_run(run).vtep(run, y)
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
        owners = [h for h in run.nodes if h != y and cni.of_run(run).vtep(run, h).mac == peer.mac]
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


def routed_cause(run: RunData, x: str, y: str) -> Cause:
    """Cilium: no FDB or neighbour to blame. x needs a route to y's pod CIDR via its router IP on
    cilium_host (cni peer_plan), and its tunnel map sends y's traffic to the address y advertises."""
    model = cni.of_run(run)
    plan = model.peer_plan(run, x, y)
    facts = run.facts.get(x)
    way = f"{x}'s overlay packets for {y}"
    if facts is not None:
        for want in plan.routes:
            routes = facts.routes_to(ipaddress.ip_network(want.dst, strict=False))
            if not any(r.dev == want.dev and r.via in (None, want.via) for r in routes):
                return (("ROUTE_MISSING",),
                        f"{way} have no route: {x} has no {want.dst} via {want.via} dev {want.dev}")
    peer = model.vtep(run, y)
    address = run.addresses[y]
    if plan.tunnel is not None and facts is not None:
        found = (facts.tunnel_map or {}).get(plan.tunnel[0])
        if found is None:
            return (("TUNNEL_MISSING",), f"{way} have no tunnel: {x}'s tunnel map has no entry for {plan.tunnel[0]}")
        if found != plan.tunnel[1] and found != address:
            return (("TUNNEL_WRONG_DST",), f"{way} are tunnelled to {found}, not to {y}'s address {address}")
    if peer.source != "facts" and peer.public_ip and peer.public_ip != address:
        return (("PUBLIC_IP_MISMATCH",),
                f"{way} are tunnelled to {peer.public_ip}, the address {y} advertises, not to its address {address}")
    return (("OVERLAY_UNREACHABLE",),
            f"{way} never reach {y}, and {x}'s route to {y}'s pod CIDR looks right; {plan.note}")


def source_cause(run: RunData, a: str, outer_srcs: tuple[str, ...]) -> Cause | None:
    """A's VXLAN packets leave from an address that is not A's: the answers go there and are lost."""
    address = run.addresses[a]
    wrong = sorted(set(outer_srcs) - {address})
    if not wrong:
        return None
    advertised = cni.of_run(run).vtep(run, a).public_ip
    if advertised in wrong:
        return (("PUBLIC_IP_MISMATCH",),
                f"{a} sends VXLAN from {advertised}, the public IP it advertises, not from its address {address}: "
                "the answers go there")
    return (("VTEP_LOCAL_MISMATCH",),
            f"{a} sends VXLAN from {', '.join(wrong)}, not from its address {address}: the answers go there")


def describe(run: RunData, a: str, b: str) -> str:
    """The evidence of A->B in a few lines, for failure messages and the report."""
    ev = run.mesh[f"{a}->{b}"]
    echo = ev.udp_echo
    sizes = ", ".join(f"{size} B {_echo_state(s)}" for size, s in echo.per_size.items())
    cap = ev.captured
    lines = [
        f"udp echo {a} -> {b}:{echo.port}: {sizes or 'not sent'}",
        f"raw VXLAN frame {a} -> {b}:{ev.vxlan_frame.port}: {_answer(ev.vxlan_frame)}",
        f"overlay ping {a} -> {b} via {run.overlay['device']}: {_answer(ev.overlay_ping)}",
        f"DF ping size {ev.df_probe.size}: {_answer(ev.df_probe)}",
    ]
    if cap.available:
        by_port = {str(port): count for port, count in cap.by_dport.items()}
        lines.append(f"captured at {b} from {a}: {cap.count} frames by port {by_port}, "
                     f"checksums ok {cap.valid_csum} / bad {cap.bad_csum}, "
                     f"{b} UdpInCsumErrors +{cap.receiver_in_csum_errors_delta}")
    else:
        lines.append(f"no capture at {b}")
    lines += ev.errors
    return "\n".join(lines)


def _answer(probe: Probe) -> str:
    return "answered" if probe.reply_seen else "no answer"


def _echo_state(size: EchoSize) -> str:
    if not size.replied:
        return "LOST"
    return "CORRUPTED" if size.corrupted else "ok"


def _sender_offloads(run: RunData, a: str) -> str:
    facts = run.facts.get(a)
    if facts is None or not facts.offloads:
        return ""
    shown = [f"{k}: {v}" for k, v in facts.offloads.items() if k.startswith("tx-checksum")]
    return "\n" + f"{a} ethtool -k {run.overlay['device']}: " + "; ".join(shown)
