"""Everything one run gathered from the cluster, computed once and shared with every pytest-xdist worker.

The controller gathers (collect/gather.py), writes this as one JSON file and hands its path to the workers
(`workerinput`); workers only read it. Tests never open SSH sessions for data that is in here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

from vxlan_conformance.model.advertised import Advertised
from vxlan_conformance.model.evidence import PairEvidence
from vxlan_conformance.model.facts import NodeFacts
from vxlan_conformance.model.pairs import select_pairs

T = TypeVar("T")


@dataclass
class RunData:
    inventory_path: str
    started: str                               # ISO 8601 UTC
    nodes: list[str]                           # checked hosts (after --limit), inventory order
    addresses: dict[str, str]                  # host -> node address (access_ip > ip > ansible_host)
    overlay: dict[str, Any]                    # the vxlan_* settings in force
    facts: dict[str, NodeFacts] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)     # host -> one-line reason
    host_key_policy: dict[str, str] = field(default_factory=dict)  # host -> policy its connection used
    view_source: str = "none"
    view: dict[str, Advertised] = field(default_factory=dict)     # host -> what the overlay advertises
    view_error: str | None = None
    view_note: str | None = None                                  # e.g. which etcd API held the leases
    view_config: dict[str, Any] = field(default_factory=dict)     # the overlay's network config, when read
    view_unmatched: list[Advertised] = field(default_factory=list)  # advertised, matching no host
    view_cluster: dict[str, Any] = field(default_factory=dict)    # CNI-wide view (Calico: IPAM blocks, pools, felix)
    mesh: dict[str, PairEvidence] = field(default_factory=dict)   # "A->B" -> what the mesh observed
    mesh_pairs: list[str] = field(default_factory=list)           # the directed pairs probed
    mesh_error: str | None = None
    mesh_excluded: dict[str, str] = field(default_factory=dict)   # host -> why it could not take part
    predicted_macs: dict[str, str] = field(default_factory=dict)  # host -> MAC of a new VXLAN device
    predict_errors: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)         # run options the checks depend on
    timings: dict[str, float] = field(default_factory=dict)       # phase -> seconds
    counters: dict[str, int] = field(default_factory=dict)        # e.g. ssh_connections opened

    def save(self, path: Path) -> None:
        """JSON of the whole run; dataclasses are written by their fields without copying them first
        (dataclasses.asdict deep-copies, which costs seconds at 100 nodes)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self, default=_fields))
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> RunData:
        data = json.loads(Path(path).read_text())
        data["facts"] = {host: NodeFacts.from_dict(d) for host, d in data["facts"].items()}
        data["view"] = {host: Advertised.from_dict(d) for host, d in data["view"].items()}
        data["view_unmatched"] = [Advertised.from_dict(d) for d in data["view_unmatched"]]
        # the controller checked every agent's evidence when it arrived (mesh/agents.py)
        data["mesh"] = {pair: PairEvidence.from_dict(d, strict=False) for pair, d in data["mesh"].items()}
        return cls(**data)

    def pairs(self) -> list[tuple[str, str]]:
        """The directed pairs this run checks (--pairs, --new-nodes), sender first."""
        return self.derived("pairs", lambda: select_pairs(
            self.nodes, self.options.get("new_nodes", []), self.options.get("pairs", "all"),
            self.options.get("pairs_seed", 0)))

    def derived(self, key: str, build: Callable[[], T]) -> T:
        """A value computed from the gathered data once per process: checks that run once per pair must
        not rescan every node's data each time (that makes a run O(N^3))."""
        if "_derived" not in vars(self):
            self._derived: dict[str, Any] = {}  # not a field: neither saved nor compared
        if key not in self._derived:
            self._derived[key] = build()
        return self._derived[key]


def _fields(obj: Any) -> dict[str, Any]:
    """A dataclass's fields as they are (no copy: called for 160,000 records at 100 nodes), less the
    per-process caches some keep beside them (RunData._derived, NodeFacts._index)."""
    if is_dataclass(obj):
        fields = vars(obj)
        if len(fields) == len(obj.__dataclass_fields__):
            return fields
        return {name: value for name, value in fields.items() if not name.startswith("_")}
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")
