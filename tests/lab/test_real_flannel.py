"""Issue 16 end to end: the suite against REAL upstream flanneld (v0.20.2: etcd v3; v0.12.0: etcd v2; each
also through the kubectl view published from its leases), run as a user does. Healthy clusters pass every
check; the seed incidents made on the real daemon give the imitation's codes on the imitation's subjects.

flanneld is built from ../shared/third_party/build-flanneld.sh (cached under /usr/local/lib/flannel);
without ../shared these tests skip and say why."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lab.suite_runner import run_suite
from tests.lab.test_e2e_checks import SCENARIOS, STATIC_SUITES
from vxlan_conformance.lab import real_flannel

pytestmark = pytest.mark.root


@pytest.mark.parametrize(("version", "view", "api"), [("v0.20.2", "etcd", "etcd v3"), ("v0.20.2", "kubectl", None),
                                                      ("v0.12.0", "etcd", "etcd v2"), ("v0.12.0", "kubectl", None)])
def test_healthy_real_flanneld_passes_every_check(lab, flanneld, tmp_path, version, view, api):
    state = lab.up(nodes=3, cluster_view=view, flanneld=flanneld(version), inventory_path=str(tmp_path / "lab.yaml"))
    assert state.flanneld_version == version
    result = run_suite(state.inventory_path, tmp_path / "reports")
    assert result.failures() == set(), result.output[-4000:]
    assert result.exit_code == 0 and result.summary["counts"]["passed"] > 0
    view_result = next(r for r in result.summary["results"] if r["check"] == "cluster-view")
    if api:
        assert f"3 leases in {api}" in view_result["message"]


DATAPATH = "suites/test_datapath.py"
KY10 = "kernel=4.19.90-52.49.v2207.ky10.x86_64@node2"
EL7 = "kernel=3.10.0-957.el7.x86_64@node2"
# seed -> (faults, suites, lab options): the incident as the imitation lab makes it (test_e2e_checks,
# test_e2e_datapath), made here on the real daemon
SEEDS = {
    "000-cloned-mac": (["dup-vtep-mac@node2,node3"], STATIC_SUITES, {}),
    "001-nat-address": (["wrong-public-ip@node2"], [*STATIC_SUITES, DATAPATH], {}),
    "002-port-8475-blocked": (["blocked-port@node2"], [*STATIC_SUITES, DATAPATH], {"port": 8475}),
    "003-ky10-checksum": ([KY10, "bad-checksum@node2"], [*STATIC_SUITES, DATAPATH], {}),
    "004-el7-random-fully": ([EL7, "random-fully@node2", "offload=on@node2"], STATIC_SUITES, {}),
}
# what the imitation names, as (subject, code): asserted so the comparison below is not two empty sets
SEED_CODES = {
    "000-cloned-mac": SCENARIOS["dup-vtep-mac"][1],
    "001-nat-address": SCENARIOS["wrong-public-ip"][1] | {
        (p, "PUBLIC_IP_MISMATCH") for p in ("node1->node2", "node3->node2", "node4->node2",
                                            "node2->node1", "node2->node3", "node2->node4")},
    "002-port-8475-blocked": {(f"{p}->node2", "UDP_PORT_BLOCKED") for p in ("node1", "node3", "node4")},
    "003-ky10-checksum": {("node2", "KERNEL_KNOWN_BAD")} | {
        (f"node2->{p}", "OUTER_CHECKSUM_BAD") for p in ("node1", "node3", "node4")},
    "004-el7-random-fully": SCENARIOS["kernel-el7-nat"][1],
}


def failed(result) -> set[tuple[str, str, str]]:
    """(check, subject, code) of every failed or errored result."""
    assert result.summary is not None, result.output[-3000:]
    return {(r["check"], r["subject"], code) for r in result.summary["results"]
            if r["status"] in ("failed", "error") for code in (r["codes"] or ["(none)"])}


@pytest.fixture(scope="module")
def imitation():
    """seed -> the imitation lab's failures for it, each run once for the module."""
    return {}


def fdb_target(lab, node: str, mac: str) -> str:
    """Which node `node`'s FDB sends `mac` to (by the entry's dst)."""
    state = lab.state()
    out = lab.exec(node, ["bridge", "fdb", "show", "dev", state.device]).stdout
    dst = next(line.split(" dst ")[1].split()[0] for line in out.splitlines() if line.startswith(mac))
    return next(n.name for n in state.nodes if n.address == dst)


def relabel_clones(expected: set, lab) -> set:
    """Seed 000: the imitation writes FDBs in node order, so its peers' entry for the shared MAC points
    at node3 and they blame node2; real flanneld lets the lease it handled last win (random subnets, so
    random order). Each peer blames the clone its FDB does NOT point at: the imitation's pair subjects
    with node2 replaced by that clone, per peer."""
    state = lab.state()
    mac = state.node("node2").vtep_mac
    out = set()
    for check, subject, code in expected:
        if "->" in subject and subject.endswith("->node2"):
            peer = subject.split("->")[0]
            other = "node3" if fdb_target(lab, peer, mac) == "node2" else "node2"
            subject = f"{peer}->{other}"
        out.add((check, subject, code))
    return out


