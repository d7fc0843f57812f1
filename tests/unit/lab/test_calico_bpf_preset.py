"""The calico preset in felix's eBPF mode (`lab up --preset calico --calico-bpf`), without root: what each node
is programmed with (flow-based vxlan.calico, neighbours, routes with VXLANMTU, no FDB, the stand-in table for the
BPF routes map), the faults eBPF mode cannot have, and FelixConfiguration bpfEnabled in the kubectl stand-in."""

from __future__ import annotations

import pytest

from tests.unit.lab.test_calico_crosssubnet_preset import DEVICE, INSTANCE, NAMES
from tests.unit.lab.test_calico_crosssubnet_preset import nodes as crosssubnet_nodes
from vxlan_conformance.lab import calico_bpf, cli, kubectl, plan, subnets
from vxlan_conformance.lab.errors import LabError
from vxlan_conformance.lab.faults import BPF_EXCLUDED, check_preset, desired, parse
from vxlan_conformance.lab.state import LabNode, LabState


def nodes(count: int = 1) -> list[LabNode]:
    """The four calico nodes on one underlay subnet unless told otherwise."""
    return crosssubnet_nodes(count)


def script(name: str, faults=(), count: int = 1, mode: str = "Always", fresh: bool = True) -> str:
    lab = nodes(count)
    want = desired(INSTANCE, lab, [parse(f, NAMES) for f in faults])
    node = next(n for n in lab if n.name == name)
    return calico_bpf.node_script(INSTANCE, want, node, lab, 4096, 4789, fresh, count, mode)


def test_device_is_flow_based_with_neighbours_and_no_fdb():
    text = script("node1")
    assert (f"link add {DEVICE} address {plan.felix_mac('node1')} type vxlan external dstport 4789 ttl 0 tos 0 "
            "nolearning noproxy norsc nol2miss nol3miss") in text
    assert f"address add {plan.vtep_ip(1)}/32 dev {DEVICE}" in text
    device = next(line for line in text.splitlines() if line.startswith(f"link add {DEVICE}"))
    assert " id " not in device and " local " not in device and " dev " not in device   # no VNI, local, parent
    assert "fdb" not in text and "bridge" not in text
    for index, name in enumerate(NAMES[1:], 2):
        assert f"neigh add {plan.vtep_ip(index)} lladdr {plan.felix_mac(name)} dev {DEVICE} nud permanent" in text
    assert "mtu" not in device                                                   # the kernel's


def test_routes_carry_vxlan_mtu_and_local_blocks_are_blackholes():
    text = script("node1")
    for block in plan.calico_blocks(2):
        assert f"route add {block} via {plan.vtep_ip(2)} dev {DEVICE} onlink proto 3 mtu 1450" in text
    assert f"route add 100.64.1.5/32 via {plan.vtep_ip(2)} dev {DEVICE} onlink proto 3 mtu 1450" in text
    for block in plan.calico_blocks(1):
        assert f"route replace blackhole {block} proto 80" in text
    # felix's VXLANMTU follows the node's own host MTU
    assert f"via {plan.vtep_ip(2)} dev {DEVICE} onlink proto 3 mtu 1350" in script("node1", ["underlay-mtu=1400@node1"])


def test_felix_bpf_sysctls_and_bpfnat_devices():
    text = script("node2")
    assert "echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter" in text
    for dev in ("eth0", DEVICE):
        assert f"echo 2 > /proc/sys/net/ipv4/conf/{dev}/rp_filter" in text
        assert f"echo 1 > /proc/sys/net/ipv4/conf/{dev}/accept_local" in text
    assert "link add bpfin.cali mtu 1450 type veth peer name bpfout.cali address " in text
    assert "route replace 169.254.1.1 dev bpfin.cali proto 3 scope link" in text


def encap(text: str) -> dict[str, str]:
    """The stand-in table: destination -> the peer node address its tunnel key sends to."""
    return {line.split()[2]: line.split(" dst ")[1].split()[0] for line in text.splitlines()
            if line.startswith("route replace ") and " table 2005" in line}


def test_a_table_of_tunnel_keys_stands_in_for_the_bpf_routes_map():
    text = script("node3")
    expected = {block: subnets.node_address(INSTANCE, i, 1) for i in (1, 2, 4) for block in plan.calico_blocks(i)}
    expected["100.64.1.5/32"] = subnets.node_address(INSTANCE, 2, 1)                 # borrowed by node2
    assert encap(text) == expected
    assert (f"route replace 100.64.2.0/26 encap ip id 4096 dst {expected['100.64.2.0/26']} via {plan.vtep_ip(2)} "
            f"dev {DEVICE} onlink proto 3 mtu 1450 table 2005") in text               # no csum: checksum 0
    assert "rule add pref 21 lookup 2005" in text
    assert f'type filter hook ingress device "{DEVICE}"' in text and "meta pkttype set host" in text


