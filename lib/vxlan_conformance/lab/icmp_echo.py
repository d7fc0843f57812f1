"""Standalone script run inside a node's netns: ICMP echo every target at once, print JSON.

Stdlib only and no package imports: it runs as `python -I -S icmp_echo.py TIMEOUT ADDR...` because the
lab machine has no `ping` binary.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import struct
import sys
import time


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_all(targets: list[str], timeout: float) -> dict[str, bool]:
    """One echo request per target, then collect replies until all answered or timeout."""
    ident = os.getpid() & 0xFFFF
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    for seq, target in enumerate(targets):
        header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        payload = b"vxlan-lab"
        packet = struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, seq) + payload
        with contextlib.suppress(OSError):  # no route: simply unanswered
            sock.sendto(packet, (target, 0))
    answered: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(answered) < len(targets):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            break
        data, (source, _) = sock.recvfrom(2048)
        icmp = data[(data[0] & 0x0F) * 4:]
        if len(icmp) >= 8 and icmp[0] == 0 and struct.unpack("!H", icmp[4:6])[0] == ident:
            answered.add(source)
    return {target: target in answered for target in targets}


if __name__ == "__main__":
    print(json.dumps(echo_all(sys.argv[2:], float(sys.argv[1]))))
