"""reports/summary.json (contract: schema vxlan-conformance/summary/v1) and the console summary."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from vxlan_conformance.model.result import CheckResult
from vxlan_conformance.model.rundata import RunData

SCHEMA = "vxlan-conformance/summary/v1"
STATUSES = ("passed", "failed", "skipped", "error")


def status_of(report: pytest.TestReport) -> str | None:
    """The summary status of one report, or None when the test's verdict comes in a later phase."""
    if report.when == "call":
        return "skipped" if report.skipped else report.outcome
    if report.failed:
        return "error"
    if report.skipped and report.when == "setup":
        return "skipped"
    return None


def entries(report: pytest.TestReport, status: str, results: list[CheckResult]) -> list[dict[str, Any]]:
    """One entry per judged subject. A test that judged several (grouped pairs) gives each its own
    status: passed without codes, error for NODE_UNREACHABLE, else the test's status."""
    if len(results) == 1:
        return [{**results[0].entry(), "status": status}]
    if results:
        return [{**r.entry(), "status": _own_status(r, status)} for r in results]
    check, subject = check_and_subject(report.nodeid)
    message = ""
    if report.longrepr is not None and status != "passed":
        text = report.longreprtext.strip().splitlines()
        message = text[-1] if text else ""
    return [{"check": check, "subject": subject, "status": status, "codes": [], "message": message,
             "remediation": ""}]


def _own_status(result: CheckResult, test_status: str) -> str:
    if not result.codes:
        return "passed"
    return "error" if "NODE_UNREACHABLE" in result.codes else test_status


def check_and_subject(nodeid: str) -> tuple[str, str]:
    """`suites/test_vtep.py::test_mac_unique[node2]` -> ("mac-unique", "node2")."""
    name = nodeid.rsplit("::", 1)[-1]
    base, _, param = name.partition("[")
    return base.removeprefix("test_").replace("_", "-"), param.rstrip("]")


def write(path: Path, run: RunData, entries: list[dict[str, Any]], *, duration_s: float) -> None:
    counts = dict.fromkeys(STATUSES, 0)
    for item in entries:
        counts[item["status"]] += 1
    ordered = [{key: item[key] for key in ("check", "subject", "status", "codes", "message", "remediation")}
               for item in entries]
    document = {"schema": SCHEMA, "inventory": run.inventory_path, "started": run.started,
                "duration_s": round(duration_s, 2), "counts": counts, "results": ordered}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n")


def print_console(reporter: Any, entries: list[dict[str, Any]]) -> None:
    """Failures grouped by diagnosis code, with the affected nodes and pairs."""
    by_code: dict[str, list[str]] = defaultdict(list)
    for item in entries:
        if item["status"] in ("failed", "error"):
            for code in item["codes"] or ["(no code)"]:
                by_code[code].append(item["subject"])
    if not by_code:
        return
    reporter.write_sep("=", "vxlan-conformance: failures by diagnosis code")
    for code in sorted(by_code):
        subjects = sorted(dict.fromkeys(by_code[code]))
        shown = ", ".join(subjects[:12]) + (f", ... (+{len(subjects) - 12})" if len(subjects) > 12 else "")
        reporter.write_line(f"{code:24} {len(subjects):4}  {shown}")
