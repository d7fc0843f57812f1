"""What every CNI module answers: where the CNI publishes a node's VTEP (MAC, address, public IP), what it
builds on a node and for each peer, which checks apply, and what the probes aim at.

The base class is the VXLAN model flannel and Calico share (a device with `local` and `dev`, per peer an
FDB entry, a permanent neighbour and a route via the peer's VTEP address); a CNI module overrides what its
CNI does differently. Pure: reads the run's gathered data, never a node.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from vxlan_conformance.model.advertised import Advertised
from vxlan_conformance.model.facts import tunnel_table
from vxlan_conformance.model.rundata import RunData


@dataclass(frozen=True)
class Vtep:
    """A node's VTEP as its peers must see it."""

    host: str
    mac: str | None
    public_ip: str | None     # where peers must send VXLAN for this node
    vtep_ip: str | None       # the overlay address on the device
    pod_cidr: str | None
    source: str               # kubectl | etcd | facts


@dataclass(frozen=True)
class ExpectedRoute:
    """A route A must have for B: to `dst` via `via` (None: any gateway) out of `dev`."""

    dst: str
    via: str | None
    dev: str


@dataclass(frozen=True)
class PeerPlan:
    """What A's kernel must hold to reach B, as the CNI programs it. An element that is None is not
    expected (or cannot be known: `why_not` says which and why)."""

    vxlan: bool = True                      # False: B is reached without VXLAN (DirectRouting, CrossSubnet)
    fdb: tuple[str, str] | None = None      # (B's VTEP MAC, the underlay address B's frames go to)
    neigh: tuple[str, str] | None = None    # (B's VTEP address, B's VTEP MAC)
    routes: tuple[ExpectedRoute, ...] = ()
    tunnel: tuple[str, str] | None = None   # Cilium: (tunnel map key = B's pod CIDR address, B's address)
    tunnel_read: str = ""                   # Cilium: the command A's tunnel endpoints were read with
    note: str = ""                          # said on every result of the pair (e.g. why not VXLAN)
    why_not: dict[str, str] | None = None   # fdb | neigh | routes -> why it is not compared

    @property
    def tunnel_table(self) -> str:
        """What the tunnel endpoints were read from, for messages: Cilium's tunnel map or (v1.18+) its ipcache."""
        return tunnel_table(self.tunnel_read)


@dataclass(frozen=True)
class Defaults:
    """What the CNI configures when left alone (the vxlan_* settings override them)."""

    device: str               # may hold {vni}
    port: int
    vni: int


