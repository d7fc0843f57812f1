"""Real OpenSSH sshd instances on loopback (127.0.0.x, free ports) for transport tests.

Each sshd runs in its own mount namespace: /run is a private tmpfs (sshd needs /run/sshd) and
/etc/passwd, /etc/shadow, /etc/group and /etc/sudoers are bind-mounted copies that add the test
users. The machine's accounts and sudo rules are never changed, and when the last process of a
namespace exits its mounts are gone: nothing to clean up but the temp dir and the PIDs we keep.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
import pytest

SSHD = "/usr/sbin/sshd"
START_TIMEOUT_S = 10.0


def missing_requirements() -> str | None:
    """Why these fixtures cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (sshd, mount namespaces)"
    for tool in (SSHD, "unshare", "ssh-keygen", "openssl", "sudo"):
        if not shutil.which(tool):
            return f"{tool} not installed"
    return None


@dataclass(frozen=True)
class User:
    """A login that exists only inside the sshd mount namespaces."""

    name: str
    uid: int
    home: Path
    password: str = field(repr=False)
    sudo: str | None = None  # "password" | "nopasswd" | None


@dataclass
class Sshd:
    name: str
    address: str
    port: int
    host_public_key: paramiko.PKey
    log_path: Path
    process: subprocess.Popen

    def known_hosts_line(self, hashed: bool = False) -> str:
        host = f"[{self.address}]:{self.port}"
        if hashed:
            host = paramiko.HostKeys.hash_host(host)
        return f"{host} {self.host_public_key.get_name()} {self.host_public_key.get_base64()}\n"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def free_port(address: str) -> int:
    """A port nobody listens on right now (the kernel's choice)."""
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


def generate_key(path: Path) -> paramiko.PKey:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True, timeout=30
    )
    return paramiko.Ed25519Key.from_private_key_file(str(path))


def _free_uid(start: int, taken: set[int]) -> int:
    used = taken | {
        int(line.split(":")[2]) for line in Path("/etc/passwd").read_text().splitlines() if line.count(":") >= 6
    }
    uid = start
    while uid in used:
        uid += 1
    return uid


