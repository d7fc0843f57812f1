"""Readable names for the report: a check id and its subject become a title a reader understands without
knowing the test function ("VTEP MAC unique on node2", "Datapath node1 -> node2")."""

from __future__ import annotations

from vxlan_conformance.checks import registry

EPIC = "vxlan-conformance"

def feature_of(module_name: str) -> str:
    """The suite module's concern: `test_public_ip` -> `public-ip`."""
    return module_name.removeprefix("test_").replace("_", "-")


def pair_label(subject: str) -> str:
    return subject.replace("->", " -> ")


def title_for(check: str, subject: str) -> str:
    what = registry.title_of(check)
    if subject.endswith("->*"):  # one test per sender on large clusters
        return f"{what} from {subject[:-3]} to every peer"
    if "->" in subject:
        return f"{what} {pair_label(subject)}"
    if subject and subject != "cluster":
        return f"{what} on {subject}"
    return what


def check_and_subject(nodeid: str) -> tuple[str, str]:
    """`suites/test_vtep.py::test_mac_unique[node2]` -> ("mac-unique", "node2")."""
    name = nodeid.rsplit("::", 1)[-1]
    base, _, param = name.partition("[")
    return base.removeprefix("test_").replace("_", "-"), param.rstrip("]")
