"""How a thin suite test turns a CheckResult into a pass, a failure, an error or a skip.

The suite test calls `enforce(request, result)`. The verdict travels to the controller as a user property
(it survives pytest-xdist), where plugin/session.py builds summary.json from it.
"""

from __future__ import annotations

from typing import Any

import pytest

from vxlan_conformance.model.result import CheckResult, indent
from vxlan_conformance.plugin.allure_test import attach_verdict
from vxlan_conformance.report.titles import check_and_subject

PROPERTY = "vxlan"
SESSION = "vxlan-session"  # the name the suite session (plugin/session.py) is registered under


def session_of(config: pytest.Config) -> Any:
    """The registered SuiteSession (plugin/session.py), or None outside suite runs."""
    return config.pluginmanager.get_plugin(SESSION)


def record(node: pytest.Item, result: CheckResult) -> None:
    """Attach the verdict to the test item so the controller sees it (also under xdist)."""
    node.user_properties.append((PROPERTY, result.to_json()))
    session = session_of(node.config)
    attach_verdict(node, result, session.run if session is not None else None)


def enforce(request: pytest.FixtureRequest, result: CheckResult) -> None:
    """Record the result, then fail the test with the full diagnosis when it did not pass.

    Called from a fixture (e.g. the node is unreachable), the same failure makes the test an error.
    """
    enforce_all(request, [result])


def enforce_all(request: pytest.FixtureRequest, results: list[CheckResult]) -> None:
    """One test judging several subjects (the directed pairs of one sender, on large clusters): every
    verdict is recorded on its own, and the test fails with the failing ones grouped by code."""
    session = session_of(request.config)
    cni = session.run.overlay.get("cni") if session is not None and session.run is not None else None
    for result in results:
        result.values.setdefault("cni", cni)
        record(request.node, result)
    failed = [r for r in results if r.codes]
    if not failed and results and all(r.skipped for r in results):
        pytest.skip(results[0].skipped)
    if len(failed) == 1:
        pytest.fail(failed[0].failure_text(), pytrace=False)
    if failed:
        pytest.fail(_grouped_failure(failed), pytrace=False)


def _grouped_failure(failed: list[CheckResult]) -> str:
    by_code: dict[tuple[str, ...], list[CheckResult]] = {}
    for result in failed:
        by_code.setdefault(result.codes, []).append(result)
    parts = [f"{len(failed)} subjects failed"]
    for codes, group in by_code.items():
        parts.append(f"[{', '.join(codes)}] {', '.join(r.subject for r in group)}")
        parts.append(indent(group[0].failure_text()))
    return "\n".join(parts)


def from_report(user_properties: list[tuple[str, Any]]) -> list[CheckResult]:
    return [CheckResult.from_json(value) for key, value in user_properties if key == PROPERTY]


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
