"""Fault specs (`NAME[=VALUE]@TARGET`) and what each one changes, as plain data.

Each fault reproduces one field incident (seeds/README.md); `desired()` turns the healthy plan plus
the active faults into the exact overlay state every node must hold, so applying, adding and clearing
faults are all the same operation: program the desired state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import plan
from .errors import LabError
from .state import LabNode

PAIR_FAULTS = {"blocked-port", "bad-checksum", "stale-fdb", "missing-fdb", "missing-route", "missing-tunnel"}
# per preset, the faults that make no sense for it (the cilium preset has no FDB and its own device and
# routes, lab/cilium.py; only it has tunnel entries); cilium-agent writes rp_filter=0 itself
PRESET_EXCLUDED = {"cilium": {"stale-fdb", "missing-fdb", "vxlan-port", "underlay-mtu", "rp-filter"},
                   "flannel": {"missing-route", "missing-tunnel"},
                   "calico": {"missing-tunnel"}}
# the calico preset in felix's eBPF mode (lab up --calico-bpf, lab/calico_bpf.py), besides the calico preset's:
# what felix then never lets happen, per fault the reason from projectcalico/calico's felix
BPF_EXCLUDED = {
    "stale-fdb": "felix programs no FDB entries in eBPF mode (felix/vxlanfdb/vxlan_fdb.go WithNeighUpdatesOnly)",
    "missing-fdb": "felix programs no FDB entries in eBPF mode (felix/vxlanfdb/vxlan_fdb.go WithNeighUpdatesOnly)",
    "mtu": ("felix leaves vxlan.calico's MTU to the kernel in eBPF mode and puts VXLANMTU on its routes "
            "(felix/dataplane/linux/int_dataplane.go, vxlan_mgr.go tunnelRoute)"),
    "bad-checksum": ("the outer UDP checksum is 0 in eBPF mode, there is none to corrupt "
                     "(felix/bpf-gpl/fib_co_re.h: BPF_F_ZERO_CSUM_TX)"),
    "rp-filter": ("felix sets rp_filter 0 on all and 2 on the host's interfaces in eBPF mode "
                  "(felix/dataplane/linux/bpf_ep_mgr.go setRPFilter)"),
}
NODE_FAULTS = {"dup-vtep-mac", "dup-machine-id", "wrong-public-ip", "kernel", "random-fully", "offload", "mtu",
               "blackhole", "slow", "no-python", "unprivileged-user", "nm-managed", "hostile", "sudo-user", "mitm",
               "firewall", "vxlan-port", "underlay-mtu", "rp-filter"}
DUP_FAULTS = {"dup-vtep-mac", "dup-machine-id"}  # the first target's value copied to the others
VALUE_REQUIRED = {"kernel", "offload", "mtu", "slow", "hostile", "sudo-user", "firewall", "vxlan-port", "underlay-mtu"}
# `firewall=<kind>`: the node's own host firewall (in its netns, after its NIC), as each tool writes it
FIREWALL_KINDS = ("iptables", "nftables", "firewalld", "firewalld-allow", "firewalld-vxlan-only")
# `hostile=<kind>`: a PATH-first fake binary on the node answers the suite with bad output
HOSTILE_KINDS = ("facts-flood", "facts-markers", "agent-flood", "agent-garbage", "kubectl-flood")
SUDO_KINDS = ("password", "nopasswd")  # `sudo-user=<kind>`: login SUDO_USER, sudo with a password or NOPASSWD
SUDO_USER = "vxcsudo"
SUDO_PASSWORD = "vxlan-lab-sudo-Pw-4b1e"  # SUDO_USER's login and sudo password (a lab secret, like the lab key)
MAX_SLOW_S = 600
KERNEL_RELEASE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]{0,63}$")
SPEC = re.compile(r"^(?P<name>[a-z-]+)(?:=(?P<value>[^@]*))?@(?P<target>.+)$")
LAB_USER = "vxcuser"  # the `unprivileged-user` fault's login: no root, no sudo, the lab key


@dataclass(frozen=True)
class Fault:
    spec: str
    name: str
    value: str | None
    targets: tuple[str, ...]  # nodes hit (for a pair fault: the receivers)
    source: str | None = None  # pair fault `A->B`: only traffic from A


def parse(spec: str, node_names: list[str]) -> Fault:
    """Validate one spec against the lab's nodes; every mistake is a one-line LabError."""
    match = SPEC.match(spec.strip())
    if not match:
        raise LabError(f"malformed fault {spec!r}: use NAME[=VALUE]@TARGET, e.g. blocked-port@node2")
    name, value, target = match["name"], match["value"], match["target"]
    if name not in PAIR_FAULTS | NODE_FAULTS:
        known = ", ".join(sorted(PAIR_FAULTS | NODE_FAULTS))
        raise LabError(f"unknown fault {name!r} in {spec!r}: known faults are {known}")
    _check_value(spec, name, value)
    source = None
    if target == "all":
        targets = tuple(node_names)
    elif "->" in target:
        if name not in PAIR_FAULTS:
            raise LabError(f"fault {name!r} takes nodes, not a pair, in {spec!r}: use {name}@nodeX[,nodeY]")
        source, _, dest = target.partition("->")
        _check_nodes(spec, [source, dest], node_names)
        if source == dest:
            raise LabError(f"pair {target!r} in {spec!r} names one node twice: use nodeA->nodeB")
        targets = (dest,)
    else:
        targets = tuple(target.split(","))
        _check_nodes(spec, list(targets), node_names)
        if len(set(targets)) != len(targets):
            raise LabError(f"target {target!r} in {spec!r} lists a node twice")
    if name in DUP_FAULTS and len(targets) == 1:
        if targets[0] == node_names[0]:
            raise LabError(f"{spec!r}: {targets[0]} alone cannot share its own value; name two nodes")
        targets = (node_names[0],) + targets
    return Fault(spec.strip(), name, value, targets, source)


