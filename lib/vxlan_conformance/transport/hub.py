"""The SSH clients of one pool, one per endpoint (jump hosts included): sockets, proxies, host keys, auth."""

from __future__ import annotations

import errno
import os
import socket
import threading
import time

import paramiko

from vxlan_conformance.transport import ssh_config
from vxlan_conformance.transport.errors import SSHError, redact
from vxlan_conformance.transport.resolve import Endpoint, SSHOptions

_TRANSPORT_WAKEUP_S = 2.0


class _ProxyCommand(paramiko.ProxyCommand):
    """paramiko's close() signals the PID even after the process was reaped (PID reuse); this one does not."""

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Unknown host keys: error (strict), record (accept-new) or accept (off). A known key that changed
    never gets here: paramiko raises BadHostKeyException for it under every policy, as the known_hosts file
    is loaded for `off` too (OpenSSH's StrictHostKeyChecking=no refuses password authentication then; we
    refuse the connection)."""

    def __init__(self, hub: Hub, endpoint: Endpoint) -> None:
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


class Hub:
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

    def client(self, ep: Endpoint) -> paramiko.SSHClient:
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

    def _connect(self, ep: Endpoint) -> paramiko.SSHClient:
        sock = self._open_socket(ep)
        client = paramiko.SSHClient()
        if os.path.isfile(ep.known_hosts):  # for `off` too: a changed known key is an attack, not a new host
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

    def _open_socket(self, ep: Endpoint) -> socket.socket | paramiko.Channel | paramiko.ProxyCommand:
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
                detail = redact(str(exc) or type(exc).__name__, ep.secrets())
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

    def _connect_error(self, ep: Endpoint, exc: Exception, sock: object, slow: bool) -> SSHError:
        """paramiko's exception zoo -> one SSHError; never the password."""
        detail = redact(str(exc) or type(exc).__name__, ep.secrets())
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
                f"{ep.where}: ProxyCommand failed ({redact(proxy_err or detail, ep.secrets())}); "
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

    def drop(self, ep: Endpoint) -> None:
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

