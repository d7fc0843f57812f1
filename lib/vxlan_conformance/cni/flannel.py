"""flannel's VXLAN backend (flannel-io/flannel pkg/backend/vxlan/, pkg/subnet/kube/, pkg/subnet/etcd*):
device flannel.<VNI> (VNI 1, UDP 8472), per peer `fdb <VtepMAC> dst <PublicIP>`, a permanent neighbour
<subnet>.0 -> VtepMAC and a route <subnet> via <subnet>.0 onlink. It publishes every node in its Node
annotations (kube subnet manager) or in its etcd leases: through the etcd v3 API (flannel >= 0.18,
subnet/etcd/registry.go) or the v2 API (flannel 0.9 to 0.17 in etcd mode, subnet/etcdv2/registry.go).

`DirectRouting: true` (backend/vxlan/vxlan_network.go handleSubnetEvents): a peer whose public IP the node
reaches without a gateway (`netlink.RouteGet(PublicIP)` gives one route and no Gw) gets a plain route
`<subnet> via <PublicIP> dev <underlay>` and no FDB or neighbour entry; only the other peers use VXLAN.
`Learning: true` creates the device without `nolearning` (backend/vxlan/vxlan.go)."""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any

from vxlan_conformance.cni.base import (
    Cni,
    Defaults,
    ExpectedRoute,
    PeerPlan,
    lower_mac,
    network_address,
    node_basics,
)
from vxlan_conformance.model.advertised import Advertised
from vxlan_conformance.model.rundata import RunData

ANNOTATION_PREFIX = "flannel.alpha.coreos.com/"   # --kube-annotation-prefix (main.go), "/" appended
ETCD_PREFIX = "/coreos.com/network"               # --etcd-prefix (main.go)
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


class LeaseError(ValueError):
    """An etcd lease that is not flannel's JSON."""


def annotation_prefix(value: str | None) -> str:
    """flannel's --kube-annotation-prefix as its annotation keys start (pkg/subnet/kube/annotations.go:
    `<prefix>/backend-data`); given with or without the trailing slash."""
    if not value:
        return ANNOTATION_PREFIX
    return value.rstrip("/") + "/"


def subnet_of_key(key: str) -> str:
    """The IPv4 subnet of a lease key `<prefix>/subnets/10.244.1.0-24`; a dual-stack key
    `10.244.1.0-24&fd00::-64` (subnet/etcd/registry.go parseSubnetKey) gives its IPv4 part."""
    name = key.rsplit("/", 1)[1].split("&", 1)[0]
    return name.replace("-", "/")


