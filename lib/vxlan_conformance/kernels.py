"""Known-good and known-bad kernels for VXLAN, as data (lib/vxlan_conformance/data/kernels.yaml plus a site's own file).

A distribution kernel carries the vendor's backports, so its version says nothing about upstream fix
points: every release is put in a *stream* first and only rows of the same stream apply to it.

>>> stream_of("4.19.90-52.49.v2207.ky10.x86_64"), stream_of("3.10.0-957.el7.x86_64")
('ky10', 'el7')
>>> stream_of("5.4.0-42-generic"), stream_of("6.1.0-18-amd64"), stream_of("6.18.44-fc-v669")
('ubuntu', 'debian', 'upstream')
>>> classify("4.19.100", load_rows()).status, classify("4.19.123", load_rows()).status
('bad', 'unknown')
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROJECT_LIST = Path(__file__).parent / "data" / "kernels.yaml"

STATUSES = ("bad", "good", "untested")
CONFIDENCES = ("verified", "reported", "inferred")
STANDARD_VXLAN_PORTS = (4789, 8472, 6081)   # ports NIC drivers recognise as UDP tunnels
CONDITIONS = {
    "tx-offload-on": "tx-checksum-ip-generic is on for the VXLAN device (ethtool -k <device>)",
    "random-fully": "outer VXLAN packets can be NAT'd: a MASQUERADE --random-fully rule exists and "
                    "KUBE-POSTROUTING lacks the kubernetes#92035 unmark fix",
    "port-not-standard": "the VXLAN UDP port is not one of " + "/".join(map(str, STANDARD_VXLAN_PORTS)),
    "driver-vmxnet3": "the underlay NIC uses the vmxnet3 driver (VMware)",
}
_ROW_KEYS = {"stream", "match", "status", "bug", "conditions", "confidence", "source", "note"}
_MATCH_KEYS = {"exact", "min", "max", "min_inclusive", "max_inclusive"}

_ARCH = re.compile(r"\.(x86_64|amd64|aarch64|arm64|i[3-6]86|ppc64le|ppc64|s390x|armv7hl|armv7l|riscv64|"
                   r"loongarch64|mips64el|sw_64|noarch)$")
_NUMERIC = re.compile(r"^\d+\.\d+")
# rpm dist tag as the last dot component: el7, el8_4, ky10, an8, oe2203, amzn2, fc38, el7uek
_DIST_TAG = re.compile(r"\.([a-z]+\d+[a-z]*)(?:_\d+)?$")
_DEB_FLAVOUR = re.compile(r"^(\d+\.\d+\.\d+-\d+(?:\.\d+)*)-([a-z0-9][a-z0-9-]*)$")
_DEBIAN_ARCHES = {"amd64", "arm64", "armmp", "lpae", "686", "pae", "powerpc64le", "s390x", "riscv64",
                  "loong64", "mips64r2el", "octeon", "rpi", "marvell"}
_SUSE_FLAVOURS = {"default", "preempt", "64kb", "kvmsmall", "rt"}
_UPSTREAM = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:-rc(\d+))?")


class KernelListError(ValueError):
    """A known-kernel list that cannot be used; the message is one line naming the file."""


@dataclass(frozen=True)
class KernelRow:
    """One entry of a known-kernel list: an exact release or a version range within one stream."""

    stream: str
    exact: str | None
    min: str | None
    max: str | None
    min_inclusive: bool
    max_inclusive: bool
    status: str                     # bad | good | untested
    bug: str
    conditions: tuple[str, ...]     # what must also hold on the node for the bug to bite; () = always
    confidence: str                 # verified | reported | inferred
    source: str
    note: str
    origin: str                     # the file the row came from

    def describe(self) -> str:
        """The match as people write it: `4.19.90-52.22.v2207.ky10` or `[4.19.123, 4.20.0)`."""
        if self.exact is not None:
            return self.exact
        low = f"{'[' if self.min_inclusive else '('}{self.min or ''}"
        return f"{low}, {self.max or ''}{']' if self.max_inclusive else ')'}"

    def matches(self, key: str) -> bool:
        """Does a release's comparison key (see `version_key`) fall under this row?"""
        if self.exact is not None:
            return rpmvercmp(key, version_key(self.exact, self.stream)) == 0
        if self.min is not None:
            low = rpmvercmp(key, version_key(self.min, self.stream))
            if low < 0 or (low == 0 and not self.min_inclusive):
                return False
        if self.max is not None:
            high = rpmvercmp(key, version_key(self.max, self.stream))
            if high > 0 or (high == 0 and not self.max_inclusive):
                return False
        return True

    def identity(self) -> tuple[object, ...]:
        """Rows with the same identity describe the same match: a user row replaces a project row."""
        def norm(value: str | None) -> str | None:
            return None if value is None else version_key(value, self.stream)
        return (self.stream, norm(self.exact), norm(self.min), self.min_inclusive, norm(self.max),
                self.max_inclusive)


