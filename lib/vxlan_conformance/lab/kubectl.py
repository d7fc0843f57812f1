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

from . import plan, subnets
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
            # what a Linux calico-node writes (startup.go configureIPsAndSubnets, allocateip.go
            # assignHostTunnelAddr): never VXLANTunnelMACAddr, felix derives the MAC from the name
            annotations = {"projectcalico.org/IPv4Address": subnets.address_cidr(state.instance, public,
                                                                                 state.underlay_subnets),
                           "projectcalico.org/IPv4VXLANTunnelAddr": node.vtep_ip}
            if mac != plan.felix_mac(node.name):  # a fault gave the node another MAC: as a configured
                # VXLANTunnelMACAddr (node.go), which felix then puts on the device (vxlan_resolver.go)
                annotations["projectcalico.org/VXLANTunnelMACAddr"] = mac
        else:
            annotations = {"flannel.alpha.coreos.com/backend-data": json.dumps(
                               {"VNI": state.vni, "VtepMAC": mac}, separators=(",", ":")),
                           "flannel.alpha.coreos.com/backend-type": "vxlan",
                           "flannel.alpha.coreos.com/kube-subnet-manager": "true",
                           "flannel.alpha.coreos.com/public-ip": public}
            if node.name in state.public_ip_overwrite:  # set by the operator; flannel then advertises it
                annotations["flannel.alpha.coreos.com/public-ip-overwrite"] = state.public_ip_overwrite[node.name]
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


CALICO_VERSION = "v3.26.1"  # the calico-node image tag the lab's DaemonSet names


def _list(items: list[dict]) -> dict:
    return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}


def calico_objects(state: LabState) -> dict[str, dict]:
    """The Calico CRDs (crd.projectcalico.org/v1, the KDD backing group) as calico-ipam and calico-node
    leave them for the lab's plan. Shapes: libcalico-go/lib/apis/internalapi/ipam_block.go:40-101 (name =
    CIDR with . and / as -, names/cidr.go), blockaffinity.go:40-50 (`deleted` a string in v1),
    api/pkg/apis/projectcalico/v3/ippool.go, felixconfig.go; the tunnel address is the first ordinal of the
    node's first block with attributes {node, type: vxlanTunnelAddress} (allocateip.go:445-462), a borrowed
    address is an allocation whose secondary.node is not the affine host (model/block.go:234-257)."""
    group = "crd.projectcalico.org/v1"
    borrowed = {(owner, ordinal): borrower for _, owner, ordinal, borrower in plan.calico_borrowed(len(state.nodes))}
    blocks, affinities = [], []
    for index, node in enumerate(state.nodes, 1):
        for number, cidr in enumerate(plan.calico_blocks(index)):
            size = 2 ** (32 - plan.CALICO_BLOCK_LEN)
            allocations: list[int | None] = [None] * size
            attributes = []
            if number == 0:
                allocations[0] = len(attributes)
                attributes.append({"handle_id": f"vxlan-tunnel-addr-{node.name}",
                                   "secondary": {"node": node.name, "type": "vxlanTunnelAddress"}})
                for (owner, ordinal), borrower in borrowed.items():
                    if owner == index:
                        allocations[ordinal] = len(attributes)
                        attributes.append({"handle_id": f"k8s-pod-network.lab{ordinal}", "secondary": {
                            "namespace": "default", "node": state.nodes[borrower - 1].name, "pod": f"web-{ordinal}",
                            "timestamp": "2026-01-01 00:00:00 +0000 UTC"}})
            name = cidr.replace(".", "-").replace("/", "-")
            blocks.append({"apiVersion": group, "kind": "IPAMBlock", "metadata": {"name": name},
                           "spec": {"cidr": cidr, "affinity": f"host:{node.name}", "allocations": allocations,
                                    "unallocated": [i for i, a in enumerate(allocations) if a is None],
                                    "attributes": attributes, "deleted": False, "strictAffinity": False,
                                    "sequenceNumber": len(attributes)}})
            affinities.append({"apiVersion": group, "kind": "BlockAffinity",
                               "metadata": {"name": f"{node.name}-{name}"},
                               "spec": {"state": "confirmed", "node": node.name, "type": "host", "cidr": cidr,
                                        "deleted": "false"}})
    pool = {"apiVersion": group, "kind": "IPPool", "metadata": {"name": "default-ipv4-ippool"},
            "spec": {"cidr": str(plan.POD_NETWORK), "blockSize": plan.CALICO_BLOCK_LEN, "vxlanMode": state.vxlan_mode,
                     "ipipMode": "Never", "natOutgoing": True, "nodeSelector": "all()"}}
    felix = {"apiVersion": group, "kind": "FelixConfiguration", "metadata": {"name": "default"},
             "spec": {"vxlanVNI": state.vni, "vxlanPort": state.port, "bpfEnabled": state.calico_bpf,
                      **({"bpfOverlayHostSourceIP": state.bpf_host_source} if state.calico_bpf else {})}}
    daemonset = {"apiVersion": "apps/v1", "kind": "DaemonSet",
                 "metadata": {"name": "calico-node", "namespace": "kube-system", "labels": {"k8s-app": "calico-node"}},
                 "spec": {"template": {"spec": {"containers": [
                     {"name": "calico-node", "image": f"docker.io/calico/node:{CALICO_VERSION}"}]}}}}
    return {"ipamblocks": _list(blocks), "blockaffinities": _list(affinities), "ippools": _list([pool]),
            "felixconfigurations": _list([felix]), "daemonsets": _list([daemonset])}


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
    return _list(items)


