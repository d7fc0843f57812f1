"""One node as the overlay announces it to its peers (Node annotations, CRDs or etcd leases)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Advertised:
    """One node as the overlay announces it to its peers."""

    node_name: str                 # Kubernetes node name, or the lease's subnet for etcd
    source: str                    # kubectl | etcd
    vtep_mac: str | None = None
    public_ip: str | None = None   # the underlay address peers send VXLAN to
    public_ip_overwrite: str | None = None
    backend_type: str | None = None
    pod_cidr: str | None = None
    vtep_ip: str | None = None     # flannel: the pod subnet's network address; Calico: tunnel address
    internal_ip: str | None = None
    host: str | None = None        # the inventory host this node was matched to
    problem: str | None = None     # what is wrong with the advertisement itself (e.g. backend-data null)
    vtep_mac_source: str | None = None  # where vtep_mac comes from when not published as is (Calico: felix-derived)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> Advertised:
        return cls(**data)
