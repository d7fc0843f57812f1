"""The advertised view as `kubectl get nodes -o json` shows it, without an API server.

node1's bin dir holds a small `kubectl` script that prints nodes.json (written from the same state as
the etcd leases) for `get nodes -o json` and refuses everything else: there is no API server in the lab.
"""

from __future__ import annotations

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
        if state.preset == "calico":
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


def write(state: LabState, want: Desired) -> None:
    nodes_json = state.state_dir / "nodes.json"
    nodes_json.write_text(json.dumps(node_list(state, want), indent=2) + "\n")
    script = state.state_dir / "nodes" / state.nodes[0].name / "bin" / "kubectl"
    script.write_text(_script(nodes_json))
    script.chmod(0o755)


def _script(nodes_json: Path) -> str:
    return f"""#!/bin/sh
# vxlan lab stand-in for kubectl: there is no API server; only `kubectl get nodes -o json` works.
kind= out=
while [ $# -gt 0 ]; do
  case "$1" in
    get) [ -z "$kind" ] && kind=get ;;
    node|nodes) [ "$kind" = get ] && kind=nodes ;;
    -ojson|-o=json|--output=json) out=json ;;
    -o|--output) shift; [ "$1" = json ] && out=json ;;
    --request-timeout=*|--kubeconfig=*|--context=*) ;;
    *) kind=bad ;;
  esac
  shift
done
if [ "$kind" = nodes ] && [ "$out" = json ]; then exec cat {shlex.quote(str(nodes_json))}; fi
echo "kubectl (vxlan lab stand-in): only 'kubectl get nodes -o json' is supported, there is no API server" >&2
exit 1
"""
