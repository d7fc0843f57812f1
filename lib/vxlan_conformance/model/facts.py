"""What one node really has (its VXLAN device, tables, offloads, NAT, ...): collected by collect/facts.py,
read by the checks and the CNI modules."""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from vxlan_conformance.model.records import (
    Address,
    FdbEntry,
    Interface,
    MacPolicy,
    NatFacts,
    Neighbour,
    PythonInfo,
    Route,
    VxlanDevice,
    from_plain,
)


def tunnel_table(command: str | None) -> str:
    """Which of Cilium's tables a tunnel-endpoint listing command read: "ipcache" (`bpf ipcache list`,
    v1.18+) or "tunnel map" (`bpf tunnel list`)."""
    return "ipcache" if " ipcache " in f" {command or ''} " else "tunnel map"


@dataclass
class NodeFacts:
    """What one node really has; JSON round-trippable with to_dict()/from_dict()."""

    host: str
    kernel_release: str | None = None  # uname -r
    kernel_version: str | None = None  # /proc/version
    os_release: dict[str, str] = field(default_factory=dict)
    machine_id: str | None = None
    arch: str | None = None  # uname -m
    hostname: str | None = None
    device: VxlanDevice | None = None  # None: the VXLAN device is absent
    underlay: Interface | None = None  # the device's `dev`, else the interface holding its `local` address
    addresses: list[Address] = field(default_factory=list)
    fdb: list[FdbEntry] = field(default_factory=list)
    neighbours: list[Neighbour] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    offloads: dict[str, str] | None = None  # `ethtool -k <device>`; None: ethtool absent or failed
    nat: NatFacts = field(default_factory=NatFacts)
    udp_in_csum_errors: int | None = None
    udp_counters: dict[str, int] = field(default_factory=dict)
    device_counters: dict[str, int] = field(default_factory=dict)
    rp_filter: dict[str, int] = field(default_factory=dict)  # all, default, <device>, <underlay>
    mac_policy: MacPolicy = field(default_factory=MacPolicy)
    python: list[PythonInfo] = field(default_factory=list)
    uid: int | None = None
    sudo_ok: bool | None = None  # None: sudo absent
    udp_port_bound: bool | None = None  # a socket (the VXLAN kernel socket) is bound to the port
    firewall_port_rules: list[str] = field(default_factory=list)  # iptables/nft rules naming the port
    tunnel_map: dict[str, str] | None = None  # Cilium: pod CIDR address -> tunnel endpoint; None: not read
    tunnel_source: str | None = None  # Cilium: the command tunnel_map was read with (tunnel map or ipcache)
    absent_tools: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, str] = field(default_factory=dict)  # section texts (capped), evidence for reports

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeFacts:
        return from_plain(cls, data)

    def fdb_for(self, mac: str | None) -> list[FdbEntry]:
        """The FDB entries for a MAC (any case)."""
        return self._indexed()[0].get((mac or "").lower(), [])

    def neighbours_of(self, ip: str | None) -> list[Neighbour]:
        return self._indexed()[1].get(ip or "", [])

    def routes_to(self, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> list[Route]:
        return self._indexed()[2].get(network, [])

    _index = None  # not a field (no annotation): never saved, built on first use

    def _indexed(self) -> tuple[dict, dict, dict]:
        """The tables by key, built once per node: a pair check asks once per pair, and a scan each time
        would make a run O(N^3)."""
        if self._index is None:
            fdb: dict[str, list[FdbEntry]] = {}
            neighbours: dict[str, list[Neighbour]] = {}
            routes: dict[Any, list[Route]] = {}
            for entry in self.fdb:
                fdb.setdefault((entry.mac or "").lower(), []).append(entry)
            for neighbour in self.neighbours:
                neighbours.setdefault(neighbour.ip or "", []).append(neighbour)
            for route in self.routes:
                if route.dst and (net := _network(route.dst)) is not None:
                    routes.setdefault(net, []).append(route)
            self._index = (fdb, neighbours, routes)
        return self._index


def _network(dst: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(dst, strict=False)
    except ValueError:
        return None  # "default", or a form ip does not print


def usable_python(facts: NodeFacts) -> str | None:
    """The interpreter the node agent will use: the first Python 2.7 or 3.6+ found on the node."""
    return next((p.path for p in facts.python if p.version and _usable(p.version)), None)


def _usable(version: str) -> bool:
    parts = tuple(int(x) for x in version.split(".")[:2] if x.isdigit())
    return parts >= (3, 6) or parts[:2] == (2, 7)
