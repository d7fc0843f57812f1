"""The cilium lab preset without root: what each node is programmed with (Cilium's devices and routes, the
stand-in table), what the kubectl stand-in answers (Node + CiliumNode), and which faults apply."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from vxlan_conformance.collect import facts
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


# -- the cilium-dbg stand-in, run with a fake `ip` that prints a node's stand-in table and addresses --------

ROUTES = ("100.64.2.0/24  encap ip id 6 src 0.0.0.0 dst 198.18.0.12 ttl 64 tos 0 via 100.64.2.37 dev cilium_vxlan "
          "onlink \n100.64.3.0/24  encap ip id 6 src 0.0.0.0 dst 198.18.0.13 ttl 64 tos 0 via 100.64.3.140 dev "
          "cilium_vxlan onlink \nunreachable 100.64.0.0/10 \n")
ADDRS = ("1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n"
         "2: eth0    inet 198.18.0.11/20 brd 198.18.15.255 scope global eth0\\       valid_lft forever\n"
         "4: cilium_host    inet 100.64.1.87/32 scope global cilium_host\\       valid_lft forever\n")


def stand_in(tmp_path, version: str, *args: str, routes: str = ROUTES) -> subprocess.CompletedProcess:
    """Run the stand-in of `version` with a fake `ip` first on PATH (table 2004 and `ip -4 -o addr show`)."""
    (tmp_path / "routes").write_text(routes)
    (tmp_path / "addrs").write_text(ADDRS)
    fake = tmp_path / "ip"
    fake.write_text(f'#!/bin/sh\ncase "$*" in\n  "route show table {cilium.TABLE}") cat {tmp_path}/routes ;;\n'
                    f'  "-4 -o addr show") cat {tmp_path}/addrs ;;\n  *) exit 1 ;;\nesac\n')
    fake.chmod(0o755)
    cilium.write_cilium_dbg([tmp_path], version)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    return subprocess.run([str(tmp_path / "cilium-dbg"), *args], capture_output=True, text=True, timeout=10, env=env)


def test_v1_17_stand_in_lists_the_tunnel_map_as_cilium_dbg_does(tmp_path):
    out = stand_in(tmp_path, "1.17", "bpf", "tunnel", "list", "-o", "json")
    assert out.returncode == 0 and out.stdout.endswith("}\n\n")
    assert json.loads(out.stdout) == {"100.64.2.0": ["198.18.0.12:0"], "100.64.3.0": ["198.18.0.13:0"]}
    empty = stand_in(tmp_path, "1.17", "bpf", "tunnel", "list", "-o", "json", routes="")
    assert empty.stdout == "{}\n\n"


def test_v1_18_stand_in_has_no_tunnel_command_as_cobra_answers_for_bpf(tmp_path):
    """cilium-dbg v1.18 has no `bpf tunnel` (cilium/cilium #38839): cobra stops at `bpf` and fails to parse
    -o (defined only on `list`): the error on stderr, `bpf`'s usage and the error again on stdout, exit 1."""
    out = stand_in(tmp_path, "1.18", "bpf", "tunnel", "list", "-o", "json")
    assert out.returncode == 1
    assert out.stderr == "Error: unknown shorthand flag: 'o' in -o\n"
    assert out.stdout.startswith("Usage:\n  cilium-dbg bpf [command]\n\nAvailable Commands:\n")
    assert out.stdout.endswith('more information about a command.\n\nunknown shorthand flag: \'o\' in -o\n')
    assert "\n  tunnel " not in out.stdout and "\n  ipcache     Manage the IPCache" in out.stdout
    long_flag = stand_in(tmp_path, "1.18", "bpf", "tunnel", "list", "--output=json")
    assert long_flag.returncode == 1 and long_flag.stderr == "Error: unknown flag: --output\n"
    helped = stand_in(tmp_path, "1.18", "bpf", "tunnel", "list")  # no flag to fail: `bpf`'s help, exit 0
    assert helped.returncode == 0 and helped.stdout.startswith("Direct access to local BPF maps\n\nUsage:\n")


@pytest.mark.parametrize("version", ["1.17", "1.18"])
def test_stand_in_ipcache_list_is_upstreams_format_from_the_same_table(tmp_path, version):
    out = stand_in(tmp_path, version, "bpf", "ipcache", "list", "-o", "json")
    assert out.returncode == 0 and out.stdout.endswith("}\n\n") and "\\u003cnone\\u003e" in out.stdout
    data = json.loads(out.stdout)
    assert list(data) == sorted(data)
    flags = "hastunnel" if version == "1.18" else "<none>"  # v1.17's flags print only skiptunnel
    assert data["100.64.2.0/24"] == [f"identity=2 encryptkey=0 tunnelendpoint=198.18.0.12 flags={flags}"]
    assert data["100.64.3.140/32"] == [f"identity=6 encryptkey=0 tunnelendpoint=198.18.0.13 flags={flags}"]
    assert data["198.18.0.12/32"] == ["identity=6 encryptkey=0 tunnelendpoint=0.0.0.0 flags=<none>"]
    assert data["100.64.1.87/32"] == data["198.18.0.11/32"] == [
        "identity=1 encryptkey=0 tunnelendpoint=0.0.0.0 flags=<none>"]
    assert data["0.0.0.0/0"] == ["identity=2 encryptkey=0 tunnelendpoint=0.0.0.0 flags=<none>"]
    assert facts._ipcache_tunnels(out.stdout) == {"100.64.2.0": "198.18.0.12", "100.64.3.0": "198.18.0.13"}
    text = stand_in(tmp_path, version, "bpf", "ipcache", "list").stdout.splitlines()
    assert text[0].split() == ["IP", "PREFIX/ADDRESS", "IDENTITY"] and len(text) == 1 + len(data)
    assert {" ".join(line.split()) for line in text[1:]} == {f"{k} {v[0]}" for k, v in data.items()}


def test_cilium_version_only_for_the_cilium_preset_and_a_known_version():
    cilium.check_version(None, "flannel")
    cilium.check_version("1.18", "cilium")
    with pytest.raises(LabError, match="use it with --preset cilium"):
        cilium.check_version("1.18", "flannel")
    with pytest.raises(LabError, match="unknown --cilium-version '1.19': use 1.17 or 1.18"):
        cilium.check_version("1.19", "cilium")
