"""A phase that raises (gather, predict, mesh) costs that phase's results, never the run: the run ends with an
error entry naming the phase, and summary.json, junit.xml and the Allure results are written. The suite is run
as a user runs it (a subprocess) against an inventory whose nodes refuse SSH on the loopback (no lab, no root);
tests/unit/plugin/phase_fault.py makes the phase raise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "Pw-0d4c2b-phase"
INVENTORY = f"""all:
  vars: {{ansible_port: 1, ansible_password: {PASSWORD}, vxlan_cluster_view: none}}
  hosts:
    node1: {{ansible_host: 127.0.0.1}}
    node2: {{ansible_host: 127.0.0.1}}
"""


@pytest.mark.parametrize("phase", ["gather", "predict", "mesh"])
def test_a_phase_that_raises_becomes_a_run_error_and_reports_are_written(tmp_path, phase):
    inventory = tmp_path / "hosts.yaml"
    inventory.write_text(INVENTORY)
    reports = tmp_path / "reports"
    command = [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider",
               "-p", "tests.unit.plugin.phase_fault", "--inventory", str(inventory), "--reports-dir", str(reports),
               "--connect-timeout", "2", "--allow-state-changes", "suites/"]
    env = {**os.environ, "VXLAN_TEST_PHASE_FAULT": phase, "VXLAN_TEST_PHASE_SECRET": PASSWORD}
    proc = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, env=env)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-3000:]  # tests failed (nodes unreachable); no internal error
    assert "Traceback" not in output and "INTERNALERROR" not in output, output[-3000:]
    summary = json.loads((reports / "summary.json").read_text())
    errors = [r for r in summary["results"] if r["check"] == "run"]
    assert [(r["subject"], r["status"]) for r in errors] == [(phase, "error")], errors
    assert errors[0]["message"].startswith(f"the {phase} phase failed (ValueError: unforeseen data"), errors
    assert PASSWORD not in errors[0]["message"] and PASSWORD not in output
    assert (reports / "junit.xml").stat().st_size > 0 and any((reports / "allure-results").glob("*-result.json"))
    assert (reports / "nodes.md").exists()
    others = [r for r in summary["results"] if r["check"] != "run"]
    assert others and summary["counts"]["error"] >= 1
