"""SSH transport (paramiko): one `run()` per host returning a CommandResult, like testinfra.

Why not plain SSHClient.connect(hostname): the suite must honour what users already have
(~/.ssh/config with Include, ProxyJump through a bastion, ansible_ssh_common_args), keep one
connection per host for the whole run, bound every step by a time limit, and turn every
failure into one line that names the host and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import math
import os
import resource
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TypeVar

import paramiko

from vxlan_conformance.transport import ssh_config

T = TypeVar("T")

HOST_KEY_POLICIES = ("strict", "accept-new", "off")
MAX_JUMP_DEPTH = 8
SUDO = "sudo -n"
SUDO_WITH_PASSWORD = "sudo -S -p ''"  # password first on stdin, no prompt text in stderr
_READ_CHUNK = 65536
_SUDO_FAILURES = (
    "a password is required",
    "a terminal is required",
    "incorrect password attempt",
    "is not in the sudoers file",
    "is not allowed to run sudo",
    "may not run sudo",
)
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
class CommandResult:
    host: str
    command: str
    exit_status: int
    stdout: str
    stderr: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class SSHError(Exception):
    """One line: host name, what failed, what to do.

    kind: unreachable | timeout | auth | host-key-unknown | host-key-changed | become |
    resolve | proxy | config (bad ssh config / common args) | put (upload failed) |
    error (an unexpected exception inside Pool.map).
    """

    def __init__(self, host: str, kind: str, message: str) -> None:
        super().__init__(message)
        self.host = host
        self.kind = kind


@dataclass(frozen=True)
class _Endpoint:
    """A Target after ssh config, common args and jump specs are applied."""

    name: str
    hostname: str
    port: int
    user: str
    key_files: tuple[str, ...]
    password: str | None = field(repr=False)
    proxy_command: str | None
    jump: _Endpoint | None
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


def _redact(text: str, secrets: Iterable[str | None]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return " ".join(text.split())  # one line, always


def _resolve(
    target: Target,
    options: SSHOptions,
    config: paramiko.SSHConfig,
    depth: int = 0,
    inherited: tuple[str, str] | None = None,
    extra_keys: tuple[str, ...] = (),
) -> _Endpoint:
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
            proxy_command = (
                ssh_config.expand_proxy_command(value, hostname, port, user) if proxy_source is args else value
            )
        elif first == "proxyjump":
            jump = _resolve_jump_spec(target, value, options, config, depth, (policy, known_hosts), keys)
    else:
        assert target.jump is not None
        jump = _resolve(target.jump, options, config, depth + 1, (policy, known_hosts))
    return _Endpoint(target.name, hostname, port, user, keys, target.password, proxy_command, jump, policy, known_hosts)


def _host_key_settings(
    target: Target, options: SSHOptions, args: dict[str, object], cfg: paramiko.SSHConfigDict
) -> tuple[str, str]:
    """Policy and known_hosts file, first found: common args (-o StrictHostKeyChecking / UserKnownHostsFile,
    ssh's command line), the inventory's vxlan_host_key_policy / vxlan_known_hosts, the user's ssh config
    (which Ansible's ssh honours too), then strict and ~/.ssh/known_hosts."""
    if "stricthostkeychecking" in args:
        policy = _policy(target, args["stricthostkeychecking"], "ansible_ssh_common_args")
    elif options.host_key_policy:
        policy = options.host_key_policy
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
    candidates = (args.get("userknownhostsfile"), options.known_hosts, cfg.get("userknownhostsfile"))
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
) -> _Endpoint | None:
    """`a,b` -> b reached through a. The target's keys are tried last on every hop (same key on bastions is common)."""
    try:
        hops = ssh_config.parse_jump_spec(spec)
    except ssh_config.SSHConfigError as exc:
        raise SSHError(target.name, "config", f"{target.name}: {exc}") from None
    previous: _Endpoint | None = None
    for hop in hops:
        hop_target = Target(name=hop.host, hostname=hop.host, port=hop.port or 22, user=hop.user)
        endpoint = _resolve(hop_target, options, config, depth + 1, inherited, keys)
        if previous is not None:  # later hops go through the earlier ones, whatever their own config says
            endpoint = replace(endpoint, proxy_command=None, jump=previous)
        previous = endpoint
    return previous


class _ProxyCommand(paramiko.ProxyCommand):
    """paramiko's close() signals the PID even after the process was reaped (PID reuse); this one does not."""

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Unknown host keys: error (strict), record (accept-new) or accept (off)."""

    def __init__(self, hub: _Hub, endpoint: _Endpoint) -> None:
        self.hub = hub
        self.endpoint = endpoint

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        ep = self.endpoint
        if ep.policy == "off":
            return
        if ep.policy == "accept-new":
            self.hub.record_host_key(ep.known_hosts, hostname, key)
            return
        raise SSHError(
            ep.name,
            "host-key-unknown",
            f"{ep.where}: host key {key.get_name()} {key.fingerprint} is not in {ep.known_hosts}; "
            f"add it with `ssh-keyscan -p {ep.port} {ep.hostname} >> {ep.known_hosts}` after checking the fingerprint, "
            "or use host key policy accept-new",
        )


class _Hub:
    """All SSH clients of one Pool (or one lone Connection): one per endpoint, jump hosts included."""

    def __init__(self, options: SSHOptions) -> None:
        self.options = options
        try:
            self.config = ssh_config.load(options.ssh_config)
        except ssh_config.SSHConfigError as exc:
            raise SSHError(options.ssh_config or "", "config", str(exc)) from None
        self.opened = 0
        self.commands = 0  # exec sessions started (commands and streams), for the benchmark
        self._lock = threading.Lock()
        self._key_locks: dict[tuple, threading.Lock] = {}
        self._clients: dict[tuple, paramiko.SSHClient] = {}
        self._proxies: list[paramiko.ProxyCommand] = []
        self._known: dict[str, tuple[tuple[int, int], paramiko.HostKeys]] = {}

    def known_hosts(self, path: str) -> paramiko.HostKeys:
        """The parsed known_hosts file, shared by every client of the hub: parsing it per connection
        made connecting N nodes cost O(N^2) (0.24 s per connection at 1,000 lines, bench/RESULTS.md)."""
        stat = os.stat(path)
        with self._lock:
            cached = self._known.get(path)
            if cached is None or cached[0] != (stat.st_mtime_ns, stat.st_size):
                keys = paramiko.HostKeys()
                keys.load(path)
                cached = self._known[path] = ((stat.st_mtime_ns, stat.st_size), keys)
            return cached[1]

    def count_command(self) -> None:
        with self._lock:
            self.commands += 1

    def client(self, ep: _Endpoint) -> paramiko.SSHClient:
        """The live client for `ep`, connecting (once, even with many threads asking) if needed."""
        with self._lock:
            key_lock = self._key_locks.setdefault(ep.key, threading.Lock())
        with key_lock:
            client = self._clients.get(ep.key)
            transport = client.get_transport() if client else None
            if client is not None and transport is not None and transport.is_active():
                return client
            client = self._connect(ep)
            with self._lock:
                self._clients[ep.key] = client
                self.opened += 1
            return client

    def _connect(self, ep: _Endpoint) -> paramiko.SSHClient:
        sock = self._open_socket(ep)
        client = paramiko.SSHClient()
        if ep.policy != "off" and os.path.isfile(ep.known_hosts):
            try:
                client._host_keys = self.known_hosts(ep.known_hosts)  # paramiko has no public setter
            except (OSError, paramiko.SSHException) as exc:
                sock.close()
                raise SSHError(
                    ep.name,
                    "config",
                    f"{ep.where}: cannot read {ep.known_hosts} ({exc}); fix or move the file",
                ) from None
        client.set_missing_host_key_policy(_HostKeyPolicy(self, ep))
        timeout = self.options.connect_timeout
        started = time.monotonic()
        try:
            client.connect(
                ep.hostname,
                ep.port,
                username=ep.user,
                password=ep.password,
                key_filename=list(ep.key_files) or None,
                sock=sock,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
                channel_timeout=timeout,
            )
        except Exception as exc:
            slow = time.monotonic() - started >= timeout
            error = exc if isinstance(exc, SSHError) else self._connect_error(ep, exc, sock, slow)
            client.close()
            sock.close()
            raise error from None
        # paramiko's transport thread wakes every 0.1 s to see whether it should stop; with hundreds of
        # idle connections those wake-ups cost a quarter of a core (bench/RESULTS.md). Closing does not
        # wait for the wake-up, so a slower one costs nothing.
        client.get_transport().sock.settimeout(_TRANSPORT_WAKEUP_S)  # type: ignore[union-attr]
        return client

    def _open_socket(self, ep: _Endpoint) -> socket.socket | paramiko.Channel | paramiko.ProxyCommand:
        """TCP with TCP_NODELAY (lab-notes: 47 -> 4 ms per command), a jump channel, or a ProxyCommand."""
        timeout = self.options.connect_timeout
        if ep.jump is not None:
            try:
                jump_client = self.client(ep.jump)
            except SSHError as exc:
                raise SSHError(ep.name, "proxy", f"{ep.where}: jump host failed: {exc}") from None
            try:
                return jump_client.get_transport().open_channel(  # type: ignore[union-attr]
                    "direct-tcpip", (ep.hostname, ep.port), ("127.0.0.1", 0), timeout=timeout
                )
            except (paramiko.SSHException, OSError, EOFError) as exc:
                detail = _redact(str(exc) or type(exc).__name__, ep.secrets())
                raise SSHError(
                    ep.name,
                    "proxy",
                    f"{ep.where}: {ep.jump.name} could not open a connection to {ep.hostname}:{ep.port} "
                    f"({detail}); check that the bastion can reach the node and sshd runs there",
                ) from None
        if ep.proxy_command is not None:
            try:
                proxy = _ProxyCommand(ep.proxy_command)
            except Exception as exc:
                raise SSHError(
                    ep.name,
                    "proxy",
                    f"{ep.where}: cannot start ProxyCommand {ep.proxy_command!r} ({exc}); fix ProxyCommand",
                ) from None
            proxy.settimeout(timeout)
            with self._lock:
                self._proxies.append(proxy)
            return proxy
        try:
            sock = socket.create_connection((ep.hostname, ep.port), timeout=timeout)
        except (socket.gaierror, UnicodeError) as exc:  # UnicodeError: Python's IDNA codec refused the name
            reason = exc.strerror if isinstance(exc, socket.gaierror) else "invalid host name"
            raise SSHError(
                ep.name,
                "resolve",
                f"{ep.where}: cannot resolve {ep.hostname} ({reason}); fix ansible_host / HostName",
            ) from None
        except TimeoutError:
            raise SSHError(
                ep.name,
                "timeout",
                f"{ep.where}: no answer within {timeout:g} s; check the address, routes and firewall",
            ) from None
        except ConnectionRefusedError:
            raise SSHError(
                ep.name,
                "unreachable",
                f"{ep.where}: connection refused; is sshd running and port {ep.port} open?",
            ) from None
        except OSError as exc:
            reason = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
            raise SSHError(
                ep.name, "unreachable", f"{ep.where}: cannot connect ({reason}); check the address and routes"
            ) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _connect_error(self, ep: _Endpoint, exc: Exception, sock: object, slow: bool) -> SSHError:
        """paramiko's exception zoo -> one SSHError; never the password."""
        detail = _redact(str(exc) or type(exc).__name__, ep.secrets())
        if isinstance(exc, paramiko.BadHostKeyException):
            known = f"[{ep.hostname}]:{ep.port}" if ep.port != 22 else ep.hostname
            return SSHError(
                ep.name,
                "host-key-changed",
                f"{ep.where}: HOST KEY CHANGED: got {exc.key.get_name()} {exc.key.fingerprint}, "
                f"{ep.known_hosts} has {exc.expected_key.fingerprint}; if the node was reinstalled run "
                f"`ssh-keygen -R '{known}' -f {ep.known_hosts}`, otherwise suspect an attack",
            )
        if isinstance(exc, paramiko.AuthenticationException):
            tried = (
                [f"key {k}" for k in ep.key_files]
                + ["ssh-agent and ~/.ssh keys"]
                + (["password"] if ep.password else [])
            )
            return SSHError(
                ep.name,
                "auth",
                f"{ep.where}: authentication failed for user {ep.user} (tried {', '.join(tried)}); "
                "check ansible_user, the key or the password",
            )
        if ep.proxy_command is not None:
            proxy_err = _proxy_stderr(sock)
            return SSHError(
                ep.name,
                "proxy",
                f"{ep.where}: ProxyCommand failed ({_redact(proxy_err or detail, ep.secrets())}); "
                "check the ProxyCommand and the bastion",
            )
        if slow or isinstance(exc, TimeoutError):
            return SSHError(
                ep.name,
                "timeout",
                f"{ep.where}: no SSH handshake within {self.options.connect_timeout:g} s; "
                "is an sshd listening there, and is the node overloaded?",
            )
        return SSHError(ep.name, "unreachable", f"{ep.where}: SSH handshake failed ({detail}); check sshd on the node")

    def record_host_key(self, path: str, hostname: str, key: paramiko.PKey) -> None:
        """accept-new: append one known_hosts line (hostname is already `[host]:port` for port != 22)."""
        with self._lock:
            directory = os.path.dirname(path)
            if directory:
                os.makedirs(directory, mode=0o700, exist_ok=True)
            with open(path, "a", encoding="ascii") as handle:
                handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")

    def drop(self, ep: _Endpoint) -> None:
        """Close one endpoint's client; the next use reconnects."""
        with self._lock:
            client = self._clients.pop(ep.key, None)
        if client is not None:
            client.close()

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
            proxies, self._proxies = self._proxies, []
        for client in reversed(clients):  # targets before the jump hosts they tunnel through
            client.close()
        for proxy in proxies:
            if proxy.process.poll() is None:
                proxy.process.terminate()
            try:
                proxy.process.wait(timeout=self.options.connect_timeout)
            except Exception:
                proxy.process.kill()
                proxy.process.wait()


def _proxy_stderr(sock: object) -> str:
    """First stderr line of a ProxyCommand that has exited, for the error message."""
    if not isinstance(sock, paramiko.ProxyCommand):
        return ""
    process = sock.process
    try:
        process.wait(timeout=1)
    except Exception:
        return ""
    text = process.stderr.read().decode("utf-8", "replace") if process.stderr else ""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0] if lines else f"exited with status {process.returncode}"


