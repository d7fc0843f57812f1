"""reports/allure-results -> ONE self-contained reports/report.html that opens from disk with no network.

Allure 3 (npm `allure`, pinned by package-lock.json, installed into node_modules/ by scripts/install.sh)
renders it with `allure awesome --single-file`; it hard-codes a Google Analytics tag, which is stripped
here, and the result is checked for any other reference that a browser would fetch from the network.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vxlan_conformance import PROJECT_ROOT
from vxlan_conformance.report.run_files import categories

ALLURE_BIN = PROJECT_ROOT / "node_modules" / ".bin" / "allure"
REPORT_NAME = "vxlan-conformance"
GROUP_BY = "epic,feature,story"
TIMEOUT_S = 300
HISTORY_FILE = Path("history") / "history.jsonl"
# every script element, found in one linear pass (the report inlines megabytes of JavaScript)
_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.I | re.S)
# what a browser fetches by itself: src/href of resources (not <a href>), CSS url(), @import
_FETCHING = re.compile(r"""<(?:script|img|link|iframe|source|video|audio|embed)\b[^>]*\b(?:src|href)\s*=\s*["']?"""
                       r"""(?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import\s+["']?(?:https?:)?//""", re.I)


class ReportError(Exception):
    """The report cannot be generated; the message is one line saying what to do."""


@dataclass(frozen=True)
class HtmlReport:
    path: Path
    size: int
    stripped: int   # analytics tags removed


def generate_html(reports_dir: Path, *, history: bool = False, allure_bin: Path = ALLURE_BIN) -> HtmlReport:
    results = reports_dir / "allure-results"
    if not results.is_dir() or not any(results.glob("*-result.json")):
        raise ReportError(f"{results}: no Allure results; run the suite first "
                          f"(pytest --inventory PATH --reports-dir {reports_dir})")
    if not allure_bin.exists():
        raise ReportError(f"{allure_bin}: the report tool is not installed; run scripts/install.sh "
                          f"(npm ci in {PROJECT_ROOT})")
    target = reports_dir / "report.html"
    with tempfile.TemporaryDirectory(prefix="vxlan-report-") as tmp:
        config = Path(tmp) / "allurerc.json"
        config.write_text(json.dumps({"name": REPORT_NAME, "categories": _awesome_categories()}))
        out = Path(tmp) / "out"
        command = [str(allure_bin), "awesome", str(results), "--config", str(config), "--output", str(out),
                   "--single-file", "--report-name", REPORT_NAME, "--group-by", GROUP_BY]
        if history:
            history_file = reports_dir / HISTORY_FILE
            history_file.parent.mkdir(parents=True, exist_ok=True)
            command += ["--history-path", str(history_file)]
        try:
            proc = subprocess.run(command, cwd=tmp, capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ReportError(f"{allure_bin}: no report after {TIMEOUT_S} s") from None
        page = out / "index.html"
        if proc.returncode != 0 or not page.exists():
            last = (proc.stderr or proc.stdout).strip().splitlines()
            raise ReportError(f"{allure_bin} awesome failed (exit {proc.returncode}): "
                              f"{last[-1] if last else 'no output'}")
        html, stripped = strip_analytics(page.read_text(encoding="utf-8"))
    if found := external_fetches(html):
        raise ReportError(f"{target}: the generated report still loads from the network: {found[0]!r}")
    tmp_target = target.with_suffix(".html.tmp")
    tmp_target.write_text(html, encoding="utf-8")
    tmp_target.replace(target)
    return HtmlReport(target, target.stat().st_size, stripped)


def strip_analytics(html: str) -> tuple[str, int]:
    """Remove the analytics loader (src on googletagmanager.com) and its inline `gtag(` configuration;
    returns the page and how many script elements were removed."""
    def keep(match: re.Match[str]) -> str:
        attributes, body = match.group(1), match.group(2)
        analytics = "googletagmanager.com" in attributes or (len(body) < 4096 and "gtag(" in body)
        return "" if analytics else match.group(0)

    stripped = _SCRIPT.sub(keep, html)
    return stripped, html.count("<script") - stripped.count("<script")


def external_fetches(html: str) -> list[str]:
    """Snippets where the page would fetch from another host when opened."""
    return [html[max(0, m.start() - 20):m.end() + 60] for m in _FETCHING.finditer(html)]


def _awesome_categories() -> list[dict]:
    """Allure 3 reads categories from its config (Allure 2 reads categories.json in the results)."""
    return [{**category, "groupByMessage": False} for category in categories()]
