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
from vxlan_conformance.model.facts import NodeFacts
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
    "NEIGH_WRONG_MAC", "NEIGH_MISSING", "PUBLIC_IP_MISMATCH", "VTEP_LOCAL_MISMATCH", "ROUTE_MISSING",
    "TUNNEL_MISSING", "TUNNEL_WRONG_DST", "HOST_FIREWALL_DROP", "VXLAN_PORT_MISMATCH", "UNDERLAY_MTU_TOO_SMALL",
    "RP_FILTER_DROP", "VTEP_DOWN", "CONFIG_INCONSISTENT"))
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
    # a direct pair's traffic is the overlay ping alone: the raw VXLAN frame tests a path it does not use
    answered = evidence.answered or (evidence.overlay_ping.reply_seen and direct_pair(run, a, b))
    if evidence.errors and not evidence.captured.available and not (answered and evidence.udp_echo.ok):
        # B's agent failed: no capture and no echo responder there, so a lost probe blames no network hop
        return CheckResult(subject, ("MESH_FAILED",), f"{b}'s probe agent failed, so what reached {b} from {a} "
                           f"is unknown: {'; '.join(evidence.errors)}", evidence=text, values=values)
    if answered and (cause := underlay_mtu_cause(run, a, b)) and not (
            evidence.udp_echo.ok and evidence.df_probe.reply_seen):
        return CheckResult(subject, cause[0], cause[1], evidence=text,
                           values={**values, "mtu": cause[2], "nic": _underlay_name(run, b)})
    if answered and evidence.udp_echo.ok:
        if evidence.df_probe.reply_seen:
            return CheckResult(subject, evidence=text, note=direct_note(run, a, b))
        size = evidence.df_probe.size
        return CheckResult(subject, ("MTU_MISMATCH",),
                           f"{a} reaches {b} over the overlay, but not with a {size}-byte packet that may "
                           f"not be fragmented ({evidence.df_probe.error or 'no reply'})",
                           evidence=text, values={**values, "mtu": size})
    if cause := forward_cause(run, a, b):
        values.update(_fix_values(run, a, b))
        extra = _sender_offloads(run, a) if "OUTER_CHECKSUM_BAD" in cause[0] else ""
        if "VTEP_DOWN" in cause[0]:  # the remediation is for the node whose device is down
            values["node"] = next(h for h in (a, b) if _down(run, h))
        if "HOST_FIREWALL_DROP" in cause[0]:  # the firewall to open is B's, on B's NIC
            values["nic"] = _underlay_name(run, b)
        if "RP_FILTER_DROP" in cause[0]:  # the remediation's commands run on B about A's address
            values = {**values, **_rp_filter_values(run, a, b)}
        if "ROUTE_MISSING" in cause[0]:  # the remediation looks up the route A lacks
            values["cidr"] = _missing_cidr(run, a, b)
        return CheckResult(subject, cause[0], cause[1], evidence=text + extra, values=values)
    if not answered and (back := forward_cause(run, b, a)):
        return CheckResult(subject, evidence=text,
                           note=f"{b} received {a}'s probes intact; the answers are lost on {b}->{a}: {back[1]}")
    sizes = evidence.udp_echo.per_size
    lost = [size for size, echo in sizes.items() if not echo.replied]
    replied = [int(size) for size, echo in sizes.items() if echo.replied]
    if answered and lost and replied and min(map(int, lost)) > max(replied):  # the port is open, big ones die
        return CheckResult(subject, ("MTU_MISMATCH",),
                           f"{a} reaches {b} over the overlay and with small UDP echoes, but the "
                           f"{', '.join(sorted(lost, key=int))}-byte echoes to udp/{values['probe_port']} are lost"
                           f"{'' if evidence.df_probe.reply_seen else ' and so is the DF probe'}: a hop on the "
                           "path between them takes smaller packets than the nodes' interfaces",
                           evidence=text, values={**values, "mtu": evidence.df_probe.size})
    if answered:
        return CheckResult(subject, ("PROBE_PORT_BLOCKED",),
                           f"VXLAN from {a} to {b} works, but UDP {values['probe_port']} (the echo probe) does not"
                           + _echo_death(run, a, b), evidence=text, values=values)
    return CheckResult(subject, ("OVERLAY_UNREACHABLE",),
                       f"{a} cannot reach {b} over the overlay and no more specific cause was found",
                       evidence=text, values={**values, **_fix_values(run, a, b)})