def write(state: LabState, want: Desired) -> None:
    nodes_json = state.state_dir / "nodes.json"
    nodes_json.write_text(json.dumps(node_list(state, want), indent=2) + "\n")
    files = {"nodes": nodes_json}
    if state.preset == "calico":
        for kind, listing in calico_objects(state).items():
            files[kind] = state.state_dir / f"{kind}.json"
            files[kind].write_text(json.dumps(listing, indent=2) + "\n")
    if state.preset == "cilium":
        files["ciliumnodes"] = state.state_dir / "ciliumnodes.json"
        files["ciliumnodes"].write_text(json.dumps(cilium_node_list(state, want), indent=2) + "\n")
    script = state.state_dir / "nodes" / state.nodes[0].name / "bin" / "kubectl"
    script.write_text(_script(files))
    script.chmod(0o755)


RESOURCES = {"nodes": "node|nodes", "ipamblocks": "ipamblocks|ipamblocks.crd.projectcalico.org",
             "blockaffinities": "blockaffinities|blockaffinities.crd.projectcalico.org",
             "ippools": "ippools|ippools.crd.projectcalico.org",
             "felixconfigurations": "felixconfigurations|felixconfigurations.crd.projectcalico.org",
             "daemonsets": "ds|daemonset|daemonsets|daemonsets.apps",
             "ciliumnodes": "cn|ciliumnode|ciliumnodes|ciliumnodes.cilium.io"}


def _script(files: dict[str, Path]) -> str:
    cases = "\n".join(f"    {RESOURCES[kind]}) [ \"$kind\" = get ] && kind={kind} ;;" for kind in files)
    outputs = "\n".join(f"  {kind}) exec cat {shlex.quote(str(path))} ;;" for kind, path in files.items())
    return f"""#!/bin/sh
# vxlan lab stand-in for kubectl: there is no API server; only `kubectl get <resource> -o json` of the
# resources the lab publishes works (nodes; with the calico preset the Calico CRDs and calico-node's DaemonSet;
# with the cilium preset the CiliumNodes).
kind= out=
while [ $# -gt 0 ]; do
  case "$1" in
    get) [ -z "$kind" ] && kind=get ;;
{cases}
    -ojson|-o=json|--output=json) out=json ;;
    -o|--output) shift; [ "$1" = json ] && out=json ;;
    -l|--selector|-n|--namespace|--token|--server|-s) shift ;;
    -A|--all-namespaces|--request-timeout=*|--kubeconfig=*|--context=*|--selector=*|--namespace=*) ;;
    --token=*|--server=*|--insecure-skip-tls-verify|--insecure-skip-tls-verify=*) ;;
    *) kind=bad ;;
  esac
  shift
done
[ "$out" = json ] && case "$kind" in
{outputs}
esac
echo "kubectl (vxlan lab stand-in): error: the server doesn't have this resource type (no API server)" >&2
exit 1
"""
