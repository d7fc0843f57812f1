"""The diagnosis codes as data (data/checks.yaml), in the spirit of kube-bench: people read and edit
the catalog without opening Python, and docs/checks.md is generated from it.

>>> info("UDP_PORT_BLOCKED").severity
'critical'
>>> fill("open UDP {port} on {node} for {peer}", port=8475, node="node2")
'open UDP 8475 on node2 for {peer}'
"""

from __future__ import annotations

import functools
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CATALOG = Path(__file__).parent / "data" / "checks.yaml"

SEVERITIES = ("critical", "high", "medium", "low", "info")
SCOPES = ("node", "pair", "cluster")
CNIS = ("flannel", "calico", "cilium")
CONTRACT_CODES = (
    "NODE_UNREACHABLE", "VTEP_MISSING", "VTEP_MAC_DUPLICATE", "VTEP_MAC_MISMATCH", "VTEP_LOCAL_MISMATCH",
    "PUBLIC_IP_MISMATCH", "PUBLIC_IP_DUPLICATE", "FDB_MISSING", "FDB_WRONG_DST", "NEIGH_WRONG_MAC",
    "CONFIG_INCONSISTENT", "UDP_PORT_BLOCKED", "OUTER_CHECKSUM_BAD", "KERNEL_KNOWN_BAD",
    "CHECKSUM_OFFLOAD_RISK", "KERNEL_NOT_VALIDATED", "MTU_MISMATCH", "OVERLAY_UNREACHABLE",
)
PLACEHOLDERS = frozenset({"node", "peer", "device", "port", "address", "peer_address", "nic", "mtu", "cidr",
                          "kernel", "stream", "mac", "peer_mac"})
_FIELDS = ("code", "title", "severity", "scope", "incident", "links", "what", "remediation")
# Only `{lowercase_name}` is a placeholder, so awk programs, JSON and udev's ENV{INTERFACE} stay intact.
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


class CatalogError(ValueError):
    """The catalog file is unusable; the message is one line naming the file and the entry."""


@dataclass(frozen=True)
class CodeInfo:
    code: str
    title: str
    severity: str
    scope: str
    incident: str
    links: tuple[str, ...]
    what: str
    remediation: str                        # the full text: common part, then every CNI's part labelled
    by_cni: tuple[tuple[str, str], ...]     # ("common", text), ("flannel", text), ...

    def remediation_for(self, cni: str | None = None) -> str:
        """The common steps plus the given CNI's; without a CNI, every CNI's steps under its name."""
        parts = dict(self.by_cni)
        if cni is None:
            return self.remediation
        return "\n".join(text for key, text in parts.items() if key in ("common", cni))


def fill(text: str, **values: Any) -> str:
    """Put values into `{name}` placeholders; a placeholder without a value (or None) stays as written."""
    def substitute(found: re.Match[str]) -> str:
        value = values.get(found.group(1))
        return found.group(0) if value is None else str(value)
    return _PLACEHOLDER.sub(substitute, text)


@functools.cache
def load(path: Path = CATALOG) -> dict[str, CodeInfo]:
    """All codes by name, validated: every field present, codes unique, every contract code there."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise CatalogError(f"{path}: cannot read the check catalog ({err.strerror})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise CatalogError(f"{path}: not valid YAML{f' at line {mark.line + 1}' if mark else ''}") from None
    entries = data.get("checks") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise CatalogError(f"{path}: expected a list of entries under 'checks:'")
    codes: dict[str, CodeInfo] = {}
    for number, entry in enumerate(entries, 1):
        item = _parse_entry(Path(path), number, entry)
        if item.code in codes:
            raise CatalogError(f"{path}: code {item.code} appears twice")
        codes[item.code] = item
    if missing := [code for code in CONTRACT_CODES if code not in codes]:
        raise CatalogError(f"{path}: contract code(s) missing: {', '.join(missing)}")
    return codes


def info(code: str) -> CodeInfo:
    try:
        return load()[code]
    except KeyError:
        raise ValueError(f"unknown diagnosis code {code!r}; the codes are listed in docs/checks.md "
                         f"(lib/vxlan_conformance/data/checks.yaml)") from None


def remediation(code: str, cni: str | None = None, **values: Any) -> str:
    """The fix for one code with the placeholders filled; only `cni`'s steps when it is given."""
    return fill(info(code).remediation_for(cni), **values)


def render(code: str, cni: str | None = None, **facts: Any) -> str:
    """Everything a failure message needs about one code: title, meaning and fix, placeholders filled."""
    item = info(code)
    return "\n".join((f"{item.code}: {item.title}", fill(item.what, **facts), "fix:",
                      remediation(code, cni, **facts)))


