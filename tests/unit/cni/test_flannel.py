"""flannel as users run it: leases in etcd v2 (flannel 0.9-0.17) or v3, custom prefixes, null or bad
backend-data, public-ip-overwrite / node-public-ip, Learning, dual-stack keys, and DirectRouting, from
the real outputs of upstream flanneld v0.12.0 and v0.20.2 run in the lab (tests/fixtures/view)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from vxlan_conformance import cni
from vxlan_conformance.checks import datapath, peers, vtep
from vxlan_conformance.cni import flannel
from vxlan_conformance.collect import cluster_view as cv
from vxlan_conformance.collect.parsers.bridge_fdb import parse_fdb
from vxlan_conformance.collect.parsers.iproute import parse_neighbours, parse_routes, parse_vxlan_link
from vxlan_conformance.model.advertised import Advertised
from vxlan_conformance.model.facts import NodeFacts
from vxlan_conformance.model.records import Address, Interface
from vxlan_conformance.model.rundata import RunData

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "view"
V012_LEASES = {  # flanneld v0.12.0, `ETCDCTL_API=2 etcdctl get` of each key (no VNI in v2 BackendData)
    "/coreos.com/network/subnets/100.64.54.0-24":
        '{"PublicIP":"198.18.160.1","BackendType":"vxlan","BackendData":{"VtepMAC":"a6:10:05:5e:53:2b"}}',
    "/coreos.com/network/subnets/100.64.99.0-24":
        '{"PublicIP":"198.18.160.3","BackendType":"vxlan","BackendData":{"VtepMAC":"2e:80:36:72:be:85"}}',
}
V3_EMPTY = '{"header":{"cluster_id":3291338455773588790,"member_id":11195053636522657600,"revision":1,"raft_term":2}}'


def _v2_output(keys: dict[str, str], v3: str = V3_EMPTY) -> str:
    """What etcdctl_command prints: the v3 JSON, the v2 mark, then `#key <key>` and the value per key."""
    body = "".join(f"#key {k}\n{v}\n" for k, v in keys.items())
    return f"{v3}\n\n{cv.V2_MARK}\n{body}"


def _v3_json(items: dict[str, str]) -> str:
    kvs = [{"key": base64.b64encode(k.encode()).decode(), "value": base64.b64encode(v.encode()).decode()}
           for k, v in items.items()]
    return json.dumps({"header": {"revision": 5}, "kvs": kvs, "count": len(kvs)})


def test_v012_leases_found_in_etcd_v2_and_said_so():
    config = '{"Network":"100.64.0.0/10","SubnetLen":24,\n "Backend":{"Type":"vxlan","VNI":1,"Port":8472}}'
    view = cv.parse_etcd(_v2_output({"/coreos.com/network/config": config, **V012_LEASES}))
    assert [(a.pod_cidr, a.public_ip, a.vtep_mac) for a in view.advertised] == [
        ("100.64.54.0/24", "198.18.160.1", "a6:10:05:5e:53:2b"),
        ("100.64.99.0/24", "198.18.160.3", "2e:80:36:72:be:85")]
    assert "etcd v2" in view.note and "2 leases" in view.note
    assert view.config["Backend"]["Port"] == 8472  # the multi-line value is read whole


def test_v3_preferred_and_custom_prefix_only_reads_its_own_keys():
    prefix = "/hfl.example/lab/network"
    v3 = _v3_json({prefix + "/subnets/100.64.49.0-24":
                   '{"PublicIP":"198.18.160.1","PublicIPv6":null,"BackendType":"vxlan",'
                   '"BackendData":{"VNI":1,"VtepMAC":"96:1b:c2:dc:2c:ce"}}',
                   prefix + "/config": '{"Network":"100.64.0.0/10","Backend":{"Type":"vxlan"}}'})
    view = cv.parse_etcd(_v2_output(V012_LEASES, v3), prefix)
    assert [a.pod_cidr for a in view.advertised] == ["100.64.49.0/24"] and "etcd v3" in view.note
    assert cv.parse_etcd(_v2_output(V012_LEASES, v3)).note.startswith("flannel 2 leases in etcd v2")
    assert "etcdctl get --prefix" in cv.etcdctl_command("etcdctl", prefix) and prefix + "/" in cv.etcdctl_command(
        "etcdctl", prefix)


def test_fetch_uses_the_prefix_and_fails_only_when_no_api_answered():
    prefix = "/hfl.example/lab/network"
    seen = []

    def runner(command):
        seen.append(command)
        return 0, _v2_output({prefix + "/subnets/100.64.7.0-24": V012_LEASES[
            "/coreos.com/network/subnets/100.64.54.0-24"]}), ""
    view = cv.fetch_view("etcd", runner, cni=flannel.Flannel(), where="e1", etcd_prefix=prefix)
    assert [a.pod_cidr for a in view.advertised] == ["100.64.7.0/24"] and prefix in seen[0]
    try:
        cv.fetch_view("etcd", lambda c: (1, "", "Error: context deadline exceeded"), cni=flannel.Flannel(), where="e1")
    except cv.ViewError as exc:
        assert "exit 1" in str(exc) and "context deadline exceeded" in str(exc)
    else:
        raise AssertionError("a failing etcdctl must be a ViewError")


def test_dual_stack_key_parsed_by_its_ipv4_part():
    lease = ('{"PublicIP":"198.18.160.1","PublicIPv6":"fd00::1","BackendType":"vxlan",'
             '"BackendData":{"VtepMAC":"96:1b:c2:dc:2c:ce"}}')
    (adv,) = flannel.Flannel().leases_v2([("/coreos.com/network/subnets/10.244.1.0-24&fd00::-64", lease)])
    assert adv.pod_cidr == "10.244.1.0/24" and adv.vtep_ip == "10.244.1.0"


def _node(annotations: dict, prefix: str = "flannel.alpha.coreos.com/") -> dict:
    return {"metadata": {"name": "w1", "annotations": {prefix + k: v for k, v in annotations.items()}},
            "spec": {"podCIDR": "10.244.3.0/24"},
            "status": {"addresses": [{"type": "InternalIP", "address": "198.18.0.1"}]}}


def test_null_or_bad_backend_data_is_a_problem_of_that_node_not_a_crash():
    model = flannel.Flannel()
    for raw, said in (("null", "null"), ("[]", "not an object"), ('{"VtepMAC":"zz:zz"}', "not a MAC"),
                      ("{", "not JSON"), ('{"VNI":1}', "no VtepMAC")):
        adv = model.advertised(_node({"backend-data": raw, "public-ip": "198.18.0.1"}))
        assert adv.vtep_mac is None and said in adv.problem, raw
    lease = model.leases_v2([("/coreos.com/network/subnets/10.244.1.0-24",
                              '{"PublicIP":"198.18.0.1","BackendType":"vxlan","BackendData":null}')])
    assert lease[0].vtep_mac is None and lease[0].problem == "backend-data is null"


def test_custom_annotation_prefix_and_node_public_ip():
    model = flannel.Flannel().for_settings({"annotation_prefix": "example.com/flannel"})
    adv = model.advertised(_node({"backend-data": '{"VNI":1,"VtepMAC":"AA:BB:CC:00:11:22"}',
                                  "public-ip": "198.18.0.9", "node-public-ip": "198.18.0.9"},
                                 prefix="example.com/flannel/"))
    assert adv.vtep_mac == "aa:bb:cc:00:11:22" and adv.public_ip_overwrite == "198.18.0.9"
    assert flannel.Flannel().advertised(_node({"backend-data": '{"VtepMAC":"aa:bb:cc:00:11:22"}'},
                                              prefix="example.com/flannel/")).vtep_mac is None


# -- DirectRouting over a routed two-subnet underlay (flanneld v0.20.2, real dump) -------------------------

def _facts_from_dump(text: str) -> dict[str, NodeFacts]:
    facts = {}
    for block in text.split("================ ")[1:]:
        head, *rest = block.split("\n--- ")
        name, address = head.split()[0], head.split()[1].strip("()")
        sections = {s.split("\n", 1)[0]: s.split("\n", 1)[1] for s in rest}
        device = parse_vxlan_link(sections["ip -d link show flannel.1"])
        vtep_ip = sections["ip addr show flannel.1"].split("inet ")[1].split("/")[0]
        eth0 = Interface("eth0", addresses=[Address("eth0", "inet", address, 20)])
        facts[name] = NodeFacts(name, device=device, underlay=eth0,
                                addresses=[*eth0.addresses, Address("flannel.1", "inet", vtep_ip, 32)],
                                fdb=parse_fdb(sections["bridge fdb show dev flannel.1"], "flannel.1"),
                                neighbours=parse_neighbours(sections["ip neigh show dev flannel.1"], "flannel.1"),
                                routes=parse_routes(sections["ip route"]))
    return facts


def _direct_run(config: dict | None) -> RunData:
    facts = _facts_from_dump(FIXTURES.joinpath("flanneld-v0.20.2-directrouting-routed.txt").read_text())
    addresses = {"hfl-n1": "198.18.160.1", "hfl-n2": "198.18.160.2", "hfl-n3": "198.18.176.3"}
    run = RunData("lab.yaml", "2026-12-05T00:00:00Z", list(addresses), addresses,
                  {"cni": "flannel", "device": "flannel.1", "port": 8472, "vni": 1}, facts=facts)
    subnets = {"hfl-n1": "100.64.34.0", "hfl-n2": "100.64.100.0", "hfl-n3": "100.64.96.0"}
    run.view_source = "etcd"
    run.view = {h: Advertised(s + "/24", "etcd", facts[h].device.mac, addresses[h], pod_cidr=s + "/24", vtep_ip=s,
                              host=h) for h, s in subnets.items()}
    run.view_config = config or {}
    return run


def test_direct_routing_same_subnet_pairs_are_routes_not_vxlan():
    for config, known in (({"Backend": {"Type": "vxlan", "DirectRouting": True}}, "the network config"),
                          (None, "the nodes' routes")):
        run = _direct_run(config)
        plan = cni.of_run(run).peer_plan(run, "hfl-n1", "hfl-n2")
        assert not plan.vxlan and plan.routes[0].via == "198.18.160.2" and plan.routes[0].dev == "eth0"
        assert known in plan.note and "without VXLAN" in plan.note
        for check in (peers.fdb, peers.neighbour, peers.route):
            result = check(run, "hfl-n1", "hfl-n2")
            assert result.passed and "DirectRouting" in result.note, check
        # across the router: VXLAN pairs, checked as such
        assert cni.of_run(run).peer_plan(run, "hfl-n1", "hfl-n3").vxlan
        assert all(check(run, a, b).passed for check in (peers.fdb, peers.neighbour, peers.route)
                   for a, b in (("hfl-n1", "hfl-n3"), ("hfl-n3", "hfl-n1"), ("hfl-n3", "hfl-n2")))


def test_direct_routing_cross_subnet_fault_found_and_same_subnet_route_missing_found():
    run = _direct_run({"Backend": {"Type": "vxlan", "DirectRouting": True}})
    run.facts["hfl-n1"].fdb = []
    run.facts["hfl-n1"]._index = None
    assert peers.fdb(run, "hfl-n1", "hfl-n3").codes == ("FDB_MISSING",)
    assert peers.fdb(run, "hfl-n1", "hfl-n2").passed
    run.facts["hfl-n2"].routes = [r for r in run.facts["hfl-n2"].routes if r.dst != "100.64.34.0/24"]
    run.facts["hfl-n2"]._index = None
    assert peers.route(run, "hfl-n2", "hfl-n1").codes == ("ROUTE_MISSING",)


def test_direct_routing_off_in_config_keeps_every_pair_vxlan():
    run = _direct_run({"Backend": {"Type": "vxlan"}})
    assert peers.fdb(run, "hfl-n1", "hfl-n2").codes == ("FDB_MISSING",)


def test_learning_follows_the_network_config():
    run = _direct_run({"Backend": {"Type": "vxlan", "Learning": True}})
    assert vtep.config_consistent(run, "hfl-n1").codes == ("CONFIG_INCONSISTENT",)  # the device has nolearning
    run.facts["hfl-n1"].device.learning = True
    assert vtep.config_consistent(run, "hfl-n1").passed
    assert vtep.config_consistent(_direct_run(None), "hfl-n2").passed


def test_null_backend_data_is_one_nodes_code_and_its_pairs_say_why():
    run = _direct_run({"Backend": {"Type": "vxlan"}})
    run.view["hfl-n3"] = Advertised("w3", "kubectl", None, "198.18.176.3", pod_cidr="100.64.96.0/24",
                                    vtep_ip="100.64.96.0", host="hfl-n3", problem="backend-data is null")
    result = vtep.mac_advertised(run, "hfl-n3")
    assert result.codes == ("VTEP_MAC_MISMATCH",) and "backend-data is null" in result.message
    assert vtep.mac_advertised(run, "hfl-n1").passed
    fdb = peers.fdb(run, "hfl-n1", "hfl-n3")
    assert fdb.passed and "no VtepMAC" in fdb.note


def test_public_ip_overwrite_is_what_the_pair_diagnosis_expects():
    run = _direct_run({"Backend": {"Type": "vxlan"}})
    adv = run.view["hfl-n3"]
    run.view["hfl-n3"] = Advertised(**{**adv.to_dict(), "public_ip": "198.18.176.3",
                                       "public_ip_overwrite": "198.18.176.3"})
    assert datapath.source_cause(run, "hfl-n3", ("198.18.176.3",)) is None
    cause = datapath.source_cause(run, "hfl-n3", ("198.18.5.15",))
    assert cause[0] == ("VTEP_LOCAL_MISMATCH",)
    run.view["hfl-n3"] = Advertised(**{**adv.to_dict(), "public_ip_overwrite": "198.18.5.15"})
    assert datapath.source_cause(run, "hfl-n3", ("198.18.5.15",))[0] == ("PUBLIC_IP_MISMATCH",)
    # n1's FDB sends n3's frames to n3's address: nothing to blame on the overwrite
    assert datapath.config_cause(run, "hfl-n1", "hfl-n3")[0] == ("OVERLAY_UNREACHABLE",)


def test_a_pair_broken_by_null_backend_data_blames_the_peers_advertisement():
    """Real flanneld v0.20.2 deletes its neighbour entry for a lease whose backend data is null (AddFDB fails
    on the empty MAC, vxlan_network.go handleSubnetEvents then DelARP): the broken pair names the node's
    own problem, not a missing FDB entry for a MAC nobody advertises."""
    run = _direct_run({"Backend": {"Type": "vxlan"}})
    run.view["hfl-n3"] = Advertised("w3", "kubectl", None, "198.18.176.3", pod_cidr="100.64.96.0/24",
                                    vtep_ip="100.64.96.0", host="hfl-n3", problem="backend-data is null")
    codes, message = datapath.config_cause(run, "hfl-n1", "hfl-n3")
    assert codes == ("VTEP_MAC_MISMATCH",) and "backend-data is null" in message
