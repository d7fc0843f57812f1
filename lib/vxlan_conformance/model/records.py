"""Plain records the parsers produce; `collect.facts.NodeFacts` is built from them.

They live in the model layer so the parsers, the checks and the reports share them without importing collect.facts.
All are JSON round-trippable through `dataclasses.asdict` and `from_plain`.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class Address:
    dev: str
    family: str  # "inet" | "inet6"
    address: str
    prefixlen: int
    scope: str | None = None


@dataclass
class Interface:
    name: str
    ifindex: int | None = None
    mtu: int | None = None
    mac: str | None = None
    up: bool = False
    operstate: str | None = None
    addresses: list[Address] = field(default_factory=list)
    driver: str | None = None  # basename of /sys/class/net/<if>/device/driver, e.g. virtio_net


@dataclass
class VxlanDevice:
    name: str
    mac: str | None = None
    vni: int | None = None
    port: int | None = None
    local: str | None = None
    dev: str | None = None
    mtu: int | None = None
    up: bool = False
    learning: bool | None = None
    udpcsum: bool | None = None  # None: the tool does not print it (iproute 3.10 / kernels before 3.16)
    group: str | None = None
    remote: str | None = None
    kind: str | None = None  # "vxlan" for a real VTEP; anything else is a misconfigured name clash
    ifindex: int | None = None
    lower_up: bool = False
    operstate: str | None = None
    external: bool = False  # collect-metadata mode (Cilium): no fixed VNI/local, no per-peer FDB


@dataclass
class Route:
    dst: str
    via: str | None = None
    dev: str | None = None
    onlink: bool = False
    src: str | None = None
    proto: str | None = None
    scope: str | None = None
    metric: int | None = None
    type: str | None = None  # None for unicast; "local", "blackhole", "unreachable"...


@dataclass
class Neighbour:
    ip: str
    mac: str | None
    state: str
    dev: str | None = None


@dataclass
class FdbEntry:
    mac: str
    dst: str | None = None
    dev: str | None = None
    flags: list[str] = field(default_factory=list)  # "self", "router", "extern_learn"...
    state: str | None = None  # "permanent" | "static" | "stale" | None
    vni: int | None = None
    port: int | None = None
    master: str | None = None
    vlan: int | None = None


@dataclass
class NatFacts:
    tool: str = "absent"  # "iptables" | "nft" | "absent"
    readable: bool = False  # False: rules could not be read (not root, module not loaded) -> flags unknown
    random_fully: bool = False
    kube_mark_return: bool = False
    flannel_mark_return: bool = False
    masquerade_rules: list[str] = field(default_factory=list)


@dataclass
class LinkFile:
    path: str
    matches_device: bool
    mac_address_policy: str | None = None
    masked: bool = False


@dataclass
class MacPolicy:
    link_files: list[LinkFile] = field(default_factory=list)  # effective files, in udev's order
    applied_file: str | None = None  # the first file whose [Match] selects the device: udev applies it
    applied_policy: str | None = None
    default_link_exists: bool | None = None  # 99-default.link in /usr/lib or /lib/systemd/network
    default_link_policy: str | None = None
    systemd_version: int | None = None
    nm_state: str | None = None  # nmcli STATE for the device; None: nmcli absent or device not listed
    nm_managed: bool | None = None


@dataclass
class PythonInfo:
    path: str
    version: str | None


def from_plain(cls: type[T], data: Any, *, strict: bool = False) -> T:
    """Rebuild a dataclass tree from `dataclasses.asdict` output; unknown keys are ignored.

    strict: every scalar must have its field's type (int keys may come as JSON strings), else ValueError;
    for data from nodes, where a wrong shape must cost one result, not the run.

    >>> from_plain(Route, {"dst": "default", "via": "198.18.0.1", "extra": 1}) == Route("default", "198.18.0.1")
    True
    """
    return _converter(cls, strict)(data)


_SCALARS = (int, float, str, bool)


@functools.cache
def _converter(tp: Any, strict: bool) -> Callable[[Any], Any]:
    """The function that rebuilds a value of type tp, worked out once per type: a 100-node run.json holds
    1.5 million values, and inspecting each one's type as it came made loading it take seconds."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        return _converter(inner[0], strict) if len(inner) == 1 else _keep
    if origin is list:
        return _list_of(_converter(typing.get_args(tp)[0], strict), strict)
    if origin is dict:
        key, item = typing.get_args(tp)
        return _dict_of(int if key is int else None, _converter(item, strict), strict)
    if dataclasses.is_dataclass(tp):
        return _dataclass_of(tp, strict)
    if strict and tp in _SCALARS:
        return _scalar_of(tp)
    return _keep


def _keep(value: Any) -> Any:
    return value


def _list_of(item: Callable[[Any], Any], strict: bool) -> Callable[[Any], Any]:
    def build(value: Any) -> Any:
        if value is None:
            return None
        _expect(strict, value, list)
        return [item(v) for v in value]
    return build


def _dict_of(key: type | None, item: Callable[[Any], Any], strict: bool) -> Callable[[Any], Any]:
    def build(value: Any) -> Any:
        if value is None:
            return None
        _expect(strict, value, dict)
        try:
            return {(key(k) if key else k): item(v) for k, v in value.items()}
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad key in {value!r:.60}: {exc}") from None
    return build


def _dataclass_of(cls: type, strict: bool) -> Callable[[Any], Any]:
    names: set[str] = set()  # filled on first use: a dataclass may contain itself
    convert: dict[str, Callable[[Any], Any]] = {}  # the fields whose values are not kept as they are
    scalars: list[tuple[str, type]] = []  # strict: the scalar fields, checked inline (the hot path)

    def build(value: Any) -> Any:
        if value is None:
            return None
        _expect(strict, value, dict)
        if not names:
            for name, hint in _field_types(cls).items():
                names.add(name)
                if strict and (scalar := _scalar_type(hint)):
                    scalars.append((name, scalar))
                elif (fn := _converter(hint, strict)) is not _keep:
                    convert[name] = fn
        given = {k: v for k, v in value.items() if k in names}
        for name, tp in scalars:
            v = given.get(name)
            if v is not None and type(v) not in _EXACT[tp]:
                raise ValueError(f"{v!r:.40} is not {tp.__name__}")
        for name, fn in convert.items():
            if name in given:
                given[name] = fn(given[name])
        return cls(**given)
    return build


# what JSON gives for each scalar type (a bool is not an int here; an int is a float)
_EXACT: dict[type, tuple[type, ...]] = {int: (int,), float: (int, float), str: (str,), bool: (bool,)}


def _scalar_type(hint: Any) -> type | None:
    """int for `int` and `int | None`; None for anything not a scalar."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        hint = inner[0] if len(inner) == 1 else None
    return hint if hint in _SCALARS else None


def _scalar_of(tp: type) -> Callable[[Any], Any]:
    def build(value: Any) -> Any:
        if value is not None and type(value) not in _EXACT[tp]:
            raise ValueError(f"{value!r:.40} is not {tp.__name__}")
        return value
    return build


def _expect(strict: bool, value: Any, kind: type) -> None:
    if strict and not isinstance(value, kind):
        raise ValueError(f"{value!r:.40} is not a {kind.__name__}")


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    """Resolved field types of a dataclass, once per class (get_type_hints is slow)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}
