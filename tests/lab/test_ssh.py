"""transport.ssh against real OpenSSH sshd on loopback: auth, sudo, jumps, host keys, limits, reuse."""

from __future__ import annotations

import secrets
import socket
import time
from pathlib import Path

import pytest

from tests.lab.sshd_fixture import Sshd, SshdFactory, free_port, sshd_factory  # noqa: F401  (fixture)
from vxlan_conformance.transport import Connection, Pool, SSHError, SSHOptions, Target, ssh_config

NODE, BASTION1, BASTION2 = "127.0.0.2", "127.0.0.3", "127.0.0.4"
PASSWORD = "pw-" + secrets.token_hex(8)  # vxctest's login and sudo password; must never show in errors


class Lab:
    def __init__(self, factory: SshdFactory) -> None:
        self.factory = factory
        self.key = str(factory.client_key_path)
        factory.add_user("vxctest", password=PASSWORD, sudo="password")
        factory.add_user("vxcsudo", password="pw-" + secrets.token_hex(8), sudo="nopasswd")
        self.node = factory.start("node", NODE, log_level="VERBOSE")
        self.bastion1 = factory.start("bastion1", BASTION1)
        self.bastion2 = factory.start("bastion2", BASTION2)
        self.known_hosts = factory.workdir / "known_hosts"
        self.known_hosts.write_text("".join(s.known_hosts_line() for s in (self.node, self.bastion1, self.bastion2)))

    def options(self, **overrides) -> SSHOptions:
        values = dict(connect_timeout=5.0, command_timeout=15.0, known_hosts=str(self.known_hosts), ssh_config=None)
        values.update(overrides)
        return SSHOptions(**values)

    def target(self, server: Sshd, **fields) -> Target:
        values = dict(name=server.name, hostname=server.address, port=server.port, user="root", key_file=self.key)
        values.update(fields)
        return Target(**values)


@pytest.fixture(scope="module")
def lab(sshd_factory: SshdFactory) -> Lab:  # noqa: F811
    return Lab(sshd_factory)


@pytest.fixture(autouse=True)
def no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the keys and passwords a test names may authenticate."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.delenv("VXLAN_BECOME_PASSWORD", raising=False)


def run_once(target: Target, options: SSHOptions, command, **kwargs):
    connection = Connection(target, options)
    try:
        return connection.run(command, **kwargs)
    finally:
        connection.close()


def expect_error(kind: str, target: Target, options: SSHOptions, command="true", **kwargs) -> SSHError:
    with pytest.raises(SSHError) as caught:
        run_once(target, options, command, **kwargs)
    error = caught.value
    assert error.kind == kind, str(error)
    assert error.host == target.name
    assert str(error).startswith(target.name) and "\n" not in str(error)
    assert PASSWORD not in str(error) and "Traceback" not in str(error)
    return error


# --- commands -----------------------------------------------------------------------------------


def test_argv_is_quoted_and_script_runs_in_sh(lab: Lab) -> None:
    connection = Connection(lab.target(lab.node), lab.options())
    try:
        argv = connection.run(["printf", "%s|", "a b", "$HOME", "'q'", ""])
        script = connection.run("echo $((1+2)); echo err >&2; exit 3")
        echoed = connection.run(["cat"], stdin=b"x" * 3_000_000)
    finally:
        connection.close()
    assert (argv.stdout, argv.exit_status, argv.ok, argv.host) == ("a b|$HOME|'q'||", 0, True, "node")
    assert (script.stdout, script.stderr, script.exit_status, script.ok) == ("3\n", "err\n", 3, False)
    assert len(echoed.stdout) == 3_000_000


def test_commands_without_stdin_see_eof(lab: Lab) -> None:
    result = run_once(lab.target(lab.node), lab.options(), ["cat"], timeout=5)
    assert result.ok and result.stdout == ""


