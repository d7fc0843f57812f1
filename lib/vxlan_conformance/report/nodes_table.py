"""The per-node table of a run (node, kernel, VTEP MAC, public IP, verdict) as Markdown and HTML: the page
a reader of a handover checks first to see which machines are not like the others."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from html import escape
from typing import Any

from vxlan_conformance.model.rundata import RunData


@dataclass(frozen=True)
class NodeRow:
    node: str
    address: str
    kernel: str
    vtep_mac: str
    public_ip: str            # what the overlay advertises for the node
    verdict: str              # "passed", or the failing codes
    failing_out: int          # failing checks of pairs the node sends on
    failing_in: int           # ... and receives on

    HEADERS = ("node", "address", "kernel", "VTEP MAC", "public IP (advertised)", "verdict",
               "failing pairs out / in")

    def cells(self) -> tuple[str, ...]:
        return (self.node, self.address, self.kernel, self.vtep_mac, self.public_ip, self.verdict,
                f"{self.failing_out} / {self.failing_in}")


def node_rows(run: RunData, entries: list[dict[str, Any]]) -> list[NodeRow]:
    codes: dict[str, list[str]] = defaultdict(list)
    out: dict[str, int] = defaultdict(int)
    into: dict[str, int] = defaultdict(int)
    for item in entries:
        if item["status"] not in ("failed", "error"):
            continue
        subject = item["subject"]
        if "->" in subject:
            sender, receiver = subject.split("->", 1)
            out[sender] += 1
            into[receiver] += 1
        elif subject in run.nodes:
            codes[subject].extend(item["codes"] or [item["check"]])
    rows = []
    for host in run.nodes:
        facts = run.facts.get(host)
        advertised = run.view.get(host)
        device = facts.device if facts else None
        public_ip = (advertised.public_ip_overwrite or advertised.public_ip) if advertised else None
        verdict = ", ".join(dict.fromkeys(codes[host])) or ("passed" if facts else "unreachable")
        rows.append(NodeRow(host, run.addresses.get(host, ""), (facts.kernel_release if facts else None) or "-",
                            (device.mac if device else None) or "-", public_ip or "-", verdict,
                            out[host], into[host]))
    return rows


def render_markdown(rows: list[NodeRow]) -> str:
    lines = ["# Nodes", "", "| " + " | ".join(NodeRow.HEADERS) + " |", "|" + "---|" * len(NodeRow.HEADERS)]
    lines += ["| " + " | ".join(markdown_text(cell) for cell in row.cells()) + " |" for row in rows]
    return "\n".join(lines) + "\n"


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()|~])")
_AUTOLINK = re.compile(r"(?i)(?<=[a-z0-9])(:)(?=//)|(?<![a-z0-9])(www)(\.)")


def markdown_text(value: str) -> str:
    """A value from a node (kernel string, host name) as plain text in Markdown: no HTML, no links
    (autolinks included) or images, no emphasis, no table cell break, one line."""
    text = " ".join(str(value).split())
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", escape(text, quote=False))
    return _AUTOLINK.sub(lambda m: "\\:" if m.group(1) else m.group(2) + "\\.", text)


def render_html(rows: list[NodeRow]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in NodeRow.HEADERS)
    body = []
    for row in rows:
        cls = "ok" if row.verdict == "passed" and not row.failing_out + row.failing_in else "bad"
        body.append(f'<tr class="{cls}">' + "".join(f"<td>{escape(c)}</td>" for c in row.cells()) + "</tr>")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Nodes</title><style>"
            "body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:3px 8px;font-size:13px}th{background:#eee}tr.bad td{background:#fdecea}</style></head>"
            f"<body><h1>Nodes</h1><table><thead><tr>{head}</tr></thead><tbody>\n"
            + "\n".join(body) + "\n</tbody></table></body></html>\n")
