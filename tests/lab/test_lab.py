"""The embedded lab: SSH, overlay, advertised state, every fault's exact blast radius, CLI, teardown.

Expected ping matrices: an overlay ping needs both directions, so a fault that drops A->B traffic
breaks the ping A->B (request lost) and B->A (reply lost): pair faults break both directions of
their pair; node faults break both directions of every pair with the node. The duplicated-MAC fault
makes the EARLIER duplicate unreachable (peers' FDB is last-writer-wins) and the duplicates cannot
reach each other (the kernel drops VXLAN frames whose inner source MAC is its own device MAC).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import paramiko
import pytest
import yaml

from tests.lab.lab_fixtures import (
    TEST_INSTANCE,
    lab_4,
    needs_root,
    nothing_left,
    overlay_broken,
    ssh_connect,
    ssh_run,
    with_node,
)
from vxlan_conformance.lab import Lab, LabError
from vxlan_conformance.lab.faults import LAB_USER

pytestmark = needs_root
PROJECT = Path(__file__).resolve().parents[2]
ALL_PAIRS = {f"{a}{b}" for a in range(1, 5) for b in range(1, 5) if a != b}
__all__ = ["lab_4"]  # the fixture is used by name


def _link(lab: Lab, node: str, device: str) -> dict:
    return json.loads(lab.exec(node, ["ip", "-s", "-j", "link", "show", device]).stdout)[0]


def test_ssh_strict_host_keys_and_hostname(lab_4):
    lab, state = lab_4
    for node in state.nodes:
        client = ssh_connect(state, node.name)
        try:
            assert ssh_run(client, "hostname").strip() == node.name
            assert ssh_run(client, "echo $PATH").startswith(f"/run/vxlan-lab/{TEST_INSTANCE}/nodes/{node.name}/bin:")
        finally:
            client.close()


def test_healthy_overlay_full_matrix(lab_4):
    _, state = lab_4
    assert overlay_broken(state) == set()


def test_vxlan_device_programmed_like_flannel(lab_4):
    lab, state = lab_4
    out = lab.exec("node2", ["ip", "-d", "-j", "link", "show", "flannel.1"]).stdout
    link = json.loads(out)[0]
    info = link["linkinfo"]["info_data"]
    local = f"198.18.{TEST_INSTANCE * 32}.2"
    assert (info["id"], info["port"], info["local"], info["learning"]) == (1, 8472, local, False)
    assert link["mtu"] == 1450 and link["address"] == state.node("node2").vtep_mac
    fdb = lab.exec("node2", ["bridge", "fdb", "show", "dev", "flannel.1"]).stdout
    for peer in state.nodes:
        if peer.name != "node2":
            assert f"{peer.vtep_mac} dst {peer.address} self permanent" in fdb
    assert "default" not in lab.exec("node2", ["ip", "route"]).stdout


def test_etcd_holds_flannel_leases(lab_4):
    lab, state = lab_4
    out = lab.exec("node1", ["etcdctl", "get", "--prefix", "/coreos.com/network/subnets", "-w", "json"],
                   timeout=10)
    assert out.returncode == 0, out.stderr
    import base64

    kvs = {base64.b64decode(kv["key"]).decode(): json.loads(base64.b64decode(kv["value"]))
           for kv in json.loads(out.stdout)["kvs"]}
    assert len(kvs) == 4
    for node in state.nodes:
        lease = kvs[f"/coreos.com/network/subnets/{node.subnet.replace('/', '-')}"]
        assert lease == {"PublicIP": node.address, "PublicIPv6": None, "BackendType": "vxlan",
                         "BackendData": {"VNI": 1, "VtepMAC": node.vtep_mac}}


def test_kubectl_annotations_match_real_macs(lab_4):
    lab, state = lab_4
    client = ssh_connect(state, "node1")
    try:
        nodes = json.loads(ssh_run(client, "kubectl get nodes -o json"))["items"]
        refused = client.exec_command("kubectl get pods")[1].channel.recv_exit_status()
    finally:
        client.close()
    assert refused == 1
    assert [n["metadata"]["name"] for n in nodes] == ["node1", "node2", "node3", "node4"]
    for item in nodes:
        name, notes = item["metadata"]["name"], item["metadata"]["annotations"]
        real = _link(lab, name, "flannel.1")["address"]
        assert json.loads(notes["flannel.alpha.coreos.com/backend-data"]) == {"VNI": 1, "VtepMAC": real}
        assert notes["flannel.alpha.coreos.com/public-ip"] == state.node(name).address
        assert item["spec"]["podCIDR"] == state.node(name).subnet
    assert "/run/vxlan-lab/" not in lab.exec("node2", ["sh", "-c", "command -v kubectl"]).stdout  # node1 only


def test_inventory_lists_every_node(lab_4):
    _, state = lab_4
    data = yaml.safe_load(Path(state.inventory_path).read_text())["all"]
    assert data["vars"]["vxlan_port"] == 8472 and data["vars"]["vxlan_known_hosts"] == state.known_hosts_path
    assert data["hosts"]["node3"] == {"ansible_host": state.node("node3").address, "ip": state.node("node3").address}
    assert list(data["children"]["kube_node"]["hosts"]) == ["node1", "node2", "node3", "node4"]


FAULT_MATRICES = [
    (["blocked-port@node2"], with_node(2)),
    (["blocked-port@node1->node2"], {"12", "21"}),
    (["bad-checksum@node2"], with_node(2)),
    (["bad-checksum@node2->node3"], {"23", "32"}),
    (["dup-vtep-mac@node2,node3"], with_node(2)),
    (["dup-vtep-mac@node3"], with_node(1) | {"13", "31"}),
    (["wrong-public-ip@node2"], with_node(2)),
    (["wrong-public-ip@all"], ALL_PAIRS),
    (["stale-fdb@node1->node2"], {"12", "21"}),
    (["stale-fdb@node2"], with_node(2)),
    (["missing-fdb@node1->node3"], {"13", "31"}),
    (["missing-fdb@node4"], with_node(4)),
    (["mtu=1400@node2", "offload=off@node3", "random-fully@node4", "kernel=4.19.90-52.49.v2207.ky10@node2"],
     set()),
    (["blocked-port@node1->node2", "missing-fdb@node3->node4"], {"12", "21", "34", "43"}),
    (["blackhole@node3"], with_node(3)),
    (["slow=1@node2"], set()),
    (["no-python@node2", "unprivileged-user@node3"], set()),
]


@pytest.mark.parametrize(("specs", "broken"), FAULT_MATRICES, ids=[" ".join(s) for s, _ in FAULT_MATRICES])
def test_fault_breaks_exactly_its_pairs(lab_4, specs, broken):
    lab, _ = lab_4
    try:
        state = lab.fault(specs)
        assert state.faults == specs
        assert overlay_broken(state) == broken
    finally:
        state = lab.clear_faults()
    assert overlay_broken(state) == set()


def test_blackhole_and_slow_hit_ssh_too(lab_4):
    """blackhole: even an open SSH session goes silent; slow: every command waits, then runs unchanged."""
    lab, state = lab_4
    open_session = ssh_connect(state, "node3")
    try:
        lab.fault(["blackhole@node3", "slow=2@node2"])
        with pytest.raises(OSError):
            ssh_connect(state, "node3", timeout=1)
        with pytest.raises(paramiko.SSHException, match="Timeout opening channel"):
            ssh_run(open_session, "hostname", timeout=1)
        started = time.monotonic()
        assert ssh_run(ssh_connect(state, "node2"), "hostname") == "node2\n"
        assert time.monotonic() - started >= 2
    finally:
        open_session.close()
        lab.clear_faults()
    started = time.monotonic()
    assert ssh_run(ssh_connect(state, "node2"), "hostname") == "node2\n"
    assert time.monotonic() - started < 1
    assert ssh_run(ssh_connect(state, "node3"), "hostname") == "node3\n"


def test_blocked_port_one_direction_dropped_in_network(lab_4):
    lab, state = lab_4
    try:
        lab.fault(["blocked-port@node1->node2"])
        rx2, rx1 = (_link(lab, n, "flannel.1")["stats64"]["rx"]["packets"] for n in ("node2", "node1"))
        capture = subprocess.Popen(["ip", "netns", "exec", state.node("node2").netns, "timeout", "2", "tcpdump",
                                    "-i", "eth0", "-nn", "-p", "udp", "dst", "port", "8472"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        overlay_broken(state)  # every pair pings once
        _, err = capture.communicate(timeout=10)
        # node1 -> node2 never arrives; node3/node4 -> node2 and node2 -> node1 still do
        assert _link(lab, "node1", "flannel.1")["stats64"]["rx"]["packets"] > rx1
        assert _link(lab, "node2", "flannel.1")["stats64"]["rx"]["packets"] > rx2
        counters = subprocess.run(["nft", "list", "table", "bridge", f"vxlab{TEST_INSTANCE}fault"],
                                  capture_output=True, text=True, timeout=5).stdout
        assert re.search(r"ip saddr \S+\.1 ip daddr \S+\.2 udp dport 8472 counter packets [1-9]", counters)
        seen = int(re.search(r"(\d+) packets captured", err).group(1))
        assert seen >= 2  # from node3 and node4 ...
        only_node1 = f"udp dst port 8472 and src host {state.node('node1').address}"
        out = subprocess.run(["ip", "netns", "exec", state.node("node2").netns, "timeout", "2", "tcpdump", "-i",
                              "eth0", "-nn", "-p", "-c", "1", only_node1], capture_output=True, text=True, timeout=10)
        assert "0 packets captured" in out.stderr  # ... but nothing from node1 (no ping running now either)
    finally:
        lab.clear_faults()


def test_blocked_port_capture_sees_nothing_from_sender(lab_4):
    lab, state = lab_4
    try:
        lab.fault(["blocked-port@node1->node2"])
        only_node1 = f"udp dst port 8472 and src host {state.node('node1').address}"
        capture = subprocess.Popen(["ip", "netns", "exec", state.node("node2").netns, "timeout", "3", "tcpdump",
                                    "-i", "eth0", "-nn", "-p", only_node1],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        from vxlan_conformance.lab.probe import ping_matrix

        ping_matrix({"node1": state.node("node1").netns}, {"node2": state.node("node2").vtep_ip},
                    pairs=[("node1", "node2")], timeout=0.5)
        _, err = capture.communicate(timeout=10)
        assert "0 packets captured" in err
    finally:
        lab.clear_faults()


def test_bad_checksum_counted_by_receiver(lab_4):
    lab, state = lab_4

    def csum_errors() -> int:
        lines = [line.split() for line in lab.exec("node3", ["cat", "/proc/net/snmp"]).stdout.splitlines()
                 if line.startswith("Udp:")]
        return int(lines[1][lines[0].index("InCsumErrors")])

    try:
        lab.fault(["bad-checksum@node2->node3"])
        before = csum_errors()
        assert overlay_broken(state) == {"23", "32"}
        assert csum_errors() >= before + 2  # node2's request and node2's reply
    finally:
        lab.clear_faults()


def test_node_faults_visible_over_ssh_and_advertised(lab_4):
    lab, state = lab_4
    release = "4.19.90-52.49.v2207.ky10.x86_64"
    try:
        state = lab.fault([f"kernel={release}@node2", "random-fully@node2", "offload=off@node2", "mtu=1400@node2",
                           "dup-vtep-mac@node3,node4", "wrong-public-ip@node1"])
        client = ssh_connect(state, "node2")
        try:
            assert ssh_run(client, "uname -r").strip() == release
            assert release in ssh_run(client, "uname -a") and "node2" in ssh_run(client, "uname -a")
            assert ssh_run(client, "cat /proc/sys/kernel/osrelease").strip() == release
            assert "--random-fully" in ssh_run(client, "iptables -t nat -S KUBE-POSTROUTING")
            assert "tx-checksum-ip-generic: off" in ssh_run(client, "ethtool -k flannel.1")
            assert "mtu 1400" in ssh_run(client, "ip link show flannel.1")
        finally:
            client.close()
        assert lab.exec("node3", ["uname", "-r"]).stdout.strip() != release
        assert os.uname().release != release
        nodes = {i["metadata"]["name"]: i for i in json.loads(lab.exec("node1", ["kubectl", "get", "nodes", "-o",
                                                                                   "json"]).stdout)["items"]}
        assert nodes["node2"]["status"]["nodeInfo"]["kernelVersion"] == release
        macs = {n: json.loads(i["metadata"]["annotations"]["flannel.alpha.coreos.com/backend-data"])["VtepMAC"]
                for n, i in nodes.items()}
        assert macs["node3"] == macs["node4"] == _link(lab, "node4", "flannel.1")["address"]
        assert nodes["node1"]["metadata"]["annotations"]["flannel.alpha.coreos.com/public-ip"] == \
            f"198.19.{TEST_INSTANCE}.15"
    finally:
        state = lab.clear_faults()
    assert lab.exec("node2", ["uname", "-r"]).stdout.strip() == os.uname().release
    assert "random-fully" not in lab.exec("node2", ["iptables", "-t", "nat", "-S"]).stdout
    assert len({n.vtep_mac for n in state.nodes}) == 4


# as collect/facts.py
PYTHONS = "for p in python3 python2 python /usr/libexec/platform-python; do command -v $p; done; :"


def _mount_points(pid: int) -> set[str]:
    return {line.split()[4] for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()}


def test_no_python_hides_every_python_on_its_node_only(lab_4):
    """Over SSH node2 finds no Python the facts script looks for; node3 and the machine keep theirs."""
    lab, state = lab_4
    real = os.path.realpath("/usr/bin/python3")
    try:
        state = lab.fault(["no-python@node2"])
        assert ssh_run(ssh_connect(state, "node2"), f"sh -c {shlex.quote(PYTHONS)}") == ""
        assert ssh_run(ssh_connect(state, "node2"), "sh -c 'python3 -V 2>&1; echo rc=$?'").endswith("rc=127\n")
        assert ssh_run(ssh_connect(state, "node3"), f"sh -c {shlex.quote(PYTHONS)}").startswith("/usr/bin/python3")
        assert os.access(real, os.X_OK) and os.path.getsize(real) > 0
        assert real in _mount_points(state.node("node2").sshd_pid)
        assert real not in _mount_points(os.getpid())
    finally:
        state = lab.clear_faults()
    assert state.mounts == {} and real not in _mount_points(state.node("node2").sshd_pid)
    assert ssh_run(ssh_connect(state, "node2"), "python3 -c 'print(6 * 7)'") == "42\n"


def test_unprivileged_user_logs_in_with_lab_key_on_its_node_only(lab_4):
    """LAB_USER exists only in node3's mount namespace: not root, no passwordless sudo, gone after clear."""
    lab, state = lab_4
    try:
        state = lab.fault(["unprivileged-user@node3"])
        client = ssh_connect(state, "node3", user=LAB_USER)
        try:
            name, uid, home = ssh_run(client, "id -un; id -u; echo $HOME").split()
            assert (name, home) == (LAB_USER, "/tmp") and uid != "0"
            assert ssh_run(client, "sudo -n true >/dev/null 2>&1; echo $?").strip() != "0"
        finally:
            client.close()
        with pytest.raises(paramiko.AuthenticationException):
            ssh_connect(state, "node2", user=LAB_USER)
        assert ssh_run(ssh_connect(state, "node3"), "id -u") == "0\n"  # root still logs in
        assert f"\n{LAB_USER}:" not in "\n" + Path("/etc/passwd").read_text()
    finally:
        state = lab.clear_faults()
    with pytest.raises(paramiko.AuthenticationException):
        ssh_connect(state, "node3", user=LAB_USER)


