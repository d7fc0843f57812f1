"""What every node's peers should see of it: from the cluster view when there is one, else from the
node's own facts (a cluster not yet installed, or `vxlan_cluster_view: none`)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from vxlan_conformance.model.rundata import RunData


@dataclass(frozen=True)
class Vtep:
    host: str
    mac: str | None
    public_ip: str | None     # where peers must send VXLAN for this node
    vtep_ip: str | None       # the overlay address on the device
    pod_cidr: str | None
    source: str               # kubectl | etcd | facts


def needs_view(run: RunData) -> None:
    """Skip view-based checks when the user chose no view; an unusable view is reported by its own check."""
    if run.view_source == "none":
        pytest.skip("no cluster view (vxlan_cluster_view: none): nothing advertised to compare with")
    if run.view_error:
        pytest.skip(f"cluster view unavailable: {run.view_error}")


def vtep_of(run: RunData, host: str) -> Vtep:
    """The advertised VTEP of `host`, falling back to its facts only when there is no view at all."""
    adv = run.view.get(host)
    if adv is not None:
        return Vtep(host, adv.vtep_mac, adv.public_ip_overwrite or adv.public_ip, adv.vtep_ip,
                    adv.pod_cidr, adv.source)
    facts = run.facts.get(host)
    device = facts.device if facts else None
    vtep_ip = device_ip(run, host)
    cidr = _subnet_of(run, host, vtep_ip)
    return Vtep(host, device.mac if device else None, run.addresses[host], vtep_ip, cidr, "facts")


def device_ip(run: RunData, host: str) -> str | None:
    """The IPv4 address on the node's VXLAN device (flannel: <subnet>.0/32)."""
    facts = run.facts.get(host)
    if facts is None or facts.device is None:
        return None
    for addr in facts.addresses:
        if addr.dev == facts.device.name and ":" not in addr.address:
            return addr.address
    return None


def _subnet_of(run: RunData, host: str, vtep_ip: str | None) -> str | None:
    """Without a view, a peer's route to this node's pod subnet is found by its gateway (the VTEP IP)."""
    if vtep_ip is None:
        return None
    dst = next((dst for peer, dst in _routes_via(run).get(vtep_ip, ()) if peer != host), None)
    return str(ipaddress.ip_network(dst, strict=False)) if dst else None


def _routes_via(run: RunData) -> dict[str, list[tuple[str, str]]]:
    """gateway -> the first two (node, subnet) routes through it. Two, because one may be the host's own."""
    def build() -> dict[str, list[tuple[str, str]]]:
        index: dict[str, list[tuple[str, str]]] = {}
        for peer, facts in run.facts.items():
            for route in facts.routes:
                if route.via and route.dst and "/" in route.dst:
                    seen = index.setdefault(route.via, [])
                    if len(seen) < 2 and all(p != peer for p, _ in seen):
                        seen.append((peer, route.dst))
        return index
    return run.derived("routes_via", build)


def shared_by(run: RunData, key: str, values: Callable[[], dict[str, str | None]], host: str) -> list[str]:
    """Every host whose value (of `values()`, named `key`) equals `host`'s, itself included, in order; []
    when it is unique or unknown. Grouped once per run: a node test asks once per node."""
    def build() -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for name, value in values().items():
            if value:
                groups.setdefault(value, []).append(name)
        return {name: same for same in groups.values() if len(same) > 1 for name in same}
    return run.derived(f"shared_by:{key}", build).get(host, [])
