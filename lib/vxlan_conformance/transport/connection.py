"""One host: commands with a time and size limit, sudo, uploads, and the agent's line stream."""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import select
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import paramiko

from vxlan_conformance.transport.errors import SSHError, redact, short
from vxlan_conformance.transport.hub import Hub
from vxlan_conformance.transport.resolve import Endpoint, SSHOptions, Target, resolve

SUDO = "sudo -n"
_READ_CHUNK = 65536
MiB = 1 << 20
MAX_OUTPUT = 32 * MiB  # stdout + stderr of one command, unless the caller says otherwise
MAX_LINE = 32 * MiB  # one line of a Stream, unless the caller says otherwise
_BECOME_TALK = 64 * 1024  # what sudo may print before the command starts (prompt, lecture, errors)
_SUDO_FAILURES = (
    "a password is required",
    "a terminal is required",
    "incorrect password attempt",
    "is not in the sudoers file",
    "is not allowed to run sudo",
    "may not run sudo",
)


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

    def __init__(self, target: Target, options: SSHOptions, *, _hub: Hub | None = None) -> None:
        self.target = target
        self.options = options
        self._own_hub = _hub is None
        self._hub = _hub or Hub(options)
        try:
            self._endpoint: Endpoint | SSHError = resolve(target, options, self._hub.config)
        except SSHError as exc:  # raised on use, so one bad host never stops a Pool
            self._endpoint = exc

    @property
    def endpoint(self) -> Endpoint:
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
        max_output: int = MAX_OUTPUT,
        shown: str | None = None,
    ) -> CommandResult:
        """Run a shell script (str) or an argv (sequence, each word quoted) and wait for it.

        A non-zero exit is a result, not an error; SSHError is for the transport, time limits, output
        larger than `max_output` bytes (stdout + stderr; the command is killed) and sudo refusing.
        `shown` is how errors and the result name the command (default: the command itself), for commands
        that carry a credential.
        """
        text = command if isinstance(command, str) else shlex.join(command)
        shown = text if shown is None else shown
        script = f"sh -c {shlex.quote(command)}" if isinstance(command, str) else text
        use_sudo = (self.target.become if become is None else become) and self.endpoint.user != "root"
        limit = self.options.command_timeout if timeout is None else timeout
        script = _bounded(script, limit)
        secret = self._become_secret() if use_sudo else None
        if use_sudo:
            script = _sudo(script, secret)
        started = time.monotonic()
        status, out, err = self._exec(script, stdin or b"", limit, shown, max_output, secret)
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

    def _become_secret(self) -> _BecomeSecret | None:
        password = self.target.become_password or os.environ.get("VXLAN_BECOME_PASSWORD")
        return _BecomeSecret(password) if password else None

    def stream(self, command: str, *, limit: float, become: bool | None = None, max_line: int = MAX_LINE) -> Stream:
        """Start `command` (a shell command line) and talk to it line by line: the node agent.

        Bounded on the node by `limit` like every command; stderr is merged into stdout; a line longer than
        `max_line` bytes is an SSHError (kind too-much-output).
        """
        use_sudo = (self.target.become if become is None else become) and self.endpoint.user != "root"
        script = _bounded(command, limit)
        secret = self._become_secret() if use_sudo else None
        if use_sudo:
            script = _sudo(script, secret)
        client = self._hub.client(self.endpoint)
        transport = client.get_transport()
        assert transport is not None
        try:
            channel = transport.open_session(timeout=self.options.connect_timeout)
            self._hub.count_command()
            channel.set_combine_stderr(True)
            channel.exec_command(script)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SSHError(self.target.name, "unreachable",
                           f"{self.endpoint.where}: cannot start {short(command)} "
                           f"({redact(str(exc), self.endpoint.secrets())})") from None
        rest = b""
        if secret is not None:
            try:
                talk = self._become_talk(channel, secret, time.monotonic() + self.options.connect_timeout,
                                         combined=True)
            except BaseException:
                channel.close()
                raise
            if talk.rest is None:
                channel.close()
                self._check_sudo(CommandResult(self.target.name, command, 1, "",
                                               bytes(talk.said).decode("utf-8", "replace"), 0.0))
                raise SSHError(self.target.name, "become", f"{self.endpoint.where}: sudo ended before "
                               f"starting the command ({short(self._redact(bytes(talk.said)))})")
            rest = talk.rest
        return Stream(self.target.name, channel, max_line=max_line, secrets=self._secrets(), initial=rest)

    def _secrets(self) -> tuple[str, ...]:
        become = self.target.become_password or os.environ.get("VXLAN_BECOME_PASSWORD")
        return self.endpoint.secrets() + ((become,) if become else ())

    def _redact(self, data: bytes) -> str:
        return redact(data.decode("utf-8", "replace"), self._secrets())

    def _become_talk(self, channel: paramiko.Channel, secret: _BecomeSecret, deadline: float, *,
                     combined: bool, out: bytearray | None = None) -> _Talk:
        """Until the command starts: the password goes to sudo only when sudo prints its prompt (a
        NOPASSWD rule or cached credentials ask nothing, and a password sent anyway would be the first line
        of the command's stdin). `rest` is what followed the start mark, None if sudo ended first."""
        recv = channel.recv if combined else channel.recv_stderr
        ready = channel.recv_ready if combined else channel.recv_stderr_ready
        said = bytearray()
        answered = 0
        while True:
            while ready():
                said += recv(_READ_CHUNK)
            while out is not None and channel.recv_ready():
                out += channel.recv(_READ_CHUNK)
            at = said.find(secret.mark)
            if at >= 0:
                return _Talk(said[:at].replace(secret.prompt, b""), bytes(said[at + len(secret.mark):]))
            prompts = said.count(secret.prompt)
            if prompts > answered:
                if answered:
                    self._kill_remote(channel)
                    raise SSHError(self.target.name, "become",
                                   f"{self.endpoint.where}: become failed for user {self.endpoint.user} (sudo "
                                   "refused the become password); fix ansible_become_password / "
                                   "VXLAN_BECOME_PASSWORD")
                channel.sendall(secret.password.encode() + b"\n")
                answered = prompts
            if len(said) > _BECOME_TALK:
                self._kill_remote(channel)
                raise SSHError(self.target.name, "too-much-output",
                               f"{self.endpoint.where}: sudo printed more than {_BECOME_TALK // 1024} KiB "
                               "before starting the command; check sudo on the node")
            if (channel.eof_received or channel.closed) and not ready():
                return _Talk(said.replace(secret.prompt, b""), None)
            left = deadline - time.monotonic()
            if left <= 0:
                self._kill_remote(channel)
                raise SSHError(self.target.name, "timeout",
                               f"{self.endpoint.where}: sudo did not start the command within the time limit; "
                               "check sudo on the node")
            _wait_readable(channel.fileno(), left)

    def _exec(self, script: str, payload: bytes, limit: float, shown: str, max_output: int,
              secret: _BecomeSecret | None = None) -> tuple[int, bytes, bytes]:
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
                f"{self.endpoint.where}: cannot open a session ({redact(str(exc), self.endpoint.secrets())}); "
                "check MaxSessions and sshd on the node",
            ) from None
        self._hub.count_command()
        out, err = bytearray(), bytearray()
        try:
            channel.exec_command(script)
            if secret is not None:
                talk = self._become_talk(channel, secret, deadline, combined=False, out=out)
                err += talk.said if talk.rest is None else talk.rest
                if talk.rest is None:  # sudo refused: its words and exit status are the result
                    channel.status_event.wait(max(0.0, deadline - time.monotonic()))
                    status = channel.recv_exit_status() if channel.exit_status_ready() else 1
                    return status, bytes(out), bytes(err)
            pending = memoryview(payload)
            if not pending:
                channel.shutdown_write()  # like ssh -n: commands reading stdin see EOF, not a hang
            wakeup = channel.fileno()
            while True:
                while channel.recv_ready():
                    out += channel.recv(_READ_CHUNK)
                    self._check_size(channel, len(out) + len(err), max_output, shown)
                while channel.recv_stderr_ready():
                    err += channel.recv_stderr(_READ_CHUNK)
                    self._check_size(channel, len(out) + len(err), max_output, shown)
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
                        f"{self.endpoint.where}: command did not finish within {limit:g} s ({short(shown)}); "
                        "raise the command timeout or check the node",
                    )
                _wait_readable(wakeup, min(left, 0.01) if pending else left)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SSHError(
                self.target.name,
                "unreachable",
                f"{self.endpoint.where}: connection lost while running {short(shown)} "
                f"({redact(str(exc), self._secrets())})",
            ) from None
        finally:
            channel.close()

    def _check_size(self, channel: paramiko.Channel, size: int, limit: int, shown: str) -> None:
        if size > limit:
            self._kill_remote(channel)
            raise SSHError(
                self.target.name,
                "too-much-output",
                f"{self.endpoint.where}: {short(shown)} printed more than {_size(limit)}; stopped it "
                "(check the node: a healthy one prints far less)",
            )

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
        why = "sudo is not installed" if missing else redact(sudo_lines[-1], self._secrets())
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
                f"{self.endpoint.where}: cannot write {remote_path} ({short(result.stderr.strip())}); "
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

    def __init__(self, host: str, channel: paramiko.Channel, *, max_line: int = MAX_LINE,
                 secrets: Sequence[str] = (), initial: bytes = b"") -> None:
        self.host = host
        self._channel = channel
        self._buffer = bytearray(initial)
        self._max_line = max_line
        self._secrets = tuple(s for s in secrets if s)

    def write(self, data: bytes) -> None:
        try:
            self._channel.sendall(data)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SSHError(self.host, "unreachable", f"{self.host}: lost the session while writing ({exc})") from None

    def readline(self, timeout: float) -> str | None:
        """The next line without its newline; None when `timeout` passes or the output ends first.

        The time limit holds even for output that never pauses, and a line longer than max_line is an
        SSHError (kind too-much-output): a node cannot make the runner read or hold without bound."""
        deadline = time.monotonic() + timeout
        channel = self._channel
        searched = 0
        while (end := self._buffer.find(b"\n", searched)) < 0:
            searched = len(self._buffer)
            if searched > self._max_line:
                raise SSHError(self.host, "too-much-output",
                               f"{self.host}: the remote command printed a line longer than {_size(self._max_line)}")
            left = deadline - time.monotonic()
            if channel.recv_ready() and left > 0:
                self._buffer += channel.recv(_READ_CHUNK)
                continue
            if channel.eof_received or channel.closed or left <= 0:
                return None
            _wait_readable(channel.fileno(), left)
        if end > self._max_line:
            raise SSHError(self.host, "too-much-output",
                           f"{self.host}: the remote command printed a line longer than {_size(self._max_line)}")
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        text = line.decode("utf-8", "replace")
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

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


