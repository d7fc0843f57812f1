"""Namespaces, the underlay bridge and the VXLAN state, programmed the way flannel's backend does.

Underlay ARP is static (nud permanent, in the nodes and on the root bridge): the kernel's neighbour
table is shared by every namespace and capped at gc_thresh3 (1024) dynamic entries, while a 100-node
full mesh needs ~10,000; permanent entries do not count, so big labs keep working for everyone.

Everything is batched: one `ip -batch` in the root namespace for the skeleton, then one `ip -n` and one
`bridge -n` batch per node, all nodes in parallel (100 nodes in about a second).
"""

from __future__ import annotations

import ipaddress
import json
import re
import time

from . import cilium, plan, subnets
from .faults import Desired
from .run import run, run_many
from .state import LabNode

ETH_MTU = 1500
# numeric: iproute2's rtnl_rtprot_a2n caches the last name it looked up together with the last number it
# parsed, so in one batch `proto boot` after a `proto 80` came out as 80
RTPROT_BOOT = 3


def build_skeleton(instance: int, nodes: list[LabNode], subnet_count: int = 1) -> None:
    """Bridge with the root-side address, one netns per node, veth pairs with real (software) checksums;
    with several underlay subnets one bridge each and the router joining them (subnets.py)."""
    nets = subnets.networks(instance, subnet_count)
    lines = []
    for number, net in enumerate(nets):
        br = subnets.bridge(instance, number)
        lines += [f"link add {br} address {subnets.bridge_mac(instance, number)} type bridge", f"link set {br} up",
                  f"address add {subnets.root_address(instance, number, subnet_count)}/{net.prefixlen} dev {br}"]
    lines += [f"netns add {node.netns}" for node in nodes]
    for index, node in enumerate(nodes, 1):
        veth = plan.root_veth(instance, index)
        lines.append(f"link add {veth} type veth peer name {veth}p address {node.eth_mac}")
        bridge = subnets.bridge(instance, subnets.node_subnet(instance, node, subnet_count))
        lines.append(f"link set {veth} master {bridge} up")
    run(["ip", "-batch", "-"], input="\n".join(lines) + "\n", timeout=60, what="creating the lab namespaces")
    # tx off on the node end: veth would otherwise hand over unfinished checksums (lab-notes 1, 3d)
    run_many([(["ethtool", "-K", f"{plan.root_veth(instance, i)}p", "tx", "off"], None, f"ethtool on node{i}")
              for i in range(1, len(nodes) + 1)], timeout=60)
    moves = [f"link set {plan.root_veth(instance, i)}p netns {node.netns} name eth0"
             for i, node in enumerate(nodes, 1)]
    moves += [f"neigh replace {node.address} lladdr {node.eth_mac} dev "
              f"{subnets.bridge(instance, subnets.node_subnet(instance, node, subnet_count))} nud permanent"
              for node in nodes]
    run(["ip", "-batch", "-"], input="\n".join(moves) + "\n", timeout=60, what="moving veths into the nodes")
    # quickack on the connected route removes a 45 ms delayed-ACK stall per SSH command (lab-notes 2)
    for number, net in enumerate(nets):
        run(["ip", "route", "change", str(net), "dev", subnets.bridge(instance, number), "proto", "kernel", "scope",
             "link", "src", subnets.root_address(instance, number, subnet_count), "quickack", "1"],
            what="setting quickack on the lab bridge route")
    subnets.build_router(instance, nodes, subnet_count)


def base_lines(instance: int, node: LabNode, nodes: list[LabNode], subnet_count: int = 1) -> list[str]:
    """eth0 with the node's address on its underlay subnet, static ARP for the root namespace and the peers
    on that subnet, and (several subnets) routes to the others via the router."""
    number = subnets.node_subnet(instance, node, subnet_count)
    net = subnets.networks(instance, subnet_count)[number]
    lines = ["link set lo up", f"link set eth0 mtu {ETH_MTU} up",
             f"address add {node.address}/{net.prefixlen} dev eth0",
             f"route replace {net} dev eth0 proto kernel scope link src {node.address} quickack 1",
             f"neigh replace {subnets.root_address(instance, number, subnet_count)} lladdr "
             f"{subnets.bridge_mac(instance, number)} dev eth0 nud permanent"]
    lines += [f"neigh replace {peer.address} lladdr {peer.eth_mac} dev eth0 nud permanent" for peer in nodes
              if peer.name != node.name and (subnet_count == 1 or ipaddress.ip_address(peer.address) in net)]
    return lines + subnets.route_lines(instance, node, subnet_count)


