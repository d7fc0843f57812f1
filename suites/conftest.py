"""Thin: parametrization and fixtures come from lib.suite; the logic lives in lib/."""

import pytest

from lib import suite
from lib.rundata import RunData


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    suite.parametrize(metafunc)


@pytest.fixture
def node(request: pytest.FixtureRequest) -> str:
    return suite.node_fixture(request)


@pytest.fixture
def pair(request: pytest.FixtureRequest) -> tuple[str, str]:
    return suite.pair_fixture(request)


@pytest.fixture(scope="session")
def run(request: pytest.FixtureRequest) -> RunData:
    return suite.run_data(request.config)
