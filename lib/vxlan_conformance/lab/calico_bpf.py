"""The calico preset in felix's eBPF mode (`lab up --preset calico --calico-bpf`): a node as felix with
bpfEnabled builds it, with the kernel's own tunnelling standing in for felix's BPF programs, so real VXLAN
packets flow (upstream paths at projectcalico/calico 87c15906f2).

FAITHFUL to felix in eBPF mode (what `ip`, `bridge`, tcpdump and the suite see):
- vxlan.calico is flow-based: `external` (no VNI, no local, no underlay dev), dstport = VXLANPort 4789,
  nolearning, the VTEP MAC felix derives (felix/dataplane/linux/vxlan_mgr.go device(): FlowBased when
  BPFEnabled; vishvananda/netlink addVxlanAttrs sends ttl 0, tos 0 and no learning); its MTU is left to the
  kernel (int_dataplane.go: vxlanMTU = 0 when BPFEnabled); the tunnel address as /32 on it (vxlan_mgr.go
  keeps it: BPFOverlayHostSourceIP defaults to TunnelAddress, felix/config/config_params.go;
  `--bpf-overlay-host-source-ip HostAddress`: none).
- no FDB entries; per remote VTEP a permanent neighbour tunnel IP -> VTEP MAC (int_dataplane.go builds
  the FDB with vxlanfdb.WithNeighUpdatesOnly(); felix/vxlanfdb/vxlan_fdb.go SetVTEPs/Apply).
- felix's routes as in iptables mode (route_mgr.go updateRoutes; lab/overlay.py calico_routes), the
  tunnel routes with `mtu VXLANMTU` = host MTU - 50 (vxlan_mgr.go tunnelRoute: MTU m.mtu;
  int_dataplane.go ConfigureDefaultMTUs), blackholes for local blocks, CrossSubnet peers direct on eth0.
- rp_filter 0 on all, 2 and accept_local 1 on eth0 and vxlan.calico (bpf_ep_mgr.go setRPFilter,
  setAcceptLocal); the bpfin.cali/bpfout.cali veth pair (MTU = the pod MTU, VXLANMTU here) with a
  permanent neighbour and a link route for 169.254.1.1 (bpf_ep_mgr.go ensureBPFDevices,
  configureBPFDevices).
- on the wire (felix/bpf-gpl/fib_co_re.h, the tunnel-key branches): VNI = OVERLAY_TUNNEL_ID, felix's
  VXLANVNI 4096 (bpf_ep_mgr.go overlayTunnelID), outer UDP checksum 0 (BPF_F_ZERO_CSUM_TX), the outer
  source left to the kernel's route to the peer (the key stops before local_ipv4), ttl 0 (the kernel's
  default hop limit), dport = the device's port; the inner MACs from the kernel's neighbour entries.
- receiving: the HEP program lets VXLAN on the VXLAN port through to the kernel (felix/bpf-gpl/nat.h
  vxlan_attempt_decap: our VNI from a Calico host is auto-allowed, any other falls through to policy, and
  the lab has no host endpoints), the flow-based device takes every VNI, and the program on vxlan.calico
  marks what it passes to the host PACKET_HOST whatever the inner destination MAC (fib_co_re.h:
  `CALI_F_VXLAN && CALI_F_TO_HOST` -> bpf_skb_change_type). The kernel still drops a frame whose inner
  source MAC is the device's own (drivers/net/vxlan vxlan_set_mac), as on a real node.

STAND-IN for BPF (not what felix shows; the suite never reads these; the kernel here has no tc flower,
matchall or tunnel_key, so the kernel's own lightweight tunnels do it, as lab/cilium.py does):
- the program on vxlan.calico's egress that looks the destination up in the BPF routes map and sets the
  tunnel key -> `ip rule pref 21 lookup 2005`, where table 2005 repeats each of felix's tunnel routes with
  `encap ip id 4096 dst <peer node IP>` (no `csum`: checksum 0; no src: the kernel's; one route = one routes
  map entry). The BPF program forwards by a FIB lookup of the kernel's routes (bpf_fib_lookup), so a
  missing-route fault takes the route from both; CrossSubnet peers have none (same-subnet routes are not
  tunnelled, cali_rt_is_same_subnet);
- `bpf_skb_change_type(PACKET_HOST)` on ingress -> an nft netdev ingress rule `meta pkttype set host`.
"""