def _bounded(script: str, limit: float) -> str:
    """Run `script` under coreutils `timeout` when the node has it, killing it just after our own limit.

    On timeout we also ask sshd to signal the command, but sshd refuses that for root logins
    (no privilege separation after auth) and cannot kill what sudo started, so the node enforces
    the bound itself and a timed-out command never lingers.
    """
    guard = 'if command -v timeout >/dev/null 2>&1; then exec timeout -s KILL "$1" sh -c "$2"; fi; exec sh -c "$2"'
    return f"sh -c {shlex.quote(guard)} sh {math.ceil(limit) + 1} {shlex.quote(script)}"


class Connection:
    """One host. Connects lazily on first use; safe to share between threads."""

    def __init__(self, target: Target, options: SSHOptions, *, _hub: _Hub | None = None) -> None:
        self.target = target
        self.options = options
        self._own_hub = _hub is None
        self._hub = _hub or _Hub(options)
        try:
            self._endpoint: _Endpoint | SSHError = _resolve(target, options, self._hub.config)
        except SSHError as exc:  # raised on use, so one bad host never stops a Pool
            self._endpoint = exc

    @property
    def endpoint(self) -> _Endpoint:
        """Where this connection really goes (after ssh config, common args and jumps)."""
        if isinstance(self._endpoint, SSHError):
            raise self._endpoint
        return self._endpoint

    def connect(self) -> None:
        """Open (or check) the session now, e.g. to connect a whole Pool in parallel."""
        self._hub.client(self.endpoint)

    def run(
        self,
        command: str | Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        become: bool | None = None,
    ) -> CommandResult:
        """Run a shell script (str) or an argv (sequence, each word quoted) and wait for it.

        A non-zero exit is a result, not an error; SSHError is for the transport, time
        limits and sudo refusing.
        """
        shown = command if isinstance(command, str) else shlex.join(command)
        script = f"sh -c {shlex.quote(command)}" if isinstance(command, str) else shown
        use_sudo = (self.target.become if become is None else become) and self.endpoint.user != "root"
        limit = self.options.command_timeout if timeout is None else timeout
        script = _bounded(script, limit)
        payload = stdin or b""
        if use_sudo:
            password = self.target.become_password or os.environ.get("VXLAN_BECOME_PASSWORD")
            script = f"{SUDO_WITH_PASSWORD if password else SUDO} -- {script}"
            if password:
                payload = password.encode() + b"\n" + payload
        started = time.monotonic()
        status, out, err = self._exec(script, payload, limit, shown)
        result = CommandResult(
            host=self.target.name,
            command=shown,
            exit_status=status,
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            duration_s=time.monotonic() - started,
        )
        if use_sudo:
            self._check_sudo(result)
        return result

    def stream(self, command: str, *, limit: float, become: bool | None = None) -> Stream:
        """Start `command` (a shell command line) and talk to it line by line: the node agent.

        Bounded on the node by `limit` like every command; stderr is merged into stdout.
        """
        use_sudo = (self.target.become if become is None else become) and self.endpoint.user != "root"
        script = _bounded(command, limit)
        password = b""
        if use_sudo:
            secret = self.target.become_password or os.environ.get("VXLAN_BECOME_PASSWORD")
            script = f"{SUDO_WITH_PASSWORD if secret else SUDO} -- {script}"
            password = secret.encode() + b"\n" if secret else b""
        client = self._hub.client(self.endpoint)
        transport = client.get_transport()
        assert transport is not None
        try:
            channel = transport.open_session(timeout=self.options.connect_timeout)
            self._hub.count_command()
            channel.set_combine_stderr(True)
            channel.exec_command(script)
            if password:
                channel.sendall(password)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SSHError(self.target.name, "unreachable",
                           f"{self.endpoint.where}: cannot start {_short(command)} "
                           f"({_redact(str(exc), self.endpoint.secrets())})") from None
        return Stream(self.target.name, channel)

    def _exec(self, script: str, payload: bytes, limit: float, shown: str) -> tuple[int, bytes, bytes]:
        deadline = time.monotonic() + limit
        client = self._hub.client(self.endpoint)
        transport = client.get_transport()
        assert transport is not None
        try:
            channel = transport.open_session(timeout=max(0.1, deadline - time.monotonic()))
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SSHError(
                self.target.name,
                "unreachable",
                f"{self.endpoint.where}: cannot open a session ({_redact(str(exc), self.endpoint.secrets())}); "
                "check MaxSessions and sshd on the node",
            ) from None
        self._hub.count_command()
        out, err = bytearray(), bytearray()
        try:
            channel.exec_command(script)
            pending = memoryview(payload)
            if not pending:
                channel.shutdown_write()  # like ssh -n: commands reading stdin see EOF, not a hang
            wakeup = channel.fileno()
            while True:
                while channel.recv_ready():
                    out += channel.recv(_READ_CHUNK)
                while channel.recv_stderr_ready():
                    err += channel.recv_stderr(_READ_CHUNK)
                if pending and channel.send_ready():
                    pending = pending[channel.send(pending[:_READ_CHUNK]) :]
                    if not pending:
                        channel.shutdown_write()
                left = deadline - time.monotonic()
                if (
                    (channel.eof_received or channel.closed)
                    and not channel.recv_ready()
                    and not channel.recv_stderr_ready()
                ):
                    if channel.status_event.wait(max(0.0, left)):
                        return channel.recv_exit_status(), bytes(out), bytes(err)
                    left = 0
                if left <= 0:
                    self._kill_remote(channel)
                    raise SSHError(
                        self.target.name,
                        "timeout",
                        f"{self.endpoint.where}: command did not finish within {limit:g} s ({_short(shown)}); "
                        "raise the command timeout or check the node",
                    )
                _wait_readable(wakeup, min(left, 0.01) if pending else left)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SSHError(
                self.target.name,
                "unreachable",
                f"{self.endpoint.where}: connection lost while running {_short(shown)} "
                f"({_redact(str(exc), self.endpoint.secrets())})",
            ) from None
        finally:
            channel.close()

    @staticmethod
    def _kill_remote(channel: paramiko.Channel) -> None:
        """Ask sshd to SIGKILL the timed-out command (RFC 4254 6.9) so it does not linger on the node."""
        message = paramiko.Message()
        message.add_byte(paramiko.common.cMSG_CHANNEL_REQUEST)
        message.add_int(channel.remote_chanid)
        message.add_string("signal")
        message.add_boolean(False)
        message.add_string("KILL")
        with contextlib.suppress(Exception):  # best effort; closing the channel follows anyway
            channel.transport._send_user_message(message)  # type: ignore[union-attr]

    def _check_sudo(self, result: CommandResult) -> None:
        """sudo refusing (no password, wrong one, not allowed, not installed) -> SSHError(kind="become")."""
        sudo_lines = [line for line in result.stderr.splitlines() if line.startswith("sudo:")]
        refused = result.exit_status == 1 and any(f in line for line in sudo_lines for f in _SUDO_FAILURES)
        missing = result.exit_status == 127 and any(
            "sudo" in line and "not found" in line for line in result.stderr.splitlines()
        )
        if not (refused or missing):
            return
        why = "sudo is not installed" if missing else _redact(sudo_lines[-1], [self.target.become_password])
        raise SSHError(
            self.target.name,
            "become",
            f"{self.endpoint.where}: become failed for user {self.endpoint.user} ({why}); allow NOPASSWD sudo "
            "or set ansible_become_password / VXLAN_BECOME_PASSWORD",
        )

    def put(self, remote_path: str, data: bytes, mode: int = 0o600, *, become: bool | None = None) -> None:
        """Write `data` to `remote_path` through `cat` (no SFTP subsystem needed on the node)."""
        script = 'umask 077 && cat > "$1" && chmod "$2" "$1"'
        result = self.run(["sh", "-c", script, "sh", remote_path, format(mode, "o")], stdin=data, become=become)
        if not result.ok:
            raise SSHError(
                self.target.name,
                "put",
                f"{self.endpoint.where}: cannot write {remote_path} ({_short(result.stderr.strip())}); "
                "check the directory and permissions",
            )

    def close(self) -> None:
        """Close this host's connection (or everything, for a Connection made on its own)."""
        if self._own_hub:
            self._hub.close()
        elif not isinstance(self._endpoint, SSHError):
            self._hub.drop(self._endpoint)


