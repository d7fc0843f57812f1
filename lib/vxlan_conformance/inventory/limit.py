"""Ansible `--limit` host patterns, so `pytest --limit node4,node5` means what `ansible --limit` means.

Terms are split on `,` (or on `:` outside brackets); plain terms are united, then `&term` intersects and
`!term` removes, as Ansible orders them. A term is a host, a group (aliases allowed), a wildcard
(`node*`), a regex (`~node[0-9]+`), or `name[i]` / `name[i:j]` (Ansible's inclusive subscript of the
hosts matched by `name`); `@file` reads one term a line from the file (a retry file).
`node[1:3]` where `node` matches nothing is read as an inventory host range.
Unlike Ansible, a term that matches nothing is an error: a typo must not silently shrink the run.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Mapping

from vxlan_conformance.inventory.raw import expand_host_range

_SUBSCRIPT = re.compile(r"^(.+)\[(-?\d*)(?::(-?\d*))?\]$")


def select(
    pattern: str, hosts: list[str], groups: Mapping[str, tuple[str, ...]], aliases: Mapping[str, str]
) -> set[str]:
    """Host names chosen by `pattern`; ValueError says which term matched nothing."""
    terms = [term for part in _split(pattern) for term in _from_file(part)]
    if not terms:
        raise ValueError("names no host")
    plain = [t for t in terms if t[0] not in "!&"] or ["all"]
    chosen: set[str] = set()
    for term in plain:
        chosen |= set(_match(term, hosts, groups, aliases))
    for term in (t for t in terms if t[0] == "&"):
        chosen &= set(_match(term[1:], hosts, groups, aliases))
    for term in (t for t in terms if t[0] == "!"):
        chosen -= set(_match(term[1:], hosts, groups, aliases))
    if not chosen:
        raise ValueError("selects no host")
    return chosen


def _from_file(term: str) -> list[str]:
    """`@file` (Ansible's retry-file form): every non-empty line of the file is a term."""
    if not term.startswith("@"):
        return [term]
    path = term[1:]
    try:
        with open(path, encoding="utf-8") as handle:
            return [line.strip() for line in handle.read().split("\n") if line.strip()]
    except OSError as exc:
        raise ValueError(f"cannot read limit file {path} ({exc.strerror or type(exc).__name__})") from None
    except UnicodeDecodeError:
        raise ValueError(f"cannot read limit file {path} (not UTF-8 text)") from None


def _split(pattern: str) -> list[str]:
    text = pattern.strip()
    if "," in text:
        parts = text.split(",")
    else:
        try:
            ipaddress.IPv6Address(text)
            parts = [text]
        except ValueError:
            parts = re.split(r":(?![^\[]*\])", text)
    terms = [p.strip() for p in parts if p.strip()]
    if not terms or any(t in ("!", "&") for t in terms):
        raise ValueError("empty term")
    return terms


def _match(
    term: str, hosts: list[str], groups: Mapping[str, tuple[str, ...]], aliases: Mapping[str, str]
) -> list[str]:
    found = _plain(term, hosts, groups, aliases)
    if found:
        return found
    subscript = _SUBSCRIPT.match(term)
    if subscript:
        base = _plain(subscript.group(1), hosts, groups, aliases)
        if base:
            return _slice(base, subscript.group(2), subscript.group(3), term)
        try:
            found = [h for h in expand_host_range(term) if h in hosts]
        except ValueError:
            found = []
    if not found:
        raise ValueError(f"'{term}' matches no host or group")
    return found


def _plain(term: str, hosts: list[str], groups: Mapping[str, tuple[str, ...]], aliases: Mapping[str, str]
           ) -> list[str]:
    """Hosts named, grouped, wildcard- or regex-matched by `term`, in inventory order."""
    group = aliases.get(term, term)
    if term in hosts:
        return [term]
    if group in groups:
        return list(groups[group])
    if term.startswith("~"):
        try:
            regex = re.compile(term[1:])
        except re.error as exc:
            raise ValueError(f"'{term}' is not a valid regex ({exc})") from None
        matches = lambda name: bool(regex.match(name))  # noqa: E731
    elif any(c in term for c in "*?"):
        matches = lambda name: fnmatch.fnmatchcase(name, term)  # noqa: E731
    else:
        return []
    named = {h for h in hosts if matches(h)}
    named |= {h for g, members in groups.items() if matches(g) for h in members}
    return [h for h in hosts if h in named]


def _slice(base: list[str], start: str, end: str | None, term: str) -> list[str]:
    """Ansible subscripts are inclusive: web[0:1] is the first two hosts of web."""
    try:
        if end is None:
            return [base[int(start)]]
        first = int(start) if start else 0
        last = int(end) if end else len(base) - 1
    except (ValueError, IndexError):
        raise ValueError(f"'{term}' is out of range ({len(base)} hosts)") from None
    picked = base[first : last + 1 if last != -1 else None]
    if not picked:
        raise ValueError(f"'{term}' selects no host ({len(base)} hosts)")
    return picked
