"""The cluster view (kubectl annotations or flannel etcd leases) is usable and matches the inventory."""

import pytest

from vxlan_conformance.checks import view
from vxlan_conformance.plugin.verdicts import enforce

pytestmark = pytest.mark.cluster


def test_cluster_view(request, run):
    enforce(request, view.available(run))


def test_view_nodes_known(request, run):
    enforce(request, view.no_unknown_nodes(run))