@dataclass(frozen=True)
class KernelVerdict:
    release: str
    stream: str
    status: str                     # "bad" | "good" | "unknown"
    row: KernelRow | None
    conditions: tuple[str, ...]     # what must ALSO hold on the node for the bug to bite
    reason: str                     # one line for failure messages, with the source


def strip_arch(release: str) -> str:
    """`3.10.0-957.el7.x86_64` -> `3.10.0-957.el7` (Debian/Ubuntu flavours are not arches)."""
    return _ARCH.sub("", release.strip())


def stream_of(release: str) -> str:
    """Which family of kernels a release belongs to; rows only ever apply within one stream.

    rpm distributions are named by their dist tag (el7, el8, el9, ky10, an8, oe2203, amzn2, fc38, el7uek
    for Oracle UEK); `X.Y.Z-N-generic` style is ubuntu, `X.Y.Z-N-amd64` debian, `X.Y.Z-N-default` suse.
    Everything else that starts with a version is upstream: a self-built kernel such as the lab's
    `6.18.44-fc-v669` (a local version suffix, no dist tag) is compared by its X.Y.Z alone.
    """
    release = strip_arch(release)
    if not _NUMERIC.match(release):
        return "unknown"
    if tag := _DIST_TAG.search(release):
        return tag.group(1)
    if flavour := _DEB_FLAVOUR.match(release):
        base, name = flavour.groups()
        words = set(name.split("-"))
        if "." in base.split("-", 1)[1] or words & _SUSE_FLAVOURS:
            return "suse"
        return "debian" if words & _DEBIAN_ARCHES else "ubuntu"
    return "upstream"


def version_key(release: str, stream: str) -> str:
    """The part of a release that is compared within its stream (rpm rules, see `rpmvercmp`).

    The dist tag and the Debian/Ubuntu flavour are the same for a whole stream, so they are dropped;
    upstream keeps X.Y.Z (padded) and turns `-rcN` into `~rcN` so release candidates sort first.
    """
    release = strip_arch(release)
    if stream == "upstream":
        found = _UPSTREAM.match(release)
        if not found:
            return release
        major, minor, patch, rc = found.groups()
        return f"{major}.{minor}.{patch or 0}" + (f"~rc{rc}" if rc else "")
    if flavour := _DEB_FLAVOUR.match(release):
        return flavour.group(1)
    return _DIST_TAG.sub("", release)


_SEPARATORS = re.compile(r"^[^A-Za-z0-9~^]+")
_DIGITS = re.compile(r"^[0-9]*")
_LETTERS = re.compile(r"^[A-Za-z]*")


def rpmvercmp(a: str, b: str) -> int:
    """rpm's version comparison: -1, 0 or 1.

    Digit and letter runs are compared segment by segment (numbers numerically, a number is newer than
    letters), separators only split; `~` sorts before anything (even the end), `^` after the end but
    before anything else.

    >>> rpmvercmp("4.19.90-52.49.v2207.ky10", "4.19.90-52.22.v2207.ky10")
    1
    >>> rpmvercmp("5.7.0~rc5", "5.7.0")
    -1
    """
    if a == b:
        return 0
    one, two = a, b
    while one or two:
        one, two = _SEPARATORS.sub("", one), _SEPARATORS.sub("", two)
        if one.startswith("~") or two.startswith("~"):
            if not one.startswith("~"):
                return 1
            if not two.startswith("~"):
                return -1
            one, two = one[1:], two[1:]
            continue
        if one.startswith("^") or two.startswith("^"):
            if not one:
                return -1
            if not two:
                return 1
            if not one.startswith("^"):
                return 1
            if not two.startswith("^"):
                return -1
            one, two = one[1:], two[1:]
            continue
        if not (one and two):
            break
        numeric = one[0].isdigit()
        run = _DIGITS if numeric else _LETTERS
        seg1 = run.match(one).group()
        seg2 = run.match(two).group()
        one, two = one[len(seg1):], two[len(seg2):]
        if not seg2:                        # different segment types: the number is newer
            return 1 if numeric else -1
        if numeric:
            seg1, seg2 = seg1.lstrip("0"), seg2.lstrip("0")
            if len(seg1) != len(seg2):
                return 1 if len(seg1) > len(seg2) else -1
        if seg1 != seg2:
            return 1 if seg1 > seg2 else -1
    if not one and not two:
        return 0
    return -1 if not one else 1


