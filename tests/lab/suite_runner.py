"""Run the suite exactly as a user does (`pytest -n auto --inventory PATH`, a subprocess) and read what it
wrote. Used by the end-to-end tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LAB_INSTANCE = int(os.environ.get("VXLAB_TEST_INSTANCE", "1"))


@dataclass
class SuiteRun:
    exit_code: int
    output: str
    summary: dict[str, Any] | None
    reports: Path

    def failures(self) -> set[tuple[str, str]]:
        """(subject, code) of every failed or errored result."""
        assert self.summary is not None, f"no summary.json; output:\n{self.output[-3000:]}"
        return {(r["subject"], code) for r in self.summary["results"]
                if r["status"] in ("failed", "error") for code in (r["codes"] or ["(none)"])}


def run_suite(inventory: Path | str, reports: Path, *args: str, workers: str = "auto",
              timeout: float = 600, cwd: Path = PROJECT_ROOT, env: dict[str, str] | None = None) -> SuiteRun:
    command = [sys.executable, "-m", "pytest", "-n", workers, "--inventory", str(inventory),
               "--reports-dir", str(reports), "-p", "no:cacheprovider", *args]
    if workers == "0":
        command[3:5] = ["-p", "no:xdist"]
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    summary_path = reports / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return SuiteRun(proc.returncode, proc.stdout + proc.stderr, summary, reports)


def run_with_trigger(inventory: Path | str, reports: Path, trigger: str,
                     action: Callable[[subprocess.Popen], None], *args: str) -> tuple[SuiteRun, float]:
    """Run the whole suite as a user does (no xdist, so the output streams); when a line shows
    `trigger` (e.g. the mesh phase's progress line), do `action` to the run or the world."""
    command = [sys.executable, "-m", "pytest", "-p", "no:xdist", "--inventory", str(inventory),
               "--reports-dir", str(reports), "-p", "no:cacheprovider", *args]
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if trigger in line:
                action(proc)
                break
        lines.append(proc.stdout.read())
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    elapsed = time.monotonic() - started
    summary_path = reports / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return SuiteRun(proc.returncode, "".join(lines), summary, reports), elapsed