def _backend(raw: Any) -> tuple[dict, str | None]:
    """BackendData as an object, and what is wrong with it (null, not an object, no or a bad VtepMAC)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}, f"backend-data is not JSON ({raw[:40]!r})"
    if raw is None:
        return {}, "backend-data is null"
    if not isinstance(raw, dict):
        return {}, f"backend-data is not an object ({json.dumps(raw)[:40]})"
    mac = raw.get("VtepMAC")
    if mac is None:
        return raw, "backend-data has no VtepMAC"
    if not isinstance(mac, str) or not _MAC.match(mac.lower()):
        return {**raw, "VtepMAC": None}, f"backend-data VtepMAC {json.dumps(mac)[:40]} is not a MAC address"
    return raw, None


class Flannel(Cni):
    name = "flannel"
    defaults = Defaults("flannel.{vni}", 8472, 1)
    view_sources = ("kubectl", "etcd")

    def __init__(self, annotations: str = ANNOTATION_PREFIX) -> None:
        self.annotations = annotation_prefix(annotations)

    def for_settings(self, overlay: Mapping) -> Flannel:
        return Flannel(annotation_prefix(overlay.get("annotation_prefix")))

    def advertised(self, node: Mapping) -> Advertised:
        name, ann, internal, pod_cidr = node_basics(node)
        p = self.annotations
        if p + "backend-data" not in ann and p + "public-ip" not in ann:
            return super().advertised(node)
        backend, problem = _backend(ann.get(p + "backend-data"))
        # public-ip-overwrite: set from the Node by the operator (kube.go); node-public-ip: newer flannel's
        # per-node choice of the public IP (main.go). Both are what the node is meant to advertise.
        overwrite = ann.get(p + "public-ip-overwrite") or ann.get(p + "node-public-ip") or None
        return Advertised(
            node_name=name, source="kubectl", vtep_mac=lower_mac(backend.get("VtepMAC")),
            public_ip=ann.get(p + "public-ip"), public_ip_overwrite=overwrite,
            backend_type=ann.get(p + "backend-type"), pod_cidr=pod_cidr,
            vtep_ip=network_address(pod_cidr), internal_ip=internal, problem=problem)

    def leases(self, kvs: list[dict], prefix: str = ETCD_PREFIX) -> list[Advertised]:
        """flannel's leases from etcd v3 key-values (`etcdctl get --prefix <prefix>/subnets -w json`:
        keys and values are base64)."""
        return self.leases_v2([(base64.b64decode(kv["key"]).decode(), base64.b64decode(kv["value"]))
                               for kv in kvs], prefix)

    def leases_v2(self, items: list[tuple[str, str | bytes]], prefix: str = ETCD_PREFIX) -> list[Advertised]:
        """flannel's leases from plain (key, value) pairs (the v2 API's keys, or decoded v3 ones)."""
        leases = []
        for key, value in items:
            if not key.startswith(prefix.rstrip("/") + "/subnets/"):
                continue
            subnet = subnet_of_key(key)
            try:
                lease = json.loads(value)
            except ValueError:
                raise LeaseError(f"etcd lease {key} is not JSON") from None
            if not isinstance(lease, dict):
                raise LeaseError(f"etcd lease {key} is not a JSON object")
            data, problem = _backend(lease.get("BackendData"))
            leases.append(Advertised(
                node_name=subnet, source="etcd", vtep_mac=lower_mac(data.get("VtepMAC")),
                public_ip=lease.get("PublicIP"), backend_type=lease.get("BackendType"), pod_cidr=subnet,
                vtep_ip=network_address(subnet), problem=problem))
        return leases

    # -- the network config ----------------------------------------------------------------------
    @staticmethod
    def backend_config(run: RunData) -> dict:
        """The Backend object of the network config (<prefix>/config) when the view read it."""
        backend = (run.view_config or {}).get("Backend")
        return backend if isinstance(backend, dict) else {}

    def learning(self, run: RunData) -> bool:
        return self.backend_config(run).get("Learning") is True

    def direct_routing(self, run: RunData) -> tuple[bool, str]:
        """Whether DirectRouting is on, and how the suite knows: from the network config when the view
        read it, else from the nodes' routes (a route to a peer's pod subnet via the peer's public IP)."""
        backend = self.backend_config(run)
        if "DirectRouting" in backend or run.view_config:
            return backend.get("DirectRouting") is True, "the network config"
        return run.derived("flannel_direct_inferred", lambda: _direct_from_routes(self, run)), "the nodes' routes"

    def peer_plan(self, run: RunData, a: str, b: str) -> PeerPlan:
        plan = super().peer_plan(run, a, b)
        direct, known = self.direct_routing(run)
        if not direct:
            return plan
        peer = self.vtep(run, b)
        facts = run.facts.get(a)
        if facts is None or not peer.public_ip or not _on_link(facts, peer.public_ip):
            return PeerPlan(plan.vxlan, plan.fdb, plan.neigh, plan.routes,
                            f"DirectRouting ({known}): {b} is not on {a}'s subnet, reached over VXLAN",
                            plan.why_not)
        dev = facts.underlay.name if facts.underlay is not None else None
        routes = (ExpectedRoute(peer.pod_cidr, peer.public_ip, dev or ""),) if peer.pod_cidr and dev else ()
        why = None if routes else {"routes": f"{b}'s pod subnet or {a}'s underlay unknown; not compared"}
        return PeerPlan(vxlan=False, routes=routes, why_not=why,
                        note=f"DirectRouting ({known}): {b} ({peer.public_ip}) is on {a}'s subnet, so flannel "
                             f"routes {b}'s pods via the underlay{' ' + dev if dev else ''} without VXLAN; no "
                             "FDB or neighbour entry is expected")


def _on_link(facts: Any, address: str) -> bool:
    """flannel's test (vxlan_network.go): RouteGet(address) gives a route without a gateway. From the node's
    main table: the longest-prefix route to the address has no `via`."""
    ip = ipaddress.ip_address(address)
    best, best_len = None, -1
    for route in facts.routes:
        if route.type not in (None, "unicast") or not route.dst:
            continue
        dst = "0.0.0.0/0" if route.dst == "default" else route.dst
        try:
            net = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        if net.version == ip.version and ip in net and net.prefixlen > best_len:
            best, best_len = route, net.prefixlen
    return best is not None and best.via is None


def _direct_from_routes(model: Flannel, run: RunData) -> bool:
    for a, facts in run.facts.items():
        device = facts.device.name if facts.device else run.overlay.get("device")
        for b in run.nodes:
            if b == a:
                continue
            peer = model.vtep(run, b)
            if not peer.pod_cidr or not peer.public_ip:
                continue
            try:
                net = ipaddress.ip_network(peer.pod_cidr, strict=False)
            except ValueError:
                continue
            if any(r.via == peer.public_ip and r.dev != device for r in facts.routes_to(net)):
                return True
    return False
