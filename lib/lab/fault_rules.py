"""The parts of faults that live outside the VXLAN device: firewalls, offloads, NAT rules, kernel shims.

Each `apply_*` first removes what the lab put there before, so calling it with the current fault set is
both "add a fault" and "clear faults".
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from .faults import Desired
from .run import run, run_many
from .state import LabState

TABLE = "vxlabfault"
UNAME = "/usr/bin/uname"
OSRELEASE = "/proc/sys/kernel/osrelease"
PROC_VERSION = "/proc/version"


def bridge_table(instance: int) -> str:
    return f"vxlab{instance}fault"


def apply_blocked(state: LabState, want: Desired) -> None:
    """Drop VXLAN in the network (root-ns bridge), like a security group: the receiver sees nothing."""
    table = bridge_table(state.instance)
    run(["nft", "delete", "table", "bridge", table], check=False)
    if not want.blocked:
        return
    rules = []
    for saddr, daddr in want.blocked:
        match = f"ip saddr {saddr} " if saddr else ""
        rules.append(f"    {match}ip daddr {daddr} udp dport {state.port} counter drop")
    text = (f"table bridge {table} {{\n  chain forward {{\n    type filter hook forward priority 0; policy accept;\n"
            + "\n".join(rules) + "\n  }\n}\n")
    run(["nft", "-f", "-"], input=text, what="installing the blocked-port rules")


def apply_bad_checksum(state: LabState, want: Desired) -> None:
    """netdev egress on the sender's eth0 rewrites the outer UDP checksum to 0xffff (lab-notes 3d)."""
    run_many([(["ip", "netns", "exec", n.netns, "nft", "delete", "table", "netdev", TABLE], None, n.name)
              for n in state.nodes], check=False)
    jobs = []
    for name, daddrs in want.bad_checksum.items():
        rules = [f"    ip protocol udp {f'ip daddr {d} ' if d else ''}udp dport {state.port} counter "
                 "udp checksum set 0xffff" for d in daddrs]
        text = (f"table netdev {TABLE} {{\n  chain egress {{\n    type filter hook egress device \"eth0\" "
                "priority 0; policy accept;\n" + "\n".join(rules) + "\n  }\n}\n")
        jobs.append((["ip", "netns", "exec", state.node(name).netns, "nft", "-f", "-"], text,
                     f"bad-checksum rules on {name}"))
    run_many(jobs)


def apply_random_fully(state: LabState, want: Desired, previous: set[str]) -> None:
    """kube-proxy's masquerade rule with --random-fully (incident 004); the nodes hold no other NAT rules."""
    flush = "*nat\nCOMMIT\n"
    rules = ("*nat\n:KUBE-POSTROUTING - [0:0]\n-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" "
             "-j KUBE-POSTROUTING\n-A KUBE-POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE --random-fully\n"
             "COMMIT\n")
    jobs = [(["ip", "netns", "exec", state.node(name).netns, "iptables-restore"],
             rules if name in want.random_fully else flush, f"NAT rules on {name}")
            for name in sorted(previous | want.random_fully)]
    run_many(jobs)


def apply_offload(state: LabState, want: Desired) -> None:
    run_many([(["ip", "netns", "exec", state.node(name).netns, "ethtool", "-K", state.device,
                "tx-checksum-ip-generic", value], None, f"offload on {name}") for name, value in want.offload.items()])


def apply_kernel(state: LabState, want: Desired, real_release: str) -> None:
    """Bind-mount a uname shim and osrelease/version files in the node's own mount namespace only."""
    for name, paths in list(state.mounts.items()):
        node = state.node(name)
        for path in reversed(paths):
            _in_node(node.sshd_pid, ["umount", path], f"unmounting {path} on {name}", check=False)
        del state.mounts[name]
    for name, release in want.kernel.items():
        node = state.node(name)
        shim_dir = state.state_dir / "nodes" / name / "kernel"
        shim_dir.mkdir(parents=True, exist_ok=True)
        real_uname = state.state_dir / "uname.real"
        if not real_uname.exists():
            shutil.copy2(UNAME, real_uname)
        version = Path(PROC_VERSION).read_text().replace(real_release, release, 1)
        (shim_dir / "osrelease").write_text(release + "\n")
        (shim_dir / "version").write_text(version)
        shim = shim_dir / "uname"
        shim.write_text(_uname_shim(str(real_uname), release))
        shim.chmod(0o755)
        mounts = []
        for src, dst in ((shim, UNAME), (shim_dir / "osrelease", OSRELEASE), (shim_dir / "version", PROC_VERSION)):
            _in_node(node.sshd_pid, ["mount", "--bind", str(src), dst], f"faking the kernel on {name}")
            mounts.append(dst)
        state.mounts[name] = mounts


def _uname_shim(real: str, release: str) -> str:
    """`uname -r` and `uname -a` report the fake release; everything else is the real uname."""
    q = shlex.quote
    return f"""#!/bin/sh
# vxlan lab: kernel fault shim (fake release {release})
real={q(real)}
case "$1" in
  -r|--kernel-release) echo {q(release)} ;;
  -a|--all) echo "$($real -s) $($real -n) {release} $($real -v) $($real -m) $($real -o)" ;;
  *) exec "$real" "$@" ;;
esac
"""


def _in_node(pid: int, argv: list[str], what: str, check: bool = True) -> None:
    run(["nsenter", "-t", str(pid), "-m", "--", *argv], what=what, check=check)


def remove_all(state: LabState) -> None:
    """Root-namespace leftovers of faults (the per-node ones vanish with the namespaces)."""
    run(["nft", "delete", "table", "bridge", bridge_table(state.instance)], check=False)
