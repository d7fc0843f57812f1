"""Ansible inventories as users already have them: kubespray inventory.ini / hosts.yaml, kubeasz hosts,
plain Ansible YAML or INI, with group_vars/ and host_vars/ next to the file.

>>> inv = load("inventory/examples/kubespray-inventory.ini")          # doctest: +SKIP
>>> [h.address for h in inv.control_plane()], inv.overlay.port        # doctest: +SKIP
(['10.3.0.1', '10.3.0.2'], 8472)

Variable precedence follows Ansible: all < parent groups < child groups (by depth, then name), inventory
file vars < group_vars/ files at each level, then host vars < host_vars/ files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vxlan_conformance.inventory.ini import parse_ini
from vxlan_conformance.inventory.limit import select
from vxlan_conformance.inventory.overlay import Overlay, check_setting_names, first_difference, overlay_for
from vxlan_conformance.inventory.raw import InventoryError, RawGroup, RawInventory
from vxlan_conformance.inventory.values import VarReader
from vxlan_conformance.inventory.yaml_file import load_yaml, looks_like_yaml_inventory, parse_yaml

__all__ = ["Host", "Inventory", "InventoryError", "Overlay", "load"]

ALIASES = {"kube_master": "kube_control_plane", "kube-master": "kube_control_plane",
           "masters": "kube_control_plane", "kube-node": "kube_node", "nodes": "kube_node",
           "k8s-cluster": "k8s_cluster", "calico-rr": "calico_rr"}
K8S_MEMBERS = ("kube_control_plane", "kube_node", "calico_rr")
INVENTORY_NAMES = ("hosts.yaml", "hosts.yml", "inventory.yaml", "inventory.yml", "inventory.ini", "hosts")
VARS_SUFFIXES = ("", ".yml", ".yaml", ".json")


@dataclass(frozen=True)
class Host:
    """One inventory host with its effective vars and the connection facts derived from them."""

    name: str
    address: str                  # what peers use: access_ip > ip > ansible_host > name
    groups: tuple[str, ...]       # canonical names, transitive, "all" first
    vars: Mapping[str, Any] = field(repr=False)
    ssh_host: str = ""            # ansible_host > name
    ssh_port: int = 22
    user: str | None = None
    key_file: str | None = None
    password: str | None = field(default=None, repr=False)
    become: bool = False
    become_password: str | None = field(default=None, repr=False)
    ssh_common_args: str | None = None

    def __hash__(self) -> int:
        return hash(self.name)


@dataclass(frozen=True)
class Inventory:
    """Hosts, groups (canonical names) and overlay settings of one inventory, optionally limited."""

    path: Path
    hosts: dict[str, Host]
    groups: dict[str, tuple[str, ...]]
    overlay: Overlay
    nodes: tuple[str, ...]
    bastion: Host | None = None

    def group(self, name: str) -> list[Host]:
        """Hosts of a group, by canonical name or alias (kube-master, nodes, ...)."""
        canonical = ALIASES.get(name, name)
        if canonical not in self.groups:
            raise InventoryError(f"{self.path}: no group '{name}'; groups: {', '.join(self.groups)}")
        return [self.hosts[h] for h in self.groups[canonical] if h in self.hosts]

    def control_plane(self) -> list[Host]:
        """kube_control_plane hosts (also written kube_master, kube-master, masters); [] if none."""
        return self.group("kube_control_plane") if "kube_control_plane" in self.groups else []

    def etcd_hosts(self) -> list[Host]:
        """etcd hosts; [] if the inventory has no etcd group."""
        return self.group("etcd") if "etcd" in self.groups else []

    def limit(self, pattern: str) -> Inventory:
        """Ansible --limit: names, groups, `a,b` or `a:b`, `!x`, `&x`, `node*`, `~regex`, `g[0:2]`."""
        try:
            chosen = select(pattern, list(self.hosts), self.groups, ALIASES)
        except ValueError as exc:
            message = f"{self.path}: limit '{pattern}': {exc}; check host and group names"
            raise InventoryError(message) from None
        return replace(
            self,
            hosts={n: h for n, h in self.hosts.items() if n in chosen},
            groups={g: tuple(h for h in members if h in chosen) for g, members in self.groups.items()},
            nodes=tuple(n for n in self.nodes if n in chosen),
        )


def load(path: str | os.PathLike, limit: str | None = None) -> Inventory:
    """Read an inventory file or directory; every problem is one InventoryError line naming the file."""
    given = Path(path)
    file = _inventory_file(given)
    raw = _parse(_read(file), file)
    check_setting_names(_all_var_names(raw), file)
    group_files = _vars_files(file.parent / "group_vars")
    host_files = _vars_files(file.parent / "host_vars")
    raw, group_files = _canonical(raw), {ALIASES.get(k, k): v for k, v in group_files.items()}
    if not raw.hosts:
        raise InventoryError(f"{file}: no hosts found; list hosts under a group such as [kube_node]")
    _synthesise_k8s_cluster(raw)
    members = _members(raw, file)
    depth = _depths(raw)
    hosts: dict[str, Host] = {}
    for name, own in raw.hosts.items():
        groups = sorted((g for g, m in members.items() if name in m), key=lambda g: (depth[g], g))
        rest = groups[1:]  # groups[0] is "all", which Ansible applies (with its group_vars) first
        layers = [raw.groups.get("all", RawGroup()).vars, *group_files.get("all", [])]
        layers += [raw.groups.get(g, RawGroup()).vars for g in rest]
        layers += [v for g in rest for v in group_files.get(g, [])] + [own, *host_files.get(name, [])]
        hosts[name] = _host(name, tuple(groups), {k: v for layer in layers for k, v in layer.items()}, file)
    bastion_names = members.get("bastion") or ({"bastion"} & set(raw.hosts))
    bastion = hosts[next(h for h in raw.hosts if h in bastion_names)] if bastion_names else None
    k8s = members.get("k8s_cluster", set())
    nodes = tuple(h for h in raw.hosts if (h in k8s if k8s else True) and h not in bastion_names)
    if not nodes:
        raise InventoryError(f"{file}: no overlay nodes (every host is a bastion); add the cluster nodes")
    inventory = Inventory(
        path=given,
        hosts=hosts,
        groups={g: tuple(h for h in raw.hosts if h in members[g]) for g in _group_order(members)},
        overlay=_overlay(hosts, nodes, file),
        nodes=nodes,
        bastion=bastion,
    )
    return inventory.limit(limit) if limit else inventory


def _inventory_file(path: Path) -> Path:
    if path.is_dir():
        for name in INVENTORY_NAMES:
            if (path / name).is_file():
                return path / name
        raise InventoryError(f"{path}: no inventory file in this directory; expected one of "
                             f"{', '.join(INVENTORY_NAMES)}")
    if not path.exists():
        raise InventoryError(f"{path}: no such inventory file; pass the path of your Ansible inventory")
    return path


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        message = f"{file}: cannot read the inventory ({reason}); check the path and permissions"
        raise InventoryError(message) from None


def _parse(text: str, file: Path) -> RawInventory:
    """YAML when the content is a mapping of groups (or the name says .yml/.yaml), else INI."""
    if file.suffix in (".yaml", ".yml"):
        data = load_yaml(text, file)
        if data is not None and not looks_like_yaml_inventory(data):
            raise InventoryError(f"{file}: not an Ansible YAML inventory; start with `all:` and its hosts")
        return parse_yaml(data or {}, file)
    try:
        data = load_yaml(text, file)
    except InventoryError:
        return parse_ini(text, file)
    return parse_yaml(data, file) if looks_like_yaml_inventory(data) else parse_ini(text, file)


def _all_var_names(raw: RawInventory) -> list[str]:
    return [k for g in raw.groups.values() for k in g.vars] + [k for v in raw.hosts.values() for k in v]


def _vars_files(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """group_vars/ or host_vars/: `<name>[.yml|.yaml|.json]` or every such file under `<name>/`, sorted."""
    found: dict[str, list[dict[str, Any]]] = {}
    if not folder.is_dir():
        return found
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            files = sorted(p for p in entry.rglob("*") if p.is_file() and p.suffix in VARS_SUFFIXES[1:])
            name = entry.name
        elif entry.suffix in VARS_SUFFIXES:
            files, name = [entry], entry.stem if entry.suffix else entry.name
        else:
            continue
        for file in files:
            data = load_yaml(_read(file), file)
            if data is not None and not isinstance(data, dict):
                raise InventoryError(f"{file}: a vars file must be a mapping of name: value; fix it")
            check_setting_names(data or {}, file)
            found.setdefault(name, []).append(data or {})
    return found


def _canonical(raw: RawInventory) -> RawInventory:
    """Merge alias groups (kube-master, kube_master, ...) into their canonical names."""
    merged = RawInventory(hosts=raw.hosts)
    for name, group in raw.groups.items():
        target = merged.group(ALIASES.get(name, name))
        target.hosts += [h for h in group.hosts if h not in target.hosts]
        children = [ALIASES.get(c, c) for c in group.children]
        target.children += [c for c in children if c not in target.children]
        target.vars.update(group.vars)
    return merged


def _synthesise_k8s_cluster(raw: RawInventory) -> None:
    """kubespray builds k8s_cluster from its member groups when the inventory does not define it."""
    present = [g for g in K8S_MEMBERS if g in raw.groups]
    cluster = raw.groups.get("k8s_cluster")
    if present and (cluster is None or not (cluster.hosts or cluster.children)):
        raw.group("k8s_cluster").children.extend(present)


def _members(raw: RawInventory, file: Path) -> dict[str, set[str]]:
    """Transitive host sets per group, plus `all` and `ungrouped`; a children cycle is an error."""
    done: dict[str, set[str]] = {}

    def visit(name: str, path: tuple[str, ...]) -> set[str]:
        if name in path:
            cycle = " > ".join((*path, name))
            raise InventoryError(f"{file}: group '{name}' contains itself ({cycle}); fix :children")
        if name not in done:
            group = raw.groups.get(name, RawGroup())
            done[name] = set(group.hosts).union(*(visit(c, (*path, name)) for c in group.children))
        return done[name]

    for name in list(raw.groups):
        visit(name, ())
    grouped = set().union(*(m for g, m in done.items() if g not in ("all", "ungrouped")))
    done["all"] = set(raw.hosts)
    done["ungrouped"] = done.get("ungrouped", set()) | (set(raw.hosts) - grouped)
    return done


def _group_order(members: dict[str, set[str]]) -> list[str]:
    """`all` first, `ungrouped` last, the rest as the file introduces them."""
    return ["all", *(g for g in members if g not in ("all", "ungrouped")), "ungrouped"]


def _depths(raw: RawInventory) -> dict[str, int]:
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


def _host(name: str, groups: tuple[str, ...], variables: dict[str, Any], file: Path) -> Host:
    read = VarReader(variables, file, name)
    ssh_host = read.text("ansible_host", "ansible_ssh_host") or name
    key_file = read.text("ansible_ssh_private_key_file", "ansible_private_key_file")
    common = [read.text(n) for n in ("ansible_ssh_common_args", "ansible_ssh_extra_args")]
    return Host(
        name=name,
        address=read.text("access_ip", "ip") or ssh_host,
        groups=groups,
        vars=variables,
        ssh_host=ssh_host,
        ssh_port=read.integer("ansible_port", "ansible_ssh_port", low=1, high=65535) or 22,
        user=read.text("ansible_user", "ansible_ssh_user"),
        key_file=os.path.expanduser(key_file) if key_file else None,
        password=read.text("ansible_password", "ansible_ssh_pass", "ansible_ssh_password"),
        become=bool(read.flag("ansible_become")),
        become_password=read.text("ansible_become_password", "ansible_become_pass", "ansible_sudo_pass"),
        ssh_common_args=" ".join(a for a in common if a) or None,
    )


def _overlay(hosts: dict[str, Host], nodes: tuple[str, ...], file: Path) -> Overlay:
    """The overlay settings every node agrees on; a node that disagrees is named with the first one."""
    first = overlay_for(hosts[nodes[0]].vars, file, nodes[0])
    for name in nodes[1:]:
        other = overlay_for(hosts[name].vars, file, name)
        if other != first:
            setting, a, b = first_difference(first, other)
            raise InventoryError(
                f"{file}: {setting} differs between overlay nodes {nodes[0]} ({a}) and {name} ({b}); "
                "vxlan_* settings are cluster-wide: set them once in [all:vars] or group_vars/all"
            )
    return first
