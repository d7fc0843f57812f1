"""A sampled run keeps, of each node's FDB, neighbour and route tables, what its pair checks judge.

Every node of an N-node overlay holds an FDB entry, a neighbour and a route per peer: N^2 entries of
each. With `--pairs sample:K` (or --new-nodes) the pair checks judge K peers per node, so the run data
keeps the entries of a node's selected peers and every entry that no checked node owns (a stale entry
for a removed node is evidence) and drops those of the unselected peers: at 1000 nodes that is 48,000
entries instead of 3 million in every xdist worker. A run of all pairs keeps everything.
"""

from __future__ import annotations

from vxlan_conformance import cni
from vxlan_conformance.model.rundata import RunData


def keep_selected_peers(run: RunData) -> int:
    """Drop, in place, the entries of unselected peers; returns how many were dropped."""
    pairs = run.pairs()
    if len(pairs) == len(run.nodes) * (len(run.nodes) - 1):
        return 0
    owned = {host: _keys_of(run, host) for host in run.nodes}
    everyone = set().union(*owned.values()) if owned else set()
    selected: dict[str, set[str]] = {host: set(keys) for host, keys in owned.items()}
    for a, b in pairs:
        selected[a] |= owned[b]
    dropped = 0
    for host, facts in run.facts.items():
        keep = selected.get(host, set())
        before = len(facts.fdb) + len(facts.neighbours) + len(facts.routes)
        facts.fdb = [e for e in facts.fdb if _wanted(keep, everyone, (e.mac or "").lower())]
        facts.neighbours = [n for n in facts.neighbours if _wanted(keep, everyone, n.ip, (n.mac or "").lower())]
        facts.routes = [r for r in facts.routes if _wanted(keep, everyone, r.via, r.dst)]
        dropped += before - len(facts.fdb) - len(facts.neighbours) - len(facts.routes)
    return dropped


def _wanted(keep: set[str], everyone: set[str], *keys: str | None) -> bool:
    """An entry stays when no checked node owns any of its keys, or a kept node owns one."""
    known = [k for k in keys if k and k in everyone]
    return not known or any(k in keep for k in known)


def _keys_of(run: RunData, host: str) -> set[str]:
    """What names `host` in a peer's tables: its VtepMAC, VTEP address and pod subnet, advertised or
    as its own facts say."""
    keys = {cni.of_run(run).device_ip(run, host)}
    facts = run.facts.get(host)
    if facts is not None and facts.device is not None:
        keys.add((facts.device.mac or "").lower())
    advertised = run.view.get(host)
    if advertised is not None:
        keys |= {(advertised.vtep_mac or "").lower(), advertised.vtep_ip, advertised.pod_cidr}
    return {k for k in keys if k}
