"""Fixtures of the real-flannel tests (test_real_flannel*.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def flanneld():
    """version -> binary, built through the shared script the first time (1-2 min per version)."""
    from vxlan_conformance.lab import real_flannel

    script = real_flannel.build_script()
    if not script.is_file():
        pytest.skip(f"real flanneld tests need the shared flannel sources: {script} is absent")
    built = {}

    def get(version: str) -> str:
        if version not in built:
            built[version] = real_flannel.binary(version)  # a failed build is a failure, not a skip
        return built[version]
    return get
