"""Cilium's VXLAN tunnel mode (cilium/cilium pkg/datapath/loader/netlink.go, pkg/datapath/linux/node.go):
a flow-based device cilium_vxlan on UDP 8472 whose VNI carries the sender's security identity (so no fixed
VNI: 0 here). Read from Calico-style `projectcalico.org/` annotations for now (the VTEP MAC as given)."""

from __future__ import annotations

from collections.abc import Mapping

from vxlan_conformance.cni.base import Cni, Defaults, lower_mac, node_basics
from vxlan_conformance.model.advertised import Advertised

ANNOTATION_PREFIX = "projectcalico.org/"


class Cilium(Cni):
    name = "cilium"
    defaults = Defaults("cilium_vxlan", 8472, 0)

    def advertised(self, node: Mapping) -> Advertised:
        name, ann, internal, pod_cidr = node_basics(node)
        address = ann.get(ANNOTATION_PREFIX + "IPv4Address")
        return Advertised(
            node_name=name, source="kubectl", vtep_mac=lower_mac(ann.get(ANNOTATION_PREFIX + "VXLANTunnelMACAddr")),
            public_ip=address.split("/")[0] if address else None,
            backend_type="vxlan" if ANNOTATION_PREFIX + "IPv4VXLANTunnelAddr" in ann else None, pod_cidr=pod_cidr,
            vtep_ip=ann.get(ANNOTATION_PREFIX + "IPv4VXLANTunnelAddr"), internal_ip=internal)
