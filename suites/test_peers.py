"""Per directed pair A->B: A's FDB, neighbour and route entries for B, as the overlay programs them."""

import pytest

from lib.checks import peers
from lib.results import enforce

pytestmark = pytest.mark.pair


def test_peer_fdb(request, run, pair):
    enforce(request, peers.fdb(run, *pair))


def test_peer_neigh(request, run, pair):
    enforce(request, peers.neighbour(run, *pair))


def test_peer_route(request, run, pair):
    enforce(request, peers.route(run, *pair))
