"""The advertised view as `kubectl get nodes -o json` shows it, without an API server.

node1's bin dir holds a small `kubectl` script that prints nodes.json (written from the same state as
the etcd leases) for `get nodes -o json` and refuses everything else: there is no API server in the lab.
"""

from __future__ import annotations

import ipaddress
import json
import platform
import shlex
from pathlib import Path

from .faults import Desired
from .state import LabState

ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def os_image() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.partition("=")[2].strip('"')
    return "Linux"


def node_list(state: LabState, want: Desired) -> dict:
    arch = ARCH.get(platform.machine(), platform.machine())
    image, release = os_image(), platform.release()
    items = []
    for index, node in enumerate(state.nodes):
        mac, public = want.macs[node.name], want.locals[node.name]
        if state.preset == "cilium":
            annotations = {}  # AnnotateK8sNode is off since v1.12 (cilium pkg/defaults/defaults.go)
        elif state.preset == "calico":
            prefix = 19 if public == node.address else 32  # the NAT address (wrong-public-ip) is a /32
            annotations = {"projectcalico.org/IPv4Address": f"{public}/{prefix}",
                           "projectcalico.org/IPv4VXLANTunnelAddr": node.vtep_ip,
                           "projectcalico.org/VXLANTunnelMACAddr": mac}
        else:
            annotations = {"flannel.alpha.coreos.com/backend-data": json.dumps(
                               {"VNI": state.vni, "VtepMAC": mac}, separators=(",", ":")),
                           "flannel.alpha.coreos.com/backend-type": "vxlan",
                           "flannel.alpha.coreos.com/kube-subnet-manager": "true",
                           "flannel.alpha.coreos.com/public-ip": public}
        labels = {"kubernetes.io/arch": arch, "kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux"}
        if index == 0:
            labels["node-role.kubernetes.io/control-plane"] = ""
        items.append({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node.name, "labels": labels, "annotations": annotations},
            "spec": {"podCIDR": node.subnet, "podCIDRs": [node.subnet]},
            "status": {"addresses": [{"type": "InternalIP", "address": node.address},
                                     {"type": "Hostname", "address": node.name}],
                       "nodeInfo": {"kernelVersion": want.kernel.get(node.name, release), "osImage": image,
                                    "architecture": arch, "operatingSystem": "linux"}}})
    return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}


def cilium_node_list(state: LabState, want: Desired) -> dict:
    """`kubectl get ciliumnodes.cilium.io -o json`: one CiliumNode (cilium.io/v2) per node, as the agent
    writes it (cilium pkg/nodediscovery/nodediscovery.go mutateNodeResource): spec.addresses with the
    InternalIP (the address peers tunnel to; the wrong-public-ip fault changes it) and the CiliumInternalIP
    (router IP on cilium_host), spec.ipam.podCIDRs, spec.health (the cilium-health endpoint)."""
    items = []
    for index, node in enumerate(state.nodes, 1):
        health = str(ipaddress.ip_network(node.subnet).network_address + 3 + (index * 53) % 250)
        items.append({
            "apiVersion": "cilium.io/v2", "kind": "CiliumNode",
            "metadata": {"name": node.name, "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": node.name, "uid": f"lab-{state.instance}-{index}"}]},
            "spec": {"addresses": [{"ip": want.locals[node.name], "type": "InternalIP"},
                                   {"ip": node.vtep_ip, "type": "CiliumInternalIP"}],
                     "alibaba-cloud": {}, "azure": {}, "encryption": {}, "eni": {}, "ingress": {},
                     "health": {"ipv4": health}, "ipam": {"podCIDRs": [node.subnet], "pools": {}}},
            "status": {"alibaba-cloud": {}, "azure": {}, "eni": {}, "ipam": {"operator-status": {}}}})
    return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}


def write(state: LabState, want: Desired) -> None:
    nodes_json = state.state_dir / "nodes.json"
    nodes_json.write_text(json.dumps(node_list(state, want), indent=2) + "\n")
    cilium_json = state.state_dir / "ciliumnodes.json"
    if state.preset == "cilium":
        cilium_json.write_text(json.dumps(cilium_node_list(state, want), indent=2) + "\n")
    script = state.state_dir / "nodes" / state.nodes[0].name / "bin" / "kubectl"
    script.write_text(_script(nodes_json, cilium_json if state.preset == "cilium" else None))
    script.chmod(0o755)


def _script(nodes_json: Path, cilium_json: Path | None = None) -> str:
    cilium = (f'if [ "$kind" = ciliumnodes ] && [ "$out" = json ]; then exec cat {shlex.quote(str(cilium_json))}; fi\n'
              if cilium_json else
              'if [ "$kind" = ciliumnodes ]; then echo \'error: the server doesn\'"\'"\'t have a resource type '
              '"ciliumnodes"\' >&2; exit 1; fi\n')
    return f"""#!/bin/sh
# vxlan lab stand-in for kubectl: there is no API server; only `kubectl get nodes -o json` works
# (and, in the cilium preset, `kubectl get ciliumnodes.cilium.io -o json`).
kind= out=
while [ $# -gt 0 ]; do
  case "$1" in
    get) [ -z "$kind" ] && kind=get ;;
    node|nodes) [ "$kind" = get ] && kind=nodes ;;
    ciliumnode|ciliumnodes|ciliumnodes.cilium.io|cn) [ "$kind" = get ] && kind=ciliumnodes ;;
    -ojson|-o=json|--output=json) out=json ;;
    -o|--output) shift; [ "$1" = json ] && out=json ;;
    --request-timeout=*|--kubeconfig=*|--context=*) ;;
    *) kind=bad ;;
  esac
  shift
done
if [ "$kind" = nodes ] && [ "$out" = json ]; then exec cat {shlex.quote(str(nodes_json))}; fi
{cilium}echo "kubectl (vxlan lab stand-in): only 'kubectl get nodes -o json' is supported, there is no API server" >&2
exit 1
"""