def _fix_values(run: RunData, a: str, b: str) -> dict[str, str | None]:
    """What the fix texts of a forward cause name beyond the pair: B's address and VTEP MAC, A's NIC.
    Worked out for failures only: diagnose runs once per pair, and most pairs pass."""
    return {"peer_address": run.addresses[b], "peer_mac": cni.of_run(run).vtep(run, b).mac,
            "nic": _underlay_name(run, a)}


def forward_cause(run: RunData, a: str, b: str) -> Cause | None:
    """Why A's VXLAN traffic does not get to B and into B's kernel, most specific first; None when it does."""
    seen = arrival(run, a, b)
    evidence = run.mesh.get(f"{a}->{b}")
    if seen is None or evidence is None or not seen.captured:
        return None
    if direct_pair(run, a, b):
        return direct_cause(run, a, b)
    port = run.overlay["port"]
    if seen.bad_csum:
        facts = run.facts.get(a)
        kernel = facts.kernel_release if facts else "?"
        return (("OUTER_CHECKSUM_BAD",),
                f"{b} receives {a}'s VXLAN packets with an invalid outer UDP checksum and drops them "
                f"({seen.bad_csum} bad at port {port}); {a} runs kernel {kernel}")
    if cause := port_cause(run, a, b):
        return cause
    if evidence.vxlan_frame.sent and seen.vxlan_seen == 0:
        nothing = " and nothing at all from it at the probe port either" if seen.probe_seen == 0 else ""
        return (("UDP_PORT_BLOCKED",),
                f"{a}'s packets to {b}:{port}/udp never reach {b}'s network interface{nothing}: a firewall "
                "or security group drops them on the way")
    if cause := vni_cause(run, a, b):
        return cause
    if not evidence.answered and (down := _down(run, b)):
        return down
    if not evidence.answered and (cause := receive_path_cause(run, a, b, seen)):
        return cause
    if seen.frame_requests and (cause := _acceptance_cause(run, a, b)):
        return cause
    # a send refused by A's kernel (no route: ENETUNREACH) is a request that never left either
    if (evidence.overlay_ping.sent or evidence.overlay_ping.error) and not seen.overlay_requests:
        return config_cause(run, a, b)
    return source_cause(run, a, seen.outer_srcs)


def direct_pair(run: RunData, a: str, b: str) -> bool:
    """A reaches B's pods without encapsulation (Calico CrossSubnet, same subnet: felix's no-encap routes;
    flannel DirectRouting): the plan says so, or every route it expects goes via B's own node address."""
    model = cni.of_run(run)
    plan = model.peer_plan(run, a, b)
    node_ips = {run.addresses[b], model.vtep(run, b).public_ip}
    return not plan.vxlan or (bool(plan.routes) and all(r.via in node_ips for r in plan.routes))


def direct_note(run: RunData, a: str, b: str) -> str:
    if not direct_pair(run, a, b):
        return ""
    dev = ", ".join(sorted({r.dev for r in cni.of_run(run).peer_plan(run, a, b).routes})) or "the underlay"
    return (f"{a}->{b} is a direct pair, not VXLAN: {a} routes {b}'s pods on {dev}, so the overlay ping crossed "
            f"the underlay unencapsulated")


def direct_cause(run: RunData, a: str, b: str) -> Cause | None:
    """A direct pair whose overlay ping is lost: no VXLAN on its way, so no VXLAN cause; A's routes, B's
    routes back (then B->A names it), else the underlay between them."""
    evidence = run.mesh[f"{a}->{b}"]
    if evidence.overlay_ping.reply_seen or not (evidence.overlay_ping.sent or evidence.overlay_ping.error):
        return None
    if cause := route_cause(run, a, b):
        return cause
    if direct_pair(run, b, a) and route_cause(run, b, a):  # B's answers have no way back: B->A says why
        return None
    return (("OVERLAY_UNREACHABLE",),
            f"{a}'s packets for {b}'s pods go directly (no VXLAN) and never reach {b}, and {a}'s routes to them "
            "look right: the underlay between them drops them")