def check_preset(faults: list[Fault], preset: str, bpf: bool = False) -> None:
    """Refuse a fault the preset (with --calico-bpf: felix's eBPF mode) cannot have, in one line."""
    for fault in faults:
        if fault.name in PRESET_EXCLUDED.get(preset, ()):
            raise LabError(f"fault {fault.name!r} does not apply to the {preset} preset")
        if bpf and fault.name in BPF_EXCLUDED:
            raise LabError(f"fault {fault.name!r} does not apply to Calico eBPF mode (--calico-bpf): "
                           f"{BPF_EXCLUDED[fault.name]}")


def _check_value(spec: str, name: str, value: str | None) -> None:
    if name not in VALUE_REQUIRED:
        if value is not None:
            raise LabError(f"fault {name!r} takes no value in {spec!r}: use {name}@TARGET")
        return
    if not value:
        raise LabError(f"fault {name!r} needs a value in {spec!r}: use {name}=VALUE@TARGET")
    if name == "offload" and value not in ("on", "off"):
        raise LabError(f"bad value {value!r} in {spec!r}: offload takes on or off")
    if name == "firewall" and value not in FIREWALL_KINDS:
        raise LabError(f"bad value {value!r} in {spec!r}: firewall takes one of {', '.join(FIREWALL_KINDS)}")
    if name == "vxlan-port" and not (value.isdigit() and 1024 <= int(value) <= 65535):
        raise LabError(f"bad value {value!r} in {spec!r}: vxlan-port takes a port 1024..65535")
    if name == "underlay-mtu" and not (value.isdigit() and 1280 <= int(value) <= 9000):
        raise LabError(f"bad value {value!r} in {spec!r}: underlay-mtu takes an integer 1280..9000")
    if name == "mtu" and not (value.isdigit() and 68 <= int(value) <= 65485):
        raise LabError(f"bad value {value!r} in {spec!r}: mtu takes an integer 68..65485")
    if name == "slow" and not (value.isdigit() and 1 <= int(value) <= MAX_SLOW_S):
        raise LabError(f"bad value {value!r} in {spec!r}: slow takes whole seconds 1..{MAX_SLOW_S}")
    if name == "hostile" and value not in HOSTILE_KINDS:
        raise LabError(f"bad value {value!r} in {spec!r}: hostile takes one of {', '.join(HOSTILE_KINDS)}")
    if name == "sudo-user" and value not in SUDO_KINDS:
        raise LabError(f"bad value {value!r} in {spec!r}: sudo-user takes password or nopasswd")
    if name == "kernel" and not KERNEL_RELEASE.match(value):
        raise LabError(f"bad value {value!r} in {spec!r}: kernel takes a release like 4.19.90-52.49.v2207.ky10.x86_64")


def _check_nodes(spec: str, names: list[str], node_names: list[str]) -> None:
    known = set(node_names)
    for name in names:
        if name not in known:
            raise LabError(f"unknown node {name!r} in {spec!r}: this lab has node1..node{len(node_names)}")


@dataclass
class Desired:
    """The complete overlay state the lab must hold for a set of faults."""

    macs: dict[str, str]
    locals: dict[str, str]  # VXLAN local address = advertised public IP
    machine_ids: dict[str, str]  # what /etc/machine-id reads on the node
    fdb: dict[str, list[tuple[str, str]]]  # node -> [(peer MAC, dst)] in node order (last writer wins)
    mtu: dict[str, int] = field(default_factory=dict)
    offload: dict[str, str] = field(default_factory=dict)
    kernel: dict[str, str] = field(default_factory=dict)
    random_fully: set[str] = field(default_factory=set)
    blocked: list[tuple[str | None, str]] = field(default_factory=list)  # (saddr or any, daddr)
    bad_checksum: dict[str, list[str | None]] = field(default_factory=dict)  # node -> daddrs (None = all)
    nat_on_lo: bool = False
    blackholed: list[str] = field(default_factory=list)  # node addresses whose every packet is dropped
    slow: dict[str, int] = field(default_factory=dict)  # node -> seconds every SSH command waits first
    no_python: set[str] = field(default_factory=set)  # nodes where SSH sessions find no Python
    unprivileged_user: set[str] = field(default_factory=set)  # nodes where LAB_USER can log in
    nm_managed: set[str] = field(default_factory=set)  # nodes whose nmcli lists the VXLAN device as managed
    hostile: dict[str, str] = field(default_factory=dict)  # node -> HOSTILE_KINDS entry
    sudo_user: dict[str, str] = field(default_factory=dict)  # node -> SUDO_KINDS entry
    mitm: set[str] = field(default_factory=set)  # nodes whose sshd answers with another host key
    firewall: dict[str, str] = field(default_factory=dict)  # node -> FIREWALL_KINDS entry
    ports: dict[str, int] = field(default_factory=dict)  # node -> its VXLAN device's dstport (others: the lab's)
    underlay_mtu: dict[str, int] = field(default_factory=dict)  # node -> eth0 MTU (the overlay keeps 1450)
    rp_filter: set[str] = field(default_factory=set)  # nodes with eth1, routes to peers by it, strict rp_filter
    missing_routes: set[tuple[str, str]] = field(default_factory=set)  # cilium, calico: (node, peer) without routes
    missing_tunnel: set[tuple[str, str]] = field(default_factory=set)  # cilium: (node, peer) without tunnel entry


