"""Kernel per node: known-bad releases (seed 003) and the offload + random-fully combination (seed 004)."""

import pytest

from vxlan_conformance.checks import kernel
from vxlan_conformance.plugin.verdicts import enforce

pytestmark = pytest.mark.node


def test_kernel_known(request, run, node):
    enforce(request, kernel.known(run, node))


def test_checksum_offload_risk(request, run, node):
    enforce(request, kernel.offload_risk(run, node))
