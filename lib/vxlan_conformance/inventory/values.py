"""Typed reads of a host's effective Ansible vars.

INI values arrive as strings and YAML values as native types, so every read converts here, once, with a
one-line error naming the inventory, the host and the variable. Jinja is not rendered: a value that is
exactly `{{ other_var }}` is followed (kubespray does this), anything else templated is refused rather
than used literally.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vxlan_conformance.inventory.raw import InventoryError
from vxlan_conformance.inventory.yaml_file import Vault

_REFERENCE = re.compile(r"^\s*\{\{\s*([A-Za-z_]\w*)\s*\}\}\s*$")
_TRUE = {"yes", "true", "1", "on", "y"}
_FALSE = {"no", "false", "0", "off", "n"}


class VarReader:
    """Reads vars of one host; `source` and `host` only serve the error messages."""

    def __init__(self, variables: Mapping[str, Any], source: Path | str, host: str) -> None:
        self.variables = variables
        self.source = source
        self.host = host

    def fail(self, name: str, value: Any, problem: str) -> InventoryError:
        return InventoryError(f"{self.source}: {name}={value!r} for host {self.host} {problem}")

    def raw(self, *names: str) -> tuple[str, Any] | None:
        """First of `names` that is set to something other than null/empty, with references followed."""
        for name in names:
            value = self.variables.get(name)
            for _ in range(10):
                ref = _REFERENCE.match(value) if isinstance(value, str) else None
                if not ref:
                    break
                if ref.group(1) not in self.variables:
                    raise self.fail(name, value, f"refers to undefined variable {ref.group(1)}; define it")
                value = self.variables[ref.group(1)]
            if isinstance(value, Vault):
                raise self.fail(name, "!vault", "is vault-encrypted, which this suite cannot decrypt; "
                                "give it in plain text or leave it unset")
            if isinstance(value, str) and "{{" in value:
                raise self.fail(name, value, "is a Jinja template this suite does not render; "
                                "give a literal value")
            if value is not None and value != "":
                return name, value
        return None

    def text(self, *names: str) -> str | None:
        found = self.raw(*names)
        if found is None:
            return None
        name, value = found
        if isinstance(value, (dict, list, bool)):
            raise self.fail(name, value, "must be a plain string; fix the value")
        return str(value)

    def integer(self, *names: str, low: int, high: int) -> int | None:
        found = self.raw(*names)
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