def desired(instance: int, nodes: list[LabNode], faults: list[Fault]) -> Desired:
    macs = {n.name: n.base_mac for n in nodes}
    locals_ = {n.name: n.address for n in nodes}
    address = {n.name: n.address for n in nodes}
    machine_ids = {n.name: plan.machine_id(instance, n.name) for n in nodes}
    out = Desired(macs, locals_, machine_ids, {})
    stale: dict[tuple[str, str], str | None] = {}  # (src, dst node) -> fdb dst override, None = no entry
    for fault in faults:
        hit = fault.targets
        if fault.name == "dup-vtep-mac":
            for name in hit[1:]:
                macs[name] = macs[hit[0]]
        elif fault.name == "dup-machine-id":
            for name in hit[1:]:
                machine_ids[name] = machine_ids[hit[0]]
        elif fault.name == "nm-managed":
            out.nm_managed.update(hit)
        elif fault.name == "wrong-public-ip":
            out.nat_on_lo = True
            for name in hit:
                locals_[name] = plan.nat_address(instance)
        elif fault.name == "mtu":
            out.mtu.update(dict.fromkeys(hit, int(fault.value)))
        elif fault.name == "offload":
            out.offload.update(dict.fromkeys(hit, fault.value))
        elif fault.name == "kernel":
            out.kernel.update(dict.fromkeys(hit, fault.value))
        elif fault.name == "random-fully":
            out.random_fully.update(hit)
        elif fault.name == "blocked-port":
            src = address[fault.source] if fault.source else None
            out.blocked.extend((src, address[name]) for name in hit)
        elif fault.name == "blackhole":
            out.blackholed.extend(address[name] for name in hit if address[name] not in out.blackholed)
        elif fault.name == "slow":
            out.slow.update(dict.fromkeys(hit, int(fault.value)))
        elif fault.name == "no-python":
            out.no_python.update(hit)
        elif fault.name == "unprivileged-user":
            out.unprivileged_user.update(hit)
        elif fault.name == "hostile":
            out.hostile.update(dict.fromkeys(hit, fault.value))
        elif fault.name == "sudo-user":
            out.sudo_user.update(dict.fromkeys(hit, fault.value))
        elif fault.name == "firewall":
            out.firewall.update(dict.fromkeys(hit, fault.value))
        elif fault.name == "vxlan-port":
            out.ports.update(dict.fromkeys(hit, int(fault.value)))
        elif fault.name == "underlay-mtu":
            out.underlay_mtu.update(dict.fromkeys(hit, int(fault.value)))
        elif fault.name == "rp-filter":
            out.rp_filter.update(hit)
        elif fault.name == "mitm":
            out.mitm.update(hit)
        elif fault.name == "bad-checksum":
            if fault.source:  # bad-checksum@A->B: A's packets to B only
                out.bad_checksum.setdefault(fault.source, []).append(address[hit[0]])
            else:
                for name in hit:
                    out.bad_checksum.setdefault(name, []).append(None)
        elif fault.name in ("missing-route", "missing-tunnel"):
            into = out.missing_routes if fault.name == "missing-route" else out.missing_tunnel
            for dst in hit:
                sources = [fault.source] if fault.source else [n.name for n in nodes if n.name != dst]
                into.update((src, dst) for src in sources)
        elif fault.name in ("stale-fdb", "missing-fdb"):
            override = plan.stale_address(instance) if fault.name == "stale-fdb" else None
            for dst in hit:
                sources = [fault.source] if fault.source else [n.name for n in nodes if n.name != dst]
                stale.update(dict.fromkeys(((src, dst) for src in sources), override))
    for node in nodes:
        entries = []
        for peer in nodes:
            if peer.name == node.name:
                continue
            key = (node.name, peer.name)
            if key in stale and stale[key] is None:
                continue
            entries.append((macs[peer.name], stale.get(key) or locals_[peer.name]))
        out.fdb[node.name] = entries
    return out
