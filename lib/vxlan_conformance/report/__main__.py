"""`python -m vxlan_conformance.report html [--reports-dir DIR] [--history]`: reports/allure-results ->
reports/report.html, one file that opens from disk with
no network. --history keeps reports/history/ across runs (trends)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vxlan_conformance import PROJECT_ROOT
from vxlan_conformance.report.html import ReportError, generate_html


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vxlan_conformance.report", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    html = sub.add_parser("html", help="single-file offline HTML report from the Allure results")
    html.add_argument("--reports-dir", type=Path, default=PROJECT_ROOT / "reports",
                      help="where allure-results is and report.html goes (default reports/)")
    html.add_argument("--history", action="store_true",
                      help="feed and extend reports/history/history.jsonl (nightly trends)")
    args = parser.parse_args(argv)
    try:
        report = generate_html(args.reports_dir.resolve(), history=args.history)
    except ReportError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    print(f"report: {report.path} ({report.size // 1024} KiB, offline; analytics tags removed: {report.stripped})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
