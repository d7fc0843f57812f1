"""OpenSSH client settings the way `ssh` sees them, as data for the paramiko transport.

paramiko.SSHConfig matches Host/Match blocks but neither follows `Include` nor acts on
`ProxyJump`, and Ansible adds per-host `ansible_ssh_common_args` on top. This module
inlines Includes, parses ProxyJump specs and common args; vxlan_conformance.transport.ssh decides what to do.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
from dataclasses import dataclass

import paramiko

MAX_INCLUDE_DEPTH = 16  # same limit as OpenSSH's readconf.c

# ssh(1) flags that take a value; the value of an unknown one must be skipped, not parsed.
_FLAGS_WITH_VALUE = set("BbcDEeFIiJLlmOopQRSWw")
_FLAG_TO_OPTION = {"p": "port", "l": "user", "J": "proxyjump"}
_KEY_VALUE = re.compile(r"\s*(\w+)(?:\s*=\s*|\s+)(.*)")  # "Key Value" or "Key=Value", as ssh reads it


class SSHConfigError(ValueError):
    """A config file or common-args string we cannot use; the message is one line."""


@dataclass(frozen=True)
class Hop:
    """One element of a ProxyJump list: [user@]host[:port] or ssh://[user@]host[:port]."""

    host: str
    user: str | None = None
    port: int | None = None


def load(path: str | None) -> paramiko.SSHConfig:
    """Parse an ssh config with its Includes inlined; no path or a missing file -> empty config."""
    if not path:
        return paramiko.SSHConfig()
    top = os.path.expanduser(path)
    if not os.path.isfile(top):
        return paramiko.SSHConfig()
    text = _inline_includes(top, os.path.dirname(top), 0)
    try:
        return paramiko.SSHConfig.from_text(text)
    except Exception as exc:  # paramiko raises several types for bad lines
        raise SSHConfigError(f"{path}: cannot parse ssh config ({exc}); fix the file or pass another one") from None


def _inline_includes(path: str, base_dir: str, depth: int) -> str:
    """Text of `path` with every `Include` replaced by the files it names.

    Relative Include paths are taken from the directory of the top-level file, which is
    ~/.ssh for the user config, as OpenSSH does. Globs that match nothing are ignored.
    """
    if depth > MAX_INCLUDE_DEPTH:
        raise SSHConfigError(f"{path}: Include nested deeper than {MAX_INCLUDE_DEPTH}; is there an Include loop?")
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise SSHConfigError(f"{path}: cannot read ssh config ({exc.strerror}); check the file permissions") from None
    out: list[str] = []
    for line in lines:
        match = _KEY_VALUE.match(line)
        if match and match.group(1).lower() == "include":
            for pattern in shlex.split(match.group(2)):
                pattern = os.path.expanduser(pattern)
                if not os.path.isabs(pattern):
                    pattern = os.path.join(base_dir, pattern)
                for included in sorted(glob.glob(pattern)):
                    if os.path.isfile(included):
                        out.append(_inline_includes(included, base_dir, depth + 1))
            continue
        out.append(line)
    return "\n".join(out)


def parse_jump_spec(spec: str) -> list[Hop]:
    """`a,user@b:2222,ssh://c` -> hops in connection order; `none` -> no hops."""
    if spec.strip().lower() == "none":
        return []
    hops = []
    for item in spec.split(","):
        item = item.strip()
        if item.startswith("ssh://"):
            item = item[len("ssh://") :]
        user, _, hostport = item.rpartition("@")
        host, port = _split_host_port(hostport, spec)
        if not host:
            raise SSHConfigError(f"ProxyJump {spec!r}: empty host; use [user@]host[:port][,...]")
        hops.append(Hop(host=host, user=user or None, port=port))
    return hops


def _split_host_port(text: str, spec: str) -> tuple[str, int | None]:
    """host, host:port, [v6]:port or a bare IPv6 address."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not port_text:
        return host, None
    if not port_text.isdigit():
        raise SSHConfigError(f"ProxyJump {spec!r}: port {port_text!r} is not a number")
    return host, int(port_text)


def parse_common_args(text: str) -> dict[str, object]:
    """ansible_ssh_common_args -> ssh_config-style options (lowercase keys, first value wins).

    Understands -o Key=Value / -o "Key Value" / -oKey=Value, -p, -l, -i (repeatable, kept as
    the list `identityfile`) and -J. Other flags are ignored, their values skipped.
    """
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise SSHConfigError(f"ssh common args {text!r}: {exc}; check the quoting") from None
    options: dict[str, object] = {}
    identity_files: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if not word.startswith("-") or len(word) < 2:
            continue
        flag, value = word[1], word[2:]
        if flag not in _FLAGS_WITH_VALUE:
            continue
        if not value:
            if index >= len(words):
                raise SSHConfigError(f"ssh common args {text!r}: -{flag} needs a value")
            value = words[index]
            index += 1
        if flag == "o":
            match = _KEY_VALUE.match(value)
            if not match:
                raise SSHConfigError(f"ssh common args {text!r}: -o {value!r} is not Key=Value")
            options.setdefault(match.group(1).lower(), match.group(2).strip())
        elif flag == "i":
            identity_files.append(value)
        elif flag in _FLAG_TO_OPTION:
            options.setdefault(_FLAG_TO_OPTION[flag], value)
    if identity_files:
        options["identityfile"] = identity_files
    return options


def expand_proxy_command(command: str, hostname: str, port: int, user: str) -> str:
    """Expand %h %p %r %% in a ProxyCommand given on the command line (config ones come expanded)."""
    tokens = {"h": hostname, "p": str(port), "r": user, "%": "%"}
    out, index = [], 0
    while index < len(command):
        char = command[index]
        if char == "%" and index + 1 < len(command) and command[index + 1] in tokens:
            out.append(tokens[command[index + 1]])
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)
