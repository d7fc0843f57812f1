"""Parsers against real outputs: the five seeds' field reports and live captures from this machine.

Fixtures live in tests/fixtures/outputs: `<seed>_<command>.txt` are verbatim copies of the outputs in
/work/shared/seeds (seed 003's outputs were flattened to one line by the blog scrape; line breaks were put
back, nothing else changed), `live_*` were captured by capture_live.sh from real devices.
"""

from __future__ import annotations

import dataclasses
import doctest
from pathlib import Path

import pytest

from vxlan_conformance.collect.parsers import (
    bridge_fdb,
    ethtool,
    ifconfig,
    iproute,
    netfilter,
    procfs,
    systemd,
)
from vxlan_conformance.model import records
from vxlan_conformance.model.records import Address, FdbEntry, Neighbour, Route

OUTPUTS = Path(__file__).resolve().parents[2] / "fixtures" / "outputs"


def fixture(name: str) -> str:
    return (OUTPUTS / name).read_text()


# --- seed 000: cloned Kylin VMs, identical flannel.1 MAC -------------------------------------------------

@pytest.mark.parametrize(
    ("name", "mac", "local", "ifindex"),
    [
        pytest.param("000_ip-d-link-show-flannel.1_node252.txt", "fe:22:77:eb:2f:a4", "172.18.27.252", 394,
                     id="seed000-node252"),
        pytest.param("000_ip-d-link-show-flannel.1_node254.txt", "fe:22:77:eb:2f:a4", "172.18.27.254", 66,
                     id="seed000-node254"),
        pytest.param("000_ip-d-link-show-flannel.1_after-fix.txt", "1a:e0:cc:e3:a7:04", "172.18.27.253", 36,
                     id="seed000-after-fix"),
    ],
)
def test_seed000_vxlan_link_text(name: str, mac: str, local: str, ifindex: int) -> None:
    device = iproute.parse_vxlan_link(fixture(name))
    assert device is not None
    assert (device.name, device.mac, device.local, device.ifindex) == ("flannel.1", mac, local, ifindex)
    assert (device.vni, device.port, device.dev, device.mtu) == (1, 8472, "enp1s0", 1450)
    assert device.up and device.lower_up and device.kind == "vxlan"
    assert device.learning is False
    assert device.udpcsum is True
    assert device.group is None and device.remote is None


def test_seed000_down_test_device() -> None:
    device = iproute.parse_vxlan_link(fixture("000_ip-d-link-show-test.txt"))
    assert device is not None
    assert (device.name, device.vni, device.port, device.up, device.operstate) == ("test", 2, 8473, False, "DOWN")


def test_seed000_ip_addr_underlay() -> None:
    (enp1s0,) = iproute.parse_interfaces(fixture("000_ip-4-a-s-enp1s0.txt"))
    assert (enp1s0.name, enp1s0.mtu, enp1s0.mac, enp1s0.up) == ("enp1s0", 1500, "dc:2d:cb:17:3e:a1", True)
    assert enp1s0.addresses == [Address("enp1s0", "inet", "172.18.27.252", 25, "global")]


@pytest.mark.parametrize(
    ("name", "pretty"),
    [
        pytest.param("000_os-release.txt", "Kylin Linux Advanced Server V10 (Tercel)", id="seed000"),
        pytest.param("003_os-release.txt", "Kylin Linux Advanced Server V10 (Lance)", id="seed003"),
    ],
)
def test_seed_os_release(name: str, pretty: str) -> None:
    os_release = procfs.parse_os_release(fixture(name))
    assert os_release["ID"] == "kylin"
    assert os_release["VERSION_ID"] == "V10"
    assert os_release["PRETTY_NAME"] == pretty


# --- seed 001: Vagrant NAT address 10.0.2.15 as public IP ------------------------------------------------

def test_seed001_ip_addr_vtep() -> None:
    (flannel,) = iproute.parse_interfaces(fixture("001_ip-a-s-flannel.1.txt"))
    assert (flannel.name, flannel.mtu, flannel.mac) == ("flannel.1", 1450, "3e:7f:7a:12:51:fd")
    assert [(a.family, a.address, a.prefixlen, a.scope) for a in flannel.addresses] == [
        ("inet", "9.0.2.0", 32, "global"),
        ("inet6", "fe80::3c7f:7aff:fe12:51fd", 64, "link"),
    ]


