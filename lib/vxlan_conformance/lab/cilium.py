"""The cilium preset: a node as Cilium's VXLAN tunnel mode builds it, with the kernel's own flow-based
tunnelling standing in for Cilium's BPF programs (recipe: /tmp/research/cilium_proto.sh, facts and
citations: /tmp/research/cilium.md; upstream paths at cilium/cilium 41bdee738e7d).

FAITHFUL to Cilium (what `ip`, `bridge`, tcpdump and the suite see):
- cilium_host/cilium_net veth pair, NOARP, MTU = DeviceMTU, txqueuelen 1000
  (pkg/datapath/loader/netlink.go setupVethPair, setupBaseDevice);
- cilium_vxlan: `external` (FlowBased, so id 0), dstport = tunnel port, nolearning, a random MAC, MTU =
  DeviceMTU, no address (netlink.go setupVxlanDevice; vishvananda/netlink addVxlanAttrs);
- per-device forwarding=1 rp_filter=0 accept_local=1 send_redirects=0 (netlink.go enableForwarding) and
  all.rp_filter=0 (loader/base.go Reinitialize);
- the router IP (CiliumInternalIP) as a /32 on cilium_host (netlink.go addHostDeviceAddr), not .1
  (IPAM AllocateNext hands out a random address of the pod CIDR);
- main-table routes (pkg/datapath/linux/node.go createNodeRouteSpec, route_linux.go Upsert): the nexthop
  route `<router> dev cilium_host proto kernel scope link`, the local pod CIDR `via <router> dev
  cilium_host proto kernel src <router>`, and per peer the same with `mtu <DeviceMTU - 50>`;
- on the wire: outer UDP checksum 0 (BPF_F_ZERO_CSUM_TX in bpf/lib/overloadable_skb.h
  ctx_set_encap_info: here `encap ip` without `csum`), VNI 6 for host traffic (bpf/lib/encap.h
  __encap_with_nodeid: HOST_ID -> LOCAL_NODE_ID = remote-node identity 6), outer TTL 64, flow-hash
  source port, dport = the device's port.

STAND-IN for BPF (not what Cilium shows; the suite never reads these):
- bpf_host's tunnel-map/ipcache lookup + redirect -> `ip rule iif cilium_net lookup 2004` and per peer
  `ip route <podCIDR> encap ip id 6 dst <peer InternalIP> ttl 64 via <peer router> dev cilium_vxlan onlink
  table 2004` (one route = one tunnel map entry; `unreachable 100.64.0.0/10` in 2004: no loop into main);
- bpf_overlay ignoring the inner MAC -> nft netdev ingress on cilium_vxlan and cilium_net `meta pkttype
  set host` (cilium_vxlan is NOARP here, so no ARP runs inside the tunnel: Cilium has none either);
- bpf_overlay.c cil_from_overlay dropping VNI 1 (HOST_ID, DROP_INVALID_IDENTITY) -> an nft input rule.
The inner TTL is decremented once (the kernel forwards cilium_net -> cilium_vxlan; BPF redirects).
"""

from __future__ import annotations

from . import plan
from .faults import Desired
from .run import run_many
from .state import LabNode

HOST, NET, VXLAN = "cilium_host", "cilium_net", "cilium_vxlan"
TABLE = 2004
RULE_PREF = 20
HOST_VNI = 6          # LOCAL_NODE_ID / ReservedIdentityRemoteNode (pkg/identity/numericidentity.go)
TUNNEL_OVERHEAD = 50  # pkg/mtu/mtu.go TunnelOverhead: RouteMTU = DeviceMTU - 50
DEVICE_MTU = 1500     # = the lab's eth0 MTU (pkg/mtu: DeviceMTU is the underlay's)
NFT_TABLE = "vxlab_cilium"


def _sysctls(*devices: str) -> list[str]:
    """enableForwarding() per device; IPv6 off so the lab's devices send nothing to ff02:: (traffic rule)."""
    out = []
    for dev in devices:
        out += [f"net.ipv4.conf.{dev}.forwarding=1", f"net.ipv4.conf.{dev}.rp_filter=0",
                f"net.ipv4.conf.{dev}.accept_local=1", f"net.ipv4.conf.{dev}.send_redirects=0"]
    return out


def device_mtu(want: Desired, node: LabNode) -> int:
    return want.mtu.get(node.name, DEVICE_MTU)


