"""The fixed address plan of the lab: the suite and the tests rely on every number here."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from .errors import LabError

MAX_INSTANCE = 7
MAX_NODES = 8000
STATE_ROOT = Path("/run/vxlan-lab")
POD_NETWORK = ipaddress.IPv4Network("100.64.0.0/10")
SUBNET_LEN = 24
UNDERLAY_PREFIX = 19
STALE_OFFSET = 8100  # inside the /19, above MAX_NODES, below the bridge address: no node holds it
VXLAN_OVERHEAD = 50


@dataclass(frozen=True)
class Preset:
    """How one overlay names and numbers its VXLAN device."""

    name: str
    device: str
    vni: int
    port: int


PRESETS = {
    "flannel": Preset("flannel", "flannel.1", 1, 8472),
    "calico": Preset("calico", "vxlan.calico", 4096, 4789),
    # cilium_vxlan is flow-based (id 0), tunnel-port 8472 (cilium pkg/defaults/defaults.go TunnelPortVXLAN)
    "cilium": Preset("cilium", "cilium_vxlan", 0, 8472),
}


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise LabError(f"unknown preset {name!r}: use one of {', '.join(sorted(PRESETS))}")
    return PRESETS[name]


def check_instance(instance: int) -> int:
    if not 0 <= instance <= MAX_INSTANCE:
        raise LabError(f"instance {instance} out of range: use 0..{MAX_INSTANCE}")
    return instance


def check_node_count(nodes: int) -> int:
    if not 1 <= nodes <= MAX_NODES:
        raise LabError(f"{nodes} nodes requested: the address plan allows 1..{MAX_NODES}")
    return nodes


def underlay(instance: int) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(f"198.18.{instance * 32}.0/{UNDERLAY_PREFIX}")


def node_name(index: int) -> str:
    return f"node{index}"


def node_address(instance: int, index: int) -> str:
    return str(underlay(instance).network_address + index)


def machine_id(instance: int, name: str) -> str:
    """A node's own /etc/machine-id: 32 hex digits, stable per lab instance and node."""
    return hashlib.sha256(f"vxlan-lab/{instance}/{name}".encode()).hexdigest()[:32]


def bridge_name(instance: int) -> str:
    return f"vxlab{instance}br"


def bridge_address(instance: int) -> str:
    """Root-namespace end of the underlay: 198.18.(K*32+31).254."""
    return str(underlay(instance).broadcast_address - 1)


def netns_prefix(instance: int) -> str:
    return f"vxlab{instance}-"


def netns_name(instance: int, node: str) -> str:
    return f"{netns_prefix(instance)}{node}"


def bridge_mac(instance: int) -> str:
    """Fixed (a bridge otherwise takes its lowest port MAC, which changes as ports come and go)."""
    return f"02:76:78:6c:62:{instance:02x}"


def root_veth(instance: int, index: int) -> str:
    return f"vxl{instance}n{index}"


def subnet(index: int) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network((int(POD_NETWORK.network_address) + index * 256, SUBNET_LEN))


def vtep_ip(index: int) -> str:
    """flannel puts the VTEP on the first address of the node's subnet; calico-node's tunnel address is the
    first free address of the node's first IPAM block (allocateip.go assignHostTunnelAddr): the same."""
    return str(subnet(index).network_address)


# Calico (preset calico), as felix and calico-ipam build it (projectcalico/calico 87c15906f2):
CALICO_BLOCK_LEN = 26        # IPPool blockSize default (api/pkg/apis/projectcalico/v3/ippool.go)
CALICO_BLOCKS_PER_NODE = 2   # a node that ran out of its first block claims another one
CALICO_BORROWED = (1, 5, 2)  # node1's first block, ordinal 5, allocated to a pod on node2 (secondary.node)
CALICO_LOCAL_BLOCK_PROTO = 80  # felix dataplanedefs.DefaultRouteProto: blackholes of local blocks


def felix_mac(name: str) -> str:
    """The VTEP MAC felix derives when the node has no VXLANTunnelMACAddr (felix/calc/vxlan_resolver.go
    vtepMACForHost): 0x66 followed by the first five bytes of sha1(node name)."""
    digest = hashlib.sha1(name.encode()).digest()
    return ":".join(f"{b:02x}" for b in bytes([0x66]) + digest[:5])


def calico_blocks(index: int) -> list[str]:
    """The IPAM blocks affine to node `index`: the first /26s of its /24 (the lab keeps one /24 per node)."""
    return [str(net) for net in subnet(index).subnets(new_prefix=CALICO_BLOCK_LEN)][:CALICO_BLOCKS_PER_NODE]


def calico_borrowed(nodes: int) -> list[tuple[str, int, int, int]]:
    """[(address, block owner index, ordinal, borrowing node index)]: one address borrowed across nodes."""
    owner, ordinal, borrower = CALICO_BORROWED
    if nodes < max(owner, borrower):
        return []
    return [(str(subnet(owner).network_address + ordinal), owner, ordinal, borrower)]


def router_ip(index: int) -> str:
    """Cilium's router IP (CiliumInternalIP) on cilium_host: IPAM's AllocateNext picks a random address of
    the pod CIDR (cilium daemon/cmd/ipam.go); here a fixed scatter over .2-.252, never .0 or .1."""
    return str(subnet(index).network_address + 2 + (index * 97) % 251)


def nat_address(instance: int) -> str:
    """The address every node shares in the wrong-public-ip fault (Vagrant's 10.0.2.15)."""
    return f"198.19.{instance}.15"


def overwrite_address(instance: int, index: int) -> str:
    """node `index`'s second underlay address, the one its public-ip-overwrite annotation names (above
    MAX_NODES, below STALE_OFFSET: no node holds it)."""
    return str(underlay(instance).network_address + MAX_NODES + 50 + index)


def stale_address(instance: int) -> str:
    return str(underlay(instance).network_address + STALE_OFFSET)


def state_dir(instance: int) -> Path:
    return STATE_ROOT / str(instance)


def node_index(name: str) -> int:
    """node7 -> 7; anything else is not a lab node name."""
    if not name.startswith("node") or not name[4:].isdigit():
        raise LabError(f"{name!r} is not a lab node name: use node1..nodeN")
    return int(name[4:])
