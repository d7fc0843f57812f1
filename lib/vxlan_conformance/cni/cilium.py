"""Cilium's VXLAN tunnel mode (cilium/cilium pkg/datapath/loader/netlink.go, pkg/datapath/linux/node.go):
a flow-based device cilium_vxlan on UDP 8472 whose VNI carries the sender's security identity (so no fixed
VNI: 0 here). Read like Calico's annotations for now."""

from __future__ import annotations

from vxlan_conformance.cni.base import Defaults
from vxlan_conformance.cni.calico import Calico


class Cilium(Calico):
    name = "cilium"
    defaults = Defaults("cilium_vxlan", 8472, 0)
