"""Access: the suite can reach each node, with enough privilege, a Python for its agent, and the device."""

import pytest

from vxlan_conformance.checks import access
from vxlan_conformance.plugin.verdicts import enforce

pytestmark = pytest.mark.node


def test_ssh_reachable(request, run, node):
    enforce(request, access.ssh_reachable(run, node))


def test_privileges(request, run, node):
    enforce(request, access.privileges(run, node))


def test_python_for_agent(request, run, node):
    enforce(request, access.python_for_agent(run, node))


def test_vxlan_device(request, run, node):
    enforce(request, access.device_present(run, node))