@dataclass(frozen=True)
class _BecomeSecret:
    """The become password and this command's sudo prompt and start mark (random, so the command's own
    output cannot fake them)."""

    password: str = field(repr=False)
    token: str = field(default_factory=lambda: secrets.token_hex(8))

    @property
    def prompt(self) -> bytes:
        return f"[vxc-sudo-{self.token}]".encode()

    @property
    def mark(self) -> bytes:
        return f"vxc-become-{self.token}\n".encode()


@dataclass
class _Talk:
    said: bytes | bytearray  # what sudo printed before the command (prompts removed)
    rest: bytes | None  # what followed the start mark; None: sudo ended without starting the command


def _sudo(script: str, secret: _BecomeSecret | None) -> str:
    """`script` under sudo. Without a password: sudo -n (never reads stdin). With one: sudo -S with a
    prompt of our own, and a start mark the runner waits for before it sends anything to stdin."""
    if secret is None:
        return f"{SUDO} -- {script}"
    start = 'printf "%s\\n" "$0" >&2; exec "$@"'
    mark = secret.mark.decode().strip()
    return f"sudo -S -p {shlex.quote(secret.prompt.decode())} -- sh -c {shlex.quote(start)} {mark} {script}"


def _size(count: int) -> str:
    return f"{count / MiB:g} MiB" if count >= MiB else f"{count / 1024:g} KiB"


def _wait_readable(fd: int, timeout: float) -> None:
    """Block until `fd` is readable or `timeout` passes. poll, not select: a run with hundreds of nodes
    holds descriptors above 1024, which select() cannot watch."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    poller.poll(max(0.0, timeout) * 1000)

