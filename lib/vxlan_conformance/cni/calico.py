"""Calico's VXLAN as felix builds it (projectcalico/calico at 87c15906f2; file:line below are that commit's).

What a Linux calico-node publishes (libcalico-go/lib/backend/k8s/resources/node.go:43-59, written by
node/pkg/lifecycle/startup/startup.go configureIPsAndSubnets and node/pkg/allocateip/allocateip.go
assignHostTunnelAddr): the Node annotations `projectcalico.org/IPv4Address` (CIDR) and
`projectcalico.org/IPv4VXLANTunnelAddr`. It never writes `projectcalico.org/VXLANTunnelMACAddr` (only
Windows nodes, the flannel-migration controller or a user do); without it felix derives the VTEP MAC
(felix/calc/vxlan_resolver.go vtepMACForHost): 0x66 then the first five bytes of sha1(node name), for IPv6
sha1(node name + "-v6").

What felix programs (felix/dataplane/linux/vxlan_mgr.go, felix/vxlanfdb/vxlan_fdb.go, route_mgr.go,
felix/calc/l3_route_resolver.go): device vxlan.calico (VNI 4096, UDP 4789, nolearning, local = the IP of
IPv4Address, the tunnel address as /32); per remote VTEP a permanent neighbour tunnel IP -> MAC and an FDB
entry MAC -> node IP, whatever the subnet; a route per remote IPAM block (`<block> via <tunnel IP> dev
vxlan.calico onlink`) and a /32 per address borrowed from another node's block (allocation attribute
`secondary.node`); local blocks are blackholes. With vxlanMode CrossSubnet, blocks of a peer inside the
node's own IPv4Address subnet are routed `via <peer node IP> dev <parent> onlink` (route_mgr.go
noEncapRoute) while the FDB and neighbour entries stay. VXLANMTU defaults to 1410 before Calico v3.17.0,
auto (host MTU - 50) since. In eBPF mode (bpfEnabled) the device is flow-based: no FDB entries, no
VNI/local, its MTU left to the kernel (vxlan_mgr.go:334-340, int_dataplane.go:891-912); BPF sets the
tunnel key per packet (felix/bpf-gpl/fib_co_re.h: VNI OVERLAY_TUNNEL_ID, outer checksum 0) and hands
what it decapsulates to the host as PACKET_HOST, whatever the inner destination MAC.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any

from vxlan_conformance.cni.base import Cni, Defaults, ExpectedRoute, PeerPlan, Vtep, lower_mac, node_basics
from vxlan_conformance.model.advertised import Advertised
from vxlan_conformance.model.rundata import RunData

ANNOTATION_PREFIX = "projectcalico.org/"
CRD_GROUP = "crd.projectcalico.org"          # KDD's backing group (resources/apigroups.go:28-31)
V3_GROUP = "projectcalico.org"               # native v3 CRDs, used alone since v3.32 (k8s/discovery.go)
VXLAN_MTU_OVERHEAD = 50                       # felix int_dataplane.go vxlanMTUOverhead
OLD_DEFAULT_MTU = 1410                        # VXLANMTU default before v3.17.0 (reference/felix/configuration.md)
AUTO_MTU_SINCE = (3, 17, 0)
KINDS = ("ippools", "ipamblocks", "blockaffinities", "felixconfigurations")
BPF_NA = ("Calico eBPF mode: vxlan.calico is flow-based (felix vxlan_mgr.go:334-340) and felix programs "
          "no FDB entries (vxlan_fdb WithNeighUpdatesOnly); neighbours, routes, underlay and probes are checked")
NOT_IN_BPF = {"peer-fdb": "no FDB entries to compare", "vtep-local": "a flow-based device has no local address",
              "vtep-mtu": "felix leaves the device MTU to the kernel (int_dataplane.go:909-912)",
              "checksum-offload-risk": ("BPF sends VXLAN with outer UDP checksum 0 (bpf-gpl/fib_co_re.h "
                                        "BPF_F_ZERO_CSUM_TX): there is no checksum for the offload to corrupt")}


def felix_mac(node_name: str, ipv6: bool = False) -> str:
    """The VTEP MAC felix derives for a node without a configured one (vxlan_resolver.go:339-367):
    byte 0x66 ('f': unicast, locally administered) followed by sha1(name [+ "-v6"])[0:5]."""
    digest = hashlib.sha1((node_name + ("-v6" if ipv6 else "")).encode()).digest()
    return ":".join(f"{b:02x}" for b in bytes([0x66]) + digest[:5])


def version_tuple(version: str | None) -> tuple[int, ...] | None:
    """`v3.16.4`, `3.26.1`, `calico/node:v3.20.0-amd64` -> (3, 16, 4); None when it names no version."""
    match = re.search(r"v?(\d+)\.(\d+)(?:\.(\d+))?", version or "")
    return tuple(int(g or 0) for g in match.groups()) if match else None


class Calico(Cni):
    name = "calico"
    defaults = Defaults("vxlan.calico", 4789, 4096)

    # -- the advertised view ----------------------------------------------------------------------
    def advertised(self, node: Mapping) -> Advertised:
        name, ann, internal, pod_cidr = node_basics(node)
        address = ann.get(ANNOTATION_PREFIX + "IPv4Address")
        tunnel = ann.get(ANNOTATION_PREFIX + "IPv4VXLANTunnelAddr")
        configured = lower_mac(ann.get(ANNOTATION_PREFIX + "VXLANTunnelMACAddr"))
        mac, source = configured, "annotation"
        if configured is None and tunnel:   # felix emits a VTEP only with a tunnel address (hasVTEPInfo)
            mac, source = felix_mac(name), "felix-derived from the node name"
        return Advertised(
            node_name=name, source="kubectl", vtep_mac=mac, vtep_mac_source=source if mac else None,
            public_ip=address.split("/")[0] if address else None,
            backend_type="vxlan" if tunnel else None, pod_cidr=pod_cidr, vtep_ip=tunnel, internal_ip=internal)

    def view_extra_commands(self, kubectl: str) -> dict[str, str]:
        """The Calico CRDs felix reads (crd.projectcalico.org, else the v3 group) and calico-node's image."""
        commands = {kind: f"{kubectl} get {kind}.{CRD_GROUP} -o json 2>/dev/null || "
                          f"{kubectl} get {kind}.{V3_GROUP} -o json" for kind in KINDS}
        commands["calico-node"] = f"{kubectl} get daemonsets --all-namespaces -l k8s-app=calico-node -o json"
        return commands

    def view_extra(self, sections: Mapping[str, str | None]) -> dict:
        """{"calico": {...}}: blocks [{cidr, node, borrowed: [[ip, node]], tunnels: [[ip, node]]}], pools
        [{cidr, vxlan_mode}], felix {"default": {...}, "<node>": {...}}, node_cidrs, version, unreadable."""
        out: dict[str, Any] = {"blocks": [], "pools": [], "felix": {}, "node_cidrs": {}, "version": None,
                               "unreadable": []}
        for kind in (*KINDS, "calico-node"):
            items = _items(sections.get(kind))
            if items is None:
                out["unreadable"].append(kind)
                continue
            if kind == "ippools":
                out["pools"] = [{"cidr": (i.get("spec") or {}).get("cidr"),
                                 "vxlan_mode": str((i.get("spec") or {}).get("vxlanMode") or "Never").lower(),
                                 "disabled": bool((i.get("spec") or {}).get("disabled"))} for i in items]
            elif kind == "ipamblocks":
                out["blocks"] = [b for b in (_block(i) for i in items) if b]
            elif kind == "blockaffinities":
                out["affinities"] = _affinities(items)
            elif kind == "felixconfigurations":
                for item in items:
                    name = (item.get("metadata") or {}).get("name", "")
                    if name == "default" or name.startswith("node."):
                        out["felix"][name.removeprefix("node.")] = item.get("spec") or {}
            else:
                out["version"] = _image_version(items)
        for block in out["blocks"]:   # an IPAMBlock without affinity: its confirmed BlockAffinity names the node
            if block["node"] is None:
                block["node"] = out.get("affinities", {}).get(block["cidr"])
        for item in _items(sections.get("nodes")) or []:
            name, ann, _, _ = node_basics(item)
            if ann.get(ANNOTATION_PREFIX + "IPv4Address"):
                out["node_cidrs"][name] = ann[ANNOTATION_PREFIX + "IPv4Address"]
        return {"calico": out}

    # -- which checks apply -----------------------------------------------------------------------
    def not_applicable(self, check: str, run: RunData | None = None) -> str | None:
        if run is not None and check in NOT_IN_BPF and self.bpf_mode(run):
            return f"{BPF_NA}: {NOT_IN_BPF[check]}"
        if run is not None and check == "datapath" and (where := self.host_address_source(run)):
            return (f"Calico eBPF mode with FelixConfiguration {where} bpfOverlayHostSourceIP HostAddress: felix puts "
                    "no tunnel address on vxlan.calico (vxlan_mgr.go:334-340), so no node answers at its VXLAN "
                    "tunnel address and the overlay cannot be probed; routes and neighbours are still "
                    "checked")
        return super().not_applicable(check, run)

    def host_address_source(self, run: RunData) -> str | None:
        """eBPF mode with BPFOverlayHostSourceIP HostAddress (not the default TunnelAddress,
        felix/config/config_params.go): the FelixConfiguration(s) that say so, else None."""
        if not self.bpf_mode(run):
            return None
        felix = _calico(run).get("felix") or {}
        named = [("default" if name == "default" else f"node.{name}") for name, spec in sorted(felix.items())
                 if (spec or {}).get("bpfOverlayHostSourceIP") == "HostAddress"]
        return ", ".join(named) or None

    def device_config(self, run: RunData) -> dict[str, object]:
        """eBPF mode: flow-based (external, so id 0), still the configured port and nolearning (vxlan_mgr.go
        device(): FlowBased, Port; felix recreates a device whose FlowBased differs, vxlanLinksIncompat)."""
        if self.bpf_mode(run):
            return {**super().device_config(run), "vni": 0, "external": True}
        return super().device_config(run)

    def probe_vni(self, run: RunData, host: str) -> int:
        """eBPF mode: the VNI felix's BPF programs put on the wire, OVERLAY_TUNNEL_ID (bpf-gpl/fib_co_re.h
        tunnel keys): FelixConfiguration vxlanVNI, 1 when IPIP or WireGuard is enabled too
        (bpf_ep_mgr.go:616, 700-702). The HEP program passes that VNI from a Calico host without policy
        (bpf-gpl/nat.h vxlan_attempt_decap); any other meets host-endpoint policy. The flow-based device
        itself shows no VNI (id 0)."""
        if not self.bpf_mode(run):
            return super().probe_vni(run, host)
        felix = _calico(run).get("felix") or {}
        specs = [felix.get(self._node_name(run, host)) or {}, felix.get("default") or {}]
        if any(spec.get(key) is True for spec in specs for key in ("ipipEnabled", "wireguardEnabled")):
            return 1
        vni = next((spec["vxlanVNI"] for spec in specs if isinstance(spec.get("vxlanVNI"), int)), None)
        return vni if vni is not None else int(run.overlay["vni"])

    def takes_any_inner_mac(self, run: RunData) -> bool:
        """eBPF mode: the program on vxlan.calico hands what it passes to the host as PACKET_HOST
        (bpf-gpl/fib_co_re.h: `CALI_F_VXLAN && CALI_F_TO_HOST` -> bpf_skb_change_type)."""
        return self.bpf_mode(run)

    def bpf_mode(self, run: RunData) -> bool:
        """FelixConfiguration bpfEnabled, or (no config readable) a flow-based vxlan.calico on any node."""
        def build() -> bool:
            felix = _calico(run).get("felix") or {}
            if any("bpfEnabled" in spec for spec in felix.values()):
                return any(spec.get("bpfEnabled") is True for spec in felix.values())
            return any(f.device is not None and f.device.external for f in run.facts.values())
        return run.derived("calico:bpf", build)

    # -- the device MTU ---------------------------------------------------------------------------
    def expected_mtu(self, run: RunData, host: str) -> tuple[int, str] | None:
        """FelixConfiguration vxlanMTU (per node, else default) when set; 1410 before v3.17.0; else None:
        felix's auto value, the host MTU - 50 (int_dataplane.go ConfigureDefaultMTUs), taken from the
        device's underlay."""
        felix = _calico(run).get("felix") or {}
        node = self._node_name(run, host)
        for name in (node, "default"):
            mtu = (felix.get(name) or {}).get("vxlanMTU")
            if isinstance(mtu, int) and mtu > 0:
                return mtu, f"FelixConfiguration {'node.' + name if name != 'default' else 'default'} vxlanMTU"
        version = run.overlay.get("calico_version") or _calico(run).get("version")
        parsed = version_tuple(version)
        if parsed is not None and parsed < AUTO_MTU_SINCE:
            return OLD_DEFAULT_MTU, f"Calico {version}: VXLANMTU default 1410 before v3.17.0"
        return None

    def overlay_mtu(self, run: RunData, host: str) -> int | None:
        """eBPF mode: felix's VXLANMTU, which it puts on its tunnel routes while the device keeps the kernel's
        MTU (vxlan_mgr.go tunnelRoute, int_dataplane.go:909-912): vxlanMTU, 1410 before v3.17.0, else the
        host MTU - 50."""
        if not self.bpf_mode(run):
            return super().overlay_mtu(run, host)
        if (configured := self.expected_mtu(run, host)) is not None:
            return configured[0]
        facts = run.facts.get(host)
        underlay = facts.underlay if facts is not None else None
        return underlay.mtu - VXLAN_MTU_OVERHEAD if underlay is not None and underlay.mtu else None

    # -- what A must hold for each peer B --------------------------------------------------------
    def vtep(self, run: RunData, host: str) -> Vtep:
        peer = super().vtep(run, host)
        blocks = self._routed(run).get(host)
        if blocks:
            return Vtep(peer.host, peer.mac, peer.public_ip, peer.vtep_ip, blocks[0], peer.source)
        return peer

    def peer_plan(self, run: RunData, a: str, b: str) -> PeerPlan:
        """FDB and neighbour as flannel's (for every peer, CrossSubnet or not); routes per IPAM block and
        borrowed /32 of B, via B's tunnel address on the device, or via B's node IP on A's parent
        interface for a CrossSubnet pool when B is in A's subnet."""
        base = super().peer_plan(run, a, b)
        why_not = {k: v for k, v in (base.why_not or {}).items() if k != "routes"}
        peer = self.vtep(run, b)
        device = run.overlay["device"]
        calico = _calico(run)
        routes: list[ExpectedRoute] = []
        same_subnet: list[str] = []
        felix = calico.get("felix") or {}
        if not calico or "ipamblocks" in calico.get("unreadable", ()):
            why_not["routes"] = ("Calico IPAM blocks not readable (kubectl get ipamblocks."
                                 f"{CRD_GROUP}); per-block routes not compared")
        elif any((spec or {}).get("routeSource") == "WorkloadIPs" for spec in felix.values()):
            why_not["routes"] = "FelixConfiguration routeSource WorkloadIPs: routes per workload, not compared"
        elif not peer.vtep_ip:
            why_not["routes"] = f"{b} has no VXLAN tunnel address: felix programs no route to it"
        elif not self._routed(run).get(b):
            why_not["routes"] = f"no IPAM block is affine to {b} and it borrows no address: no route expected"
        else:
            parent = _parent(run, a)
            for cidr in self._routed(run)[b]:
                if self._same_subnet(run, a, b, cidr) and parent:
                    routes.append(ExpectedRoute(cidr, peer.public_ip, parent))
                    same_subnet.append(cidr)
                else:
                    routes.append(ExpectedRoute(cidr, peer.vtep_ip, device))
        note = ""
        if same_subnet:
            note = (f"CrossSubnet: {b} is in {a}'s subnet, so {', '.join(same_subnet)} go via {peer.public_ip} "
                    f"on {_parent(run, a)} without VXLAN; felix still programs the FDB and neighbour entries")
        return PeerPlan(vxlan=True, fdb=base.fdb, neigh=base.neigh, routes=tuple(routes), note=note,
                        why_not=why_not or None)

    # -- internals ---------------------------------------------------------------------------------
    def _node_name(self, run: RunData, host: str) -> str:
        adv = run.view.get(host)
        return adv.node_name if adv is not None else host

    def _routed(self, run: RunData) -> dict[str, list[str]]:
        """host -> the CIDRs felix on another node routes to it: its affine blocks, then every address of
        any block whose allocation names it (`secondary.node`) though the block is another's
        (l3_route_resolver.go routesFromBlock); its tunnel address only when borrowed (a tunnel address
        inside its own block gets no route of its own, l3_route_resolver.go:849-863)."""
        def build() -> dict[str, list[str]]:
            hosts = {self._node_name(run, h): h for h in run.nodes}
            routed: dict[str, list[str]] = {}
            blocks = _calico(run).get("blocks") or []
            for block in blocks:
                owner = hosts.get(block.get("node") or "")
                if owner is not None:
                    routed.setdefault(owner, []).append(block["cidr"])
            for block in blocks:
                for ip, node in block.get("borrowed") or []:
                    if node in hosts:
                        routed.setdefault(hosts[node], []).append(f"{ip}/32")
            return routed
        return run.derived("calico:routed", build)

    def _same_subnet(self, run: RunData, a: str, b: str, cidr: str) -> bool:
        """felix's SameSubnet: the block's pool allows CrossSubnet and A's IPv4Address CIDR holds B's IP
        (l3_route_resolver.go:885, nodeInOurSubnet 900-919)."""
        calico = _calico(run)
        mode = _pool_mode(calico.get("pools") or [], cidr)
        if mode is None:
            mode = run.overlay.get("calico_vxlan_mode")
        if mode != "crosssubnet":
            return False
        mine = (calico.get("node_cidrs") or {}).get(self._node_name(run, a))
        theirs = self.vtep(run, b).public_ip
        if not mine or "/" not in mine or not theirs:
            return False
        try:
            return ipaddress.ip_address(theirs) in ipaddress.ip_network(mine, strict=False)
        except ValueError:
            return False