def test_put_writes_file_with_mode(lab: Lab) -> None:
    home = lab.factory.users["vxcsudo"].home
    connection = Connection(lab.target(lab.node, user="vxcsudo"), lab.options())
    try:
        connection.put(f"{home}/agent file.py", b"print('hi')\n", mode=0o640)
        result = connection.run(["stat", "-c", "%a %U", f"{home}/agent file.py"])
        with pytest.raises(SSHError) as caught:
            connection.put("/nonexistent-dir/x", b"")
    finally:
        connection.close()
    assert (home / "agent file.py").read_bytes() == b"print('hi')\n"
    assert result.stdout.split() == ["640", "vxcsudo"]
    assert caught.value.kind == "put" and "/nonexistent-dir/x" in str(caught.value)


def test_command_timeout_raises_and_kills_remote_command(lab: Lab) -> None:
    connection = Connection(lab.target(lab.node), lab.options())
    try:
        started = time.monotonic()
        with pytest.raises(SSHError) as caught:
            connection.run("sleep 7.31", timeout=0.5)
        elapsed = time.monotonic() - started
        time.sleep(2.0)  # root logins: sshd refuses to signal, the node-side bound ceil(0.5) + 1 s does it
        left = connection.run("ps -eo args | grep -c '^sleep 7.31' || true")
    finally:
        connection.close()
    assert caught.value.kind == "timeout" and "0.5 s" in str(caught.value)
    assert elapsed < 2.0
    assert left.stdout.strip() == "0"  # connection still usable, remote command gone


# --- authentication and sudo ----------------------------------------------------------------------


def test_password_auth(lab: Lab) -> None:
    result = run_once(lab.target(lab.node, user="vxctest", key_file=None, password=PASSWORD), lab.options(), "id -un")
    assert result.stdout == "vxctest\n"


def test_wrong_password_is_one_line_auth_error(lab: Lab) -> None:
    target = lab.target(lab.node, user="vxctest", key_file=None, password=PASSWORD + "-wrong")
    error = expect_error("auth", target, lab.options())
    assert PASSWORD + "-wrong" not in str(error) and "vxctest" in str(error)
    assert PASSWORD not in repr(target)


def test_missing_key_file_is_auth_error(lab: Lab) -> None:
    expect_error("auth", lab.target(lab.node, key_file="/nonexistent/key"), lab.options())


def test_become_with_nopasswd_sudo(lab: Lab) -> None:
    connection = Connection(lab.target(lab.node, user="vxcsudo", become=True), lab.options())
    try:
        as_root = connection.run("id -u")
        as_user = connection.run("id -un", become=False)
        argv = connection.run(["printf", "%s", "a b'c"])
    finally:
        connection.close()
    assert (as_root.stdout, as_user.stdout, argv.stdout) == ("0\n", "vxcsudo\n", "a b'c")


def test_become_with_password_keeps_caller_stdin(lab: Lab) -> None:
    target = lab.target(lab.node, user="vxctest", become=True, become_password=PASSWORD)
    result = run_once(target, lab.options(), "id -u; cat", stdin=b"payload")
    assert result.stdout == "0\npayload"


