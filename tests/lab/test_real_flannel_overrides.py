"""Issue 16 end to end: what users change in flannel, on REAL flanneld, the suite run as a user does: a
non-default `--etcd-prefix` (the inventory's vxlan_etcd_prefix), a lease whose backend data is null (one
node's problem, never an aborted run), and a node whose public IP the operator set with the
flannel.alpha.coreos.com/public-ip-overwrite annotation (honoured, not blamed)."""

from __future__ import annotations

import base64
import json
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.lab.suite_runner import run_suite
from tests.lab.test_e2e_checks import STATIC_SUITES
from tests.lab.test_real_flannel import DATAPATH, failed

pytestmark = pytest.mark.root

PREFIX = "/example.com/network"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def null_backend_data(endpoint: str, key: str, v2: bool) -> None:
    """Rewrite one lease with `"BackendData": null`, keeping its PublicIP (and its v2 TTL)."""
    if v2:
        node = json.loads(urllib.request.urlopen(f"{endpoint}/v2/keys{key}", timeout=10).read())["node"]
        lease = {**json.loads(node["value"]), "BackendData": None}
        body = {"value": json.dumps(lease), "prevExist": "true", "ttl": node.get("ttl") or 86400}
        request = urllib.request.Request(f"{endpoint}/v2/keys{key}", method="PUT",
                                         data=urllib.parse.urlencode(body).encode())
    else:
        def post(path: str, body: dict) -> dict:
            req = urllib.request.Request(endpoint + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            return json.loads(urllib.request.urlopen(req, timeout=10).read())
        kv = post("/v3/kv/range", {"key": _b64(key)})["kvs"][0]
        lease = {**json.loads(base64.b64decode(kv["value"])), "BackendData": None}
        request = urllib.request.Request(f"{endpoint}/v3/kv/put", headers={"Content-Type": "application/json"},
                                         data=json.dumps({"key": _b64(key), "value": _b64(json.dumps(lease)),
                                                          "lease": kv.get("lease", "0")}).encode())
    urllib.request.urlopen(request, timeout=10).read()


@pytest.mark.parametrize(("version", "api"), [("v0.20.2", "v3"), ("v0.12.0", "v2")])
def test_custom_etcd_prefix_is_read_and_null_backend_data_is_one_nodes_problem(lab, flanneld, tmp_path, version,
                                                                               api):
    state = lab.up(nodes=4, cluster_view="etcd", flanneld=flanneld(version), etcd_prefix=PREFIX,
                   inventory_path=str(tmp_path / "lab.yaml"))
    assert f"vxlan_etcd_prefix: {PREFIX}" in Path(state.inventory_path).read_text()
    healthy = run_suite(state.inventory_path, tmp_path / "healthy", *STATIC_SUITES)
    assert failed(healthy) == set() and healthy.exit_code == 0, healthy.output[-4000:]
    view = next(r for r in healthy.summary["results"] if r["check"] == "cluster-view")
    assert f"4 leases in etcd {api} under {PREFIX}/subnets" in view["message"]
    # nothing under flannel's default prefix: the suite found the leases where the inventory said
    node3 = state.node("node3")
    null_backend_data(state.etcd_endpoint, f"{PREFIX}/subnets/{node3.subnet.replace('/', '-')}", api == "v2")
    result = run_suite(state.inventory_path, tmp_path / "null", *STATIC_SUITES, DATAPATH)
    expected = {("vtep-mac-advertised", "node3", "VTEP_MAC_MISMATCH")}
    if version == "v0.20.2":  # its peers drop their neighbour entry for node3 (AddFDB fails on the empty
        # MAC, then DelARP: backend/vxlan/vxlan_network.go handleSubnetEvents); v0.12.0's AddARP fails first
        # and leaves both entries as they were
        expected |= {("datapath", f"{peer}->node3", "VTEP_MAC_MISMATCH") for peer in ("node1", "node2", "node4")}
    assert failed(result) == expected, result.output[-4000:]
    assert result.exit_code == 1 and result.summary["counts"]["error"] == 0
    mine = next(r for r in result.summary["results"] if r["check"] == "vtep-mac-advertised" and r["subject"] == "node3")
    assert "backend-data is null" in mine["message"]
    skipped = {r["subject"] for r in result.summary["results"]
               if r["check"] == "peer-fdb" and "advertises no VtepMAC" in (r["message"] or "")}
    assert skipped == {"node1->node3", "node2->node3", "node4->node3"}


def test_public_ip_overwrite_is_honoured(lab, flanneld, tmp_path):
    """node2's operator set public-ip-overwrite to its second address: flanneld advertises it and every
    peer's FDB sends node2's frames there. The kubectl view carries the annotation, so nothing fails; the
    etcd view of the same cluster has no annotation, and there the mismatch is named on node2 alone."""
    state = lab.up(nodes=4, cluster_view="kubectl", flanneld=flanneld("v0.20.2"), public_ip_overwrite=["node2"],
                   inventory_path=str(tmp_path / "lab.yaml"))
    overwrite = state.public_ip_overwrite["node2"]
    assert overwrite != state.node("node2").address
    mac = state.node("node2").vtep_mac
    for peer in ("node1", "node3", "node4"):
        fdb = lab.exec(peer, ["bridge", "fdb", "show", "dev", state.device]).stdout
        assert f"{mac} dst {overwrite} " in fdb, fdb
    result = run_suite(state.inventory_path, tmp_path / "kubectl", *STATIC_SUITES, DATAPATH)
    assert failed(result) == set() and result.exit_code == 0, result.output[-4000:]
    etcd_view = tmp_path / "etcd.yaml"
    etcd_view.write_text(Path(state.inventory_path).read_text().replace("vxlan_cluster_view: kubectl",
                                                                        "vxlan_cluster_view: etcd"))
    result = run_suite(etcd_view, tmp_path / "etcd", *STATIC_SUITES, DATAPATH)
    assert failed(result) == {("public-ip", "node2", "PUBLIC_IP_MISMATCH")}, result.output[-4000:]
