"""The calico preset over two routed underlay subnets with `vxlanMode: CrossSubnet`, without root: the
address plan, what each node is programmed with (felix's direct routes for same-subnet peers, VXLAN for the
others, the way to the other subnet via the router) and what the kubectl stand-in answers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from vxlan_conformance.cni.calico import Calico
from vxlan_conformance.lab import kubectl, overlay, plan, subnets
from vxlan_conformance.lab.errors import LabError
from vxlan_conformance.lab.faults import desired, parse
from vxlan_conformance.lab.state import LabNode, LabState

INSTANCE = 6
NAMES = ["node1", "node2", "node3", "node4"]
DEVICE = "vxlan.calico"


def nodes(count: int = 2) -> list[LabNode]:
    return [LabNode(name=n, address=subnets.node_address(INSTANCE, i, count), netns=plan.netns_name(INSTANCE, n),
                    vtep_mac=plan.felix_mac(n), vtep_ip=plan.vtep_ip(i), subnet=str(plan.subnet(i)),
                    base_mac=plan.felix_mac(n), eth_mac=f"02:00:00:00:00:0{i}")
            for i, n in enumerate(NAMES, 1)]


def node_lines(lab: list[LabNode], name: str, mode: str = "CrossSubnet", faults=()) -> list[str]:
    want = desired(INSTANCE, lab, [parse(f, NAMES) for f in faults])
    node = next(n for n in lab if n.name == name)
    direct = overlay.calico_direct(INSTANCE, want, node, lab, 2, mode)
    return (overlay.base_lines(INSTANCE, node, lab, 2)
            + overlay.overlay_lines(want, node, lab, DEVICE, 4096, 4789, plan.nat_address(INSTANCE), "calico", direct))


def test_nodes_alternate_over_two_20s_of_the_instance_underlay():
    assert [str(n) for n in subnets.networks(INSTANCE, 2)] == ["198.18.192.0/20", "198.18.208.0/20"]
    assert [n.address for n in nodes()] == ["198.18.192.1", "198.18.208.2", "198.18.192.3", "198.18.208.4"]
    assert subnets.networks(INSTANCE, 1) == [plan.underlay(INSTANCE)]
    assert subnets.node_address(INSTANCE, 7, 1) == plan.node_address(INSTANCE, 7)   # one subnet: as before
    assert subnets.address_cidr(INSTANCE, "198.18.208.2", 2) == "198.18.208.2/20"
    assert subnets.address_cidr(INSTANCE, plan.nat_address(INSTANCE), 2) == f"{plan.nat_address(INSTANCE)}/32"


def test_underlay_reaches_the_other_subnet_via_the_router_only():
    lines = node_lines(nodes(), "node1")
    assert "address add 198.18.192.1/20 dev eth0" in lines
    assert "route replace 198.18.208.0/20 via 198.18.207.253 dev eth0" in lines
    assert f"neigh replace 198.18.207.253 lladdr {subnets.router_mac(INSTANCE, 0)} dev eth0 nud permanent" in lines
    neighbours = [line for line in lines if line.startswith("neigh replace 198.18.")]
    assert not [line for line in neighbours if "198.18.208." in line]     # no static ARP across the router
    assert any(line.startswith("neigh replace 198.18.192.3 ") for line in neighbours)


def test_crosssubnet_routes_same_subnet_peers_directly_and_the_others_via_vxlan():
    lab = nodes()
    one = node_lines(lab, "node1")
    for block in plan.calico_blocks(3):       # node3: node1's subnet
        assert f"route replace {block} via 198.18.192.3 dev eth0 onlink proto 80" in one
        assert not [line for line in one if line.startswith(f"route add {block} ")]
    for index in (2, 4):                      # across the router: VXLAN, via the tunnel address
        for block in plan.calico_blocks(index):
            assert f"route add {block} via {plan.vtep_ip(index)} dev {DEVICE} onlink proto 3" in one
    # node1's address 100.64.1.5, borrowed by node2: node4 shares node2's subnet, node3 does not
    borrowed = "100.64.1.5/32"
    assert f"route replace {borrowed} via 198.18.208.2 dev eth0 onlink proto 80" in node_lines(lab, "node4")
    assert f"route add {borrowed} via {plan.vtep_ip(2)} dev {DEVICE} onlink proto 3" in node_lines(lab, "node3")
    # felix keeps the FDB and neighbour entries of every VTEP, direct or not
    want = desired(INSTANCE, lab, [])
    assert (plan.felix_mac("node3"), "198.18.192.3") in want.fdb["node1"]
    assert f"neigh add {plan.vtep_ip(3)} lladdr {plan.felix_mac('node3')} dev {DEVICE} nud permanent" in one


def test_always_mode_on_two_subnets_routes_every_peer_via_vxlan():
    one = node_lines(nodes(), "node1", mode="Always")
    assert not [line for line in one if "dev eth0 onlink" in line]
    assert f"route add {plan.calico_blocks(3)[0]} via {plan.vtep_ip(3)} dev {DEVICE} onlink proto 3" in one


def test_missing_route_leaves_out_every_route_to_the_peer_direct_or_not():
    lab = nodes()
    one = node_lines(lab, "node1", faults=["missing-route@node1->node3", "missing-route@node1->node2"])
    assert not [line for line in one if any(b in line for b in plan.calico_blocks(3) + plan.calico_blocks(2))]
    assert f"route add {plan.calico_blocks(4)[0]} via {plan.vtep_ip(4)} dev {DEVICE} onlink proto 3" in one


@pytest.mark.parametrize(("count", "preset", "mode", "message"), [
    (3, "calico", "Always", "use 1 or 2"),
    (1, "flannel", "CrossSubnet", "use it with --preset calico"),
    (2, "cilium", "Always", "not built for the cilium preset"),
    (2, "calico", "Never", "unknown vxlan mode"),
])
def test_bad_combinations_are_one_line_errors(count, preset, mode, message):
    with pytest.raises(LabError, match=message):
        subnets.check(count, preset, mode, 4)


def test_two_subnets_hold_no_more_nodes_than_a_20_holds():
    with pytest.raises(LabError, match="at most 4000"):
        subnets.check(2, "calico", "CrossSubnet", 4001)
    subnets.check(2, "flannel", "Always", 4000)


def test_kubectl_stand_in_answers_crosssubnet_pool_and_subnet_cidrs(tmp_path: Path):
    lab = nodes()
    state = LabState(instance=INSTANCE, preset="calico", device=DEVICE, port=4789, vni=4096, nodes=lab,
                     key_path="", known_hosts_path="", inventory_path="", etcd_endpoint="", underlay_subnets=2,
                     vxlan_mode="CrossSubnet")
    want = desired(INSTANCE, lab, [])
    files = {"nodes": tmp_path / "nodes.json"}
    files["nodes"].write_text(json.dumps(kubectl.node_list(state, want)))
    for kind, listing in kubectl.calico_objects(state).items():
        files[kind] = tmp_path / f"{kind}.json"
        files[kind].write_text(json.dumps(listing))
    script = tmp_path / "kubectl"
    script.write_text(kubectl._script(files))

    def get(*argv: str) -> str:
        return subprocess.run(["sh", str(script), "get", *argv], capture_output=True, text=True, check=True).stdout

    pools = json.loads(get("ippools.crd.projectcalico.org", "-o", "json"))["items"]
    assert [p["spec"]["vxlanMode"] for p in pools] == ["CrossSubnet"]
    node_items = json.loads(get("nodes", "-o", "json"))["items"]
    assert {n["metadata"]["name"]: n["metadata"]["annotations"]["projectcalico.org/IPv4Address"]
            for n in node_items} == {"node1": "198.18.192.1/20", "node2": "198.18.208.2/20",
                                     "node3": "198.18.192.3/20", "node4": "198.18.208.4/20"}
    # and the Calico module reads them as felix does: a CrossSubnet pool, each node's own subnet
    view = Calico().view_extra({kind: get(kind, "-o", "json") for kind in files if kind != "daemonsets"}
                               | {"calico-node": get("daemonsets", "-A", "-o", "json")})["calico"]
    assert [p["vxlan_mode"] for p in view["pools"]] == ["crosssubnet"]
    assert view["node_cidrs"]["node3"] == "198.18.192.3/20" and not view["unreadable"]
