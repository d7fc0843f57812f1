"""One check's verdict, and how a thin pytest test turns it into a pass, a failure or an error.

A check in checks/ returns a CheckResult; the suite test calls `enforce(request, result)`. The
verdict travels to the controller as a user property (it survives pytest-xdist), where plugin/session.py builds
summary.json from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from vxlan_conformance import catalog

PROPERTY = "vxlan"


@dataclass
class CheckResult:
    """What a check found about one subject (a host, or a directed pair `A->B`)."""

    check: str
    subject: str
    codes: tuple[str, ...] = ()
    message: str = ""                       # what is wrong, where (empty when it passes)
    evidence: str = ""                      # the lines of facts that prove it
    note: str = ""                          # said even when the check passes (e.g. kernel not on any list)
    values: dict[str, Any] = field(default_factory=dict)   # fills the remediation placeholders

    @property
    def passed(self) -> bool:
        return not self.codes

    def remediation(self) -> str:
        values = {k: v for k, v in self.values.items() if k != "cni"}
        return "\n".join(catalog.remediation(code, cni=self.values.get("cni"), **values)
                         for code in dict.fromkeys(self.codes))

    def entry(self) -> dict[str, Any]:
        """The summary.json fields this result owns (status is added from the pytest outcome)."""
        return {"check": self.check, "subject": self.subject, "codes": list(self.codes),
                "message": self.message or self.note, "remediation": self.remediation()}

    def to_json(self) -> str:
        return json.dumps(vars(self), default=str)

    @classmethod
    def from_json(cls, text: str) -> CheckResult:
        data = json.loads(text)
        data["codes"] = tuple(data["codes"])
        return cls(**data)

    def failure_text(self) -> str:
        parts = [f"[{', '.join(self.codes)}] {self.subject}: {self.message}"]
        if self.evidence:
            parts.append("evidence:\n" + _indent(self.evidence))
        if remediation := self.remediation():
            parts.append("fix:\n" + _indent(remediation))
        return "\n".join(parts)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip().splitlines())


def record(node: pytest.Item, result: CheckResult) -> None:
    """Attach the verdict to the test item so the controller sees it (also under xdist)."""
    node.user_properties.append((PROPERTY, result.to_json()))
    try:
        from vxlan_conformance.report import allure_attach
    except ImportError:  # reports are optional for the verdict itself
        return
    allure_attach(node, result)


def enforce(request: pytest.FixtureRequest, result: CheckResult) -> None:
    """Record the result, then fail the test with the full diagnosis when it did not pass.

    Called from a fixture (e.g. the node is unreachable), the same failure makes the test an error.
    """
    enforce_all(request, [result])


def enforce_all(request: pytest.FixtureRequest, results: list[CheckResult]) -> None:
    """One test judging several subjects (the directed pairs of one sender, on large clusters): every
    verdict is recorded on its own, and the test fails with the failing ones grouped by code."""
    session = request.config.pluginmanager.get_plugin("vxlan-session")
    cni = session.run.overlay.get("cni") if session is not None and session.run is not None else None
    for result in results:
        result.values.setdefault("cni", cni)
        record(request.node, result)
    failed = [r for r in results if r.codes]
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
        parts.append(_indent(group[0].failure_text()))
    return "\n".join(parts)


def from_report(user_properties: list[tuple[str, Any]]) -> list[CheckResult]:
    return [CheckResult.from_json(value) for key, value in user_properties if key == PROPERTY]