def port_cause(run: RunData, a: str, b: str) -> Cause | None:
    """A's kernel sends its VXLAN to B at A's device port, B's device listens on another: B's kernel has
    no socket there and drops them (UdpNoPorts, ICMP port unreachable). Config drift after a port change
    (seed 002 moved the port to 8475)."""
    evidence = run.mesh[f"{a}->{b}"]
    facts_a, facts_b = run.facts.get(a), run.facts.get(b)
    if facts_a is None or facts_b is None or facts_a.device is None or facts_b.device is None:
        return None
    sending, listening = facts_a.device.port, facts_b.device.port
    if not sending or not listening or sending == listening or evidence.overlay_ping.reply_seen:
        return None
    device = run.overlay["device"]
    seen = evidence.captured.at_port(sending) if evidence.captured.available else None
    proof = [f"{b}'s capture saw {seen} of {a}'s packets at udp/{sending}" if seen is not None else "",
             _counter(evidence, "NoPorts", f"{b} UdpNoPorts"), _icmp(evidence, "port_unreachable", sending, a, b)]
    return (("VXLAN_PORT_MISMATCH",),
            f"{a}'s {device} sends its VXLAN packets for {b} to udp/{sending}, but {b}'s {device} listens on "
            f"udp/{listening}: {b}'s kernel has no socket there and drops them"
            + _joined(proof))


def vni_cause(run: RunData, a: str, b: str) -> Cause | None:
    """A's device sends its VXLAN with another VNI than B's device takes: B's kernel finds no device for
    that VNI and drops the packets silently (no counter, no ICMP). The runner's raw frames carry B's own VNI
    and get in, but B's kernel answers with B's VNI, which A drops the same way."""
    evidence = run.mesh[f"{a}->{b}"]
    facts_a, facts_b = run.facts.get(a), run.facts.get(b)
    if facts_a is None or facts_b is None or facts_a.device is None or facts_b.device is None:
        return None
    if facts_a.device.external or facts_b.device.external:  # flow-based (Cilium, Calico eBPF): VNI per packet
        return None
    sending, taking = facts_a.device.vni, facts_b.device.vni
    if sending is None or taking is None or sending == taking or evidence.overlay_ping.reply_seen:
        return None
    seen = sorted(evidence.captured.vnis) if evidence.captured.available else []
    device = run.overlay["device"]
    return (("CONFIG_INCONSISTENT",),
            f"{a}'s {device} sends its VXLAN packets for {b} with VNI {sending}, but {b}'s {device} takes VNI "
            f"{taking}: {b}'s kernel has no device for VNI {sending} and drops them"
            + _joined([f"{b}'s capture saw VNIs {', '.join(map(str, seen))} from {a}" if seen else ""]))


def _down(run: RunData, host: str) -> Cause | None:
    """The host's VXLAN device is down: the kernel closed its UDP socket and removed the routes through it,
    so the host neither sends overlay packets nor takes any in (UdpNoPorts)."""
    facts = run.facts.get(host)
    if facts is None or facts.device is None or facts.device.up:
        return None
    return (("VTEP_DOWN",),
            f"{host}'s {facts.device.name} is down: {host} sends no overlay packets and drops those that arrive")


