"""What the overlay *advertises* about each node, next to which the node's real state is compared.

Sources: `kubectl get nodes -o json` (flannel kube-subnet-mgr annotations, Calico annotations), flannel's
etcd leases (`etcdctl get --prefix <prefix>/subnets -w json`), or none (before Kubernetes is installed).
Fetching is one command over SSH on the first control-plane (or etcd) host; parsing is pure and tested
against real outputs.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence

from vxlan_conformance.cni import Cni
from vxlan_conformance.cni.flannel import ETCD_PREFIX, Flannel, LeaseError
from vxlan_conformance.model.advertised import Advertised

Runner = Callable[[str], tuple[int, str, str]]


class ViewError(Exception):
    """One line: which source failed on which host, and what to do."""


def parse_kubectl_nodes(text: str, cni: Cni, more: Mapping[str, str] | None = None) -> list[Advertised]:
    """Parse `kubectl get nodes -o json` (a v1 NodeList) into what `cni` advertises for each node; `more`:
    the output of `kubectl get <resource> -o json` for the CNI's other view resources (CiliumNodes)."""
    lists = {"nodes": _items(text, "nodes")}
    lists.update({resource: _items(out, resource) for resource, out in (more or {}).items()})
    return cni.advertised_all(lists)


def _items(text: str, resource: str) -> list:
    try:
        items = json.loads(text)["items"]
    except (ValueError, KeyError, TypeError) as exc:
        kind = "a NodeList" if resource == "nodes" else f"a list of {resource}"
        raise ViewError(f"kubectl output is not {kind} ({exc.__class__.__name__})") from None
    if not isinstance(items, list):
        raise ViewError(f"kubectl output for {resource} has no list of items")
    return items


def parse_etcd_leases(text: str, prefix: str = ETCD_PREFIX) -> list[Advertised]:
    """Parse `etcdctl get --prefix <prefix>/subnets -w json` (flannel's leases)."""
    try:
        kvs = json.loads(text).get("kvs") or []
    except (ValueError, AttributeError) as exc:
        raise ViewError(f"etcdctl output is not JSON ({exc.__class__.__name__})") from None
    try:
        return Flannel().leases(kvs, prefix)
    except LeaseError as exc:
        raise ViewError(str(exc)) from None


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


def kubectl_command(kubectl: str, resource: str = "nodes") -> str:
    return f"{kubectl} get {resource} -o json"


def etcdctl_command(etcdctl: str, prefix: str = ETCD_PREFIX) -> str:
    return (f"ETCDCTL_API=3 {etcdctl} get --prefix {shlex.quote(prefix + '/subnets')} -w json")


def fetch(kind: str, run: Runner, *, cni: Cni, kubectl: str = "kubectl", etcdctl: str = "etcdctl",
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
    if not kind.startswith("kubectl"):
        return parse_etcd_leases(out)
    more = {}
    for resource in cni.view_resources:  # Cilium: its CiliumNodes too
        if resource != "nodes":
            more[resource] = _run_kubectl(run, kubectl_command(kubectl, resource), where)
    return parse_kubectl_nodes(out, cni, more)


def _run_kubectl(run: Runner, command: str, where: str) -> str:
    status, out, err = run(command)
    if status != 0:
        first = (err or out).strip().splitlines()[:1]
        raise ViewError(f"{where}: `{command}` failed (exit {status}): {first[0] if first else 'no output'}")
    return out


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
