"""Benchmark: the full mesh (every directed pair, all agents at once) on N agt- namespace nodes.

Run as root from the project root:  python3 bench/mesh_bench.py --nodes 20 [--python /usr/bin/python3]
Appends one JSON line per run to bench/mesh_bench.results.jsonl. Target (ARCHITECTURE): 100 nodes =
9,900 pairs in <= 10 s wall; on this 2-core machine all N agents share two CPUs, so the figure is a bound.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.agent_netns import Overlay  # noqa: E402
from vxlan_conformance.mesh.agents import build_plans, pair_evidence, run_mesh  # noqa: E402

RESULTS = Path(__file__).with_name("mesh_bench.results.jsonl")


def passed(item) -> bool:
    return (item.udp_echo.get("replied") == len(item.udp_echo.get("per_size", {})) > 0
            and item.vxlan_frame.get("reply_seen") and item.overlay_ping.get("reply_seen")
            and item.df_probe.get("reply_seen"))


def bench(nodes: int, python: str, timeout_s: float) -> dict:
    overlay = Overlay(nodes, python=python)
    started = time.perf_counter()
    overlay.build()
    try:
        build_s = time.perf_counter() - started
        pairs = [(a.name, b.name) for a in overlay.nodes for b in overlay.nodes if a is not b]
        started = time.perf_counter()
        plans = build_plans(overlay.nodes, pairs, 18472, deadline_s=timeout_s + 10)
        plan_s = time.perf_counter() - started
        started = time.perf_counter()
        reports = run_mesh(plans, overlay.launch, timeout_s=timeout_s)
        mesh_s = time.perf_counter() - started
        evidence = pair_evidence(plans, reports)
    finally:
        overlay.close()
    failed_nodes = {name: report["error"] for name, report in reports.items() if "error" in report}
    sent = [report["sent"]["elapsed_s"] for report in reports.values() if "sent" in report]
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "host_cpus": os.cpu_count(), "kernel": platform.release(),
        "python_on_nodes": python, "nodes": nodes, "pairs": len(pairs), "build_s": round(build_s, 3),
        "plan_s": round(plan_s, 3), "mesh_wall_s": round(mesh_s, 3),
        "slowest_agent_sent_s": max(sent, default=None), "pairs_passed": sum(map(passed, evidence.values())),
        "failed_nodes": failed_nodes,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--python", default="/usr/bin/python3", help="interpreter the agents run on")
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("mesh_bench: needs root (builds network namespaces); run it with sudo", file=sys.stderr)
        return 2
    result = bench(args.nodes, args.python, args.timeout)
    print(json.dumps(result, indent=2))
    with RESULTS.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(result, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
