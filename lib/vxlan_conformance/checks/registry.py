"""The one spelling of every check: `@check(id, title, scope, codes)` on its function.

The suite test of a check is named after its id (test_vtep_mac_unique for vtep-mac-unique), the report
takes its title from here, and the run's CNI module may declare the check not applicable (Cilium has no
FDB entries to compare): the check then says why, once, as a skip, instead of failing on every node.

A check is called as `fn(run, host)` (scope node), `fn(run, a, b)` (pair) or `fn(run)` (cluster).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from vxlan_conformance import cni
from vxlan_conformance.model.result import CheckResult, NotApplicable
from vxlan_conformance.model.rundata import RunData

SCOPES = ("node", "pair", "cluster")


@dataclass(frozen=True)
class CheckSpec:
    id: str
    title: str               # what it asserts, in words; the report appends the subject
    scope: str               # node | pair | cluster
    codes: tuple[str, ...]   # every diagnosis code it can return (data/checks.yaml)
    doc: str = ""


REGISTRY: dict[str, CheckSpec] = {}
CheckFn = Callable[..., CheckResult]


def check(id: str, title: str, scope: str, codes: tuple[str, ...] = ()) -> Callable[[CheckFn], CheckFn]:
    """Register a check function under `id`; its results carry that id."""
    if scope not in SCOPES:
        raise ValueError(f"check {id}: scope {scope!r} is not one of {SCOPES}")

    def register(fn: CheckFn) -> CheckFn:
        if id in REGISTRY:
            raise ValueError(f"check {id} registered twice")
        spec = CheckSpec(id, title, scope, tuple(codes), (fn.__doc__ or "").strip())
        REGISTRY[id] = spec

        @functools.wraps(fn)
        def run_check(run: RunData, *subjects: str) -> CheckResult:
            reason = cni.of_run(run).not_applicable(id, run)
            if reason is None:
                try:
                    result = fn(run, *subjects)
                except NotApplicable as exc:
                    reason = str(exc)
            if reason is not None:
                result = CheckResult(_subject(subjects), skipped=reason)
            result.check = id
            return result

        run_check.spec = spec  # type: ignore[attr-defined]
        return run_check

    return register


def _subject(subjects: tuple[str, ...]) -> str:
    return "->".join(subjects) if subjects else "cluster"


def spec(check_id: str) -> CheckSpec:
    return REGISTRY[check_id]


def title_of(check_id: str) -> str:
    """The registered title; an id no check registers (a run-level entry) reads as words."""
    found = REGISTRY.get(check_id)
    return found.title if found else check_id.replace("-", " ").capitalize()
