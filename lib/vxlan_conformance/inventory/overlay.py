"""The suite's own settings: flat Ansible vars prefixed `vxlan_` (contract), with per-CNI defaults.

Per-CNI defaults (what each CNI configures when left alone):
  flannel: device flannel.<VNI>, UDP 8472, VNI 1
  calico:  device vxlan.calico, UDP 4789, VNI 4096 (FelixConfiguration vxlanPort / vxlanVNI)
  cilium:  device cilium_vxlan, UDP 8472, VNI 0: the device is a collect-metadata (`external`) VXLAN
           device; each frame's VNI carries the sender's security identity, so there is no fixed VNI.
When vxlan_cni is unset the CNI comes from kubespray's kube_network_plugin or kubeasz's CLUSTER_NETWORK,
and kubespray's flannel_vxlan_port/_vni and calico_vxlan_port/_vni fill in port and VNI.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any

from vxlan_conformance import cni as cni_module
from vxlan_conformance.inventory.raw import InventoryError
from vxlan_conformance.inventory.values import VarReader

CNIS = cni_module.NAMES
CLUSTER_VIEWS = ("kubectl", "kubectl-local", "etcd", "none")
HOST_KEY_POLICIES = ("strict", "accept-new", "off")
KERNEL_POLICIES = ("denylist", "allowlist")
_KUBESPRAY_PORT_VNI = {"flannel": (("flannel_vxlan_port",), ("flannel_vxlan_vni",)),
                       "calico": (("calico_vxlan_port",), ("calico_vxlan_vni",))}
# IPPool spec.vxlanMode, lower-cased (kubespray: calico_vxlan_mode)
CALICO_VXLAN_MODES = ("always", "crosssubnet", "never")
_CNI_HINTS = ("kube_network_plugin", "CLUSTER_NETWORK")


@dataclass(frozen=True)
class Overlay:
    """What the overlay should look like on every node, and how the suite reaches the cluster view."""

    cni: str = "flannel"
    device: str = "flannel.1"
    port: int = 8472
    vni: int = 1
    mtu: int | None = None
    cluster_view: str = "kubectl"
    kubectl: str = "kubectl"
    kubeconfig: str | None = None
    etcdctl: str = "etcdctl"
    etcd_prefix: str = "/coreos.com/network"                 # flannel --etcd-prefix
    annotation_prefix: str = "flannel.alpha.coreos.com"      # flannel --kube-annotation-prefix
    probe_port: int = 18472
    host_key_policy: str | None = None  # None: the ssh config's StrictHostKeyChecking, else strict
    known_hosts: str | None = None
    kernel_policy: str = "denylist"
    kernel_list: str | None = None
    calico_vxlan_mode: str | None = None  # always | crosssubnet | never; the IPPools' vxlanMode wins
    calico_version: str | None = None     # e.g. v3.16.4: the VXLAN MTU default (1410 before v3.17.0)


SETTINGS = tuple(f"vxlan_{f.name}" for f in fields(Overlay))


def check_setting_names(names: Iterable[str], source: Path | str) -> None:
    """Refuse a misspelt vxlan_* name instead of silently running with the default."""
    for name in names:
        if name.startswith("vxlan_") and name not in SETTINGS:
            close = difflib.get_close_matches(name, SETTINGS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise InventoryError(f"unknown setting {name} in {source}{hint}; known: {', '.join(SETTINGS)}")


def overlay_for(read: VarReader, source: Path) -> Overlay:
    """Overlay settings as one host sees them (vxlan_* must be the same for every overlay node)."""
    cni = read.choice("vxlan_cni", CNIS) or _inferred_cni(read)
    device_default, port_default, vni_default = astuple(cni_module.by_name(cni).defaults)
    hint_port, hint_vni = _KUBESPRAY_PORT_VNI.get(cni, ((), ()))
    vni = _or(read.integer("vxlan_vni", *hint_vni, low=0, high=2**24 - 1), vni_default)
    device = read.text("vxlan_device") or device_default.format(vni=vni)
    if len(device) > 15 or any(c in device for c in "/: \t"):
        raise read.fail("vxlan_device", device, "is not a Linux interface name; use at most 15 characters")
    return Overlay(
        cni=cni,
        device=device,
        port=_or(read.integer("vxlan_port", *hint_port, low=1, high=65535), port_default),
        vni=vni,
        mtu=read.integer("vxlan_mtu", low=68, high=65535),
        cluster_view=read.choice("vxlan_cluster_view", CLUSTER_VIEWS) or "kubectl",
        kubectl=read.text("vxlan_kubectl") or "kubectl",
        kubeconfig=_local_path(read.text("vxlan_kubeconfig"), source),
        etcdctl=read.text("vxlan_etcdctl") or "etcdctl",
        etcd_prefix=_etcd_prefix(read),
        annotation_prefix=(read.text("vxlan_annotation_prefix") or "flannel.alpha.coreos.com").rstrip("/"),
        probe_port=_or(read.integer("vxlan_probe_port", low=1, high=65535), 18472),
        host_key_policy=read.choice("vxlan_host_key_policy", HOST_KEY_POLICIES),
        known_hosts=_local_path(read.text("vxlan_known_hosts"), source),
        kernel_policy=read.choice("vxlan_kernel_policy", KERNEL_POLICIES) or "denylist",
        kernel_list=_local_path(read.text("vxlan_kernel_list"), source),
        calico_vxlan_mode=read.choice("vxlan_calico_vxlan_mode", CALICO_VXLAN_MODES)
        or _calico_mode(read.text("calico_vxlan_mode")),
        calico_version=read.text("vxlan_calico_version", "calico_version"),
    )


def _etcd_prefix(read: VarReader) -> str:
    value = read.text("vxlan_etcd_prefix") or "/coreos.com/network"
    if not value.startswith("/") or any(c.isspace() for c in value):
        raise read.fail("vxlan_etcd_prefix", value, "is not an etcd key prefix; flannel's default is "
                        "/coreos.com/network (its --etcd-prefix)")
    return value.rstrip("/") or "/"


def first_difference(a: Overlay, b: Overlay) -> tuple[str, Any, Any]:
    """The first setting (as its vxlan_ name) on which two hosts' overlays disagree."""
    for f in fields(Overlay):
        if getattr(a, f.name) != getattr(b, f.name):
            return f"vxlan_{f.name}", getattr(a, f.name), getattr(b, f.name)
    raise ValueError("overlays are equal")


def _inferred_cni(read: VarReader) -> str:
    for name in _CNI_HINTS:
        value = read.text(name)
        if value is None:
            continue
        if value.strip().lower() not in CNIS:
            raise read.fail(name, value, "is not a VXLAN overlay this suite checks; set vxlan_cni "
                            f"({', '.join(CNIS)}) if the cluster runs one")
        return value.strip().lower()
    return "flannel"


def _calico_mode(value: str | None) -> str | None:
    """kubespray's calico_vxlan_mode, when it is one of Calico's modes (else left to the IPPools)."""
    mode = (value or "").strip().lower()
    return mode if mode in CALICO_VXLAN_MODES else None


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _local_path(value: str | None, source: Path) -> str | None:
    """Paths on the machine running the suite: `~` expanded, relative to the inventory's directory."""
    if value is None:
        return None
    path = Path(os.path.expanduser(value))
    return str(path if path.is_absolute() else (source if source.is_dir() else source.parent) / path)