from __future__ import annotations

import os

from . import overlay, plan
from .faults import Desired
from .run import run_many
from .state import LabNode

DEVICE = "vxlan.calico"
BPF_IN, BPF_OUT = "bpfin.cali", "bpfout.cali"  # felix/dataplane/linux/dataplanedefs/dataplane_defs.go
BPFNAT_GW = "169.254.1.1"                     # bpf_ep_mgr.go bpfnatGW
RTPROT_BOOT = 3                               # felix routetable's default device route protocol
TABLE, RULE_PREF = 2005, 21                   # the stand-in's table and rule (lab/cilium.py has 2004, 20)
NFT_TABLE = "vxlab_calico_bpf"


def vxlan_mtu(want: Desired, node: LabNode) -> int:
    """felix's VXLANMTU: its host MTU (the node's eth0) - 50 (int_dataplane.go ConfigureDefaultMTUs)."""
    return want.underlay_mtu.get(node.name, overlay.ETH_MTU) - plan.VXLAN_OVERHEAD


def tunnel_lines(want: Desired, node: LabNode, nodes: list[LabNode], vni: int, mtu: int,
                 direct: frozenset[str]) -> list[str]:
    """The stand-in table: felix's tunnel routes again, each with the tunnel key BPF would set."""
    targets = []
    for index, peer in enumerate(nodes, 1):
        if peer.name != node.name:
            targets += [(block, peer) for block in plan.calico_blocks(index)]
    for address, _, _, borrower in plan.calico_borrowed(len(nodes)):
        holder = nodes[borrower - 1]
        if holder.name != node.name:
            targets.append((f"{address}/32", holder))
    lines = [f"rule add pref {RULE_PREF} lookup {TABLE}"]
    for cidr, peer in targets:
        if peer.name not in direct and (node.name, peer.name) not in want.missing_routes:
            lines.append(f"route replace {cidr} encap ip id {vni} dst {want.locals[peer.name]} via {peer.vtep_ip} "
                         f"dev {DEVICE} onlink proto {RTPROT_BOOT} mtu {mtu} table {TABLE}")
    return lines


NFT = f"""table netdev {NFT_TABLE} {{
  chain from_tunnel {{
    type filter hook ingress device "{DEVICE}" priority 0; policy accept;
    meta pkttype set host comment "stand-in: felix's BPF hands what it passes to the host as PACKET_HOST"
  }}
}}
"""


def _sysctls() -> str:
    """bpf_ep_mgr.go: all.rp_filter 0; rp_filter 2 and accept_local 1 on the host's interfaces (eth0 and
    the tunnel device); bpfin/bpfout as configureProcSysForInterface leaves them (rp_filter 0). IPv6 off on
    the veth pair so it sends nothing to ff02:: (traffic rule)."""
    values = [("ipv4/conf/all/rp_filter", 0)]
    for dev in ("eth0", DEVICE):
        values += [(f"ipv4/conf/{dev}/rp_filter", 2), (f"ipv4/conf/{dev}/accept_local", 1)]
    for dev in (BPF_IN, BPF_OUT):
        values += [(f"ipv6/conf/{dev}/disable_ipv6", 1), (f"ipv4/conf/{dev}/route_localnet", 1),
                   (f"ipv4/conf/{dev}/proxy_arp", 1), (f"ipv4/conf/{dev}/forwarding", 1),
                   (f"ipv4/conf/{dev}/rp_filter", 0), (f"ipv4/neigh/{dev}/proxy_delay", 0)]
    return "".join(f"echo {v} > /proc/sys/net/{k}\n" if k.startswith("ipv4") else
                   f"[ ! -w /proc/sys/net/{k} ] || echo {v} > /proc/sys/net/{k}\n" for k, v in values)