def _calico(run: RunData) -> dict:
    return run.view_cluster.get("calico") or {}


def _parent(run: RunData, host: str) -> str | None:
    """The interface holding the node's address (felix detectParentIface, route_mgr.go:465-500)."""
    facts = run.facts.get(host)
    if facts is None:
        return None
    if facts.device is not None and facts.device.dev:
        return facts.device.dev
    return facts.underlay.name if facts.underlay is not None else None


def _pool_mode(pools: list[dict], cidr: str) -> str | None:
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None
    for pool in pools:
        try:
            if net.subnet_of(ipaddress.ip_network(pool.get("cidr") or "", strict=False)):
                return pool.get("vxlan_mode")
        except (ValueError, TypeError):
            continue
    return None


def _items(text: str | None) -> list[dict] | None:
    """The items of a kubectl List, None when the command failed or printed no List."""
    if not text or not text.strip():
        return None
    try:
        items = json.loads(text).get("items")
    except (ValueError, AttributeError):
        return None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else None


def _block(item: Mapping) -> dict | None:
    """One IPAMBlock (internalapi/ipam_block.go:40-101): its CIDR, the affine node (`host:<node>` or
    `virtual:<node>`, model/block.go:209-217), and the allocations that belong to another node."""
    spec = item.get("spec") or {}
    try:
        net = ipaddress.ip_network(spec.get("cidr") or "", strict=False)
    except ValueError:
        return None
    if spec.get("deleted") in (True, "true"):
        return None
    affinity = spec.get("affinity") or ""
    node = affinity.split(":", 1)[1] if ":" in affinity else None
    attributes = spec.get("attributes") or []
    borrowed = []
    for ordinal, index in enumerate(spec.get("allocations") or []):
        if not isinstance(index, int) or not 0 <= index < len(attributes):
            continue
        owner = ((attributes[index] or {}).get("secondary") or {}).get("node")
        if owner and owner != node:      # block.go NonAffineAllocations / ActiveOwnerAttrs["node"]
            borrowed.append([str(net.network_address + ordinal), owner])
    return {"cidr": str(net), "node": node, "borrowed": borrowed}


def _affinities(items: list[dict]) -> dict[str, str]:
    """block CIDR -> node of every confirmed, not deleted BlockAffinity (`deleted` is a string in v1)."""
    out = {}
    for item in items:
        spec = item.get("spec") or {}
        if spec.get("state", "confirmed") == "confirmed" and str(spec.get("deleted", "false")).lower() != "true":
            try:
                out[str(ipaddress.ip_network(spec.get("cidr") or "", strict=False))] = spec["node"]
            except (ValueError, KeyError):
                continue
    return out


def _image_version(items: list[dict]) -> str | None:
    """The tag of calico-node's image (`docker.io/calico/node:v3.26.1` -> v3.26.1)."""
    for item in items:
        containers = (((item.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
        for container in containers:
            image = container.get("image") or ""
            if "node" in image.rsplit("/", 1)[-1] and ":" in image.rsplit("/", 1)[-1]:
                tag = image.rsplit(":", 1)[1]
                if version_tuple(tag):
                    return tag
    return None
