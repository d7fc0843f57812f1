"""Cilium's VXLAN tunnel mode (routing-mode=tunnel, tunnel-protocol=vxlan, the default), from cilium/cilium
(research notes: /work/shared/research, cited at upstream main 41bdee738e7d, 1.17.0-dev):

- `cilium_vxlan` is a flow-based device (pkg/datapath/loader/netlink.go setupVxlanDevice: FlowBased, so
  "external", id 0; Port = tunnel-port, 8472 by default, pkg/defaults/defaults.go TunnelPortVXLAN; MTU =
  DeviceMTU, the underlay's; a random MAC, mac.GenerateRandMAC; nolearning; no local, no dev, no address).
- The node's router IP (CiliumInternalIP) is on `cilium_host` as a /32 (netlink.go addHostDeviceAddr),
  a veth pair cilium_host/cilium_net.
- Per peer no FDB entry and no neighbour: a route `<peer podCIDR> via <local router IP> dev cilium_host
  src <router IP> mtu <DeviceMTU-50>` in main (pkg/datapath/linux/node.go createNodeRouteSpec); the peer's
  tunnel endpoint lives in BPF maps: the tunnel map (pkg/maps/tunnel, `cilium-dbg bpf tunnel list`) up to
  v1.17; from v1.18 an ipcache entry per remote pod CIDR (pkg/node/manager/manager.go podCIDREntries,
  `cilium-dbg bpf ipcache list`; cilium/cilium #38483, #38839 removed the tunnel map and its command).
- The VNI on the wire is the sender's security identity (bpf/lib/overloadable_skb.h ctx_set_encap_info):
  host traffic carries the remote-node identity 6 (bpf/lib/encap.h __encap_with_nodeid, LOCAL_NODE_ID);
  bpf_overlay.c cil_from_overlay accepts every VNI but HOST_ID (1) and never looks at the inner MAC.
- The outer UDP checksum is 0 (BPF_F_ZERO_CSUM_TX): valid for IPv4, the receiver does not verify it.
- A node is advertised by its Node (status.addresses InternalIP) and its CiliumNode (cilium.io/v2:
  spec.addresses [{type: InternalIP|CiliumInternalIP, ip}], spec.ipam.podCIDRs); no VTEP MAC anywhere.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from vxlan_conformance.cni.base import Cni, Defaults, ExpectedRoute, PeerPlan, node_basics
from vxlan_conformance.model.advertised import Advertised
from vxlan_conformance.model.rundata import RunData

HOST_DEVICE = "cilium_host"           # pkg/defaults/node.go HostDevice
CILIUM_NODES = "ciliumnodes.cilium.io"
REMOTE_NODE_ID = 6                    # pkg/identity/numericidentity.go ReservedIdentityRemoteNode
TUNNEL_LIST = "cilium-dbg bpf tunnel list -o json"  # up to v1.17 (`cilium` before v1.15)
TUNNEL_MAP = ("the tunnel endpoints are not checked: no `cilium-dbg` (`cilium` before v1.15) on the node's PATH "
              "to read them (`bpf tunnel list`; `bpf ipcache list` from v1.18); it runs inside the cilium "
              "agent's container, which the suite does not enter")

_NO_MAC = ("Cilium publishes no VTEP MAC: cilium_vxlan gets a random MAC (loader/netlink.go setupVxlanDevice) "
           "and the BPF datapath ignores the inner MAC (bpf_overlay.c), so no peer addresses it")
NOT_APPLICABLE = {
    "vtep-mac-unique": _NO_MAC,
    "vtep-mac-advertised": _NO_MAC,
    "vtep-mac-predicted-unique": _NO_MAC,
    "vtep-local": ("cilium_vxlan is flow-based (external): it has no local address and no underlay device; "
                   "BPF sets the tunnel endpoint per packet"),
    "peer-fdb": ("Cilium programs no FDB entries: each peer's tunnel endpoint is in a BPF map "
                 "(the tunnel map; the ipcache from v1.18), not in cilium_vxlan's FDB"),
    "peer-neigh": ("Cilium programs no neighbour entries on cilium_vxlan: BPF redirects with tunnel metadata, "
                   "peers' router IPs are reached via cilium_host"),
}


class Cilium(Cni):
    name = "cilium"
    defaults = Defaults("cilium_vxlan", 8472, 0)
    view_resources = ("nodes", CILIUM_NODES)
    mtu_overhead = 0   # DeviceMTU = underlay MTU on cilium_vxlan; the routes carry DeviceMTU - 50

    # -- the advertised view ----------------------------------------------------------------------
    def advertised(self, node: Mapping, cilium_node: Mapping | None = None) -> Advertised:
        """A Node and its CiliumNode: peers tunnel to the CiliumNode's InternalIP, route to its pod CIDRs
        via cilium_host, and reach its router IP (CiliumInternalIP)."""
        name, _, internal, pod_cidr = node_basics(node)
        spec = (cilium_node or {}).get("spec") or {}
        addresses = {a.get("type"): a.get("ip") for a in spec.get("addresses") or [] if isinstance(a, Mapping)}
        cidrs = [c for c in ((spec.get("ipam") or {}).get("podCIDRs") or []) if isinstance(c, str) and ":" not in c]
        return Advertised(node_name=name, source="kubectl", public_ip=addresses.get("InternalIP") or internal,
                          backend_type="vxlan" if cilium_node else None,
                          pod_cidr=cidrs[0] if cidrs else pod_cidr,
                          vtep_ip=addresses.get("CiliumInternalIP"), internal_ip=internal)

    def advertised_all(self, lists: Mapping[str, list]) -> list[Advertised]:
        by_name = {(c.get("metadata") or {}).get("name"): c for c in lists.get(CILIUM_NODES, [])
                   if isinstance(c, Mapping)}
        return [self.advertised(node, by_name.get((node.get("metadata") or {}).get("name")))
                for node in lists.get("nodes", [])]

    # -- which checks apply -----------------------------------------------------------------------
    def not_applicable(self, check: str, run: RunData | None = None) -> str | None:
        return NOT_APPLICABLE.get(check)  # peer-tunnel applies

    # -- what a node's device must look like ------------------------------------------------------
    def device_config(self, run: RunData) -> dict[str, object]:
        """Flow-based, id 0, the tunnel port, nolearning (vishvananda/netlink addVxlanAttrs for FlowBased)."""
        return {**super().device_config(run), "vni": 0, "external": True}

    def probe_vni(self, run: RunData, host: str) -> int:
        """Host-originated traffic carries the remote-node identity (bpf/lib/encap.h: HOST_ID ->
        LOCAL_NODE_ID); VNI 1 would be dropped by bpf_overlay.c as HOST_ID."""
        return REMOTE_NODE_ID

    # -- what A must hold for each peer B --------------------------------------------------------
    def peer_plan(self, run: RunData, a: str, b: str) -> PeerPlan:
        """B's pod CIDR via A's own router IP on cilium_host (createNodeRouteSpec); no FDB, no neighbour."""
        router = self.device_ip(run, a)
        peer = self.vtep(run, b)
        why_not = {"fdb": NOT_APPLICABLE["peer-fdb"], "neigh": NOT_APPLICABLE["peer-neigh"]}
        if not peer.pod_cidr:
            why_not["routes"] = f"{b}'s pod CIDR unknown (no CiliumNode spec.ipam.podCIDRs); not compared"
        elif router is None:
            why_not["routes"] = f"{a} has no IPv4 router IP on {HOST_DEVICE}; not compared"
        routes = (ExpectedRoute(peer.pod_cidr, router, HOST_DEVICE),) if peer.pod_cidr and router else ()
        facts = run.facts.get(a)
        read = (facts.tunnel_source if facts else None) or ""
        tunnel, note = None, ""
        if facts is None or facts.tunnel_map is None:
            note = f"the tunnel endpoints are not checked: `{read}` could not be read" if read else TUNNEL_MAP
            notes = [n for n in (facts.notes if facts else []) if n.startswith("section tunnel")]
            why_not["tunnel"] = f"{a}: {note}" + (f" ({notes[0]})" if notes else "")
        elif not peer.pod_cidr or not peer.public_ip:
            why_not["tunnel"] = f"{b}'s pod CIDR or address unknown; its tunnel endpoint is not compared"
        else:  # keyed by the pod CIDR's network address: the tunnel map's key (pkg/datapath/linux/node.go
            # updateTunnelMapping), and collect/facts.py keys the ipcache's pod CIDR entries the same way
            tunnel = (str(ipaddress.ip_network(peer.pod_cidr, strict=False).network_address), peer.public_ip)
        return PeerPlan(routes=routes, tunnel=tunnel, tunnel_read=read or TUNNEL_LIST, note=note, why_not=why_not)

    # -- what peers must see of a node ------------------------------------------------------------
    def device_ip(self, run: RunData, host: str) -> str | None:
        """The router IP: the IPv4 address on cilium_host (cilium_vxlan has none)."""
        facts = run.facts.get(host)
        if facts is None:
            return None
        return next((a.address for a in facts.addresses if a.dev == HOST_DEVICE and ":" not in a.address), None)

    def _subnet_of(self, run: RunData, host: str, vtep_ip: str | None) -> str | None:
        """Without a view: the node's own pod CIDR is its route via its router IP on cilium_host that
        contains the router IP (enable-local-node-route, on by default)."""
        facts = run.facts.get(host)
        if vtep_ip is None or facts is None:
            return None
        ip = ipaddress.ip_address(vtep_ip)
        for route in facts.routes:
            if route.dev == HOST_DEVICE and route.dst and "/" in route.dst:
                try:
                    net = ipaddress.ip_network(route.dst, strict=False)
                except ValueError:
                    continue
                if net.prefixlen < 32 and ip in net:
                    return str(net)
        return None
