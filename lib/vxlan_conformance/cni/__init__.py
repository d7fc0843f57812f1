"""One module per CNI: what it publishes about each node, what it builds on a node and for each peer,
which checks apply, and what the probes aim at. Pure knowledge, no I/O: the collectors, the mesh and the
checks all consult it."""

from __future__ import annotations

from vxlan_conformance.cni.base import Cni, Defaults, ExpectedRoute, PeerPlan, Vtep
from vxlan_conformance.cni.calico import Calico
from vxlan_conformance.cni.cilium import Cilium
from vxlan_conformance.cni.flannel import Flannel
from vxlan_conformance.model.rundata import RunData

MODULES: dict[str, Cni] = {cni.name: cni for cni in (Flannel(), Calico(), Cilium())}
NAMES = tuple(MODULES)

__all__ = ["MODULES", "NAMES", "Cni", "Defaults", "ExpectedRoute", "PeerPlan", "Vtep", "by_name", "of_run"]


def by_name(name: str) -> Cni:
    return MODULES[name]


def of_run(run: RunData) -> Cni:
    """The CNI module of a run (vxlan_cni; flannel when unset)."""
    return run.derived("cni", lambda: MODULES[run.overlay.get("cni") or "flannel"].for_settings(run.overlay))
