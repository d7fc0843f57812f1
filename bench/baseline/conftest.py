"""The testinfra baseline's fixtures: what a pytest-testinfra user would write today to check a VXLAN
overlay (the benchmark's point of comparison, not part of the product).

Run with `pytest -n auto --hosts=paramiko://root@A,paramiko://root@B,... --ssh-identity-file KEY
--ssh-config CFG`. It runs the suite's node checks (not its VXLAN frame probes: a UDP echo per pair
stands for the datapath). Facts that need every node (unique MACs, each peer's FDB/neighbour/route
entry) come from one session fixture per worker that asks every host once, and what the overlay
advertises from one `kubectl get nodes -o json` on the first host, over the same cached connections the
`host` fixture uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import testinfra


@dataclass(frozen=True)
class Vtep:
    address: str   # the node's SSH / underlay address
    mac: str
    local: str | None
    vtep_ip: str | None


@dataclass(frozen=True)
class Advertised:
    """A Kubernetes node's flannel annotations."""

    name: str
    internal_ip: str | None
    public_ip: str | None
    vtep_mac: str | None
    pod_cidr: str | None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--vxlan-device", default="flannel.1", help="VXLAN device on every node")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`peer` runs a pair test from the `host` under test to every other host."""
    if "peer" in metafunc.fixturenames:
        names = [spec.rsplit("@", 1)[-1] for spec in metafunc.config.option.hosts.split(",")]
        metafunc.parametrize("peer", names)


def address_of(host: testinfra.host.Host) -> str:
    return host.backend.host.name


@pytest.fixture(scope="session")
def device(pytestconfig: pytest.Config) -> str:
    return pytestconfig.getoption("vxlan_device")


@pytest.fixture(scope="session")
def all_hosts(pytestconfig: pytest.Config) -> dict[str, testinfra.host.Host]:
    """The very Host objects testinfra parametrizes `host` with (same cache key): one connection per
    host per worker."""
    opt = pytestconfig.option
    hosts = testinfra.get_hosts(opt.hosts.split(","), connection=opt.connection, ssh_config=opt.ssh_config,
                                ssh_identity_file=opt.ssh_identity_file, sudo=opt.sudo,
                                sudo_user=opt.sudo_user, ansible_inventory=opt.ansible_inventory,
                                force_ansible=opt.force_ansible)
    return {address_of(h): h for h in hosts}


@pytest.fixture(scope="session")
def fleet(all_hosts: dict[str, testinfra.host.Host], device: str) -> dict[str, Vtep]:
    """Every node's VTEP from one `ip -d -j addr show` each."""
    result = {}
    for address, host in all_hosts.items():
        out = host.run("ip -d -j addr show dev %s", device)
        if out.rc != 0:
            continue
        link = json.loads(out.stdout)[0]
        info = link.get("linkinfo", {}).get("info_data", {})
        inet = [a["local"] for a in link.get("addr_info", []) if a.get("family") == "inet"]
        result[address] = Vtep(address, link["address"], info.get("local"), inet[0] if inet else None)
    return result


@pytest.fixture(scope="session")
def machine_ids(all_hosts: dict[str, testinfra.host.Host]) -> dict[str, str]:
    return {address: host.run("cat /etc/machine-id").stdout.strip() for address, host in all_hosts.items()}


@pytest.fixture(scope="session")
def advertised(all_hosts: dict[str, testinfra.host.Host]) -> dict[str, Advertised]:
    """advertised[address]: the flannel annotations of the Kubernetes node with that InternalIP, from
    kubectl on the first host (the control plane)."""
    control_plane = next(iter(all_hosts.values()))
    nodes = json.loads(control_plane.check_output("kubectl get nodes -o json"))["items"]
    result = {}
    for node in nodes:
        ann = node["metadata"].get("annotations", {})
        backend = json.loads(ann.get("flannel.alpha.coreos.com/backend-data") or "{}")
        internal = [a["address"] for a in node["status"].get("addresses", []) if a["type"] == "InternalIP"]
        entry = Advertised(node["metadata"]["name"], internal[0] if internal else None,
                           ann.get("flannel.alpha.coreos.com/public-ip"), backend.get("VtepMAC"),
                           node["spec"].get("podCIDR"))
        result[entry.internal_ip] = entry
    return result


@pytest.fixture(scope="session")
def sender_index(pytestconfig: pytest.Config) -> dict[str, int]:
    names = [spec.rsplit("@", 1)[-1] for spec in pytestconfig.option.hosts.split(",")]
    return {name: i for i, name in enumerate(names)}
