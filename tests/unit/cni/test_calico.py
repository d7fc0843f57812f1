"""Calico as felix builds it: the derived VTEP MAC, the view from annotations and CRDs, the per-peer plan
(IPAM blocks, borrowed /32, CrossSubnet), the MTU by version and eBPF mode; a healthy node passes every
peer and VTEP check, and a broken one fails with the exact code."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from tests.unit.builders import CALICO_NODES, calico_facts
from vxlan_conformance.checks import datapath, kernel, peers, vtep
from vxlan_conformance.cni import calico
from vxlan_conformance.collect import cluster_view as cv
from vxlan_conformance.model.facts import NodeFacts
from vxlan_conformance.model.records import FdbEntry, Interface, VxlanDevice
from vxlan_conformance.model.rundata import RunData

CALICO = calico.Calico()
# /tmp/research/calico.md table "Test vectors" (sha1sum in the shell and hashlib agree), plus felix's own
# fixtures felix/calc/states_for_test.go:1677, 1725, 2476.
VECTORS = [("node1", False, "66:f9:37:c3:7e:94"), ("node2", False, "66:2d:bf:44:a6:8b"),
           ("node3", False, "66:a4:6f:e0:c4:da"), ("k8s-worker-01", False, "66:bb:bb:d8:11:bf"),
           ("master", False, "66:4f:26:ae:af:db"), ("node1", True, "66:0f:35:f2:60:df"),
           ("remotehostname", False, "66:3e:ca:a4:db:65"), ("remotehostname2", False, "66:40:18:59:1f:16"),
           ("remotehostname", True, "66:a0:68:c9:4c:79")]


@pytest.mark.parametrize(("name", "v6", "mac"), VECTORS)
def test_felix_mac_vectors(name, v6, mac):
    assert calico.felix_mac(name, ipv6=v6) == mac


@pytest.mark.parametrize("name", ["node1", "k8s-worker-01", "a.b-c"])
def test_felix_mac_matches_sha1sum(name):
    """A second implementation: the shell's sha1sum, "66" and the first ten hex digits."""
    digest = subprocess.run(["sh", "-c", 'printf %s "$1" | sha1sum', "sh", name], capture_output=True,
                            text=True, check=True).stdout.split()[0]
    text = "66" + digest[:10]
    assert calico.felix_mac(name) == ":".join(text[i:i + 2] for i in range(0, 12, 2))
    assert hashlib.sha1(name.encode()).hexdigest() == digest


def k8s_node(name: str, ip: str, tunnel: str | None, mac: str | None = None, prefix: int = 24) -> dict:
    ann = {"projectcalico.org/IPv4Address": f"{ip}/{prefix}"}
    if tunnel:
        ann["projectcalico.org/IPv4VXLANTunnelAddr"] = tunnel
    if mac:
        ann["projectcalico.org/VXLANTunnelMACAddr"] = mac
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "annotations": ann},
            "spec": {"podCIDR": "10.233.0.0/24"},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}


def test_advertised_derives_the_mac_unless_configured():
    adv = CALICO.advertised(k8s_node("node1", "10.0.0.11", "10.244.1.0"))
    assert (adv.vtep_mac, adv.public_ip, adv.vtep_ip) == ("66:f9:37:c3:7e:94", "10.0.0.11", "10.244.1.0")
    assert "felix-derived" in adv.vtep_mac_source
    given = CALICO.advertised(k8s_node("node1", "10.0.0.11", "10.244.1.0", mac="66:CF:23:DF:22:07"))
    assert (given.vtep_mac, given.vtep_mac_source) == ("66:cf:23:df:22:07", "annotation")
    assert CALICO.advertised(k8s_node("node1", "10.0.0.11", None)).vtep_mac is None  # no VTEP without a tunnel


def block(cidr: str, node: str, allocations: list, attributes: list) -> dict:
    return {"apiVersion": "crd.projectcalico.org/v1", "kind": "IPAMBlock",
            "metadata": {"name": cidr.replace(".", "-").replace("/", "-")},
            "spec": {"cidr": cidr, "affinity": f"host:{node}", "allocations": allocations,
                     "unallocated": [], "attributes": attributes, "deleted": False, "strictAffinity": False}}


