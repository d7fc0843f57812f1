"""flannel's VXLAN backend (flannel-io/flannel pkg/backend/vxlan/, pkg/subnet/kube/, pkg/subnet/etcd*):
device flannel.<VNI> (VNI 1, UDP 8472), per peer `fdb <VtepMAC> dst <PublicIP>`, a permanent neighbour
<subnet>.0 -> VtepMAC and a route <subnet> via <subnet>.0 onlink. It publishes every node in its Node
annotations (kube subnet manager) or in its etcd leases."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

from vxlan_conformance.cni.base import Cni, Defaults, lower_mac, network_address, node_basics
from vxlan_conformance.model.advertised import Advertised

ANNOTATION_PREFIX = "flannel.alpha.coreos.com/"
ETCD_PREFIX = "/coreos.com/network"


class LeaseError(ValueError):
    """An etcd lease that is not flannel's JSON."""


class Flannel(Cni):
    name = "flannel"
    defaults = Defaults("flannel.{vni}", 8472, 1)
    view_sources = ("kubectl", "etcd")

    def advertised(self, node: Mapping) -> Advertised:
        name, ann, internal, pod_cidr = node_basics(node)
        if ANNOTATION_PREFIX + "backend-data" not in ann and ANNOTATION_PREFIX + "public-ip" not in ann:
            return super().advertised(node)
        try:
            backend = json.loads(ann.get(ANNOTATION_PREFIX + "backend-data") or "{}")
        except ValueError:
            backend = {}
        return Advertised(
            node_name=name, source="kubectl", vtep_mac=lower_mac(backend.get("VtepMAC")),
            public_ip=ann.get(ANNOTATION_PREFIX + "public-ip"),
            public_ip_overwrite=ann.get(ANNOTATION_PREFIX + "public-ip-overwrite") or None,
            backend_type=ann.get(ANNOTATION_PREFIX + "backend-type"), pod_cidr=pod_cidr,
            vtep_ip=network_address(pod_cidr), internal_ip=internal)

    def leases(self, kvs: list[dict], prefix: str = ETCD_PREFIX) -> list[Advertised]:
        """flannel's leases from etcd v3 key-values (`etcdctl get --prefix <prefix>/subnets -w json`:
        keys and values are base64)."""
        leases = []
        for kv in kvs:
            key = base64.b64decode(kv["key"]).decode()
            if not key.startswith(prefix + "/subnets/"):
                continue
            subnet = key.rsplit("/", 1)[1].replace("-", "/")
            try:
                lease = json.loads(base64.b64decode(kv["value"]))
            except ValueError:
                raise LeaseError(f"etcd lease {key} is not JSON") from None
            data = lease.get("BackendData") or {}
            leases.append(Advertised(
                node_name=subnet, source="etcd", vtep_mac=lower_mac(data.get("VtepMAC")),
                public_ip=lease.get("PublicIP"), backend_type=lease.get("BackendType"), pod_cidr=subnet,
                vtep_ip=network_address(subnet)))
        return leases
