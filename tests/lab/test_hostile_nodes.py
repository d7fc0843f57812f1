"""Issue 20 end to end: hostile or broken nodes in the real lab, the suite run as a user runs it. Under each
one the run ends within its limits, the bad node costs only its own results (with a clear code and
message), every other result is the healthy run's, and summary.json, junit.xml and the Allure results are
written. With become passwords in use (sudo with a password, NOPASSWD with and without one in the
inventory) nothing a run writes holds a secret."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from tests.lab.lab_fixtures import lab_4
from tests.lab.suite_runner import SuiteRun, run_suite
from tests.lab.test_secrets import everything_written
from vxlan_conformance.lab.faults import SUDO_PASSWORD, SUDO_USER

pytestmark = pytest.mark.root
__all__ = ["lab_4"]  # the fixture is used by name

NODES = ["node1", "node2", "node3", "node4"]
LIMITS = ("--connect-timeout", "3", "--command-timeout", "20")
LOGIN_PASSWORD = "Pw-91c7e2-login"


def verdicts(result: SuiteRun, leave_out: str | None = None) -> set[tuple[str, str, str, tuple[str, ...]]]:
    """(check, subject, status, codes) of every result whose subject does not involve `leave_out`."""
    assert result.summary is not None, result.output[-3000:]
    return {(r["check"], r["subject"], r["status"], tuple(r["codes"])) for r in result.summary["results"]
            if leave_out is None or leave_out not in r["subject"].split("->")}


def assert_reports_written(result: SuiteRun) -> None:
    assert result.summary is not None, result.output[-3000:]
    assert (result.reports / "junit.xml").stat().st_size > 0
    assert any((result.reports / "allure-results").glob("*-result.json"))
    assert "Traceback" not in result.output and "INTERNALERROR" not in result.output, result.output[-3000:]


@pytest.fixture(scope="module")
def healthy(lab_4, tmp_path_factory) -> SuiteRun:
    _, state = lab_4
    result = run_suite(state.inventory_path, tmp_path_factory.mktemp("healthy") / "reports", *LIMITS, workers="0")
    assert result.exit_code == 0, result.output[-3000:]
    return result


def inventory_with(state, path: Path, node_vars: dict[str, dict], all_vars: dict | None = None) -> Path:
    inventory = yaml.safe_load(Path(state.inventory_path).read_text())
    inventory["all"]["vars"].update(all_vars or {})
    for node, values in node_vars.items():
        inventory["all"]["hosts"][node].update(values)
    path.write_text(yaml.safe_dump(inventory))
    return path


def run_with(lab_4, tmp_path: Path, faults: list[str], inventory: Path | None = None) -> tuple[SuiteRun, float]:
    lab, state = lab_4
    try:
        lab.fault(faults)
        started = time.monotonic()
        result = run_suite(inventory or state.inventory_path, tmp_path / "reports", *LIMITS, workers="0")
        return result, time.monotonic() - started
    finally:
        lab.clear_faults()


def message_of(result: SuiteRun, subject: str) -> str:
    return next(r["message"] for r in result.summary["results"] if r["subject"] == subject and r["status"] != "passed")


@pytest.mark.parametrize("kind,message", [("facts-flood", "printed more than 64 MiB"),
                                          ("facts-markers", None)])
def test_node_answering_facts_with_oversized_or_malformed_output_costs_only_itself(
        lab_4, healthy, tmp_path, kind, message):
    result, elapsed = run_with(lab_4, tmp_path, [f"hostile={kind}@node2"])
    assert_reports_written(result)
    assert elapsed < 20  # a healthy run takes ~3 s; the old parser held the GIL ~50 s on facts-markers
    assert verdicts(result, "node2") == verdicts(healthy, "node2")
    assert verdicts(result, "node2") != verdicts(result)  # node2 has results of its own, and some failed
    assert any(status != "passed" for _, subject, status, _ in verdicts(result) if subject == "node2")
    if message:
        assert message in message_of(result, "node2"), message_of(result, "node2")


@pytest.mark.parametrize("kind", ["agent-flood", "agent-garbage"])
def test_node_whose_agent_floods_or_answers_garbage_costs_only_its_pairs(lab_4, healthy, tmp_path, kind):
    result, elapsed = run_with(lab_4, tmp_path, [f"hostile={kind}@node3"])
    assert_reports_written(result)
    assert elapsed < 30
    assert verdicts(result, "node3") == verdicts(healthy, "node3")
    failed = {(subject, codes) for check, subject, status, codes in verdicts(result)
              if check == "datapath" and status != "passed"}
    assert {subject for subject, _ in failed} == {f"{a}->{b}" for a in NODES for b in NODES
                                                   if a != b and "node3" in (a, b)}
    # node3's own probes and the pairs into it (no capture, no echo responder there) are MESH_FAILED: the
    # agent failed, no network hop did
    assert {codes for _, codes in failed} == {("MESH_FAILED",)}, failed


def test_view_command_flooding_costs_the_view_only(lab_4, healthy, tmp_path):
    result, elapsed = run_with(lab_4, tmp_path, ["hostile=kubectl-flood@node1"])
    assert_reports_written(result)
    assert elapsed < 30
    assert ("cluster-view", "cluster", "failed", ("VIEW_UNAVAILABLE",)) in verdicts(result)
    assert "printed more than" in message_of(result, "cluster")
    datapath = {v for v in verdicts(result) if v[0] == "datapath"}
    assert datapath == {v for v in verdicts(healthy) if v[0] == "datapath"}


def test_man_in_the_middle_is_refused_even_with_strict_host_key_checking_no(lab_4, healthy, tmp_path):
    _, state = lab_4
    inventory = inventory_with(state, tmp_path / "hosts.yaml", {}, {
        "ansible_password": LOGIN_PASSWORD,
        "ansible_ssh_common_args": f"-o StrictHostKeyChecking=no -o UserKnownHostsFile={state.known_hosts_path}"})
    result, elapsed = run_with(lab_4, tmp_path, ["mitm@node2"], inventory)
    assert_reports_written(result)
    assert elapsed < 30
    assert verdicts(result, "node2") == verdicts(healthy, "node2")
    assert "HOST KEY CHANGED" in message_of(result, "node2")
    texts = everything_written(result.reports, result.output)
    assert [name for name, text in texts.items() if LOGIN_PASSWORD in text] == []


def test_become_passwords_with_and_without_nopasswd_sudo(lab_4, healthy, tmp_path):
    """node2: sudo with a password; node3: NOPASSWD sudo and a become password in the inventory (sudo does
    not read it: it must not become the agent's first line); node4: NOPASSWD and no become password."""
    _, state = lab_4
    become = {"ansible_user": SUDO_USER, "ansible_become": True}
    inventory = inventory_with(state, tmp_path / "hosts.yaml", {
        "node2": {**become, "ansible_become_password": SUDO_PASSWORD},
        "node3": {**become, "ansible_become_password": SUDO_PASSWORD},
        "node4": become})
    result, elapsed = run_with(lab_4, tmp_path, ["sudo-user=password@node2", "sudo-user=nopasswd@node3,node4"],
                               inventory)
    assert_reports_written(result)
    assert result.exit_code == 0, result.output[-3000:]
    assert verdicts(result) == verdicts(healthy)
    texts = everything_written(result.reports, result.output)
    assert [name for name, text in texts.items() if SUDO_PASSWORD in text] == []
