"""Shared fixtures of the project's own tests: the lab (instance VXLAB_TEST_INSTANCE, default 1, so a
user's lab on instance 0 is left alone) and running the suite the way a user does."""

from __future__ import annotations

import os

import pytest

from tests.lab.suite_runner import LAB_INSTANCE


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that build network namespaces need root: skip them, saying why, when not root."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces, sshd, nftables)")
    for item in items:
        if item.get_closest_marker("root"):
            item.add_marker(skip)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "root: needs root (builds network namespaces)")


@pytest.fixture(scope="session")
def lab():
    """One lab object for the whole test session, always taken down at the end."""
    from vxlan_conformance.lab import Lab

    if os.geteuid() != 0:
        pytest.skip("needs root")
    the_lab = Lab(instance=LAB_INSTANCE)
    yield the_lab
    the_lab.down()