class Stream:
    """A remote command that is still running: write to its stdin, read its output a line at a time."""

    def __init__(self, host: str, channel: paramiko.Channel) -> None:
        self.host = host
        self._channel = channel
        self._buffer = bytearray()

    def write(self, data: bytes) -> None:
        try:
            self._channel.sendall(data)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SSHError(self.host, "unreachable", f"{self.host}: lost the session while writing ({exc})") from None

    def readline(self, timeout: float) -> str | None:
        """The next line without its newline; None when `timeout` passes or the output ends first."""
        deadline = time.monotonic() + timeout
        channel = self._channel
        while b"\n" not in self._buffer:
            if channel.recv_ready():
                self._buffer += channel.recv(_READ_CHUNK)
                continue
            left = deadline - time.monotonic()
            if channel.eof_received or channel.closed or left <= 0:
                return None
            _wait_readable(channel.fileno(), left)
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        return line.decode("utf-8", "replace")

    def close(self, grace: float = 2.0) -> None:
        """End the command on the node: EOF on its stdin first (the agent leaves at once), and wait for
        its exit so nothing of it is left when the run ends; a KILL request if it does not go."""
        channel = self._channel
        if not channel.exit_status_ready():
            with contextlib.suppress(paramiko.SSHException, OSError, EOFError):
                channel.shutdown_write()
            if not channel.status_event.wait(grace):
                Connection._kill_remote(channel)
        channel.close()