def receive_path_cause(run: RunData, a: str, b: str, seen: Arrival) -> Cause | None:
    """A's requests reached B's NIC intact, yet nothing came back: name the hop on B that ate them, from
    B's own counters around the mesh: a netfilter rule that dropped or rejected (B's host firewall), or
    rp_filter."""
    evidence = run.mesh[f"{a}->{b}"]
    path = evidence.receive_path
    arrived = seen.frame_requests + seen.overlay_requests
    if not path.available or not arrived:
        return None
    port = evidence.vxlan_frame.port or int(run.overlay["port"])
    if quoted := _firewall_quote(path, port, arrived):
        proof = [_icmp(evidence, "host_prohibited", port, a, b), _icmp(evidence, "admin_prohibited", port, a, b),
                 _device(path, b)]
        return (("HOST_FIREWALL_DROP",),
                f"{a}'s VXLAN packets reach {b}'s network interface intact ({arrived} probe requests captured), "
                f"then {b}'s own firewall drops them: {quoted}" + _joined(proof))
    drops = path.rp_filter_drops_delta or 0
    strict = max(path.rp_filter.values(), default=0)
    if drops > 0 and strict and route_cause(run, b, a):
        return None  # B has no route back to A's overlay at all, so any rp_filter drops it: B->A names the route
    if drops > 0 and strict:
        modes = ", ".join(f"{k}={v}" for k, v in sorted(path.rp_filter.items()))
        return (("RP_FILTER_DROP",),
                f"{a}'s VXLAN packets reach {b} intact, and {b}'s reverse path filter drops them "
                f"(IPReversePathFilter +{drops} during the probes; rp_filter {modes})"
                + _joined([_route_back(run, a, b), _device(path, b)]))
    return None


def _firewall_quote(path, port: int, arrived: int) -> str:
    """B's input rules that dropped what arrived at `port` (naming the port, or catching everything and
    counting at least as many packets as arrived), quoted with the firewalld zone; "" when none did."""
    rules = [r for r in path.dropping_rules() if _names_port(r.rule, port) or _catch_all(r.rule)]
    rules = [r for r in rules if _names_port(r.rule, port) or r.packets >= arrived]
    if not rules:
        return ""
    if any(r.rule.startswith("iptables ") for r in rules):  # iptables-nft: the same rules again in nft's words
        rules = [r for r in rules if not r.rule.startswith(("nft ip filter ", "nft ip6 filter "))]
    rules.sort(key=lambda r: (not _names_port(r.rule, port), not r.rule.startswith("iptables "), -r.packets))
    return "; ".join(f"`{_rule_text(r.rule)}` (+{r.packets} packets)" for r in rules[:2]) + _firewalld_zone(path)


def _echo_death(run: RunData, a: str, b: str) -> str:
    """Where A's UDP echo datagrams died while its VXLAN got through: on the way (B's capture saw none) or
    on B after its NIC (B's own firewall, named with its rule and the ICMP error A got back)."""
    evidence = run.mesh[f"{a}->{b}"]
    port = evidence.udp_echo.port
    if not evidence.captured.available or not port:
        return ""
    seen = evidence.captured.at_port(port)
    if not seen:
        return f": {a}'s echo datagrams never reach {b}'s network interface (a firewall or security group on the way)"
    proof = [_icmp(evidence, "host_prohibited", port, a, b), _icmp(evidence, "admin_prohibited", port, a, b),
             _icmp(evidence, "port_unreachable", port, a, b)]
    path = evidence.receive_path
    if path.available and (quoted := _firewall_quote(path, port, seen)):
        return (f": {a}'s echo datagrams reach {b}'s network interface intact ({seen} captured), then {b}'s own "
                f"firewall drops them: {quoted}" + _joined(proof))
    return f": {a}'s echo datagrams reach {b}'s network interface ({seen} captured) and die on {b}" + _joined(proof)


def _route_back(run: RunData, a: str, b: str) -> str:
    """B's route to A's address, longest prefix of B's main table: strict rp_filter drops A's packets when
    it leaves by another interface than the one they arrive on."""
    facts = run.facts.get(b)
    if facts is None or not facts.routes or facts.underlay is None:
        return ""
    target = ipaddress.ip_address(run.addresses[a])
    matches = []
    for route in facts.routes:
        try:
            net = ipaddress.ip_network("0.0.0.0/0" if route.dst == "default" else route.dst, strict=False)
        except ValueError:
            continue
        if route.type in (None, "unicast") and target in net:
            matches.append((net.prefixlen, route))
    if not matches:
        return f"{b} has no route back to {a}'s {target}"
    best = max(matches, key=lambda m: m[0])[1]
    shown = " ".join(w for w in (best.dst, f"via {best.via}" if best.via else "", f"dev {best.dev}" if best.dev else "",
                                 f"src {best.src}" if best.src else "") if w)
    arrive = facts.underlay.name
    if best.dev and best.dev != arrive:
        return f"{b}'s route back to {a}'s {target} leaves by {best.dev}, not by {arrive} where they arrive: `{shown}`"
    return f"{b}'s route back to {a}'s {target}: `{shown}`"