class Cni:
    """The VXLAN model shared by flannel and Calico; subclasses name their CNI and override."""

    name = ""
    defaults = Defaults("", 0, 0)
    view_sources: tuple[str, ...] = ("kubectl",)   # where the CNI publishes its nodes
    view_resources: tuple[str, ...] = ("nodes",)   # what `kubectl get <resource> -o json` the view reads
    mtu_overhead = 50                              # device MTU = underlay MTU - this (vxlan_mtu unset)

    def for_settings(self, overlay: Mapping) -> Cni:
        """This CNI as the run's vxlan_* settings configure it (e.g. flannel's annotation prefix)."""
        return self

    def learning(self, run: RunData) -> bool:
        """Whether the VXLAN device learns source MACs (flannel and Calico: nolearning)."""
        return False

    # -- the advertised view ----------------------------------------------------------------------
    def advertised(self, node: Mapping) -> Advertised:
        """One Kubernetes Node object (of `kubectl get nodes -o json`) as this CNI advertises it."""
        return _bare_node(node)

    def advertised_all(self, lists: Mapping[str, list]) -> list[Advertised]:
        """Every node as advertised, from the items of each of `view_resources` (resource -> items)."""
        return [self.advertised(item) for item in lists.get("nodes", [])]

    def overlay_mtu(self, run: RunData, host: str) -> int | None:
        """The largest packet the node's kernel sends into the overlay: its VXLAN device's MTU."""
        facts = run.facts.get(host)
        return facts.device.mtu if facts is not None and facts.device is not None else None

    def takes_any_inner_mac(self, run: RunData) -> bool:
        """Whether a receiver takes decapsulated frames whatever their inner destination MAC (the kernel's
        VXLAN device drops those not for its own MAC as PACKET_OTHERHOST)."""
        return False

    # -- what a node's device must look like ------------------------------------------------------
    def device_config(self, run: RunData) -> dict[str, object]:
        """The VXLAN device settings every node must have (vtep-config): VNI, port, learning."""
        return {"vni": run.overlay["vni"], "port": run.overlay["port"], "learning": self.learning(run)}

    def probe_vni(self, run: RunData, host: str) -> int:
        """The VNI the runner-built raw frames to `host` carry: its device's (or the configured) VNI."""
        facts = run.facts.get(host)
        device = facts.device if facts else None
        return device.vni if device is not None and device.vni is not None else int(run.overlay["vni"])

    # -- which checks apply -----------------------------------------------------------------------
    def not_applicable(self, check: str, run: RunData | None = None) -> str | None:
        """Why a check does not apply to this CNI's nodes (in this run, when given), or None when it does."""
        if check == "peer-tunnel":
            return f"{self.name} keeps no tunnel map: its peers are in the FDB of the VXLAN device"
        return None

    # -- more of the cluster view than the Node objects --------------------------------------------
    def view_extra_commands(self, kubectl: str) -> dict[str, str]:
        """name -> command whose output `view_extra` (and, for `view_resources`, `advertised_all`) reads,
        run after `kubectl get nodes` in the same SSH command; a command that fails leaves its section
        empty (e.g. a CRD that is not installed)."""
        return {resource: f"{kubectl} get {resource} -o json" for resource in self.view_resources
                if resource != "nodes"}

    def view_extra(self, sections: Mapping[str, str | None]) -> dict:
        """The CNI-wide view (RunData.view_cluster) from the outputs of `view_extra_commands` (None: failed)
        and "nodes" (the NodeList text)."""
        return {}

    def expected_mtu(self, run: RunData, host: str) -> tuple[int, str] | None:
        """(MTU, why) the CNI gives the device when vxlan_mtu is unset; None: underlay MTU - mtu_overhead."""
        return None

    # -- what A must hold for each peer B --------------------------------------------------------
    def peer_plan(self, run: RunData, a: str, b: str) -> PeerPlan:
        """flannel's and Calico's model: B's VtepMAC -> B's public IP in the FDB, B's VTEP address ->
        VtepMAC as a permanent neighbour, B's pod subnet via B's VTEP address on the device."""
        peer = self.vtep(run, b)
        why_not = {}
        if not peer.mac:
            why_not["fdb"] = f"{b} advertises no VtepMAC; nothing to compare"
        if not peer.vtep_ip or not peer.mac:
            why_not["neigh"] = f"{b}'s VTEP address or MAC unknown; not compared"
        if not peer.pod_cidr:
            why_not["routes"] = f"{b}'s pod subnet unknown; not compared"
        return PeerPlan(
            fdb=(peer.mac, peer.public_ip) if peer.mac and peer.public_ip else None,
            neigh=(peer.vtep_ip, peer.mac) if peer.vtep_ip and peer.mac else None,
            routes=(ExpectedRoute(peer.pod_cidr, peer.vtep_ip, run.overlay["device"]),) if peer.pod_cidr else (),
            why_not=why_not or None)

    # -- what peers must see of a node ------------------------------------------------------------
    def vtep(self, run: RunData, host: str) -> Vtep:
        """The advertised VTEP of `host`, falling back to its facts only when there is no view at all."""
        adv = run.view.get(host)
        if adv is not None:
            return Vtep(host, adv.vtep_mac, adv.public_ip_overwrite or adv.public_ip, adv.vtep_ip,
                        adv.pod_cidr, adv.source)
        facts = run.facts.get(host)
        device = facts.device if facts else None
        vtep_ip = self.device_ip(run, host)
        cidr = self._subnet_of(run, host, vtep_ip)
        return Vtep(host, device.mac if device else None, run.addresses[host], vtep_ip, cidr, "facts")

    def device_ip(self, run: RunData, host: str) -> str | None:
        """The IPv4 address on the node's VXLAN device (flannel: <subnet>.0/32, Calico: the tunnel address)."""
        facts = run.facts.get(host)
        if facts is None or facts.device is None:
            return None
        for addr in facts.addresses:
            if addr.dev == facts.device.name and ":" not in addr.address:
                return addr.address
        return None

    def _subnet_of(self, run: RunData, host: str, vtep_ip: str | None) -> str | None:
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


def node_basics(node: Mapping) -> tuple[str, Mapping, str | None, str | None]:
    """(name, annotations, InternalIP, podCIDR) of a Node object."""
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    addresses = (node.get("status") or {}).get("addresses") or []
    internal = next((a.get("address") for a in addresses if a.get("type") == "InternalIP"), None)
    pod_cidr = spec.get("podCIDR") or next(iter(spec.get("podCIDRs") or []), None)
    return meta.get("name", ""), meta.get("annotations") or {}, internal, pod_cidr


def _bare_node(node: Mapping) -> Advertised:
    name, _, internal, pod_cidr = node_basics(node)
    return Advertised(node_name=name, source="kubectl", pod_cidr=pod_cidr, internal_ip=internal)


def lower_mac(mac: object) -> str | None:
    return mac.lower() if isinstance(mac, str) and mac else None


def network_address(cidr: str | None) -> str | None:
    if not cidr:
        return None
    try:
        return str(ipaddress.ip_network(cidr, strict=False).network_address)
    except ValueError:
        return None
