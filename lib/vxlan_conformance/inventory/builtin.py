"""The suite's own reader, used when ansible-core is not installed: static INI and YAML inventories (one
file, or every file of a directory), group_vars/ and host_vars/ next to them, resolved the way ansible-core
2.19 resolves them. What it cannot read the way Ansible does (vault, inventory scripts and plugin configs,
TOML) it refuses in one line that says what to install or change.

Variable precedence, as Ansible's: inventory-file vars of `all`, then of the host's other groups (by depth,
ansible_group_priority, name), then group_vars/all, then group_vars/<group> in the same order, then the
host's own inventory vars and host_vars/<host>. Later files of a directory add to earlier ones.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from vxlan_conformance.inventory.ini import parse_ini
from vxlan_conformance.inventory.raw import InventoryError, RawGroup, RawInventory, SuiteRefusal
from vxlan_conformance.inventory.values import INSTALL_HINT
from vxlan_conformance.inventory.yaml_file import load_yaml, looks_like_yaml_inventory, parse_yaml

# Ansible's defaults for a directory given as the inventory: hidden entries, group_vars, host_vars and
# vars_plugins are skipped, and so are files with these endings (INVENTORY_IGNORE_EXTS).
IGNORED_NAMES = re.compile(r"^\.|^host_vars$|^group_vars$|^vars_plugins$")
IGNORED_ENDINGS = (".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg", ".retry")
VARS_EXTENSIONS = (".yml", ".yaml", ".json")
VAULT_HEADER = b"$ANSIBLE_VAULT;"
DYNAMIC_HINT = (f"only ansible-core runs dynamic inventories: {INSTALL_HINT}, or export a static one with "
                "`ansible-inventory -i SOURCE --list -y > hosts.yaml`")


def inventory_files(given: Path) -> list[Path]:
    """The file itself, or every inventory file of a directory (recursively, sorted), as Ansible takes them."""
    if not given.exists():
        raise InventoryError(f"{given}: no such inventory file; pass the path of your Ansible inventory")
    if not given.is_dir():
        return [given]
    found: list[Path] = []
    for entry in sorted(given.iterdir(), key=lambda p: p.name):
        if IGNORED_NAMES.search(entry.name) or entry.name.endswith(IGNORED_ENDINGS):
            continue
        found += inventory_files(entry) if entry.is_dir() else [entry]
    return found


def read_file(file: Path) -> str:
    try:
        data = file.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InventoryError(f"{file}: cannot read the inventory ({reason}); check the path and permissions") from None
    if data.lstrip().startswith(VAULT_HEADER):
        raise InventoryError(f"{file}: vault-encrypted; only ansible-core decrypts it: {INSTALL_HINT} and pass "
                             "--vault-password-file FILE or --ask-vault-pass")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InventoryError(f"{file}: cannot read the inventory (UnicodeDecodeError); check the path and "
                             "permissions") from None


def parse_file(file: Path) -> RawInventory:
    """One static inventory file; scripts, plugin configs and TOML are refused."""
    text = read_file(file)
    if os.access(file, os.X_OK) and text.startswith("#!"):
        raise InventoryError(f"{file}: an executable inventory script; {DYNAMIC_HINT}")
    if file.suffix == ".toml":
        raise InventoryError(f"{file}: a TOML inventory; {DYNAMIC_HINT.replace('dynamic', 'TOML')}")
    if file.suffix in (".yaml", ".yml", ".json"):
        data = load_yaml(text, file)
        if isinstance(data, dict) and "plugin" in data:
            raise InventoryError(f"{file}: an inventory plugin config (plugin: {data['plugin']}); {DYNAMIC_HINT}")
        if data is not None and not looks_like_yaml_inventory(data):
            raise InventoryError(f"{file}: not an Ansible YAML inventory; start with `all:` and its hosts")
        return parse_yaml(data or {}, file)
    try:
        data = load_yaml(text, file)
    except InventoryError:
        return parse_ini(text, file)
    return parse_yaml(data, file) if looks_like_yaml_inventory(data) else parse_ini(text, file)


def merge(into: RawInventory, other: RawInventory) -> None:
    """A later file of a directory adds hosts, members, children and vars (later values win)."""
    for name, host_vars in other.hosts.items():
        into.hosts.setdefault(name, {}).update(host_vars)
    for name, group in other.groups.items():
        target = into.group(name)
        target.hosts += [h for h in group.hosts if h not in target.hosts]
        target.children += [c for c in group.children if c not in target.children]
        target.vars.update(group.vars)


def vars_files(folder: Path, name: str) -> list[Path]:
    """What Ansible loads for `name` from group_vars/ or host_vars/: the first of `name` (a directory: every
    file in it, extension-less ones included, recursively, sorted per level), `name.yml`, `name.yaml`,
    `name.json`."""
    for candidate in (folder / name, *(folder / f"{name}{ext}" for ext in VARS_EXTENSIONS)):
        if candidate.is_dir():
            return _dir_vars_files(candidate)
        if candidate.exists():
            return [candidate]
    return []


def _dir_vars_files(folder: Path) -> list[Path]:
    found: list[Path] = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or entry.name.endswith("~"):
            continue
        ext = os.path.splitext(entry.name)[1]
        if entry.is_dir() and not ext:
            found += _dir_vars_files(entry)
        elif entry.is_file() and (not ext or ext in VARS_EXTENSIONS):
            found.append(entry)
    return found


def load_vars_file(file: Path) -> dict[str, Any]:
    data = load_yaml(read_file(file), file)
    if data is not None and not isinstance(data, dict):
        raise InventoryError(f"{file}: a vars file must be a mapping of name: value; fix it")
    return {str(k): v for k, v in (data or {}).items()}


def members(raw: RawInventory, source: Path) -> dict[str, list[str]]:
    """Hosts of each group in Ansible's order (its own hosts, then its children's level by level), plus
    `all` (every host, file order) and `ungrouped`; a children cycle is an error."""
    for name in list(raw.groups):
        _check_cycle(raw, name, (), source)
    found: dict[str, list[str]] = {}
    for name, group in raw.groups.items():
        ordered, level, seen = list(group.hosts), list(group.children), {name}
        while level:
            nxt: list[str] = []
            for child in level:
                if child in seen:
                    continue
                seen.add(child)
                sub = raw.groups.get(child, RawGroup())
                ordered += [h for h in sub.hosts if h not in ordered]
                nxt += sub.children
            level = nxt
        found[name] = ordered
    grouped = {h for g, hosts in found.items() if g not in ("all", "ungrouped") for h in hosts}
    found["all"] = list(raw.hosts)
    found["ungrouped"] = [h for h in found.get("ungrouped", []) if h in raw.hosts]
    found["ungrouped"] += [h for h in raw.hosts if h not in grouped and h not in found["ungrouped"]]
    return found


def _check_cycle(raw: RawInventory, name: str, path: tuple[str, ...], source: Path) -> None:
    if name in path:
        raise InventoryError(f"{source}: group '{name}' contains itself ({' > '.join((*path, name))}); fix :children")
    for child in raw.groups.get(name, RawGroup()).children:
        _check_cycle(raw, child, (*path, name), source)


def depths(raw: RawInventory) -> dict[str, int]:
    """Ansible group depth: all=0, top-level groups 1, each child one deeper than its deepest parent."""
    parents: dict[str, set[str]] = {g: set() for g in raw.groups}
    for name, group in raw.groups.items():
        for child in group.children:
            parents.setdefault(child, set()).add(name)
    depth: dict[str, int] = {"all": 0}

    def visit(name: str) -> int:
        if name not in depth:
            depth[name] = 1 + max((visit(p) for p in parents.get(name, ()) if p != "all"), default=0)
        return depth[name]

    for name in parents:
        visit(name)
    depth.setdefault("ungrouped", 1)
    return depth


def priority(raw: RawInventory, name: str, source: Path) -> int:
    """ansible_group_priority, as set in the inventory file (Ansible ignores it in group_vars/)."""
    value = raw.groups.get(name, RawGroup()).vars.get("ansible_group_priority", 1)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InventoryError(f"{source}: ansible_group_priority='{value}' of group {name} is not an integer; "
                             "fix it") from None


def suite_refusals(given: Path) -> None:
    """For the ansible-core reader: the static INI files of the inventory checked for what the suite refuses
    although Ansible reads it (SuiteRefusal); anything else is Ansible's to judge."""
    for file in inventory_files(given):
        if file.suffix in (".yaml", ".yml", ".json", ".toml") or os.access(file, os.X_OK):
            continue
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if text.lstrip().startswith(VAULT_HEADER.decode()):
            continue
        try:
            parse_ini(text, file)
        except SuiteRefusal:
            raise
        except InventoryError:
            continue


def own_message(given: Path, source: str) -> str | None:
    """The builtin reader's one line for a static file Ansible could not parse (it names the line)."""
    file = Path(source)
    if not file.is_file() or os.access(file, os.X_OK):
        return None
    try:
        parse_file(file)
    except InventoryError as exc:
        return None if INSTALL_HINT in str(exc) else str(exc)  # not a refusal only this reader makes
    return None
