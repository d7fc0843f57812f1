"""`lab status` says what shapes the lab beyond preset and faults: routed subnets, vxlanMode, real flanneld."""

from __future__ import annotations

from vxlan_conformance.lab.cli import _table


def status(underlay: dict, flanneld: dict | None, preset: str = "flannel") -> dict:
    return {"up": True, "instance": 2, "preset": preset, "device": "flannel.1", "port": 8472, "vni": 1,
            "faults": [], "underlay": underlay, "flanneld": flanneld,
            "nodes": [{"name": "node1", "address": "198.18.32.1", "netns": "vxl2n1", "vtep_mac": "aa:bb:cc:00:00:01",
                       "sshd_pid": 10, "sshd_alive": True}]}


def head(text: str) -> str:
    return text.splitlines()[0]


def test_a_flat_imitation_lab_says_nothing_more() -> None:
    flat = status({"subnets": 1, "direct_routing": False, "vxlan_mode": None}, {"version": "imitation", "alive": []})
    assert head(_table(flat)) == "lab 2: flannel flannel.1 port 8472 vni 1; faults: none"


def test_real_flanneld_with_direct_routing_is_named() -> None:
    routed = status({"subnets": 2, "direct_routing": True, "vxlan_mode": None},
                    {"version": "v0.20.2", "alive": ["node1", "node3"]})
    assert head(_table(routed)).endswith("; faults: none; 2 routed underlay subnets, DirectRouting, "
                                         "flanneld v0.20.2 (running on 2 nodes)")


def test_calico_crosssubnet_is_named() -> None:
    calico = status({"subnets": 2, "direct_routing": False, "vxlan_mode": "CrossSubnet"}, None, preset="calico")
    assert head(_table(calico)).endswith("; 2 routed underlay subnets, vxlanMode CrossSubnet")
