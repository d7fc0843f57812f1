"""Advertised public IP per node: the node's own address (seed 001) and unique."""

import pytest

from vxlan_conformance.checks import public_ip
from vxlan_conformance.plugin.verdicts import enforce

pytestmark = pytest.mark.node


def test_public_ip(request, run, node):
    enforce(request, public_ip.matches_address(run, node))


def test_public_ip_unique(request, run, node):
    enforce(request, public_ip.unique(run, node))
