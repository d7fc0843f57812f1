"""Ansible INI inventories (kubespray inventory.ini, kubeasz hosts) into a RawInventory.

Follows Ansible's ini plugin: `[group]`, `[group:children]`, `[group:vars]`, `k=v` pairs on host lines,
shell-style quoting and `#` comments on host lines, `;`/`#` comments at line start, Python string
literals in :vars sections, host ranges and `host:port`. Values stay strings here; vxlan_conformance.inventory
converts them where a type is needed.
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

from vxlan_conformance.inventory.raw import InventoryError, RawInventory, SuiteRefusal, expand_host_range

_SECTION = re.compile(r"^\[([^\]:\s]+)(?::([^\]\s]+))?\]\s*(?:[#;].*)?$")
_GROUP_LINE = re.compile(r"^([^:\]\s#;]+)\s*(?:[#;].*)?$")
_HOST_PORT = re.compile(r"^([^:\[\]]+):(\d+)$")
_BRACKET_PORT = re.compile(r"^\[([^\]]+)\]:(\d+)$")
_BRACKET_HOST = re.compile(r"^\[[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\]:\d+(?:\s|$)")  # [2001:db8::11]:2222 ...


def parse_ini(text: str, source: Path) -> RawInventory:
    """Parse INI inventory text; errors name `source` and the line."""
    raw = RawInventory()
    group, kind = "ungrouped", "hosts"
    seen_in_section: dict[str, tuple[str | None, int]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{source}:{number}"
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("[") and not _BRACKET_HOST.match(stripped):
            group, kind = _section(stripped, where)
            raw.group(group)
            seen_in_section = {}
        elif kind == "hosts":
            _host_line(raw, group, stripped, where, number, seen_in_section)
        elif kind == "children":
            match = _GROUP_LINE.match(stripped)
            if not match:
                raise InventoryError(f"{where}: bad child group line '{stripped}'; write one group a line")
            raw.group(match.group(1))
            if match.group(1) not in raw.group(group).children:
                raw.group(group).children.append(match.group(1))
        else:
            key, value = _assignment(stripped, where)
            raw.group(group).vars[key] = _vars_value(value.strip())
    return raw


def _section(line: str, where: str) -> tuple[str, str]:
    match = _SECTION.match(line)
    if not match:
        hint = "write [group], [group:children] or [group:vars]"
        raise InventoryError(f"{where}: bad section header '{line}'; {hint}")
    name, kind = match.group(1), match.group(2) or "hosts"
    if kind not in ("hosts", "children", "vars"):
        raise InventoryError(f"{where}: unknown section type ':{kind}' in '{line}'; use :children or :vars")
    return name, kind


def _split(line: str, where: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError as exc:
        raise InventoryError(f"{where}: cannot parse '{line}' ({exc}); check the quotes") from None


def _assignment(token: str, where: str) -> tuple[str, str]:
    """`key=value` from a [group:vars] line or an (already unquoted) host-line token."""
    key, sep, value = token.partition("=")
    key = key.strip()
    if sep and not key:
        raise SuiteRefusal(f"{where}: expected key=value, got '{token}'; fix the line or quote the value")
    if not sep or not key or not re.fullmatch(r"[A-Za-z_][\w.-]*", key):
        raise InventoryError(f"{where}: expected key=value, got '{token}'; fix the line or quote the value")
    return key, value


def _vars_value(text: str) -> str:
    """As Ansible reads [group:vars]: the value is tried as a Python literal (so `'x y'` is unquoted and
    `8472  # the port` is 8472); what is not a literal stays verbatim (`password=p#ss` keeps its `#`).
    Numbers and booleans stay strings here; the typed reads convert them."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return text
    if isinstance(value, str):
        return value
    return str(value) if isinstance(value, (bool, int, float)) else text


def _host_line(
    raw: RawInventory,
    group: str,
    line: str,
    where: str,
    number: int,
    seen: dict[str, tuple[str | None, int]],
) -> None:
    tokens = _split(line, where)
    if not tokens:
        return
    name, port = _name_and_port(tokens[0])
    host_vars = {key: _vars_value(value) for key, value in (_assignment(token, where) for token in tokens[1:])}
    if port is not None:
        host_vars = {"ansible_port": port, **host_vars}  # an explicit ansible_port= on the line wins
    try:
        names = expand_host_range(name)
    except ValueError as exc:
        raise SuiteRefusal(f"{where}: {exc}; fix the range") from None  # Ansible: silently no host
    address = host_vars.get("ansible_host")
    for host in names:
        if host in seen and address is not None and seen[host][0] not in (None, address):
            raise SuiteRefusal(
                f"{where}: host '{host}' is listed again in [{group}] with ansible_host={address}"
                f" (line {seen[host][1]} says {seen[host][0]}); keep one line per host"
            )
        if host not in seen or address is not None:
            seen[host] = (address, number)
        raw.add_host(group, host, host_vars)


def _name_and_port(token: str) -> tuple[str, str | None]:
    """`node1:2222` and `[fe80::1]:2222` carry a port; a bare IPv6 address does not."""
    for pattern in (_BRACKET_PORT, _HOST_PORT):
        match = pattern.match(token)
        if match:
            return match.group(1), match.group(2)
    return token, None


def is_section(line: str) -> bool:
    return bool(_SECTION.match(line.strip()))