def test_seed001_ip_route() -> None:
    routes = iproute.parse_routes(fixture("001_ip-route.txt"))
    assert len(routes) == 7
    assert routes[0] == Route(dst="default", via="192.168.1.1", dev="eth1")
    assert routes[4] == Route(dst="9.0.3.0/24", via="9.0.3.0", dev="flannel.1", onlink=True)
    assert routes[5] == Route(dst="172.17.0.0/16", dev="docker0", src="172.17.0.1", proto="kernel", scope="link")
    pod_routes = [r.dst for r in routes if r.dev == "flannel.1" and r.onlink]
    assert pod_routes == ["9.0.0.0/24", "9.0.1.0/24", "9.0.3.0/24"]


def test_seed001_ip_neigh() -> None:
    assert iproute.parse_neighbours(fixture("001_ip-neigh-show-dev-flannel.1.txt"), "flannel.1") == [
        Neighbour(ip="9.0.3.0", mac="c2:8a:fe:64:a4:f0", state="PERMANENT", dev="flannel.1")
    ]


def test_seed001_bridge_fdb_wrong_dst() -> None:
    text = fixture("001_bridge-fdb-show.txt")
    assert bridge_fdb.parse_fdb(text, "flannel.1") == [
        FdbEntry(mac="c2:8a:fe:64:a4:f0", dst="10.0.2.15", dev="flannel.1", flags=["self"], state="permanent")
    ]
    assert bridge_fdb.parse_fdb(text, "cni0") == []


# --- seed 002: UDP 8475 blocked, flannel.1 RX packets 0 --------------------------------------------------

def test_seed002_ifconfig_counters() -> None:
    counters = ifconfig.parse_counters(fixture("002_ifconfig-flannel.1.txt"))
    assert counters["rx_packets"] == 0
    assert counters["rx_bytes"] == 0
    assert counters["tx_packets"] == 28900
    assert counters["tx_bytes"] == 2113052
    assert counters["tx_dropped"] == 8
    assert counters["collisions"] == 0


# --- seed 003: Kylin kernel with bad UDP checksums ----------------------------------------------------------

def test_seed003_ethtool_offloads() -> None:
    features = ethtool.parse_features(fixture("003_ethtool-show-offload-eth0-grep-checksum.txt"))
    assert features["tx-checksum-ip-generic"] == "on"
    assert features["rx-checksumming"] == "on [fixed]"
    assert features["tx-checksum-ipv4"] == "off [fixed]"  # printed as "tx-checksum-ipv4:off[fixed]"
    assert ethtool.feature_on(features["tx-checksum-ip-generic"]) is True
    assert ethtool.feature_on(features["tx-checksum-sctp"]) is False


def test_seed003_driver_module_path() -> None:
    assert procfs.driver_name(fixture("003_readlink-f-eth0-device-driver-module.txt").strip()) == "virtio_net"


# --- seed 004: --random-fully + TX checksum offload ---------------------------------------------------------

def test_seed004_ethtool_actual_changes() -> None:
    features = ethtool.parse_features(fixture("004_ethtool-K-flannel.1-tx-checksum-ip-generic-off.txt"))
    assert features["tx-checksum-ip-generic"] == "off"
    assert features["tx-tcp-segmentation"] == "off [requested on]"
    assert "Actual changes" not in " ".join(features)
    assert len(features) == 8


# --- old iproute (CentOS 7, 3.10): no udpcsum keyword -----------------------------------------------------

def test_iproute_310_vxlan_line_has_no_udpcsum() -> None:
    text = (
        "5: flannel.1: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UNKNOWN mode DEFAULT\n"
        "    link/ether 3e:7f:7a:12:51:fd brd ff:ff:ff:ff:ff:ff promiscuity 0\n"
        "    vxlan id 1 local 10.0.2.15 dev eth1 srcport 0 0 dstport 8472 nolearning ageing 300\n"
    )
    device = iproute.parse_vxlan_link(text)
    assert device is not None
    assert (device.vni, device.local, device.dev, device.port) == (1, "10.0.2.15", "eth1", 8472)
    assert device.learning is False
    assert device.udpcsum is None


