"""The advertised view itself: reachable, and the same set of nodes as the inventory."""

from __future__ import annotations

from vxlan_conformance.checks.registry import check
from vxlan_conformance.model.result import CheckResult, NotApplicable
from vxlan_conformance.model.rundata import RunData


@check("cluster-view", "Cluster view available", "cluster", codes=("VIEW_UNAVAILABLE",))
def available(run: RunData) -> CheckResult:
    if run.view_source == "none":
        raise NotApplicable("no cluster view (vxlan_cluster_view: none)")
    if run.view_error:
        return CheckResult("cluster", ("VIEW_UNAVAILABLE",), run.view_error,
                           values={"view": run.view_source})
    found = f" ({run.view_note})" if run.view_note else ""
    return CheckResult("cluster", note=f"{len(run.view)} nodes advertised via {run.view_source}{found}")


@check("view-nodes-known", "Every advertised node is in the inventory", "cluster", codes=("VIEW_NODE_UNKNOWN",))
def no_unknown_nodes(run: RunData) -> CheckResult:
    """A node the overlay advertises but the inventory does not list is never checked: say so."""
    if run.view_source == "none" or run.view_error:
        raise NotApplicable("no usable cluster view")
    if not run.view_unmatched:
        return CheckResult("cluster")
    names = ", ".join(f"{a.node_name} ({a.public_ip})" for a in run.view_unmatched)
    return CheckResult("cluster", ("VIEW_NODE_UNKNOWN",),
                       f"{run.view_source} advertises nodes that are not in the inventory: {names}",
                       evidence="\n".join(f"{a.node_name}: public-ip {a.public_ip} VtepMAC {a.vtep_mac}"
                                          for a in run.view_unmatched),
                       values={"view": run.view_source})
