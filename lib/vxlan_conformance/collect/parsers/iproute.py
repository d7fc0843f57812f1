"""iproute2 `ip` outputs (link, addr, route, neigh) in JSON (`-j`) and text form.

Text is what iproute 3.10 (CentOS 7) and every field report print; JSON is what modern iproute prints
with `-j`. Both forms of the same state must give equal records (tests compare them on a live device).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from vxlan_conformance.model.records import Address, Interface, Neighbour, Route, VxlanDevice

_HEADER = re.compile(r"^(\d+):\s+([^\s@:]+)(?:@(\S+?))?:\s+<([^>]*)>(.*)$")

# vxlan keywords that take one argument in `ip -d link show` text ("srcport" takes two).
_VXLAN_ONE_ARG = {
    "id", "group", "remote", "local", "dev", "dstport", "port", "ttl", "hoplimit", "tos", "df", "flowlabel",
    "label", "ageing", "maxaddress", "maxaddr", "addrgenmode", "numtxqueues", "numrxqueues", "gso_max_size",
    "gso_max_segs", "tso_max_size", "tso_max_segs", "gro_max_size", "gso_ipv4_max_size",
    "gro_ipv4_max_size", "parentbus", "parentdev",
}
_ROUTE_TYPES = {
    "unicast", "local", "broadcast", "multicast", "throw", "unreachable", "prohibit", "blackhole", "nat",
    "anycast",
}
_ROUTE_ONE_ARG = {
    "via", "dev", "proto", "scope", "src", "metric", "table", "mtu", "advmss", "error", "pref", "expires",
    "realm", "realms", "nhid", "congctl", "rtt", "rttvar", "window", "cwnd", "initcwnd", "initrwnd",
    "features", "quickack", "fastopen_no_cookie", "hoplimit", "reordering", "ssthresh", "tos", "from",
    "encap", "ttl-propagate", "uid", "weight",
}


def is_json(text: str) -> bool:
    """True when the output is `ip -j` / `bridge -j` JSON rather than text.

    >>> is_json('[{"ifname":"lo"}]'), is_json("1: lo: <LOOPBACK> mtu 65536")
    (True, False)
    """
    stripped = text.lstrip()
    return stripped.startswith(("[", "{"))


def parse_vxlan_link(text: str) -> VxlanDevice | None:
    """`ip -d [-j] link show dev X` -> the device, or None when the output holds no link."""
    if is_json(text):
        links = json.loads(text)
        return _vxlan_from_json(links[0]) if links else None
    blocks = list(_text_blocks(text))
    return _vxlan_from_text(blocks[0]) if blocks else None


def parse_interfaces(text: str) -> list[Interface]:
    """`ip [-j] addr show` -> every interface with its MAC, MTU and addresses."""
    if is_json(text):
        return [_interface_from_json(item) for item in json.loads(text)]
    return [_interface_from_text(block) for block in _text_blocks(text)]


def parse_routes(text: str) -> list[Route]:
    """`ip [-j] route show` -> routes; multipath `nexthop` continuation lines are skipped."""
    if is_json(text):
        return [_route_from_json(item) for item in json.loads(text)]
    routes = []
    for line in text.splitlines():
        if line.strip() and not line[0].isspace():
            routes.append(_route_from_text(line.split()))
    return routes


def parse_neighbours(text: str, dev: str | None = None) -> list[Neighbour]:
    """`ip [-j] neigh show [dev X]` -> entries; `dev` fills the device the filtered output omits."""
    if is_json(text):
        return [
            Neighbour(
                ip=item["dst"],
                mac=item.get("lladdr"),
                state=" ".join(item.get("state", [])),
                dev=item.get("dev", dev),
            )
            for item in json.loads(text)
        ]
    return [_neighbour_from_text(line.split(), dev) for line in text.splitlines() if line.strip()]


def _text_blocks(text: str) -> Iterator[list[str]]:
    """Split `ip link`/`ip addr` text into one list of lines per interface (header line first)."""
    block: list[str] = []
    for line in text.splitlines():
        if _HEADER.match(line):
            if block:
                yield block
            block = [line]
        elif block and line.strip():
            block.append(line)
    if block:
        yield block


def _pairs(tokens: list[str]) -> dict[str, str]:
    """Adjacent key/value tokens, e.g. `mtu 1450 qdisc noqueue` -> {"mtu": "1450", "qdisc": "noqueue"}."""
    return dict(zip(tokens[::2], tokens[1::2], strict=False))


def _header(line: str) -> tuple[int, str, list[str], dict[str, str]]:
    match = _HEADER.match(line)
    if match is None:
        raise ValueError(f"not an interface header: {line!r}")
    ifindex, name, _parent, flags, rest = match.groups()
    return int(ifindex), name, [f for f in flags.split(",") if f], _pairs(rest.split())


def _link_mac(block: list[str]) -> str | None:
    for line in block[1:]:
        tokens = line.split()
        if tokens and tokens[0].startswith("link/"):
            return tokens[1] if len(tokens) > 1 and ":" in tokens[1] else None
    return None


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _vxlan_from_text(block: list[str]) -> VxlanDevice:
    ifindex, name, flags, header = _header(block[0])
    kind_line = next((line.split() for line in block[2:] if line.split()[:1] == ["vxlan"]), None)
    if kind_line is None:
        tokens = block[2].split() if len(block) > 2 else []
        kind = tokens[0] if tokens and tokens[0] != "altname" else None
        return VxlanDevice(
            name=name, mac=_link_mac(block), mtu=_int(header.get("mtu")), up="UP" in flags, kind=kind,
            ifindex=ifindex, lower_up="LOWER_UP" in flags, operstate=header.get("state"),
        )
    opts, words = _vxlan_tokens(kind_line[1:])
    udpcsum = True if "udpcsum" in words else False if "noudpcsum" in words else None
    return VxlanDevice(
        name=name,
        mac=_link_mac(block),
        vni=_int(opts.get("id")),
        port=_int(opts.get("dstport", opts.get("port"))),
        local=opts.get("local"),
        dev=opts.get("dev"),
        mtu=_int(header.get("mtu")),
        up="UP" in flags,
        learning="nolearning" not in words,
        udpcsum=udpcsum,
        group=opts.get("group"),
        remote=opts.get("remote"),
        kind="vxlan",
        ifindex=ifindex,
        lower_up="LOWER_UP" in flags,
        operstate=header.get("state"),
        external="external" in words,
    )


def _vxlan_tokens(tokens: list[str]) -> tuple[dict[str, str], set[str]]:
    """Split the words after `vxlan` into keyword arguments and bare flags."""
    opts: dict[str, str] = {}
    words: set[str] = set()
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token == "srcport" and index + 2 < len(tokens):
            opts[token] = f"{tokens[index + 1]} {tokens[index + 2]}"
            index += 3
        elif token in _VXLAN_ONE_ARG and index + 1 < len(tokens):
            opts.setdefault(token, tokens[index + 1])
            index += 2
        else:
            words.add(token)
            index += 1
    return opts, words


def _vxlan_from_json(item: dict[str, Any]) -> VxlanDevice:
    info = item.get("linkinfo") or {}
    data = info.get("info_data") or {}
    flags = item.get("flags", [])
    udp_csum = data.get("udp_csum")
    return VxlanDevice(
        name=item["ifname"],
        mac=item.get("address"),
        vni=data.get("id"),
        port=data.get("port"),
        local=data.get("local", data.get("local6")),
        dev=data.get("link"),
        mtu=item.get("mtu"),
        up="UP" in flags,
        learning=data.get("learning") if info.get("info_kind") == "vxlan" else None,
        udpcsum=None if udp_csum is None else bool(udp_csum),
        group=data.get("group", data.get("group6")),
        remote=data.get("remote", data.get("remote6")),
        kind=info.get("info_kind"),
        ifindex=item.get("ifindex"),
        lower_up="LOWER_UP" in flags,
        operstate=item.get("operstate"),
        external=bool(data.get("external", False)),
    )


def _interface_from_text(block: list[str]) -> Interface:
    ifindex, name, flags, header = _header(block[0])
    addresses = []
    for line in block[1:]:
        tokens = line.split()
        if tokens[0] in ("inet", "inet6"):
            addresses.append(_address_from_tokens(name, tokens))
    return Interface(
        name=name, ifindex=ifindex, mtu=_int(header.get("mtu")), mac=_link_mac(block), up="UP" in flags,
        operstate=header.get("state"), addresses=addresses,
    )


def _address_from_tokens(dev: str, tokens: list[str]) -> Address:
    """`inet 198.18.0.1/24 brd ... scope global eth0` or `inet 10.0.0.1 peer 10.0.0.2/32 scope ...`."""
    local = tokens[1]
    opts = _pairs(tokens[2:]) if len(tokens) > 2 else {}
    prefixed = opts.get("peer", local) if "/" not in local else local
    address = local.split("/")[0]
    prefixlen = int(prefixed.split("/")[1]) if "/" in prefixed else (32 if tokens[0] == "inet" else 128)
    scope = tokens[tokens.index("scope") + 1] if "scope" in tokens else None
    return Address(dev=dev, family=tokens[0], address=address, prefixlen=prefixlen, scope=scope)


def _interface_from_json(item: dict[str, Any]) -> Interface:
    name = item["ifname"]
    flags = item.get("flags", [])
    addresses = [
        Address(dev=name, family=a["family"], address=a["local"], prefixlen=a["prefixlen"], scope=a.get("scope"))
        for a in item.get("addr_info", [])
        if "local" in a
    ]
    mac = item.get("address")
    return Interface(
        name=name, ifindex=item.get("ifindex"), mtu=item.get("mtu"),
        mac=mac if mac and ":" in mac else None, up="UP" in flags, operstate=item.get("operstate"),
        addresses=addresses,
    )


def _route_from_text(tokens: list[str]) -> Route:
    route_type = tokens.pop(0) if tokens[0] in _ROUTE_TYPES else None
    dst = tokens[0]
    opts: dict[str, str] = {}
    words: set[str] = set()
    index = 1
    while index < len(tokens):
        token = tokens[index]
        if token == "via" and index + 2 < len(tokens) and tokens[index + 1] in ("inet", "inet6"):
            opts[token] = tokens[index + 2]
            index += 3
        elif token in _ROUTE_ONE_ARG and index + 1 < len(tokens):
            step = 3 if tokens[index + 1] == "lock" and index + 2 < len(tokens) else 2
            opts.setdefault(token, tokens[index + step - 1])
            index += step
        else:
            words.add(token)
            index += 1
    return Route(
        dst=dst, via=opts.get("via"), dev=opts.get("dev"), onlink="onlink" in words, src=opts.get("src"),
        proto=opts.get("proto"), scope=opts.get("scope"), metric=_int(opts.get("metric")),
        type=None if route_type == "unicast" else route_type,
    )


def _route_from_json(item: dict[str, Any]) -> Route:
    via = item.get("gateway") or (item.get("via") or {}).get("host")
    route_type = item.get("type")
    return Route(
        dst=item["dst"], via=via, dev=item.get("dev"), onlink="onlink" in item.get("flags", []),
        src=item.get("prefsrc"), proto=item.get("protocol"), scope=item.get("scope"),
        metric=item.get("metric"), type=None if route_type == "unicast" else route_type,
    )


def _neighbour_from_text(tokens: list[str], dev: str | None) -> Neighbour:
    opts = {}
    states = []
    index = 1
    while index < len(tokens):
        token = tokens[index]
        if token in ("dev", "lladdr", "probes", "vni", "port", "protocol") and index + 1 < len(tokens):
            opts[token] = tokens[index + 1]
            index += 2
            continue
        if token.isupper():
            states.append(token)
        index += 1
    return Neighbour(ip=tokens[0], mac=opts.get("lladdr"), state=" ".join(states), dev=opts.get("dev", dev))
