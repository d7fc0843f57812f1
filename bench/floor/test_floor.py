"""The least any pytest-xdist tool that checks N nodes over SSH must do: start `pytest -n auto`, open
one SSH connection per node in parallel (host keys checked) and run one command on each. No check, no
traffic, no report. bench/suite_bench.py times it on the same lab as the suite and the testinfra
baseline: the baseline's wall divided by this one is the largest speed-up any such tool can show there.

Reads $VXLAN_FLOOR_HOSTS (comma-separated addresses), $VXLAN_FLOOR_USER, $VXLAN_FLOOR_KEY and
$VXLAN_FLOOR_KNOWN_HOSTS.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import paramiko


def _true_on(address: str, key: paramiko.PKey) -> int:
    client = paramiko.SSHClient()
    client.load_host_keys(os.environ["VXLAN_FLOOR_KNOWN_HOSTS"])
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(address, username=os.environ["VXLAN_FLOOR_USER"], pkey=key, timeout=10,
                       look_for_keys=False, allow_agent=False)
        _, stdout, _ = client.exec_command("true", timeout=10)
        return stdout.channel.recv_exit_status()
    finally:
        client.close()


def test_every_node_runs_one_command() -> None:
    addresses = os.environ["VXLAN_FLOOR_HOSTS"].split(",")
    key = paramiko.PKey.from_path(os.environ["VXLAN_FLOOR_KEY"])
    with ThreadPoolExecutor(max_workers=len(addresses)) as pool:
        codes = dict(zip(addresses, pool.map(lambda a: _true_on(a, key), addresses), strict=True))
    assert codes == dict.fromkeys(addresses, 0)
