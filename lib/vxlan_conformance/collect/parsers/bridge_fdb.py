"""`bridge [-j] fdb show [dev X]`: where the VTEP sends frames for each peer MAC.

Text from a filtered dump (`dev X`) omits `dev`; an unfiltered dump (old iproute without `dev` filter,
or a field report's `bridge fdb show | grep`) names it, so entries of other devices are dropped here.
"""

from __future__ import annotations

import json

from vxlan_conformance.collect.parsers.iproute import is_json
from vxlan_conformance.model.records import FdbEntry

_STATES = {"permanent", "static", "stale"}
_ONE_ARG = {"dev", "dst", "vni", "port", "master", "vlan", "via", "src_vni", "nhid"}


def parse_fdb(text: str, dev: str | None = None) -> list[FdbEntry]:
    """Entries of `dev` (all entries when dev is None).

    >>> (entry,) = parse_fdb("c2:8a:fe:64:a4:f0 dev flannel.1 dst 10.0.2.15 self permanent")
    >>> entry.mac, entry.dst, entry.flags, entry.state
    ('c2:8a:fe:64:a4:f0', '10.0.2.15', ['self'], 'permanent')
    """
    entries = _from_json(text, dev) if is_json(text) else _from_text(text, dev)
    return [entry for entry in entries if dev is None or entry.dev == dev]


def _from_json(text: str, dev: str | None) -> list[FdbEntry]:
    entries = []
    for item in json.loads(text):
        state = item.get("state") or None
        entries.append(
            FdbEntry(
                mac=item["mac"], dst=item.get("dst"), dev=item.get("ifname", dev), flags=list(item.get("flags", [])),
                state=state, vni=item.get("vni"), port=item.get("port"), master=item.get("master"),
                vlan=item.get("vlan"),
            )
        )
    return entries


def _from_text(text: str, dev: str | None) -> list[FdbEntry]:
    entries = []
    for line in text.splitlines():
        tokens = line.split()
        if not tokens:
            continue
        opts: dict[str, str] = {}
        flags: list[str] = []
        state = None
        index = 1
        while index < len(tokens):
            token = tokens[index]
            if token in _ONE_ARG and index + 1 < len(tokens):
                opts[token] = tokens[index + 1]
                index += 2
                continue
            if token in _STATES:
                state = token
            else:
                flags.append(token)
            index += 1
        entries.append(
            FdbEntry(
                mac=tokens[0], dst=opts.get("dst"), dev=opts.get("dev", dev), flags=flags, state=state,
                vni=_int(opts.get("vni")), port=_int(opts.get("port")), master=opts.get("master"),
                vlan=_int(opts.get("vlan")),
            )
        )
    return entries


def _int(value: str | None) -> int | None:
    return None if value is None else int(value)
