"""What the overlay *advertises* about each node, next to which the node's real state is compared.

Sources: `kubectl get nodes -o json` (flannel kube-subnet-mgr annotations, Calico annotations), flannel's
etcd leases (`etcdctl get --prefix <prefix>/subnets -w json`), or none (before Kubernetes is installed).
Fetching is one command over SSH on the first control-plane (or etcd) host; parsing is pure and tested
against real outputs.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

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


V2_MARK = "#etcd-v2"
V2_KEY = "#key "


@dataclass
class View:
    """What a view source gave: the advertised nodes, a note on where they were found, the network config."""

    advertised: list[Advertised]
    note: str | None = None
    config: dict = field(default_factory=dict)
    cluster: dict = field(default_factory=dict)


def parse_etcd_leases(text: str, prefix: str = ETCD_PREFIX) -> list[Advertised]:
    """Parse `etcdctl get --prefix <prefix>/subnets -w json` (flannel's leases)."""
    return parse_etcd(text, prefix).advertised


def parse_etcd(text: str, prefix: str = ETCD_PREFIX) -> View:
    """Parse the output of etcdctl_command: the v3 JSON (`get --prefix <prefix>/ -w json`), then, after a
    `#etcd-v2` line, the v2 keys under the prefix as `#key <key>` lines each followed by its value.
    flannel >= 0.18 keeps its leases in v3, 0.9 to 0.17 in v2 (the two stores are separate): the API that
    holds leases is used, v3 when both do."""
    v3_text, _, v2_text = text.partition("\n" + V2_MARK + "\n")
    if v3_text.startswith(V2_MARK + "\n"):
        v3_text, v2_text = "", v3_text[len(V2_MARK) + 1:]
    v3: list[tuple[str, bytes]] = []
    if v3_text.strip():
        try:
            kvs = json.loads(v3_text).get("kvs") or []
            v3 = [(base64.b64decode(kv["key"]).decode(), base64.b64decode(kv.get("value") or "")) for kv in kvs]
        except (ValueError, AttributeError, KeyError, TypeError) as exc:
            raise ViewError(f"etcdctl output is not JSON ({exc.__class__.__name__})") from None
    v2 = _v2_items(v2_text)
    model, base = Flannel(), prefix.rstrip("/")
    try:
        leases3, leases2 = model.leases_v2(v3, prefix), model.leases_v2(v2, prefix)
    except LeaseError as exc:
        raise ViewError(str(exc)) from None
    api, items, leases = ("v3", v3, leases3) if leases3 or not leases2 else ("v2", v2, leases2)
    config: dict = {}
    raw = next((value for key, value in items if key == base + "/config"), None)
    if raw is not None:
        try:
            loaded = json.loads(raw)
            config = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            config = {}
    found = f"{len(leases)} leases" if leases else "no leases"
    note = (f"flannel {found} in etcd {api} under {base}/subnets"
            f"{'' if raw is not None else f' (no {base}/config readable)'}")
    return View(leases, note, config)


def _v2_items(text: str) -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    key, lines = None, []
    for line in text.splitlines() + [V2_KEY]:
        if line.startswith(V2_KEY):
            if key is not None:
                items.append((key, "\n".join(lines).strip()))
            key, lines = line[len(V2_KEY):].strip() or None, []
        elif key is not None:
            lines.append(line)
    return items


def match_hosts(advertised: Sequence[Advertised], hosts: Mapping[str, str],
                vtep_ips: Mapping[str, str | None] | None = None) -> dict[str, Advertised]:
    """Map inventory host -> advertisement: by node name, then by address, then by VTEP address.

    `hosts` maps inventory host name -> node address; `vtep_ips` maps host -> the address on its VXLAN
    device. Leases carry no node name, and a lease with a wrong PublicIP (seed 001) matches no address,
    so it is found by its subnet: flannel puts <subnet>.0 on the node's device. Nodes that share one
    public IP share one lease (flannel's etcd subnet manager reuses the lease whose PublicIP is its own,
    subnet/etcd/local_manager.go tryAcquireLease): every node holding its subnet gets that lease.
    """
    by_address = {address: name for name, address in hosts.items()}
    by_vtep: dict[str, list[str]] = {}
    for name, ip in (vtep_ips or {}).items():
        if ip:
            by_vtep.setdefault(ip, []).append(name)
    matched: dict[str, Advertised] = {}
    for adv in advertised:
        direct = [adv.node_name if adv.node_name in hosts else None, by_address.get(adv.internal_ip or ""),
                  by_address.get(adv.public_ip or "")]
        host = next((c for c in direct if c is not None), None)
        for holder in [host] if host is not None else by_vtep.get(adv.vtep_ip or "", []):
            if holder not in matched:
                matched[holder] = Advertised(**{**adv.to_dict(), "host": holder})
    return matched


def kubectl_command(kubectl: str, resource: str = "nodes") -> str:
    return f"{kubectl} get {resource} -o json"


def etcdctl_command(etcdctl: str, prefix: str = ETCD_PREFIX) -> str:
    """One shell command for both etcd APIs: the v3 keys under the prefix as JSON, then the v2 keys
    (`ETCDCTL_API=2 etcdctl ls --recursive -p` and `get` per key; etcdctl 3.4 still has the v2 commands).
    It fails only when neither API answered."""
    base = shlex.quote(prefix.rstrip("/"))
    v3 = shlex.quote(prefix.rstrip("/") + "/")
    return (f"set -f; ETCDCTL_API=3 {etcdctl} get --prefix {v3} -w json; s=$?; [ $s -eq 127 ] && exit 127; "
            f"printf '\\n{V2_MARK}\\n'; n=0; "
            f"for k in $(ETCDCTL_API=2 {etcdctl} ls --recursive -p {base} 2>/dev/null); do "
            f"case $k in */) continue;; esac; printf '{V2_KEY}%s\\n' \"$k\"; "
            f"ETCDCTL_API=2 {etcdctl} get \"$k\" 2>/dev/null; n=$((n+1)); done; "
            f"[ $s -ne 0 ] && [ $n -eq 0 ] && exit $s; exit 0")


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
          where: str, etcd_prefix: str = ETCD_PREFIX) -> list[Advertised]:
    """Run the view command through `run` (SSH on `where`, or local) and parse it."""
    return fetch_view(kind, run, cni=cni, kubectl=kubectl, etcdctl=etcdctl, where=where,
                      etcd_prefix=etcd_prefix).advertised


