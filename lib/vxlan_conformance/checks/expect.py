"""Helpers of the checks: a check that needs the cluster view, and values shared between nodes."""

from __future__ import annotations

from collections.abc import Callable

from vxlan_conformance.model.result import NotApplicable
from vxlan_conformance.model.rundata import RunData


def needs_view(run: RunData) -> None:
    """Skip view-based checks when the user chose no view; an unusable view is reported by its own check.
    NotApplicable, not pytest.skip: the registry turns it into a skip result, so the checks stay pytest-free
    and a unit test gets a result instead of an exception."""
    if run.view_source == "none":
        raise NotApplicable("no cluster view (vxlan_cluster_view: none): nothing advertised to compare with")
    if run.view_error:
        raise NotApplicable(f"cluster view unavailable: {run.view_error}")


def shared_by(run: RunData, key: str, values: Callable[[], dict[str, str | None]], host: str) -> list[str]:
    """Every host whose value (of `values()`, named `key`) equals `host`'s, itself included, in order; []
    when it is unique or unknown. Grouped once per run: a node test asks once per node."""
    def build() -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for name, value in values().items():
            if value:
                groups.setdefault(value, []).append(name)
        return {name: same for same in groups.values() if len(same) > 1 for name in same}
    return run.derived(f"shared_by:{key}", build).get(host, [])
