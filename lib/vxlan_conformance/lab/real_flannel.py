"""Real upstream flanneld in every lab node (the `--flanneld VERSION|PATH` mode of `lab up`).

flanneld runs in each node's netns against the lab's etcd, exactly as a binary install of flannel does:
it creates flannel.1, allocates a random /24 lease and programs the FDB, neighbour and route entries of
its peers itself. Findings this follows (a prototype run on this machine, /tmp/research/flanneld.md):
- flags `--etcd-endpoints --etcd-prefix --iface=eth0 --subnet-file=<per node> --ip-masq=false`, started
  with a clean environment (both versions read FLANNELD_* variables as flags);
- the network config at <prefix>/config through etcd v3 for v0.20.2 and the v2 API for v0.12.0 (etcd
  --enable-v2; the two stores are separate);
- v0.20.2's subnet/etcd/registry.go watchSubnets handles only Events[0] of a watch response, so leases
  written within ~100 ms of each other are missed by peers: starts are staggered by 0.3 s and a node still
  missing peers is restarted (it reuses its lease by PublicIP);
- v0.20.2 panics on SIGTERM (exit 2) and neither version removes anything: stopping is by PID and the
  namespaces go with the lab.
The binaries come from ../shared/third_party/build-flanneld.sh (never copied into the project).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from vxlan_conformance import PROJECT_ROOT

from . import plan
from .errors import LabError
from .faults import Desired, Fault
from .overlay import base_lines
from .run import proc_start, run, run_many
from .state import LabNode, LabState

VERSIONS = ("v0.20.2", "v0.12.0")
CACHE = Path("/usr/local/lib/flannel")
PREFIX = "/coreos.com/network"
STAGGER_S = 0.3
CONVERGE_S = 20.0
PREFIX_RE = re.compile(r"^(/[A-Za-z0-9._-]+)+/?$")
MAX_OVERWRITE_NODES = 50
IMITATION_ONLY = {"stale-fdb", "missing-fdb", "mtu", "vxlan-port", "underlay-mtu"}


def build_script() -> Path:
    """../shared/third_party/build-flanneld.sh beside the repository (as in CI: /work/main/../shared)."""
    return PROJECT_ROOT.parent / "shared" / "third_party" / "build-flanneld.sh"


def binary(choice: str) -> str:
    """A version (built through the shared script, cached under /usr/local/lib/flannel) or a path."""
    if choice not in VERSIONS:
        path = Path(choice)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise LabError(f"--flanneld {choice}: not {', '.join(VERSIONS)} and not an executable file")
        return str(path.resolve())
    out = CACHE / f"flanneld-{choice}"
    script = build_script()
    if not script.is_file():
        if out.is_file():
            return str(out)
        raise LabError(f"--flanneld {choice}: {script} is absent (the shared flannel sources); give a path")
    proc = subprocess.run([str(script), choice, str(out)], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise LabError(f"building flanneld {choice} failed: {(proc.stderr or proc.stdout).strip()[-300:]}")
    return str(out)


def version_of(path: str) -> str:
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    return (out.stdout or out.stderr).strip()


def uses_v2(version: str) -> bool:
    """flannel < 0.18 keeps its etcd data through the v2 API (subnet/etcdv2)."""
    try:
        major, minor = (int(x) for x in version.lstrip("v").split(".")[:2])
    except ValueError:
        return False
    return (major, minor) < (0, 18)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write_config(endpoint: str, backend: dict, v2: bool, prefix: str = PREFIX) -> None:
    config = json.dumps({"Network": str(plan.POD_NETWORK), "SubnetLen": plan.SUBNET_LEN, "Backend": backend})
    try:
        if v2:
            request = urllib.request.Request(f"{endpoint}/v2/keys{prefix}/config", method="PUT",
                                             data=urllib.parse.urlencode({"value": config}).encode())
        else:
            request = urllib.request.Request(f"{endpoint}/v3/kv/put", headers={"Content-Type": "application/json"},
                                             data=json.dumps({"key": _b64(prefix + "/config"),
                                                              "value": _b64(config)}).encode())
        urllib.request.urlopen(request, timeout=10).read()
    except (OSError, urllib.error.URLError) as exc:
        raise LabError(f"writing flannel's network config to etcd at {endpoint} failed: {exc}") from None


def leases(endpoint: str, v2: bool, prefix: str = PREFIX) -> dict[str, dict]:
    """subnet -> lease, as flanneld wrote them."""
    found: dict[str, dict] = {}
    if v2:
        url = f"{endpoint}/v2/keys{prefix}/subnets?recursive=true"
        try:
            nodes = json.loads(urllib.request.urlopen(url, timeout=10).read()).get("node", {}).get("nodes", [])
        except urllib.error.HTTPError:
            return {}
        items = [(n["key"], n.get("value", "")) for n in nodes]
    else:
        key = prefix + "/subnets/"
        body = json.dumps({"key": _b64(key), "range_end": _b64(key[:-1] + "0")}).encode()
        request = urllib.request.Request(f"{endpoint}/v3/kv/range", data=body,
                                         headers={"Content-Type": "application/json"})
        kvs = json.loads(urllib.request.urlopen(request, timeout=10).read()).get("kvs", [])
        items = [(base64.b64decode(kv["key"]).decode(), base64.b64decode(kv["value"]).decode()) for kv in kvs]
    for key, value in items:
        found[key.rsplit("/", 1)[1].split("&")[0].replace("-", "/")] = json.loads(value)
    return found


def check_options(real: bool, nodes: int, etcd_prefix: str | None, overwrite: Sequence[str],
                  direct_routing: bool) -> None:
    """The flannel options of `lab up` need real flanneld, and name lab nodes."""
    if not real and (etcd_prefix or overwrite or direct_routing):
        raise LabError("--etcd-prefix, --public-ip-overwrite and --direct-routing configure real flanneld: "
                       "add --flanneld VERSION|PATH")
    if etcd_prefix is not None and not PREFIX_RE.match(etcd_prefix):
        raise LabError(f"--etcd-prefix {etcd_prefix!r}: use an absolute etcd key like /example.com/network")
    names = {plan.node_name(i) for i in range(1, nodes + 1)}
    for name in overwrite:
        if name not in names:
            raise LabError(f"--public-ip-overwrite {name!r}: this lab has node1..node{nodes}")
    if overwrite and nodes > MAX_OVERWRITE_NODES:
        raise LabError(f"--public-ip-overwrite: the address plan has room for {MAX_OVERWRITE_NODES} nodes")
    if direct_routing and nodes < 4:
        raise LabError("--direct-routing needs 4 nodes or more (two on each underlay subnet)")


def check_faults(faults: list[Fault]) -> None:
    """Faults real flanneld can be given: those acting before it starts (a pre-created flannel.1, the NAT
    address) or outside its devices; the imitation's hand-made FDB, MTU and port changes are not."""
    for fault in faults:
        if fault.name in IMITATION_ONLY:
            raise LabError(f"fault {fault.name!r} edits what the imitation programs; with --flanneld use "
                           f"another fault (not {', '.join(sorted(IMITATION_ONLY))})")


