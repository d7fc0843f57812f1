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
  table 2004` (one route = one tunnel map entry, from v1.18 one ipcache pod CIDR entry; `unreachable
  100.64.0.0/10` in 2004: no loop into main);
- bpf_overlay ignoring the inner MAC -> nft netdev ingress on cilium_vxlan and cilium_net `meta pkttype
  set host` (cilium_vxlan is NOARP here, so no ARP runs inside the tunnel: Cilium has none either);
- bpf_overlay.c cil_from_overlay dropping VNI 1 (HOST_ID, DROP_INVALID_IDENTITY) -> an nft input rule.
The inner TTL is decremented once (the kernel forwards cilium_net -> cilium_vxlan; BPF redirects).
"""

from __future__ import annotations

from . import plan
from .errors import LabError
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


VERSIONS = ("1.17", "1.18")  # lab up --cilium-version: the tunnel map (up to v1.17) or the ipcache (v1.18+)
DEFAULT_VERSION = "1.17"

# The cilium-dbg stand-in. In Cilium it runs inside the agent's container and reads BPF maps; here it reads
# the stand-in table TABLE (one `encap` route = one peer: pod CIDR, tunnel endpoint `dst`, router IP `via`)
# and the node's own addresses, and prints what cilium-dbg __VERSION__ prints for the same state:
# - `bpf tunnel list [-o json]` (up to v1.17; cilium-dbg/cmd/bpf_tunnel_list.go): key = the pod CIDR's
#   address, value = "<ip>:<key>" (pkg/maps/tunnel TunnelValue.String);
# - `bpf ipcache list [-o json]` (cilium-dbg/cmd/bpf_ipcache_list.go, pkg/maps/ipcache/ipcache.go): the world
#   entry 0.0.0.0/0 (identity 2), the node's own addresses (host, 1), per peer its InternalIP (remote-node 6,
#   no tunnel endpoint), its router IP (6, tunnelled) and its pod CIDR (world 2, tunnelled: v1.18's
#   pkg/node/manager/manager.go podCIDREntries); values as RemoteEndpointInfo.String(), flags as
#   RemoteEndpointInfoFlags.String() (v1.18: hastunnel with an endpoint; v1.17 prints only skiptunnel);
#   JSON as pkg/command/output.go prints it (MarshalIndent "  ", keys sorted, < and > escaped, an empty line
#   after), text as cilium-dbg/cmd/root.go TablePrinter (tabwriter, padding 3);
# - v1.18 has no `bpf tunnel` (cilium/cilium #38839): cobra finds `bpf`, which has no Run, so a flag only
#   `list` had fails to parse ("Error: unknown shorthand flag: 'o' in -o" on stderr, `bpf`'s usage and the
#   error on stdout, exit 1: spf13/cobra command.go ExecuteC/execute, cilium-dbg/cmd/root.go Execute), and
#   without one cobra prints `bpf`'s help and exits 0 (a non-root command takes unknown args, args.go
#   legacyArgs). The usage lists v1.18's `bpf` commands as its cmdref does, without `tunnel`.
CILIUM_DBG = r"""#!/bin/sh
# vxlan lab stand-in for cilium-dbg __VERSION__ (lib/vxlan_conformance/lab/cilium.py says what it follows)
LC_ALL=C; export LC_ALL
V=__VERSION__
usage() {
  cat <<'EOF_USAGE'
Usage:
  cilium-dbg bpf [command]

Available Commands:
  auth        Manage authenticated connections between identities
  bandwidth   BPF datapath bandwidth settings
  config      Manage runtime config
  ct          Connection tracking tables
  egress      Manage the egress routing rules
  endpoint    Local endpoint map
  frag        Manage the IPv4 datagram fragments
  fs          BPF filesystem mount
  ipcache     Manage the IPCache mappings for IP/CIDR <-> Identity
  ipmasq      ip-masq-agent CIDRs
  lb          Load-balancing configuration
  metrics     BPF datapath traffic metrics
  multicast   Manage multicast BPF programs
  nat         NAT mapping tables
  nodeid      Manage the node IDs
  policy      Manage policy related BPF maps
  recorder    PCAP recorder
  sha         Manage compiled BPF template objects
  srv6        Manage the SRv6 routing rules
  vtep        Manage the VTEP mappings for IP/CIDR <-> VTEP MAC/IP

Flags:
  -h, --help   help for bpf

Global Flags:
      --config string        Config file (default is $HOME/.cilium.yaml)
  -D, --debug                Enable debug messages
  -H, --host string          URI to server-side API
      --log-driver strings   Logging endpoints to use (example: syslog)
      --log-opt map          Log driver options (example: format=json)

Use "cilium-dbg bpf [command] --help" for more information about a command.
EOF_USAGE
}
no_tunnel_cmd() {  # v1.18: `bpf tunnel ...` is `bpf` with leftover args
  e=
  for a in "$@"; do
    case $a in
      -h|--help|-D|--debug|-H|--host|--config|--log-driver|--log-opt|--host=*|--config=*|--log-*=*) ;;
      --*) e="unknown flag: ${a%%=*}"; break ;;
      -?*) f=${a#-}; e="unknown shorthand flag: '$(printf %.1s "$f")' in -$f"; break ;;
    esac
  done
  if [ -n "$e" ]; then
    echo "Error: $e" >&2; usage; echo; echo "$e"; exit 1
  fi
  printf 'Direct access to local BPF maps\n\n'; usage; exit 0
}
peers() {  # "<pod CIDR> <tunnel endpoint> <router IP>" per stand-in tunnel entry
  ip route show table __TABLE__ 2>/dev/null | awk '/ encap ip / { d = ""; r = ""
    for (i = 1; i < NF; i++) { if ($i == "dst") d = $(i + 1); if ($i == "via") r = $(i + 1) }
    print $1, d, r }'
}
tunnel_list() {
  peers | awk -v json="$1" '{ split($1, p, "/"); k[++n] = p[1]; v[n] = $2 }
    END { if (!json) { print "TUNNEL       VALUE"; for (i = 1; i <= n; i++) printf "%-12s %s:0\n", k[i], v[i]; exit }
          printf "{"
          for (i = 1; i <= n; i++) printf "%s\n  \"%s\": [\n    \"%s:0\"\n  ]", (i > 1 ? "," : ""), k[i], v[i]
          print (n ? "\n}\n" : "}\n") }'
}
ipcache_list() {
  { echo "0.0.0.0/0 2 0.0.0.0"
    ip -4 -o addr show 2>/dev/null |
      awk '$2 == "__HOST__" || $2 == "eth0" { split($4, a, "/"); print a[1] "/32", 1, "0.0.0.0" }'
    peers | awk '{ print $2 "/32", 6, "0.0.0.0"; print $3 "/32", 6, $2; print $1, 2, $2 }'
  } | sort -u -k1,1 | awk -v json="$1" -v v="$V" '
    { n++; k[n] = $1; f = "<none>"; if ($3 != "0.0.0.0" && v != "1.17") f = "hastunnel"
      val[n] = "identity=" $2 " encryptkey=0 tunnelendpoint=" $3 " flags=" f
      if (length(k[n]) > w1) w1 = length(k[n]); if (length(val[n]) > w2) w2 = length(val[n]) }
    END {
      if (json) { printf "{"
                  for (i = 1; i <= n; i++) { s = val[i]; gsub(/</, "\\\\u003c", s); gsub(/>/, "\\\\u003e", s)
                                             printf "%s\n  \"%s\": [\n    \"%s\"\n  ]", (i > 1 ? "," : ""), k[i], s }
                  print (n ? "\n}\n" : "}\n"); exit }
      if (!n) { print "No entries found." > "/dev/stderr"; exit }
      if (w1 < 17) w1 = 17
      printf "%-" w1 + 3 "s%-" w2 + 3 "s\n", "IP PREFIX/ADDRESS", "IDENTITY"
      for (i = 1; i <= n; i++) printf "%-" w1 + 3 "s%-" w2 + 3 "s\n", k[i], val[i] }'
}
case "$*" in
  "bpf tunnel list -o json") [ "$V" = 1.17 ] && { tunnel_list 1; exit 0; } ;;
  "bpf tunnel list") [ "$V" = 1.17 ] && { tunnel_list ""; exit 0; } ;;
  "bpf ipcache list -o json") ipcache_list 1; exit 0 ;;
  "bpf ipcache list") ipcache_list ""; exit 0 ;;
esac
case "$1 $2" in
  "bpf tunnel") [ "$V" = 1.17 ] || { shift 2; no_tunnel_cmd "$@"; } ;;
esac
echo "cilium-dbg (vxlan lab stand-in): only 'bpf tunnel list' and 'bpf ipcache list' [-o json] are supported" >&2
exit 1
"""


def check_version(version: str | None, preset: str) -> None:
    """`lab up --cilium-version`: only for the cilium preset, only a version the stand-in answers as."""
    if version is None:
        return
    if preset != "cilium":
        raise LabError("--cilium-version sets the cilium preset's cilium-dbg: use it with --preset cilium")
    if version not in VERSIONS:
        raise LabError(f"unknown --cilium-version {version!r}: use {' or '.join(VERSIONS)}")


def write_cilium_dbg(bin_dirs: list, version: str = DEFAULT_VERSION) -> None:
    """The cilium-dbg stand-in of that Cilium version first on every node's PATH (each node's bin dir)."""
    text = (CILIUM_DBG.replace("__VERSION__", version).replace("__TABLE__", str(TABLE))
            .replace("__HOST__", HOST))
    for bin_dir in bin_dirs:
        path = bin_dir / "cilium-dbg"
        path.write_text(text)
        path.chmod(0o755)


def program(want: Desired, nodes: list[LabNode], port: int, base: dict[str, list[str]], fresh: bool) -> None:
    run_many([(["ip", "netns", "exec", n.netns, "sh", "-s"], node_script(want, n, nodes, port, base.get(n.name, []),
                                                                          fresh), f"programming {n.name} (cilium)")
              for n in nodes], timeout=60)
