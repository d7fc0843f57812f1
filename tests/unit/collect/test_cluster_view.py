"""The advertised view: kubectl NodeLists (flannel and Calico annotations) and flannel etcd leases,
parsed from the seeds' real annotation lines, and matched to inventory hosts."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml

from vxlan_conformance.cni import calico, flannel
from vxlan_conformance.collect import cluster_view as cv

FLANNEL, CALICO = flannel.Flannel(), calico.Calico()

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "view"


def _nodelist_from_seed(name: str, addresses: list[str]) -> str:
    """Rebuild a NodeList from the annotation lines a field engineer grepped out of `kubectl get node`."""
    blocks = FIXTURES.joinpath(name).read_text().split("--\n")
    items = []
    for block, address in zip(blocks, addresses, strict=True):
        lines = [line.strip() for line in block.splitlines() if line.strip() != "annotations:"]
        annotations = yaml.safe_load("\n".join(lines))
        items.append({"metadata": {"name": address, "annotations": annotations},
                      "status": {"addresses": [{"type": "InternalIP", "address": address}]}})
    return json.dumps({"apiVersion": "v1", "kind": "NodeList", "items": items})


def test_seed000_cloned_vms_advertise_one_mac():
    nodes = cv.parse_kubectl_nodes(_nodelist_from_seed(
        "seed000-annotations.txt", ["172.18.27.252", "172.18.27.253", "172.18.27.254"]), FLANNEL)
    assert {n.vtep_mac for n in nodes} == {"fe:22:77:eb:2f:a4"}
    assert [n.public_ip for n in nodes] == ["172.18.27.252", "172.18.27.253", "172.18.27.254"]
    assert {n.backend_type for n in nodes} == {"vxlan"}


def test_seed002_four_distinct_vteps():
    addresses = ["10.25.1.51", "10.25.1.52", "10.25.1.53", "10.25.1.54"]
    nodes = cv.parse_kubectl_nodes(_nodelist_from_seed("seed002-annotations.txt", addresses), FLANNEL)
    assert [n.vtep_mac for n in nodes] == ["76:21:69:41:de:fe", "b6:61:5c:8d:d9:eb",
                                           "1e:8c:3e:12:fc:0f", "ba:fe:64:36:6e:a1"]
    assert cv.match_hosts(nodes, {f"n{i}": a for i, a in enumerate(addresses)}).keys() == {
        "n0", "n1", "n2", "n3"}


def test_public_ip_overwrite_kept_apart_from_public_ip():
    node = {"metadata": {"name": "w1", "annotations": {
        flannel.ANNOTATION_PREFIX + "backend-data": '{"VNI":1,"VtepMAC":"AA:BB:CC:00:11:22"}',
        flannel.ANNOTATION_PREFIX + "public-ip": "203.0.113.9",
        flannel.ANNOTATION_PREFIX + "public-ip-overwrite": "203.0.113.9"}},
        "spec": {"podCIDR": "10.244.3.0/24"}}
    (adv,) = cv.parse_kubectl_nodes(json.dumps({"items": [node]}), FLANNEL)
    assert adv.vtep_mac == "aa:bb:cc:00:11:22"
    assert adv.public_ip_overwrite == "203.0.113.9"
    assert adv.vtep_ip == "10.244.3.0" and adv.pod_cidr == "10.244.3.0/24"


def test_calico_annotations():
    node = {"metadata": {"name": "c1", "annotations": {
        calico.ANNOTATION_PREFIX + "IPv4Address": "192.168.0.63/24",
        calico.ANNOTATION_PREFIX + "IPv4VXLANTunnelAddr": "192.168.25.64",
        calico.ANNOTATION_PREFIX + "VXLANTunnelMACAddr": "66:CF:23:DF:22:07"}}}
    (adv,) = cv.parse_kubectl_nodes(json.dumps({"items": [node]}), CALICO)
    assert (adv.public_ip, adv.vtep_ip, adv.vtep_mac) == ("192.168.0.63", "192.168.25.64", "66:cf:23:df:22:07")


def _kv(key: str, value: dict) -> dict:
    return {"key": base64.b64encode(key.encode()).decode(),
            "value": base64.b64encode(json.dumps(value).encode()).decode()}


def test_etcd_leases_matched_by_subnet_when_public_ip_is_wrong():
    """Seed 001: a lease with the NAT address matches no node address; its subnet still finds the host."""
    text = json.dumps({"kvs": [
        _kv("/coreos.com/network/subnets/100.64.1.0-24",
            {"PublicIP": "198.18.0.1", "BackendType": "vxlan", "BackendData": {"VtepMAC": "0a:00:00:00:00:01"}}),
        _kv("/coreos.com/network/subnets/100.64.2.0-24",
            {"PublicIP": "198.19.0.15", "BackendType": "vxlan", "BackendData": {"VtepMAC": "0a:00:00:00:00:02"}}),
    ]})
    leases = cv.parse_etcd_leases(text)
    assert [lease.pod_cidr for lease in leases] == ["100.64.1.0/24", "100.64.2.0/24"]
    matched = cv.match_hosts(leases, {"node1": "198.18.0.1", "node2": "198.18.0.2"},
                             {"node1": "100.64.1.0", "node2": "100.64.2.0"})
    assert matched["node2"].public_ip == "198.19.0.15"
    assert matched["node1"].vtep_mac == "0a:00:00:00:00:01"


@pytest.mark.parametrize("text", ["", "{", '{"kind": "NodeList"}', "[]"])
def test_bad_kubectl_output_is_one_line_error(text):
    with pytest.raises(cv.ViewError) as err:
        cv.parse_kubectl_nodes(text, FLANNEL)
    assert "\n" not in str(err.value)


def test_fetch_names_missing_tool_and_failure():
    with pytest.raises(cv.ViewError, match="node1: kubectl not found.*vxlan_kubectl"):
        cv.fetch("kubectl", lambda cmd: (127, "", "sh: kubectl: not found"), cni=FLANNEL, where="node1")
    with pytest.raises(cv.ViewError, match=r"etcd1: .*failed \(exit 1\): Error: context deadline exceeded"):
        cv.fetch("etcd", lambda cmd: (1, "", "Error: context deadline exceeded\nmore"), cni=FLANNEL, where="etcd1")


def test_a_lease_shared_by_nodes_on_one_public_ip_is_every_holders():
    """Seed 001 on real flanneld in etcd mode: node2 and node3 both advertise the NAT address, so both
    took the one lease whose PublicIP it is; each holds its subnet's .0 and gets that lease."""
    text = json.dumps({"kvs": [
        _kv("/coreos.com/network/subnets/100.64.1.0-24",
            {"PublicIP": "198.18.0.1", "BackendType": "vxlan", "BackendData": {"VtepMAC": "0a:00:00:00:00:01"}}),
        _kv("/coreos.com/network/subnets/100.64.9.0-24",
            {"PublicIP": "198.19.0.15", "BackendType": "vxlan", "BackendData": {"VtepMAC": "0a:00:00:00:00:03"}}),
    ]})
    matched = cv.match_hosts(cv.parse_etcd_leases(text),
                             {"node1": "198.18.0.1", "node2": "198.18.0.2", "node3": "198.18.0.3"},
                             {"node1": "100.64.1.0", "node2": "100.64.9.0", "node3": "100.64.9.0"})
    assert {host: adv.pod_cidr for host, adv in matched.items()} == {
        "node1": "100.64.1.0/24", "node2": "100.64.9.0/24", "node3": "100.64.9.0/24"}
    assert matched["node2"].host == "node2" and matched["node3"].host == "node3"
