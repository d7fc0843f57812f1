"""Typed reads of a host's effective Ansible vars.

INI values arrive as strings and YAML values as native types, so every read converts here, once, with a
one-line error naming the inventory, the host and the variable. Values are rendered by `render` when the
inventory was read through ansible-core (its templating, lookups and vault). Without it, Jinja is not
rendered: a value that is exactly `{{ other_var }}` is followed (kubespray does this), anything else
templated (`{{ }}`, `{% %}`, `{# #}`) is refused rather than used literally.

No message ever shows the value of a password-like variable (`*pass*`, `*secret*`, `*token*`, `*vault*`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from vxlan_conformance.inventory.raw import InventoryError
from vxlan_conformance.inventory.yaml_file import Vault

_REFERENCE = re.compile(r"^\s*\{\{\s*([A-Za-z_]\w*)\s*\}\}\s*$")
_TEMPLATE_MARKS = ("{{", "{%", "{#")
_SECRET = re.compile(r"pass|secret|token|vault|_key$", re.IGNORECASE)
_TRUE = {"yes", "true", "1", "on", "y", "t"}
_FALSE = {"no", "false", "0", "off", "n", "f"}
INSTALL_HINT = "pip install 'vxlan-conformance[ansible]'"

Render = Callable[[str, Any], Any]


def is_secret(name: str) -> bool:
    """Variables whose values never appear in a message."""
    return bool(_SECRET.search(name))


def shown(name: str, value: Any) -> str:
    """`'value'` on one line, or `<hidden>` for a password-like variable."""
    if is_secret(name):
        return "<hidden>"
    if isinstance(value, Vault):
        return "!vault"
    text = str(value).replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{text}'" if isinstance(value, str) else text


def is_template(value: Any) -> bool:
    return isinstance(value, str) and any(mark in value for mark in _TEMPLATE_MARKS)


class VarReader:
    """Reads vars of one host; `source` and `host` only serve the error messages; `render`, when given,
    templates a value (ansible-core's Templar) and raises InventoryError itself."""

    def __init__(self, variables: Mapping[str, Any], source: Path | str, host: str,
                 render: Render | None = None) -> None:
        self.variables = variables
        self.source = source
        self.host = host
        self.render = render

    def fail(self, name: str, value: Any, problem: str) -> InventoryError:
        return InventoryError(f"{self.source}: {name}={shown(name, value)} for host {self.host} {problem}")

    def value(self, name: str) -> Any:
        """The value of `name` as Ansible would use it (rendered), or None when unset."""
        value = self.variables.get(name)
        if value is None:
            return None
        if self.render is not None:
            return self.render(name, value)
        for _ in range(10):
            ref = _REFERENCE.match(value) if isinstance(value, str) else None
            if not ref:
                break
            if ref.group(1) not in self.variables:
                raise self.fail(name, value, f"refers to undefined variable {ref.group(1)}; define it")
            value = self.variables[ref.group(1)]
        if isinstance(value, Vault):
            raise self.fail(name, value, "is vault-encrypted, which needs ansible-core to decrypt: "
                            f"{INSTALL_HINT} and pass --vault-password-file, or give it in plain text")
        if is_template(value):
            raise self.fail(name, value, "is a Jinja template, which only ansible-core renders: "
                            f"{INSTALL_HINT}, or give a literal value")
        return value

    def raw(self, *names: str) -> tuple[str, Any] | None:
        """First of `names` that is set to something other than null/empty, rendered."""
        for name in names:
            value = self.value(name)
            if value is not None and value != "":
                return name, value
        return None

    def last(self, *names: str) -> tuple[str, Any] | None:
        """Ansible's rule for a connection or become option: of the variables that may set it, the last one
        in the plugin's list that is defined (not null) wins, even when empty. (So the legacy
        `ansible_ssh_user` beats `ansible_user`.) Empty means unset."""
        for name in reversed(names):
            if self.variables.get(name) is not None:
                value = self.value(name)
                return None if value is None or value == "" else (name, value)
        return None

    def text(self, *names: str, rule: str = "first") -> str | None:
        found = self.last(*names) if rule == "last" else self.raw(*names)
        if found is None:
            return None
        name, value = found
        if isinstance(value, (dict, list, bool)):
            raise self.fail(name, value, "must be a plain string; fix the value")
        return str(value)

    def integer(self, *names: str, low: int, high: int, rule: str = "first") -> int | None:
        found = self.last(*names) if rule == "last" else self.raw(*names)
        if found is None:
            return None
        name, value = found
        if isinstance(value, bool) or not re.fullmatch(r"\s*\d+\s*", str(value)):
            raise self.fail(name, value, f"is not a number; use an integer {low}..{high}")
        number = int(value)
        if not low <= number <= high:
            raise self.fail(name, value, f"is out of range; use an integer {low}..{high}")
        return number

    def flag(self, *names: str) -> bool | None:
        found = self.raw(*names)
        if found is None:
            return None
        name, value = found
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in _TRUE | _FALSE:
            return word in _TRUE
        raise self.fail(name, value, "is not a boolean; use yes/no or true/false")

    def choice(self, name: str, choices: tuple[str, ...]) -> str | None:
        found = self.raw(name)
        if found is not None and found[1] is False and "off" in choices:
            return "off"  # YAML 1.1 reads an unquoted `off` as false
        value = self.text(name)
        if value is None:
            return None
        if value.strip().lower() not in choices:
            raise self.fail(name, value, f"is not valid; use one of {', '.join(choices)}")
        return value.strip().lower()
