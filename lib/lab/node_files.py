"""Files a node shows its SSH sessions in place of the machine's own: /etc/machine-id and nmcli.

All namespaces share the machine's filesystem, so without this every lab node would report the same
/etc/machine-id, like VMs cloned from one image. Each node's sshd bind-mounts its own machine-id file at
start (in its private mount namespace); faults then rewrite that file in place, which the bind mount
shows at once. `nm-managed` puts an `nmcli` stand-in on the node's PATH that lists the VXLAN device as
NetworkManager's. The machine's files never change.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from .errors import LabError
from .faults import Desired
from .state import LabNode, LabState

MACHINE_ID = Path("/etc/machine-id")


def machine_id_path(state: LabState, node: LabNode) -> Path:
    return state.state_dir / "nodes" / node.name / "machine-id"


def bind_machine_id(state: LabState, node: LabNode) -> str:
    """Shell for the node's sshd start script (before it execs sshd); nothing when the machine has no
    /etc/machine-id to cover."""
    if not MACHINE_ID.exists():
        return ""
    return f"mount --bind {shlex.quote(str(machine_id_path(state, node)))} {MACHINE_ID}; "


def check(want: Desired) -> None:
    """Refuse `dup-machine-id` up front on a machine without /etc/machine-id: no node could show it."""
    if not MACHINE_ID.exists() and len(set(want.machine_ids.values())) < len(want.machine_ids):
        raise LabError(f"dup-machine-id: this machine has no {MACHINE_ID}, so the lab nodes have none to share")


def write(state: LabState, want: Desired) -> None:
    for node in state.nodes:
        path = machine_id_path(state, node)
        content = want.machine_ids[node.name] + "\n"
        if not path.exists() or path.read_text() != content:
            with open(path, "r+" if path.exists() else "w") as handle:  # same inode: the bind mount follows
                handle.truncate(0)
                handle.write(content)
        shim = state.state_dir / "nodes" / node.name / "bin" / "nmcli"
        if node.name in want.nm_managed:
            shim.write_text(_nmcli_script(state.device))
            shim.chmod(0o755)
        else:
            shim.unlink(missing_ok=True)


def _nmcli_script(device: str) -> str:
    listing = shlex.quote(f"lo:unmanaged\neth0:unmanaged\n{device}:connected (externally)")
    return f"""#!/bin/sh
# vxlan lab stand-in for nmcli (fault nm-managed): NetworkManager lists {device} as its own.
if [ "$*" = "-t -f DEVICE,STATE device" ]; then printf '%s\\n' {listing}; exit 0; fi
echo "nmcli (vxlan lab stand-in): only 'nmcli -t -f DEVICE,STATE device' is supported" >&2
exit 1
"""
