"""A healthy Cilium (VXLAN tunnel mode) cluster as the suite sees it: node facts parsed from the outputs a
Cilium node gives (external cilium_vxlan with no address, the router IP as a /32 on cilium_host, per peer
`<podCIDR> via <own router IP> dev cilium_host`, no FDB, no neighbours; /tmp/research/cilium.md 1.1-1.3)
and the Node + CiliumNode objects kubectl returns. Every applicable check passes; the VTEP MAC, vtep-local,
FDB and neighbour checks are skips that say why; broken routes and addresses are named."""

from __future__ import annotations

import json

import pytest

from tests.unit import builders
from tests.unit.builders import ADDR, CIDR, CILIUM_NODES, IPCACHE_LIST, MAC, ROUTER, go_json, ipcache_list, tunnel_map
from vxlan_conformance import cni
from vxlan_conformance.checks import datapath, peers, public_ip, vtep
from vxlan_conformance.collect import cluster_view, facts
from vxlan_conformance.mesh.phase import mesh_nodes
from vxlan_conformance.model.rundata import RunData

NODES = CILIUM_NODES

def section(name: str, body: str, rc: int = 0) -> str:
    return f"{facts.MARKER} {name}\n{body}\n{facts.MARKER} {name} rc={rc}\n"


def tunnel_section(tunnel: dict | None, read: str | None, rc: int = 0) -> str:
    """The collect script's tunnel section: the command it read, then that command's output (rc 127: no
    cilium-dbg on the node's PATH)."""
    if tunnel is None:
        return section("tunnel", "", 127)
    head = f"{facts._READ} {read}\n" if read else ""
    return section("tunnel", head + (go_json(tunnel) if read == IPCACHE_LIST else json.dumps(tunnel)), rc)


def node_output(host: str, skip_route_to: str | None = None, tunnel: dict | None = None,
                read: str | None = None) -> str:
    """What the collect script prints on a Cilium node (text iproute2, as `ip` 6.1 shows it)."""
    me = ROUTER[host]
    link = (f"5: cilium_vxlan: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UNKNOWN mode DEFAULT "
            f"group default qlen 1000\n    link/ether {MAC[host]} brd ff:ff:ff:ff:ff:ff promiscuity 0 minmtu 68 "
            "maxmtu 65535\n    vxlan external id 0 srcport 0 0 dstport 8472 nolearning ttl auto ageing 300 udpcsum "
            "noudp6zerocsumtx noudp6zerocsumrx addrgenmode eui64 numtxqueues 1 numrxqueues 1")
    addr = (f"1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000\n"
            "    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n    inet 127.0.0.1/8 scope host lo\n"
            "2: eth0@if9: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default qlen 1000\n"
            "    link/ether 12:cd:28:91:d9:99 brd ff:ff:ff:ff:ff:ff link-netnsid 0\n"
            f"    inet {ADDR[host]}/19 scope global eth0\n"
            "3: cilium_net@cilium_host: <BROADCAST,MULTICAST,NOARP,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP\n"
            "    link/ether 3e:37:f5:e2:46:99 brd ff:ff:ff:ff:ff:ff\n"
            "4: cilium_host@cilium_net: <BROADCAST,MULTICAST,NOARP,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP\n"
            "    link/ether 52:3f:f2:df:c5:6a brd ff:ff:ff:ff:ff:ff\n"
            f"    inet {me}/32 scope global cilium_host\n       valid_lft forever preferred_lft forever\n"
            "5: cilium_vxlan: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UNKNOWN group default\n"
            f"    link/ether {MAC[host]} brd ff:ff:ff:ff:ff:ff\n")
    routes = [f"{CIDR[host]} via {me} dev cilium_host proto kernel src {me}",
              f"{me} dev cilium_host proto kernel scope link"]
    routes += [f"{CIDR[peer]} via {me} dev cilium_host proto kernel src {me} mtu 1450"
               for peer in NODES if peer not in (host, skip_route_to)]
    routes.append(f"198.18.192.0/19 dev eth0 proto kernel scope link src {ADDR[host]}")
    return "".join([
        section("params", "device=cilium_vxlan\nport=8472\nip_json="), section("uname_r", "6.1.0-18-amd64"),
        section("machine_id", f"{abs(hash(host)):032x}"[:32]), section("uid", "0"),
        section("link", link), section("addr", addr), section("route", "\n".join(routes)),
        section("neigh", ""), section("fdb", ""), section("python", "/usr/bin/python3 Python 3.11.2"),
        tunnel_section(tunnel, read)])


