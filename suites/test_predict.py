"""Before the overlay is installed: new VXLAN devices get unique MACs on every node (seed 000).
Changes node state while it runs (a temporary device), so it runs only with --allow-state-changes."""

import pytest

from vxlan_conformance.checks import predict
from vxlan_conformance.plugin.verdicts import enforce

pytestmark = [pytest.mark.node, pytest.mark.state_changing]


def test_vtep_mac_predicted_unique(request, run, node):
    enforce(request, predict.mac_unique(run, node))
