"""Benchmark: loading an inventory with each reader (issue 19), at 6 and 1,000 hosts.

Run from the project root:  python3 bench/inventory_bench.py [--sizes 6,1000] [--rounds 5]
Each measurement is a fresh Python process (as a run of the suite pays it): the time of
`vxlan_conformance.inventory.load()` including its imports, and the import of ansible-core alone.
The inventory is kubespray-shaped: inventory.ini (all, kube_control_plane, etcd, kube_node), group_vars/all
and group_vars/k8s_cluster with a few templated values. Prints a Markdown table; nothing is contacted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MEASURE = """
import json, sys, time
started = time.perf_counter()
from vxlan_conformance.inventory import load
inventory = load(sys.argv[1], reader=sys.argv[2])
loaded = time.perf_counter() - started
print(json.dumps({"seconds": loaded, "hosts": len(inventory.hosts), "nodes": len(inventory.nodes)}))
"""
IMPORT = """
import json, time
started = time.perf_counter()
from ansible.inventory.manager import InventoryManager
from ansible.vars.manager import VariableManager
from ansible.template import Templar
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def write_inventory(folder: Path, hosts: int) -> Path:
    names = [f"node{i}" for i in range(1, hosts + 1)]
    control = names[: min(3, hosts)]
    lines = ["[all]"]
    lines += [f"{n} ansible_host=198.18.{i // 250}.{i % 250 + 1} ip=198.19.{i // 250}.{i % 250 + 1}"
              for i, n in enumerate(names)]
    lines += ["", "[kube_control_plane]", *control, "", "[etcd]", *control, "", "[kube_node]", *names, ""]
    (folder / "inventory.ini").write_text("\n".join(lines))
    (folder / "group_vars" / "all").mkdir(parents=True)
    (folder / "group_vars" / "all" / "all.yml").write_text(
        "ansible_user: ubuntu\nansible_become: true\nbastion_user: \"{{ ansible_user }}\"\n")
    (folder / "group_vars" / "k8s_cluster").mkdir()
    (folder / "group_vars" / "k8s_cluster" / "k8s-cluster.yml").write_text(
        "kube_network_plugin: flannel\nflannel_vxlan_port: 8472\nvxlan_probe_port: 18472\n")
    return folder


def run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True,
                         cwd=ROOT, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="6,1000")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rows = ["| hosts | reader | load incl. imports, median (min-max) of N fresh processes |", "|---|---|---|"]
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            folder = write_inventory(Path(tmp), size)
            for reader in ("builtin", "ansible"):
                times = [run(MEASURE, str(folder), reader)["seconds"] for _ in range(args.rounds)]
                rows.append(f"| {size} | {reader} | {statistics.median(times):.3f} s "
                            f"({min(times):.3f}-{max(times):.3f}), N={args.rounds} |")
    imports = [run(IMPORT)["seconds"] for _ in range(args.rounds)]
    rows.append(f"| - | ansible-core import alone | {statistics.median(imports):.3f} s "
                f"({min(imports):.3f}-{max(imports):.3f}), N={args.rounds} |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
