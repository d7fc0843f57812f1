"""What the overlay *advertises* about each node, next to which the node's real state is compared.

Sources: `kubectl get nodes -o json` (flannel kube-subnet-mgr annotations, Calico annotations), flannel's
etcd leases (`etcdctl get --prefix <prefix>/subnets -w json`), or none (before Kubernetes is installed).
Fetching is one command over SSH on the first control-plane (or etcd) host; parsing is pure and tested
against real outputs.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

FLANNEL = "flannel.alpha.coreos.com/"
CALICO = "projectcalico.org/"
FLANNEL_ETCD_PREFIX = "/coreos.com/network"


class ViewError(Exception):
    """One line: which source failed on which host, and what to do."""


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

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> Advertised:
        return cls(**data)


def _lower_mac(mac: object) -> str | None:
    return mac.lower() if isinstance(mac, str) and mac else None


def _network_address(cidr: str | None) -> str | None:
    if not cidr:
        return None
    try:
        return str(ipaddress.ip_network(cidr, strict=False).network_address)
    except ValueError:
        return None


def parse_kubectl_nodes(text: str) -> list[Advertised]:
    """Parse `kubectl get nodes -o json` (a v1 NodeList) into flannel or Calico advertisements."""
    try:
        items = json.loads(text)["items"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ViewError(f"kubectl output is not a NodeList ({exc.__class__.__name__})") from None
    return [_from_node(item) for item in items]


def _from_node(node: Mapping) -> Advertised:
    meta = node.get("metadata") or {}
    ann = meta.get("annotations") or {}
    spec = node.get("spec") or {}
    addresses = (node.get("status") or {}).get("addresses") or []
    internal = next((a.get("address") for a in addresses if a.get("type") == "InternalIP"), None)
    pod_cidr = spec.get("podCIDR") or next(iter(spec.get("podCIDRs") or []), None)
    name = meta.get("name", "")
    if FLANNEL + "backend-data" in ann or FLANNEL + "public-ip" in ann:
        try:
            backend = json.loads(ann.get(FLANNEL + "backend-data") or "{}")
        except ValueError:
            backend = {}
        return Advertised(
            node_name=name, source="kubectl", vtep_mac=_lower_mac(backend.get("VtepMAC")),
            public_ip=ann.get(FLANNEL + "public-ip"),
            public_ip_overwrite=ann.get(FLANNEL + "public-ip-overwrite") or None,
            backend_type=ann.get(FLANNEL + "backend-type"), pod_cidr=pod_cidr,
            vtep_ip=_network_address(pod_cidr), internal_ip=internal)
    calico_addr = ann.get(CALICO + "IPv4Address")
    return Advertised(
        node_name=name, source="kubectl", vtep_mac=_lower_mac(ann.get(CALICO + "VXLANTunnelMACAddr")),
        public_ip=calico_addr.split("/")[0] if calico_addr else None,
        backend_type="vxlan" if CALICO + "IPv4VXLANTunnelAddr" in ann else None, pod_cidr=pod_cidr,
        vtep_ip=ann.get(CALICO + "IPv4VXLANTunnelAddr"), internal_ip=internal)


def parse_etcd_leases(text: str, prefix: str = FLANNEL_ETCD_PREFIX) -> list[Advertised]:
    """Parse `etcdctl get --prefix <prefix>/subnets -w json` (keys and values are base64)."""
    try:
        kvs = json.loads(text).get("kvs") or []
    except (ValueError, AttributeError) as exc:
        raise ViewError(f"etcdctl output is not JSON ({exc.__class__.__name__})") from None
    leases = []
    for kv in kvs:
        key = base64.b64decode(kv["key"]).decode()
        if not key.startswith(prefix + "/subnets/"):
            continue
        subnet = key.rsplit("/", 1)[1].replace("-", "/")
        try:
            lease = json.loads(base64.b64decode(kv["value"]))
        except ValueError:
            raise ViewError(f"etcd lease {key} is not JSON") from None
        data = lease.get("BackendData") or {}
        leases.append(Advertised(
            node_name=subnet, source="etcd", vtep_mac=_lower_mac(data.get("VtepMAC")),
            public_ip=lease.get("PublicIP"), backend_type=lease.get("BackendType"), pod_cidr=subnet,
            vtep_ip=_network_address(subnet)))
    return leases


def match_hosts(advertised: Sequence[Advertised], hosts: Mapping[str, str],
                vtep_ips: Mapping[str, str | None] | None = None) -> dict[str, Advertised]:
    """Map inventory host -> advertisement: by node name, then by address, then by VTEP address.

    `hosts` maps inventory host name -> node address; `vtep_ips` maps host -> the address on its VXLAN
    device. Leases carry no node name, and a lease with a wrong PublicIP (seed 001) matches no address,
    so it is found by its subnet: flannel puts <subnet>.0 on the node's device.
    """
    by_address = {address: name for name, address in hosts.items()}
    by_vtep = {ip: name for name, ip in (vtep_ips or {}).items() if ip}
    matched: dict[str, Advertised] = {}
    for adv in advertised:
        candidates = [adv.node_name if adv.node_name in hosts else None,
                      by_address.get(adv.internal_ip or ""), by_address.get(adv.public_ip or ""),
                      by_vtep.get(adv.vtep_ip or "")]
        host = next((c for c in candidates if c is not None), None)
        if host is not None and host not in matched:
            matched[host] = Advertised(**{**adv.to_dict(), "host": host})
    return matched


def kubectl_command(kubectl: str) -> str:
    return f"{kubectl} get nodes -o json"


def etcdctl_command(etcdctl: str, prefix: str = FLANNEL_ETCD_PREFIX) -> str:
    return (f"ETCDCTL_API=3 {etcdctl} get --prefix {shlex.quote(prefix + '/subnets')} -w json")


Runner = Callable[[str], tuple[int, str, str]]


def fetch(kind: str, run: Runner, *, kubectl: str = "kubectl", etcdctl: str = "etcdctl",
          where: str) -> list[Advertised]:
    """Run the view command through `run` (SSH on `where`, or local) and parse it."""
    command = kubectl_command(kubectl) if kind.startswith("kubectl") else etcdctl_command(etcdctl)
    status, out, err = run(command)
    if status == 127:
        tool = "kubectl" if kind.startswith("kubectl") else "etcdctl"
        raise ViewError(f"{where}: {tool} not found ({command.split()[0] if tool == 'kubectl' else etcdctl});"
                        f" set vxlan_{tool} to its path or vxlan_cluster_view: none")
    if status != 0:
        first = (err or out).strip().splitlines()[:1]
        raise ViewError(f"{where}: `{command}` failed (exit {status}): {first[0] if first else 'no output'}")
    return parse_kubectl_nodes(out) if kind.startswith("kubectl") else parse_etcd_leases(out)


def local_runner(kubeconfig: str | None, timeout: float) -> Runner:
    """Run the view command on this machine (vxlan_cluster_view: kubectl-local)."""
    def run(command: str) -> tuple[int, str, str]:
        env_prefix = f"KUBECONFIG={shlex.quote(kubeconfig)} " if kubeconfig else ""
        try:
            proc = subprocess.run(["sh", "-c", env_prefix + command], capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return 124, "", f"timed out after {timeout:g} s"
        return proc.returncode, proc.stdout, proc.stderr
    return run
