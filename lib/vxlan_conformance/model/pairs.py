"""Which directed pairs a run checks (`--pairs`, `--new-nodes`): every pair test, configuration and
datapath alike, covers exactly these; node tests always cover every node.

At N nodes `all` is N(N-1) pairs; `sample:K` keeps N*K of them so a 1000-node cluster is checked in
minutes, and still has every node send to and receive from K peers.
"""

from __future__ import annotations

import random


def select_pairs(names: list[str], new_nodes: list[str], mode: str, seed: int = 0) -> list[tuple[str, str]]:
    """Directed pairs (sender, receiver) in a stable order."""
    if new_nodes or mode == "new":
        fresh = set(new_nodes)
        return [(a, b) for a in names for b in names if a != b and (a in fresh or b in fresh)]
    if mode.startswith("sample:"):
        return sample_pairs(names, int(mode.split(":", 1)[1]), seed)
    return [(a, b) for a in names for b in names if a != b]


def sample_pairs(names: list[str], k: int, seed: int = 0) -> list[tuple[str, str]]:
    """Every node is paired with its k nearest neighbours on a ring shuffled by `seed` (k/2 on each side,
    k rounded up to even), in both directions: a lost answer from B to A can only be told apart from a
    lost request when B->A is checked too. So every node sends to the same k peers it receives from. The
    same seed gives the same pairs whatever the inventory order; grouped by sender, in inventory order."""
    half = (k + 1) // 2
    if 2 * half >= len(names) - 1:
        return select_pairs(names, [], "all")
    ring = sorted(names)
    random.Random(seed).shuffle(ring)
    position = {name: i for i, name in enumerate(ring)}
    steps = [step for h in range(1, half + 1) for step in (h, -h)]
    return [(a, ring[(position[a] + step) % len(ring)]) for a in names for step in steps]