def attr(node: str, kind: str = "pod") -> dict:
    secondary = {"node": node, "type": "vxlanTunnelAddress"} if kind == "tunnel" else {
        "node": node, "namespace": "default", "pod": f"web-{node}"}
    return {"handle_id": f"h-{node}-{kind}", "secondary": secondary}


def items(*objs: dict) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)})


NODES = CALICO_NODES
POOL = {"apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool", "metadata": {"name": "default-ipv4-ippool"},
        "spec": {"cidr": "10.244.0.0/16", "blockSize": 26, "vxlanMode": "Always"}}


def view_output(mode: str = "Always", felix: dict | None = None, image: str = "docker.io/calico/node:v3.26.1",
                crds: bool = True) -> str:
    """What the view command prints: the NodeList, then one section per extra command."""
    nodes = items(*(k8s_node(n, ip, t) for n, (ip, t) in NODES.items()))
    blocks = items(
        # node1: two blocks; ordinal 5 of its first block is borrowed by node2 (secondary.node)
        block("10.244.1.0/26", "node1", [0, 1, None, None, None, 2], [attr("node1", "tunnel"), attr("node1"),
                                                                       attr("node2")]),
        block("10.244.1.64/26", "node1", [0], [attr("node1")]),
        block("10.244.2.0/26", "node2", [0], [attr("node2", "tunnel")]),
        block("10.244.2.64/26", "node2", [None, 0], [attr("node2")]),
        block("10.244.3.0/26", "node3", [0], [attr("node3", "tunnel")]))
    pool = {**POOL, "spec": {**POOL["spec"], "vxlanMode": mode}}
    fc = {"apiVersion": "crd.projectcalico.org/v1", "kind": "FelixConfiguration", "metadata": {"name": "default"},
          "spec": felix or {"vxlanVNI": 4096}}
    ds = {"kind": "DaemonSet", "metadata": {"name": "calico-node"},
          "spec": {"template": {"spec": {"containers": [{"name": "calico-node", "image": image}]}}}}
    sections = {"ippools": items(pool), "ipamblocks": blocks, "blockaffinities": items(),
                "felixconfigurations": items(fc), "calico-node": items(ds)}
    out = nodes
    for name, text in sections.items():
        out += "\n" + cv.SECTION.format(name) + "\n" + (text if crds or name == "calico-node" else cv.FAILED) + "\n"
    return out


def run_of(out: str, facts: dict[str, NodeFacts], **overlay) -> RunData:
    run = RunData("hosts.yaml", "2026-01-01T00:00:00Z", list(NODES), {n: ip for n, (ip, _) in NODES.items()},
                  {"cni": "calico", "device": "vxlan.calico", "port": 4789, "vni": 4096, "mtu": None, **overlay},
                  facts=facts)
    view = cv.fetch_view("kubectl", lambda cmd: (0, out, ""), cni=CALICO, where="cp")
    run.view_source, run.view_cluster = "kubectl", view.cluster
    run.view = cv.match_hosts(view.advertised, run.addresses)
    return run


def results(run: RunData) -> dict[str, tuple]:
    out = {}
    for a in run.nodes:
        for fn in (vtep.mac_advertised, vtep.local_address, vtep.config_consistent, vtep.mtu):
            r = fn(run, a)
            out[f"{r.check} {a}"] = (r.codes, r.skipped)
        for b in run.nodes:
            if a != b:
                for fn in (peers.fdb, peers.neighbour, peers.route):
                    r = fn(run, a, b)
                    out[f"{r.check} {a}->{b}"] = (r.codes, r.skipped)
    return out


def test_view_command_is_one_command_with_sections():
    command = cv.kubectl_view_command("kubectl", CALICO)
    assert command.startswith("kubectl get nodes -o json || exit $?")
    assert "ipamblocks.crd.projectcalico.org" in command and "blockaffinities.crd.projectcalico.org" in command
    assert cv.kubectl_view_command("kubectl", cv.Flannel()) == "kubectl get nodes -o json"


