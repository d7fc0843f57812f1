"""The node identity checks on run data: a shared VTEP MAC, /etc/machine-id (cloned VMs) or advertised
public IP, and a VXLAN device that NetworkManager claims, with what counts as unknown rather than wrong."""

from __future__ import annotations

from vxlan_conformance.checks import public_ip, vtep
from vxlan_conformance.collect.parsers.systemd import mac_policy
from vxlan_conformance.model.advertised import Advertised
from vxlan_conformance.model.facts import NodeFacts
from vxlan_conformance.model.records import MacPolicy, VxlanDevice
from vxlan_conformance.model.rundata import RunData


def run_of(facts: list[NodeFacts]) -> RunData:
    nodes = [f.host for f in facts]
    return RunData("lab.yaml", "2026-11-21T00:00:00Z", nodes, {n: f"198.18.0.{i}" for i, n in enumerate(nodes, 1)},
                   {"device": "flannel.1", "port": 8472}, facts={f.host: f for f in facts})


def test_shared_machine_id_names_every_clone():
    run = run_of([NodeFacts("n1", machine_id="a" * 32), NodeFacts("n2", machine_id="b" * 32),
                  NodeFacts("n3", machine_id="a" * 32)])
    result = vtep.machine_id_unique(run, "n3")
    assert result.codes == ("MACHINE_ID_DUPLICATE",) and "shared by n1, n3" in result.message
    assert "n1: cat /etc/machine-id = " + "a" * 32 in result.evidence
    assert "rm -f /etc/machine-id" in result.remediation()
    assert vtep.machine_id_unique(run, "n2").passed


def test_shared_mac_and_public_ip_name_each_group():
    macs = ["02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:01", "02:00:00:00:00:02"]
    run = run_of([NodeFacts(f"n{i}", device=VxlanDevice(name="flannel.1", mac=mac)) for i, mac in enumerate(macs, 1)]
                 + [NodeFacts("n5")])
    run.view_source = "kubectl"
    run.view = {f"n{i}": Advertised(f"n{i}", "kubectl", public_ip=ip)
                for i, ip in enumerate(["198.18.0.1", "10.0.2.15", "10.0.2.15", "198.18.0.4"], 1)}
    assert [vtep.mac_unique(run, h).message.split(" is shared by ")[-1] for h in ("n1", "n2")] == ["n1, n3", "n2, n4"]
    assert vtep.mac_unique(run, "n5").passed and "no VXLAN device" in vtep.mac_unique(run, "n5").note
    assert public_ip.unique(run, "n3").codes == ("PUBLIC_IP_DUPLICATE",)
    assert "10.0.2.15 is advertised by n2, n3" in public_ip.unique(run, "n2").message
    assert public_ip.unique(run, "n1").passed and public_ip.unique(run, "n5").passed


def test_missing_or_uninitialized_machine_id_is_unknown_not_shared():
    run = run_of([NodeFacts("n1", machine_id="uninitialized"), NodeFacts("n2", machine_id="uninitialized"),
                  NodeFacts("n3")])
    for host in ("n1", "n2", "n3"):
        result = vtep.machine_id_unique(run, host)
        assert result.passed and "no /etc/machine-id" in result.note


def test_nm_state_of_the_device_decides():
    listing = "lo:unmanaged\neth0:connected\nflannel.1:{}"
    facts = [NodeFacts(f"n{i}", mac_policy=mac_policy(None, "flannel.1", "vxlan", None, nmcli=listing.format(s)))
             for i, s in enumerate(["unmanaged", "connected (externally)"], 1)]
    facts.append(NodeFacts("n3", mac_policy=MacPolicy()))  # no nmcli on the node
    run = run_of(facts)
    assert vtep.nm_unmanaged(run, "n1").passed and not vtep.nm_unmanaged(run, "n1").note
    managed = vtep.nm_unmanaged(run, "n2")
    assert managed.codes == ("VTEP_NM_MANAGED",) and "'connected (externally)'" in managed.message
    assert "unmanaged-devices=interface-name:flannel*" in managed.remediation()
    unknown = vtep.nm_unmanaged(run, "n3")
    assert unknown.passed and "nmcli absent" in unknown.note
