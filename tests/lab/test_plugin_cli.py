"""`--inventory PATH` as users type it: with a space or `=`, and a path outside the project. pytest picks
its rootdir before plugins load; the plugin must still find the project's pytest.ini."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.lab.suite_runner import PROJECT_ROOT, run_suite

REFUSED = """all:
  vars:
    vxlan_cluster_view: none
    vxlan_host_key_policy: off
  hosts:
    n1: {ansible_host: 127.0.0.1, ansible_port: 1}
"""


@pytest.fixture
def outside(tmp_path_factory):
    """An inventory outside the project whose only node refuses connections (loopback, port 1)."""
    folder = tmp_path_factory.mktemp("elsewhere")
    (folder / "hosts.yaml").write_text(REFUSED)
    return folder / "hosts.yaml"


@pytest.mark.parametrize("form", ["space", "equals"])
def test_inventory_outside_project_both_forms(outside, tmp_path, form):
    reports = tmp_path / "reports"
    args = ["--inventory", str(outside)] if form == "space" else [f"--inventory={outside}"]
    command = [sys.executable, "-m", "pytest", "-n", "2", *args, "--reports-dir", str(reports),
               "-p", "no:cacheprovider", "suites/test_access.py", "--connect-timeout", "2"]
    proc = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert "unrecognized arguments" not in out
    assert f"rootdir: {PROJECT_ROOT}" in out and "configfile: pytest.ini" in out, out[-2000:]
    assert proc.returncode == 1, out[-2000:]
    summary = (reports / "summary.json").read_text()
    assert '"NODE_UNREACHABLE"' in summary and "connection refused" in summary


def test_ini_plugin_blocks_hold_for_an_inventory_outside(outside, tmp_path):
    """`pytest -n auto --inventory PATH` with no test path: pytest loads plugins before the plugin finds
    pytest.ini; the ini's `-p no:benchmark` must still hold (pytest-benchmark, installed here, warns
    under xdist whenever it is active)."""
    pytest.importorskip("pytest_benchmark")
    command = [sys.executable, "-m", "pytest", "-n", "2", "--inventory", str(outside), "--reports-dir",
               str(tmp_path / "reports"), "-p", "no:cacheprovider", "--connect-timeout", "2"]
    proc = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "NODE_UNREACHABLE" in out, out[-2000:]
    assert "PytestBenchmarkWarning" not in out, out[-2000:]


@pytest.mark.parametrize(("plugin", "off", "on"), [("allure_pytest", "allure-results", "junit.xml"),
                                                   ("junitxml", "junit.xml", "allure-results")])
def test_report_plugin_switched_off(outside, tmp_path, plugin, off, on):
    """`-p no:allure_pytest` / `-p no:junitxml` run without that report (and drop a stale one)."""
    reports = tmp_path / "reports"
    (reports / "allure-results").mkdir(parents=True)
    (reports / "junit.xml").write_text("<stale/>")
    command = [sys.executable, "-m", "pytest", "-n", "2", "--inventory", str(outside), "--reports-dir",
               str(reports), "-p", "no:cacheprovider", "-p", f"no:{plugin}", "--connect-timeout", "2",
               "suites/test_access.py"]
    proc = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "INTERNALERROR" not in out, out[-2000:]
    assert "NODE_UNREACHABLE" in (reports / "summary.json").read_text()
    assert not (reports / off).exists()
    if on == "junit.xml":
        assert "NODE_UNREACHABLE" in (reports / on).read_text()
    else:
        assert list((reports / on).glob("*-result.json"))


@pytest.mark.parametrize("flag", ["--help", "--markers"])
def test_informational_run_keeps_the_last_reports(outside, tmp_path, flag):
    reports = tmp_path / "reports"
    (reports / "allure-results").mkdir(parents=True)
    (reports / "junit.xml").write_text("<last-run/>")
    command = [sys.executable, "-m", "pytest", flag, "--inventory", str(outside), "--reports-dir", str(reports),
               "-p", "no:cacheprovider"]
    proc = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]
    assert (reports / "junit.xml").read_text() == "<last-run/>" and (reports / "allure-results").is_dir()


def test_missing_inventory_is_usage_error(tmp_path):
    result = run_suite(tmp_path / "nope.yaml", tmp_path / "reports", "suites/test_access.py", workers="0")
    assert result.exit_code == 4
    lines = [line for line in result.output.splitlines() if line.startswith("ERROR")]
    assert len(lines) == 1 and "nope.yaml" in lines[0], result.output
    assert "Traceback" not in result.output


def test_bad_inventory_line_is_usage_error(tmp_path):
    bad = tmp_path / "site.ini"
    bad.write_text("[kube_node]\nnode[3:1]\n")
    result = run_suite(bad, tmp_path / "reports", "suites/test_access.py", workers="0")
    assert result.exit_code == 4 and "Traceback" not in result.output
    assert f"{bad}:2" in result.output, result.output