def in_view(inventory: str, view: str, path: Path) -> Path:
    """The lab's inventory read through another cluster view (the lab publishes both: etcd and kubectl)."""
    path.write_text(Path(inventory).read_text().replace("vxlan_cluster_view: etcd", f"vxlan_cluster_view: {view}"))
    return path


# both versions through both views (the kubectl view as flannel's kube subnet manager publishes the leases;
# v0.12.0's through etcd v2, as the field reports' clusters of 2020 kept them)
VIEWS = {"v0.20.2": ("etcd", "kubectl"), "v0.12.0": ("etcd", "kubectl")}


@pytest.mark.parametrize("version", list(VIEWS))
@pytest.mark.parametrize("seed", list(SEEDS))
def test_seed_on_the_real_daemon_is_named_as_the_imitation_names_it(lab, flanneld, imitation, tmp_path, seed,
                                                                    version):
    """Each field incident made on real flanneld: the suite run as a user gives exactly the (check,
    subject, code) set it gives on the imitation lab for the same fault, in each view."""
    faults, suites, options = SEEDS[seed]
    if seed not in imitation:
        state = lab.up(nodes=4, faults=faults, cluster_view="etcd", inventory_path=str(tmp_path / "imitation.yaml"),
                       **options)
        imitation[seed] = {view: failed(run_suite(in_view(state.inventory_path, view, tmp_path / f"i-{view}.yaml"),
                                                  tmp_path / f"imitation-{view}", *suites))
                           for view in ("etcd", "kubectl")}
    for view in VIEWS[version]:
        assert {(s, c) for _, s, c in imitation[seed][view]} == SEED_CODES[seed], view
    state = lab.up(nodes=4, faults=faults, cluster_view="etcd", flanneld=flanneld(version),
                   inventory_path=str(tmp_path / "lab.yaml"), **options)
    assert state.flanneld_version == version
    for view in VIEWS[version]:
        result = run_suite(in_view(state.inventory_path, view, tmp_path / f"{view}.yaml"), tmp_path / view, *suites)
        want = imitation[seed][view]
        expected = relabel_clones(want, lab) if seed.startswith("000") else want
        assert failed(result) == expected, f"{view} view:\n" + result.output[-4000:]
        assert result.exit_code == 1


def test_nodes_sharing_the_nat_address_share_one_lease_and_each_is_named(lab, flanneld, imitation, tmp_path):
    """Seed 001 with two VMs on the NAT address: real flanneld in etcd mode gives them ONE lease (the
    subnet manager reuses the lease whose PublicIP is its own, subnet/etcd/local_manager.go
    tryAcquireLease). The suite gives that lease to both holders, so each is named as the imitation names
    it (PUBLIC_IP_MISMATCH, PUBLIC_IP_DUPLICATE, VTEP_LOCAL_MISMATCH), none is missing from the view, and
    the holder whose MAC lost the lease's last write is named VTEP_MAC_MISMATCH as well. Between the two
    holders there is no VXLAN pair on the real daemon (one subnet), so only node checks are compared."""
    faults = ["wrong-public-ip@node2,node3"]
    if "shared-nat" not in imitation:
        state = lab.up(nodes=4, faults=faults, cluster_view="etcd", inventory_path=str(tmp_path / "imitation.yaml"))
        imitation["shared-nat"] = failed(run_suite(state.inventory_path, tmp_path / "imitation", *STATIC_SUITES))
    nodes_only = {f for f in imitation["shared-nat"] if "->" not in f[1]}
    assert {(s, c) for _, s, c in nodes_only} == {(n, c) for n in ("node2", "node3") for c in (
        "PUBLIC_IP_MISMATCH", "PUBLIC_IP_DUPLICATE", "VTEP_LOCAL_MISMATCH")}
    state = lab.up(nodes=4, faults=faults, cluster_view="etcd", flanneld=flanneld("v0.20.2"),
                   inventory_path=str(tmp_path / "lab.yaml"))
    assert state.node("node2").subnet == state.node("node3").subnet
    result = run_suite(state.inventory_path, tmp_path / "reports", *STATIC_SUITES)
    lease = real_flannel.leases(state.etcd_endpoint, False)[state.node("node2").subnet]
    lost = {n for n in ("node2", "node3") if state.node(n).vtep_mac != lease["BackendData"]["VtepMAC"]}
    assert len(lost) == 1
    expected = nodes_only | {("vtep-mac-advertised", n, "VTEP_MAC_MISMATCH") for n in lost}
    assert {f for f in failed(result) if "->" not in f[1]} == expected, result.output[-4000:]
