"""Issue 8.3: every row of docs/bad-input.md, run as a user runs the suite (a subprocess): the exit code
is pytest's (4 usage error, 1 failures), the user sees one line naming the file or host and what to do,
and never a traceback."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.lab.lab_fixtures import lab_4
from tests.lab.suite_runner import SuiteRun, run_suite
from vxlan_conformance.lab.faults import LAB_USER

__all__ = ["lab_4"]  # the fixture is used by name

FAST = ("--connect-timeout", "3", "--command-timeout", "5")
PROJECT = Path(__file__).resolve().parents[2]

# row id -> (inventory text or None for the lab's, extra args, words of the one ERROR line)
USAGE_ERRORS = {
    "malformed-yaml": ("all:\n  hosts:\n    node1: {ansible_host: [\n", (), ["{inv}:4", "malformed YAML"]),
    "malformed-ini": ("[kube_node]\nnode1 ansible_host=198.18.0.1 =oops\n", (), ["{inv}:2", "key=value"]),
    "unknown-group": (None, ("--limit", "no_such_group"), ["{inv}", "'no_such_group' matches no host or group"]),
    "limit-matches-nothing": (None, ("--limit", "node9"), ["{inv}", "'node9' matches no host or group"]),
    "duplicate-host": ("[kube_node]\nnode1 ansible_host=198.18.0.1\nnode1 ansible_host=198.18.0.2\n", (),
                       ["{inv}:3", "host 'node1' is listed again", "keep one line per host"]),
    "unknown-vxlan-value": ("all:\n  vars: {vxlan_cni: weave}\n  hosts: {node1: {ansible_host: 198.18.0.1}}\n", (),
                            ["{inv}", "vxlan_cni='weave'", "use one of flannel, calico, cilium"]),
    "unknown-vxlan-setting": ("all:\n  vars: {vxlan_prot: 8472}\n  hosts: {node1: {ansible_host: 198.18.0.1}}\n",
                              (), ["{inv}", "unknown setting vxlan_prot", "did you mean vxlan_port?"]),
}


def one_error_line(result: SuiteRun) -> str:
    assert "Traceback" not in result.output, result.output[-3000:]
    lines = [line for line in result.output.splitlines() if line.startswith("ERROR:")]
    assert len(lines) == 1, result.output[-3000:]
    return lines[0]


def lab_inventory(state, tmp_path: Path, change: Callable[[dict], None] | None = None) -> Path:
    data = yaml.safe_load(Path(state.inventory_path).read_text())
    if change is not None:
        change(data["all"])
    path = tmp_path / "hosts.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("row", sorted(USAGE_ERRORS))
def test_usage_errors(tmp_path, row):
    text, args, words = USAGE_ERRORS[row]
    if text is None:  # a valid inventory: only the --limit is wrong, so no node is contacted
        text = "all:\n  hosts:\n    node1: {ansible_host: 198.18.0.1}\n"
    inventory = tmp_path / ("hosts.ini" if text.startswith("[") else "hosts.yaml")
    inventory.write_text(text)
    result = run_suite(inventory, tmp_path / "reports", *args, "suites/test_access.py", workers="0")
    assert result.exit_code == 4
    line = one_error_line(result)
    for word in words:
        assert word.format(inv=inventory) in line, line


def _drop_node4(inv: dict) -> None:
    del inv["hosts"]["node4"]
    del inv["children"]["kube_node"]["hosts"]["node4"]


def _wrong_known_host(state, tmp_path: Path) -> Callable[[dict], None]:
    """node1's known_hosts line carries node2's key: what a reinstalled node looks like under strict."""
    lines = Path(state.known_hosts_path).read_text().splitlines()
    node1, node2 = state.node("node1").address, state.node("node2").address
    swapped = [line for line in lines if not line.startswith(f"{node1} ")]
    swapped += [f"{node1} {line.split(' ', 1)[1]}" for line in lines if line.startswith(f"{node2} ")]
    path = tmp_path / "known_hosts"
    path.write_text("\n".join(swapped) + "\n")
    return lambda inv: inv["vars"].update(vxlan_known_hosts=str(path))


# row id -> (inventory change, suite, expected (subject, code) failures, words of the failure message)
NODE_ERRORS = {
    "unreadable-key": (lambda inv: inv["vars"].update(ansible_ssh_private_key_file="/nonexistent/id_ed25519"),
                       "suites/test_access.py", {(f"node{i}", "NODE_UNREACHABLE") for i in range(1, 5)},
                       ["key file /nonexistent/id_ed25519 not found", "fix ansible_ssh_private_key_file"]),
    "wrong-password": (lambda inv: (inv["vars"].pop("ansible_ssh_private_key_file"),
                                    inv["vars"].update(ansible_password="not-the-password")),
                       "suites/test_access.py", {(f"node{i}", "NODE_UNREACHABLE") for i in range(1, 5)},
                       ["authentication failed for user root"]),
    "kubectl-missing": (lambda inv: inv["vars"].update(vxlan_kubectl="no-such-kubectl"), "suites/test_view.py",
                        {("cluster", "VIEW_UNAVAILABLE")}, ["node1: kubectl not found", "set vxlan_kubectl"]),
    "kubectl-failing": (lambda inv: inv["vars"].update(vxlan_kubectl="false"), "suites/test_view.py",
                        {("cluster", "VIEW_UNAVAILABLE")}, ["node1: `false get nodes -o json` failed (exit 1)"]),
    "etcdctl-missing": (lambda inv: inv["vars"].update(vxlan_cluster_view="etcd", vxlan_etcdctl="no-such-etcdctl"),
                        "suites/test_view.py", {("cluster", "VIEW_UNAVAILABLE")},
                        ["node1: etcdctl not found", "set vxlan_etcdctl"]),
    "node-in-view-not-inventory": (_drop_node4, "suites/test_view.py", {("cluster", "VIEW_NODE_UNKNOWN")},
                                   ["advertises nodes that are not in the inventory: node4"]),
}


@pytest.mark.root
@pytest.mark.parametrize("row", [*sorted(NODE_ERRORS), "host-key-mismatch"])
def test_node_errors_fail_the_run_naming_the_host(lab_4, tmp_path, row):
    _, state = lab_4
    if row == "host-key-mismatch":
        change, suite = _wrong_known_host(state, tmp_path), "suites/test_access.py"
        expected, words = {("node1", "NODE_UNREACHABLE")}, ["node1", "HOST KEY CHANGED"]
    else:
        change, suite, expected, words = NODE_ERRORS[row]
    result = run_suite(lab_inventory(state, tmp_path, change), tmp_path / "reports", *FAST, suite, workers="0")
    assert result.exit_code == 1
    assert "Traceback" not in result.output, result.output[-3000:]
    assert result.failures() == expected, result.output[-3000:]
    messages = [r["message"] for r in result.summary["results"] if r["status"] in ("failed", "error")]
    assert all("\n" not in message for message in messages)
    for word in words:
        assert any(word in message for message in messages), messages


@pytest.mark.root
def test_node_in_inventory_not_in_view(lab_4, tmp_path):
    """A node the overlay does not know (here: an extra host at a lab address nobody answers on)."""
    _, state = lab_4

    def add_node5(inv: dict) -> None:
        inv["hosts"]["node5"] = {"ansible_host": "198.18.160.99"}
        inv["children"]["kube_node"]["hosts"]["node5"] = {}

    result = run_suite(lab_inventory(state, tmp_path, add_node5), tmp_path / "reports", *FAST,
                       "suites/test_access.py", "suites/test_vtep.py", workers="0")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert {subject for subject, _ in result.failures()} == {"node5"}, result.output[-3000:]
    assert ("node5", "NODE_UNREACHABLE") in result.failures()


def _pairs_with(node: str, count: int = 4) -> set[str]:
    names = [f"node{i}" for i in range(1, count + 1)]
    return {f"{a}->{b}" for a in names for b in names if a != b and node in (a, b)}


def _run_whole_suite(state, tmp_path: Path, change: Callable[[dict], None] | None = None) -> SuiteRun:
    """Every suite, `pytest -n auto`, as a user runs it; the run fails (1) but never crashes."""
    result = run_suite(lab_inventory(state, tmp_path, change), tmp_path / "reports", *FAST)
    assert result.exit_code == 1, result.output[-3000:]
    assert "Traceback" not in result.output, result.output[-3000:]
    return result


def _messages(result: SuiteRun, code: str) -> dict[str, str]:
    """subject -> message of every failed result carrying code; each one line."""
    found = {r["subject"]: r["message"] for r in result.summary["results"]
             if r["status"] in ("failed", "error") and code in (r["codes"] or [])}
    assert all("\n" not in message for message in found.values()), found
    return found


@pytest.mark.root
def test_node_without_python(lab_4, tmp_path):
    """Row node-without-python: the access suite names the node, the mesh leaves it out and says why."""
    lab, state = lab_4
    try:
        lab.fault(["no-python@node2"])
        result = _run_whole_suite(state, tmp_path)
    finally:
        lab.clear_faults()
    pairs = _pairs_with("node2")
    assert result.failures() == {("node2", "PYTHON_MISSING")} | {(p, "MESH_FAILED") for p in pairs}
    assert _messages(result, "PYTHON_MISSING") == {
        "node2": "node2: no Python 2.7 or 3.6+ for the node agent (found: none)"}
    mesh = _messages(result, "MESH_FAILED")
    assert all(mesh[p] == f"{p} was not probed: node2: no Python 2.7/3.6+ for the agent" for p in pairs), mesh
    assert "[PYTHON_MISSING] node2: node2: no Python" in result.output


@pytest.mark.root
def test_non_root_user_without_sudo(lab_4, tmp_path):
    """Row non-root-without-sudo: node3 is reached as a user that is not root and has no passwordless sudo
    (and the inventory sets no become): one PRIVILEGES_INSUFFICIENT naming node3, its pairs left out."""
    lab, state = lab_4
    try:
        lab.fault(["unprivileged-user@node3"])
        result = _run_whole_suite(state, tmp_path,
                                  lambda inv: inv["hosts"]["node3"].update(ansible_user=LAB_USER))
    finally:
        lab.clear_faults()
    pairs = _pairs_with("node3")
    assert result.failures() == {("node3", "PRIVILEGES_INSUFFICIENT")} | {(p, "MESH_FAILED") for p in pairs}
    (message,) = _messages(result, "PRIVILEGES_INSUFFICIENT").values()
    assert re.fullmatch(r"node3: connected as uid [1-9]\d*; (sudo -n is refused \(no passwordless sudo\)|"
                        r"sudo is not installed); the facts \(iptables-save, ethtool\) and the agent's raw sockets "
                        r"need root", message), message
    mesh = _messages(result, "MESH_FAILED")
    assert all(re.fullmatch(rf"{p} was not probed: node3: connected as uid [1-9]\d*, not root: the agent's raw "
                            r"sockets need root", mesh[p]) for p in pairs), mesh
    assert f"[PRIVILEGES_INSUFFICIENT] node3: {message}" in result.output


@pytest.mark.root
def test_non_root_user_become_refused(lab_4, tmp_path):
    """Row non-root-become-refused: the same user with `ansible_become: true`: sudo refuses, so node3 is
    unreachable for the suite, saying which user and what to allow; the other nodes are checked."""
    lab, state = lab_4
    try:
        lab.fault(["unprivileged-user@node3"])
        result = _run_whole_suite(state, tmp_path,
                                  lambda inv: inv["hosts"]["node3"].update(ansible_user=LAB_USER, ansible_become=True))
    finally:
        lab.clear_faults()
    assert result.failures() == {(s, "NODE_UNREACHABLE") for s in {"node3", *_pairs_with("node3")}}
    messages = set(_messages(result, "NODE_UNREACHABLE").values())
    assert len(messages) == 1, messages
    assert re.fullmatch(rf"node3 could not be reached: node3 \(\S+:22\): become failed for user {LAB_USER} "
                        r"\((sudo: a password is required|sudo is not installed)\); allow NOPASSWD sudo or set "
                        r"ansible_become_password / VXLAN_BECOME_PASSWORD", messages.pop())


def test_docs_table_lists_every_row():
    table = (PROJECT / "docs" / "bad-input.md").read_text()
    for row in [*USAGE_ERRORS, *NODE_ERRORS, "host-key-mismatch", "node-in-inventory-not-view", "node-without-python",
                "non-root-without-sudo", "non-root-become-refused"]:
        assert f"`{row}`" in table, row