def set_options(state: LabState, etcd_prefix: str | None, overwrite: Sequence[str], direct_routing: bool) -> None:
    state.flannel_prefix = (etcd_prefix or "").rstrip("/")
    state.public_ip_overwrite = {name: plan.overwrite_address(state.instance, plan.node_index(name))
                                 for name in overwrite}
    state.direct_routing = direct_routing


def precreate(node: LabNode, device: str, mac: str, vni: int, port: int, local: str) -> None:
    """A flannel.1 that exists before flanneld starts (cloned VM, seed 000): flanneld keeps it and its MAC
    (backend/vxlan/device.go ensureLink: MAC and learning are not compared)."""
    run(["ip", "-n", node.netns, "link", "add", device, "address", mac, "type", "vxlan", "id", str(vni),
         "local", local, "dev", "eth0", "dstport", str(port), "nolearning"], what=f"pre-creating {device}")


def start(state: LabState, node: LabNode, path: str, endpoint: str, iface: str = "eth0",
          public_ip: str | None = None) -> subprocess.Popen:
    """flanneld in the node's netns; `iface` an interface or an address (main.go lookupExtIface: the
    interface holding it, and that address as the VXLAN local and the public IP)."""
    directory = state.state_dir / "flanneld" / node.name
    directory.mkdir(parents=True, exist_ok=True)
    argv = ["ip", "netns", "exec", node.netns, path, f"--etcd-endpoints={endpoint}",
            f"--etcd-prefix={state.flannel_prefix or PREFIX}", f"--iface={iface}",
            f"--subnet-file={subnet_file(state, node)}", "--ip-masq=false", "-v=2"]
    if public_ip:
        argv.append(f"--public-ip={public_ip}")
    with open(directory / "flanneld.log", "ab") as log:  # a file: flanneld outlives the CLI
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


