"""Issue 4 end to end: each lab fault makes exactly its codes appear on exactly its subjects in
summary.json, running the suite as a user does (pytest -n auto against the lab inventory, a subprocess).
The datapath module is left out here: these are the checks that need no traffic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.lab.suite_runner import run_suite

pytestmark = pytest.mark.root

STATIC_SUITES = ["suites/test_access.py", "suites/test_view.py", "suites/test_vtep.py",
                 "suites/test_public_ip.py", "suites/test_peers.py", "suites/test_kernel.py"]

SCENARIOS = {
    "healthy": ([], set()),
    # seed 000: node3 cloned from node2; peers' FDB entry for the shared MAC points at node3 (last writer)
    "dup-vtep-mac": (["dup-vtep-mac@node2,node3"],
                     {("node2", "VTEP_MAC_DUPLICATE"), ("node3", "VTEP_MAC_DUPLICATE"),
                      ("node1->node2", "VTEP_MAC_DUPLICATE"), ("node4->node2", "VTEP_MAC_DUPLICATE")}),
    # the cause behind seed 000 on cloned VMs, caught while the MACs still differ
    "dup-machine-id": (["dup-machine-id@node2,node3"],
                       {("node2", "MACHINE_ID_DUPLICATE"), ("node3", "MACHINE_ID_DUPLICATE")}),
    # flannel#1330: NetworkManager lists flannel.1 as its own
    "nm-managed": (["nm-managed@node4"], {("node4", "VTEP_NM_MANAGED")}),
    # seed 001: node2's flannel took the NAT NIC's address
    "wrong-public-ip": (["wrong-public-ip@node2"],
                        {("node2", "PUBLIC_IP_MISMATCH"), ("node2", "VTEP_LOCAL_MISMATCH")}),
    # seed 003: the Kylin kernel that corrupts UDP checksums
    "kernel-ky10": (["kernel=4.19.90-52.49.v2207.ky10.x86_64@node2"], {("node2", "KERNEL_KNOWN_BAD")}),
    # seed 004: CentOS 7.6 kernel + kube-proxy's --random-fully + TX checksum offload on flannel.1
    "kernel-el7-nat": (["kernel=3.10.0-957.el7.x86_64@node2", "random-fully@node2", "offload=on@node2"],
                       {("node2", "CHECKSUM_OFFLOAD_RISK")}),
    # the same kernel without the NAT rule is not at risk
    "kernel-el7-no-nat": (["kernel=3.10.0-957.el7.x86_64@node2", "offload=on@node2"], set()),
    "stale-fdb": (["stale-fdb@node1->node2"], {("node1->node2", "FDB_WRONG_DST")}),
    "missing-fdb": (["missing-fdb@node3->node1"], {("node3->node1", "FDB_MISSING")}),
    "mtu": (["mtu=1400@node4"], {("node4", "MTU_MISMATCH")}),
}


@pytest.mark.parametrize("view", ["kubectl", "etcd"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_fault_names_exactly_its_codes(lab, tmp_path, scenario, view):
    faults, expected = SCENARIOS[scenario]
    state = lab.up(nodes=4, faults=faults, cluster_view=view,
                   inventory_path=str(tmp_path / "lab.yaml"))
    result = run_suite(state.inventory_path, tmp_path / "reports", *STATIC_SUITES)
    assert result.failures() == expected, result.output[-4000:]
    assert result.exit_code == (1 if expected else 0), result.output[-2000:]
    counts = result.summary["counts"]
    assert counts["passed"] > 0 and counts["error"] == 0
    # one SSH connection and ONE command per node for all of its facts; every pair checked, so no
    # table entry is left out of the run data
    counters = json.loads((tmp_path / "reports" / ".run" / "run.json").read_text())["counters"]
    assert counters == {"facts_commands": 4, "ssh_connections": 4, "peer_entries_dropped": 0}


def test_allowlist_policy_fails_unvalidated_kernels(lab, tmp_path):
    state = lab.up(nodes=3, faults=["kernel=4.19.90-52.22.v2207.ky10.x86_64@node1"],
                   inventory_path=str(tmp_path / "lab.yaml"))
    result = run_suite(state.inventory_path, tmp_path / "reports", "suites/test_kernel.py",
                       "--kernel-policy", "allowlist")
    # node1 runs the validated Kylin kernel from seed 003; the others run this machine's kernel
    assert result.failures() == {("node2", "KERNEL_NOT_VALIDATED"), ("node3", "KERNEL_NOT_VALIDATED")}


def test_unreachable_node_errors_and_others_pass(lab, tmp_path):
    state = lab.up(nodes=3, inventory_path=str(tmp_path / "lab.yaml"))
    lab.stop_sshd("node2")
    result = run_suite(state.inventory_path, tmp_path / "reports", "suites/test_access.py",
                       "--connect-timeout", "2")
    statuses = {(r["subject"], r["status"]) for r in result.summary["results"]}
    assert {s for s, st in statuses if st == "error"} == {"node2"}
    assert all(st == "passed" for s, st in statuses if s != "node2")
    assert {code for s, code in result.failures()} == {"NODE_UNREACHABLE"}


def test_host_key_settings_come_from_the_users_ssh_config(lab, tmp_path):
    """An inventory without vxlan_host_key_policy / vxlan_known_hosts: the user's ~/.ssh/config decides,
    as it does for Ansible's ssh; StrictHostKeyChecking no is named on every node it covers."""
    state = lab.up(nodes=2, inventory_path=str(tmp_path / "lab.yaml"))
    inventory = tmp_path / "own.yaml"
    inventory.write_text("".join(line for line in Path(state.inventory_path).read_text().splitlines(True)
                                 if "vxlan_host_key_policy" not in line and "vxlan_known_hosts" not in line))
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    config = home / ".ssh" / "config"
    runs = {}
    for name, settings in (("empty", ""), ("known", f"UserKnownHostsFile {state.known_hosts_path}"),
                           ("off", "StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null")):
        config.write_text(f"Host 198.18.*\n  {settings}\n")
        runs[name] = run_suite(inventory, tmp_path / name, "suites/test_access.py", env={"HOME": str(home)})
    assert {code for _, code in runs["empty"].failures()} == {"NODE_UNREACHABLE"}
    assert "host key" in runs["empty"].summary["results"][0]["message"]
    for name in ("known", "off"):
        assert runs[name].exit_code == 0, runs[name].output[-3000:]
    off_notes = {r["subject"]: r["message"] for r in runs["off"].summary["results"] if r["check"] == "ssh-reachable"}
    assert all("host key checking is OFF" in off_notes[node] for node in ("node1", "node2"))
    assert not any(r["message"] for r in runs["known"].summary["results"] if r["check"] == "ssh-reachable")


def test_site_kernel_list_validates_a_kernel(lab, tmp_path):
    """--kernel-list: the site's own list makes its validated kernel pass under the allowlist policy."""
    state = lab.up(nodes=2, inventory_path=str(tmp_path / "lab.yaml"))
    release = lab.exec("node1", ["uname", "-r"]).stdout.strip()
    site = tmp_path / "site-kernels.yaml"
    site.write_text("kernels:\n"
                    f"  - {{stream: upstream, match: {{exact: \"{release}\"}}, status: good, bug: site-validated,"
                    " confidence: verified, source: lab run}\n")
    result = run_suite(state.inventory_path, tmp_path / "reports", "suites/test_kernel.py",
                       "--kernel-policy", "allowlist", "--kernel-list", str(site))
    assert result.exit_code == 0, result.output[-3000:]