def test_view_extra_reads_blocks_borrowed_pools_and_version():
    run = run_of(view_output(), {h: calico_facts(h) for h in NODES})
    view = run.view_cluster["calico"]
    assert view["version"] == "v3.26.1" and view["unreadable"] == []
    first = next(b for b in view["blocks"] if b["cidr"] == "10.244.1.0/26")
    assert first == {"cidr": "10.244.1.0/26", "node": "node1", "borrowed": [["10.244.1.5", "node2"]]}
    assert view["pools"][0]["vxlan_mode"] == "always"
    plan = CALICO.peer_plan(run, "node3", "node2")
    assert sorted((r.dst, r.via, r.dev) for r in plan.routes) == [
        ("10.244.1.5/32", "10.244.2.0", "vxlan.calico"), ("10.244.2.0/26", "10.244.2.0", "vxlan.calico"),
        ("10.244.2.64/26", "10.244.2.0", "vxlan.calico")]
    assert plan.fdb == ("66:2d:bf:44:a6:8b", "10.0.0.12") and plan.neigh == ("10.244.2.0", "66:2d:bf:44:a6:8b")


def test_healthy_calico_passes_every_check():
    run = run_of(view_output(), {h: calico_facts(h) for h in NODES})
    bad = {k: v for k, v in results(run).items() if v[0] or v[1]}
    assert bad == {}


def test_missing_block_route_stale_fdb_and_wrong_mac_are_named():
    facts = {h: calico_facts(h) for h in NODES}
    facts["node3"].routes = [r for r in facts["node3"].routes if r.dst != "10.244.1.64/26"]
    facts["node1"].fdb = [FdbEntry(e.mac, dst="10.0.9.99" if e.mac == calico.felix_mac("node2") else e.dst)
                          for e in facts["node1"].fdb]
    facts["node2"].device.mac = "66:00:00:00:00:02"
    bad = {k: v[0] for k, v in results(run_of(view_output(), facts)).items() if v[0]}
    assert bad == {"peer-route node3->node1": ("ROUTE_MISSING",), "peer-fdb node1->node2": ("FDB_WRONG_DST",),
                   "vtep-mac-advertised node2": ("VTEP_MAC_MISMATCH",)}


def test_cross_subnet_routes_same_subnet_peers_via_the_parent():
    facts = {h: calico_facts(h, "CrossSubnet") for h in NODES}
    run = run_of(view_output("CrossSubnet"), facts)
    assert {k: v for k, v in results(run).items() if v[0] or v[1]} == {}
    plan = CALICO.peer_plan(run, "node1", "node2")
    assert plan.routes[0].via == "10.0.0.12" and plan.routes[0].dev == "eth0" and "CrossSubnet" in plan.note
    assert plan.fdb is not None and plan.neigh is not None   # felix still programs both
    other = CALICO.peer_plan(run, "node1", "node3")          # 10.0.1.13 is outside node1's 10.0.0.0/24
    assert other.routes[0].dev == "vxlan.calico" and not other.note
    # the same routes under vxlanMode Always are missing VXLAN routes
    wrong = run_of(view_output("Always"), facts)
    assert peers.route(wrong, "node1", "node2").codes == ("ROUTE_MISSING",)


def test_inventory_mode_is_used_only_when_pools_are_unreadable():
    facts = {h: calico_facts(h, "CrossSubnet") for h in NODES}
    out = view_output("Always").replace(cv.SECTION.format("ippools") + "\n" + items(
        {**POOL, "spec": {**POOL["spec"], "vxlanMode": "Always"}}), cv.SECTION.format("ippools") + "\n" + cv.FAILED)
    run = run_of(out, facts, calico_vxlan_mode="crosssubnet")
    assert "ippools" in run.view_cluster["calico"]["unreadable"]
    assert peers.route(run, "node1", "node2").passed


def test_unreadable_crds_do_not_fail_routes():
    run = run_of(view_output(crds=False), {h: calico_facts(h) for h in NODES})
    result = peers.route(run, "node1", "node2")
    assert result.passed and "IPAM blocks not readable" in result.note
    assert peers.fdb(run, "node1", "node2").passed


