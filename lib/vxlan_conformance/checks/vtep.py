"""The VTEP of each node: unique MAC (seed 000) and machine-id (its cause on cloned VMs), MAC as advertised
and left alone by NetworkManager, bound to the node's own address, and the same VNI / port / learning /
MTU as everybody else."""

from __future__ import annotations

from vxlan_conformance import cni
from vxlan_conformance.checks.expect import needs_view, shared_by
from vxlan_conformance.checks.registry import check
from vxlan_conformance.model.facts import NodeFacts
from vxlan_conformance.model.result import CheckResult
from vxlan_conformance.model.rundata import RunData


def _values(run: RunData, host: str, **extra: object) -> dict[str, object]:
    return {"node": host, "device": run.overlay["device"], "port": run.overlay["port"],
            "address": run.addresses[host], **extra}


def _link_evidence(run: RunData, host: str) -> str:
    device = run.facts[host].device
    if device is None:
        return ""
    mode = " external" if device.external else ""
    return (f"{host}: {device.name} mac {device.mac} vxlan{mode} id {device.vni} local {device.local} "
            f"dev {device.dev} dstport {device.port} mtu {device.mtu}"
            f"{' nolearning' if device.learning is False else ''}")


@check("vtep-mac-unique", "VTEP MAC unique", "node", codes=("VTEP_MAC_DUPLICATE",))
def mac_unique(run: RunData, host: str) -> CheckResult:
    device = run.facts[host].device
    if device is None:
        return CheckResult(host, note="no VXLAN device (see vxlan-device)")
    sharing = shared_by(run, "vtep-mac", lambda: {h: f.device.mac for h, f in run.facts.items() if f.device}, host)
    if not sharing:
        return CheckResult(host)
    ids = {h: run.facts[h].machine_id for h in sharing}
    clone_hint = ""
    if len(set(ids.values())) == 1 and next(iter(ids.values())):
        clone_hint = f"; they also share machine-id {next(iter(ids.values()))} (cloned VMs)"
    return CheckResult(host, ("VTEP_MAC_DUPLICATE",),
        f"{run.overlay['device']} MAC {device.mac} is shared by {', '.join(sharing)}{clone_hint}",
        evidence="\n".join(_link_evidence(run, h) for h in sharing), values=_values(run, host))


@check("machine-id-unique", "Machine id unique", "node", codes=("MACHINE_ID_DUPLICATE",))
def machine_id_unique(run: RunData, host: str) -> CheckResult:
    """Cloned VMs keep the image's /etc/machine-id, from which systemd derives 'persistent' MACs: the
    duplicate VTEP MAC of seed 000 waiting to happen, even while the MACs still differ."""
    def known(facts: NodeFacts) -> str | None:
        return None if facts.machine_id == "uninitialized" else facts.machine_id  # until first boot ends

    mine = known(run.facts[host])
    if not mine:
        return CheckResult(host, note="no /etc/machine-id on the node (or not yet set: "
                                                           "'uninitialized' until first boot completes)")
    sharing = shared_by(run, "machine-id", lambda: {h: known(f) for h, f in run.facts.items()}, host)
    if not sharing:
        return CheckResult(host)
    return CheckResult(host, ("MACHINE_ID_DUPLICATE",),
        f"/etc/machine-id {mine} is shared by {', '.join(sharing)} (VMs cloned from one image)",
        evidence="\n".join(f"{h}: cat /etc/machine-id = {mine}" for h in sharing), values=_values(run, host))


@check("vtep-nm-unmanaged", "VTEP left alone by NetworkManager", "node", codes=("VTEP_NM_MANAGED",))
def nm_unmanaged(run: RunData, host: str) -> CheckResult:
    """NetworkManager must leave the VXLAN device alone (flannel#1330: it changed the MAC underneath)."""
    policy, device = run.facts[host].mac_policy, run.overlay["device"]
    if policy.nm_managed is None:
        return CheckResult(host, note=f"nmcli absent, or NetworkManager does not list {device}")
    if not policy.nm_managed:
        return CheckResult(host)
    return CheckResult(host, ("VTEP_NM_MANAGED",),
                       f"NetworkManager lists {device} as '{policy.nm_state}', not unmanaged",
                       evidence=f"{host}: nmcli -t -f DEVICE,STATE device: {device}:{policy.nm_state}",
                       values=_values(run, host))