def subnet_file(state: LabState, node: LabNode) -> Path:
    return state.state_dir / "flanneld" / node.name / "subnet.env"


def wait_subnet_files(state: LabState, timeout: float = CONVERGE_S) -> list[str]:
    """Nodes whose flanneld has not written its subnet file (it does once its lease and device exist)."""
    deadline = time.monotonic() + timeout
    while True:
        missing = [n.name for n in state.nodes if not subnet_file(state, n).is_file()]
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(0.1)


def peer_routes(node: LabNode) -> int:
    out = run(["ip", "-n", node.netns, "route", "show", "root", str(plan.POD_NETWORK)], check=False).stdout
    return sum(1 for line in out.splitlines() if line.strip())


def wait_programmed(nodes: list[LabNode], expected: dict[str, int], timeout: float = CONVERGE_S) -> list[str]:
    """Nodes still missing peers after `timeout` (a route per peer subnet; the FDB entry comes first)."""
    deadline = time.monotonic() + timeout
    while True:
        missing = [n.name for n in nodes if peer_routes(n) < expected[n.name]]
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(0.1)


def adopt(state: LabState, want: Desired, found: dict[str, dict]) -> None:
    """The lab's view of each node from the real leases and devices: subnet, VTEP address and MAC."""
    for node in state.nodes:
        out = run(["ip", "-n", node.netns, "-j", "-d", "address", "show", "dev", state.device], check=False).stdout
        link = (json.loads(out or "[]") or [{}])[0]
        vtep = next((a["local"] for a in link.get("addr_info", []) if a.get("family") == "inet"), None)
        if vtep is None:
            raise LabError(f"{node.name}: flanneld created no {state.device} with an address")
        subnet = str(ipaddress.ip_network(f"{vtep}/{plan.SUBNET_LEN}", strict=False))
        node.subnet, node.vtep_ip = subnet, vtep
        node.vtep_mac = want.macs[node.name] = link.get("address", want.macs[node.name])
        lease = found.get(subnet) or {}
        want.locals[node.name] = lease.get("PublicIP") or want.locals[node.name]


def program_base(state: LabState) -> None:
    """eth0 up with its address, static underlay ARP and (--direct-routing: two subnets) the route via the
    lab router (overlay.base_lines), and nothing of the overlay."""
    run_many([(["ip", "-n", n.netns, "-batch", "-"],
               "\n".join(base_lines(state.instance, n, state.nodes, state.underlay_subnets)) + "\n",
               f"programming {n.name}") for n in state.nodes], timeout=60)


def flanneld_address(state: LabState, want: Desired, node: LabNode) -> tuple[str, str | None]:
    """(--iface, --public-ip) of one node's flanneld. wrong-public-ip (seed 001): flanneld took the NAT
    NIC, so the NAT address is both its VXLAN local and its public IP; public-ip-overwrite: the address
    the operator annotated, which kube mode publishes as the node's public-ip (subnet/kube/kube.go
    AcquireLease), so peers send to it while the VXLAN local stays eth0's; in etcd mode, as here, that is
    --public-ip (the lease's PublicIP)."""
    nat = plan.nat_address(state.instance)
    if want.nat_on_lo and want.locals[node.name] == nat:
        return nat, None
    return "eth0", state.public_ip_overwrite.get(node.name)


