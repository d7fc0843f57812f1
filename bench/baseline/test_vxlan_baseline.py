"""VXLAN node and pair checks the way a pytest-testinfra user writes them: the suite's node checks with
`host.run` per host, and a UDP echo per directed pair over SSH (a bounded one-shot echo server on the
receiver, a retrying client on the sender, to the receiver's VTEP address so the datagram crosses the
VXLAN overlay)."""

from __future__ import annotations

import json

import pytest

ECHO_BASE_PORT = 20000  # a pair's echo port: this + the sender's index, so concurrent pairs never share one

VXLAN_VNI, VXLAN_PORT, VXLAN_OVERHEAD = 1, 8472, 50  # flannel's defaults

# kernels whose VXLAN checksum bug needs TX checksum offload and --random-fully NAT (seed 004)
OFFLOAD_BUG_KERNELS = {"3.10.0-957.el7", "3.10.0-1062.9.1.el7", "3.10.0-1127.8.2.el7"}
KNOWN_BAD_KERNELS = {"4.19.90-52.49.v2207.ky10"}  # bad whatever the conditions (seed 003)

# one datagram, echoed once; bounded by `timeout` and the socket timeout
ECHO_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.settimeout(5)
data, peer = s.recvfrom(2048)
s.sendto(data, peer)
"""

# the server may still be starting: resend every 50 ms, give up after 3 s
ECHO_CLIENT = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.05)
msg = b"vxlan-baseline"
deadline = time.time() + 3
while time.time() < deadline:
    s.sendto(msg, (sys.argv[1], int(sys.argv[2])))
    try:
        if s.recvfrom(2048)[0] == msg:
            sys.exit(0)
    except socket.timeout:
        pass
sys.exit(1)
"""


def test_ssh_reachable(host):
    assert host.run("true").rc == 0


def test_privileges(host):
    assert host.run("id -u").stdout.strip() == "0" or host.run("sudo -n true").rc == 0


def test_python(host):
    assert host.run("python3 -V || python2 -V").rc == 0


def test_vxlan_device_present(host, device):
    assert host.interface(device).exists


def test_vtep_mac_unique(host, fleet):
    me = fleet[host.backend.host.name]
    twins = [v.address for v in fleet.values() if v.mac == me.mac and v.address != me.address]
    assert not twins, f"VTEP MAC {me.mac} also on {twins}"


def test_vtep_local_address(host, fleet):
    me = fleet[host.backend.host.name]
    assert me.local == me.address


def test_machine_id_unique(host, machine_ids):
    mine = machine_ids[host.backend.host.name]
    if not mine:
        pytest.skip("no /etc/machine-id")
    twins = [a for a, m in machine_ids.items() if m == mine and a != host.backend.host.name]
    assert not twins, f"/etc/machine-id {mine} also on {twins}"


def test_vtep_nm_unmanaged(host, device):
    states = host.run("LC_ALL=C nmcli -t -f DEVICE,STATE device")
    if states.rc == 0:  # no nmcli, or NetworkManager not running: nothing manages the device
        assert f"{device}:" not in states.stdout or f"{device}:unmanaged" in states.stdout


def test_vtep_mac_advertised(host, fleet, advertised):
    me = host.backend.host.name
    assert advertised[me].vtep_mac == fleet[me].mac


def test_vtep_config(host, device):
    info = json.loads(host.check_output("ip -d -j link show dev %s", device))[0]["linkinfo"]["info_data"]
    assert (info["id"], info["port"], info["learning"]) == (VXLAN_VNI, VXLAN_PORT, False)


def test_vtep_mtu(host, device):
    me = host.backend.host.name
    links = json.loads(host.check_output("ip -j addr show"))
    underlay = next(link for link in links if any(a.get("local") == me for a in link.get("addr_info", [])))
    vtep = next(link for link in links if link["ifname"] == device)
    assert vtep["mtu"] == underlay["mtu"] - VXLAN_OVERHEAD


def test_public_ip(host, advertised):
    me = host.backend.host.name
    assert advertised[me].public_ip == me


def test_public_ip_unique(host, advertised):
    me = advertised[host.backend.host.name]
    twins = [a.name for a in advertised.values() if a.public_ip == me.public_ip and a.name != me.name]
    assert not twins, f"public IP {me.public_ip} also advertised by {twins}"


def test_fdb_entry_per_peer(host, fleet, device):
    fdb = host.check_output("bridge fdb show dev %s", device)
    me = host.backend.host.name
    missing = [v.address for v in fleet.values()
               if v.address != me and f"{v.mac} dst {v.address} " not in fdb + " "]
    assert not missing, f"no FDB entry for {missing}"


def test_neigh_entry_per_peer(host, fleet, device):
    neigh = {(n["dst"], n.get("lladdr")) for n in json.loads(host.check_output("ip -j neigh show dev %s", device))}
    me = host.backend.host.name
    missing = [v.address for v in fleet.values() if v.address != me and (v.vtep_ip, v.mac) not in neigh]
    assert not missing, f"no neighbour entry for {missing}"


def test_route_per_peer(host, fleet, advertised, device):
    routes = {(r["dst"], r.get("gateway")) for r in json.loads(host.check_output("ip -j route show dev %s", device))}
    me = host.backend.host.name
    missing = [v.address for v in fleet.values()
               if v.address != me and (advertised[v.address].pod_cidr, v.vtep_ip) not in routes]
    assert not missing, f"no route for {missing}"


def kernel_release(host) -> str:
    """`uname -r` without the architecture suffix (4.19.90-52.49.v2207.ky10.x86_64)."""
    release = host.check_output("uname -r")
    return release.removesuffix("." + host.check_output("uname -m"))


def test_kernel_release(host):
    release = kernel_release(host)
    assert release and release not in KNOWN_BAD_KERNELS


def test_checksum_offload_risk(host, device):
    release = kernel_release(host)
    offload = host.check_output("ethtool -k %s", device)
    nat = host.run("iptables-save -t nat").stdout
    assert not (release in OFFLOAD_BUG_KERNELS and "tx-checksumming: on" in offload
                and "--random-fully" in nat), f"kernel {release} with TX offload and --random-fully NAT"


def test_udp_echo(host, peer, all_hosts, fleet, sender_index):
    me = host.backend.host.name
    if peer == me:
        pytest.skip("same node")
    port = ECHO_BASE_PORT + sender_index[me]
    receiver = all_hosts[peer]
    receiver.run("timeout 6 python3 -c %s %s </dev/null >/dev/null 2>&1 &", ECHO_SERVER, str(port))
    echo = host.run("python3 -c %s %s %s", ECHO_CLIENT, fleet[peer].vtep_ip, str(port))
    assert echo.rc == 0, f"no UDP echo from {peer} ({fleet[peer].vtep_ip}:{port}) over the overlay"
