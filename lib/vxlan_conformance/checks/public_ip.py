"""The public IP each node advertises: its own address (seed 001: every Vagrant VM advertised the NAT
NIC's 10.0.2.15) and nobody else's. `public-ip-overwrite` is what the operator chose; it is respected."""

from __future__ import annotations

from vxlan_conformance.checks.expect import needs_view, shared_by
from vxlan_conformance.checks.registry import check
from vxlan_conformance.model.result import CheckResult
from vxlan_conformance.model.rundata import RunData


def _evidence(run: RunData, hosts: list[str]) -> str:
    lines = []
    for h in hosts:
        adv = run.view.get(h)
        if adv is not None:
            over = f" (public-ip-overwrite {adv.public_ip_overwrite})" if adv.public_ip_overwrite else ""
            lines.append(f"{h}: node address {run.addresses[h]}, advertises public-ip {adv.public_ip}{over}")
    return "\n".join(lines)


@check("public-ip", "Advertised public IP is the node's address", "node",
       codes=("PUBLIC_IP_MISMATCH", "VIEW_NODE_MISSING"))
def matches_address(run: RunData, host: str) -> CheckResult:
    needs_view(run)
    adv = run.view.get(host)
    if adv is None:
        return CheckResult(host, ("VIEW_NODE_MISSING",),
                           f"{host} ({run.addresses[host]}) is not in the cluster view ({run.view_source})",
                           values={"node": host})
    expected = adv.public_ip_overwrite or run.addresses[host]
    if adv.public_ip == expected:
        return CheckResult(host)
    why = "public-ip-overwrite" if adv.public_ip_overwrite else "the node address in the inventory"
    return CheckResult(host, ("PUBLIC_IP_MISMATCH",),
        f"advertises public-ip {adv.public_ip} but {why} is {expected}: peers send its VXLAN traffic "
        f"to {adv.public_ip}", evidence=_evidence(run, [host]),
        values={"node": host, "address": run.addresses[host], "public_ip": adv.public_ip})


@check("public-ip-unique", "Advertised public IP unique", "node", codes=("PUBLIC_IP_DUPLICATE",))
def unique(run: RunData, host: str) -> CheckResult:
    needs_view(run)
    sharing = shared_by(run, "public-ip", lambda: {h: run.view[h].public_ip for h in run.nodes if h in run.view},
                        host)
    if not sharing:
        return CheckResult(host)
    mine = run.view[host].public_ip
    return CheckResult(host, ("PUBLIC_IP_DUPLICATE",),
                       f"public-ip {mine} is advertised by {', '.join(sharing)}",
                       evidence=_evidence(run, sharing),
                       values={"node": host, "address": run.addresses[host], "public_ip": mine})