def test_missing_route_removes_the_route_and_its_tunnel_key():
    """felix's BPF forwards by a FIB lookup of the kernel's routes: without the route, nothing is tunnelled."""
    text = script("node3", ["missing-route@node3->node1"])
    assert not [line for line in text.splitlines() if line.startswith(("route add 100.64.1.0/26 ",
                                                                         "route add 100.64.1.64/26 "))]
    assert f"route add 100.64.1.5/32 via {plan.vtep_ip(2)} " in text       # node2's borrowed address stays
    assert set(encap(text)) == {"100.64.1.5/32", *plan.calico_blocks(2), *plan.calico_blocks(4)}


def test_crosssubnet_peers_are_routed_directly_without_tunnel_key():
    text = script("node1", count=2, mode="CrossSubnet")
    for block in plan.calico_blocks(3):        # node3 shares node1's subnet
        assert f"route replace {block} via {subnets.node_address(INSTANCE, 3, 2)} dev eth0 onlink proto 80" in text
        assert block not in encap(text)
    assert plan.calico_blocks(2)[0] in encap(text)


def test_wrong_public_ip_sends_to_the_advertised_address():
    assert encap(script("node1", ["wrong-public-ip@node2"]))[plan.calico_blocks(2)[0]] == plan.nat_address(INSTANCE)


def test_a_rebuilt_node_drops_what_the_last_one_had():
    text = script("node1", fresh=False)
    assert text.index(f"link del {DEVICE}") < text.index(f"link add {DEVICE}")
    assert "link del bpfin.cali" in text and "route flush table 2005" in text and "rule del pref 21" in text
    assert "address add 198.18" not in text                                   # eth0 keeps its address


@pytest.mark.parametrize("fault", sorted(BPF_EXCLUDED))
def test_faults_ebpf_mode_cannot_have_are_one_line_errors(fault):
    spec = f"{fault}{'=1400' if fault == 'mtu' else ''}@node2"
    with pytest.raises(LabError, match="does not apply to Calico eBPF mode") as err:
        check_preset([parse(spec, NAMES)], "calico", bpf=True)
    assert "\n" not in str(err.value)
    check_preset([parse(spec, NAMES)], "calico")                             # iptables mode still has it


def test_faults_that_apply_in_ebpf_mode_are_taken():
    check_preset([parse(s, NAMES) for s in ("blocked-port@node1->node2", "missing-route@node3",
                                            "firewall=iptables@node2", "vxlan-port=8475@node2",
                                            "underlay-mtu=1400@node2", "dup-vtep-mac@node2",
                                            "wrong-public-ip@node2")], "calico", bpf=True)


def test_felix_configuration_says_bpf_enabled_and_status_says_ebpf():
    state = LabState(instance=INSTANCE, preset="calico", device=DEVICE, port=4789, vni=4096, nodes=nodes(),
                     key_path="", known_hosts_path="", inventory_path="", etcd_endpoint="", calico_bpf=True)
    felix = kubectl.calico_objects(state)["felixconfigurations"]["items"][0]["spec"]
    assert felix["bpfEnabled"] is True and felix["vxlanVNI"] == 4096
    assert LabState.from_dict(state.to_dict()).calico_bpf is True
    status = {"instance": INSTANCE, "up": True, "preset": "calico", "calico_bpf": True, "device": DEVICE,
              "port": 4789, "vni": 4096, "faults": [], "nodes": [], "flanneld": None,
              "underlay": {"subnets": 1, "direct_routing": False, "vxlan_mode": "Always"}}
    assert cli._table(status).startswith(f"lab {INSTANCE}: calico (eBPF) {DEVICE} port 4789")
    assert cli._table({**status, "bpf_host_source": "HostAddress"}).startswith(
        f"lab {INSTANCE}: calico (eBPF, HostAddress) {DEVICE} port 4789")
    assert cli.build_parser().parse_args(["up", "--preset", "calico", "--calico-bpf"]).calico_bpf


def test_host_address_mode_leaves_the_device_without_the_tunnel_address():
    lab = nodes()
    want = desired(INSTANCE, lab, [])
    text = calico_bpf.node_script(INSTANCE, want, lab[0], lab, 4096, 4789, True, 1, "Always", tunnel_address=False)
    assert f"address add {plan.vtep_ip(1)}/32" not in text
    assert f"route add {plan.calico_blocks(2)[0]} via {plan.vtep_ip(2)} dev {DEVICE} onlink" in text   # routes stay
    state = LabState(instance=INSTANCE, preset="calico", device=DEVICE, port=4789, vni=4096, nodes=lab,
                     key_path="", known_hosts_path="", inventory_path="", etcd_endpoint="", calico_bpf=True,
                     bpf_host_source="HostAddress")
    spec = kubectl.calico_objects(state)["felixconfigurations"]["items"][0]["spec"]
    assert spec["bpfOverlayHostSourceIP"] == "HostAddress"
    args = cli.build_parser().parse_args(["up", "--preset", "calico", "--calico-bpf",
                                          "--bpf-overlay-host-source-ip", "HostAddress"])
    assert args.bpf_overlay_host_source_ip == "HostAddress"
