"""From an inventory Target to the endpoint to connect to: ssh config (with Include), ansible_ssh_common_args,
ProxyJump chains and the host key settings, in OpenSSH's order of precedence."""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass, field, replace

import paramiko

from vxlan_conformance.transport import ssh_config
from vxlan_conformance.transport.errors import SSHError

HOST_KEY_POLICIES = ("strict", "accept-new", "off")
MAX_JUMP_DEPTH = 8
# What a host or user name may hold when it is put into a ProxyCommand (%h, %r, or paramiko's expansion of a
# config ProxyCommand): the command is split into words, so a space or quote in ansible_host would add
# arguments of its own (`-oProxyCommand=...` to an `ssh -W %h:%p bastion`). OpenSSH refuses such names too.
_PROXY_SAFE_HOST = re.compile(r"^[A-Za-z0-9_.:%\[\]-]+$")
_PROXY_SAFE_USER = re.compile(r"^[A-Za-z0-9_.@-]+$")
# StrictHostKeyChecking values -> our policy names
_STRICT_HOST_KEY_CHECKING = {
    "yes": "strict",
    "ask": "strict",
    "accept-new": "accept-new",
    "no": "off",
    "off": "off",
}


@dataclass(frozen=True)
class Target:
    """What to connect to; built by the lead from an inventory Host."""

    name: str
    hostname: str
    port: int = 22  # 22 means "not set": an ssh config Port or -p in common_args then applies
    user: str | None = None
    key_file: str | None = None
    password: str | None = field(default=None, repr=False)
    become: bool = False
    become_password: str | None = field(default=None, repr=False)
    common_args: str | None = None
    jump: Target | None = None


@dataclass(frozen=True)
class SSHOptions:
    connect_timeout: float = 10.0
    command_timeout: float = 60.0
    host_key_policy: str | None = None  # strict | accept-new | off; None: the ssh config's, else strict
    known_hosts: str | None = None  # None: the ssh config's UserKnownHostsFile, else ~/.ssh/known_hosts
    ssh_config: str | None = "~/.ssh/config"




@dataclass(frozen=True)
class Endpoint:
    """A Target after ssh config, common args and jump specs are applied."""

    name: str
    hostname: str
    port: int
    user: str
    key_files: tuple[str, ...]
    password: str | None = field(repr=False)
    proxy_command: str | None
    jump: Endpoint | None
    policy: str
    known_hosts: str

    @property
    def key(self) -> tuple:
        """Connections are shared between endpoints that would open the same session."""
        return (self.user, self.hostname, self.port, self.proxy_command, self.jump.key if self.jump else None)

    @property
    def where(self) -> str:
        """`node3 (198.18.0.3:22 via bastion)`: the prefix of every message about this host."""
        via = f" via {self.jump.name}" if self.jump else (" via ProxyCommand" if self.proxy_command else "")
        return f"{self.name} ({self.hostname}:{self.port}{via})"

    def secrets(self) -> tuple[str, ...]:
        own = (self.password,) if self.password else ()
        return own + (self.jump.secrets() if self.jump else ())



def resolve(
    target: Target,
    options: SSHOptions,
    config: paramiko.SSHConfig,
    depth: int = 0,
    inherited: tuple[str, str] | None = None,
    extra_keys: tuple[str, ...] = (),
) -> Endpoint:
    """Apply precedence: explicit Target fields > common args > ssh config > defaults."""
    if depth > MAX_JUMP_DEPTH:
        raise SSHError(
            target.name,
            "proxy",
            f"{target.name}: jump chain deeper than {MAX_JUMP_DEPTH} hops; "
            "is there a ProxyJump loop in the ssh config?",
        )
    try:
        args = ssh_config.parse_common_args(target.common_args) if target.common_args else {}
    except ssh_config.SSHConfigError as exc:
        raise SSHError(target.name, "config", f"{target.name}: {exc}") from None
    cfg = config.lookup(target.hostname)
    hostname = str(args.get("hostname") or cfg.get("hostname") or target.hostname)
    port_text = str(target.port if target.port != 22 else args.get("port") or cfg.get("port") or 22)
    if not port_text.isdigit():
        raise SSHError(
            target.name,
            "config",
            f"{target.name}: port {port_text!r} is not a number; fix ansible_port / Port",
        )
    port = int(port_text)
    user = str(target.user or args.get("user") or cfg.get("user") or getpass.getuser())
    if target.key_file and not os.path.isfile(os.path.expanduser(target.key_file)):
        raise SSHError(
            target.name,
            "auth",
            f"{target.name} ({hostname}:{port}): key file {target.key_file} not found; "
            "fix ansible_ssh_private_key_file",
        )
    key_files = [target.key_file, *args.get("identityfile", []), *cfg.get("identityfile", []), *extra_keys]  # type: ignore[misc]
    keys = tuple(dict.fromkeys(os.path.expanduser(k) for k in key_files if k))
    policy, known_hosts = inherited or _host_key_settings(target, options, args, cfg)

    proxy_command, jump = None, None
    proxy_source = args if ("proxyjump" in args or "proxycommand" in args) else None
    if proxy_source is None and target.jump is None:
        proxy_source = cfg
    if proxy_source is not None:
        first = next((k for k in proxy_source if k in ("proxyjump", "proxycommand")), None)
        value = str(proxy_source.get(first, "")) if first else ""
        if first == "proxycommand" and value.lower() != "none":
            _check_proxy_words(target, hostname, user)
            proxy_command = (
                ssh_config.expand_proxy_command(value, hostname, port, user) if proxy_source is args else value
            )
        elif first == "proxyjump":
            jump = _resolve_jump_spec(target, value, options, config, depth, (policy, known_hosts), keys)
    else:
        assert target.jump is not None
        jump = resolve(target.jump, options, config, depth + 1, (policy, known_hosts))
    return Endpoint(target.name, hostname, port, user, keys, target.password, proxy_command, jump, policy, known_hosts)