def render_markdown() -> str:
    """docs/checks.md: a table of every code, then one section per code."""
    codes = load()
    lines = ["# Diagnosis codes", "",
             "Generated from `lib/vxlan_conformance/data/checks.yaml` by",
             "`python -m vxlan_conformance.catalog > docs/checks.md`;",
             "edit the YAML, not this page. Placeholders such as `{node}`, `{peer}`, `{device}` and `{port}`",
             "are filled in every failure message.", "",
             "| Code | Severity | Scope | Title | Incident |", "|---|---|---|---|---|"]
    for item in codes.values():
        cells = (f"[{item.code}](#{item.code.lower()})", item.severity, item.scope, item.title, item.incident)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    for item in codes.values():
        lines += ["", f"## {item.code}", "", f"**{item.title}** — severity {item.severity}, scope {item.scope}.",
                  "", item.what, "", f"Incident: {item.incident}"]
        if item.links:
            lines += ["", "Links:", ""] + [f"- <{link}>" for link in item.links]
        for key, text in item.by_cni:
            label = "all CNIs" if key == "common" else key
            lines += ["", f"Remediation ({label}):", "", "```text", text, "```"]
    return "\n".join(lines) + "\n"


def _parse_entry(path: Path, number: int, entry: Any) -> CodeInfo:
    if not isinstance(entry, dict):
        raise CatalogError(f"{path}: entry {number}: expected a mapping with {', '.join(_FIELDS)}")
    name = entry.get("code") if isinstance(entry.get("code"), str) else f"entry {number}"

    def fail(problem: str) -> CatalogError:
        return CatalogError(f"{path}: {name}: {problem}")

    if missing := [field for field in _FIELDS if field not in entry]:
        raise fail(f"missing field(s) {', '.join(missing)}")
    if unknown := sorted(map(str, set(entry) - set(_FIELDS))):
        raise fail(f"unknown field(s) {', '.join(unknown)}")
    texts = {field: entry[field] for field in ("code", "title", "severity", "scope", "incident", "what")}
    for field, value in texts.items():
        if not isinstance(value, str) or not value.strip():
            raise fail(f"'{field}' must be non-empty text")
    if not re.fullmatch(r"[A-Z][A-Z0-9_]+", entry["code"]):
        raise fail("code must be UPPER_SNAKE_CASE")
    if entry["severity"] not in SEVERITIES:
        raise fail(f"severity {entry['severity']!r} is not one of {'|'.join(SEVERITIES)}")
    if entry["scope"] not in SCOPES:
        raise fail(f"scope {entry['scope']!r} is not one of {'|'.join(SCOPES)}")
    links = entry["links"] or []
    if not isinstance(links, list) or not all(isinstance(link, str) and link for link in links):
        raise fail("'links' must be a list of URLs")
    by_cni = _remediation_parts(entry["remediation"], fail)
    for text in [entry["what"]] + [text for _, text in by_cni]:
        if unknown := sorted(set(_PLACEHOLDER.findall(text)) - PLACEHOLDERS):
            raise fail(f"unknown placeholder(s) {', '.join('{' + p + '}' for p in unknown)} "
                       f"(known: {', '.join(sorted(PLACEHOLDERS))})")
    full = "\n".join(text if key == "common" else f"{key}:\n" + _indent(text) for key, text in by_cni)
    return CodeInfo(code=entry["code"], title=" ".join(entry["title"].split()), severity=entry["severity"],
                    scope=entry["scope"], incident=entry["incident"].strip(), links=tuple(links),
                    what=" ".join(entry["what"].split()), remediation=full, by_cni=by_cni)


def _remediation_parts(value: Any, fail: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(value, str):
        value = {"common": value}
    if not isinstance(value, dict) or not value:
        raise fail("'remediation' must be text or a mapping of common/flannel/calico/cilium to text")
    if unknown := sorted(map(str, set(value) - {"common", *CNIS})):
        raise fail(f"remediation has unknown part(s) {', '.join(unknown)} (use common, {', '.join(CNIS)})")
    parts = []
    for key in ("common", *CNIS):
        if key not in value:
            continue
        text = value[key]
        if not isinstance(text, str) or not text.strip():
            raise fail(f"remediation.{key} must be non-empty text")
        parts.append((key, text.rstrip()))
    return tuple(parts)


def _indent(text: str) -> str:
    return "\n".join("    " + line if line else line for line in text.splitlines())


if __name__ == "__main__":
    sys.stdout.write(render_markdown())