def view_outputs(wrong_internal: dict[str, str] | None = None) -> tuple[str, str]:
    """`kubectl get nodes -o json` and `kubectl get ciliumnodes.cilium.io -o json` (cilium.io/v2)."""
    nodes = {"items": [{"metadata": {"name": n, "annotations": {}}, "spec": {"podCIDR": CIDR[n]},
                        "status": {"addresses": [{"type": "InternalIP", "address": ADDR[n]}]}} for n in NODES]}
    cnodes = {"items": [{"apiVersion": "cilium.io/v2", "kind": "CiliumNode", "metadata": {"name": n},
                         "spec": {"addresses": [{"type": "InternalIP", "ip": (wrong_internal or {}).get(n, ADDR[n])},
                                                {"type": "CiliumInternalIP", "ip": ROUTER[n]}],
                                  "health": {"ipv4": CIDR[n].replace(".0/24", ".200")},
                                  "ipam": {"podCIDRs": [CIDR[n]]}}} for n in NODES]}
    return json.dumps(nodes), json.dumps(cnodes)


def cilium_run(*, skip_route: tuple[str, str] | None = None, wrong_internal: dict[str, str] | None = None,
               view: bool = True, tunnels: dict[str, dict] | None = None, read: str | None = None) -> RunData:
    overlay = {"cni": "cilium", "device": "cilium_vxlan", "port": 8472, "vni": 0, "probe_port": 18472}
    run = RunData("lab.yaml", "2026-12-05T00:00:00Z", list(NODES), dict(ADDR), overlay)
    for host in NODES:
        skip = skip_route[1] if skip_route and skip_route[0] == host else None
        run.facts[host] = facts.parse(host, node_output(host, skip, (tunnels or {}).get(host), read),
                                      "cilium_vxlan", ADDR[host])
    if view:
        nodes_json, cnodes_json = view_outputs(wrong_internal)
        # one SSH command: the NodeList, then each CiliumNode list after its section marker
        output = f"{nodes_json}\n{cluster_view.SECTION.format('ciliumnodes.cilium.io')}\n{cnodes_json}"
        advertised = cluster_view.fetch("kubectl", lambda c: (0, output, ""), cni=cni.by_name("cilium"),
                                        where="node1")
        run.view_source = "kubectl"
        run.view = cluster_view.match_hosts(advertised, run.addresses)
    return run


def every_result(run: RunData) -> dict[str, list]:
    """Every registered node, pair and cluster check but the mesh's (these runs have no mesh)."""
    return {c: results for c, results in builders.every_result(run).items() if c != "datapath"}


def test_facts_of_a_cilium_node_read_the_router_ip_and_the_underlay():
    run = cilium_run()
    node = run.facts["node1"]
    assert node.device.external and node.device.vni == 0 and node.device.port == 8472
    assert node.underlay is not None and node.underlay.name == "eth0"  # no dev/local: the node address's NIC
    model = cni.of_run(run)
    assert model.device_ip(run, "node1") == "100.127.1.87"
    assert run.view["node2"].vtep_ip == "100.127.2.140" and run.view["node2"].pod_cidr == CIDR["node2"]
    assert model.vtep(run, "node2").mac is None  # Cilium publishes none


@pytest.mark.parametrize("view", [True, False], ids=["kubectl view", "no view"])
def test_healthy_cilium_cluster_has_no_failure_and_says_what_does_not_apply(view):
    run = cilium_run(view=view)
    if not view:
        run.view_source = "none"
    results = every_result(run)
    failures = {c: [(r.subject, r.codes, r.message) for r in rs if r.codes] for c, rs in results.items()}
    assert {c: f for c, f in failures.items() if f} == {}
    skipped = {c for c, rs in results.items() if rs and all(r.skipped for r in rs)}
    assert {"vtep-mac-unique", "vtep-mac-advertised", "vtep-mac-predicted-unique", "vtep-local", "peer-fdb",
            "peer-neigh"} <= skipped
    assert "no FDB entries" in results["peer-fdb"][0].skipped
    for applies in ("vtep-config", "vtep-mtu", "peer-route", "vxlan-device"):
        assert applies not in skipped, applies
    assert all(r.passed and not r.skipped for r in results["peer-route"])
    if view:
        assert all(r.passed and not r.skipped for r in results["public-ip"])