def _check_proxy_words(target: Target, hostname: str, user: str) -> None:
    for what, value, pattern, fix in (("host name", hostname, _PROXY_SAFE_HOST, "ansible_host / HostName"),
                                      ("user name", user, _PROXY_SAFE_USER, "ansible_user / User")):
        if value.startswith("-") or not pattern.match(value):
            raise SSHError(
                target.name,
                "config",
                f"{target.name}: {what} {value!r} has characters a ProxyCommand would split into arguments "
                f"(spaces, quotes, shell characters, a leading '-'); fix {fix}",
            )


def _host_key_settings(
    target: Target, options: SSHOptions, args: dict[str, object], cfg: paramiko.SSHConfigDict
) -> tuple[str, str]:
    """Policy and known_hosts file, first found: the inventory's explicit vxlan_host_key_policy /
    vxlan_known_hosts, common args (-o StrictHostKeyChecking / UserKnownHostsFile, ssh's command line), the
    user's ssh config (which Ansible's ssh honours too), then strict and ~/.ssh/known_hosts.

    An explicit vxlan_host_key_policy wins: `StrictHostKeyChecking=no` in shared common args must not switch
    off what the suite's own setting asks for. Whatever the policy, the known_hosts file is read (see
    hub.py): like OpenSSH, `no` accepts UNKNOWN keys only; a known key that changed stops the connection
    before any password is sent."""
    if options.host_key_policy:
        policy = options.host_key_policy
    elif "stricthostkeychecking" in args:
        policy = _policy(target, args["stricthostkeychecking"], "ansible_ssh_common_args")
    elif "stricthostkeychecking" in cfg:
        policy = _policy(target, cfg["stricthostkeychecking"], "the ssh config")
    else:
        policy = "strict"
    if policy not in HOST_KEY_POLICIES:
        raise SSHError(
            target.name,
            "config",
            f"{target.name}: host key policy {policy!r} unknown; use one of {', '.join(HOST_KEY_POLICIES)}",
        )
    candidates = (options.known_hosts, args.get("userknownhostsfile"), cfg.get("userknownhostsfile"))
    files = next((str(c).split() for c in candidates if c and str(c).split()), ["~/.ssh/known_hosts"])
    return policy, os.path.expanduser(files[0])


def _policy(target: Target, value: object, where: str) -> str:
    text = str(value).lower()
    if text not in _STRICT_HOST_KEY_CHECKING:
        raise SSHError(
            target.name,
            "config",
            f"{target.name}: StrictHostKeyChecking={text} in {where} not understood; use yes, accept-new or no",
        )
    return _STRICT_HOST_KEY_CHECKING[text]


def _resolve_jump_spec(
    target: Target,
    spec: str,
    options: SSHOptions,
    config: paramiko.SSHConfig,
    depth: int,
    inherited: tuple[str, str],
    keys: tuple[str, ...],
) -> Endpoint | None:
    """`a,b` -> b reached through a. The target's keys are tried last on every hop (same key on bastions is common)."""
    try:
        hops = ssh_config.parse_jump_spec(spec)
    except ssh_config.SSHConfigError as exc:
        raise SSHError(target.name, "config", f"{target.name}: {exc}") from None
    previous: Endpoint | None = None
    for hop in hops:
        hop_target = Target(name=hop.host, hostname=hop.host, port=hop.port or 22, user=hop.user)
        endpoint = resolve(hop_target, options, config, depth + 1, inherited, keys)
        if previous is not None:  # later hops go through the earlier ones, whatever their own config says
            endpoint = replace(endpoint, proxy_command=None, jump=previous)
        previous = endpoint
    return previous