def _rp_filter_values(run: RunData, a: str, b: str) -> dict[str, str | None]:
    """RP_FILTER_DROP's placeholders: A's address (the source B must route back to), B's own and B's NIC."""
    return {"address": run.addresses[a], "peer_address": run.addresses[b], "nic": _underlay_name(run, b)}


def _underlay_name(run: RunData, host: str) -> str | None:
    """The node's underlay interface (the NIC its node address is on), when its facts were gathered."""
    facts = run.facts.get(host)
    return facts.underlay.name if facts and facts.underlay else None


def underlay_mtu_cause(run: RunData, a: str, b: str) -> tuple[tuple[str, ...], str, int] | None:
    """B's underlay interface takes smaller frames than A's overlay sends to it: the overlay MTU plus the
    VXLAN overhead (50 bytes) does not fit into B's underlay MTU, so big packets die at B's NIC."""
    facts_a, facts_b = run.facts.get(a), run.facts.get(b)
    if not facts_a or not facts_b or not facts_a.device or not facts_b.underlay or not facts_a.underlay:
        return None
    model = cni.of_run(run)
    sends = model.overlay_mtu(run, a) or 0
    needs = sends + 50
    has = facts_b.underlay.mtu or 0
    if not has or has >= needs or has >= (facts_a.underlay.mtu or 0):
        return None
    what = (f"{run.overlay['device']} MTU {sends}" if sends == facts_a.device.mtu
            else f"MTU {sends} on its routes into {run.overlay['device']}")  # Calico eBPF: felix's VXLANMTU
    return (("UNDERLAY_MTU_TOO_SMALL",),
            f"{b}'s underlay interface {facts_b.underlay.name} has MTU {has}, but {a}'s overlay sends frames of "
            f"up to {needs} bytes ({what} + 50 bytes VXLAN) and of "
            f"{facts_a.underlay.mtu} on the underlay: {b}'s NIC drops the bigger ones", has)


def _names_port(rule: str, port: int) -> bool:
    return f"dport {port}" in rule or f"--dport {port}" in rule or f"dports {port}" in rule


def _catch_all(rule: str) -> bool:
    """A rule that drops or rejects whatever reaches it (a chain's last rule, a chain policy): no match on
    a protocol, port, address or interface before its verdict."""
    words = rule.split()
    if ":policy" in words:
        return True
    body = words[3:] if rule.startswith("iptables ") else words[4:]
    selectors = {"-p", "--dport", "-s", "-d", "-i", "--dports", "dport", "saddr", "daddr", "iif", "iifname",
                 "tcp", "udp", "icmp", "ct", "-m"}
    head = body[:body.index("-j")] if "-j" in body else body
    return not (set(head) & selectors)


def _rule_text(key: str) -> str:
    """The rule as its tool prints it: `-A INPUT ...`, `:INPUT DROP` (policy), `nft: inet filter input: ...`."""
    words = key.split()
    if key.startswith("iptables "):
        if ":policy" in words:
            return f"iptables -t {words[1]} -P {words[2]} {words[-1]}"
        return "iptables -t " + words[1] + " " + " ".join(words[3:])
    return f"nft {' '.join(words[1:3])} chain {words[3]}: {' '.join(words[4:])}"


def _firewalld_zone(path) -> str:
    if path.firewalld:
        return f"; firewalld is running, default zone {path.firewalld.get('default') or '?'}"
    zones = sorted({w[3:] for r in path.netfilter_delta for w in r.rule.split()
                    if w.startswith("IN_") and not w.endswith(("_allow", "_deny", "_log", "_pre", "_post"))})
    return f"; a firewalld ruleset (zone {', '.join(zones)})" if zones else ""


def _counter(evidence: PairEvidence, name: str, label: str) -> str:
    delta = evidence.receive_path.udp_delta.get(name) if evidence.receive_path.available else None
    return f"{label} +{delta}" if delta else ""


