"""The node's kernel against the known-kernel list (seeds 003 and 004), and the conditions under which a
listed bug bites: TX checksum offload on the VXLAN device plus `--random-fully` NAT (seed 004)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from vxlan_conformance import kernels
from vxlan_conformance.checks.registry import check
from vxlan_conformance.model.facts import NodeFacts
from vxlan_conformance.model.result import CheckResult
from vxlan_conformance.model.rundata import RunData

Condition = Callable[[NodeFacts, RunData], bool | None]   # None: cannot tell from the facts

CONDITIONS: dict[str, Condition] = {
    "tx-offload-on": lambda f, run: _offload_on(f),
    "random-fully": lambda f, run: f.nat.random_fully if f.nat.tool != "absent" and f.nat.readable else None,
    "port-not-standard": lambda f, run: int(run.overlay["port"]) not in kernels.STANDARD_VXLAN_PORTS,
    "driver-vmxnet3": lambda f, run: (f.underlay.driver == "vmxnet3") if f.underlay and f.underlay.driver
    else None,
}


def _offload_on(facts: NodeFacts) -> bool | None:
    if facts.offloads is None:
        return None
    state = facts.offloads.get("tx-checksum-ip-generic") or facts.offloads.get("tx-checksumming")
    return None if state is None else state.startswith("on")


@cache
def _rows(lists: tuple[str, ...]) -> tuple[kernels.KernelRow, ...]:
    return tuple(kernels.load_rows(lists))


def verdict(run: RunData, host: str) -> kernels.KernelVerdict:
    release = run.facts[host].kernel_release or ""
    return kernels.classify(release, _rows(tuple(run.options.get("kernel_lists", ()))))


def _values(run: RunData, host: str, v: kernels.KernelVerdict) -> dict[str, object]:
    return {"node": host, "device": run.overlay["device"], "port": run.overlay["port"],
            "kernel": v.release, "stream": v.stream}


@check("kernel-known", "Kernel not known bad", "node", codes=("KERNEL_KNOWN_BAD", "KERNEL_NOT_VALIDATED"))
def known(run: RunData, host: str) -> CheckResult:
    """denylist (default): a kernel listed bad without conditions fails; allowlist: only `good` passes."""
    v = verdict(run, host)
    values = _values(run, host, v)
    if v.status == "bad" and not v.conditions:
        return CheckResult(host, ("KERNEL_KNOWN_BAD",), f"kernel {v.release}: {v.reason}",
                           evidence=f"{host}: uname -r = {v.release} (stream {v.stream})", values=values)
    if run.options.get("kernel_policy") == "allowlist" and v.status != "good":
        return CheckResult(host, ("KERNEL_NOT_VALIDATED",),
                           f"kernel {v.release} is not on the known-good list (allowlist policy)",
                           evidence=f"{host}: uname -r = {v.release} (stream {v.stream}); {v.reason}",
                           values=values)
    note = v.reason if v.status != "good" else ""
    return CheckResult(host, note=note)


@check("checksum-offload-risk", "No checksum offload risk", "node", codes=("CHECKSUM_OFFLOAD_RISK",))
def offload_risk(run: RunData, host: str) -> CheckResult:
    """A kernel whose bug needs conditions fails only when every condition holds on this node."""
    v = verdict(run, host)
    if v.status != "bad" or not v.conditions:
        return CheckResult(host)
    facts = run.facts[host]
    states = {name: CONDITIONS[name](facts, run) if name in CONDITIONS else None for name in v.conditions}
    shown = ", ".join(f"{name}={'?' if s is None else ('yes' if s else 'no')}" for name, s in states.items())
    if all(states.values()):
        return CheckResult(host, ("CHECKSUM_OFFLOAD_RISK",),
            f"kernel {v.release} with {shown}: outer VXLAN UDP checksums get corrupted ({v.reason})",
            evidence=_offload_evidence(run, host), values=_values(run, host, v))
    return CheckResult(host,
                       note=f"kernel {v.release} is affected only when {', '.join(v.conditions)}: {shown}")


def _offload_evidence(run: RunData, host: str) -> str:
    facts = run.facts[host]
    lines = [f"{host}: uname -r = {facts.kernel_release}"]
    if facts.offloads:
        lines += [f"ethtool -k {run.overlay['device']}: {k}: {v}" for k, v in facts.offloads.items()
                  if k.startswith("tx-checksum")]
    lines += [f"nat: {rule}" for rule in facts.nat.masquerade_rules
              if "random-fully" in rule or "fully-random" in rule]
    return "\n".join(lines)