def _random_mac() -> str:
    raw = bytearray(os.urandom(6))
    raw[0] = (raw[0] & 0xFE) | 0x02
    return ":".join(f"{b:02x}" for b in raw)


def node_script(instance: int, want: Desired, node: LabNode, nodes: list[LabNode], vni: int, port: int,
                fresh: bool, subnet_count: int, vxlan_mode: str, tunnel_address: bool = True) -> str:
    """One sh script per node, run with `ip netns exec`: reset (unless fresh), devices, sysctls, addresses,
    routes, neighbours, the stand-in table and its nft rule. tunnel_address=False: BPFOverlayHostSourceIP
    HostAddress, felix puts no address on the device (vxlan_mgr.go device(): addr = "")."""
    name = node.name
    direct = overlay.calico_direct(instance, want, node, nodes, subnet_count, vxlan_mode)
    mtu, out_mac = vxlan_mtu(want, node), _random_mac()
    nat = plan.nat_address(instance)
    reset = "" if fresh else (
        f"ip -force -batch - <<'EOF_IP' || true\nlink del {DEVICE}\nlink del {BPF_IN}\naddress del {nat}/32 dev lo\n"
        f"route flush dev eth0 proto {plan.CALICO_LOCAL_BLOCK_PROTO}\nrule del pref {RULE_PREF}\n"
        f"route flush table {TABLE}\nEOF_IP\nnft delete table netdev {NFT_TABLE} 2>/dev/null || true\n")
    links = (overlay.base_lines(instance, node, nodes, subnet_count) if fresh else []) + [
        f"link set eth0 mtu {want.underlay_mtu.get(name, overlay.ETH_MTU)}",
        f"link add {DEVICE} address {want.macs[name]} type vxlan external dstport {want.ports.get(name, port)} "
        "ttl 0 tos 0 nolearning noproxy norsc nol2miss nol3miss",
        f"link add {BPF_IN} mtu {mtu} type veth peer name {BPF_OUT} address {out_mac} mtu {mtu}"]
    up = [f"link set {DEVICE} up", *([f"address add {node.vtep_ip}/32 dev {DEVICE}"] if tunnel_address else []),
          f"link set {BPF_IN} up", f"link set {BPF_OUT} up",
          f"neigh replace {BPFNAT_GW} lladdr {out_mac} dev {BPF_IN} nud permanent",
          f"route replace {BPFNAT_GW} dev {BPF_IN} proto {RTPROT_BOOT} scope link"]
    if want.nat_on_lo:
        up.append(f"address add {nat}/32 dev lo")
    up += overlay.calico_routes(want, node, nodes, DEVICE, direct, mtu=mtu)
    up += [f"neigh add {peer.vtep_ip} lladdr {want.macs[peer.name]} dev {DEVICE} nud permanent"
           for peer in nodes if peer.name != name]
    up += tunnel_lines(want, node, nodes, vni, mtu, direct)
    return (f"set -e\n{reset}" + _batch("ip", links) + _sysctls() + _batch("ip", up)
            + f"nft -f - <<'EOF_NFT'\n{NFT}EOF_NFT\n")


def _batch(tool: str, lines: list[str]) -> str:
    return f"{tool} -batch - <<'EOF_B'\n" + "\n".join(lines) + "\nEOF_B\n" if lines else ""


def program(instance: int, want: Desired, nodes: list[LabNode], vni: int, port: int, fresh: bool,
            subnet_count: int = 1, vxlan_mode: str = "Always", tunnel_address: bool = True) -> None:
    """Make every node hold exactly `want`, as felix in eBPF mode programs it."""
    run_many([(["ip", "netns", "exec", n.netns, "sh", "-s"],
               node_script(instance, want, n, nodes, vni, port, fresh, subnet_count, vxlan_mode, tunnel_address),
               f"programming {n.name} (calico eBPF)") for n in nodes], timeout=60)