@pytest.mark.parametrize(("image", "version", "mtu", "codes"), [
    ("calico/node:v3.16.4", None, 1410, ()), ("calico/node:v3.16.4", None, 1450, ("MTU_MISMATCH",)),
    ("calico/node:v3.26.1", None, 1450, ()), ("calico/node:v3.26.1", "v3.15.0", 1410, ())])
def test_mtu_by_version(image, version, mtu, codes):
    run = run_of(view_output(image=image), {h: calico_facts(h, mtu=mtu) for h in NODES},
                 calico_version=version)
    assert vtep.mtu(run, "node1").codes == codes


def test_felix_vxlan_mtu_wins():
    run = run_of(view_output(felix={"vxlanMTU": 1370}), {h: calico_facts(h, mtu=1370) for h in NODES})
    assert vtep.mtu(run, "node1").passed


def test_ebpf_mode_skips_what_does_not_apply_and_checks_the_rest():
    facts = {h: calico_facts(h) for h in NODES}
    for f in facts.values():
        f.fdb = []
        f.device = VxlanDevice("vxlan.calico", mac=f.device.mac, external=True, mtu=1500, kind="vxlan")
    run = run_of(view_output(felix={"bpfEnabled": True}), facts)
    got = results(run)
    skipped = {k.split()[0] for k, v in got.items() if v[1]}
    assert skipped == {"peer-fdb", "vtep-local", "vtep-mtu"}   # vtep-config: flow-based, port, nolearning
    assert all("eBPF" in v[1] for v in got.values() if v[1])
    assert {k: v for k, v in got.items() if v[0]} == {}
    facts = {h: calico_facts(h) for h in NODES}
    facts["node1"].routes = []
    assert peers.route(run_of(view_output(felix={"bpfEnabled": True}), facts), "node1", "node2").codes == (
        "ROUTE_MISSING",)


def bpf_facts() -> dict[str, NodeFacts]:
    """Nodes as felix in eBPF mode leaves them: flow-based vxlan.calico (id 0, no local), no FDB."""
    facts = {h: calico_facts(h) for h in NODES}
    for f in facts.values():
        f.fdb = []
        f.device = VxlanDevice("vxlan.calico", mac=f.device.mac, vni=0, port=4789, external=True, mtu=1500,
                               up=True, learning=False, kind="vxlan")
    return facts


@pytest.mark.parametrize(("felix", "vni"), [
    ({"bpfEnabled": True}, 4096),                                  # the inventory's / Calico's default VNI
    ({"bpfEnabled": True, "vxlanVNI": 7777}, 7777),                # FelixConfiguration vxlanVNI
    ({"bpfEnabled": True, "vxlanVNI": 7777, "wireguardEnabled": True}, 1),   # bpf_ep_mgr.go:700-702
    ({"bpfEnabled": False, "vxlanVNI": 4096}, 0),                   # iptables mode: the device's own VNI
])
def test_probes_carry_the_vni_felix_bpf_puts_on_the_wire(felix, vni):
    """In eBPF mode the device shows id 0, but BPF sends OVERLAY_TUNNEL_ID and only that VNI from a Calico
    host passes the HEP program without policy: the runner's raw frames must carry it."""
    run = run_of(view_output(felix=felix), bpf_facts())
    assert CALICO.probe_vni(run, "node2") == vni


def test_ebpf_mode_skips_the_checksum_offload_risk():
    """Seed 004's bug corrupts outer checksums; felix's BPF sends them as 0 (BPF_F_ZERO_CSUM_TX)."""
    facts = bpf_facts()
    facts["node1"].kernel_release = "3.10.0-1127.el7.x86_64"
    facts["node1"].offloads = {"tx-checksum-ip-generic": "on"}
    result = kernel.offload_risk(run_of(view_output(felix={"bpfEnabled": True}), facts), "node1")
    assert not result.codes and "BPF_F_ZERO_CSUM_TX" in result.skipped and "eBPF" in result.skipped


