"""VTEP per node: unique MAC and machine-id (seed 000), MAC as advertised, not NetworkManager's, local
address, VNI/port/learning, MTU."""

import pytest

from vxlan_conformance.checks import vtep
from vxlan_conformance.plugin.verdicts import enforce

pytestmark = pytest.mark.node


def test_vtep_mac_unique(request, run, node):
    enforce(request, vtep.mac_unique(run, node))


def test_machine_id_unique(request, run, node):
    enforce(request, vtep.machine_id_unique(run, node))


def test_vtep_mac_advertised(request, run, node):
    enforce(request, vtep.mac_advertised(run, node))


def test_vtep_nm_unmanaged(request, run, node):
    enforce(request, vtep.nm_unmanaged(run, node))


def test_vtep_local(request, run, node):
    enforce(request, vtep.local_address(run, node))


def test_vtep_config(request, run, node):
    enforce(request, vtep.config_consistent(run, node))


def test_vtep_mtu(request, run, node):
    enforce(request, vtep.mtu(run, node))
