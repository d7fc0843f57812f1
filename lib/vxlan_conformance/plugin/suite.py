"""What conftest.py exposes to the thin tests: parametrization by node and by directed pair, and fixtures
over the run's shared data. A node that could not be reached makes its tests error with NODE_UNREACHABLE;
every other node's tests are unaffected.

Pair tests get `pairs`: one directed pair per test, or, when the run checks more nodes than
--group-pairs (N^2 items would swamp pytest and the report), all pairs of one sender per test
(`node1->*`). Either way every pair keeps its own verdict in summary.json."""

from __future__ import annotations

from pathlib import Path

import pytest

from vxlan_conformance import SUITES_DIR, cni
from vxlan_conformance.model.result import CheckResult
from vxlan_conformance.model.rundata import RunData
from vxlan_conformance.plugin.verdicts import enforce, enforce_all, session_of
from vxlan_conformance.report.titles import check_and_subject


def in_suites(path: Path) -> bool:
    return SUITES_DIR in Path(path).resolve().parents


def run_data(config: pytest.Config) -> RunData:
    session = session_of(config)
    if session is None or session.run is None:
        raise pytest.UsageError("the suites need the vxlan-conformance plugin: pip install -e . "
                                "in the project directory")
    return session.run


ALL_NODES, ALL_PAIRS = "*", ("*", "*")  # the one subject of a check that does not apply to the run's CNI


def not_applicable(metafunc: pytest.Metafunc) -> str | None:
    """Why the run's CNI says this test's check does not apply (Cilium: FDB, neighbour, VTEP MAC), or None."""
    check_id = metafunc.function.__name__.removeprefix("test_").replace("_", "-")
    run = run_data(metafunc.config)
    return cni.of_run(run).not_applicable(check_id, run)


def parametrize(metafunc: pytest.Metafunc) -> None:
    if ("node" in metafunc.fixturenames or "pairs" in metafunc.fixturenames) and not_applicable(metafunc):
        # once per run, not once per node or pair: the check itself returns the skip with the reason
        if "node" in metafunc.fixturenames:
            metafunc.parametrize("node", [ALL_NODES], ids=[ALL_NODES], indirect=True)
        else:
            metafunc.parametrize("pairs", [[ALL_PAIRS]], ids=["*->*"], indirect=True)
        return
    if "node" in metafunc.fixturenames:
        nodes = run_data(metafunc.config).nodes
        metafunc.parametrize("node", nodes, ids=nodes, indirect=True)
    if "pairs" in metafunc.fixturenames:
        run = run_data(metafunc.config)
        pairs = run.pairs()
        if len(run.nodes) > metafunc.config.option.group_pairs:
            senders: dict[str, list[tuple[str, str]]] = {}
            for a, b in pairs:
                senders.setdefault(a, []).append((a, b))
            groups, ids = list(senders.values()), [f"{a}->*" for a in senders]
        else:
            groups, ids = [[p] for p in pairs], [f"{a}->{b}" for a, b in pairs]
        metafunc.parametrize("pairs", groups, ids=ids, indirect=True)


def node_fixture(request: pytest.FixtureRequest) -> str:
    host: str = request.param
    if host in run_data(request.config).unreachable:
        _unreachable(request, host, host)
    return host


def pairs_fixture(request: pytest.FixtureRequest) -> list[tuple[str, str]]:
    """The reachable pairs of this test; pairs with an unreachable node get NODE_UNREACHABLE (the test
    errors when none is left)."""
    run = run_data(request.config)
    reachable, down = [], []
    for a, b in request.param:
        host = a if a in run.unreachable else b if b in run.unreachable else None
        if host is None:
            reachable.append((a, b))
        else:
            down.append(_unreachable_result(request, f"{a}->{b}", host))
    if down and not reachable:
        enforce_all(request, down)
    request.node.stash[UNREACHABLE] = down
    return reachable


UNREACHABLE = pytest.StashKey[list[CheckResult]]()


def verdicts(request: pytest.FixtureRequest, results: list[CheckResult]) -> None:
    """Judge a pair test: its own results plus the NODE_UNREACHABLE ones of its unreachable pairs."""
    enforce_all(request, request.node.stash.get(UNREACHABLE, []) + results)


def _unreachable_result(request: pytest.FixtureRequest, subject: str, host: str) -> CheckResult:
    check, _ = check_and_subject(request.node.nodeid)
    return unreachable_result(run_data(request.config), check, subject, host)


def unreachable_result(run: RunData, check: str, subject: str, host: str) -> CheckResult:
    """The result of a check's subject (a node, or a pair with that node) when `host` could not be reached:
    the run-level code NODE_UNREACHABLE, declared by no check because no check runs for it."""
    return CheckResult(check=check, subject=subject, codes=("NODE_UNREACHABLE",),
                       message=f"{host} could not be reached: {run.unreachable[host]}",
                       values={"node": host, "address": run.addresses.get(host)})


def _unreachable(request: pytest.FixtureRequest, subject: str, host: str) -> None:
    enforce(request, _unreachable_result(request, subject, host))