def load_rows(paths: Sequence[str | Path] = (), *, include_project: bool = True) -> list[KernelRow]:
    """The project list followed by each user file; a user row replaces a project (or earlier user)
    row with the same match, so a site can re-judge one kernel without forking the project list."""
    rows = list(_project_rows()) if include_project else []
    for path in paths:
        for row in _read_list(Path(path)):
            rows = [kept for kept in rows if kept.identity() != row.identity()]
            rows.append(row)
    return rows


def classify(release: str, rows: Sequence[KernelRow]) -> KernelVerdict:
    """Judge one `uname -r` against the rows: exact beats range, the narrowest range wins, and on a
    tie the later row (a user's) wins. `good` only ever comes from an explicit row."""
    release = release.strip()
    stream = stream_of(release)
    key = version_key(release, stream)
    hits = [(index, row) for index, row in enumerate(rows) if row.stream == stream and row.matches(key)]
    if not hits:
        return KernelVerdict(release, stream, "unknown", None, (),
                             f"kernel {release} ({stream}) is on no known-kernel list")
    row = max(hits, key=functools.cmp_to_key(_specificity))[1]
    status = "unknown" if row.status == "untested" else row.status
    conditions = row.conditions if row.status == "bad" else ()
    return KernelVerdict(release, stream, status, row, conditions, _reason(release, stream, row))


def _specificity(left: tuple[int, KernelRow], right: tuple[int, KernelRow]) -> int:
    """Positive when `left` is the more specific hit: exact, then more bounded sides, then tighter
    bounds, then the later row."""
    (i, a), (j, b) = left, right
    for order in (_compare(a.exact is not None, b.exact is not None),
                  _compare((a.min is not None) + (a.max is not None), (b.min is not None) + (b.max is not None)),
                  _bound_cmp(a.min, a.min_inclusive, b.min, b.min_inclusive, a.stream, lower=True),
                  _bound_cmp(a.max, a.max_inclusive, b.max, b.max_inclusive, a.stream, lower=False)):
        if order:
            return order
    return _compare(i, j)


def _compare(x: int, y: int) -> int:
    return (x > y) - (x < y)


def _bound_cmp(a: str | None, a_incl: bool, b: str | None, b_incl: bool, stream: str, lower: bool) -> int:
    """Which bound makes the tighter range: a higher minimum, a lower maximum, exclusive over inclusive."""
    if a is None or b is None:
        return 0
    order = rpmvercmp(version_key(a, stream), version_key(b, stream))
    if order == 0:
        return b_incl - a_incl              # the same value: the exclusive bound is the tighter one
    return order if lower else -order


def _reason(release: str, stream: str, row: KernelRow) -> str:
    where = f"{row.stream} {row.describe()}"
    cite = f"source: {row.source}; {row.confidence}"
    if row.origin != str(PROJECT_LIST):
        cite += f"; from {row.origin}"
    note = f": {row.note}" if row.note else ""
    if row.status == "bad":
        only = f" (only when {', '.join(row.conditions)})" if row.conditions else ""
        return f"kernel {release} is known bad{only} [{row.bug}, {where}]{note} ({cite})"
    if row.status == "good":
        return f"kernel {release} is known good [{row.bug}, {where}]{note} ({cite})"
    return f"kernel {release} is listed but untested [{row.bug}, {where}]{note} ({cite})"


