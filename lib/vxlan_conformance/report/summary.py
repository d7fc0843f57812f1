"""reports/summary.json (contract: schema vxlan-conformance/summary/v1) and the console summary."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from vxlan_conformance.model.rundata import RunData

SCHEMA = "vxlan-conformance/summary/v1"
STATUSES = ("passed", "failed", "skipped", "error")


def write(path: Path, run: RunData, entries: list[dict[str, Any]], *, duration_s: float) -> None:
    counts = dict.fromkeys(STATUSES, 0)
    for item in entries:
        counts[item["status"]] += 1
    ordered = [{key: item[key] for key in ("check", "subject", "status", "codes", "message", "remediation")}
               for item in entries]
    document = {"schema": SCHEMA, "inventory": run.inventory_path, "started": run.started,
                "duration_s": round(duration_s, 2), "counts": counts, "checks": applicability(run, entries),
                "results": ordered}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n")


def applicability(run: RunData, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Which checks ran for the run's CNI, and which do not apply to it and why (cni not_applicable)."""
    from vxlan_conformance import checks, cni  # noqa: F401 - importing checks registers them all

    model = cni.of_run(run)
    reasons = {check_id: why for check_id in checks.REGISTRY if (why := model.not_applicable(check_id, run))}
    ran = sorted({e["check"] for e in entries if e["check"] not in reasons and e["status"] != "skipped"})
    return {"cni": model.name, "ran": ran, "not_applicable": reasons}


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
