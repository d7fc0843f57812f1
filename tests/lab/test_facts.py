"""vxlan_conformance.collect.facts end to end: the collect script run in a real network namespace and parsed.

Namespaces (reserved for these tests): fct-a (the node: veth eth0 198.19.201.1/24, flannel.1 VNI 1 port
8472 with 100.127.1.0/32, routes/neighbours/FDB for peers 2 and 3, kube-proxy/flannel NAT rules) and
fct-b (the veth peer). Both are deleted by the fixture's finalizer, also when a test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from vxlan_conformance.collect.facts import collect_script, parse, split_sections
from vxlan_conformance.collect.parsers import procfs
from vxlan_conformance.model.facts import NodeFacts
from vxlan_conformance.model.records import PythonInfo, Route

OUTPUTS = Path(__file__).resolve().parents[1] / "fixtures" / "outputs"
NODE, PEER = "fct-a", "fct-b"
DEVICE, PORT = "flannel.1", 8472
VTEP_MAC = "0e:00:00:fa:00:01"
PEER_MACS = {2: "0e:00:00:fa:00:02", 3: "0e:00:00:fa:00:03"}
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"  # what sshd gives a non-root user on Debian
PYTHON27 = Path("/root/.pyenv/versions/2.7.18/bin/python2.7")
TIMEOUT_S = 20

root = pytest.mark.root


def sh(*argv: str, stdin: str | None = None) -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout


def delete_namespaces() -> None:
    for name in (NODE, PEER):
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=TIMEOUT_S)


@pytest.fixture(scope="module")
def node():
    """The fct-a node with flannel-style VXLAN state; torn down whatever happens."""
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    delete_namespaces()
    try:
        sh("ip", "netns", "add", NODE)
        sh("ip", "netns", "add", PEER)
        sh("ip", "-n", NODE, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", PEER)
        sh("ip", "-n", NODE, "addr", "add", "198.19.201.1/24", "dev", "eth0")
        sh("ip", "-n", PEER, "addr", "add", "198.19.201.2/24", "dev", "eth0")
        sh("ip", "-n", NODE, "link", "set", "eth0", "up")
        sh("ip", "-n", PEER, "link", "set", "eth0", "up")
        sh("ip", "-n", NODE, "link", "add", DEVICE, "address", VTEP_MAC, "type", "vxlan", "id", "1",
           "local", "198.19.201.1", "dev", "eth0", "dstport", str(PORT), "nolearning")
        sh("ip", "-n", NODE, "link", "set", DEVICE, "up")
        sh("ip", "-n", NODE, "addr", "add", "100.127.1.0/32", "dev", DEVICE)
        for index, mac in PEER_MACS.items():
            sh("ip", "-n", NODE, "route", "add", f"100.127.{index}.0/24", "via", f"100.127.{index}.0", "dev", DEVICE,
               "onlink")
            sh("ip", "-n", NODE, "neigh", "add", f"100.127.{index}.0", "lladdr", mac, "dev", DEVICE, "nud",
               "permanent")
            sh("bridge", "-n", NODE, "fdb", "append", mac, "dev", DEVICE, "dst", f"198.19.201.{index}")
        sh("ip", "netns", "exec", NODE, "iptables-restore", stdin=(OUTPUTS / "live_rules_kube-fixed.v4").read_text())
        yield NODE
    finally:
        delete_namespaces()


def collect(
    path: str = SYSTEM_PATH, device: str = DEVICE, shell: tuple[str, ...] = ("/bin/sh",),
    user: tuple[str, ...] = (), **script_options,
) -> tuple[NodeFacts, str]:
    """Run the script in fct-a with a clean environment (as sshd would) and parse it."""
    script = collect_script(device, PORT, **script_options)
    argv = ["ip", "netns", "exec", NODE, *user, "/usr/bin/env", "-i", f"PATH={path}", *shell, "-c", script]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S)
    return parse(NODE, done.stdout, device), done.stdout


@root
@pytest.mark.parametrize("shell", [("/bin/sh",), ("/bin/bash", "--posix")], ids=["dash", "bash-posix"])
def test_collect_end_to_end(node, shell) -> None:
    facts, _ = collect(shell=shell)
    device = facts.device
    assert device is not None
    assert (device.name, device.mac, device.vni, device.port, device.local) == (
        DEVICE, VTEP_MAC, 1, PORT, "198.19.201.1")
    assert (device.dev, device.mtu, device.up, device.learning, device.udpcsum) == ("eth0", 1450, True, False, True)
    assert facts.underlay is not None and (facts.underlay.name, facts.underlay.mtu) == ("eth0", 1500)
    assert {(e.mac, e.dst) for e in facts.fdb} == {(mac, f"198.19.201.{i}") for i, mac in PEER_MACS.items()}
    assert {(n.ip, n.mac) for n in facts.neighbours} == {(f"100.127.{i}.0", mac) for i, mac in PEER_MACS.items()}
    assert Route(dst="100.127.3.0/24", via="100.127.3.0", dev=DEVICE, onlink=True) in facts.routes
    assert facts.offloads is not None and facts.offloads["tx-checksum-ip-generic"] == "on"
    assert (facts.nat.readable, facts.nat.random_fully, facts.nat.kube_mark_return) == (True, True, True)
    assert facts.firewall_port_rules == ["-A INPUT -s 198.19.201.3/32 -p udp -m udp --dport 8472 -j DROP",
                                         "ip saddr 198.19.201.3 udp dport 8472 counter packets 0 bytes 0 drop"]
    assert facts.udp_port_bound is True
    assert facts.udp_in_csum_errors == facts.udp_counters["InCsumErrors"] >= 0
    assert "tx_packets" in facts.device_counters
    assert set(facts.rp_filter) == {"all", "default", DEVICE, "eth0"}
    assert {"100.127.1.0", "198.19.201.1"} <= {a.address for a in facts.addresses}
    assert facts.kernel_release == os.uname().release
    assert facts.arch == os.uname().machine
    assert facts.hostname == os.uname().nodename
    assert facts.kernel_version == Path("/proc/version").read_text().strip()
    assert facts.os_release == procfs.parse_os_release(Path("/etc/os-release").read_text())
    assert facts.machine_id == Path("/etc/machine-id").read_text().strip()
    assert facts.uid == 0
    assert PythonInfo("/usr/bin/python3", sh("/usr/bin/python3", "-c", "import platform; "
                                             "print(platform.python_version())").strip()) in facts.python
    assert not {"ip", "bridge", "ethtool", "iptables-save", "nft"} & set(facts.absent_tools)
    assert facts.notes == []


@root
def test_missing_tools_are_reported_absent(node, tmp_path) -> None:
    for tool in ("uname", "cat", "id", "ip", "bridge", "timeout", "grep"):
        (tmp_path / tool).symlink_to(shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin"))
    (tmp_path / "python2").symlink_to(PYTHON27)
    facts, _ = collect(path=str(tmp_path), sbin_dirs=())
    assert {"ethtool", "iptables-save", "nft", "sudo", "nmcli", "udevadm"} <= set(facts.absent_tools)
    assert "ip" not in facts.absent_tools
    assert facts.offloads is None
    assert facts.nat.tool == "absent" and facts.nat.readable is False
    assert facts.sudo_ok is None
    assert facts.device is not None and facts.device.mac == VTEP_MAC
    assert facts.python == [PythonInfo(str(tmp_path / "python2"), "2.7.18")]
    assert not any("unparseable" in note for note in facts.notes)


@root
def test_text_fallback_equals_json(node, tmp_path) -> None:
    for tool in ("ip", "bridge"):
        real = shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin")
        shim = tmp_path / tool
        shim.write_text(
            "#!/bin/sh\n"  # an iproute2 without JSON, like CentOS 7's 3.10
            'for a in "$@"; do case $a in -j|-json) echo \'Option "-j" is unknown, try "ip -help".\' >&2; '
            f"exit 255;; esac; done\nexec {real} \"$@\"\n"
        )
        shim.chmod(0o755)
    text_facts, output = collect(path=f"{tmp_path}:{SYSTEM_PATH}")
    json_facts, _ = collect()
    assert split_sections(output)["link"].body.startswith("3: flannel.1: <")  # text, not JSON
    assert "ip -j unsupported: text parser" in text_facts.notes
    for name in ("device", "underlay", "addresses", "routes", "neighbours", "fdb"):
        assert getattr(text_facts, name) == getattr(json_facts, name), name
    assert json_facts.device is not None and json_facts.fdb


SNAPSHOT = [
    ["ip", "-d", "link", "show"], ["ip", "addr", "show"], ["ip", "route", "show", "table", "all"],
    ["ip", "neigh", "show"], ["bridge", "fdb", "show"], ["ethtool", "-k", DEVICE], ["ethtool", "-k", "eth0"],
    ["nft", "list", "ruleset"], ["sh", "-c", "grep . /proc/sys/net/ipv4/conf/*/rp_filter"],
]


def snapshot() -> list[str]:
    return [sh("ip", "netns", "exec", NODE, *argv) for argv in SNAPSHOT]


@root
def test_script_is_read_only(node) -> None:
    before = snapshot()
    collect()
    collect(path=SYSTEM_PATH, sbin_dirs=())
    assert snapshot() == before


@root
def test_unprivileged_user_gets_partial_facts(node) -> None:
    nobody = ("/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
    facts, _ = collect(user=nobody)
    assert facts.uid == 65534
    assert facts.sudo_ok in (False, None)
    assert facts.nat.tool == "iptables" and facts.nat.readable is False
    assert any(note.startswith("section iptables: rc=") for note in facts.notes)
    assert facts.device is not None and facts.device.mac == VTEP_MAC
    assert facts.offloads is not None  # ethtool -k needs no privilege


@root
def test_absent_device(node) -> None:
    facts, _ = collect(device="flannel.9")
    assert facts.device is None and facts.underlay is None
    assert facts.fdb == [] and facts.neighbours == [] and facts.offloads is None
    assert any(note.startswith("device flannel.9 absent") for note in facts.notes)
    assert facts.kernel_release and facts.routes


@root
def test_facts_round_trip_through_json(node) -> None:
    facts, _ = collect()
    assert NodeFacts.from_dict(json.loads(json.dumps(facts.to_dict()))) == facts


# --- without root: the saved output of a real run, damaged in the ways a network can damage it ---------

SAVED = (OUTPUTS / "live_collect-script-output.txt").read_text()


def test_saved_output_parses_completely() -> None:
    facts = parse("fct-cap", SAVED, DEVICE)
    assert facts.notes == []
    assert facts.device is not None and facts.device.mac == "0e:00:00:c1:00:01"
    assert len(facts.fdb) == 2 and len(facts.neighbours) == 2
    assert facts.nat.kube_mark_return and facts.udp_port_bound
    assert set(facts.raw) == set(split_sections(SAVED))


def test_truncated_output_keeps_what_arrived() -> None:
    cut = SAVED[: SAVED.index("@@vxc@@ snmp\n")]
    facts = parse("fct-cap", cut, DEVICE)
    assert facts.device is not None and facts.fdb
    assert any(note == "section snmp: missing from the output (script cut short?)" for note in facts.notes)
    assert facts.udp_in_csum_errors is None


def test_garbage_sections_become_notes() -> None:
    sections = split_sections(SAVED)
    broken = SAVED.replace(sections["link"].body, '[{"ifname": "flannel.1", broken')
    broken = broken.replace(sections["snmp"].body, "Udp: InDatagrams\nTcp: 1")
    facts = parse("fct-cap", broken, DEVICE)
    assert facts.device is None
    assert any(note.startswith("section link: unparseable (JSONDecodeError") for note in facts.notes)
    assert any(note.startswith("section snmp: unparseable (ValueError") for note in facts.notes)
    assert facts.routes  # other sections unaffected


@pytest.mark.parametrize("output", ["", "Last login: Mon\n", "@@vxc@@ link\n[", "\x00\xff" * 50])
def test_output_without_sections(output: str) -> None:
    facts = parse("node9", output, DEVICE)
    assert facts.device is None
    assert facts.notes and facts.notes[0].startswith("node9: no @@vxc@@ sections")


def test_crlf_output_from_a_pty() -> None:
    facts = parse("fct-cap", SAVED.replace("\n", "\r\n"), DEVICE)
    assert facts.device is not None and facts.device.mac == "0e:00:00:c1:00:01"
    assert facts.notes == []


@pytest.mark.parametrize(("device", "port", "message"), [
    ("flannel 1", 8472, "invalid VXLAN device name 'flannel 1'"),
    ("a-very-long-device-name", 8472, "invalid VXLAN device name"),
    ("$(reboot)/x", 8472, "invalid VXLAN device name"),
    ("flannel.1", 0, "invalid VXLAN port 0"),
    ("flannel.1", "8472", "invalid VXLAN port '8472'"),
])
def test_collect_script_rejects_bad_input(device, port, message) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("$", r"\$")):
        collect_script(device, port)


def test_device_name_is_shell_quoted() -> None:
    assert "D=flannel.1\n" in collect_script("flannel.1", 8472)
    assert "D='a$(x)'\n" in collect_script("a$(x)", 8472)  # a legal Linux name, inert in the script