@pytest.mark.skipif(not Path("/etc/machine-id").exists(), reason="this machine has no /etc/machine-id")
def test_machine_id_per_node_and_nm_shim_on_its_node_only(lab_4):
    """Every node reads its own /etc/machine-id (the machine's stays as it is) and an nmcli stand-in that
    lists flannel.1 as unmanaged; dup-machine-id gives node3 node2's id, nm-managed makes node4's nmcli
    list flannel.1 as NetworkManager's; clear undoes both."""
    lab, state = lab_4
    machine = Path("/etc/machine-id").read_text()
    read = "cat /etc/machine-id; nmcli -t -f DEVICE,STATE device | grep flannel"

    def seen() -> dict[str, str]:
        return {f"node{i}": ssh_run(ssh_connect(state, f"node{i}"), read) for i in range(1, 5)}

    healthy = seen()
    assert len(set(healthy.values())) == 4 and all(out.endswith("\nflannel.1:unmanaged\n") for out in healthy.values())
    assert machine not in {out.split()[0] + "\n" for out in healthy.values()}
    try:
        state = lab.fault(["dup-machine-id@node2,node3", "nm-managed@node4"])
        faulted = seen()
        assert faulted["node3"] == faulted["node2"] == healthy["node2"]
        assert faulted["node4"] == healthy["node4"].replace(":unmanaged", ":connected (externally)")
        assert faulted["node1"] == healthy["node1"]
    finally:
        state = lab.clear_faults()
    assert seen() == healthy and Path("/etc/machine-id").read_text() == machine


