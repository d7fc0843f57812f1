"""Command line: up, down, status, fault. Bad input is one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import cilium, faults, plan, subnets
from .errors import LabError
from .lab import Lab, preflight

FAULT_HELP = ("NAME[=VALUE]@TARGET (TARGET: nodeX, nodeX,nodeY, all, or nodeA->nodeB); faults: "
              + ", ".join(sorted(faults.NODE_FAULTS | faults.PAIR_FAULTS)) + " (README: The embedded lab)")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints usage over several lines; we print one
        raise LabError(f"{message} (see python -m vxlan_conformance.lab --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m vxlan_conformance.lab", description="Embedded VXLAN lab (root only).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    up = sub.add_parser("up", help="build (or rebuild) a lab")
    up.add_argument("--nodes", type=int, default=4)
    up.add_argument("--preset", choices=sorted(plan.PRESETS), default="flannel")
    up.add_argument("--port", type=int, default=None, help="VXLAN UDP port (default: the preset's)")
    up.add_argument("--cluster-view", choices=["kubectl", "etcd"], default="kubectl")
    up.add_argument("--fault", action="append", default=[], metavar="SPEC", help=FAULT_HELP)
    up.add_argument("--flanneld", default=None, metavar="VERSION|PATH",
                    help="run real upstream flanneld (v0.20.2: etcd v3; v0.12.0: etcd v2) in every node")
    up.add_argument("--etcd-prefix", default=None, metavar="KEY",
                    help="real flanneld's --etcd-prefix (default /coreos.com/network); the inventory says it")
    up.add_argument("--public-ip-overwrite", action="append", default=[], metavar="NODE",
                    help="real flanneld: NODE's public IP is a second address, as the "
                         "flannel.alpha.coreos.com/public-ip-overwrite annotation sets it")
    up.add_argument("--direct-routing", action="store_true",
                    help="real flanneld with DirectRouting over two routed underlay subnets")
    up.add_argument("--underlay-subnets", type=int, default=1, metavar="N",
                    help="nodes alternate over N (1 or 2) underlay subnets joined by a router namespace")
    up.add_argument("--vxlan-mode", choices=list(subnets.VXLAN_MODES), default="Always",
                    help="calico: the IPPool's vxlanMode (CrossSubnet: same-subnet peers routed without VXLAN)")
    up.add_argument("--cilium-version", choices=list(cilium.VERSIONS), default=None,
                    help=f"cilium: the Cilium its cilium-dbg stand-in answers as (default {cilium.DEFAULT_VERSION}; "
                         "1.18: no `bpf tunnel`, the tunnel endpoints are in `bpf ipcache list`)")
    up.add_argument("--calico-bpf", action="store_true",
                    help="calico: felix's eBPF dataplane (flow-based vxlan.calico, no FDB; lab/calico_bpf.py)")
    up.add_argument("--bpf-overlay-host-source-ip", choices=["TunnelAddress", "HostAddress"], default="TunnelAddress",
                    help="with --calico-bpf: felix's BPFOverlayHostSourceIP (HostAddress: no address on vxlan.calico)")
    up.add_argument("--inventory", default=None, help="inventory path (default inventory/lab.yaml)")
    for name in ("down", "status", "fault"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--instance", type=int, default=0)
        if name == "status":
            cmd.add_argument("--json", action="store_true")
        if name == "fault":
            cmd.add_argument("specs", nargs="*", metavar="SPEC", help=FAULT_HELP)
            cmd.add_argument("--clear", action="store_true", help="remove every fault")
    up.add_argument("--instance", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return _dispatch(args)
    except LabError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lab: interrupted", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    preflight()
    lab = Lab(args.instance)
    if args.command == "up":
        inventory = str(Path(args.inventory).resolve()) if args.inventory else None
        state = lab.up(nodes=args.nodes, preset=args.preset, port=args.port, faults=args.fault,
                       inventory_path=inventory, cluster_view=args.cluster_view, flanneld=args.flanneld,
                       etcd_prefix=args.etcd_prefix, public_ip_overwrite=args.public_ip_overwrite,
                       direct_routing=args.direct_routing, underlay_subnets=args.underlay_subnets,
                       vxlan_mode=args.vxlan_mode, cilium_version=args.cilium_version, calico_bpf=args.calico_bpf,
                       bpf_host_source=args.bpf_overlay_host_source_ip)
        print(f"lab {state.instance} up: {len(state.nodes)} nodes, "
              f"{_preset(state.preset, state.calico_bpf, state.bpf_host_source, state.cilium_version)} "
              f"{state.device} port {state.port}, inventory {state.inventory_path}")
    elif args.command == "down":
        lab.down()
        print(f"lab {args.instance} down")
    elif args.command == "fault":
        if args.clear == bool(args.specs):
            raise LabError("give fault SPECs or --clear (not both, not neither)")
        state = lab.clear_faults() if args.clear else lab.fault(args.specs)
        print(f"lab {state.instance} faults: {', '.join(state.faults) or 'none'}")
    else:
        status = lab.status()
        print(json.dumps(status, indent=1) if args.json else _table(status))
    return 0


def _table(status: dict) -> str:
    if not status["up"]:
        return f"lab {status['instance']} is down"
    preset = _preset(status["preset"], status.get("calico_bpf"), status.get("bpf_host_source"),
                     status.get("cilium_version"))
    head = (f"lab {status['instance']}: {preset} {status['device']} port {status['port']} "
            f"vni {status['vni']}; faults: {', '.join(status['faults']) or 'none'}{_underlay(status)}")
    rows = [("NODE", "ADDRESS", "NETNS", "MAC", "SSHD PID")]
    rows += [(n["name"], n["address"], n["netns"], n["vtep_mac"],
              f"{n['sshd_pid']}{'' if n['sshd_alive'] else ' (dead)'}") for n in status["nodes"]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join([head, *lines])


def _underlay(status: dict) -> str:
    """What else shapes this lab: routed underlay subnets, Calico's vxlanMode, real flanneld."""
    underlay, flanneld = status["underlay"], status["flanneld"]
    parts = [f"{underlay['subnets']} routed underlay subnets"] if underlay["subnets"] > 1 else []
    parts += ["DirectRouting"] if underlay["direct_routing"] else []
    parts += [f"vxlanMode {underlay['vxlan_mode']}"] if underlay["vxlan_mode"] else []
    if flanneld and flanneld["version"] != "imitation":
        parts.append(f"flanneld {flanneld['version']} (running on {len(flanneld['alive'])} nodes)")
    return "; " + ", ".join(parts) if parts else ""


def _preset(name: str, bpf: bool | None, host_source: str | None = None, cilium_version: str | None = None) -> str:
    """`calico (eBPF)` for felix's eBPF mode (`calico (eBPF, HostAddress)` without tunnel addresses on the
    device), `cilium v1.18` for the Cilium the stand-in answers as: what `up` and `status` print."""
    if cilium_version:
        return f"{name} v{cilium_version}"
    if not bpf:
        return name
    return f"{name} (eBPF, HostAddress)" if host_source == "HostAddress" else f"{name} (eBPF)"
