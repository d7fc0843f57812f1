"""Per directed pair A->B: A's FDB, neighbour and route entries for B, as the overlay programs them."""

import pytest

from vxlan_conformance.checks import peers
from vxlan_conformance.plugin.suite import verdicts

pytestmark = pytest.mark.pair


def test_peer_fdb(request, run, pairs):
    verdicts(request, [peers.fdb(run, a, b) for a, b in pairs])


def test_peer_neigh(request, run, pairs):
    verdicts(request, [peers.neighbour(run, a, b) for a, b in pairs])


def test_peer_route(request, run, pairs):
    verdicts(request, [peers.route(run, a, b) for a, b in pairs])


def test_peer_tunnel(request, run, pairs):
    verdicts(request, [peers.tunnel(run, a, b) for a, b in pairs])
