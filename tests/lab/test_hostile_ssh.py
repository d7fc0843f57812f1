"""Issue 20, transport: host keys as OpenSSH means them, a ProxyCommand that a host name cannot add
arguments to, bounded output, and sudo that never gets the become password where it would not read it.
Real OpenSSH sshd on loopback (tests/sshd_fixture.py), real sudo."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest

from tests.lab.sshd_fixture import Sshd, SshdFactory, sshd_factory  # noqa: F401  (fixture)
from vxlan_conformance.transport import Connection, SSHError, SSHOptions, Target

NODE, MITM = "127.0.0.6", "127.0.0.7"
PASSWORD = "pw-" + secrets.token_hex(8)  # login + sudo password of vxcpw (sudo with a password)
NOPASSWD_PASSWORD = "pw-" + secrets.token_hex(8)  # vxcnp's password (NOPASSWD sudo), given as become password


class Servers:
    def __init__(self, factory: SshdFactory) -> None:
        self.factory = factory
        self.key = str(factory.client_key_path)
        factory.add_user("vxcpw", password=PASSWORD, sudo="password")
        factory.add_user("vxcnp", password=NOPASSWD_PASSWORD, sudo="nopasswd")
        self.node = factory.start("node", NODE, log_level="VERBOSE")
        self.mitm = factory.start("mitm", MITM, log_level="VERBOSE")  # another host key, accepts passwords
        self.known_hosts = factory.workdir / "known_hosts"
        self.known_hosts.write_text(self.node.known_hosts_line())

    def options(self, **overrides) -> SSHOptions:
        values = dict(connect_timeout=5.0, command_timeout=15.0, known_hosts=str(self.known_hosts), ssh_config=None)
        values.update(overrides)
        return SSHOptions(**values)

    def target(self, server: Sshd, **fields) -> Target:
        values = dict(name=server.name, hostname=server.address, port=server.port, user="root", key_file=self.key)
        values.update(fields)
        return Target(**values)

    def mitm_known_as_node(self, path: Path) -> str:
        """known_hosts in which the MITM's address:port holds the node's key: the key 'changed'."""
        line = self.node.known_hosts_line().replace(f"[{NODE}]:{self.node.port}", f"[{MITM}]:{self.mitm.port}")
        path.write_text(line)
        return str(path)


@pytest.fixture(scope="module")
def servers(sshd_factory: SshdFactory) -> Servers:  # noqa: F811
    return Servers(sshd_factory)


@pytest.fixture(autouse=True)
def no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.delenv("VXLAN_BECOME_PASSWORD", raising=False)


def run_once(target: Target, options: SSHOptions, command, **kwargs):
    connection = Connection(target, options)
    try:
        return connection.run(command, **kwargs)
    finally:
        connection.close()


def error_of(target: Target, options: SSHOptions, command="true", **kwargs) -> SSHError:
    with pytest.raises(SSHError) as caught:
        run_once(target, options, command, **kwargs)
    assert "\n" not in str(caught.value) and PASSWORD not in str(caught.value)
    return caught.value


# --- host keys ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["common_args", "ssh_config"])
def test_changed_known_key_is_refused_before_the_password_under_strict_host_key_checking_no(
        servers: Servers, tmp_path: Path, where: str) -> None:
    """A man in the middle (another host key at an address known_hosts knows): StrictHostKeyChecking=no
    accepts unknown keys only; the connection stops before any authentication, so it never sees the password."""
    known = servers.mitm_known_as_node(tmp_path / "known_hosts")
    fields = dict(user="vxcpw", key_file=None, password=PASSWORD)
    settings = {"known_hosts": None}
    if where == "common_args":
        fields["common_args"] = f"-o StrictHostKeyChecking=no -o UserKnownHostsFile={known}"
    else:
        config = tmp_path / "config"
        config.write_text(f"Host {MITM}\n  StrictHostKeyChecking no\n  UserKnownHostsFile {known}\n")
        settings["ssh_config"] = str(config)
    before = servers.mitm.log()
    error = error_of(servers.target(servers.mitm, **fields), servers.options(**settings))
    assert error.kind == "host-key-changed", str(error)
    seen = servers.mitm.log()[len(before):]
    assert "password for vxcpw" not in seen and "Accepted" not in seen, seen


def test_unknown_key_is_still_accepted_under_strict_host_key_checking_no(servers: Servers, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("")
    target = servers.target(servers.mitm, common_args=f"-o StrictHostKeyChecking=no -o UserKnownHostsFile={empty}")
    assert run_once(target, servers.options(known_hosts=None), "true").ok
    assert empty.read_text() == ""  # `no` accepts, it does not record


def test_explicit_strict_policy_beats_strict_host_key_checking_no_in_common_args(
        servers: Servers, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("")
    target = servers.target(servers.node, common_args="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null")
    error = error_of(target, servers.options(host_key_policy="strict", known_hosts=str(empty)))
    assert error.kind == "host-key-unknown" and str(empty) in str(error)
    # ... and the explicit known_hosts file is the one read
    assert run_once(target, servers.options(host_key_policy="strict"), "true").ok


# --- ProxyCommand ------------------------------------------------------------------------------------------


def recorder(tmp_path: Path, out: Path) -> Path:
    """A ProxyCommand that writes the arguments it got, one per line, and fails."""
    script = tmp_path / "record-argv"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {out}\nexit 3\n')
    script.chmod(0o755)
    return script


@pytest.mark.parametrize("hostname", ["127.0.0.6 -oProxyCommand=evil", "node'; touch x; '", "-oProxyCommand=x"])
def test_host_name_cannot_add_arguments_to_a_proxy_command(servers: Servers, tmp_path: Path, hostname: str) -> None:
    out = tmp_path / "argv"
    proxy = f"{recorder(tmp_path, out)} %h %p"
    target = servers.target(servers.node, hostname=hostname, common_args=f'-o ProxyCommand="{proxy}"')
    error = error_of(target, servers.options(host_key_policy="off"))
    assert error.kind == "config" and "ProxyCommand" in str(error), str(error)
    assert not out.exists(), out.read_text()


def test_plain_host_name_still_reaches_the_proxy_command(servers: Servers, tmp_path: Path) -> None:
    out = tmp_path / "argv"
    proxy = f"{recorder(tmp_path, out)} %h %p"
    target = servers.target(servers.node, hostname="node-1.example", common_args=f'-o ProxyCommand="{proxy}"')
    assert error_of(target, servers.options(host_key_policy="off")).kind == "proxy"
    assert out.read_text().split() == ["node-1.example", str(servers.node.port)]


# --- bounded output ----------------------------------------------------------------------------------------


def test_endless_output_stops_at_the_size_cap_not_the_time_limit(servers: Servers) -> None:
    connection = Connection(servers.target(servers.node), servers.options(command_timeout=30.0))
    try:
        started = time.monotonic()
        with pytest.raises(SSHError) as caught:
            connection.run("yes vxlan-conformance", max_output=1 << 20)
        elapsed = time.monotonic() - started
        after = connection.run("echo still-usable")
    finally:
        connection.close()
    assert caught.value.kind == "too-much-output", str(caught.value)
    assert "1 MiB" in str(caught.value)
    assert elapsed < 10
    assert after.stdout == "still-usable\n"


def test_stream_line_is_capped(servers: Servers) -> None:
    connection = Connection(servers.target(servers.node), servers.options())
    try:
        stream = connection.stream("yes | tr -d '\\n'", limit=20, max_line=1 << 20)
        started = time.monotonic()
        with pytest.raises(SSHError) as caught:
            stream.readline(timeout=10)
        elapsed = time.monotonic() - started
        stream.close(grace=1)
    finally:
        connection.close()
    assert caught.value.kind == "too-much-output", str(caught.value)
    assert elapsed < 5


def test_stream_reader_fed_without_pause_keeps_its_deadline(servers: Servers) -> None:
    """Output that never pauses (and never ends a line) must not keep readline past its time limit."""
    connection = Connection(servers.target(servers.node), servers.options())
    try:
        stream = connection.stream("yes | tr -d '\\n'", limit=20, max_line=1 << 30)
        started = time.monotonic()
        line = stream.readline(timeout=0.5)
        elapsed = time.monotonic() - started
        stream.close(grace=1)
    finally:
        connection.close()
    assert line is None
    assert elapsed < 1.5


# --- sudo --------------------------------------------------------------------------------------------------


AGENT_LIKE = "python3 -c 'import sys; data = sys.stdin.buffer.read(); sys.stdout.write(repr(data[:40]))'"


@pytest.mark.parametrize("user,become_password", [("vxcnp", NOPASSWD_PASSWORD), ("vxcpw", PASSWORD)],
                         ids=["nopasswd", "password"])
def test_become_password_never_reaches_the_command_stdin(servers: Servers, user: str, become_password: str) -> None:
    """NOPASSWD sudo does not read stdin: the become password must not become the command's first line."""
    target = servers.target(servers.node, user=user, become=True, become_password=become_password)
    connection = Connection(target, servers.options())
    try:
        for _ in range(3):  # later commands too (sudo's credential cache must not change anything)
            result = connection.run(AGENT_LIKE, stdin=b"payload-first-line\n")
            assert result.stdout == repr(b"payload-first-line\n"), result.stdout
            assert become_password not in result.stdout + result.stderr
        assert connection.run("id -u").stdout == "0\n"
    finally:
        connection.close()


@pytest.mark.parametrize("user,become_password", [("vxcnp", NOPASSWD_PASSWORD), ("vxcpw", PASSWORD)],
                         ids=["nopasswd", "password"])
def test_become_password_never_reaches_a_stream(servers: Servers, user: str, become_password: str) -> None:
    target = servers.target(servers.node, user=user, become=True, become_password=become_password)
    connection = Connection(target, servers.options())
    try:
        for _ in range(2):
            stream = connection.stream("head -n 1; id -u", limit=10)
            stream.write(b"first-line\n")
            lines = [stream.readline(5), stream.readline(5)]
            stream.close(grace=1)
            assert lines == ["first-line", "0"]
    finally:
        connection.close()


def test_wrong_become_password_on_a_stream_is_a_become_error(servers: Servers) -> None:
    target = servers.target(servers.node, user="vxcpw", become=True, become_password="not-" + PASSWORD)
    connection = Connection(target, servers.options())
    try:
        with pytest.raises(SSHError) as caught:
            connection.stream("cat", limit=10)
    finally:
        connection.close()
    assert caught.value.kind == "become", str(caught.value)
    assert PASSWORD not in str(caught.value)
