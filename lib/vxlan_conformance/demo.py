"""The README's main job: bring up the embedded lab, run the suite against it as a user would
(`pytest -n auto`), take the lab down. With --incidents, one lab per field incident (seeds 000-004),
each broken the way the incident was, and a table of what the suite named for each.

    python -m vxlan_conformance.demo                # healthy 4-node lab: expect all green
    python -m vxlan_conformance.demo --incidents    # the five incidents: expect each one named by its code
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from vxlan_conformance import PROJECT_ROOT
from vxlan_conformance.lab import Lab, LabError

REPORTS = PROJECT_ROOT / "reports"


@dataclass(frozen=True)
class Incident:
    seed: str
    title: str
    faults: tuple[str, ...]
    expected: tuple[str, ...]       # the codes that name the incident
    port: int | None = None


INCIDENTS = (
    Incident("000", "cloned arm64 VMs: every flannel.1 has the same MAC",
             ("dup-vtep-mac@node1,node2,node3",), ("VTEP_MAC_DUPLICATE",)),
    Incident("001", "Vagrant: every node advertises the NAT NIC's address",
             ("wrong-public-ip@all",), ("PUBLIC_IP_DUPLICATE", "PUBLIC_IP_MISMATCH")),
    Incident("002", "security group drops UDP 8475 in one direction",
             ("blocked-port@node3->node1",), ("UDP_PORT_BLOCKED",), port=8475),
    Incident("003", "Kylin 4.19.90-52.49 puts bad UDP checksums on the wire",
             ("kernel=4.19.90-52.49.v2207.ky10.x86_64@node2", "bad-checksum@node2"),
             ("KERNEL_KNOWN_BAD", "OUTER_CHECKSUM_BAD")),
    Incident("004", "CentOS 7.6 + kube-proxy --random-fully + TX offload: 63 s Service delay",
             ("kernel=3.10.0-957.el7.x86_64@all", "random-fully@all", "offload=on@all", "bad-checksum@node2"),
             ("CHECKSUM_OFFLOAD_RISK", "OUTER_CHECKSUM_BAD")),
)


def run_suite(inventory: str, reports: Path, extra: list[str]) -> int:
    """The suite as a user runs it, then the single-file HTML report of that run."""
    command = [sys.executable, "-m", "pytest", "-n", "auto", "--inventory", inventory,
               "--reports-dir", str(reports), *extra]
    print("$ " + " ".join(command), flush=True)
    status = subprocess.run(command, cwd=PROJECT_ROOT).returncode
    subprocess.run([sys.executable, "-m", "vxlan_conformance.report", "html", "--reports-dir", str(reports)],
                   cwd=PROJECT_ROOT)
    return status


def healthy(lab: Lab, nodes: int, reports: Path, extra: list[str]) -> int:
    inventory = None if lab.instance == 0 else str(reports / "lab.yaml")
    state = lab.up(nodes=nodes, inventory_path=inventory)
    return run_suite(state.inventory_path, reports, extra)


def incidents(lab: Lab, nodes: int, reports_root: Path, extra: list[str]) -> int:
    rows = []
    for incident in INCIDENTS:
        print(f"\n=== seed {incident.seed}: {incident.title}", flush=True)
        reports = reports_root / "incidents" / incident.seed
        state = lab.up(nodes=nodes, faults=list(incident.faults), port=incident.port,
                       inventory_path=str(reports / "lab.yaml"))
        run_suite(state.inventory_path, reports, ["-q", *extra])
        found = _codes(reports / "summary.json")
        rows.append((incident, found, all(code in found for code in incident.expected)))
    print("\nseed  incident                                                   named by the suite")
    for incident, found, ok in rows:
        mark = "ok  " if ok else "MISS"
        print(f"{incident.seed}   {incident.title[:58]:58} {mark} {', '.join(sorted(found)) or '-'}")
    return 0 if all(ok for _, _, ok in rows) else 1


def _codes(summary: Path) -> set[str]:
    if not summary.exists():
        return set()
    results = json.loads(summary.read_text())["results"]
    return {code for r in results if r["status"] in ("failed", "error") for code in r["codes"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vxlan_conformance.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", action="store_true", help="reproduce the five field incidents")
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    parser.add_argument("--instance", type=int, default=0, help="lab instance (0..7)")
    parser.add_argument("--reports-dir", type=Path, default=REPORTS)
    args, extra = parser.parse_known_args(argv)
    lab = Lab(instance=args.instance)
    try:
        return (incidents if args.incidents else healthy)(lab, args.nodes, args.reports_dir, extra)
    except LabError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 2
    finally:
        if not args.keep:
            lab.down()


if __name__ == "__main__":
    sys.exit(main())
