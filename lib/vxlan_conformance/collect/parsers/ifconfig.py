"""`ifconfig <dev>` counters, named like /sys/class/net/<dev>/statistics so both sources compare.

The collect script reads sysfs; ifconfig is its fallback when /sys is not mounted, and the form in which
field reports show the "RX packets 0" symptom (seed 002). Both net-tools layouts are understood:
new (`RX packets 0  bytes 0 (0.0 B)`) and old/busybox (`RX packets:0 errors:0 dropped:0`).
"""

from __future__ import annotations

import re

# (direction, ifconfig word) -> sysfs statistics name
_NAMES = {
    ("RX", "packets"): "rx_packets", ("RX", "bytes"): "rx_bytes", ("RX", "errors"): "rx_errors",
    ("RX", "dropped"): "rx_dropped", ("RX", "overruns"): "rx_fifo_errors", ("RX", "frame"): "rx_frame_errors",
    ("TX", "packets"): "tx_packets", ("TX", "bytes"): "tx_bytes", ("TX", "errors"): "tx_errors",
    ("TX", "dropped"): "tx_dropped", ("TX", "overruns"): "tx_fifo_errors", ("TX", "carrier"): "tx_carrier_errors",
    ("TX", "collisions"): "collisions",
}
_PAIR = re.compile(r"\b(RX|TX|packets|bytes|errors|dropped|overruns|frame|carrier|collisions)\b:?\s*(\d+)?")


def parse_counters(text: str) -> dict[str, int]:
    """Counters of the single interface in `ifconfig <dev>` output.

    >>> parse_counters("RX packets:7 errors:0 dropped:1\\nRX bytes:0 (0.0 B)  TX bytes:9 (9.0 B)")
    {'rx_packets': 7, 'rx_errors': 0, 'rx_dropped': 1, 'rx_bytes': 0, 'tx_bytes': 9}
    """
    counters: dict[str, int] = {}
    for line in text.splitlines():
        direction = None
        for word, value in _PAIR.findall(line):
            if word in ("RX", "TX"):
                direction = word
            elif word == "collisions" and value:
                counters["collisions"] = int(value)
            elif direction and value and (direction, word) in _NAMES:
                counters.setdefault(_NAMES[(direction, word)], int(value))
    return counters