@functools.cache
def _project_rows() -> tuple[KernelRow, ...]:
    return tuple(_read_list(PROJECT_LIST))


def _read_list(path: Path) -> list[KernelRow]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise KernelListError(f"{path}: cannot read known-kernel list ({err.strerror}); "
                              "check vxlan_kernel_list") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise KernelListError(f"{path}: not valid YAML{where}; fix the file") from None
    entries = data.get("kernels") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise KernelListError(f"{path}: expected a list of rows under 'kernels:'; see {PROJECT_LIST.name}")
    return [_parse_row(path, number, entry) for number, entry in enumerate(entries, 1)]


def _parse_row(path: Path, number: int, entry: Any) -> KernelRow:
    def fail(problem: str) -> KernelListError:
        return KernelListError(f"{path}: row {number}: {problem}")

    if not isinstance(entry, dict):
        raise fail("expected a mapping with stream, match, status, ...")
    if unknown := set(entry) - _ROW_KEYS:
        raise fail(f"unknown field(s) {', '.join(sorted(map(str, unknown)))} "
                   f"(allowed: {', '.join(sorted(_ROW_KEYS))})")
    stream = _text(entry, "stream", fail)
    if not re.fullmatch(r"[a-z][a-z0-9_]*", stream):
        raise fail(f"stream {stream!r} is not a stream name such as upstream, el7, ky10, ubuntu")
    match = entry.get("match")
    if not isinstance(match, dict) or not match:
        raise fail("'match' must be a mapping with exact, or min and/or max")
    if unknown := set(match) - _MATCH_KEYS:
        raise fail(f"unknown match field(s) {', '.join(sorted(map(str, unknown)))} "
                   f"(allowed: {', '.join(sorted(_MATCH_KEYS))})")
    exact, low, high = (_version(match, name, stream, fail) for name in ("exact", "min", "max"))
    if exact is not None and (low is not None or high is not None):
        raise fail("'match' has exact together with min/max; use one or the other")
    if exact is None and low is None and high is None:
        raise fail("'match' needs exact, or min and/or max")
    flags = {name: match.get(name, default) for name, default in (("min_inclusive", True),
                                                                   ("max_inclusive", False))}
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise fail(f"match.{name} must be true or false, got {value!r}")
    status = _choice(entry, "status", STATUSES, fail)
    confidence = _choice(entry, "confidence", CONFIDENCES, fail)
    conditions = entry.get("conditions") or []
    if not isinstance(conditions, list) or not all(isinstance(c, str) for c in conditions):
        raise fail("'conditions' must be a list of names")
    if unknown := [c for c in conditions if c not in CONDITIONS]:
        raise fail(f"unknown condition(s) {', '.join(unknown)} (known: {', '.join(CONDITIONS)})")
    note = entry.get("note") or ""
    if not isinstance(note, str):
        raise fail("'note' must be text")
    return KernelRow(stream=stream, exact=exact, min=low, max=high, status=status,
                     bug=_text(entry, "bug", fail), conditions=tuple(conditions), confidence=confidence,
                     source=_text(entry, "source", fail), note=" ".join(note.split()), origin=str(path),
                     **flags)


def _text(entry: dict[str, Any], name: str, fail: Any) -> str:
    value = entry.get(name)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise fail(f"'{name}' is missing or empty")
    return " ".join(value.split())


def _choice(entry: dict[str, Any], name: str, allowed: Iterable[str], fail: Any) -> str:
    value = entry.get(name)
    if value not in allowed:
        raise fail(f"{name} {value!r} is not one of {'|'.join(allowed)}")
    return value


def _version(match: dict[str, Any], name: str, stream: str, fail: Any) -> str | None:
    value = match.get(name)
    if value is None:
        return None
    if isinstance(value, (float, int)) and not isinstance(value, bool):
        raise fail(f"match.{name} {value!r} must be quoted (YAML reads it as a number)")
    if not isinstance(value, str) or not _NUMERIC.match(value.strip()):
        raise fail(f"match.{name} {value!r} is not a kernel release")
    value = value.strip()
    found = stream_of(value)
    if found not in ("upstream", stream):
        raise fail(f"match.{name} {value} belongs to stream {found}, not {stream}")
    return value
