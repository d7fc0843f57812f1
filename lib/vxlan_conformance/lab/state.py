"""What a running lab looks like, persisted as JSON so any process can inspect or tear it down."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import plan


@dataclass
class LabNode:
    name: str
    address: str
    netns: str
    vtep_mac: str  # the device's real MAC (after faults): what leases and annotations advertise
    vtep_ip: str
    subnet: str
    sshd_pid: int = 0
    sshd_start: str = ""  # /proc/<pid>/stat start time: guards against killing a recycled PID
    base_mac: str = ""  # the MAC the node was built with, restored when faults are cleared
    eth_mac: str = ""  # eth0's MAC, fixed up front so underlay ARP can be static (see overlay.py)


@dataclass
class LabState:
    instance: int
    preset: str
    device: str
    port: int
    vni: int
    nodes: list[LabNode]
    key_path: str
    known_hosts_path: str
    inventory_path: str
    etcd_endpoint: str
    faults: list[str] = field(default_factory=list)
    cluster_view: str = "kubectl"
    etcd_pid: int = 0
    etcd_start: str = ""
    mounts: dict[str, list[str]] = field(default_factory=dict)  # node -> paths bind-mounted by faults
    flanneld: str = ""  # real flanneld binary (lab up --flanneld); "" = the imitation programs the nodes
    flanneld_version: str = ""
    flanneld_pids: dict[str, list] = field(default_factory=dict)  # node -> [pid, /proc start time]
    flannel_prefix: str = ""  # flannel's --etcd-prefix when not the default (lab up --etcd-prefix)
    public_ip_overwrite: dict[str, str] = field(default_factory=dict)  # node -> annotated public IP
    direct_routing: bool = False  # flannel's DirectRouting (implies two underlay subnets)
    underlay_subnets: int = 1  # lab up --underlay-subnets: nodes on this many routed subnets (subnets.py)
    vxlan_mode: str = "Always"  # calico: the IPPool's vxlanMode (lab up --vxlan-mode)
    cilium_version: str = ""  # cilium: the version its cilium-dbg stand-in answers as (lab up --cilium-version)
    calico_bpf: bool = False  # calico: felix in eBPF mode (lab up --calico-bpf, lab/calico_bpf.py)
    bpf_host_source: str = "TunnelAddress"  # its BPFOverlayHostSourceIP (lab up --bpf-overlay-host-source-ip)

    def node(self, name: str) -> LabNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    @property
    def state_dir(self) -> Path:
        return plan.state_dir(self.instance)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LabState:
        data = dict(data)
        data["nodes"] = [LabNode(**node) for node in data["nodes"]]
        return cls(**data)


def state_file(instance: int) -> Path:
    return plan.state_dir(instance) / "state.json"


def save(state: LabState) -> None:
    """Write atomically so a concurrent `status` never reads half a file."""
    path = state_file(state.instance)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state.to_dict(), indent=1))
    os.replace(tmp, path)


def load(instance: int) -> LabState | None:
    path = state_file(instance)
    if not path.exists():
        return None
    return LabState.from_dict(json.loads(path.read_text()))