def test_become_password_from_environment(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VXLAN_BECOME_PASSWORD", PASSWORD)
    result = run_once(lab.target(lab.node, user="vxctest", become=True), lab.options(), ["id", "-u"])
    assert result.stdout == "0\n"


def test_become_without_needed_password_is_become_error(lab: Lab) -> None:
    error = expect_error("become", lab.target(lab.node, user="vxctest", become=True), lab.options())
    assert "VXLAN_BECOME_PASSWORD" in str(error)


def test_become_with_wrong_password_is_become_error(lab: Lab) -> None:
    target = lab.target(lab.node, user="vxctest", become=True, become_password="not-" + PASSWORD)
    error = expect_error("become", target, lab.options())
    assert "not-" + PASSWORD not in str(error)


def test_timed_out_sudo_command_is_killed_on_the_node(lab: Lab) -> None:
    connection = Connection(lab.target(lab.node, user="vxcsudo", become=True), lab.options())
    try:
        with pytest.raises(SSHError) as caught:
            connection.run("sleep 8.17", timeout=0.3)
        time.sleep(2.5)  # remote bound: ceil(0.3) + 1 s
        left = connection.run("ps -eo args | grep -c '^sleep 8.17' || true")
    finally:
        connection.close()
    assert caught.value.kind == "timeout"
    assert left.stdout.strip() == "0"


# --- jumps, ssh config ------------------------------------------------------------------------------


def direct_tcpip_to(server: Sshd, bastion: Sshd) -> bool:
    """The bastion's sshd logged a direct-tcpip channel to `server`: the session really went through it."""
    return f"target {server.address} port {server.port}" in bastion.log()


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config"
    path.write_text(text)
    return str(path)


def test_proxyjump_and_include_from_ssh_config(lab: Lab, tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "10-bastion.conf").write_text(
        f"Host jumpbox\n  HostName {BASTION1}\n  Port {lab.bastion1.port}\n  User root\n  IdentityFile {lab.key}\n"
    )
    (tmp_path / "conf.d" / "20-nodes.conf").write_text(
        f"Host nodealias\n  HostName {NODE}\n  Port {lab.node.port}\n  User root\n  ProxyJump jumpbox\n"
    )
    config = write_config(tmp_path, "# nodes\nInclude conf.d/*.conf\n")
    target = Target(name="node", hostname="nodealias", key_file=lab.key)
    result = run_once(target, lab.options(ssh_config=config), "echo $SSH_CONNECTION")
    assert result.ok and result.stdout.split()[2:] == [NODE, str(lab.node.port)]
    assert direct_tcpip_to(lab.node, lab.bastion1)


def test_proxyjump_from_target_jump(lab: Lab) -> None:
    bastion = lab.target(lab.bastion2, name="bastion")
    result = run_once(lab.target(lab.node, jump=bastion), lab.options(), "true")
    assert result.ok and direct_tcpip_to(lab.node, lab.bastion2)


def test_chained_proxyjump_from_common_args(lab: Lab) -> None:
    spec = f"root@{BASTION1}:{lab.bastion1.port},root@{BASTION2}:{lab.bastion2.port}"
    for common_args in (f"-o ProxyJump={spec}", f"-J {spec}"):
        result = run_once(lab.target(lab.node, common_args=common_args), lab.options(), "true")
        assert result.ok
    assert direct_tcpip_to(lab.bastion2, lab.bastion1) and direct_tcpip_to(lab.node, lab.bastion2)


def test_proxycommand_from_common_args(lab: Lab) -> None:
    proxy = (
        f"ssh -F /dev/null -i {lab.key} -o BatchMode=yes -o StrictHostKeyChecking=no "
        f"-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -p {lab.bastion1.port} -W %h:%p root@{BASTION1}"
    )
    result = run_once(lab.target(lab.node, common_args=f'-o ProxyCommand="{proxy}"'), lab.options(), "echo ok")
    assert result.stdout == "ok\n"


def test_failing_proxycommand_is_proxy_error(lab: Lab) -> None:
    target = lab.target(lab.node, common_args="-o 'ProxyCommand=sh -c \"echo bastion says no >&2; exit 3\"'")
    error = expect_error("proxy", target, lab.options())
    assert "bastion says no" in str(error)


def test_unreachable_jump_host_is_proxy_error(lab: Lab) -> None:
    dead = Target(name="bastion", hostname=BASTION1, port=free_port(BASTION1), user="root", key_file=lab.key)
    error = expect_error("proxy", lab.target(lab.node, jump=dead), lab.options())
    assert "bastion" in str(error) and "connection refused" in str(error)


def test_bad_ssh_config_is_one_line_error(lab: Lab, tmp_path: Path) -> None:
    config = write_config(tmp_path, "Host x\n  =broken\n")
    with pytest.raises(SSHError) as caught:
        Pool([lab.target(lab.node)], lab.options(ssh_config=config))
    assert caught.value.kind == "config" and config in str(caught.value) and "\n" not in str(caught.value)


# --- host keys -------------------------------------------------------------------------------------------


def test_strict_rejects_unknown_host_key(lab: Lab, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    error = expect_error("host-key-unknown", lab.target(lab.node), lab.options(known_hosts=str(known)))
    assert str(known) in str(error) and "ssh-keyscan" in str(error)


@pytest.mark.parametrize("policy", ["strict", "accept-new"])
def test_changed_host_key_is_always_an_error(lab: Lab, tmp_path: Path, policy: str) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(
        lab.bastion1.known_hosts_line().replace(f"{BASTION1}]:{lab.bastion1.port}", f"{NODE}]:{lab.node.port}")
    )
    error = expect_error(
        "host-key-changed", lab.target(lab.node), lab.options(known_hosts=str(known), host_key_policy=policy)
    )
    assert "ssh-keygen -R" in str(error)


def test_accept_new_records_key_then_strict_accepts_it(lab: Lab, tmp_path: Path) -> None:
    known = tmp_path / "sub" / "known_hosts"
    assert run_once(lab.target(lab.node), lab.options(known_hosts=str(known), host_key_policy="accept-new"), "true").ok
    assert known.read_text() == lab.node.known_hosts_line()
    assert run_once(lab.target(lab.node), lab.options(known_hosts=str(known)), "true").ok


def test_hashed_known_hosts_entry_is_honoured(lab: Lab, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(lab.node.known_hosts_line(hashed=True))
    assert run_once(lab.target(lab.node), lab.options(known_hosts=str(known)), "true").ok


def test_policy_off_and_common_args_override(lab: Lab, tmp_path: Path) -> None:
    empty = str(tmp_path / "none")
    assert run_once(lab.target(lab.node), lab.options(known_hosts=empty, host_key_policy="off"), "true").ok
    target = lab.target(lab.node, common_args="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null")
    assert run_once(target, lab.options(known_hosts=empty), "true").ok


def test_ssh_config_host_key_settings_apply_when_the_inventory_sets_none(lab: Lab, tmp_path: Path) -> None:
    known = tmp_path / "from_config"
    known.write_text(lab.node.known_hosts_line())
    strict = write_config(tmp_path, f"Host {NODE}\n  StrictHostKeyChecking yes\n  UserKnownHostsFile {known}\n")
    assert run_once(lab.target(lab.node), lab.options(known_hosts=None, ssh_config=strict), "true").ok
    known.write_text("")
    error = expect_error("host-key-unknown", lab.target(lab.node), lab.options(known_hosts=None, ssh_config=strict))
    assert str(known) in str(error)
    off = write_config(tmp_path, f"Host {NODE}\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n")
    assert run_once(lab.target(lab.node), lab.options(known_hosts=None, ssh_config=off), "true").ok


def test_inventory_host_key_settings_beat_the_ssh_config(lab: Lab, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("")
    off = write_config(tmp_path, f"Host {NODE}\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n")
    options = lab.options(known_hosts=str(empty), host_key_policy="strict", ssh_config=off)
    error = expect_error("host-key-unknown", lab.target(lab.node), options)
    assert str(empty) in str(error)


def test_unknown_strict_host_key_checking_in_ssh_config_is_one_line_error(lab: Lab, tmp_path: Path) -> None:
    config = write_config(tmp_path, f"Host {NODE}\n  StrictHostKeyChecking sometimes\n")
    error = expect_error("config", lab.target(lab.node), lab.options(ssh_config=config))
    assert "StrictHostKeyChecking=sometimes in the ssh config" in str(error)


# --- network failures --------------------------------------------------------------------------------------


def test_connection_refused(lab: Lab) -> None:
    port = free_port(NODE)
    error = expect_error("unreachable", lab.target(lab.node, port=port), lab.options())
    assert f"{NODE}:{port}" in str(error) and "connection refused" in str(error)


def test_silent_server_times_out(lab: Lab) -> None:
    with socket.socket() as silent:  # accepts TCP, never sends an SSH banner
        silent.bind((NODE, 0))
        silent.listen(1)
        started = time.monotonic()
        expect_error("timeout", lab.target(lab.node, port=silent.getsockname()[1]), lab.options(connect_timeout=0.5))
        assert time.monotonic() - started < 3.0


def test_unresolvable_name(lab: Lab) -> None:
    # Python's IDNA codec rejects a 64-character label before any lookup: no DNS packet leaves the machine.
    expect_error("resolve", lab.target(lab.node, hostname="a" * 64 + ".invalid"), lab.options())


# --- pool ------------------------------------------------------------------------------------------------------


def test_pool_opens_one_connection_per_host_and_isolates_failures(lab: Lab) -> None:
    bastion = lab.target(lab.bastion1, name="bastion")
    targets = [
        lab.target(lab.node, name="node-a", jump=bastion),
        lab.target(lab.bastion2, name="node-b", jump=bastion),
        lab.target(lab.node, name="node-dead", port=free_port(NODE)),
        lab.target(lab.node, name="node-nokey", key_file="/nonexistent/key"),
    ]
    with Pool(targets, lab.options(), max_workers=8) as pool:
        for _ in range(5):
            results = pool.map(lambda conn: conn.run("echo $SSH_CONNECTION").stdout.split()[2])
        crashed = pool.map(lambda conn: 1 / 0, names=["node-a"])
        again = pool.connection("node-a").run("true")
        opened = pool.connections_opened
    assert results["node-a"] == NODE and results["node-b"] == BASTION2
    assert isinstance(results["node-dead"], SSHError) and results["node-dead"].kind == "unreachable"
    assert isinstance(results["node-nokey"], SSHError) and results["node-nokey"].kind == "auth"
    assert isinstance(crashed["node-a"], SSHError) and crashed["node-a"].kind == "error"
    assert again.ok
    assert opened == 3  # bastion once, shared by node-a and node-b; the dead host opened nothing


def test_pool_rejects_duplicate_names(lab: Lab) -> None:
    with pytest.raises(SSHError):
        Pool([lab.target(lab.node), lab.target(lab.node)], lab.options())


# --- parsing (no sshd needed) ----------------------------------------------------------------------------


def test_parse_common_args() -> None:
    parsed = ssh_config.parse_common_args(
        "-C -o ProxyCommand='ssh -W %h:%p -o A=B bastion' -oStrictHostKeyChecking=no "
        "-o 'UserKnownHostsFile /dev/null' -J u@b:2,c -p 2222 -i k1 -i k2 -o StrictHostKeyChecking=yes"
    )
    assert parsed == {
        "proxycommand": "ssh -W %h:%p -o A=B bastion",
        "stricthostkeychecking": "no",  # first value wins, as in ssh
        "userknownhostsfile": "/dev/null",
        "proxyjump": "u@b:2,c",
        "port": "2222",
        "identityfile": ["k1", "k2"],
    }
    with pytest.raises(ssh_config.SSHConfigError):
        ssh_config.parse_common_args("-o 'unterminated")


def test_parse_jump_spec() -> None:
    hops = ssh_config.parse_jump_spec("a, u@b:2222,ssh://c:1,[::1]:5")
    assert [(h.user, h.host, h.port) for h in hops] == [
        (None, "a", None),
        ("u", "b", 2222),
        (None, "c", 1),
        (None, "::1", 5),
    ]
    assert ssh_config.parse_jump_spec("none") == []
    with pytest.raises(ssh_config.SSHConfigError):
        ssh_config.parse_jump_spec("b:port")


def test_include_relative_to_top_config_and_missing_globs_ignored(tmp_path: Path) -> None:
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "a.conf").write_text("Host n1\n  User alice\n  Include deeper\n")
    (tmp_path / "deeper").write_text("  Port 2200\n")
    top = tmp_path / "config"
    top.write_text("Include inc/*.conf nothing-*.conf\nHost *\n  User nobody\n")
    config = ssh_config.load(str(top))
    assert config.lookup("n1")["user"] == "alice" and config.lookup("n1")["port"] == "2200"
    assert config.lookup("other")["user"] == "nobody"
    assert ssh_config.load(str(tmp_path / "absent")).lookup("x") == {"hostname": "x"}


def test_target_repr_hides_passwords() -> None:
    target = Target(name="n", hostname="h", password="s3cret-a", become_password="s3cret-b")
    assert "s3cret" not in repr(target)
