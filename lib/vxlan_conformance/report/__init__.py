"""Reports for handover and nightly CI: Allure metadata and evidence per test, the mesh matrix picture and
node table per run, and one offline HTML file (`python -m vxlan_conformance.report html`).

The hooks here are called by result.record() (every verdict) and plugin/session.py (teardown of every
suite test, end of the run); scapy is imported only to write the pcap of a failing pair.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vxlan_conformance.model.result import CheckResult
from vxlan_conformance.model.rundata import RunData
from vxlan_conformance.report.allure_test import attach_verdict, describe_test
from vxlan_conformance.report.html import ReportError, generate_html
from vxlan_conformance.report.run_files import RunFiles, write_run_files

__all__ = ["allure_attach", "describe_test", "finish_run", "generate_html", "ReportError"]


def allure_attach(item: pytest.Item, result: CheckResult) -> None:
    """Links, steps and evidence of one verdict on the running Allure test."""
    session = item.config.pluginmanager.get_plugin("vxlan-session")
    attach_verdict(item, result, getattr(session, "run", None))


def finish_run(reports_dir: Path, allure_dir: Path | None, run: RunData, entries: list[dict[str, Any]], *,
               duration_s: float, progress: Callable[[str], None]) -> RunFiles:
    """Matrix, node table, Allure environment/categories. report.html is made on request
    (`python -m vxlan_conformance.report html`): a report.html of an earlier run is removed, so it is never stale."""
    files = write_run_files(reports_dir, allure_dir, run, entries, duration_s)
    (reports_dir / "report.html").unlink(missing_ok=True)
    if allure_dir is not None:
        progress(f"single-file HTML report: python -m vxlan_conformance.report html --reports-dir {reports_dir}")
    return files
