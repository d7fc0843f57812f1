"""For every directed pair A->B: what A's kernel needs to reach B, as the run's CNI programs it
(cni/: `peer_plan`). For flannel and Calico: the FDB entry B's VtepMAC -> B's public IP, the permanent
neighbour B's VTEP IP -> B's VtepMAC, and the route to B's pod subnet via B's VTEP IP on the device."""

from __future__ import annotations

import ipaddress

from vxlan_conformance import cni
from vxlan_conformance.checks.registry import check
from vxlan_conformance.model.result import CheckResult, NotApplicable
from vxlan_conformance.model.rundata import RunData


def _values(run: RunData, a: str, b: str, peer: cni.Vtep) -> dict[str, object]:
    return {"node": a, "peer": b, "device": run.overlay["device"], "port": run.overlay["port"],
            "peer_mac": peer.mac, "peer_ip": peer.public_ip, "peer_vtep": peer.vtep_ip,
            "peer_subnet": peer.pod_cidr, "peer_address": run.addresses[b]}


def _not_compared(plan: cni.PeerPlan, element: str, subject: str) -> CheckResult | None:
    """A pair result that says why this element is not compared (not VXLAN, or unknown), else None."""
    if not plan.vxlan and element != "routes":
        return CheckResult(subject, note=plan.note)
    why = (plan.why_not or {}).get(element)
    return CheckResult(subject, note="; ".join(filter(None, [plan.note, why]))) if why else None


@check("peer-fdb", "FDB entry", "pair", codes=("FDB_MISSING", "FDB_WRONG_DST", "VTEP_MAC_DUPLICATE"))
def fdb(run: RunData, a: str, b: str) -> CheckResult:
    subject = f"{a}->{b}"
    model = cni.of_run(run)
    plan = model.peer_plan(run, a, b)
    if (skip := _not_compared(plan, "fdb", subject)) or plan.fdb is None:
        return skip or CheckResult(subject, note=plan.note)
    mac, dst = plan.fdb
    peer = model.vtep(run, b)
    entries = run.facts[a].fdb_for(mac)
    listing = "\n".join(f"{e.mac} dst {e.dst}" for e in entries) or "(no entry)"
    values = _values(run, a, b, peer)
    if not entries:
        return CheckResult(subject, ("FDB_MISSING",),
                           f"{a} has no FDB entry for {b}'s VtepMAC {mac} on {run.overlay['device']}",
                           evidence=f"{a}: bridge fdb show dev {run.overlay['device']} | grep {mac}\n"
                                    f"{listing}", values=values)
    if any(e.dst == dst for e in entries):
        return CheckResult(subject, note=plan.note)
    dsts = ", ".join(sorted({str(e.dst) for e in entries}))
    owners = [h for h in run.nodes if h != b and model.vtep(run, h).mac == mac]
    if owners:
        return CheckResult(
            subject, ("VTEP_MAC_DUPLICATE",),
            f"{a} sends {b}'s frames to {dsts}: {b}'s VtepMAC {mac} is also {', '.join(owners)}'s, "
            "and the last node to register the MAC wins the FDB entry",
            evidence=listing, values=values)
    return CheckResult(subject, ("FDB_WRONG_DST",),
                       f"{a}'s FDB sends {b}'s VtepMAC {mac} to {dsts}, but {b}'s public IP is "
                       f"{dst}", evidence=listing, values=values)


@check("peer-neigh", "Neighbour entry", "pair", codes=("NEIGH_MISSING", "NEIGH_WRONG_MAC"))
def neighbour(run: RunData, a: str, b: str) -> CheckResult:
    subject = f"{a}->{b}"
    model = cni.of_run(run)
    plan = model.peer_plan(run, a, b)
    if (skip := _not_compared(plan, "neigh", subject)) or plan.neigh is None:
        return skip or CheckResult(subject, note=plan.note)
    ip, mac = plan.neigh
    entries = run.facts[a].neighbours_of(ip)
    values = _values(run, a, b, model.vtep(run, b))
    if not entries:
        return CheckResult(subject, ("NEIGH_MISSING",),
                           f"{a} has no neighbour entry for {b}'s VTEP {ip}", values=values)
    macs = sorted({(n.mac or "").lower() for n in entries})
    if mac in macs:
        return CheckResult(subject, note=plan.note)
    return CheckResult(subject, ("NEIGH_WRONG_MAC",),
                       f"{a} resolves {b}'s VTEP {ip} to {', '.join(macs)}, but {b}'s VtepMAC is "
                       f"{mac}", evidence="\n".join(f"{n.ip} lladdr {n.mac} {n.state}" for n in entries),
                       values=values)


@check("peer-tunnel", "Tunnel map entry", "pair", codes=("TUNNEL_MISSING", "TUNNEL_WRONG_DST"))
def tunnel(run: RunData, a: str, b: str) -> CheckResult:
    """Cilium: A sends B's pod CIDR to the address B advertises, per A's tunnel map (`cilium-dbg bpf tunnel
    list`) or, from v1.18, its ipcache's pod CIDR entries (`cilium-dbg bpf ipcache list`); read only when the
    node has cilium-dbg, otherwise a skip that says so."""
    subject = f"{a}->{b}"
    model = cni.of_run(run)
    plan = model.peer_plan(run, a, b)
    if plan.tunnel is None:
        raise NotApplicable((plan.why_not or {}).get("tunnel") or plan.note or "no tunnel map entry expected")
    key, dst = plan.tunnel
    table = run.facts[a].tunnel_map or {}
    found = table.get(key)
    values = {**_values(run, a, b, model.vtep(run, b)), "cidr": key}
    listing = "\n".join(f"{k} {v}" for k, v in sorted(table.items())) or "(empty)"
    evidence = f"{a}: {plan.tunnel_read}\n{listing}"
    if found is None:
        entry = "pod CIDR entry with a tunnel endpoint" if plan.tunnel_table == "ipcache" else "entry"
        return CheckResult(subject, ("TUNNEL_MISSING",),
                           f"{a}'s {plan.tunnel_table} has no {entry} for {b}'s pod CIDR {key}",
                           evidence=evidence, values=values)
    if found != dst:
        return CheckResult(subject, ("TUNNEL_WRONG_DST",),
                           f"{a}'s {plan.tunnel_table} sends {b}'s pod CIDR {key} to {found}, but {b}'s address "
                           f"is {dst}", evidence=evidence, values=values)
    return CheckResult(subject)


@check("peer-route", "Route", "pair", codes=("ROUTE_MISSING",))
def route(run: RunData, a: str, b: str) -> CheckResult:
    subject = f"{a}->{b}"
    model = cni.of_run(run)
    plan = model.peer_plan(run, a, b)
    if skip := _not_compared(plan, "routes", subject):
        return skip
    values = _values(run, a, b, model.vtep(run, b))
    missing, shown = [], []
    for want in plan.routes:
        routes = run.facts[a].routes_to(ipaddress.ip_network(want.dst, strict=False))
        if not any(r.dev == want.dev and r.via in (None, want.via) for r in routes):
            missing.append(f"{want.dst} via {want.via} dev {want.dev}")
            shown += [f"{r.dst} via {r.via} dev {r.dev}{' onlink' if r.onlink else ''}" for r in routes]
    if not missing:
        return CheckResult(subject, note=plan.note)
    return CheckResult(subject, ("ROUTE_MISSING",),
                       f"{a} has no route to {b}'s pod subnet {', '.join(missing)}",
                       evidence="\n".join(shown) or "(no route)", values={**values, "cidr": missing[0].split()[0]})
