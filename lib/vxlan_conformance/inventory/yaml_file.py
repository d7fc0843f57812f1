"""Ansible YAML inventories (kubespray hosts.yaml, plain `all: {hosts, vars, children}`) and vars files.

`!vault` values load as Vault markers instead of failing the whole file, so an inventory with encrypted
secrets the suite never reads still loads; reading one is reported by vxlan_conformance.inventory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vxlan_conformance.inventory.raw import InventoryError, RawInventory, expand_host_range

_GROUP_KEYS = ("hosts", "vars", "children")


@dataclass(frozen=True)
class Vault:
    """An Ansible Vault encrypted value: present, but unreadable without the vault password."""

    ciphertext: str


class _Loader(yaml.SafeLoader):
    """SafeLoader that understands Ansible's `!vault` and `!unsafe` tags."""


_Loader.add_constructor("!vault", lambda loader, node: Vault(str(loader.construct_scalar(node))))
_Loader.add_constructor("!unsafe", lambda loader, node: str(loader.construct_scalar(node)))


def load_yaml(text: str, source: Path) -> Any:
    """yaml.load with Ansible tags; a syntax error names the file and line."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InventoryError(f"{source}{line}: malformed YAML ({problem}); fix the syntax") from None


def looks_like_yaml_inventory(data: Any) -> bool:
    """A YAML inventory is a mapping of group names to mappings (or nothing)."""
    return isinstance(data, dict) and bool(data) and all(
        isinstance(key, str) and (value is None or isinstance(value, dict)) for key, value in data.items()
    )


def parse_yaml(data: dict[str, Any], source: Path) -> RawInventory:
    """Build a RawInventory from already loaded YAML inventory data."""
    raw = RawInventory()
    for name, body in data.items():
        _group(raw, name, body, source)
    return raw


def _group(raw: RawInventory, name: str, body: Any, source: Path) -> None:
    group = raw.group(name)
    if body is None:
        return
    if not isinstance(body, dict):
        raise InventoryError(f"{source}: group '{name}' must be a mapping with hosts/vars/children; fix it")
    unknown = [key for key in body if key not in _GROUP_KEYS]
    if unknown:
        raise InventoryError(
            f"{source}: unexpected key '{unknown[0]}' in group '{name}'; use only hosts, vars, children"
        )
    hosts = _mapping(body.get("hosts"), f"hosts of group '{name}'", source)
    for pattern, host_vars in hosts.items():
        try:
            names = expand_host_range(str(pattern))
        except ValueError as exc:
            raise InventoryError(f"{source}: {exc} in group '{name}'; fix the range") from None
        own = _mapping(host_vars, f"vars of host '{pattern}'", source)
        for host in names:
            raw.add_host(name, host, dict(own))
    group.vars.update(_mapping(body.get("vars"), f"vars of group '{name}'", source))
    for child, child_body in _mapping(body.get("children"), f"children of group '{name}'", source).items():
        if child not in group.children:
            group.children.append(str(child))
        _group(raw, str(child), child_body, source)


def _mapping(value: Any, what: str, source: Path) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InventoryError(f"{source}: {what} must be a mapping (name: value), not {type(value).__name__}")
    return {str(key): item for key, item in value.items()}
