"""Thin: the suite's session fixtures. Options and the once-per-run gathering are in the plugin
(vxlan_conformance.plugin, plugin/session.py); parametrization and fixture bodies are in plugin/suite.py."""

import pytest

from vxlan_conformance.model.advertised import Advertised
from vxlan_conformance.model.facts import NodeFacts
from vxlan_conformance.model.rundata import RunData
from vxlan_conformance.plugin import suite


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if suite.in_suites(metafunc.definition.path):
        suite.parametrize(metafunc)


@pytest.fixture
def node(request: pytest.FixtureRequest) -> str:
    """An inventory host (the test is parametrized over every checked node)."""
    return suite.node_fixture(request)


@pytest.fixture
def pairs(request: pytest.FixtureRequest) -> list[tuple[str, str]]:
    """Directed pairs (sender, receiver): one per test, or one sender's pairs on large clusters."""
    return suite.pairs_fixture(request)


@pytest.fixture(scope="session")
def run(request: pytest.FixtureRequest) -> RunData:
    """Everything gathered once for this run (facts, view, mesh evidence)."""
    return suite.run_data(request.config)


@pytest.fixture(scope="session")
def facts(run: RunData) -> dict[str, NodeFacts]:
    """facts[host]: the node's real VXLAN state, collected in one SSH exec."""
    return run.facts


@pytest.fixture(scope="session")
def view(run: RunData) -> dict[str, Advertised]:
    """view[host]: what the overlay advertises for the node (empty without a cluster view)."""
    return run.view