def test_rp_filter_is_a_real_kernel_drop_and_clearing_restores_the_node(lab_4):
    """rp-filter@node2: eth1 on the underlay bridge, the routes to the peers by it, strict rp_filter: the
    kernel drops what arrives on eth0 (IPReversePathFilter rises); clearing gives node2 back as it was."""
    lab, _ = lab_4

    def node2() -> dict[str, list[str]]:
        """Links, routes and rp_filter, as sorted lines (clearing re-creates flannel.1: a new ifindex)."""
        reads = {"links": ["ip", "-br", "link"], "routes": ["ip", "route"],
                 "rp_filter": ["sysctl", "net.ipv4.conf.all.rp_filter", "net.ipv4.conf.eth0.rp_filter"]}
        out = {}
        for key, argv in reads.items():
            done = lab.exec("node2", argv)
            assert done.returncode == 0, done.stderr
            out[key] = sorted(done.stdout.splitlines())
        return out

    def rpf_drops() -> int:
        done = lab.exec("node2", ["cat", "/proc/net/netstat"])
        head, values = [line.split() for line in done.stdout.splitlines() if line.startswith("TcpExt:")][:2]
        return int(values[head.index("IPReversePathFilter")])

    healthy = node2()
    try:
        state = lab.fault(["rp-filter@node2"])
        faulted = node2()
        assert any(line.startswith("eth1@") for line in faulted["links"])
        assert faulted["rp_filter"] == ["net.ipv4.conf.all.rp_filter = 1", "net.ipv4.conf.eth0.rp_filter = 1"]
        for peer in ("node1", "node3", "node4"):
            route = lab.exec("node2", ["ip", "route", "get", state.node(peer).address]).stdout
            assert " dev eth1 " in route and f"src {state.node('node2').address}" in route
        before = rpf_drops()
        assert overlay_broken(state) == with_node(2)
        assert rpf_drops() > before
    finally:
        state = lab.clear_faults()
    assert node2() == healthy
    assert overlay_broken(state) == set()