@check("vtep-mac-advertised", "VTEP MAC as advertised", "node", codes=("VIEW_NODE_MISSING", "VTEP_MAC_MISMATCH"))
def mac_advertised(run: RunData, host: str) -> CheckResult:
    needs_view(run)
    device = run.facts[host].device
    if device is None:
        return CheckResult(host, note="no VXLAN device (see vxlan-device)")
    adv = run.view.get(host)
    if adv is None:
        return CheckResult(host, ("VIEW_NODE_MISSING",),
                           f"{host} ({run.addresses[host]}) is not in the cluster view ({run.view_source})",
                           values=_values(run, host))
    if adv.vtep_mac is None and adv.problem:
        return CheckResult(host, ("VTEP_MAC_MISMATCH",),
            f"{run.view_source} advertises no usable VtepMAC for {host} ({adv.problem}); {device.name} has "
            f"{device.mac}: peers cannot program an FDB or neighbour entry for it",
            evidence=f"{_link_evidence(run, host)}\nadvertised ({adv.source} {adv.node_name}): {adv.problem}",
            values=_values(run, host))
    if adv.vtep_mac == (device.mac or "").lower():
        return CheckResult(host)
    return CheckResult(host, ("VTEP_MAC_MISMATCH",),
        f"{device.name} has MAC {device.mac} but {run.view_source} advertises VtepMAC {adv.vtep_mac}; "
        "peers send this node's frames to the advertised MAC",
        evidence=f"{_link_evidence(run, host)}\nadvertised ({adv.source} {adv.node_name}): VtepMAC "
                 f"{adv.vtep_mac}", values=_values(run, host))


@check("vtep-local", "VTEP local address", "node", codes=("VTEP_LOCAL_MISMATCH",))
def local_address(run: RunData, host: str) -> CheckResult:
    facts = run.facts[host]
    device = facts.device
    if device is None:
        return CheckResult(host, note="no VXLAN device (see vxlan-device)")
    address = run.addresses[host]
    problems = []
    if device.local != address:
        problems.append(f"{device.name} sends from local {device.local}, not the node address {address}")
    underlay = facts.underlay
    holders = {a.dev for a in facts.addresses if a.address == address}
    if underlay is not None and holders and underlay.name not in holders:
        problems.append(f"it is bound to {underlay.name} but {address} is on {', '.join(sorted(holders))}")
    if not problems:
        return CheckResult(host)
    return CheckResult(host, ("VTEP_LOCAL_MISMATCH",), "; ".join(problems),
                       evidence=_link_evidence(run, host), values=_values(run, host))


@check("vtep-config", "VTEP VNI, port and learning", "node", codes=("CONFIG_INCONSISTENT",))
def config_consistent(run: RunData, host: str) -> CheckResult:
    """VNI, port and learning as configured (vxlan_vni, vxlan_port; flannel and Calico use nolearning unless
    flannel's network config read from the view says `"Learning": true`);
    Cilium's device must also be flow-based (external)."""
    device = run.facts[host].device
    if device is None:
        return CheckResult(host, note="no VXLAN device (see vxlan-device)")
    expected = cni.of_run(run).device_config(run)  # Cilium: also external (flow-based), id 0
    actual = {key: getattr(device, key, None) for key in expected}
    wrong = [f"{key} {actual[key]} (expected {value})" for key, value in expected.items()
             if actual[key] is not None and actual[key] != value]
    if not wrong:
        return CheckResult(host)
    return CheckResult(host, ("CONFIG_INCONSISTENT",),
                       f"{device.name}: {', '.join(wrong)}", evidence=_link_evidence(run, host),
                       values=_values(run, host))


@check("vtep-mtu", "VTEP MTU", "node", codes=("MTU_MISMATCH",))
def mtu(run: RunData, host: str) -> CheckResult:
    """Device MTU = vxlan_mtu, or underlay MTU - 50 (the VXLAN overhead) when not configured (Cilium: the
    underlay MTU itself; its routes carry the - 50)."""
    facts = run.facts[host]
    device = facts.device
    if device is None or device.mtu is None:
        return CheckResult(host, note="no VXLAN device (see vxlan-device)")
    configured = run.overlay.get("mtu")
    by_cni = None if configured else cni.of_run(run).expected_mtu(run, host)
    if configured:
        expected, why = int(configured), "vxlan_mtu"
    elif by_cni is not None:
        expected, why = by_cni
    elif facts.underlay is not None and facts.underlay.mtu:
        overhead = cni.of_run(run).mtu_overhead  # Cilium: DeviceMTU = the underlay's (0)
        expected = facts.underlay.mtu - overhead
        why = f"{facts.underlay.name} MTU {facts.underlay.mtu}" + (f" - {overhead}" if overhead else "")
    else:
        return CheckResult(host, note="underlay MTU unknown; MTU not checked")
    if device.mtu == expected:
        return CheckResult(host)
    return CheckResult(host, ("MTU_MISMATCH",),
                       f"{device.name} MTU is {device.mtu}, expected {expected} ({why})",
                       evidence=_link_evidence(run, host), values=_values(run, host, mtu=expected))
