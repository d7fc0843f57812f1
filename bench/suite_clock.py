"""pytest plugin for bench/suite_bench.py (`-p bench.suite_clock`): wall-clock marks of a run's phases
on the controller, written as JSON to $VXLAN_BENCH_CLOCK. Only observes; loaded by the benchmark only."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest

MARKS: dict[str, float] = {}


def _mark(name: str) -> None:
    MARKS.setdefault(name, time.time())


def _controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput") and bool(os.environ.get("VXLAN_BENCH_CLOCK"))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    _mark("configure")
    config.pluginmanager.register(GatheredMark(), "bench-gathered-mark")


class GatheredMark:
    """A plain sessionstart impl runs after the suite's tryfirst gathering and before xdist's trylast
    worker start-up: the boundary between the two."""

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        _mark("gathered")


@pytest.hookimpl(trylast=True)
def pytest_collection(session: pytest.Session) -> None:
    _mark("collection")


@pytest.hookimpl(wrapper=True)
def pytest_sessionstart(session: pytest.Session) -> Iterator[None]:
    _mark("sessionstart")
    yield
    _mark("sessionstarted")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _mark("first_report")
    MARKS["last_report"] = time.time()


@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session: pytest.Session) -> Iterator[None]:
    _mark("sessionfinish")
    yield
    MARKS["sessionfinished"] = time.time()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _controller(config):
        MARKS["unconfigure"] = time.time()
        with open(os.environ["VXLAN_BENCH_CLOCK"], "w") as out:
            json.dump(MARKS, out)