def overlay_lines(want: Desired, node: LabNode, nodes: list[LabNode], device: str, vni: int, port: int,
                  nat: str, preset: str = "flannel", direct: frozenset[str] = frozenset()) -> list[str]:
    """flannel: vxlan id VNI local ADDR dev eth0 dstport PORT nolearning (udpcsum default), MTU eth0-50."""
    name = node.name
    # flannel takes the device MTU from its own underlay interface (backend/vxlan: ExtIface.Iface.MTU - 50)
    mtu = want.mtu.get(name, want.underlay_mtu.get(name, ETH_MTU) - plan.VXLAN_OVERHEAD)
    lines = [f"link set eth0 mtu {want.underlay_mtu.get(name, ETH_MTU)}"]
    lines += [f"link add {device} address {want.macs[name]} type vxlan id {vni} local {want.locals[name]} "
             f"dev eth0 dstport {want.ports.get(name, port)} nolearning",
             f"link set {device} mtu {mtu} up",
             f"address add {node.vtep_ip}/32 dev {device}"]
    if want.nat_on_lo:
        lines.append(f"address add {nat}/32 dev lo")
    if preset == "calico":
        lines += calico_routes(want, node, nodes, device, direct)
    for peer in nodes:
        if peer.name != name:
            if preset != "calico":
                lines.append(f"route add {peer.subnet} via {peer.vtep_ip} dev {device} onlink")
            lines.append(f"neigh add {peer.vtep_ip} lladdr {want.macs[peer.name]} dev {device} nud permanent")
    return lines


def calico_routes(want: Desired, node: LabNode, nodes: list[LabNode], device: str,
                  direct: frozenset[str] = frozenset(), mtu: int | None = None) -> list[str]:
    """felix's routes (projectcalico/calico felix/dataplane/linux/vxlan_mgr.go tunnelRoute, route_mgr.go
    blackholeRoutes, felix/calc/l3_route_resolver.go routesFromBlock): every remote IPAM block via the
    owner's tunnel address onlink (proto boot, the DeviceRouteProtocol default), a /32 for an address
    borrowed by another node, and a blackhole (proto 80) for each local block. A peer in `direct`
    (CrossSubnet, same subnet) gets its blocks via its node IP on the parent interface instead:
    route_mgr.go noEncapRoute, a TargetTypeNoEncap (routetable/defs.go: RTNH_F_ONLINK) with GW = the
    peer's node IP and felix's route protocol (calculateRouteProtocol: 80 while DeviceRouteProtocol is
    the default RTPROT_BOOT). `mtu`: felix's VXLANMTU on the tunnel routes (eBPF mode, lab/calico_bpf.py).
    The missing-route fault leaves out every route to the peer's addresses."""
    index = {n.name: i for i, n in enumerate(nodes, 1)}
    lines = []

    def to(peer: LabNode, cidr: str) -> None:
        if (node.name, peer.name) in want.missing_routes:
            return
        if peer.name in direct:
            lines.append(f"route replace {cidr} via {want.locals[peer.name]} dev eth0 onlink "
                         f"proto {plan.CALICO_LOCAL_BLOCK_PROTO}")
        else:
            lines.append(f"route add {cidr} via {peer.vtep_ip} dev {device} onlink proto {RTPROT_BOOT}"
                         + (f" mtu {mtu}" if mtu else ""))

    for peer in nodes:
        for block in plan.calico_blocks(index[peer.name]):
            if peer.name == node.name:
                lines.append(f"route replace blackhole {block} proto {plan.CALICO_LOCAL_BLOCK_PROTO}")
            else:
                to(peer, block)
    for address, _, _, borrower in plan.calico_borrowed(len(nodes)):
        holder = nodes[borrower - 1]
        if holder.name != node.name:  # on the borrower felix routes it to the pod's cali interface
            to(holder, f"{address}/32")
    return lines