# --- live captures: JSON and text of the same device give the same records ----------------------------------

@pytest.mark.parametrize("device", ["flannel.1", "vxc.2", "cilium_vxlan"])
def test_live_link_json_equals_text(device: str) -> None:
    from_json = iproute.parse_vxlan_link(fixture(f"live_ip-d-j-link-show-{device}.json"))
    from_text = iproute.parse_vxlan_link(fixture(f"live_ip-d-link-show-{device}.txt"))
    assert from_json == from_text
    assert from_json is not None and from_json.name == device


def test_live_link_values() -> None:
    flannel = iproute.parse_vxlan_link(fixture("live_ip-d-j-link-show-flannel.1.json"))
    multicast = iproute.parse_vxlan_link(fixture("live_ip-d-j-link-show-vxc.2.json"))
    assert flannel is not None and multicast is not None
    assert (flannel.mac, flannel.vni, flannel.port, flannel.local) == ("0e:00:00:c1:00:01", 1, 8472, "198.19.201.1")
    assert (flannel.up, flannel.learning, flannel.udpcsum) == (True, False, True)
    assert (multicast.group, multicast.port, multicast.local) == ("239.1.1.1", 4789, None)
    assert (multicast.up, multicast.learning, multicast.udpcsum) == (False, True, False)
    assert flannel.dev == multicast.dev == "eth0" and not flannel.external


def test_live_link_external_mode() -> None:
    cilium = iproute.parse_vxlan_link(fixture("live_ip-d-link-show-cilium_vxlan.txt"))
    assert cilium is not None
    assert (cilium.external, cilium.vni, cilium.port, cilium.local, cilium.dev) == (True, 0, 8472, None, None)


def test_live_addr_json_equals_text() -> None:
    from_json = iproute.parse_interfaces(fixture("live_ip-j-addr-show.json"))
    from_text = iproute.parse_interfaces(fixture("live_ip-addr-show.txt"))
    assert from_json == from_text
    assert [i.name for i in from_json] == ["lo", "eth0", "flannel.1", "cilium_vxlan", "vxc.2"]
    assert from_json[1].addresses[0] == Address("eth0", "inet", "198.19.201.1", 24, "global")


def test_live_routes_json_equals_text() -> None:
    from_json = iproute.parse_routes(fixture("live_ip-j-route-show.json"))
    assert from_json == iproute.parse_routes(fixture("live_ip-route-show.txt"))
    assert Route(dst="100.127.3.0/24", via="100.127.3.0", dev="flannel.1", onlink=True) in from_json


def test_live_neigh_json_equals_text() -> None:
    from_json = iproute.parse_neighbours(fixture("live_ip-j-neigh-show-dev-flannel.1.json"), "flannel.1")
    from_text = iproute.parse_neighbours(fixture("live_ip-neigh-show-dev-flannel.1.txt"), "flannel.1")
    assert from_json == from_text
    assert {(n.ip, n.mac, n.state) for n in from_json} == {
        ("100.127.2.0", "0e:00:00:c1:00:12", "PERMANENT"),
        ("100.127.3.0", "0e:00:00:c1:00:13", "PERMANENT"),
    }


def test_live_fdb_json_text_and_unfiltered_agree() -> None:
    from_json = bridge_fdb.parse_fdb(fixture("live_bridge-j-fdb-show-dev-flannel.1.json"), "flannel.1")
    from_text = bridge_fdb.parse_fdb(fixture("live_bridge-fdb-show-dev-flannel.1.txt"), "flannel.1")
    unfiltered = bridge_fdb.parse_fdb(fixture("live_bridge-fdb-show.txt"), "flannel.1")
    assert from_json == from_text == unfiltered
    assert {(e.mac, e.dst) for e in from_json} == {
        ("0e:00:00:c1:00:12", "198.19.201.2"),
        ("0e:00:00:c1:00:13", "198.19.201.3"),
    }
    (multicast,) = bridge_fdb.parse_fdb(fixture("live_bridge-fdb-show.txt"), "vxc.2")
    assert (multicast.mac, multicast.dst, multicast.state) == ("00:00:00:00:00:00", "239.1.1.1", "permanent")


