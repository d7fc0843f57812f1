"""Opt-in, state-changing phase for clusters not installed yet: create a temporary VXLAN device on every
node, read the MAC the kernel (and udev's MACAddressPolicy) gives it, delete it. Cloned VMs without a
99-default.link get the same MAC on every node (seed 000) long before flannel ever runs.

The device is never brought up (no socket is bound, no packet sent) and is deleted by a shell trap on
exit, error and hang-up, so a failed or interrupted run leaves nothing behind.
"""

from __future__ import annotations

import re

from vxlan_conformance.collect.gather import Progress
from vxlan_conformance.model.rundata import RunData
from vxlan_conformance.transport import Connection, Pool, SSHError

DEVICE_PREFIX = "vxcp"   # + the shell's PID: unique per run and node, within IFNAMSIZ
SCRIPT = (
    'name="' + DEVICE_PREFIX + '$$"; trap \'ip link del "$name" 2>/dev/null\' EXIT HUP INT TERM; '
    'ip link add "$name" type vxlan id 4242 dstport 4789 || exit 3; '
    'command -v udevadm >/dev/null 2>&1 && udevadm settle -t 3 >/dev/null 2>&1; '
    'cat "/sys/class/net/$name/address"'
)
MAC = re.compile(r"^([0-9a-f]{2}(:[0-9a-f]{2}){5})$", re.M)


def run_predict_phase(pool: Pool, run: RunData, *, progress: Progress) -> None:
    if not run.options.get("predict"):
        return
    reachable = [host for host in run.nodes if host in run.facts]
    progress(f"predict: temporary VXLAN device on {len(reachable)} nodes (--allow-state-changes)")

    def one(conn: Connection) -> str:
        result = conn.run(SCRIPT)
        match = MAC.search(result.stdout)
        if result.exit_status != 0 or match is None:
            why = (result.stderr or result.stdout).strip().splitlines()[-1:] or [f"exit {result.exit_status}"]
            raise SSHError(conn.target.name, "error", f"{conn.target.name}: cannot create a test VXLAN device "
                                                      f"({why[0]})")
        return match.group(1)

    for host, outcome in pool.map(one, reachable).items():
        if isinstance(outcome, SSHError):
            run.predict_errors[host] = str(outcome)
        else:
            run.predicted_macs[host] = outcome
