"""Readable names for the report: a check id and its subject become a title a reader understands without
knowing the test function ("VTEP MAC unique on node2", "Datapath node1 -> node2")."""

from __future__ import annotations

EPIC = "vxlan-conformance"

# check id -> what it asserts, in words; the subject is appended ("on node2", "node1 -> node2").
CHECK_TITLES = {
    "ssh-reachable": "SSH reachable",
    "privileges": "Root or passwordless sudo",
    "python-for-agent": "Python for the probe agent",
    "vxlan-device": "VXLAN device present",
    "vtep-mac-unique": "VTEP MAC unique",
    "machine-id-unique": "Machine id unique",
    "vtep-nm-unmanaged": "VTEP left alone by NetworkManager",
    "vtep-mac-predicted-unique": "Predicted VTEP MAC unique",
    "vtep-mac-advertised": "VTEP MAC as advertised",
    "vtep-local": "VTEP local address",
    "vtep-config": "VTEP VNI, port and learning",
    "vtep-mtu": "VTEP MTU",
    "public-ip": "Advertised public IP is the node's address",
    "public-ip-unique": "Advertised public IP unique",
    "peer-fdb": "FDB entry",
    "peer-neigh": "Neighbour entry",
    "peer-route": "Route",
    "kernel-known": "Kernel not known bad",
    "checksum-offload-risk": "No checksum offload risk",
    "cluster-view": "Cluster view available",
    "view-nodes-known": "Every advertised node is in the inventory",
    "datapath": "Datapath",
}


def feature_of(module_name: str) -> str:
    """The suite module's concern: `test_public_ip` -> `public-ip`."""
    return module_name.removeprefix("test_").replace("_", "-")


def pair_label(subject: str) -> str:
    return subject.replace("->", " -> ")


def title_for(check: str, subject: str) -> str:
    what = CHECK_TITLES.get(check) or check.replace("-", " ").capitalize()
    if subject.endswith("->*"):  # one test per sender on large clusters
        return f"{what} from {subject[:-3]} to every peer"
    if "->" in subject:
        return f"{what} {pair_label(subject)}"
    if subject and subject != "cluster":
        return f"{what} on {subject}"
    return what
