"""Can the suite work on this node at all: reachable, privileged enough, Python for the agent, device."""

from __future__ import annotations

from vxlan_conformance.checks.registry import check
from vxlan_conformance.model.facts import usable_python
from vxlan_conformance.model.result import CheckResult
from vxlan_conformance.model.rundata import RunData


@check("ssh-reachable", "SSH reachable", "node", codes=())
def ssh_reachable(run: RunData, host: str) -> CheckResult:
    """Unreachable nodes never get here (their tests error in the fixture); say how we reached it."""
    note = ""
    if run.host_key_policy.get(host) == "off":
        note = ("host key checking is OFF for this node (vxlan_host_key_policy, StrictHostKeyChecking in "
                "ansible_ssh_common_args or the ssh config); lab use only")
    return CheckResult(host, note=note)


@check("privileges", "Root or passwordless sudo", "node", codes=("PRIVILEGES_INSUFFICIENT",))
def privileges(run: RunData, host: str) -> CheckResult:
    """The facts ran as root (directly, or through become): otherwise they miss the NAT rules and the
    agent cannot open raw sockets, even when sudo would have worked."""
    facts = run.facts[host]
    if facts.uid == 0:
        return CheckResult(host)
    if facts.sudo_ok:
        why = "sudo -n works, but the suite was not told to use it: set ansible_become: true for this host"
    elif facts.sudo_ok is None:
        why = "sudo is not installed"
    else:
        why = "sudo -n is refused (no passwordless sudo)"
    return CheckResult(host, ("PRIVILEGES_INSUFFICIENT",),
                       f"{host}: connected as uid {facts.uid}; {why}; the facts (iptables-save, ethtool) and "
                       "the agent's raw sockets need root",
                       evidence=f"uid={facts.uid} sudo_ok={facts.sudo_ok}", values={"node": host})


@check("python-for-agent", "Python for the probe agent", "node", codes=("PYTHON_MISSING",))
def python_for_agent(run: RunData, host: str) -> CheckResult:
    facts = run.facts[host]
    if path := usable_python(facts):
        return CheckResult(host, note=f"the node agent runs on {path}")
    found = ", ".join(f"{p.path} {p.version}" for p in facts.python) or "none"
    return CheckResult(host, ("PYTHON_MISSING",),
                       f"{host}: no Python 2.7 or 3.6+ for the node agent (found: {found})",
                       evidence=found, values={"node": host})


@check("vxlan-device", "VXLAN device present", "node", codes=("VTEP_DOWN", "VTEP_MISSING"))
def device_present(run: RunData, host: str) -> CheckResult:
    facts = run.facts[host]
    device = run.overlay["device"]
    values = {"node": host, "device": device, "port": run.overlay["port"]}
    if facts.device is None:
        return CheckResult(host, ("VTEP_MISSING",),
                           f"{host}: no VXLAN device {device}", evidence=facts.raw.get("link", "")[:2000],
                           values=values)
    if not facts.device.up:
        return CheckResult(host, ("VTEP_DOWN",), f"{host}: {device} exists but is down",
                           evidence=facts.raw.get("link", "")[:2000], values=values)
    return CheckResult(host)
