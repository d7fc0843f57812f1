"""All hosts of a run: one connection per host, reused, connected in parallel."""

from __future__ import annotations

import resource
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from vxlan_conformance.transport.connection import Connection
from vxlan_conformance.transport.errors import SSHError, redact, short
from vxlan_conformance.transport.hub import Hub
from vxlan_conformance.transport.resolve import SSHOptions, Target

T = TypeVar("T")
_FDS_PER_CONNECTION = 4  # the socket, a channel's wake-up pipe (2), and a spare for a proxy / jump


def _allow_descriptors(needed: int) -> None:
    """Raise this process's open-file limit towards `needed` (up to the hard limit): a 1000-node run
    holds a socket and a pipe per node, past the common soft limit of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        ceiling = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, ceiling), hard))



class Pool:
    """One connection per host per process, reused; thread-safe; connects hosts in parallel."""

    def __init__(self, targets: Iterable[Target], options: SSHOptions, max_workers: int = 64) -> None:
        self.options = options
        self.max_workers = max_workers
        self._hub = Hub(options)
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
                    name, "error", f"{name}: {type(exc).__name__}: {short(redact(str(exc), secrets), 200)}"
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