def _password_hash(password: str) -> str:
    done = subprocess.run(
        ["openssl", "passwd", "-6", "-stdin"], input=password, capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout.strip()


class SshdFactory:
    """Starts sshd instances sharing one set of test users, a client key and authorized_keys."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.chmod(0o711)  # test users must reach their homes and authorized_keys below it
        self.client_key_path = workdir / "client_ed25519"
        self.client_key = generate_key(self.client_key_path)
        self.other_key_path = workdir / "other_ed25519"  # a key no server accepts
        generate_key(self.other_key_path)
        self.users: dict[str, User] = {}
        self.servers: list[Sshd] = []
        self._etc = workdir / "etc"
        self._etc.mkdir()
        (workdir / "authorized_keys").mkdir(mode=0o755)
        self.add_user("root", uid=0, home=Path("/root"), password="")

    def add_user(
        self, name: str, *, uid: int | None = None, home: Path | None = None, password: str, sudo: str | None = None
    ) -> User:
        """Register a login (call before start()); every user accepts the client key."""
        if home is None:
            home = self.workdir / "home" / name
            home.mkdir(parents=True)
        user = User(
            name=name,
            uid=_free_uid(47800, {u.uid for u in self.users.values()}) if uid is None else uid,
            home=home,
            password=password,
            sudo=sudo,
        )
        if uid is None:
            os.chown(home, user.uid, user.uid)
        keys = self.workdir / "authorized_keys" / name
        keys.write_text(f"{self.client_key.get_name()} {self.client_key.get_base64()}\n")
        keys.chmod(0o644)
        self.users[name] = user
        self._write_account_files()
        return user

    def _write_account_files(self) -> None:
        extra = [u for u in self.users.values() if u.uid != 0]
        passwd = Path("/etc/passwd").read_text() + "".join(
            f"{u.name}:x:{u.uid}:{u.uid}:vxlan-conformance test:{u.home}:/bin/sh\n" for u in extra
        )
        group = Path("/etc/group").read_text() + "".join(f"{u.name}:x:{u.uid}:\n" for u in extra)
        shadow = Path("/etc/shadow").read_text() + "".join(
            f"{u.name}:{_password_hash(u.password)}:19000:0:99999:7:::\n" for u in extra
        )
        rules = {"password": "ALL=(ALL:ALL) ALL", "nopasswd": "ALL=(ALL:ALL) NOPASSWD: ALL"}
        sudoers = "Defaults env_reset\nDefaults timestamp_timeout=0\nroot ALL=(ALL:ALL) ALL\n" + "".join(
            f"{u.name} {rules[u.sudo]}\n" for u in extra if u.sudo
        )
        for name, text, mode in (
            ("passwd", passwd, 0o644),
            ("group", group, 0o644),
            ("shadow", shadow, 0o640),
            ("sudoers", sudoers, 0o440),
        ):
            path = self._etc / name
            path.write_text(text)
            path.chmod(mode)
        (self._etc / "empty").write_text("")

    def start(self, name: str, address: str, log_level: str = "DEBUG1") -> Sshd:
        """One sshd on address:<free port>; returns when it accepts connections.

        DEBUG1 logs direct-tcpip targets (proof a jump was used) but also leaks debug lines into
        root sessions' stderr; use VERBOSE for servers whose command output is asserted.
        """
        base = self.workdir / name
        base.mkdir()
        host_key = generate_key(base / "host_ed25519")
        port = free_port(address)
        config = base / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress {address}:{port}",
                    f"HostKey {base / 'host_ed25519'}",
                    "PidFile none",
                    "UsePAM no",
                    "StrictModes no",
                    "UseDNS no",
                    "PermitRootLogin yes",
                    "PasswordAuthentication yes",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    f"AuthorizedKeysFile {self.workdir / 'authorized_keys'}/%u",
                    "AllowTcpForwarding yes",
                    "PrintMotd no",
                    "PrintLastLog no",
                    "MaxStartups 200",
                    "MaxSessions 64",
                    f"LogLevel {log_level}",
                    "",
                ]
            )
        )
        etc = self._etc
        script = "; ".join(
            [
                "set -e",
                "mount -t tmpfs -o mode=0755 vxc-ssh-run /run",
                "mkdir -m 0755 /run/sshd",
                *(
                    f"mount --bind {shlex.quote(str(etc / f))} /etc/{f}"
                    for f in ("passwd", "group", "shadow", "sudoers")
                ),
                # root's .bashrc (pyenv init) costs ~110 ms per command (lab-notes item 2)
                f"if [ -f /root/.bashrc ]; then mount --bind {shlex.quote(str(etc / 'empty'))} /root/.bashrc; fi",
                f"exec {SSHD} -D -e -f {shlex.quote(str(config))}",
            ]
        )
        log_path = base / "sshd.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        server = Sshd(name, address, port, host_key, log_path, process)
        self.servers.append(server)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"sshd {name} exited with {process.returncode}: {server.log()[-500:]}")
            try:
                socket.create_connection((address, port), timeout=0.5).close()
                return server
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"sshd {name} not listening on {address}:{port} after {START_TIMEOUT_S} s"
                    ) from exc
                time.sleep(0.02)

    def close(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture(scope="module")
def sshd_factory() -> Iterator[SshdFactory]:
    """A factory whose servers and temp dir go away after the module, even when tests fail."""
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)
    workdir = Path(tempfile.mkdtemp(prefix="vxc-ssh-"))
    factory = None
    try:
        factory = SshdFactory(workdir)
        yield factory
    finally:
        if factory is not None:
            factory.close()
        shutil.rmtree(workdir, ignore_errors=True)
