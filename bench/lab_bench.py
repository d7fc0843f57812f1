"""Wall time of `Lab.up` / `Lab.down` at 10, 50 and 100 nodes; writes the "Lab up/down" section of
bench/RESULTS.md. Target (2-core machine): 100 nodes up <= 10 s, down <= 5 s.

    python bench/lab_bench.py [--instance 3] [--sizes 10 50 100] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from results_md import write_section  # noqa: E402  (bench/ is the script's directory)

from vxlan_conformance.lab import Lab  # noqa: E402

SECTION = "## Lab up/down"


def measure(instance: int, sizes: list[int], repeat: int) -> list[tuple[int, float, float]]:
    lab = Lab(instance)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            ups, downs = [], []
            for _ in range(repeat):
                start = time.perf_counter()
                lab.up(nodes=size, inventory_path=f"{tmp}/lab.yaml")
                ups.append(time.perf_counter() - start)
                start = time.perf_counter()
                lab.down()
                downs.append(time.perf_counter() - start)
            rows.append((size, statistics.median(ups), statistics.median(downs)))
            print(f"{size:4d} nodes: up {rows[-1][1]:.2f} s, down {rows[-1][2]:.2f} s", flush=True)
    return rows


def render(rows: list[tuple[int, float, float]], repeat: int) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [SECTION, "",
             f"Machine: {os.cpu_count()} CPUs (nproc), kernel {platform.release()}, {stamp}. "
             f"`python bench/lab_bench.py`, median of {repeat} runs, flannel preset, no faults; "
             "up = namespaces + VXLAN state + sshd listening + etcd leases + inventory. "
             "Target for 100 nodes: up <= 10 s, down <= 5 s.", "",
             "| nodes | up (s) | down (s) |", "|---:|---:|---:|"]
    lines += [f"| {size} | {up:.2f} | {down:.2f} |" for size, up, down in rows]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instance", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("lab_bench: must run as root", file=sys.stderr)
        return 2
    rows = measure(args.instance, args.sizes, args.repeat)
    write_section(SECTION, render(rows, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
