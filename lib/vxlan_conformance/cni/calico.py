"""Calico's VXLAN (projectcalico/calico felix/dataplane/linux/vxlan_mgr.go, route_mgr.go,
libcalico-go/lib/backend/k8s/resources/node.go): device vxlan.calico, VNI 4096, UDP 4789; its nodes'
addresses in the `projectcalico.org/` Node annotations."""

from __future__ import annotations

from collections.abc import Mapping

from vxlan_conformance.cni.base import Cni, Defaults, lower_mac, node_basics
from vxlan_conformance.model.advertised import Advertised

ANNOTATION_PREFIX = "projectcalico.org/"


class Calico(Cni):
    name = "calico"
    defaults = Defaults("vxlan.calico", 4789, 4096)

    def advertised(self, node: Mapping) -> Advertised:
        name, ann, internal, pod_cidr = node_basics(node)
        address = ann.get(ANNOTATION_PREFIX + "IPv4Address")
        return Advertised(
            node_name=name, source="kubectl", vtep_mac=lower_mac(ann.get(ANNOTATION_PREFIX + "VXLANTunnelMACAddr")),
            public_ip=address.split("/")[0] if address else None,
            backend_type="vxlan" if ANNOTATION_PREFIX + "IPv4VXLANTunnelAddr" in ann else None, pod_cidr=pod_cidr,
            vtep_ip=ann.get(ANNOTATION_PREFIX + "IPv4VXLANTunnelAddr"), internal_ip=internal)