def test_ebpf_receivers_take_any_inner_mac_but_not_their_own_as_source():
    """BPF hands decapsulated frames to the host as PACKET_HOST, so a device MAC other than the advertised
    one drops nothing in eBPF mode; the kernel still drops frames whose source is its own MAC."""
    facts = bpf_facts()
    facts["node2"].device.mac = "66:00:00:00:00:02"
    run = run_of(view_output(felix={"bpfEnabled": True}), facts)
    assert datapath._acceptance_cause(run, "node1", "node2") is None
    facts["node1"].device.mac = "66:00:00:00:00:02"
    assert datapath._acceptance_cause(run, "node1", "node2")[0] == ("VTEP_MAC_DUPLICATE",)
    iptables = {h: calico_facts(h) for h in NODES}
    iptables["node2"].device.mac = "66:00:00:00:00:02"
    assert datapath._acceptance_cause(run_of(view_output(), iptables), "node1", "node2")[0] == (
        "VTEP_MAC_MISMATCH",)


def test_ebpf_mode_wants_a_flow_based_device_on_the_configured_port():
    """felix recreates vxlan.calico when FlowBased differs (vxlan_mgr.go vxlanLinksIncompat): a device left
    from iptables mode, or on another port, is named; the flow-based device's id 0 is no VNI mismatch."""
    facts = bpf_facts()
    run = run_of(view_output(felix={"bpfEnabled": True}), facts)
    assert vtep.config_consistent(run, "node1").passed
    facts["node2"].device = calico_facts("node2").device                    # vxlan id 4096 local ... dev eth0
    facts["node3"].device.port = 8475
    assert vtep.config_consistent(run, "node2").codes == ("CONFIG_INCONSISTENT",)
    assert "external False (expected True)" in vtep.config_consistent(run, "node2").message
    assert "port 8475 (expected 4789)" in vtep.config_consistent(run, "node3").message


def test_ebpf_underlay_mtu_counts_felix_route_mtu_not_the_device_mtu():
    """In eBPF mode vxlan.calico keeps the kernel's 1500 while felix's routes carry VXLANMTU 1450: a peer
    whose NIC takes 1400 drops frames of up to 1500 bytes, not 1550."""
    facts = bpf_facts()
    facts["node2"].underlay = Interface("eth0", mtu=1400)
    run = run_of(view_output(felix={"bpfEnabled": True}), facts)
    codes, text, mtu = datapath.underlay_mtu_cause(run, "node1", "node2")
    assert codes == ("UNDERLAY_MTU_TOO_SMALL",) and mtu == 1400
    assert "sends frames of up to 1500 bytes (MTU 1450 on its routes into vxlan.calico + 50 bytes VXLAN)" in text
    iptables = {h: calico_facts(h) for h in NODES}
    iptables["node2"].underlay = Interface("eth0", mtu=1400)
    assert "(vxlan.calico MTU 1450 + 50 bytes VXLAN)" in datapath.underlay_mtu_cause(
        run_of(view_output(), iptables), "node1", "node2")[1]


def test_ebpf_host_address_mode_cannot_probe_the_overlay_and_says_why():
    """bpfOverlayHostSourceIP HostAddress: felix leaves vxlan.calico without the tunnel address, so the mesh
    has no overlay address to ping on any node; the datapath is one skip with the reason, not MESH_FAILED."""
    facts = bpf_facts()
    for f in facts.values():
        f.addresses = [a for a in f.addresses if a.dev != "vxlan.calico"]
    run = run_of(view_output(felix={"bpfEnabled": True, "bpfOverlayHostSourceIP": "HostAddress"}), facts)
    reason = CALICO.not_applicable("datapath", run)
    assert "FelixConfiguration default bpfOverlayHostSourceIP HostAddress" in reason
    assert datapath.diagnose(run, "node1", "node2").skipped == reason
    assert peers.route(run, "node1", "node2").passed and peers.neighbour(run, "node1", "node2").passed
    for felix in ({"bpfEnabled": True}, {"bpfEnabled": True, "bpfOverlayHostSourceIP": "TunnelAddress"},
                  {"bpfEnabled": False, "bpfOverlayHostSourceIP": "HostAddress"}):
        assert CALICO.not_applicable("datapath", run_of(view_output(felix=felix), bpf_facts())) is None
