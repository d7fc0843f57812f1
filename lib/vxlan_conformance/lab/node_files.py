"""Files a node shows its SSH sessions in place of the machine's own: /etc/machine-id and nmcli.

All namespaces share the machine's filesystem, so without this every lab node would report the same
/etc/machine-id, like VMs cloned from one image. Each node's sshd bind-mounts its own machine-id file at
start (in its private mount namespace); faults then rewrite that file in place, which the bind mount
shows at once. Every node gets an `nmcli` stand-in too (the machine's own would answer for the machine's
NetworkManager): it lists the VXLAN device as unmanaged, or with `nm-managed` as NetworkManager's. The
machine's files never change.
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
    /etc/machine-id to cover. A failed bind stops sshd: a node showing the machine's id would look cloned."""
    if not MACHINE_ID.exists():
        return ""
    return f"mount --bind {shlex.quote(str(machine_id_path(state, node)))} {MACHINE_ID} && "


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
        script = _nmcli_script(state.device, "connected (externally)" if node.name in want.nm_managed
                               else "unmanaged")
        if not shim.exists() or shim.read_text() != script:
            draft = shim.with_suffix(".new")
            draft.write_text(script)
            draft.chmod(0o755)
            draft.replace(shim)  # a session running nmcli meanwhile sees the old or the new one, whole


def _nmcli_script(device: str, state: str) -> str:
    listing = shlex.quote(f"lo:unmanaged\neth0:unmanaged\n{device}:{state}")
    return f"""#!/bin/sh
# vxlan lab stand-in for nmcli: NetworkManager lists {device} as {state}.
if [ "$*" = "-t -f DEVICE,STATE device" ]; then printf '%s\\n' {listing}; exit 0; fi
echo "nmcli (vxlan lab stand-in): only 'nmcli -t -f DEVICE,STATE device' is supported" >&2
exit 1
"""
