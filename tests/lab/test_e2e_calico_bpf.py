"""The suite against the calico preset in felix's eBPF mode (`lab up --preset calico --calico-bpf`: a
flow-based vxlan.calico, neighbours and routes but no FDB, tc standing in for felix's BPF programs,
lab/calico_bpf.py), run as a user runs it (pytest -n auto, a subprocess, summary.json). Healthy: no failure,
the checks that do not apply in eBPF mode are one skip each with the eBPF reason, real VXLAN with VNI 4096
and outer checksum 0 on the wire. Faults that make sense in eBPF mode: exactly the broken subjects with
their codes; faults eBPF mode cannot have: refused by `lab up` in one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.lab.suite_runner import LAB_INSTANCE, PROJECT_ROOT, run_suite
from vxlan_conformance.lab.faults import BPF_EXCLUDED

pytestmark = pytest.mark.root

NODES = ["node1", "node2", "node3"]
PAIRS = {f"{a}->{b}" for a in NODES for b in NODES if a != b}
NOT_IN_BPF = {"peer-fdb", "vtep-local", "vtep-mtu", "checksum-offload-risk"}
NEVER_IN_BPF = {"FDB_MISSING", "FDB_WRONG_DST", "VTEP_LOCAL_MISMATCH", "MESH_FAILED", "OUTER_CHECKSUM_BAD"}


def into(node: str) -> set[str]:
    return {f"{peer}->{node}" for peer in NODES if peer != node}


SCENARIOS = {
    # a security group drops node3's VXLAN to node1 only
    "blocked-one-way": (["blocked-port@node3->node1"], {("node3->node1", "UDP_PORT_BLOCKED")}),
    # node3's kernel route to node1's blocks and borrowed address is gone (felix's BPF map is not)
    "missing-route": (["missing-route@node3->node1"], {("node3->node1", "ROUTE_MISSING")}),
    # node2's own iptables drops the VXLAN port in INPUT: felix's eBPF-mode INPUT rules accept no VXLAN
    "host-firewall": (["firewall=iptables@node2"], {(p, "HOST_FIREWALL_DROP") for p in into("node2")}),
    # node2's FelixConfiguration moved its VXLAN port: its device listens and sends on 8475
    "vxlan-port": (["vxlan-port=8475@node2"], {("node2", "CONFIG_INCONSISTENT")}
                   | {(p, "VXLAN_PORT_MISMATCH") for p in into("node2") | {"node2->node1", "node2->node3"}}),
    # node2's NIC takes 1400 bytes: its peers' 1450-byte overlay packets (felix's route MTU) die there
    "underlay-mtu": (["underlay-mtu=1400@node2"], {(p, "UNDERLAY_MTU_TOO_SMALL") for p in into("node2")}),
    # node3 carries node2's MAC (a VXLANTunnelMACAddr annotation): with no FDB nobody sends node2's traffic to
    # node3, but each kernel drops frames whose inner source is its own MAC (vxlan_set_mac), so between them
    "dup-vtep-mac": (["dup-vtep-mac@node2,node3"], {("node2", "VTEP_MAC_DUPLICATE"), ("node3", "VTEP_MAC_DUPLICATE"),
                                                    ("node2->node3", "VTEP_MAC_DUPLICATE"),
                                                    ("node3->node2", "VTEP_MAC_DUPLICATE")}),
    # seed 004's conditions on an eBPF-capable kernel with the NAT checksum bug (5.4.30 < 5.4.41): BPF sends the
    # outer checksum as 0, there is nothing to corrupt (the suite said CHECKSUM_OFFLOAD_RISK)
    "seed-004-conditions": (["kernel=5.4.30@node2", "random-fully@node2", "offload=on@node2"], set()),
    # node3's IPv4Address names the NAT address every node holds: peers tunnel node3's traffic there
    "wrong-public-ip": (["wrong-public-ip@node3"], {("node3", "PUBLIC_IP_MISMATCH")}
                       | {(p, "PUBLIC_IP_MISMATCH") for p in into("node3")}),
}


@pytest.fixture(scope="module")
def bpf_lab(lab, tmp_path_factory):
    state = lab.up(nodes=3, preset="calico", calico_bpf=True,
                   inventory_path=str(tmp_path_factory.mktemp("bpf") / "calico-bpf.yaml"))
    return lab, state


def test_healthy_calico_ebpf_passes_and_says_what_does_not_apply(bpf_lab, tmp_path):
    lab, state = bpf_lab
    link = lab.exec("node1", ["ip", "-d", "link", "show", "vxlan.calico"]).stdout
    assert "vxlan external" in link and "dstport 4789" in link and " local " not in link
    assert " dst " not in lab.exec("node1", ["bridge", "fdb", "show", "dev", "vxlan.calico"]).stdout
    assert "100.64.2.0/26 via 100.64.2.0 onlink mtu 1450" in lab.exec(
        "node1", ["ip", "route", "show", "dev", "vxlan.calico"]).stdout
    result = run_suite(state.inventory_path, tmp_path / "reports")
    assert result.failures() == set(), result.output[-4000:]
    assert result.exit_code == 0
    results = result.summary["results"]
    skipped = [r for r in results if r["status"] == "skipped"]
    bpf = [r for r in skipped if "Calico eBPF mode" in r["message"]]
    assert sorted(r["check"] for r in bpf) == sorted(NOT_IN_BPF)                 # once each, for the run
    assert {r["subject"] for r in bpf} == {"*", "*->*"}
    # the rest as on any Calico run: no tunnel map, and the opt-in MAC prediction
    assert {r["check"] for r in skipped if r not in bpf} <= {"peer-tunnel", "vtep-mac-predicted-unique"}
    assert set(result.summary["checks"]["not_applicable"]) == NOT_IN_BPF | {"peer-tunnel"}
    passed = {(r["check"], r["subject"]) for r in results if r["status"] == "passed"}
    for check in ("datapath", "peer-route", "peer-neigh"):
        assert {(check, p) for p in PAIRS} <= passed, check
    for check in ("vtep-config", "vtep-mac-advertised", "vtep-mac-unique", "public-ip"):
        assert {(check, n) for n in NODES} <= passed, check


def test_ebpf_wire_format_is_felix_bpf(bpf_lab):
    """What crosses the underlay: VNI 4096 (OVERLAY_TUNNEL_ID), outer UDP checksum 0 (BPF_F_ZERO_CSUM_TX),
    from node1's own address to node2's, the inner frame to node2's VTEP MAC."""
    lab, state = bpf_lab
    capture = subprocess.Popen(["ip", "netns", "exec", state.node("node2").netns, "tcpdump", "-c", "1", "-nn",
                                "-xx", "-i", "eth0", "udp dst port 4789"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        for _ in range(20):
            lab.exec("node1", ["ping", "-c", "1", "-W", "1", state.node("node2").vtep_ip])
            if capture.poll() is not None:
                break
        out, _ = capture.communicate(timeout=10)
    finally:
        if capture.poll() is None:
            capture.kill()
            capture.wait()
    raw = bytes.fromhex("".join(w for line in out.splitlines() if ":" in line and line.strip().startswith("0x")
                                for w in line.split(":", 1)[1].split()))
    ip = raw[14:34]
    udp = raw[34:42]
    vxlan = raw[42:50]
    assert ".".join(map(str, ip[12:16])) == state.node("node1").address
    assert ".".join(map(str, ip[16:20])) == state.node("node2").address
    assert int.from_bytes(udp[6:8], "big") == 0                                  # no outer checksum
    assert int.from_bytes(vxlan[4:7], "big") == 4096
    assert raw[50:56].hex(":") == state.node("node2").vtep_mac


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_calico_ebpf_faults_are_named_exactly(bpf_lab, tmp_path, scenario):
    lab, state = bpf_lab
    faults, expected = SCENARIOS[scenario]
    lab.fault(faults)
    try:
        result = run_suite(state.inventory_path, tmp_path / "reports")
    finally:
        lab.clear_faults()
    assert result.failures() == expected, result.output[-4000:]
    assert not {c for r in result.summary["results"] for c in r["codes"]} & NEVER_IN_BPF
    for r in result.summary["results"]:   # the sizes felix's eBPF mode really sends: its route MTU, not the device's
        if "UNDERLAY_MTU_TOO_SMALL" in r["codes"]:
            assert "up to 1500 bytes (MTU 1450 on its routes into vxlan.calico + 50 bytes VXLAN)" in r["message"]


def lab_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vxlan_conformance.lab", *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=60)


def test_status_says_ebpf_and_a_running_lab_refuses_what_ebpf_cannot_have(bpf_lab):
    lab, state = bpf_lab
    status = lab_cli("status", "--instance", str(LAB_INSTANCE))
    assert status.stdout.startswith(f"lab {LAB_INSTANCE}: calico (eBPF) vxlan.calico port 4789"), status.stdout
    for fault in ("stale-fdb@node2", "mtu=1400@node2"):
        done = lab_cli("fault", "--instance", str(LAB_INSTANCE), fault)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert "does not apply to Calico eBPF mode" in done.stderr
    assert lab.state().faults == []


@pytest.mark.parametrize("fault", sorted(BPF_EXCLUDED))
def test_faults_ebpf_mode_cannot_have_are_refused_in_one_line(fault, tmp_path):
    spec = f"{fault}{'=1400' if fault == 'mtu' else ''}@node2"
    done = subprocess.run([sys.executable, "-m", "vxlan_conformance.lab", "up", "--instance", str(LAB_INSTANCE),
                           "--nodes", "3", "--preset", "calico", "--calico-bpf", "--fault", spec,
                           "--inventory", str(tmp_path / "x.yaml")], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "does not apply to Calico eBPF mode" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_host_address_mode_is_healthy_and_says_the_overlay_cannot_be_probed(lab, tmp_path):
    """bpfOverlayHostSourceIP HostAddress: no tunnel address on any vxlan.calico, so no node answers at its
    VXLAN tunnel address; the suite said MESH_FAILED for every pair of this healthy cluster, it now skips the
    datapath once with the reason and checks the rest."""
    state = lab.up(nodes=3, preset="calico", calico_bpf=True, bpf_host_source="HostAddress",
                   inventory_path=str(tmp_path / "calico-bpf-host.yaml"))
    assert " inet " not in lab.exec("node1", ["ip", "addr", "show", "dev", "vxlan.calico"]).stdout
    result = run_suite(state.inventory_path, tmp_path / "reports")
    assert result.failures() == set(), result.output[-4000:]
    skipped = {r["check"]: r for r in result.summary["results"] if r["status"] == "skipped"}
    assert skipped["datapath"]["subject"] == "*->*"
    assert "bpfOverlayHostSourceIP HostAddress" in skipped["datapath"]["message"]
    passed = {(r["check"], r["subject"]) for r in result.summary["results"] if r["status"] == "passed"}
    assert {("peer-route", p) for p in PAIRS} | {("peer-neigh", p) for p in PAIRS} <= passed


def test_crosssubnet_ebpf_is_healthy_and_same_subnet_pairs_are_direct(lab, tmp_path):
    """vxlanMode CrossSubnet on two underlay subnets in eBPF mode: same-subnet peers routed on eth0 without a
    tunnel key (cali_rt_is_same_subnet), the others over VXLAN; no failure, direct pairs noted as such."""
    state = lab.up(nodes=4, preset="calico", calico_bpf=True, underlay_subnets=2, vxlan_mode="CrossSubnet",
                   inventory_path=str(tmp_path / "calico-bpf-xs.yaml"))
    result = run_suite(state.inventory_path, tmp_path / "reports")
    assert result.failures() == set(), result.output[-4000:]
    datapath = {r["subject"]: r for r in result.summary["results"] if r["check"] == "datapath"}
    assert "direct pair, not VXLAN" in datapath["node1->node3"]["message"]
    assert datapath["node1->node2"]["status"] == "passed" and "direct" not in datapath["node1->node2"]["message"]
