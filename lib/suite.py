"""What suites/conftest.py exposes to the thin tests: parametrization by node and by directed pair, and
fixtures over the run's shared data. A node that could not be reached makes its tests error with
NODE_UNREACHABLE; every other node's tests are unaffected."""

from __future__ import annotations

from pathlib import Path

import pytest

from lib.pytest_plugin import SUITES_DIR
from lib.results import CheckResult, enforce
from lib.rundata import RunData
from lib.summary import check_and_subject


def in_suites(path: Path) -> bool:
    return SUITES_DIR in Path(path).resolve().parents


def run_data(config: pytest.Config) -> RunData:
    session = config.pluginmanager.get_plugin("vxlan-session")
    if session is None or session.run is None:
        raise pytest.UsageError("the suites need the vxlan-conformance plugin: pip install -e . "
                                "in the project directory")
    return session.run


def parametrize(metafunc: pytest.Metafunc) -> None:
    if "node" in metafunc.fixturenames:
        nodes = run_data(metafunc.config).nodes
        metafunc.parametrize("node", nodes, ids=nodes, indirect=True)
    if "pair" in metafunc.fixturenames:
        run = run_data(metafunc.config)
        pairs = [f"{a}->{b}" for a, b in _pairs_for(run, metafunc)]
        metafunc.parametrize("pair", pairs, ids=pairs, indirect=True)


def _pairs_for(run: RunData, metafunc: pytest.Metafunc) -> list[tuple[str, str]]:
    """Datapath tests cover the probed pairs; configuration tests cover every pair."""
    if metafunc.definition.get_closest_marker("datapath") and run.mesh_pairs:
        return [tuple(p.split("->", 1)) for p in run.mesh_pairs]  # type: ignore[misc]
    return run.pairs()


def node_fixture(request: pytest.FixtureRequest) -> str:
    host: str = request.param
    reason = run_data(request.config).unreachable.get(host)
    if reason is not None:
        _unreachable(request, host, host, reason)
    return host


def pair_fixture(request: pytest.FixtureRequest) -> tuple[str, str]:
    sender, receiver = request.param.split("->", 1)
    run = run_data(request.config)
    for host in (sender, receiver):
        if host in run.unreachable:
            _unreachable(request, request.param, host, run.unreachable[host])
    return sender, receiver


def _unreachable(request: pytest.FixtureRequest, subject: str, host: str, reason: str) -> None:
    check, _ = check_and_subject(request.node.nodeid)
    enforce(request, CheckResult(check=check, subject=subject, codes=("NODE_UNREACHABLE",),
                                 message=f"{host} could not be reached: {reason}",
                                 values={"node": host}))
