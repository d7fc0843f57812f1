"""The parsed-but-unresolved inventory tree both file formats produce, plus host-range expansion.

Kept apart from vxlan_conformance.inventory so the INI and YAML parsers share one model without importing the
resolver (which imports them).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Any


class InventoryError(Exception):
    """One-line user-facing message: names the file (and line when known) and what to do."""


class SuiteRefusal(InventoryError):
    """Input Ansible reads (with at most a warning) that the suite refuses on either reader: a host listed
    twice with different addresses (Ansible silently takes the last), a variable without a name (Ansible
    deprecates it), a host range such as node[3:1] (Ansible reads it as no host at all)."""


@dataclass
class RawGroup:
    """One group as written: direct hosts, child groups and its own vars (no inheritance yet)."""

    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)


@dataclass
class RawInventory:
    """Hosts in file order with their own vars, and groups by the names the file uses."""

    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, RawGroup] = field(default_factory=dict)

    def group(self, name: str) -> RawGroup:
        return self.groups.setdefault(name, RawGroup())

    def add_host(self, group: str, name: str, host_vars: dict[str, Any]) -> None:
        """Register `name` in `group`; a host seen again merges its vars (later wins, as in Ansible)."""
        self.hosts.setdefault(name, {}).update(host_vars)
        members = self.group(group).hosts
        if name not in members:
            members.append(name)


_RANGE = re.compile(r"^(.*?)\[([^\]]*)\](.*)$")


def expand_host_range(pattern: str) -> list[str]:
    """Expand Ansible host ranges: node[01:20], 10.0.0.[1:3], node[a:c], node[1:10:2] (inclusive).

    Raises ValueError with a short reason; callers add file and line.

    >>> expand_host_range("node[08:10]")
    ['node08', 'node09', 'node10']
    >>> expand_host_range("r[a:b]n[1:2]")
    ['ran1', 'ran2', 'rbn1', 'rbn2']
    """
    match = _RANGE.match(pattern)
    if not match:
        return [pattern]
    head, body, tail = match.groups()
    parts = body.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"bad host range '{pattern}' (use [start:end] or [start:end:step])")
    begin, end = parts[0] or "0", parts[1]
    stride = parts[2] if len(parts) == 3 else "1"
    if not end:
        raise ValueError(f"bad host range '{pattern}' (no end value)")
    if not stride.isdigit() or int(stride) < 1:
        raise ValueError(f"bad host range '{pattern}' (step must be a positive integer)")
    step = int(stride)
    if begin.isdigit() and end.isdigit():
        if begin.startswith("0") and len(begin) > 1 and len(begin) != len(end):
            raise ValueError(f"bad host range '{pattern}' (zero-padded start and end differ in width)")
        width = len(begin) if begin.startswith("0") else 0
        first, last = int(begin), int(end)
        items = [str(i).zfill(width) for i in range(first, last + 1, step)]
    elif len(begin) == 1 and len(end) == 1 and begin in string.ascii_letters and end in string.ascii_letters:
        first, last = string.ascii_letters.index(begin), string.ascii_letters.index(end)
        items = list(string.ascii_letters[first : last + 1 : step])
    else:
        raise ValueError(f"bad host range '{pattern}' (use numbers or single letters)")
    if first > last:
        raise ValueError(f"bad host range '{pattern}' (start > end)")
    return [head + item + rest for item in items for rest in expand_host_range(tail)]