def test_live_ethtool_k() -> None:
    features = ethtool.parse_features(fixture("live_ethtool-k-flannel.1.txt"))
    assert features["tx-checksum-ip-generic"] == "on"
    assert features["tx-checksum-ipv4"] == "off [fixed]"
    assert not any(name.startswith("Features") for name in features)


# --- netfilter: kube-proxy with and without the k8s#92035 fix --------------------------------------------

def test_iptables_save_with_fixes() -> None:
    nat = netfilter.parse_iptables_save(fixture("live_iptables-save_kube-fixed.txt"))
    assert (nat.tool, nat.readable, nat.random_fully) == ("iptables", True, True)
    assert nat.kube_mark_return is True  # printed as --set-xmark 0x4000/0x0
    assert nat.flannel_mark_return is True
    assert len(nat.masquerade_rules) == 2


def test_iptables_legacy_save_before_fix() -> None:
    nat = netfilter.parse_iptables_save(fixture("live_iptables-legacy-save_kube-prefix.txt"))
    assert nat.random_fully is True
    assert nat.kube_mark_return is False
    assert nat.flannel_mark_return is False
    assert any("--random-fully" in rule for rule in nat.masquerade_rules)


def test_nft_ruleset_of_iptables_nft() -> None:
    nat = netfilter.parse_nft_ruleset(fixture("live_nft-list-ruleset_iptables-nft.txt"))
    assert (nat.tool, nat.random_fully, nat.kube_mark_return, nat.flannel_mark_return) == ("nft", True, True, True)


def test_nft_ruleset_of_kube_proxy_nftables_mode() -> None:
    text = fixture("live_nft-list-ruleset_kube-proxy-nftables.txt")
    nat = netfilter.parse_nft_ruleset(text)
    assert (nat.random_fully, nat.kube_mark_return, nat.flannel_mark_return) == (True, True, False)
    assert nat.masquerade_rules == ["kube-proxy masquerading: masquerade fully-random"]


def test_nat_merge_keeps_any_finding() -> None:
    legacy = netfilter.parse_iptables_save(fixture("live_iptables-legacy-save_kube-prefix.txt"))
    native = netfilter.parse_nft_ruleset(fixture("live_nft-list-ruleset_kube-proxy-nftables.txt"))
    merged = netfilter.merge(legacy, native)
    assert (merged.tool, merged.kube_mark_return, merged.random_fully) == ("iptables", True, True)
    unreadable = records.NatFacts(tool="iptables", readable=False)
    assert netfilter.merge(unreadable, records.NatFacts()) == unreadable


def test_port_rules_in_both_syntaxes() -> None:
    assert netfilter.port_rules(fixture("live_iptables-save_kube-fixed.txt"), 8472) == [
        "-A INPUT -s 198.19.201.3/32 -p udp -m udp --dport 8472 -j DROP"
    ]
    nft = fixture("live_nft-list-ruleset_kube-proxy-nftables.txt")
    assert netfilter.port_rules(nft, 8472) == ["ip saddr 198.19.201.3 udp dport 8472 counter packets 0 bytes 0 drop"]
    assert netfilter.port_rules(nft, 4789) == []
    assert netfilter.port_rules("udp dport { 4789, 8472 } drop\n--dports 8472,4789 -j DROP", 8472) == [
        "udp dport { 4789, 8472 } drop", "--dports 8472,4789 -j DROP"]


# --- procfs -----------------------------------------------------------------------------------------------

def test_live_proc_net_snmp() -> None:
    snmp = procfs.parse_snmp(fixture("live_proc-net-snmp.txt"))
    assert {"Ip", "Icmp", "Tcp", "Udp", "UdpLite"} <= set(snmp)
    assert isinstance(snmp["Udp"]["InCsumErrors"], int)
    assert "InDatagrams" in snmp["Udp"]


def test_live_proc_net_udp_has_vxlan_socket() -> None:
    ports = procfs.parse_udp_ports(fixture("live_proc-net-udp.txt"))
    assert 8472 in ports  # flannel.1 is up
    assert 4789 not in ports  # vxc.2 is down: no socket


def test_live_driver_path() -> None:
    assert procfs.parse_drivers(fixture("live_drivers.txt")) == {"eth0": "virtio_net"}