def _icmp(evidence: PairEvidence, kind: str, port: int, a: str, b: str) -> str:
    count = evidence.icmp_errors.get(f"{kind}/{port}", 0)
    return f"{a} got {count} ICMP {kind.replace('_', ' ')} from {b} for udp/{port}" if count else ""


def _device(path, b: str) -> str:
    if not path.device_delta:
        return ""
    return f"{b}'s {path.device} decapsulated {path.device_delta.get('rx_packets', 0)} packets during the probes"


def _joined(parts: list[str]) -> str:
    shown = [p for p in parts if p]
    return " (" + "; ".join(shown) + ")" if shown else ""


def _acceptance_cause(run: RunData, a: str, b: str) -> Cause | None:
    """B drops frames that reach it: they carry its own MAC as source, or a MAC that is not its own."""
    facts_a, facts_b = run.facts.get(a), run.facts.get(b)
    if cni.of_run(run).not_applicable("vtep-mac-unique", run):  # Cilium: no peer addresses a VTEP MAC
        return None
    if facts_b is None or facts_b.device is None or not facts_b.device.mac:
        return None
    mac_b = facts_b.device.mac.lower()
    if facts_a is not None and facts_a.device is not None and (facts_a.device.mac or "").lower() == mac_b:
        return (("VTEP_MAC_DUPLICATE",),
                f"{a} and {b} have the same VTEP MAC {mac_b}: {b} drops {a}'s frames as its own")
    model = cni.of_run(run)
    if model.takes_any_inner_mac(run):  # Calico eBPF: only the kernel's own-source drop above remains
        return None
    advertised = model.vtep(run, b).mac
    if advertised and advertised != mac_b:
        return (("VTEP_MAC_MISMATCH",),
                f"{b} drops frames for its advertised VtepMAC {advertised}: {facts_b.device.name} has {mac_b}")
    return None


def config_cause(run: RunData, x: str, y: str) -> Cause:
    """Why x's kernel does not send its overlay packets for y to y, in the order the kernel looks: x's
    device, the route to y's pods, then the FDB entry and the neighbour entry for y's VTEP."""
    if down := _down(run, x):
        return down
    model = cni.of_run(run)
    if model.not_applicable("peer-fdb", run):
        return routed_cause(run, x, y)
    facts = run.facts.get(x)
    peer = model.vtep(run, y)
    address = run.addresses[y]
    plan = model.peer_plan(run, x, y)
    unexplained = (("OVERLAY_UNREACHABLE",),
                   f"{x}'s overlay packets for {y} never reach {y}, and {x}'s route, FDB and neighbour entries "
                   f"for {y} look right")
    if facts is None:
        return unexplained
    way = f"{x}'s overlay packets for {y}"
    if want := _missing_route(facts, plan):
        return (("ROUTE_MISSING",), f"{way} have no route: {x} has no {want.dst} via {want.via} dev {want.dev}")
    if not plan.vxlan:  # DirectRouting: no FDB or neighbour entry to blame
        return unexplained
    adv = run.view.get(y)
    if peer.mac is None and adv is not None and adv.problem:  # y's own problem, named on y's pairs too
        return (("VTEP_MAC_MISMATCH",),
                f"{way} cannot be addressed: {y} advertises no usable VtepMAC ({adv.problem}), so {x} has no "
                f"FDB or neighbour entry to send them with")
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
    if plan.neigh is None:
        return unexplained
    neigh = {(n.mac or "").lower() for n in facts.neighbours_of(peer.vtep_ip)}
    if not neigh:
        return (("NEIGH_MISSING",),
                f"{way} cannot be addressed: {x} has no neighbour entry for {y}'s VTEP {peer.vtep_ip} "
                "(the device does not learn, and nobody answers ARP for it)")
    if peer.mac not in neigh:
        return (("NEIGH_WRONG_MAC",),
                f"{x} resolves {y}'s VTEP {peer.vtep_ip} to {', '.join(sorted(neigh))}, "
                f"not {peer.mac}")
    return unexplained


def _missing_route(facts: NodeFacts, plan: cni.PeerPlan) -> cni.ExpectedRoute | None:
    """The first route of the CNI's plan the node lacks (same test as the peer-route check)."""
    for want in plan.routes:
        routes = facts.routes_to(ipaddress.ip_network(want.dst, strict=False))
        if not any(r.dev == want.dev and r.via in (None, want.via) for r in routes):
            return want
    return None


