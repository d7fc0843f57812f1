"""A real etcd in node1's netns holding flannel's own keys (/coreos.com/network/...).

Leases are written in two HTTP requests through etcd's v3 JSON gateway (from the root namespace over the
lab bridge), not one etcdctl process per node.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.error
import urllib.request

from . import plan
from .errors import LabError
from .faults import Desired
from .state import LabState

ETCD = "/usr/bin/etcd"
PREFIX = "/coreos.com/network/"
CLIENT_PORT = 2379


def endpoint(state: LabState) -> str:
    return f"http://{state.nodes[0].address}:{CLIENT_PORT}"


def start(state: LabState, extra: tuple[str, ...] = ()) -> subprocess.Popen:
    node1 = state.nodes[0]
    data_dir = state.state_dir / "etcd"
    with open(state.state_dir / "etcd.log", "wb") as log:  # a file, not a pipe: etcd outlives the CLI
        proc = subprocess.Popen(
            ["ip", "netns", "exec", node1.netns, ETCD, "--name", node1.name, "--data-dir", str(data_dir),
             "--listen-client-urls", f"http://127.0.0.1:{CLIENT_PORT},{endpoint(state)}",
             "--advertise-client-urls", endpoint(state),
             "--listen-peer-urls", "http://127.0.0.1:2380",
             "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
             "--initial-cluster", f"{node1.name}=http://127.0.0.1:2380",
             "--max-txn-ops", str(plan.MAX_NODES + 10), "--max-request-bytes", str(16 * 1024 * 1024),
             "--log-level", "error", "--logger", "zap", *extra],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    state.etcd_pid = proc.pid
    return proc


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _post(state: LabState, path: str, body: dict, timeout: float = 10) -> dict:
    request = urllib.request.Request(endpoint(state) + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def wait_ready(state: LabState, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            lines = (state.state_dir / "etcd.log").read_text(errors="replace").strip().splitlines()
            raise LabError(f"etcd in node1 exited ({proc.returncode}): {lines[-1] if lines else 'no output'}")
        try:
            _post(state, "/v3/kv/range", {"key": _b64("/")}, timeout=1)
            return
        except (OSError, urllib.error.URLError):
            if time.monotonic() > deadline:
                raise LabError(f"etcd in node1 not answering on {endpoint(state)} after {timeout:g} s") from None
            time.sleep(0.05)


def lease_key(subnet: str) -> str:
    """flannel names a lease by its subnet with '-' for '/': 100.64.3.0/24 -> .../subnets/100.64.3.0-24."""
    return f"{PREFIX}subnets/{subnet.replace('/', '-')}"


def write(state: LabState, want: Desired) -> None:
    """Replace flannel's config and every lease with what the nodes really hold (MAC, public IP)."""
    config = {"Network": str(plan.POD_NETWORK), "SubnetLen": plan.SUBNET_LEN,
              "Backend": {"Type": "vxlan", "VNI": state.vni, "Port": state.port}}
    puts = [(PREFIX + "config", config)]
    for node in state.nodes:
        puts.append((lease_key(node.subnet), {
            "PublicIP": want.locals[node.name], "PublicIPv6": None, "BackendType": "vxlan",
            "BackendData": {"VNI": state.vni, "VtepMAC": want.macs[node.name]}}))
    try:
        _post(state, "/v3/kv/deleterange", {"key": _b64(PREFIX), "range_end": _b64(PREFIX[:-1] + "0")})
        _post(state, "/v3/kv/txn", {"success": [
            {"requestPut": {"key": _b64(key), "value": _b64(json.dumps(value, separators=(",", ":")))}}
            for key, value in puts]}, timeout=30)
    except (OSError, urllib.error.URLError) as exc:
        raise LabError(f"writing flannel leases to etcd at {endpoint(state)} failed: {exc}") from None