def calico_direct(instance: int, want: Desired, node: LabNode, nodes: list[LabNode], subnet_count: int,
                  vxlan_mode: str) -> frozenset[str]:
    """The peers felix routes without VXLAN: with a CrossSubnet pool, those whose node IP lies in this
    node's IPv4Address CIDR (felix/calc/l3_route_resolver.go:885 SameSubnet, nodeInOurSubnet)."""
    if vxlan_mode != "CrossSubnet":
        return frozenset()
    mine = ipaddress.ip_network(subnets.address_cidr(instance, want.locals[node.name], subnet_count), strict=False)
    return frozenset(p.name for p in nodes
                     if p.name != node.name and ipaddress.ip_address(want.locals[p.name]) in mine)


def fdb_lines(want: Desired, node: LabNode, device: str) -> list[str]:
    """flannel's AddFDB is netlink NeighSet (create|replace): last writer wins, as in incident 000."""
    return [f"fdb replace {mac} dev {device} dst {dst} self permanent" for mac, dst in want.fdb[node.name]]


def program(instance: int, want: Desired, nodes: list[LabNode], device: str, vni: int, port: int,
            fresh: bool, preset: str = "flannel", subnet_count: int = 1, vxlan_mode: str = "Always") -> None:
    """Make every node hold exactly `want`; a rebuilt lab needs the eth0 basics too."""
    if device == plan.PRESETS["cilium"].device:  # Cilium's devices and routes (lab/cilium.py)
        base = {n.name: base_lines(instance, n, nodes, subnet_count) for n in nodes} if fresh else {}
        cilium.program(want, nodes, port, base, fresh)
        return
    nat = plan.nat_address(instance)
    if not fresh:  # drop the old device (routes, neigh, fdb go with it) and the shared NAT address;
        # -force and no check: the NAT address is only there when wrong-public-ip was active; felix's
        # direct (CrossSubnet) routes are on eth0 and outlive the device
        run_many([(["ip", "-n", n.netns, "-force", "-batch", "-"],
                   f"link del {device}\naddress del {nat}/32 dev lo\n"
                   f"route flush dev eth0 proto {plan.CALICO_LOCAL_BLOCK_PROTO}\n", f"resetting {n.name}")
                  for n in nodes], timeout=60, check=False)
    jobs = []
    for node in nodes:
        direct = calico_direct(instance, want, node, nodes, subnet_count, vxlan_mode)
        lines = (base_lines(instance, node, nodes, subnet_count) if fresh else []) + overlay_lines(
            want, node, nodes, device, vni, port, nat, preset, direct)
        jobs.append((["ip", "-n", node.netns, "-batch", "-"], "\n".join(lines) + "\n", f"programming {node.name}"))
    run_many(jobs, timeout=60)
    jobs = [(["bridge", "-n", n.netns, "-batch", "-"], "\n".join(fdb_lines(want, n, device)) + "\n",
             f"programming the FDB of {n.name}") for n in nodes if want.fdb[n.name]]
    run_many(jobs, timeout=60)


def destroy(instance: int, netns_names: list[str], timeout: float = 15) -> None:
    """Delete the namespaces and the bridge, then wait until the kernel's asynchronous netns cleanup has
    freed the root veth ends (a rebuild right after would find their names taken); deleting them one by
    one ourselves instead costs an RCU grace period each (~20 ms)."""
    lines = [f"netns del {name}" for name in netns_names]
    if lines:
        run(["ip", "-force", "-batch", "-"], input="\n".join(lines) + "\n", timeout=60, check=False)
    for number in range(subnets.MAX_SUBNETS):
        run(["ip", "link", "del", subnets.bridge(instance, number)], check=False)
    # eth0's ends, eth1's of the rp-filter fault, the router's legs of --underlay-subnets
    veth = re.compile(rf"^vxl{instance}(n\d+p?|r\d+|g\d+p?)$")
    deadline = time.monotonic() + timeout
    while True:
        # the kernel cleans up removed namespaces under the RTNL lock: at 1000 nodes a listing waits
        links = json.loads(run(["ip", "-j", "link", "show"], what="listing links", timeout=120).stdout or "[]")
        left = [link["ifname"] for link in links if veth.match(link["ifname"])]
        if not left:
            return
        if time.monotonic() > deadline:  # e.g. a veth whose netns is gone from /run/netns: delete it
            run(["ip", "-force", "-batch", "-"], input="".join(f"link del {n}\n" for n in left), check=False)
            return
        time.sleep(0.05)


def lab_netns(instance: int) -> list[str]:
    """Every netns with this instance's prefix, whether or not state.json remembers it."""
    out = run(["ip", "netns", "list"], what="listing namespaces").stdout
    prefix = plan.netns_prefix(instance)
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]