def test_fault_input_errors(lab_4):
    lab, _ = lab_4
    for spec, words in [("no-such@node1", "unknown fault"), ("blocked-port@node9", "unknown node"),
                        ("blocked-port", "malformed"), ("mtu=big@node2", "bad value"),
                        ("kernel@node2", "needs a value"), ("dup-vtep-mac@node1", "alone"),
                        ("dup-machine-id@node1", "alone"), ("nm-managed@node1->node2", "not a pair"),
                        ("wrong-public-ip@node1->node2", "not a pair"), ("no-python=yes@node2", "takes no value"),
                        ("unprivileged-user@node1->node2", "not a pair")]:
        with pytest.raises(LabError, match=words):
            lab.fault([spec])
    assert lab.state().faults == []


def _cli(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "vxlan_conformance.lab", *args], capture_output=True,
                          text=True, timeout=60, cwd=PROJECT)


@pytest.mark.parametrize(("args", "words"), [
    (("fault", "no-such@node1"), "unknown fault"),
    (("fault", "blocked-port@node77"), "unknown node"),
    (("up", "--nodes", "9000"), "allows 1..8000"),
    (("up", "--preset", "weave"), "invalid choice"),
])
def test_cli_bad_input_exit_2_one_line(lab_4, args, words):
    proc = _cli(*args, "--instance", str(TEST_INSTANCE))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and words in proc.stderr