def fetch_view(kind: str, run: Runner, *, cni: Cni, kubectl: str = "kubectl", etcdctl: str = "etcdctl",
               where: str, etcd_prefix: str = ETCD_PREFIX) -> View:
    """As fetch, with the note on where the nodes were found, the network config when read and, for a
    kubectl view, the CNI-wide view (cni.view_extra: Calico's IPPools, IPAM blocks, felix config)."""
    is_kubectl = kind.startswith("kubectl")
    command = kubectl_view_command(kubectl, cni) if is_kubectl else etcdctl_command(etcdctl, etcd_prefix)
    status, out, err = run(command)
    if status == 127:
        tool = "kubectl" if is_kubectl else "etcdctl"
        raise ViewError(f"{where}: {tool} not found ({kubectl.split()[0] if is_kubectl else etcdctl});"
                        f" set vxlan_{tool} to its path or vxlan_cluster_view: none")
    if status != 0:
        first = (err or out).strip().splitlines()[:1]
        shown = kubectl_command(kubectl) if is_kubectl else f"{etcdctl} get --prefix {etcd_prefix}/"
        raise ViewError(f"{where}: `{shown}` failed (exit {status}): {first[0] if first else 'no output'}")
    if not is_kubectl:
        return parse_etcd(out, etcd_prefix)
    nodes, sections = split_sections(out)
    more = {}
    for resource in cni.view_resources:  # Cilium: its CiliumNodes too, required
        if resource != "nodes":
            if sections.get(resource) is None:
                raise ViewError(f"{where}: `{kubectl_command(kubectl, resource)}` failed: {cni.name} publishes "
                                f"its nodes there; is {cni.name} installed (vxlan_cni)?")
            more[resource] = sections[resource]
    view = View(parse_kubectl_nodes(nodes, cni, more))
    if sections:
        view.cluster = cni.view_extra({**sections, "nodes": nodes})
    return view


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
