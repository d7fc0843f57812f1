"""The inventory as ansible-core itself reads it, when ansible-core is installed (the `ansible` extra).

Hosts, groups and variables come from Ansible's InventoryManager and VariableManager (every inventory source
Ansible reads: INI, YAML, directories, inventory scripts, plugin configs, its group_vars/host_vars and vars
plugins, ansible.cfg), values from its templating (vault included), and the connection settings from the
option resolution of its ssh connection and sudo become plugins, so the suite logs in where, as whom and
with what `ansible` would. Ansible's own console output is kept quiet while the inventory is read: its
warnings can quote inventory lines, and so secrets; a source it cannot read is one InventoryError instead.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from vxlan_conformance.inventory.raw import InventoryError
from vxlan_conformance.inventory.values import VarReader, is_secret, shown
from vxlan_conformance.inventory.yaml_file import Vault

VAULT_HINT = "pass --vault-password-file FILE or --ask-vault-pass"
WRONG_VAULT_HINT = "the vault password given does not decrypt it; pass the right --vault-password-file"


def _vault_hint(reason: str) -> str:
    """What to do about a vault failure: no password given, or one that does not decrypt ("" if not vault)."""
    if "vault" not in reason.lower():
        return ""
    return WRONG_VAULT_HINT if "decryption failed" in reason.lower() else VAULT_HINT


_SSH_PLUGINS = {"ssh": "ssh", "paramiko": "paramiko_ssh", "paramiko_ssh": "paramiko_ssh"}
_MAGIC = frozenset(("ansible_config_file", "ansible_facts", "ansible_playbook_python", "ansible_version",
                    "group_names", "groups", "inventory_dir", "inventory_file", "inventory_hostname",
                    "inventory_hostname_short", "playbook_dir", "omit", "ansible_check_mode", "ansible_diff_mode",
                    "ansible_forks", "ansible_inventory_sources", "ansible_skip_tags", "ansible_run_tags",
                    "ansible_verbosity", "ansible_search_path"))


def available() -> bool:
    """ansible-core importable in this Python (checked without importing it)."""
    try:
        return importlib.util.find_spec("ansible") is not None and \
            importlib.util.find_spec("ansible.inventory.manager") is not None
    except (ImportError, ValueError):
        return False


def short_connection(name: str) -> str:
    """`ansible.builtin.ssh` -> `ssh`; `smart` is ssh, as Ansible resolves it."""
    short = name.rsplit(".", 1)[-1] if name.startswith("ansible.builtin.") else name
    return {"smart": "ssh", "paramiko": "paramiko_ssh"}.get(short, short)


class Reader:
    """One inventory read by ansible-core; `groups`, `hosts` and per-host variables, readers and connection
    options are what Ansible answers."""

    def __init__(self, given: Path, vault_password_files: Sequence[str] = (), ask_vault_pass: bool = False,
                 prompt: Callable[[str], str] | None = None) -> None:
        self.source = given
        with quiet() as failures:
            from ansible import constants as C  # noqa: N812 - Ansible's own name
            from ansible.errors import AnsibleError
            from ansible.inventory.manager import InventoryManager
            from ansible.parsing.dataloader import DataLoader
            from ansible.parsing.vault import VaultSecret
            from ansible.plugins.loader import become_loader, connection_loader
            from ansible.template import Templar
            from ansible.vars.manager import VariableManager

            self._C, self._AnsibleError, self._Templar = C, AnsibleError, Templar
            _init_plugin_loader()
            self.loader = DataLoader()
            secrets = []
            for file in vault_password_files:
                secrets += self._password_file(file)
            if C.DEFAULT_VAULT_PASSWORD_FILE:
                secrets += self._password_file(C.DEFAULT_VAULT_PASSWORD_FILE)
            if ask_vault_pass:
                asked = (prompt or _getpass)("Vault password: ")
                secrets.append((C.DEFAULT_VAULT_IDENTITY, VaultSecret(asked.encode("utf-8"))))
            self.loader.set_vault_secrets(secrets)
            _vault_context(secrets)
            try:
                self.inventory = InventoryManager(loader=self.loader, sources=[str(given)])
            except AnsibleError as exc:
                raise InventoryError(f"{given}: Ansible cannot read this inventory ({_reason(exc)}); fix it") from None
            self.variables = VariableManager(loader=self.loader, inventory=self.inventory)
            for name in ("ssh", "paramiko_ssh"):
                connection_loader.get(name, class_only=True)
            become_loader.get("sudo", class_only=True)
        self._check_parsed(failures)

    def _password_file(self, file: str) -> list[tuple[str, Any]]:
        from ansible.errors import AnsibleError
        from ansible.parsing.vault import get_file_vault_secret

        path = os.path.expanduser(file)
        if not os.path.isfile(path):
            raise InventoryError(f"{file}: no such vault password file; pass the file that holds the vault password")
        try:
            secret = get_file_vault_secret(filename=path, vault_id=self._C.DEFAULT_VAULT_IDENTITY, loader=self.loader)
            secret.load()
        except AnsibleError as exc:
            raise InventoryError(f"{file}: cannot read the vault password ({_reason(exc)}); fix the file") from None
        return [(self._C.DEFAULT_VAULT_IDENTITY, secret)]

    def _check_parsed(self, failures: list[tuple[str, Any]]) -> None:
        """A source Ansible could not parse (or parsed with errors) is refused, naming the file and its reason:
        a part of the cluster must not silently go unchecked."""
        unparsed = [src for kind, src in failures if kind == "unparsed"]
        if not unparsed:
            return
        source = unparsed[0]
        from vxlan_conformance.inventory.builtin import own_message

        mine = own_message(self.source, source)
        if mine is not None:
            raise InventoryError(mine)
        reasons = [item for kind, item in failures if kind == "failure"]
        best = _best_failure(source, reasons)
        hint = "fix it, or move it out of the inventory directory" if Path(source) != self.source else "fix it"
        raise InventoryError(f"{source}: Ansible cannot read this inventory ({best}); {hint}")

    # -- groups and hosts ----------------------------------------------------------------------------
    def group_members(self) -> dict[str, list[str]]:
        return {plain(name): [plain(h.name) for h in group.get_hosts()]
                for name, group in self.inventory.groups.items()}

    def host_names(self) -> list[str]:
        return [plain(name) for name in self.inventory.hosts]

    def add_to_group(self, group: str, hosts: list[str]) -> None:
        """What a playbook's `group_by` does (kubespray builds k8s_cluster that way)."""
        if group not in self.inventory.groups:
            self.inventory.add_group(group)
        for host in hosts:
            self.inventory.add_host(host, group=group)

    def host_groups(self, name: str) -> list[str]:
        """The host's groups in Ansible's variable precedence order (`all` first)."""
        from ansible.inventory.helpers import sort_groups

        return [plain(g.name) for g in sort_groups(self.inventory.hosts[name].get_groups())]

    def host(self, name: str) -> tuple[dict[str, Any], VarReader, dict[str, Any]]:
        """(plain vars, a reader rendering through Ansible, connection and become options) of one host."""
        host = self.inventory.hosts[name]
        try:
            variables = self.variables.get_vars(host=host, include_hostvars=False)
        except self._AnsibleError as exc:
            reason = _reason(exc)
            hint = _vault_hint(reason) or "fix the vars files"
            raise InventoryError(f"{self.source}: Ansible cannot load the vars of host {name} ({reason}); "
                                 f"{hint}") from None
        templar = self._Templar(loader=self.loader, variables=variables)

        def render(var: str, value: Any) -> Any:
            try:
                return plain(templar.template(value), decrypt=True)
            except self._AnsibleError as exc:
                reason = _reason(exc)
                if is_secret(var):
                    reason = "no vault secret" if "vault" in reason.lower() else "template error"
                hint = _vault_hint(reason) or "fix the value"
                raise InventoryError(f"{self.source}: {var}={shown(var, value)} for host {name} cannot be "
                                     f"rendered by Ansible ({reason}); {hint}") from None

        own = {plain(k): plain(v) for k, v in variables.items() if k not in _MAGIC}
        reader = VarReader(variables, self.source, name, render=render)
        return own, reader, self._options(name, variables, reader)

    def _options(self, name: str, variables: dict[str, Any], reader: VarReader) -> dict[str, Any]:
        C = self._C  # noqa: N806
        connection = short_connection(reader.text("ansible_connection") or C.DEFAULT_TRANSPORT)
        plugin = _SSH_PLUGINS.get(connection)
        options: dict[str, Any] = {"connection": connection}
        # the ssh plugin calls the address `host`, paramiko_ssh `remote_addr`
        if plugin is not None:
            names = [v for v in C.config.get_plugin_vars("connection", plugin) if v in variables]
            given = {v: reader.value(v) for v in names}
            given["inventory_hostname"] = name
            try:
                options.update(C.config.get_plugin_options("connection", plugin, variables=given))
                options.setdefault("host", options.get("remote_addr"))
            except self._AnsibleError as exc:
                raise InventoryError(f"{self.source}: host {name}: Ansible refuses its connection settings "
                                     f"({_reason(exc)}); fix them") from None
        names = [v for v in C.config.get_plugin_vars("become", "sudo") if v in variables]
        become = C.config.get_plugin_options("become", "sudo", variables={v: reader.value(v) for v in names})
        options["become_pass"] = become.get("become_pass")
        options["become"] = reader.flag("ansible_become")
        return {key: plain(value, decrypt=True) for key, value in options.items()}