def test_cli_not_root_and_missing_tool():
    proc = _cli("status", prefix=("unshare", "--user"))  # euid becomes the overflow uid
    assert proc.returncode == 2 and "must run as root" in proc.stderr and len(proc.stderr.splitlines()) == 1
    hide = "mount --bind /dev/null /usr/sbin/nft && exec \"$@\""
    proc = _cli("up", "--instance", str(TEST_INSTANCE),
                prefix=("unshare", "--mount", "--propagation", "private", "sh", "-c", hide, "sh"))
    assert proc.returncode == 2 and "nftables" in proc.stderr and len(proc.stderr.splitlines()) == 1


def test_cli_status_table(lab_4):
    proc = _cli("status", "--instance", str(TEST_INSTANCE))
    assert proc.returncode == 0
    assert re.search(r"^node4\s+198\.18\.\d+\.4\s+vxlab\d-node4\s+[0-9a-f:]{17}\s+\d+$", proc.stdout, re.M)


def test_up_twice_rebuilds_calico_custom_port(lab_4, tmp_path):
    lab, _ = lab_4
    state = lab.up(nodes=3, preset="calico", port=8475, inventory_path=str(tmp_path / "calico.yaml"))
    assert len(state.nodes) == 3 and not Path(lab_4[1].inventory_path).exists()
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=5).stdout
    assert not any(line.startswith(f"vxlab{TEST_INSTANCE}-node4") for line in netns.splitlines())
    info = json.loads(lab.exec("node2", ["ip", "-d", "-j", "link", "show", "vxlan.calico"]).stdout)[0]
    assert (info["linkinfo"]["info_data"]["id"], info["linkinfo"]["info_data"]["port"]) == (4096, 8475)
    assert overlay_broken(state) == set()
    notes = json.loads(lab.exec("node1", ["kubectl", "get", "nodes", "-o", "json"]).stdout)["items"][1]["metadata"][
        "annotations"]
    assert "projectcalico.org/VXLANTunnelMACAddr" not in notes  # a Linux calico-node never writes it
    assert info["address"] == "66:2d:bf:44:a6:8b"  # felix's MAC for node2: 0x66 + sha1("node2")[0:5]
    assert notes["projectcalico.org/IPv4VXLANTunnelAddr"] == state.node("node2").vtep_ip
    state = lab.fault(["blocked-port@node3"])
    assert overlay_broken(state) == {"13", "31", "23", "32"}