def test_snmp_mismatched_lines_raise() -> None:
    with pytest.raises(ValueError, match="header Udp: followed by Tcp:"):
        procfs.parse_snmp("Udp: InDatagrams\nTcp: 1\n")


# --- MAC policy (seed 000's fix: 10-flannel.link) -----------------------------------------------------------

FLANNEL_LINK = "[Match]\nOriginalName=flannel*\n\n[Link]\nMACAddressPolicy=none\n"
DEFAULT_LINK = "[Match]\nOriginalName=*\n\n[Link]\nNamePolicy=keep kernel database onboard slot path\n" \
               "MACAddressPolicy=persistent\n"
USB_LINK = "[Match]\nProperty=ID_BUS=usb\n\n[Link]\nNamePolicy=mac\n"


def link_dump(*files: tuple[str, str | None]) -> str:
    return "".join(f"=== masked {path}\n" if text is None else f"=== {path}\n{text}\n" for path, text in files)


def test_mac_policy_seed000_fix_file_wins_over_default() -> None:
    dump = link_dump(("/etc/systemd/network/10-flannel.link", FLANNEL_LINK),
                     ("/usr/lib/systemd/network/73-usb-net-by-mac.link", USB_LINK),
                     ("/usr/lib/systemd/network/99-default.link", DEFAULT_LINK))
    policy = systemd.mac_policy(dump, "flannel.1", "vxlan", "fe:22:77:eb:2f:a4",
                                nmcli="eth0:connected\nflannel.1:unmanaged\n", udevadm="252\n")
    assert policy.applied_file == "/etc/systemd/network/10-flannel.link"
    assert policy.applied_policy == "none"
    assert policy.default_link_exists is True and policy.default_link_policy == "persistent"
    assert [f.matches_device for f in policy.link_files] == [True, False, True]
    assert (policy.nm_state, policy.nm_managed, policy.systemd_version) == ("unmanaged", False, 252)


def test_mac_policy_seed000_no_default_link() -> None:
    policy = systemd.mac_policy("", "flannel.1", "vxlan", "fe:22:77:eb:2f:a4")
    assert policy.default_link_exists is False
    assert policy.applied_file is None and policy.applied_policy is None
    assert policy.nm_state is None and policy.systemd_version is None


def test_mac_policy_masking_and_override() -> None:
    dump = link_dump(("/etc/systemd/network/99-default.link", None),
                     ("/usr/lib/systemd/network/99-default.link", DEFAULT_LINK),
                     ("/usr/lib/systemd/network/10-other.link", "[Match]\nOriginalName=!flannel*\n[Link]\n"
                                                                "MACAddressPolicy=random\n"))
    policy = systemd.mac_policy(dump, "flannel.1", "vxlan", None)
    assert [(f.path, f.masked, f.matches_device) for f in policy.link_files] == [
        ("/usr/lib/systemd/network/10-other.link", False, False),
        ("/etc/systemd/network/99-default.link", True, False),
    ]
    assert policy.applied_file is None
    assert policy.default_link_exists is False


def test_link_match_keys() -> None:
    match = systemd.ini_sections("[Match]\nType=vxlan\nMACAddress=FE:22:77:EB:2F:A4\n")["Match"]
    assert systemd.link_file_matches(match, "flannel.1", "vxlan", "fe:22:77:eb:2f:a4")
    assert not systemd.link_file_matches(match, "flannel.1", "vxlan", "fe:22:77:eb:2f:a5")
    assert not systemd.link_file_matches([("Path", "pci-*")], "flannel.1", "vxlan", None)
    assert systemd.link_file_matches([("Virtualization", "kvm")], "flannel.1", "vxlan", None)


# --- helpers and docs ----------------------------------------------------------------------------------------

def test_records_round_trip_nested() -> None:
    policy = systemd.mac_policy(link_dump(("/etc/systemd/network/10-flannel.link", FLANNEL_LINK)),
                                "flannel.1", "vxlan", None)
    assert records.from_plain(records.MacPolicy, dataclasses.asdict(policy)) == policy


@pytest.mark.parametrize("module", [bridge_fdb, ethtool, ifconfig, iproute, netfilter, procfs, records, systemd],
                         ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
