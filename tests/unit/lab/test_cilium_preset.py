"""The cilium lab preset without root: what each node is programmed with (Cilium's devices and routes, the
stand-in table), what the kubectl stand-in answers (Node + CiliumNode), and which faults apply."""

from __future__ import annotations

import pytest

from vxlan_conformance.lab import cilium, kubectl, plan
from vxlan_conformance.lab.errors import LabError
from vxlan_conformance.lab.faults import check_preset, desired, parse
from vxlan_conformance.lab.state import LabNode, LabState

NAMES = ["node1", "node2", "node3"]


def nodes() -> list[LabNode]:
    return [LabNode(name=n, address=plan.node_address(6, i), netns=plan.netns_name(6, n),
                    vtep_mac=f"02:00:00:00:00:0{i}", vtep_ip=plan.router_ip(i), subnet=str(plan.subnet(i)),
                    base_mac=f"02:00:00:00:00:0{i}")
            for i, n in enumerate(NAMES, 1)]


def test_router_ips_are_inside_the_pod_cidr_and_never_the_first_addresses():
    for i in range(1, 300):
        ip, net = plan.router_ip(i), plan.subnet(i)
        assert ip in {str(a) for a in net.hosts()} and not ip.endswith((".0", ".1"))


def test_node_script_holds_ciliums_devices_and_routes_and_the_faults():
    lab = nodes()
    want = desired(6, lab, [parse("missing-route@node1->node2", NAMES), parse("missing-tunnel@node1->node3", NAMES),
                            parse("wrong-public-ip@node3", NAMES)])
    script = cilium.node_script(want, lab[0], lab, 8472, [], fresh=True)
    router = lab[0].vtep_ip
    assert "type vxlan external dstport 8472 ttl 0 tos 0 nolearning" in script
    assert f"address add {router}/32 dev cilium_host" in script
    assert f"route replace {lab[0].subnet} via {router} dev cilium_host proto kernel src {router}\n" in script
    assert f"route replace {lab[2].subnet} via {router} dev cilium_host proto kernel src {router} mtu 1450" in script
    assert f"route replace {lab[1].subnet} via" not in script                      # missing-route node1->node2
    assert f"encap ip id 6 dst {lab[1].address} ttl 64" in script                  # tunnel entry for node2
    assert f"{lab[2].subnet} encap" not in script                                  # missing-tunnel node1->node3
    other = cilium.node_script(want, lab[1], lab, 8472, [], fresh=True)
    assert f"encap ip id 6 dst {plan.nat_address(6)} ttl 64 via {lab[2].vtep_ip}" in other  # node3's CiliumNode
    assert "csum" not in other.split("table netdev")[0]  # outer checksum 0, as BPF_F_ZERO_CSUM_TX


def test_kubectl_stand_in_answers_cilium_nodes(tmp_path, monkeypatch):
    monkeypatch.setattr(plan, "STATE_ROOT", tmp_path)
    lab = nodes()
    state = LabState(instance=6, preset="cilium", device="cilium_vxlan", port=8472, vni=0, nodes=lab, key_path="",
                     known_hosts_path="", inventory_path="", etcd_endpoint="")
    want = desired(6, lab, [parse("wrong-public-ip@node2", NAMES)])
    listing = kubectl.cilium_node_list(state, want)
    by_name = {item["metadata"]["name"]: item["spec"] for item in listing["items"]}
    assert by_name["node1"]["addresses"] == [{"ip": lab[0].address, "type": "InternalIP"},
                                             {"ip": lab[0].vtep_ip, "type": "CiliumInternalIP"}]
    assert by_name["node2"]["addresses"][0]["ip"] == plan.nat_address(6)
    assert by_name["node3"]["ipam"]["podCIDRs"] == [lab[2].subnet]
    assert all(not item["metadata"]["annotations"] for item in kubectl.node_list(state, want)["items"])


def test_fdb_faults_do_not_apply_to_cilium_and_tunnel_faults_only_to_it():
    with pytest.raises(LabError, match="does not apply to the cilium preset"):
        check_preset([parse("stale-fdb@node2", NAMES)], "cilium")
    with pytest.raises(LabError, match="does not apply to the flannel preset"):
        check_preset([parse("missing-route@node2", NAMES)], "flannel")
    check_preset([parse("blocked-port@node1->node2", NAMES), parse("bad-checksum@node2", NAMES)], "cilium")
