"""A routed underlay of two subnets for flannel's DirectRouting (`lab up --flanneld ... --direct-routing`).

The lab's /19 is split into two /20s with a router namespace between them (one leg on the lab bridge
holding an address in each /20, forwarding, no redirects, so nodes keep their route via it). The first
half of the nodes sits in the lower /20, the rest in the upper one. flanneld with `"DirectRouting": true`
then does what flannel-io/flannel backend/vxlan/vxlan_network.go handleSubnetEvents does: for a peer whose
PublicIP pkg/ip.DirectRouting finds on-link (`netlink.RouteGet` gives one route without a gateway) a
route `<subnet> via <PublicIP>` and no FDB or neighbour entry; for the others the VXLAN route, neighbour
and FDB entries. Same-/20 pairs are direct, cross-/20 pairs are VXLAN pairs.
"""

from __future__ import annotations

import ipaddress

from . import plan
from .run import run, run_many
from .state import LabNode, LabState

HALF = plan.UNDERLAY_PREFIX + 1


def halves(instance: int) -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Network]:
    lower, upper = plan.underlay(instance).subnets(new_prefix=HALF)
    return lower, upper


def router_netns(instance: int) -> str:
    """Named with the lab's prefix: `down` removes it with the nodes' namespaces."""
    return f"{plan.netns_prefix(instance)}router"


def router_addresses(instance: int) -> tuple[str, str]:
    """The router's leg in each /20 (the upper one below the lab bridge's own address)."""
    lower, upper = halves(instance)
    return str(lower.broadcast_address - 1), str(upper.broadcast_address - 2)


def addresses(instance: int, count: int) -> list[str]:
    """Node i's address: nodes 1..ceil(n/2) in the lower /20, the rest in the upper one."""
    lower, upper = halves(instance)
    first = (count + 1) // 2
    return [str(lower.network_address + i) if i <= first else str(upper.network_address + i - first)
            for i in range(1, count + 1)]


def readdress(state: LabState) -> None:
    for node, address in zip(state.nodes, addresses(state.instance, len(state.nodes)), strict=True):
        node.address = address


def half_of(instance: int, address: str) -> ipaddress.IPv4Network:
    lower, upper = halves(instance)
    return lower if ipaddress.ip_address(address) in lower else upper


def base_lines(state: LabState, node: LabNode) -> list[str]:
    """eth0 in its /20, a route to the other /20 via the router, the lab bridge on-link (the suite's SSH
    stays off the router), static ARP for the same-/20 peers and the router (overlay.py: why static)."""
    instance = state.instance
    mine = half_of(instance, node.address)
    lower, upper = halves(instance)
    other = upper if mine == lower else lower
    router = router_addresses(instance)[0 if mine == lower else 1]
    bridge = plan.bridge_address(instance)
    lines = ["link set lo up", "link set eth0 mtu 1500 up", f"address add {node.address}/{HALF} dev eth0",
             f"route replace {mine} dev eth0 proto kernel scope link src {node.address} quickack 1",
             f"route add {other} via {router} dev eth0",
             f"route add {bridge}/32 dev eth0 scope link",
             f"neigh replace {bridge} lladdr {plan.bridge_mac(instance)} dev eth0 nud permanent",
             f"neigh replace {router} lladdr {router_mac(instance)} dev eth0 nud permanent"]
    lines += [f"neigh replace {peer.address} lladdr {peer.eth_mac} dev eth0 nud permanent"
              for peer in state.nodes if peer.name != node.name and half_of(instance, peer.address) == mine]
    return lines


def router_mac(instance: int) -> str:
    return f"02:76:78:6c:72:{instance:02x}"


def build_router(state: LabState) -> None:
    """The router namespace on the lab bridge: one leg, an address in each /20, forwarding on."""
    instance = state.instance
    netns, veth = router_netns(instance), plan.root_veth(instance, 0)  # vxl<K>n0: `down` cleans it up
    low, high = router_addresses(instance)
    run(["ip", "-batch", "-"], what="creating the underlay router", input="\n".join([
        f"netns add {netns}", f"link add {veth} type veth peer name {veth}p address {router_mac(instance)}",
        f"link set {veth} master {plan.bridge_name(instance)} up", f"link set {veth}p netns {netns} name eth0"]) + "\n")
    run(["ip", "-n", netns, "-batch", "-"], what="programming the underlay router", input="\n".join([
        "link set lo up", "link set eth0 up", f"address add {low}/{HALF} dev eth0",
        f"address add {high}/{HALF} dev eth0"]
        + [f"neigh replace {n.address} lladdr {n.eth_mac} dev eth0 nud permanent" for n in state.nodes]) + "\n")
    for key, value in (("net.ipv4.ip_forward", "1"), ("net.ipv4.conf.all.send_redirects", "0"),
                       ("net.ipv4.conf.eth0.send_redirects", "0")):
        run(["ip", "netns", "exec", netns, "sysctl", "-qw", f"{key}={value}"], what=f"setting {key} on the router")


def program_base(state: LabState) -> None:
    build_router(state)
    run_many([(["ip", "-n", n.netns, "-batch", "-"], "\n".join(base_lines(state, n)) + "\n",
               f"programming {n.name}") for n in state.nodes], timeout=60)