def test_down_leaves_nothing(lab_4):
    lab, _ = lab_4
    state = lab.fault(["no-python@node2", "unprivileged-user@node3", "kernel=4.19.90@node1"])
    assert {n.sshd_pid for n in state.nodes} <= set(_mounting(str(state.state_dir)))  # the faults' bind mounts
    pids = [n.sshd_pid for n in state.nodes] + [state.etcd_pid]
    lab.down()
    assert nothing_left(TEST_INSTANCE) == []
    assert not Path(state.inventory_path).exists()
    assert _mounting(str(state.state_dir)) == []
    for pid in pids:
        if pid:
            status = Path(f"/proc/{pid}/status")
            assert not status.exists() or "State:\tZ" in status.read_text()
    lab.down()  # idempotent
    with pytest.raises(LabError, match="not up"):
        lab.fault(["blocked-port@node2"])


def _mounting(source_dir: str) -> list[int]:
    """PIDs whose mount namespace holds a bind mount of a file under source_dir."""
    found = []
    for mountinfo in Path("/proc").glob("[0-9]*/mountinfo"):
        try:
            lines = mountinfo.read_text().splitlines()
        except OSError:  # the process just exited
            continue
        if any(line.split()[3].startswith(source_dir + "/") for line in lines):
            found.append(int(mountinfo.parent.name))
    return found