_TRANSPORT_WAKEUP_S = 2.0
_FDS_PER_CONNECTION = 4  # the socket, a channel's wake-up pipe (2), and a spare for a proxy / jump


def _allow_descriptors(needed: int) -> None:
    """Raise this process's open-file limit towards `needed` (up to the hard limit): a 1000-node run
    holds a socket and a pipe per node, past the common soft limit of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        ceiling = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, ceiling), hard))


def _wait_readable(fd: int, timeout: float) -> None:
    """Block until `fd` is readable or `timeout` passes. poll, not select: a run with hundreds of nodes
    holds descriptors above 1024, which select() cannot watch."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    poller.poll(max(0.0, timeout) * 1000)


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Pool:
    """One connection per host per process, reused; thread-safe; connects hosts in parallel."""

    def __init__(self, targets: Iterable[Target], options: SSHOptions, max_workers: int = 64) -> None:
        self.options = options
        self.max_workers = max_workers
        self._hub = _Hub(options)
        self._connections: dict[str, Connection] = {}
        targets = list(targets)
        _allow_descriptors(len(targets) * _FDS_PER_CONNECTION + 256)
        for target in targets:
            if target.name in self._connections:
                raise SSHError(
                    target.name,
                    "config",
                    f"{target.name}: host listed twice; inventory host names must be unique",
                )
            self._connections[target.name] = Connection(target, options, _hub=self._hub)

    @property
    def connections_opened(self) -> int:
        """SSH connections opened so far (jump hosts included), for the benchmark."""
        return self._hub.opened

    @property
    def commands_run(self) -> int:
        """Remote commands started so far on any host of the pool, for the benchmark."""
        return self._hub.commands

    def connection(self, name: str) -> Connection:
        try:
            return self._connections[name]
        except KeyError:
            raise KeyError(f"{name}: not a host of this SSH pool") from None

    def map(self, fn: Callable[[Connection], T], names: Iterable[str] | None = None) -> dict[str, T | SSHError]:
        """fn(connection) for every host at once; one host's failure never touches another's result."""
        chosen = list(self._connections) if names is None else list(names)

        def one(name: str) -> T | SSHError:
            try:
                return fn(self.connection(name))
            except SSHError as exc:
                return exc
            except Exception as exc:
                target = self._connections[name].target if name in self._connections else None
                secrets = (target.password, target.become_password) if target else ()
                return SSHError(
                    name, "error", f"{name}: {type(exc).__name__}: {_short(_redact(str(exc), secrets), 200)}"
                )

        if not chosen:
            return {}
        with ThreadPoolExecutor(max_workers=max(1, min(self.max_workers, len(chosen)))) as executor:
            return dict(zip(chosen, executor.map(one, chosen), strict=True))

    def close(self) -> None:
        self._hub.close()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