def test_mesh_probes_cilium_nodes_at_their_router_ip_with_the_remote_node_vni():
    run = cilium_run()
    nodes, excluded = mesh_nodes(run)
    assert excluded == {}
    by_name = {n.name: n for n in nodes}
    assert [(by_name[h].vtep_ip, by_name[h].vni, by_name[h].underlay_if, by_name[h].port) for h in NODES] == \
        [(ROUTER[h], 6, "eth0", 8472) for h in NODES]
    assert by_name["node1"].device_mtu == 1450  # the route MTU: the DF probe must fit DeviceMTU - 50


def test_missing_peer_route_is_named_for_that_pair_only():
    run = cilium_run(skip_route=("node1", "node2"))
    route = peers.route(run, "node1", "node2")
    assert route.codes == ("ROUTE_MISSING",) and "100.127.2.0/24 via 100.127.1.87 dev cilium_host" in route.message
    assert peers.route(run, "node2", "node1").passed and peers.route(run, "node1", "node3").passed
    codes, message = datapath.config_cause(run, "node1", "node2")
    assert codes == ("ROUTE_MISSING",) and "node1 has no 100.127.2.0/24" in message
    assert datapath.config_cause(run, "node2", "node1")[0] == ("OVERLAY_UNREACHABLE",)


def test_cilium_node_advertising_a_wrong_address_is_named():
    run = cilium_run(wrong_internal={"node3": "198.19.6.15"})
    wrong = public_ip.matches_address(run, "node3")
    assert wrong.codes == ("PUBLIC_IP_MISMATCH",) and "198.19.6.15" in wrong.message
    assert public_ip.matches_address(run, "node1").passed
    assert datapath.config_cause(run, "node1", "node3")[0] == ("PUBLIC_IP_MISMATCH",)


def test_a_classic_vxlan_device_on_a_cilium_node_is_inconsistent():
    run = cilium_run()
    device = run.facts["node2"].device
    device.external, device.vni = False, 42
    result = vtep.config_consistent(run, "node2")
    assert result.codes == ("CONFIG_INCONSISTENT",)
    assert "vni 42 (expected 0)" in result.message and "external False (expected True)" in result.message
    assert vtep.config_consistent(run, "node1").passed


def test_cilium_device_mtu_is_the_underlay_mtu():
    run = cilium_run()
    assert vtep.mtu(run, "node1").passed
    run.facts["node1"].device.mtu = 1450
    assert vtep.mtu(run, "node1").codes == ("MTU_MISMATCH",)


def test_tunnel_map_not_readable_is_said_not_checked():
    result = peers.tunnel(cilium_run(), "node1", "node2")  # the registry turns NotApplicable into a skip
    assert not result.codes and "tunnel endpoints are not checked" in result.skipped
    assert "no `cilium-dbg`" in result.skipped and "`bpf ipcache list` from v1.18" in result.skipped


def test_tunnel_map_read_from_cilium_dbg_is_compared_with_the_advertised_addresses():
    broken = tunnel_map("node1")
    del broken["100.127.2.0"]
    broken["100.127.3.0"] = ["198.18.192.77:0"]
    run = cilium_run(tunnels={"node1": broken, "node2": tunnel_map("node2"), "node3": tunnel_map("node3")})
    assert run.facts["node2"].tunnel_map == {"100.127.1.0": "198.18.192.1", "100.127.3.0": "198.18.192.3"}
    assert peers.tunnel(run, "node2", "node1").passed and not peers.tunnel(run, "node2", "node1").skipped
    assert peers.tunnel(run, "node1", "node2").codes == ("TUNNEL_MISSING",)
    wrong = peers.tunnel(run, "node1", "node3")
    assert wrong.codes == ("TUNNEL_WRONG_DST",) and "198.18.192.77" in wrong.message
    assert datapath.config_cause(run, "node1", "node2")[0] == ("TUNNEL_MISSING",)
    assert datapath.config_cause(run, "node1", "node3")[0] == ("TUNNEL_WRONG_DST",)