def add_addresses(state: LabState, want: Desired) -> None:
    """Seed 001's NAT NIC: every Vagrant VM has the same address (on lo here), and on the nodes whose
    flanneld picked it, it is on the NIC flanneld uses (eth0, so flannel.1's MTU is eth0's - 50). An
    overwritten public IP: a second address on the node's eth0 that peers reach."""
    nat = plan.nat_address(state.instance)
    for node in state.nodes:
        iface, public = flanneld_address(state, want, node)
        if want.nat_on_lo:
            dev = "eth0" if iface == nat else "lo"
            run(["ip", "-n", node.netns, "address", "add", f"{nat}/32", "dev", dev], what="adding the NAT address")
        if public:
            run(["ip", "-n", node.netns, "address", "add", f"{public}/32", "dev", "eth0"],
                what=f"adding {node.name}'s overwritten public IP")


def bring_up(state: LabState, want: Desired) -> list[subprocess.Popen]:
    """Config into etcd, faults that act before flanneld starts, flanneld on every node (staggered), then
    wait until every node wrote its subnet file and programmed every peer, restarting a node that missed
    some (v0.20.2 watch race)."""
    v2 = uses_v2(state.flanneld_version)
    endpoint = state.etcd_endpoint
    write_config(endpoint, backend_config(state), v2, state.flannel_prefix or PREFIX)
    add_addresses(state, want)
    for node in state.nodes:
        shared = sum(1 for mac in want.macs.values() if mac == want.macs[node.name]) > 1
        if shared or want.macs[node.name] != node.base_mac:  # seed 000: cloned VMs' flannel.1 exists already
            precreate(node, state.device, want.macs[node.name], state.vni, state.port, node.address)
    flags = {n.name: flanneld_address(state, want, n) for n in state.nodes}
    procs: dict[str, subprocess.Popen] = {}
    for index, node in enumerate(state.nodes):
        if index:
            time.sleep(STAGGER_S)
        procs[node.name] = start(state, node, state.flanneld, endpoint, *flags[node.name])
    # one lease per public IP (the subnet manager reuses a lease whose PublicIP is its own, so nodes
    # sharing the NAT address share one lease): a route per other lease
    public = {n.name: flags[n.name][1] or (flags[n.name][0] if flags[n.name][0] != "eth0" else n.address)
              for n in state.nodes}
    expected = {n.name: len({p for name, p in public.items() if p != public[n.name]}) for n in state.nodes}
    unwritten = wait_subnet_files(state)
    missing = wait_programmed(state.nodes, expected, timeout=5.0)
    for name in missing:  # restart one at a time: it re-reads every lease at start
        node = state.node(name)
        procs[name].terminate()
        procs[name].wait(timeout=10)
        procs[name] = start(state, node, state.flanneld, endpoint, *flags[name])
        time.sleep(STAGGER_S)
    missing = wait_programmed(state.nodes, expected)
    dead = [name for name, p in procs.items() if p.poll() is not None]
    state.flanneld_pids = {name: [p.pid, proc_start(p.pid)] for name, p in procs.items()}
    if missing or dead or unwritten:
        logs = state.state_dir / "flanneld"
        raise LabError(f"real flanneld did not program every peer (missing: {', '.join(missing) or '-'}; "
                       f"no subnet file: {', '.join(unwritten) or '-'}; exited: {', '.join(dead) or '-'}); "
                       f"logs in {logs}")
    return list(procs.values())


def backend_config(state: LabState) -> dict:
    """The Backend object of flannel's network config (backend/vxlan/vxlan.go reads VNI, Port,
    DirectRouting)."""
    backend: dict = {"Type": "vxlan", "VNI": state.vni, "Port": state.port}
    if state.direct_routing:
        backend["DirectRouting"] = True
    return backend


def merge(state: LabState, want: Desired) -> None:
    """The faults' Desired with what flanneld made: each node's real MAC, subnet and advertised address."""
    found = leases(state.etcd_endpoint, uses_v2(state.flanneld_version), state.flannel_prefix or PREFIX)
    adopt(state, want, found)
