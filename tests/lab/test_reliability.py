"""Issue 8.1: faults during a run. A node dying, going silent or answering slowly, and the runner being
interrupted (SIGINT, SIGTERM) during the mesh: the run still ends within its limits, names the affected
node and pairs, keeps every other result, and writes summary.json and junit.xml."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.lab import suite_runner
from tests.lab.lab_fixtures import lab_4
from tests.lab.suite_runner import SuiteRun, run_suite

pytestmark = pytest.mark.root
__all__ = ["lab_4"]  # the fixture is used by name

NODES = ["node1", "node2", "node3", "node4"]
LIMITS = ("--connect-timeout", "2", "--command-timeout", "4")
MESH_LIMIT_S = 16  # vxlan_conformance.mesh.phase: the mesh gives up on silent agents after 15 s + 0.1 s per node


def touching(node: str) -> set[str]:
    return {f"{a}->{b}" for a in NODES for b in NODES if a != b and node in (a, b)}


def run_with_trigger(state, reports: Path, trigger: str, action: Callable[[subprocess.Popen], None],
                     *args: str) -> tuple[SuiteRun, float]:
    return suite_runner.run_with_trigger(state.inventory_path, reports, trigger, action, *LIMITS, *args)


def before_the_mesh(action: Callable[[], None]) -> Callable[[subprocess.Popen], None]:
    """The run is stopped (SIGSTOP) while `action` changes the world, so the change lands before the mesh
    starts however loaded the machine is (the mesh of 4 nodes can end before a fault is in place)."""
    def paused(proc: subprocess.Popen) -> None:
        proc.send_signal(signal.SIGSTOP)
        try:
            action()
        finally:
            proc.send_signal(signal.SIGCONT)
    return paused


def bad_subjects(result: SuiteRun) -> set[str]:
    return {subject for subject, _ in result.failures()}


def assert_reports_written(result: SuiteRun) -> None:
    assert result.summary is not None, result.output[-3000:]
    assert (result.reports / "junit.xml").stat().st_size > 0
    assert "Traceback" not in result.output, result.output[-3000:]


def test_node_crashing_before_the_mesh_is_named_and_the_rest_is_intact(lab_4, tmp_path):
    lab, state = lab_4
    try:
        result, elapsed = run_with_trigger(state, tmp_path / "reports", "view:",
                                           before_the_mesh(lambda: lab.crash("node3")))
    finally:
        lab.up(nodes=4, inventory_path=state.inventory_path)  # node3's sshd is gone for good
    assert_reports_written(result)
    assert result.exit_code == 1
    assert elapsed < MESH_LIMIT_S + 10
    assert bad_subjects(result) == touching("node3"), result.output[-3000:]
    passed = {r["subject"] for r in result.summary["results"] if r["status"] == "passed"}
    assert {"node1", "node2", "node4", "node1->node2", "node4->node1"} <= passed


def test_node_blackholed_before_the_mesh_is_named_and_the_rest_is_intact(lab_4, tmp_path):
    lab, state = lab_4
    try:
        result, elapsed = run_with_trigger(state, tmp_path / "reports", "view:",
                                           before_the_mesh(lambda: lab.fault(["blackhole@node2"])))
    finally:
        lab.clear_faults()
    assert_reports_written(result)
    assert result.exit_code == 1
    assert elapsed < MESH_LIMIT_S + 10
    assert bad_subjects(result) == touching("node2"), result.output[-3000:]


def run_with_fault(lab_4, reports: Path, fault: str) -> tuple[SuiteRun, float]:
    """The whole suite (no xdist) with `fault` in place from the start; the fault is cleared after."""
    lab, state = lab_4
    try:
        lab.fault([fault])
        started = time.monotonic()
        result = run_suite(state.inventory_path, reports, *LIMITS, workers="0")
        return result, time.monotonic() - started
    finally:
        lab.clear_faults()


def test_blackholed_node_is_unreachable_within_the_connect_timeout(lab_4, tmp_path):
    result, elapsed = run_with_fault(lab_4, tmp_path / "reports", "blackhole@node4")
    assert_reports_written(result)
    assert elapsed < 2 + 15
    assert ("node4", "NODE_UNREACHABLE") in result.failures(), result.output[-3000:]
    assert bad_subjects(result) == {"node4"} | touching("node4")


def test_slow_node_times_out_alone(lab_4, tmp_path):
    result, elapsed = run_with_fault(lab_4, tmp_path / "reports", "slow=30@node2")
    assert_reports_written(result)
    assert elapsed < 4 + 15
    assert ("node2", "NODE_UNREACHABLE") in result.failures(), result.output[-3000:]
    assert bad_subjects(result) == {"node2"} | touching("node2")
    assert "4 s" in next(r["message"] for r in result.summary["results"]
                         if r["subject"] == "node2" and r["status"] != "passed")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_mesh_still_writes_the_reports(lab_4, tmp_path, sig):
    _, state = lab_4

    def interrupt(proc: subprocess.Popen) -> None:
        time.sleep(0.3)  # the agents are running
        proc.send_signal(sig)

    result, elapsed = run_with_trigger(state, tmp_path / "reports", "mesh:", interrupt)
    assert_reports_written(result)
    assert result.exit_code == 2  # pytest's "interrupted"
    assert elapsed < 15
    [entry] = result.summary["results"]
    assert (entry["check"], entry["subject"], entry["status"]) == ("run", "mesh", "error")
    assert entry["message"].startswith(f"run interrupted ({sig.name}) during the mesh phase")
