"""Reports for handover and nightly CI: Allure metadata and evidence per test, the mesh matrix picture and
node table per run, and one offline HTML file (`python -m vxlan_conformance.report html`).

The files of a whole run, written at its end by plugin/session.py; the Allure data of each test is
plugin/allure_test.py's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from vxlan_conformance.model.rundata import RunData
from vxlan_conformance.report.html import ReportError, generate_html
from vxlan_conformance.report.run_files import RunFiles, write_run_files

__all__ = ["finish_run", "generate_html", "ReportError"]


def finish_run(reports_dir: Path, allure_dir: Path | None, run: RunData, entries: list[dict[str, Any]], *,
               duration_s: float, progress: Callable[[str], None]) -> RunFiles:
    """Matrix, node table, Allure environment/categories. report.html is made on request
    (`python -m vxlan_conformance.report html`): a report.html of an earlier run is removed, so it is never stale."""
    files = write_run_files(reports_dir, allure_dir, run, entries, duration_s)
    (reports_dir / "report.html").unlink(missing_ok=True)
    if allure_dir is not None:
        progress(f"single-file HTML report: python -m vxlan_conformance.report html --reports-dir {reports_dir}")
    return files
