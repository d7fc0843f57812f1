"""The opt-in MAC prediction (seed 000 before flannel runs): it judges duplicates, and it leaves no
device behind, also when creating or reading the device fails half-way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.lab.suite_runner import run_suite
from vxlan_conformance.checks import predict
from vxlan_conformance.model.rundata import RunData


def _run(macs: dict[str, str], errors: dict[str, str] | None = None) -> RunData:
    return RunData(inventory_path="x", started="", nodes=list(macs) + list(errors or {}),
                   addresses={}, overlay={"device": "flannel.1"}, predicted_macs=macs,
                   predict_errors=errors or {}, options={"predict": True})


def test_cloned_nodes_predicted_duplicate():
    run = _run({"n1": "fe:22:77:eb:2f:a4", "n2": "fe:22:77:eb:2f:a4", "n3": "0a:00:00:00:00:03"})
    assert predict.mac_unique(run, "n1").codes == ("VTEP_MAC_DUPLICATE",)
    assert "n1, n2" in predict.mac_unique(run, "n2").message
    assert predict.mac_unique(run, "n3").passed


def test_prediction_error_is_its_own_code():
    run = _run({"n1": "0a:00:00:00:00:01"}, {"n2": "n2: cannot create a test VXLAN device (x)"})
    assert predict.mac_unique(run, "n2").codes == ("PREDICT_FAILED",)


def _vxcp_devices(lab, state) -> list[str]:
    found = []
    for node in state.nodes:
        out = lab.exec(node.name, ["ip", "-o", "link", "show"]).stdout
        found += [f"{node.name}: {line.split(':')[1].strip()}" for line in out.splitlines() if ": vxcp" in line]
    return found


@pytest.mark.root
def test_prediction_on_lab_unique_and_cleaned_up(lab, tmp_path):
    state = lab.up(nodes=3, inventory_path=str(tmp_path / "lab.yaml"))
    skipped = run_suite(state.inventory_path, tmp_path / "r0", "suites/test_predict.py")
    assert skipped.summary["counts"]["skipped"] == 3 and skipped.exit_code == 0
    result = run_suite(state.inventory_path, tmp_path / "r1", "suites/test_predict.py", "--allow-state-changes")
    assert result.exit_code == 0 and result.summary["counts"]["passed"] == 3, result.output[-2000:]
    macs = json.loads((tmp_path / "r1" / ".run" / "run.json").read_text())["predicted_macs"]
    assert len(set(macs.values())) == 3
    assert _vxcp_devices(lab, state) == []


@pytest.mark.root
def test_prediction_cleans_up_when_interrupted(lab, tmp_path):
    """The node's shell is killed right after creating the device (a shim udevadm TERMs it)."""
    state = lab.up(nodes=2, inventory_path=str(tmp_path / "lab.yaml"))
    shim = Path(state.state_dir) / "nodes" / "node2" / "bin" / "udevadm"
    shim.write_text("#!/bin/sh\nkill -TERM $PPID\n")
    shim.chmod(0o755)
    try:
        result = run_suite(state.inventory_path, tmp_path / "r", "suites/test_predict.py",
                           "--allow-state-changes")
    finally:
        shim.unlink()
    assert result.failures() == {("node2", "PREDICT_FAILED")}, result.output[-2000:]
    assert _vxcp_devices(lab, state) == []
