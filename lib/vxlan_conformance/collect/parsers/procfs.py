"""Files under /proc, /sys and /etc that the collect script prints verbatim or as `name value` lines."""

from __future__ import annotations

import shlex


def parse_os_release(text: str) -> dict[str, str]:
    """/etc/os-release (shell-style KEY="value" lines) -> dict; comments and junk lines are skipped.

    >>> parse_os_release('ID="kylin"\\nVERSION_ID=V10\\n# comment')
    {'ID': 'kylin', 'VERSION_ID': 'V10'}
    """
    result = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or not key.isidentifier():
            continue
        try:
            words = shlex.split(value)
        except ValueError:
            words = [value.strip("\"'")]
        result[key] = " ".join(words)
    return result


def parse_snmp(text: str) -> dict[str, dict[str, int]]:
    """/proc/net/snmp (header line + value line per protocol) -> {"Udp": {"InCsumErrors": 0, ...}, ...}."""
    lines = [line.split() for line in text.splitlines() if ":" in line]
    tables: dict[str, dict[str, int]] = {}
    for header, values in zip(lines[::2], lines[1::2], strict=False):
        if header[0] != values[0]:
            raise ValueError(f"/proc/net/snmp: header {header[0]} followed by {values[0]}")
        tables[header[0].rstrip(":")] = {name: int(value) for name, value in zip(header[1:], values[1:], strict=True)}
    return tables


def parse_name_values(text: str) -> dict[str, int]:
    """`name value` lines (sysfs statistics, rp_filter per interface) -> {name: int}; others skipped.

    >>> parse_name_values("rx_packets 12\\ntx_packets 3\\nbroken")
    {'rx_packets': 12, 'tx_packets': 3}
    """
    result = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            result[parts[0]] = int(parts[1])
    return result


def parse_udp_ports(text: str) -> set[int]:
    """Local ports of bound sockets in /proc/net/udp and /proc/net/udp6 (VXLAN kernel sockets included).

    >>> sorted(parse_udp_ports("  sl  local_address rem_address\\n 5065: 00000000:2118 00000000:0000 07"))
    [8472]
    """
    ports = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[0].endswith(":") and fields[0][:-1].isdigit():
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def parse_drivers(text: str) -> dict[str, str]:
    """`<ifname> <driver path>` lines -> {ifname: driver}; the driver is the path's last component.

    Works for the script's physical paths (/sys/bus/virtio/drivers/virtio_net) and for
    `readlink -f .../device/driver/module` (/sys/module/virtio_net) alike.

    >>> parse_drivers("eth0 /sys/bus/pci/drivers/vmxnet3")
    {'eth0': 'vmxnet3'}
    """
    result = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            result[parts[0]] = driver_name(parts[1])
    return result


def driver_name(path: str) -> str:
    """/sys/module/virtio_net -> virtio_net."""
    return path.rstrip("/").rsplit("/", 1)[-1]
