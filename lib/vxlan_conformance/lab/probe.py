"""Overlay reachability: from inside each node, ICMP echo every peer's VTEP address at once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .errors import LabError

ECHO_SCRIPT = Path(__file__).with_name("icmp_echo.py")


def ping_matrix(netns: dict[str, str], vteps: dict[str, str], pairs: list[tuple[str, str]] | None = None,
                timeout: float = 1.0) -> dict[tuple[str, str], bool]:
    """(a, b) -> did a's echo to b's VTEP get an answer. netns: node -> netns, vteps: node -> VTEP IP."""
    if pairs is None:
        pairs = [(a, b) for a in netns for b in netns if a != b]
    by_source: dict[str, list[str]] = {}
    for a, b in pairs:
        by_source.setdefault(a, []).append(b)
    procs = {a: subprocess.Popen(["ip", "netns", "exec", netns[a], sys.executable, "-I", "-S", str(ECHO_SCRIPT),
                                  str(timeout), *(vteps[b] for b in peers)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for a, peers in by_source.items()}
    result = {}
    for a, proc in procs.items():
        out, err = proc.communicate(timeout=timeout + 10)
        if proc.returncode != 0:
            raise LabError(f"overlay probe in {a} failed: {err.strip()}")
        answers = json.loads(out)
        for b in by_source[a]:
            result[(a, b)] = answers[vteps[b]]
    return result
