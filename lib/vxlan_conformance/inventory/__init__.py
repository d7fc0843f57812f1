"""Ansible inventories as users already have them: kubespray inventory.ini / hosts.yaml, kubeasz hosts,
plain Ansible YAML or INI, with group_vars/ and host_vars/ next to the file.

Who reads it: ansible-core itself when it is installed (`pip install 'vxlan-conformance[ansible]'`;
inventory/ansible_core.py: every source Ansible reads, vault included), else the suite's own reader
(inventory/builtin.py: static INI/YAML files and directories, parity-tested against Ansible; what it cannot
read it refuses). VXLAN_INVENTORY_READER=ansible|builtin forces one. Either way the suite's layer on top is
the same: kubespray's group names and its k8s_cluster group, the bastion, `ansible_connection=local` hosts,
the address peers use and the vxlan_* settings.

>>> inv = load("inventory/examples/kubespray-inventory.ini")          # doctest: +SKIP
>>> [h.address for h in inv.control_plane()], inv.overlay.port        # doctest: +SKIP
(['10.3.0.1', '10.3.0.2'], 8472)

Variable precedence follows Ansible: inventory-file vars of all < of the other groups (by depth,
ansible_group_priority, name) < group_vars/all < group_vars/<group> (same order) < host vars < host_vars/.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vxlan_conformance.inventory import ansible_core, builtin
from vxlan_conformance.inventory.limit import select
from vxlan_conformance.inventory.overlay import Overlay, check_setting_names, first_difference, overlay_for
from vxlan_conformance.inventory.raw import InventoryError, RawGroup, RawInventory
from vxlan_conformance.inventory.values import INSTALL_HINT, VarReader

__all__ = ["Host", "Inventory", "InventoryError", "Overlay", "VaultOptions", "load", "reader_name"]

ALIASES = {"kube_master": "kube_control_plane", "kube-master": "kube_control_plane",
           "masters": "kube_control_plane", "kube-node": "kube_node", "nodes": "kube_node",
           "k8s-cluster": "k8s_cluster", "calico-rr": "calico_rr"}
K8S_MEMBERS = ("kube_control_plane", "kube_node", "calico_rr")
K8S_PATTERN_ORDER = ("kube_node", "kube_control_plane", "calico_rr")
READERS = ("auto", "ansible", "builtin")
SSH_CONNECTIONS = ("ssh", "paramiko_ssh")
# Ansible's connection and sudo options and the variables that set them, last one winning (the plugins'
# documented `vars:` lists); the builtin reader follows them, ansible-core resolves them itself.
HOST_VARS = ("ansible_host", "ansible_ssh_host")
PORT_VARS = ("ansible_port", "ansible_ssh_port")
USER_VARS = ("ansible_user", "ansible_ssh_user")
PASSWORD_VARS = ("ansible_password", "ansible_ssh_pass", "ansible_ssh_password")
KEY_VARS = ("ansible_private_key_file", "ansible_ssh_private_key_file")
BECOME_PASSWORD_VARS = ("ansible_become_password", "ansible_become_pass", "ansible_sudo_pass")


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
    connection: str = "ssh"       # Ansible's connection plugin: ssh, paramiko_ssh (both SSH here) or local

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
        """Ansible --limit: names, groups, `a,b` or `a:b`, `!x`, `&x`, `node*`, `~regex`, `g[0:2]`, `@file`."""
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


@dataclass(frozen=True)
class VaultOptions:
    """How ansible-core gets the vault password, as `ansible` takes it: --vault-password-file (a file, or an
    executable printing it) and --ask-vault-pass (`prompt` asks; getpass by default). ansible.cfg's
    vault_password_file / ANSIBLE_VAULT_PASSWORD_FILE count too."""

    password_files: tuple[str, ...] = ()
    ask: bool = False
    prompt: Any = None

    def given(self) -> bool:
        return bool(self.password_files or self.ask)


def reader_name(reader: str | None = None) -> str:
    """`ansible` or `builtin`: who reads inventories in this environment (VXLAN_INVENTORY_READER decides
    when set, else ansible-core when it is importable)."""
    choice = (reader or os.environ.get("VXLAN_INVENTORY_READER") or "auto").strip().lower()
    if choice not in READERS:
        raise InventoryError(f"VXLAN_INVENTORY_READER={choice}: use auto, ansible or builtin")
    if choice == "auto":
        return "ansible" if ansible_core.available() else "builtin"
    if choice == "ansible" and not ansible_core.available():
        raise InventoryError(f"the ansible inventory reader needs ansible-core: {INSTALL_HINT}")
    return choice


def load(path: str | os.PathLike, limit: str | None = None, *, reader: str | None = None,
         vault: VaultOptions = VaultOptions()) -> Inventory:
    """Read an inventory file or directory; every problem is one InventoryError line naming the file."""
    given = Path(path)
    if not given.exists():
        raise InventoryError(f"{given}: no such inventory file; pass the path of your Ansible inventory")
    if reader_name(reader) == "ansible":
        with ansible_core.quiet():
            answer = _from_ansible(given, vault)
    else:
        if vault.given():
            raise InventoryError(f"{given}: --vault-password-file / --ask-vault-pass need ansible-core, which "
                                 f"decrypts vault: {INSTALL_HINT}")
        answer = _from_builtin(given)
    inventory = _build(given, answer)
    if limit:
        inventory = inventory.limit(limit)
    _check_connections(inventory, answer.source)
    return inventory


@dataclass
class _HostAnswer:
    groups: tuple[str, ...]         # as Ansible orders them for variable precedence, `all` first
    vars: dict[str, Any]
    read: VarReader
    options: dict[str, Any]         # connection, host, port, remote_user, password, private_key_file,
                                    # ssh_common_args, ssh_extra_args, become, become_pass


@dataclass
class _Answer:
    source: Path                    # named in messages; relative vxlan_* paths are relative to it
    hosts: dict[str, _HostAnswer]   # inventory order
    groups: dict[str, list[str]]    # every group (with all and ungrouped): its hosts, in Ansible's order
    grouped_by: set[str] = field(default_factory=set)  # groups kubespray's group_by fills (file order)


def _kubespray_groups(groups: dict[str, list[str]], hosts: list[str]) -> list[tuple[str, list[str]]]:
    """kubespray's group_by steps: hosts of an old group name join the current one (kube-master ->
    kube_control_plane, ...), then k8s_cluster gets every kube_node, kube_control_plane and calico_rr host."""
    steps = [(canonical, list(groups[alias])) for alias, canonical in ALIASES.items() if groups.get(alias)]
    joined = {canonical: [*groups.get(canonical, [])] for canonical in K8S_PATTERN_ORDER}
    for canonical, members in steps:
        if canonical in joined:
            joined[canonical] += [h for h in members if h not in joined[canonical]]
    wanted = {h for g in K8S_PATTERN_ORDER for h in joined[g]}
    if wanted:
        steps.append(("k8s_cluster", [h for h in hosts if h in wanted]))
    return steps


def _from_ansible(given: Path, vault: VaultOptions) -> _Answer:
    core = ansible_core.Reader(given, vault.password_files, vault.ask, vault.prompt)
    builtin.suite_refusals(given)
    names = core.host_names()
    steps = _kubespray_groups(core.group_members(), names)
    for group, members in steps:
        core.add_to_group(group, members)
    hosts: dict[str, _HostAnswer] = {}
    for name in names:
        own, read, options = core.host(name)
        check_setting_names(own, given)
        hosts[name] = _HostAnswer(tuple(core.host_groups(name)), own, read, options)
    return _Answer(given, hosts, core.group_members(), {group for group, _ in steps})


def _from_builtin(given: Path) -> _Answer:
    files = builtin.inventory_files(given)
    if not files:
        raise InventoryError(f"{given}: no inventory file in this directory; put your inventory (INI or YAML) "
                             "there or pass its path")
    raw = RawInventory()
    for file in files:
        builtin.merge(raw, builtin.parse_file(file))
    source = files[0] if len(files) == 1 and not given.is_dir() else given
    check_setting_names(_all_var_names(raw), source)
    if not raw.hosts:
        raise InventoryError(f"{source}: no hosts found; list hosts under a group such as [kube_node]")
    base = given if given.is_dir() else given.parent
    steps = _kubespray_groups(builtin.members(raw, source), list(raw.hosts))
    for group, members in steps:
        target = raw.group(group)
        target.hosts += [h for h in members if h not in target.hosts]
    members = builtin.members(raw, source)
    depth = builtin.depths(raw)
    order = {g: (depth[g], builtin.priority(raw, g, source), g) for g in members}
    group_files = {g: _vars_layers(base / "group_vars", g) for g in members}
    hosts: dict[str, _HostAnswer] = {}
    for name, own in raw.hosts.items():
        groups = sorted((g for g, m in members.items() if name in m), key=lambda g: order[g])
        layers = [raw.groups.get(g, RawGroup()).vars for g in groups]
        layers += [layer for g in groups for layer in group_files[g]]
        layers += [own, *_vars_layers(base / "host_vars", name)]
        variables = {k: v for layer in layers for k, v in layer.items()}
        variables.pop("ansible_group_priority", None)
        read = VarReader(variables, source, name)
        hosts[name] = _HostAnswer(tuple(groups), variables, read, _builtin_options(name, read))
    return _Answer(source, hosts, members, {group for group, _ in steps})


def _vars_layers(folder: Path, name: str) -> list[dict[str, Any]]:
    layers = []
    for file in builtin.vars_files(folder, name):
        data = builtin.load_vars_file(file)
        check_setting_names(data, file)
        layers.append(data)
    return layers


def _builtin_options(name: str, read: VarReader) -> dict[str, Any]:
    connection = ansible_core.short_connection(read.text("ansible_connection") or "ssh")
    return {
        "connection": connection,
        "host": read.text(*HOST_VARS, rule="last") or name,
        "port": read.integer(*PORT_VARS, low=1, high=65535, rule="last"),
        "remote_user": read.text(*USER_VARS, rule="last"),
        "password": read.text(*PASSWORD_VARS, rule="last"),
        "private_key_file": read.text(*KEY_VARS, rule="last"),
        "ssh_common_args": read.text("ansible_ssh_common_args"),
        "ssh_extra_args": read.text("ansible_ssh_extra_args"),
        "become": read.flag("ansible_become"),
        "become_pass": read.text(*BECOME_PASSWORD_VARS, rule="last"),
    }


def _all_var_names(raw: RawInventory) -> list[str]:
    return [k for g in raw.groups.values() for k in g.vars] + [k for v in raw.hosts.values() for k in v]


def _build(given: Path, answer: _Answer) -> Inventory:
    """The suite's layer, the same whoever read the inventory: canonical group names, bastion, nodes,
    Host objects and the cluster-wide overlay settings."""
    source = answer.source
    alias_names = set(ALIASES) - set(ALIASES.values())
    order = {h: i for i, h in enumerate(answer.hosts)}
    groups = {g: tuple(sorted(m, key=order.__getitem__) if g in answer.grouped_by else m)
              for g, m in answer.groups.items() if g not in alias_names}
    groups = {"all": groups.pop("all", ()), **{g: m for g, m in groups.items() if g != "ungrouped"},
              "ungrouped": groups.get("ungrouped", ())}
    hosts = {name: _host(name, found, source) for name, found in answer.hosts.items()}
    bastion_names = set(groups.get("bastion", ())) or ({"bastion"} & set(hosts))
    bastion = hosts[next(h for h in hosts if h in bastion_names)] if bastion_names else None
    k8s = set(groups.get("k8s_cluster", ()))
    nodes = tuple(h for h in hosts if (h in k8s if k8s else hosts[h].connection != "local")
                  and h not in bastion_names)
    if not hosts:
        raise InventoryError(f"{source}: no hosts found; list hosts under a group such as [kube_node]")
    if not nodes:
        raise InventoryError(f"{source}: no overlay nodes (every host is a bastion or ansible_connection=local); "
                             "add the cluster nodes")
    return Inventory(path=given, hosts=hosts, groups=groups, overlay=_overlay(answer, nodes, source),
                     nodes=nodes, bastion=bastion)


def _host(name: str, found: _HostAnswer, source: Path) -> Host:
    options, read = found.options, found.read
    ssh_host = str(options.get("host") or name)
    key_file = options.get("private_key_file")
    common = [options.get("ssh_common_args"), options.get("ssh_extra_args")]
    port = options.get("port")
    if port is not None and not (isinstance(port, int) and 1 <= port <= 65535):
        port = read.integer(*PORT_VARS, low=1, high=65535, rule="last")  # names the variable in the error
    return Host(
        name=name,
        address=read.text("access_ip", "ip") or ssh_host,
        groups=tuple(dict.fromkeys(ALIASES.get(g, g) for g in found.groups)),
        vars=found.vars,
        ssh_host=ssh_host,
        ssh_port=int(port or 22),
        user=options.get("remote_user") or None,
        key_file=os.path.expanduser(str(key_file)) if key_file else None,
        password=options.get("password") or None,
        become=bool(options.get("become")),
        become_password=options.get("become_pass") or None,
        ssh_common_args=" ".join(str(a) for a in common if a) or None,
        connection=str(options.get("connection") or "ssh"),
    )


def _check_connections(inventory: Inventory, source: Path) -> None:
    """Nodes are reached over SSH. A node Ansible reaches with `ansible_connection=local` is this machine,
    which the suite does not check (it runs here, it would check itself over SSH); other connections
    (docker, winrm, ...) are not SSH at all. Both are refused, naming the host and what to do."""
    for name in inventory.nodes:
        host = inventory.hosts[name]
        if host.connection == "local":
            raise InventoryError(
                f"{source}: host {name} is a cluster node with ansible_connection=local (Ansible runs its tasks on "
                "this machine); the suite checks nodes over SSH: give it ansible_host and ansible_connection=ssh, "
                f"or leave it out with --limit '!{name}'")
        if host.connection not in SSH_CONNECTIONS:
            raise InventoryError(
                f"{source}: host {name} uses ansible_connection={host.connection}; the suite reaches nodes over "
                f"SSH only: set ansible_connection=ssh for it, or leave it out with --limit '!{name}'")


def _overlay(answer: _Answer, nodes: tuple[str, ...], source: Path) -> Overlay:
    """The overlay settings every node agrees on; a node that disagrees is named with the first one."""
    first = overlay_for(answer.hosts[nodes[0]].read, source)
    for name in nodes[1:]:
        other = overlay_for(answer.hosts[name].read, source)
        if other != first:
            setting, a, b = first_difference(first, other)
            raise InventoryError(
                f"{source}: {setting} differs between overlay nodes {nodes[0]} ({a}) and {name} ({b}); "
                "vxlan_* settings are cluster-wide: set them once in [all:vars] or group_vars/all"
            )
    return first
