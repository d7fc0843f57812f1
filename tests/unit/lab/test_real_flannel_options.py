"""The flannel options of `lab up` (real flanneld): checked before anything is built, one-line errors."""

from __future__ import annotations

import ipaddress

import pytest

from vxlan_conformance.lab import plan, real_flannel
from vxlan_conformance.lab.errors import LabError
from vxlan_conformance.lab.faults import parse


@pytest.mark.parametrize(("args", "said"), [
    ((False, 4, "/example.com/network", (), False), "add --flanneld"),
    ((False, 4, None, ("node2",), False), "add --flanneld"),
    ((False, 4, None, (), True), "add --flanneld"),
    ((True, 4, "example.com", (), False), "absolute etcd key"),
    ((True, 4, "/a b", (), False), "absolute etcd key"),
    ((True, 4, None, ("node9",), False), "node1..node4"),
    ((True, 3, None, (), True), "4 nodes or more"),
])
def test_bad_flannel_options_are_one_line_errors(args, said):
    with pytest.raises(LabError, match=said) as err:
        real_flannel.check_options(*args)
    assert "\n" not in str(err.value)


def test_good_flannel_options_pass():
    real_flannel.check_options(True, 4, "/example.com/network/", ("node2", "node3"), True)
    real_flannel.check_options(False, 4, None, (), False)


def test_overwritten_public_ips_are_no_nodes_address():
    overwrite = plan.overwrite_address(6, 2)
    assert ipaddress.ip_address(overwrite) in plan.underlay(6)
    assert overwrite not in {plan.node_address(6, i) for i in range(1, plan.MAX_NODES + 1)}
    assert overwrite != plan.stale_address(6)


@pytest.mark.parametrize("spec", ["stale-fdb@node1->node2", "missing-fdb@node2", "mtu=1400@node4",
                                  "vxlan-port=8475@node2", "underlay-mtu=1400@node2"])
def test_faults_only_the_imitation_can_make_are_refused_with_real_flanneld(spec):
    with pytest.raises(LabError, match="with --flanneld") as err:
        real_flannel.check_faults([parse(spec, ["node1", "node2", "node3", "node4"])])
    assert "\n" not in str(err.value)


def test_seed_faults_are_accepted_with_real_flanneld():
    names = ["node1", "node2", "node3", "node4"]
    real_flannel.check_faults([parse(s, names) for s in (
        "dup-vtep-mac@node2,node3", "wrong-public-ip@node2", "blocked-port@node2", "bad-checksum@node2",
        "kernel=3.10.0-957.el7.x86_64@node2", "random-fully@node2", "offload=on@node2")])
