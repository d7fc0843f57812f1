"""Issue 8.6: repeatability. 20 consecutive full runs (all suites, the mesh included) on a healthy 4-node
lab give 20 identical verdicts: every check on every node and pair passes every time, no flaky result."""

from __future__ import annotations

import pytest

from tests.lab.lab_fixtures import lab_4
from tests.lab.suite_runner import run_suite

pytestmark = pytest.mark.root
__all__ = ["lab_4"]  # the fixture is used by name

RUNS = 20


def verdict(summary: dict) -> frozenset[tuple[str, str, str, tuple[str, ...]]]:
    return frozenset((r["check"], r["subject"], r["status"], tuple(r["codes"])) for r in summary["results"])


def test_twenty_runs_twenty_identical_verdicts(lab_4, tmp_path):
    _, state = lab_4
    verdicts, odd = [], []
    for index in range(RUNS):
        result = run_suite(state.inventory_path, tmp_path / f"run{index}", workers="0")
        assert result.summary is not None, result.output[-3000:]
        verdicts.append(verdict(result.summary))
        if result.exit_code != 0:
            odd.append(f"run {index}: exit {result.exit_code}: {sorted(result.failures())}")
    assert odd == []
    assert len(set(verdicts)) == 1
    assert len(verdicts[0]) > 90
    assert {status for _, _, status, _ in verdicts[0]} <= {"passed", "skipped"}  # opt-in checks skip