def _missing_cidr(run: RunData, x: str, y: str) -> str | None:
    """The destination of the first route of y's plan that x lacks (what ROUTE_MISSING names)."""
    facts = run.facts.get(x)
    want = _missing_route(facts, cni.of_run(run).peer_plan(run, x, y)) if facts else None
    return want.dst if want else None


def routed_cause(run: RunData, x: str, y: str) -> Cause:
    """Cilium: no FDB or neighbour to blame. x needs a route to y's pod CIDR via its router IP on
    cilium_host (cni peer_plan), and its tunnel map (from v1.18 its ipcache) sends y's traffic to the
    address y advertises."""
    model = cni.of_run(run)
    plan = model.peer_plan(run, x, y)
    facts = run.facts.get(x)
    way = f"{x}'s overlay packets for {y}"
    if facts is not None and (want := _missing_route(facts, plan)):
        return (("ROUTE_MISSING",), f"{way} have no route: {x} has no {want.dst} via {want.via} dev {want.dev}")
    peer = model.vtep(run, y)
    address = run.addresses[y]
    if plan.tunnel is not None and facts is not None:
        found = (facts.tunnel_map or {}).get(plan.tunnel[0])
        if found is None:
            return (("TUNNEL_MISSING",),
                    f"{way} have no tunnel: {x}'s {plan.tunnel_table} has no tunnel endpoint for {plan.tunnel[0]}")
        if found != plan.tunnel[1] and found != address:
            return (("TUNNEL_WRONG_DST",), f"{way} are tunnelled to {found}, not to {y}'s address {address}")
    if peer.source != "facts" and peer.public_ip and peer.public_ip != address:
        return (("PUBLIC_IP_MISMATCH",),
                f"{way} are tunnelled to {peer.public_ip}, the address {y} advertises, not to its address {address}")
    return (("OVERLAY_UNREACHABLE",),
            f"{way} never reach {y}, and {x}'s route to {y}'s pod CIDR looks right; {plan.note}")


def route_cause(run: RunData, x: str, y: str) -> Cause | None:
    """A route x must hold for y's pods (cni peer_plan) that x lacks."""
    facts = run.facts.get(x)
    if facts is None or not (want := _missing_route(facts, cni.of_run(run).peer_plan(run, x, y))):
        return None
    return (("ROUTE_MISSING",),
            f"{x}'s overlay packets for {y} have no route: {x} has no {want.dst} via {want.via} dev {want.dev}")


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
    lines += _receive_path_lines(ev, a, b)
    lines += ev.errors
    return "\n".join(lines)


def _receive_path_lines(ev: PairEvidence, a: str, b: str) -> list[str]:
    """B's own receive path during the mesh (all peers' traffic, not only A's), and A's ICMP errors from B."""
    path = ev.receive_path
    lines = []
    if path.available:
        udp = ", ".join(f"{k} +{v}" for k, v in sorted(path.udp_delta.items()) if k != "InDatagrams")
        device = ", ".join(f"{k} +{v}" for k, v in sorted(path.device_delta.items()) if k.startswith("rx"))
        rpf = ", ".join(f"{k}={v}" for k, v in sorted(path.rp_filter.items()))
        lines.append(f"at {b} during the probes: Udp {udp or 'unread'}; {path.device} {device or 'unread'}; "
                     f"rp_filter {rpf or 'unread'}, IPReversePathFilter +{path.rp_filter_drops_delta}")
        drops = path.dropping_rules()
        if drops:
            lines.append(f"{b}'s netfilter rules that dropped or rejected packets during the probes: "
                         + "; ".join(f"{_rule_text(r.rule)} +{r.packets}" for r in drops[:4]))
        elif not path.netfilter_listed:
            lines.append(f"{b}'s netfilter rules could not be listed (no iptables-save or nft)")
    if ev.icmp_errors:
        lines.append(f"ICMP errors {a} got from {b}: "
                     + ", ".join(f"{k.replace('_', ' ')} x{v}" for k, v in sorted(ev.icmp_errors.items())))
    return lines


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