def node_script(want: Desired, node: LabNode, nodes: list[LabNode], port: int, base: list[str],
                fresh: bool) -> str:
    """One sh script per node, run with `ip netns exec`: reset (unless fresh), devices, sysctls, addresses,
    routes, the stand-in table and the nft rules."""
    name, router, mtu = node.name, node.vtep_ip, device_mtu(want, node)
    reset = "" if fresh else (
        f"ip link del {VXLAN} 2>/dev/null; ip link del {HOST} 2>/dev/null\n"
        f"ip rule del pref {RULE_PREF} 2>/dev/null; ip route flush table {TABLE} 2>/dev/null\n"
        f"nft delete table netdev {NFT_TABLE} 2>/dev/null; nft delete table inet {NFT_TABLE} 2>/dev/null\n")
    links = [f"link add {HOST} mtu {mtu} txqueuelen 1000 type veth peer name {NET} mtu {mtu}",
             f"link set {HOST} arp off", f"link set {NET} arp off",
             f"link add {VXLAN} address {want.macs[name]} mtu {mtu} type vxlan external dstport {port} ttl 0 tos 0 "
             "nolearning noproxy norsc nol2miss nol3miss"]
    up = [f"link set {HOST} up", f"link set {NET} up", f"link set {VXLAN} arp off", f"link set {VXLAN} up",
          f"address add {router}/32 dev {HOST}",
          f"route replace {router} dev {HOST} proto kernel scope link",
          f"route replace {node.subnet} via {router} dev {HOST} proto kernel src {router}",
          f"rule add pref {RULE_PREF} iif {NET} lookup {TABLE}",
          f"route replace unreachable {plan.POD_NETWORK} table {TABLE}"]
    for peer in nodes:
        if peer.name == name:
            continue
        if (name, peer.name) not in want.missing_routes:
            up.append(f"route replace {peer.subnet} via {router} dev {HOST} proto kernel src {router} "
                      f"mtu {mtu - TUNNEL_OVERHEAD}")
        if (name, peer.name) not in want.missing_tunnel:  # the peer's address as its CiliumNode says
            up.append(f"route replace {peer.subnet} encap ip id {HOST_VNI} dst {want.locals[peer.name]} ttl 64 "
                      f"via {peer.vtep_ip} dev {VXLAN} onlink table {TABLE}")
    nft = f"""table netdev {NFT_TABLE} {{
  chain from_host {{
    type filter hook ingress device "{NET}" priority 0; policy accept;
    meta pkttype set host comment "stand-in: cilium_host is NOARP, frames carry its own MAC"
  }}
  chain from_overlay {{
    type filter hook ingress device "{VXLAN}" priority 0; policy accept;
    meta pkttype set host comment "stand-in: bpf_overlay ignores the inner dst MAC"
  }}
}}
table inet {NFT_TABLE} {{
  chain vni_guard {{
    type filter hook input priority -10; policy accept;
    udp dport {port} @th,96,24 1 counter drop comment "stand-in: bpf_overlay.c drops VNI 1 (HOST_ID)"
  }}
}}
"""
    pre = ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1",
           "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"]
    return (f"set -e\n{reset}sysctl -qw {' '.join(pre)}\n"
            + _batch(base + links)
            + f"sysctl -qw {' '.join(_sysctls(HOST, NET, VXLAN))}\n"
            + _batch(up)
            + f"nft -f - <<'EOF_NFT'\n{nft}EOF_NFT\n")


def _batch(lines: list[str]) -> str:
    return "ip -batch - <<'EOF_IP'\n" + "\n".join(lines) + "\nEOF_IP\n" if lines else ""


CILIUM_DBG = f"""#!/bin/sh
# vxlan lab stand-in for cilium-dbg (in Cilium it runs inside the agent's container and reads the BPF tunnel
# map): `cilium-dbg bpf tunnel list [-o json]` prints this node's stand-in tunnel entries (table {TABLE}) in
# cilium-dbg's format (cilium-dbg/cmd/bpf_tunnel_list.go: TUNNEL VALUE, key = pod CIDR address, value = ip:key).
case "$*" in
  "bpf tunnel list -o json") json=1 ;;
  "bpf tunnel list") json= ;;
  *) echo "cilium-dbg (vxlan lab stand-in): only 'bpf tunnel list [-o json]' is supported" >&2; exit 1 ;;
esac
ip route show table {TABLE} | awk -v json="$json" '
  $0 ~ / encap ip / {{ split($1, p, "/"); for (i = 1; i < NF; i++) if ($i == "dst") d = $(i + 1)
                      k[++n] = p[1]; v[n] = d }}
  END {{
    if (json) {{ printf "{{"
                 for (i = 1; i <= n; i++) printf "%s\\n  \\"%s\\": [\\"%s:0\\"]", (i > 1 ? "," : ""), k[i], v[i]
                 print "\\n}}" }}
    else {{ print "TUNNEL       VALUE"; for (i = 1; i <= n; i++) printf "%-12s %s:0\\n", k[i], v[i] }}
  }}'
"""


def write_cilium_dbg(bin_dirs: list) -> None:
    """The cilium-dbg stand-in first on every node's PATH (each node's bin dir)."""
    for bin_dir in bin_dirs:
        path = bin_dir / "cilium-dbg"
        path.write_text(CILIUM_DBG)
        path.chmod(0o755)


def program(want: Desired, nodes: list[LabNode], port: int, base: dict[str, list[str]], fresh: bool) -> None:
    run_many([(["ip", "netns", "exec", n.netns, "sh", "-s"], node_script(want, n, nodes, port, base.get(n.name, []),
                                                                          fresh), f"programming {n.name} (cilium)")
              for n in nodes], timeout=60)
