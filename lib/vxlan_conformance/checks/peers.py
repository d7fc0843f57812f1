"""For every directed pair A->B: what A's kernel needs to reach B over the overlay, as flannel and Calico
program it: the FDB entry B's VtepMAC -> B's public IP, the permanent neighbour B's VTEP IP -> B's
VtepMAC, and the route to B's pod subnet via B's VTEP IP on the VXLAN device."""

from __future__ import annotations

import ipaddress

from vxlan_conformance import cni
from vxlan_conformance.checks.registry import check
from vxlan_conformance.model.result import CheckResult
from vxlan_conformance.model.rundata import RunData


def _values(run: RunData, a: str, b: str, peer: cni.Vtep) -> dict[str, object]:
    return {"node": a, "peer": b, "device": run.overlay["device"], "port": run.overlay["port"],
            "peer_mac": peer.mac, "peer_ip": peer.public_ip, "peer_vtep": peer.vtep_ip,
            "peer_subnet": peer.pod_cidr}


@check("peer-fdb", "FDB entry", "pair", codes=("FDB_MISSING", "FDB_WRONG_DST", "VTEP_MAC_DUPLICATE"))
def fdb(run: RunData, a: str, b: str) -> CheckResult:
    subject = f"{a}->{b}"
    peer = cni.of_run(run).vtep(run, b)
    if not peer.mac:
        return CheckResult(subject, note=f"{b} advertises no VtepMAC; nothing to compare")
    entries = run.facts[a].fdb_for(peer.mac)
    listing = "\n".join(f"{e.mac} dst {e.dst}" for e in entries) or "(no entry)"
    values = _values(run, a, b, peer)
    if not entries:
        return CheckResult(subject, ("FDB_MISSING",),
                           f"{a} has no FDB entry for {b}'s VtepMAC {peer.mac} on {run.overlay['device']}",
                           evidence=f"{a}: bridge fdb show dev {run.overlay['device']} | grep {peer.mac}\n"
                                    f"{listing}", values=values)
    if any(e.dst == peer.public_ip for e in entries):
        return CheckResult(subject)
    dsts = ", ".join(sorted({str(e.dst) for e in entries}))
    owners = [h for h in run.nodes if h != b and cni.of_run(run).vtep(run, h).mac == peer.mac]
    if owners:
        return CheckResult(subject, ("VTEP_MAC_DUPLICATE",),
            f"{a} sends {b}'s frames to {dsts}: {b}'s VtepMAC {peer.mac} is also {', '.join(owners)}'s, "
            "and the last node to register the MAC wins the FDB entry",
            evidence=listing, values=values)
    return CheckResult(subject, ("FDB_WRONG_DST",),
                       f"{a}'s FDB sends {b}'s VtepMAC {peer.mac} to {dsts}, but {b}'s public IP is "
                       f"{peer.public_ip}", evidence=listing, values=values)


@check("peer-neigh", "Neighbour entry", "pair", codes=("NEIGH_MISSING", "NEIGH_WRONG_MAC"))
def neighbour(run: RunData, a: str, b: str) -> CheckResult:
    subject = f"{a}->{b}"
    peer = cni.of_run(run).vtep(run, b)
    if not peer.vtep_ip or not peer.mac:
        return CheckResult(subject, note=f"{b}'s VTEP address or MAC unknown; not compared")
    entries = run.facts[a].neighbours_of(peer.vtep_ip)
    values = _values(run, a, b, peer)
    if not entries:
        return CheckResult(subject, ("NEIGH_MISSING",),
                           f"{a} has no neighbour entry for {b}'s VTEP {peer.vtep_ip}", values=values)
    macs = sorted({(n.mac or "").lower() for n in entries})
    if peer.mac in macs:
        return CheckResult(subject)
    return CheckResult(subject, ("NEIGH_WRONG_MAC",),
                       f"{a} resolves {b}'s VTEP {peer.vtep_ip} to {', '.join(macs)}, but {b}'s VtepMAC is "
                       f"{peer.mac}", evidence="\n".join(f"{n.ip} lladdr {n.mac} {n.state}" for n in entries),
                       values=values)


@check("peer-route", "Route", "pair", codes=("ROUTE_MISSING",))
def route(run: RunData, a: str, b: str) -> CheckResult:
    subject = f"{a}->{b}"
    peer = cni.of_run(run).vtep(run, b)
    if not peer.pod_cidr:
        return CheckResult(subject, note=f"{b}'s pod subnet unknown; not compared")
    want = ipaddress.ip_network(peer.pod_cidr, strict=False)
    device = run.overlay["device"]
    routes = run.facts[a].routes_to(want)
    values = _values(run, a, b, peer)
    good = [r for r in routes if r.dev == device and (r.via in (None, peer.vtep_ip))]
    if good:
        return CheckResult(subject)
    shown = "\n".join(f"{r.dst} via {r.via} dev {r.dev}{' onlink' if r.onlink else ''}" for r in routes)
    return CheckResult(subject, ("ROUTE_MISSING",),
                       f"{a} has no route to {b}'s pod subnet {want} via {peer.vtep_ip} dev {device}",
                       evidence=shown or "(no route)", values=values)
