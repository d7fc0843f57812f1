"""One check's verdict about one subject (a host, or a directed pair `A->B`).

A check in checks/ returns a CheckResult; the plugin records it on the test item and turns it into a
pass, a failure or a skip (plugin/verdicts.py). No pytest here: the model is shared by every layer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from vxlan_conformance import catalog


class NotApplicable(Exception):
    """Raised by a check that cannot judge this run (no cluster view, an opt-in phase not run): the
    check's result becomes a skip with this reason."""


@dataclass
class CheckResult:
    """What a check found about one subject (a host, or a directed pair `A->B`)."""

    subject: str
    codes: tuple[str, ...] = ()
    message: str = ""                       # what is wrong, where (empty when it passes)
    evidence: str = ""                      # the lines of facts that prove it
    note: str = ""                          # said even when the check passes (e.g. kernel not on any list)
    values: dict[str, Any] = field(default_factory=dict)   # fills the remediation placeholders
    check: str = ""                         # the check's id, set by checks/registry.py
    skipped: str = ""                       # why the check does not apply here (then nothing failed)

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
                "message": self.message or self.note or self.skipped or "", "remediation": self.remediation()}

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
            parts.append("evidence:\n" + indent(self.evidence))
        if remediation := self.remediation():
            parts.append("fix:\n" + indent(remediation))
        return "\n".join(parts)


def indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip().splitlines())