def plain(value: Any, decrypt: bool = False) -> Any:
    """Ansible's tagged values as plain Python (picklable without ansible, comparable); an encrypted value
    stays a Vault marker unless `decrypt` (only for the values the suite reads)."""
    if type(value).__name__ == "EncryptedString" and not decrypt:
        return Vault("")
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return {plain(k): plain(v, decrypt) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v, decrypt) for v in value]
    if type(value).__name__ == "EncryptedString":
        return str(value)
    return value


def _reason(exc: BaseException) -> str:
    """The first line of Ansible's message; a secret's value is never shown."""
    text = str(getattr(exc, "message", "") or exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    lowered = line.lower()
    for word in ("pass", "secret", "token"):
        at = lowered.find(word)
        if at != -1 and ("=" in line[at:] or ":" in line[at:]):
            return line[:at] + word + "... (rest hidden)"
    return line


def _best_failure(source: str, reasons: list[Any]) -> str:
    """Of the plugins' reasons, the one for the format the file is written in."""
    ext = os.path.splitext(source)[1]
    wanted = ("script",) if os.access(source, os.X_OK) and not os.path.isdir(source) else ()
    wanted += ("auto", "yaml") if ext in (".yml", ".yaml", ".json") else ("ini", "yaml")
    for plugin in wanted:
        for name, exc in reasons:
            if name == plugin:
                cause = exc.__cause__ if getattr(exc, "__cause__", None) is not None else exc
                return f"{plugin} plugin: {_reason(cause)}"
    if reasons:
        return f"{reasons[0][0]} plugin: {_reason(reasons[0][1])}"
    return "no inventory plugin accepted it"


_READY: list[bool] = []


def _init_plugin_loader() -> None:
    """What the ansible commands do first: the collection loader (ansible.builtin.* names, plugin configs
    naming collections); once per process."""
    if _READY:
        return
    from ansible.plugins.loader import init_plugin_loader

    init_plugin_loader()
    _READY.append(True)


def _vault_context(secrets: list[tuple[str, Any]]) -> None:
    """ansible-core 2.19 decrypts `!vault` values through one process-wide context of vault secrets (set
    once by its commands); this process may read several inventories, so the latest secrets are put there."""
    from ansible.parsing.vault import VaultSecretsContext

    current = VaultSecretsContext.current(optional=True)
    if current is None:
        VaultSecretsContext.initialize(VaultSecretsContext(secrets))
    else:
        current.secrets = secrets


def _getpass(prompt: str) -> str:
    import getpass

    return getpass.getpass(prompt)


@contextlib.contextmanager
def quiet() -> Iterator[list[tuple[str, Any]]]:
    """Ansible's console output off while it reads the inventory; its parse failures collected."""
    from ansible.utils.display import Display

    display = Display()
    failures: list[tuple[str, Any]] = []

    def error_as_warning(msg: str, exception: BaseException, *args: Any, **kwargs: Any) -> None:
        plugin = msg.split("'")[1] if msg.count("'") >= 2 else "?"
        failures.append(("failure", (plugin, exception)))

    def warning(msg: str, *args: Any, **kwargs: Any) -> None:
        text = str(msg)
        if text.startswith("Unable to parse ") and text.endswith(" as an inventory source"):
            failures.append(("unparsed", text[len("Unable to parse "):-len(" as an inventory source")]))

    def nothing(*args: Any, **kwargs: Any) -> None:
        return None

    patched = {"error_as_warning": error_as_warning, "warning": warning, "deprecated": nothing,
               "display": nothing}
    saved = {name: display.__dict__.get(name) for name in patched}
    display.__dict__.update(patched)
    try:
        yield failures
    finally:
        for name, value in saved.items():
            if value is None:
                display.__dict__.pop(name, None)
            else:
                display.__dict__[name] = value
