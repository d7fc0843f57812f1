"""--pairs sample:K and --new-nodes: which directed pairs a run checks."""

from __future__ import annotations

from collections import Counter

import pytest

from vxlan_conformance.model.pairs import sample_pairs, select_pairs

NAMES = [f"node{i}" for i in range(1, 41)]


@pytest.mark.parametrize(("k", "peers"), [(1, 2), (2, 2), (3, 4), (16, 16)])
def test_sample_covers_every_node_k_times_each_way(k, peers):
    """K rounded up to even: every node sends to and receives from the same K peers."""
    pairs = sample_pairs(NAMES, k)
    assert len(pairs) == len(set(pairs)) == len(NAMES) * peers
    assert all(a != b for a, b in pairs)
    assert Counter(a for a, _ in pairs) == dict.fromkeys(NAMES, peers)
    assert Counter(b for _, b in pairs) == dict.fromkeys(NAMES, peers)
    assert {(b, a) for a, b in pairs} == set(pairs)


def test_sample_is_deterministic_per_seed_and_independent_of_inventory_order():
    assert sample_pairs(NAMES, 4, seed=7) == sample_pairs(NAMES, 4, seed=7)
    assert set(sample_pairs(list(reversed(NAMES)), 4, seed=7)) == set(sample_pairs(NAMES, 4, seed=7))
    assert set(sample_pairs(NAMES, 4, seed=7)) != set(sample_pairs(NAMES, 4, seed=8))


@pytest.mark.parametrize("k", [3, 4, 16])
def test_sample_as_large_as_the_cluster_is_every_pair(k):
    assert sample_pairs(NAMES[:5], k) == select_pairs(NAMES[:5], [], "all")


def test_sample_is_grouped_by_sender_in_inventory_order():
    senders = [a for a, _ in sample_pairs(NAMES, 3)]
    assert list(dict.fromkeys(senders)) == NAMES


def test_new_nodes_select_exactly_the_pairs_touching_them():
    pairs = select_pairs(NAMES[:4], ["node4"], "all")
    assert set(pairs) == {(a, "node4") for a in NAMES[:3]} | {("node4", b) for b in NAMES[:3]}
