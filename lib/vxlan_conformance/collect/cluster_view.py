"""What the overlay *advertises* about each node, next to which the node's real state is compared.

Sources: `kubectl get nodes -o json` (flannel kube-subnet-mgr annotations, Calico annotations), flannel's
etcd leases (`etcdctl get --prefix <prefix>/subnets -w json`), or none (before Kubernetes is installed).
Fetching is one command over SSH on the first control-plane (or etcd) host; parsing is pure and tested
against real outputs.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence

from vxlan_conformance.cni import Cni
from vxlan_conformance.cni.flannel import ETCD_PREFIX, Flannel, LeaseError
from vxlan_conformance.model.advertised import Advertised

Runner = Callable[[str], tuple[int, str, str]]


class ViewError(Exception):
    """One line: which source failed on which host, and what to do."""


def parse_kubectl_nodes(text: str, cni: Cni) -> list[Advertised]:
    """Parse `kubectl get nodes -o json` (a v1 NodeList) into what `cni` advertises for each node."""
    try:
        items = json.loads(text)["items"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ViewError(f"kubectl output is not a NodeList ({exc.__class__.__name__})") from None
    return [cni.advertised(item) for item in items]


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


def kubectl_command(kubectl: str) -> str:
    return f"{kubectl} get nodes -o json"


def etcdctl_command(etcdctl: str, prefix: str = ETCD_PREFIX) -> str:
    return (f"ETCDCTL_API=3 {etcdctl} get --prefix {shlex.quote(prefix + '/subnets')} -w json")


SECTION = "@@vxlan-view-section {}@@"
SECTION_RE = re.compile(r"^@@vxlan-view-section ([A-Za-z0-9.-]+)@@$", re.M)
FAILED = "@@vxlan-view-failed@@"


def kubectl_view_command(kubectl: str, cni: Cni) -> str:
    """`kubectl get nodes -o json`, then the CNI's extra commands in the same shell, each after a marker
    line; the exit status is the nodes command's, and an extra command that fails only marks its section."""
    extra = cni.view_extra_commands(kubectl)
    if not extra:
        return kubectl_command(kubectl)
    parts = [f"{kubectl_command(kubectl)} || exit $?"]
    for name, command in extra.items():
        parts.append(f"echo {shlex.quote(SECTION.format(name))}; {{ {command}; }} 2>/dev/null || echo {FAILED}")
    return "\n".join(parts + ["exit 0"])


def split_sections(out: str) -> tuple[str, dict[str, str | None]]:
    """The nodes text and name -> section text (None: its command failed)."""
    pieces = SECTION_RE.split(out)
    sections: dict[str, str | None] = {}
    for name, text in zip(pieces[1::2], pieces[2::2], strict=False):
        sections[name] = None if text.rstrip().endswith(FAILED) else text
    return pieces[0], sections


def fetch(kind: str, run: Runner, *, cni: Cni, kubectl: str = "kubectl", etcdctl: str = "etcdctl",
          where: str, extra: dict | None = None) -> list[Advertised]:
    """Run the view command through `run` (SSH on `where`, or local) and parse it; `extra`, when given,
    receives the CNI-wide view (cni.view_extra) of a kubectl view."""
    command = kubectl_view_command(kubectl, cni) if kind.startswith("kubectl") else etcdctl_command(etcdctl)
    status, out, err = run(command)
    if status == 127:
        tool = "kubectl" if kind.startswith("kubectl") else "etcdctl"
        raise ViewError(f"{where}: {tool} not found ({command.split()[0] if tool == 'kubectl' else etcdctl});"
                        f" set vxlan_{tool} to its path or vxlan_cluster_view: none")
    if status != 0:
        first = (err or out).strip().splitlines()[:1]
        shown = kubectl_command(kubectl) if kind.startswith("kubectl") else command
        raise ViewError(f"{where}: `{shown}` failed (exit {status}): {first[0] if first else 'no output'}")
    if not kind.startswith("kubectl"):
        return parse_etcd_leases(out)
    nodes, sections = split_sections(out)
    advertised = parse_kubectl_nodes(nodes, cni)
    if extra is not None and sections:
        extra.update(cni.view_extra({**sections, "nodes": nodes}))
    return advertised


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
