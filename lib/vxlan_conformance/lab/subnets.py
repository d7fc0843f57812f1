"""The routed underlay of `lab up --underlay-subnets 2`: the instance's /19 split into two /20s, one bridge
each (separate L2 segments), joined by a router namespace, so nodes on different subnets reach each other
only through a router, as in a cluster spread over two racks or availability zones. Calico's
`vxlanMode: CrossSubnet` needs it: felix routes same-subnet peers directly and the others via VXLAN.

Node i sits on subnet (i-1) % count at <subnet>.network + i; the root namespace holds .254 of the last
/24 of each subnet (the runner reaches every node directly), the router .253. With one subnet everything
is the classic single /19 bridge of plan.py.
"""

from __future__ import annotations

import ipaddress

from . import plan
from .errors import LabError
from .run import run, run_many
from .state import LabNode

MAX_SUBNETS = 2
SUBNET_PREFIX = 20
MAX_NODES_SPLIT = 4000  # a /20 holds 4094 hosts; the top ones are the root's and the router's
VXLAN_MODES = ("Always", "CrossSubnet")


def check(count: int, preset: str, vxlan_mode: str, nodes: int) -> None:
    """One-line errors for combinations the lab cannot build."""
    if not 1 <= count <= MAX_SUBNETS:
        raise LabError(f"--underlay-subnets {count}: use 1 or {MAX_SUBNETS}")
    if vxlan_mode not in VXLAN_MODES:
        raise LabError(f"unknown vxlan mode {vxlan_mode!r}: use {' or '.join(VXLAN_MODES)}")
    if vxlan_mode != "Always" and preset != "calico":
        raise LabError(f"--vxlan-mode {vxlan_mode} is Calico's IPPool vxlanMode: use it with --preset calico")
    if count > 1 and preset == "cilium":
        raise LabError("--underlay-subnets 2 is not built for the cilium preset: use flannel or calico")
    if count > 1 and nodes > MAX_NODES_SPLIT:
        raise LabError(f"{nodes} nodes on {count} subnets: a /{SUBNET_PREFIX} holds at most {MAX_NODES_SPLIT}")


def networks(instance: int, count: int) -> list[ipaddress.IPv4Network]:
    if count == 1:
        return [plan.underlay(instance)]
    return list(plan.underlay(instance).subnets(new_prefix=SUBNET_PREFIX))[:count]


def subnet_of(index: int, count: int) -> int:
    return (index - 1) % count


def node_address(instance: int, index: int, count: int) -> str:
    return str(networks(instance, count)[subnet_of(index, count)].network_address + index)


def network_of(instance: int, address: str, count: int) -> ipaddress.IPv4Network | None:
    """The underlay subnet holding `address`; None for an address outside them (the NAT address)."""
    ip = ipaddress.ip_address(address)
    return next((net for net in networks(instance, count) if ip in net), None)


def address_cidr(instance: int, address: str, count: int) -> str:
    """The CIDR calico-node publishes as IPv4Address (autodetected from the interface): the node IP with
    its subnet's prefix; /32 for the NAT address the wrong-public-ip fault puts on lo."""
    net = network_of(instance, address, count)
    return f"{address}/{net.prefixlen if net is not None else 32}"


def root_address(instance: int, number: int, count: int) -> str:
    if count == 1:
        return plan.bridge_address(instance)
    return str(networks(instance, count)[number].broadcast_address - 1)


def router_address(instance: int, number: int, count: int) -> str:
    return str(networks(instance, count)[number].broadcast_address - 2)


def bridge(instance: int, number: int) -> str:
    return plan.bridge_name(instance) if number == 0 else f"{plan.bridge_name(instance)}{number}"


def bridge_mac(instance: int, number: int) -> str:
    return plan.bridge_mac(instance) if number == 0 else f"02:76:78:6c:{0x62 + number:02x}:{instance:02x}"


def router_mac(instance: int, number: int) -> str:
    return f"02:76:78:72:{number:02x}:{instance:02x}"


def router_netns(instance: int) -> str:
    """Under the instance's netns prefix, so `down` (overlay.lab_netns) removes it with the nodes."""
    return f"{plan.netns_prefix(instance)}router"


def router_veth(instance: int, number: int) -> str:
    return f"vxl{instance}g{number}"


def node_subnet(instance: int, node: LabNode, count: int) -> int:
    net = network_of(instance, node.address, count)
    return networks(instance, count).index(net) if net is not None else 0


def route_lines(instance: int, node: LabNode, count: int) -> list[str]:
    """A node's way to the other subnets: via the router's leg on its own subnet (static ARP, see overlay.py)."""
    if count == 1:
        return []
    mine = node_subnet(instance, node, count)
    gateway = router_address(instance, mine, count)
    lines = [f"neigh replace {gateway} lladdr {router_mac(instance, mine)} dev eth0 nud permanent"]
    lines += [f"route replace {net} via {gateway} dev eth0" for number, net in enumerate(networks(instance, count))
              if number != mine]
    return lines


def build_router(instance: int, nodes: list[LabNode], count: int) -> None:
    """The router namespace: one leg on each subnet's bridge, forwarding on, no ICMP redirects, static
    ARP for every node and the root namespace (as the nodes have)."""
    if count == 1:
        return
    netns = router_netns(instance)
    lines = [f"netns add {netns}"]
    for number in range(count):
        veth = router_veth(instance, number)
        lines += [f"link add {veth} type veth peer name {veth}p address {router_mac(instance, number)}",
                  f"link set {veth} master {bridge(instance, number)} up",
                  f"link set {veth}p netns {netns} name eth{number}"]
    run(["ip", "-batch", "-"], input="\n".join(lines) + "\n", what="creating the lab router")
    run_many([(["ip", "netns", "exec", netns, "ethtool", "-K", f"eth{n}", "tx", "off"], None, f"ethtool on eth{n}")
              for n in range(count)], timeout=60)
    run(["ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0",
         "net.ipv4.conf.default.send_redirects=0"], what="enabling forwarding in the lab router")
    inside = ["link set lo up"]
    for number, net in enumerate(networks(instance, count)):
        inside += [f"link set eth{number} up", f"address add {router_address(instance, number, count)}/"
                   f"{net.prefixlen} dev eth{number}",
                   f"neigh replace {root_address(instance, number, count)} lladdr {bridge_mac(instance, number)} "
                   f"dev eth{number} nud permanent"]
    inside += [f"neigh replace {n.address} lladdr {n.eth_mac} dev eth{node_subnet(instance, n, count)} nud permanent"
               for n in nodes]
    run(["ip", "-n", netns, "-batch", "-"], input="\n".join(inside) + "\n", what="programming the lab router")
