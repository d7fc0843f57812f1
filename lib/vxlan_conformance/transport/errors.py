"""The transport's one error type: one line naming the host, what failed and what to do, never a secret."""

from __future__ import annotations

from collections.abc import Iterable


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



def redact(text: str, secrets: Iterable[str | None]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return " ".join(text.split())  # one line, always


def short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