def v118_run(tunnels: dict[str, dict] | None = None) -> RunData:
    """Cilium v1.18: no tunnel map, the collect script read every node's ipcache."""
    return cilium_run(tunnels=tunnels or {h: ipcache_list(h) for h in NODES}, read=IPCACHE_LIST)


def test_healthy_v1_18_cluster_compares_every_tunnel_endpoint_from_the_ipcache():
    run = v118_run()
    assert run.facts["node2"].tunnel_map == {"100.127.1.0": "198.18.192.1", "100.127.3.0": "198.18.192.3"}
    assert run.facts["node2"].tunnel_source == IPCACHE_LIST
    results = every_result(run)
    assert {c: [r.subject for r in rs if r.codes] for c, rs in results.items() if any(r.codes for r in rs)} == {}
    assert len(results["peer-tunnel"]) == 6 and all(r.passed and not r.skipped for r in results["peer-tunnel"])


def test_v1_18_ipcache_missing_or_wrong_pod_cidr_entry_is_named_with_the_command_read():
    """node1's ipcache lost node2's pod CIDR entry (node2's router IP still has its /32, which is no pod
    CIDR) and sends node3's pod CIDR to a wrong address: the same codes as with the tunnel map."""
    broken = ipcache_list("node1")
    del broken[CIDR["node2"]]
    broken[CIDR["node3"]] = ["identity=2 encryptkey=0 tunnelendpoint=198.18.192.77 flags=hastunnel"]
    run = v118_run({"node1": broken, "node2": ipcache_list("node2"), "node3": ipcache_list("node3")})
    missing = peers.tunnel(run, "node1", "node2")
    assert missing.codes == ("TUNNEL_MISSING",)
    assert missing.message == "node1's ipcache has no pod CIDR entry with a tunnel endpoint for node2's pod CIDR " \
                              "100.127.2.0"
    assert missing.evidence.startswith(f"node1: {IPCACHE_LIST}\n100.127.3.0 198.18.192.77")
    wrong = peers.tunnel(run, "node1", "node3")
    assert wrong.codes == ("TUNNEL_WRONG_DST",)
    assert wrong.message == "node1's ipcache sends node3's pod CIDR 100.127.3.0 to 198.18.192.77, but node3's " \
                            "address is 198.18.192.3"
    assert peers.tunnel(run, "node2", "node1").passed
    codes, message = datapath.config_cause(run, "node1", "node2")
    assert codes == ("TUNNEL_MISSING",) and "node1's ipcache has no tunnel endpoint for 100.127.2.0" in message
    assert datapath.config_cause(run, "node1", "node3")[0] == ("TUNNEL_WRONG_DST",)


def test_v1_18_pod_cidr_entry_that_skips_the_tunnel_is_no_tunnel_endpoint():
    skipping = ipcache_list("node1")
    skipping[CIDR["node2"]] = ["identity=2 encryptkey=0 tunnelendpoint=198.18.192.2 flags=skiptunnel,hastunnel"]
    run = v118_run({"node1": skipping, "node2": ipcache_list("node2"), "node3": ipcache_list("node3")})
    assert peers.tunnel(run, "node1", "node2").codes == ("TUNNEL_MISSING",)


def test_tunnel_map_evidence_names_the_tunnel_list_command():
    broken = tunnel_map("node1")
    del broken["100.127.2.0"]
    run = cilium_run(tunnels={"node1": broken}, read="cilium-dbg bpf tunnel list -o json")
    missing = peers.tunnel(run, "node1", "node2")
    assert missing.message == "node1's tunnel map has no entry for node2's pod CIDR 100.127.2.0"
    assert missing.evidence.startswith("node1: cilium-dbg bpf tunnel list -o json\n")


def test_ipcache_that_cannot_be_read_is_a_skip_naming_that_command():
    run = cilium_run()
    run.facts["node1"] = facts.parse("node1", node_output("node1").replace(
        section("tunnel", "", 127),
        section("tunnel", f"{facts._READ} {IPCACHE_LIST}\nError: Unable to open map", 1)), "cilium_vxlan",
        ADDR["node1"])
    result = peers.tunnel(run, "node1", "node2")
    assert not result.codes
    assert result.skipped == (f"node1: the tunnel endpoints are not checked: `{IPCACHE_LIST}` could not be read "
                              "(section tunnel: rc=1: Error: Unable to open map)")
    assert peers.route(run, "node1", "node2").passed  # the routes are still compared
