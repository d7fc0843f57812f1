"""The README's main command: a healthy lab is all green, and --incidents names every field incident."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.lab.suite_runner import LAB_INSTANCE, PROJECT_ROOT

pytestmark = pytest.mark.root


def _demo(tmp_path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "vxlan_conformance.demo", "--instance", str(LAB_INSTANCE),
               "--reports-dir", str(tmp_path), *args]
    return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)


def test_healthy_lab_is_all_green(tmp_path):
    proc = _demo(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["counts"]["failed"] == summary["counts"]["error"] == 0
    assert summary["counts"]["passed"] >= 4 * 10 + 12 * 4  # node checks and every pair's checks


def test_incidents_are_each_named(tmp_path):
    proc = _demo(tmp_path, "--incidents")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    table = proc.stdout[proc.stdout.index("named by the suite"):]
    assert table.count(" ok ") == 5 and "MISS" not in table, table
    for seed in ("000", "001", "002", "003", "004"):
        assert (tmp_path / "incidents" / seed / "summary.json").exists()
