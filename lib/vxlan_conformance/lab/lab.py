"""The Lab API: up, fault, clear_faults, status, exec, down. State lives in /run/vxlan-lab/<K>/."""

from __future__ import annotations

import fcntl
import os
import platform
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from vxlan_conformance import PROJECT_ROOT

from . import (
    calico_bpf,
    cilium,
    etcd,
    fault_rules,
    inventory_out,
    kubectl,
    node_files,
    overlay,
    plan,
    real_flannel,
    sshd,
    subnets,
)
from .errors import LabError
from .faults import Desired, Fault, check_preset, desired, parse
from .run import proc_start, require_tools, run
from .state import LabNode, LabState, load, save

DEFAULT_INVENTORY = "inventory/lab.yaml"
CLUSTER_VIEWS = ("kubectl", "etcd")
KILL_WAIT_S = 5.0


def random_mac() -> str:
    """Locally administered unicast, like the kernel's eth_random_addr for a new vxlan link."""
    raw = bytearray(os.urandom(6))
    raw[0] = (raw[0] & 0xFE) | 0x02
    return ":".join(f"{b:02x}" for b in raw)


class Lab:
    """One lab instance (0..7). Every method is safe to call from any process: state is on disk."""

    def __init__(self, instance: int = 0) -> None:
        self.instance = plan.check_instance(instance)
        self._children: list[subprocess.Popen] = []  # handles of what this process started, to reap them

    # -- lifecycle ---------------------------------------------------------------------------------
    def up(self, nodes: int = 4, preset: str = "flannel", port: int | None = None,
           faults: Sequence[str] = (), inventory_path: str | None = None,
           cluster_view: str = "kubectl", flanneld: str | None = None, etcd_prefix: str | None = None,
           public_ip_overwrite: Sequence[str] = (), direct_routing: bool = False, underlay_subnets: int = 1,
           vxlan_mode: str = "Always", cilium_version: str | None = None, calico_bpf: bool = False,
           bpf_host_source: str = "TunnelAddress") -> LabState:
        """Build a fresh lab (tearing down whatever this instance had) and return its state."""
        preflight()
        plan.check_node_count(nodes)
        chosen = plan.preset(preset)
        if cluster_view not in CLUSTER_VIEWS:
            raise LabError(f"unknown cluster view {cluster_view!r}: use kubectl or etcd")
        if cluster_view == "etcd" and preset != "flannel":
            raise LabError("cluster view etcd holds flannel leases: use it with --preset flannel")
        if flanneld and preset != "flannel":
            raise LabError("--flanneld runs flannel: use it with --preset flannel")
        cilium.check_version(cilium_version, preset)
        if calico_bpf and preset != "calico":
            raise LabError("--calico-bpf is felix's eBPF dataplane: use it with --preset calico")
        if bpf_host_source not in ("TunnelAddress", "HostAddress"):
            raise LabError(f"unknown BPFOverlayHostSourceIP {bpf_host_source!r}: use TunnelAddress or HostAddress")
        if bpf_host_source != "TunnelAddress" and not calico_bpf:
            raise LabError("--bpf-overlay-host-source-ip is felix's eBPF mode setting: use it with --calico-bpf")
        real_flannel.check_options(bool(flanneld), nodes, etcd_prefix, public_ip_overwrite, direct_routing)
        if direct_routing:  # flannel's DirectRouting shows only where some peers are on another subnet
            underlay_subnets = subnets.MAX_SUBNETS
        subnets.check(underlay_subnets, preset, vxlan_mode, nodes)
        flanneld_path = real_flannel.binary(flanneld) if flanneld else ""
        if port is not None and not 1 <= port <= 65535:
            raise LabError(f"port {port} out of range: use 1..65535")
        names = [plan.node_name(i) for i in range(1, nodes + 1)]
        parsed = [parse(spec, names) for spec in faults]
        check_preset(parsed, chosen.name, calico_bpf)
        if flanneld:
            real_flannel.check_faults(parsed)
        with self._lock():
            self._down()
            state = self._new_state(nodes, chosen, port, inventory_path, cluster_view)
            state.calico_bpf, state.bpf_host_source = calico_bpf, bpf_host_source
            _split_underlay(state, underlay_subnets, vxlan_mode)
            if chosen.name == "cilium":
                state.cilium_version = cilium_version or cilium.DEFAULT_VERSION
            if flanneld_path:
                state.flanneld, state.flanneld_version = flanneld_path, real_flannel.version_of(flanneld_path)
                real_flannel.set_options(state, etcd_prefix, public_ip_overwrite, direct_routing)
            try:
                self._build(state, parsed)
            except BaseException:
                self._down()
                raise
            return state

    def down(self) -> None:
        """Remove everything this instance created; safe when nothing is up."""
        if os.geteuid() != 0:
            raise LabError("python -m vxlan_conformance.lab must run as root (it manages network namespaces)")
        with self._lock():
            self._down()

    def fault(self, specs: Sequence[str]) -> LabState:
        """Add faults to the running lab and re-program what they touch."""
        with self._lock():
            state = self._require_up()
            names = [n.name for n in state.nodes]
            new = [parse(spec, names) for spec in specs]
            check_preset(new, state.preset, state.calico_bpf)
            current = [parse(spec, names) for spec in state.faults]
            # faults outside the VXLAN device (blackhole, slow, firewalls) leave it alone, so they can
            # hit a running suite without re-creating every node's device under its agents
            same = overlay_of(desired(state.instance, state.nodes, current + new)) == overlay_of(
                desired(state.instance, state.nodes, current))
            self._apply(state, current + new, current, fresh=None if same else False)
            return state

    def clear_faults(self) -> LabState:
        """Back to healthy: the overlay is re-programmed with every node's original MAC."""
        with self._lock():
            state = self._require_up()
            current = [parse(spec, [n.name for n in state.nodes]) for spec in state.faults]
            self._apply(state, [], current, fresh=False)
            return state

    def state(self) -> LabState | None:
        return load(self.instance)

    def stop_sshd(self, node: str) -> None:
        """Stop one node's sshd, like a node that died: the suite must report it NODE_UNREACHABLE."""
        with self._lock():
            state = self._require_up()
            target = _node(state, node)
            self._kill([(target.sshd_pid, target.sshd_start)])

    def crash(self, node: str) -> None:
        """Stop the node's sshd and every process in its namespace (open SSH sessions, agents), like a
        node that died under a running suite; its address stays, so new connections are refused."""
        with self._lock():
            state = self._require_up()
            target = _node(state, node)
            self._kill([(target.sshd_pid, target.sshd_start)])
            self._kill_netns_processes([target.netns])

    def status(self) -> dict:
        state = load(self.instance)
        if state is None:
            return {"instance": self.instance, "up": False}
        nodes = [{"name": n.name, "address": n.address, "netns": n.netns, "vtep_mac": n.vtep_mac,
                  "vtep_ip": n.vtep_ip, "subnet": n.subnet, "sshd_pid": n.sshd_pid,
                  "sshd_alive": proc_start(n.sshd_pid) == n.sshd_start} for n in state.nodes]
        return {"instance": state.instance, "up": True, "preset": state.preset, "calico_bpf": state.calico_bpf,
                "bpf_host_source": state.bpf_host_source if state.calico_bpf else None, "device": state.device,
                "port": state.port, "vni": state.vni, "cluster_view": state.cluster_view,
                "cilium_version": state.cilium_version,
                "faults": list(state.faults), "nodes": nodes,
                "underlay": {"subnets": state.underlay_subnets, "direct_routing": state.direct_routing,
                             "vxlan_mode": state.vxlan_mode if state.preset == "calico" else None},
                "flanneld": {"version": state.flanneld_version or "imitation",
                             "alive": sorted(n for n, (pid, start) in state.flanneld_pids.items()
                                             if proc_start(pid) == start)} if state.preset == "flannel" else None,
                "etcd": {"endpoint": state.etcd_endpoint, "pid": state.etcd_pid,
                         "alive": bool(state.etcd_pid) and proc_start(state.etcd_pid) == state.etcd_start},
                "paths": {"state_dir": str(state.state_dir), "key": state.key_path,
                          "known_hosts": state.known_hosts_path, "inventory": state.inventory_path}}

    def exec(self, node: str, argv: Sequence[str], timeout: float = 5,
             input: str | None = None) -> subprocess.CompletedProcess:
        """Run argv inside the node (netns + mount + UTS namespace of its sshd), with the node's PATH."""
        state = self._require_up()
        target = _node(state, node)
        env = {"PATH": sshd.node_path(state.state_dir, node), "HOME": "/root", "LANG": "C.UTF-8"}
        try:
            return subprocess.run(["/usr/bin/nsenter", "-t", str(target.sshd_pid), "-m", "-u", "-n", "--", *argv],
                                  input=input, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise LabError(f"{node}: {argv[0]} timed out after {timeout:g} s") from None

    # -- internals ---------------------------------------------------------------------------------
    @contextmanager
    def _lock(self) -> Iterator[None]:
        """One writer at a time: two `up`s at once would fight over namespaces. The lock is the state
        root directory itself, so a finished `down` leaves no lock file behind."""
        plan.STATE_ROOT.mkdir(parents=True, exist_ok=True)
        fd = os.open(plan.STATE_ROOT, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _require_up(self) -> LabState:
        state = load(self.instance)
        if state is None:
            raise LabError(f"lab instance {self.instance} is not up: run python -m vxlan_conformance.lab up "
                           f"--instance {self.instance}")
        return state

    def _new_state(self, nodes: int, chosen: plan.Preset, port: int | None, inventory_path: str | None,
                   cluster_view: str) -> LabState:
        root = plan.state_dir(self.instance)
        root.mkdir(parents=True)
        inventory = Path(inventory_path or DEFAULT_INVENTORY)
        if not inventory.is_absolute():
            inventory = PROJECT_ROOT / inventory
        lab_nodes = []
        for i in range(1, nodes + 1):
            name = plan.node_name(i)
            mac = plan.felix_mac(name) if chosen.name == "calico" else random_mac()
            lab_nodes.append(LabNode(name=name, address=plan.node_address(self.instance, i),
                                     netns=plan.netns_name(self.instance, name), vtep_mac=mac,
                                     vtep_ip=plan.router_ip(i) if chosen.name == "cilium" else plan.vtep_ip(i),
                                     subnet=str(plan.subnet(i)), base_mac=mac,
                                     eth_mac=random_mac()))
        state = LabState(instance=self.instance, preset=chosen.name, device=chosen.device,
                         port=port or chosen.port, vni=chosen.vni, nodes=lab_nodes,
                         key_path=str(root / "id_ed25519"), known_hosts_path=str(root / "known_hosts"),
                         inventory_path=str(inventory), etcd_endpoint="", cluster_view=cluster_view)
        save(state)  # first thing: a failed or interrupted up can still be torn down
        return state

    def _build(self, state: LabState, parsed: list[Fault]) -> None:
        want = desired(state.instance, state.nodes, parsed)
        node_files.check(want)
        overlay.build_skeleton(state.instance, state.nodes, state.underlay_subnets)
        # addresses first: sshd and etcd bind to the node address and die if it is not there yet
        if state.flanneld:  # the node basics only: flanneld makes the overlay
            real_flannel.program_base(state)
        else:
            _program_overlay(state, want, fresh=True)
        sshd.prepare(state)
        node_files.write(state, want)  # before sshd starts: it bind-mounts the node's machine-id
        etcd_proc = None
        if state.preset == "flannel":
            v2 = bool(state.flanneld) and real_flannel.uses_v2(state.flanneld_version)
            etcd_proc = etcd.start(state, ("--enable-v2=true",) if v2 else ())
            self._children.append(etcd_proc)
            state.etcd_endpoint = etcd.endpoint(state)
        procs = sshd.start(state)
        self._children.extend(procs)
        save(state)
        sshd.wait_listening(state, procs)
        for node in state.nodes:
            node.sshd_start = proc_start(node.sshd_pid)
        if etcd_proc is not None:
            etcd.wait_ready(state, etcd_proc)
            state.etcd_start = proc_start(state.etcd_pid)
        if state.flanneld:
            self._children.extend(real_flannel.bring_up(state, want))
        self._apply(state, parsed, [], fresh=None)
        inventory_out.write(state)
        save(state)

    def _apply(self, state: LabState, wanted: list[Fault], previous: list[Fault],
               fresh: bool | None) -> None:
        """Program the desired state; fresh=None: the VXLAN devices already hold it (just built, or unchanged)."""
        if state.flanneld:
            fresh = _real_fresh(state, wanted, previous, fresh)
        want = desired(state.instance, state.nodes, wanted)
        node_files.check(want)
        if fresh is not None:
            _program_overlay(state, want, fresh=fresh)
        before = desired(state.instance, state.nodes, previous)
        fault_rules.apply_blocked(state, want)
        if want.bad_checksum or before.bad_checksum:
            fault_rules.apply_bad_checksum(state, want)
        fault_rules.apply_random_fully(state, want, before.random_fully)
        fault_rules.apply_firewall(state, want, before.firewall)
        fault_rules.apply_rp_filter(state, want, before.rp_filter)
        fault_rules.apply_offload(state, want)
        fault_rules.apply_mounts(state, want, platform.release())
        fault_rules.apply_slow(state, want, before.slow, before.mitm)
        if state.flanneld:  # what the real daemon made, not what the imitation would
            real_flannel.merge(state, want)
        for node in state.nodes:
            node.vtep_mac = want.macs[node.name]
        state.faults = [f.spec for f in wanted]
        if state.etcd_pid and not state.flanneld:
            etcd.write(state, want)
        kubectl.write(state, want)
        if state.preset == "cilium":  # a cilium-dbg stand-in that reads the stand-in tunnel map
            cilium.write_cilium_dbg([state.state_dir / "nodes" / n.name / "bin" for n in state.nodes],
                                    state.cilium_version or cilium.DEFAULT_VERSION)
        fault_rules.apply_hostile(state, want)
        node_files.write(state, want)
        save(state)

    def _down(self) -> None:
        state = load(self.instance)
        pids = []
        if state is not None:
            pids = [(n.sshd_pid, n.sshd_start) for n in state.nodes] + [(state.etcd_pid, state.etcd_start)]
            pids += [(pid, start) for pid, start in state.flanneld_pids.values()]
        self._kill(pids)
        names = sorted(set(overlay.lab_netns(self.instance)) | {n.netns for n in (state.nodes if state else [])})
        self._kill_netns_processes(names)
        overlay.destroy(self.instance, names)
        run(["nft", "delete", "table", "bridge", fault_rules.bridge_table(self.instance)], check=False)
        if state is not None:
            _remove_inventory(Path(state.inventory_path), self.instance)
        shutil.rmtree(plan.state_dir(self.instance), ignore_errors=True)

    def _kill(self, pids: list[tuple[int, str]]) -> None:
        """SIGTERM exactly the recorded PIDs (if still the same processes), then wait for them."""
        ours = {p.pid: p for p in self._children}
        live = []
        for pid, start in pids:
            if pid and (pid in ours or (start and proc_start(pid) == start)):
                try:
                    os.kill(pid, signal.SIGTERM)
                    live.append(pid)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + KILL_WAIT_S
        for pid in live:
            if pid in ours:
                try:
                    ours[pid].wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    ours[pid].kill()
                    ours[pid].wait(timeout=KILL_WAIT_S)
            else:
                while proc_start(pid) and time.monotonic() < deadline:
                    time.sleep(0.01)
                if proc_start(pid):
                    os.kill(pid, signal.SIGKILL)
        self._children = [p for p in self._children if p.poll() is None]

    def _kill_netns_processes(self, names: list[str]) -> None:
        """Whatever still runs inside the lab's namespaces was started through the lab (SSH sessions,
        suite agents): it would keep the namespace's devices alive, so it goes too."""
        pids = []
        for name in names:
            out = run(["ip", "netns", "pids", name], check=False).stdout
            pids.extend((int(p), proc_start(int(p))) for p in out.split() if p.isdigit())
        self._kill(pids)


def overlay_of(want: Desired) -> tuple:
    """What overlay.program puts on the VXLAN device of each node."""
    return (want.macs, want.locals, want.fdb, want.mtu, want.nat_on_lo, want.ports, want.underlay_mtu,
            want.missing_routes, want.missing_tunnel)


def _real_fresh(state: LabState, wanted: list[Fault], previous: list[Fault], fresh: bool | None) -> None:
    """With real flanneld the daemon owns the VXLAN devices: faults outside them can come and go on a
    running lab; one that changes what flanneld programs needs a new `up --fault` (it acts before
    flanneld starts, as in the field)."""
    if fresh is not None and overlay_of(desired(state.instance, state.nodes, wanted)) != overlay_of(
            desired(state.instance, state.nodes, previous)):
        raise LabError("with real flanneld, faults that change the VXLAN devices (dup-vtep-mac, wrong-public-ip, "
                       "FDB, MTU, port) are made at start: run `lab up --flanneld ... --fault SPEC`")
    return None


def _split_underlay(state: LabState, count: int, vxlan_mode: str) -> None:
    """--underlay-subnets / --vxlan-mode: the nodes' addresses on their subnets (subnets.py), saved
    before anything is built so a failed `up` still tears down."""
    state.underlay_subnets, state.vxlan_mode = count, vxlan_mode
    for index, node in enumerate(state.nodes, 1):
        node.address = subnets.node_address(state.instance, index, count)
    save(state)


def _program_overlay(state: LabState, want: Desired, fresh: bool) -> None:
    if state.calico_bpf:  # felix's eBPF mode: flow-based device, tc standing in for its BPF programs
        calico_bpf.program(state.instance, want, state.nodes, state.vni, state.port, fresh,
                           subnet_count=state.underlay_subnets, vxlan_mode=state.vxlan_mode,
                           tunnel_address=state.bpf_host_source == "TunnelAddress")
        return
    overlay.program(state.instance, want, state.nodes, state.device, state.vni, state.port, fresh=fresh,
                    preset=state.preset, subnet_count=state.underlay_subnets, vxlan_mode=state.vxlan_mode)


def preflight() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab must run as root (it creates network namespaces): re-run as root")
    require_tools()


def _remove_inventory(path: Path, instance: int) -> None:
    """Only a file this lab generated: never delete an inventory someone wrote by hand."""
    try:
        first = path.read_text().splitlines()[0]
    except (OSError, IndexError):
        return
    if first.startswith(f"# generated by python -m vxlan_conformance.lab up (instance {instance})"):
        path.unlink()


def _node(state: LabState, name: str) -> LabNode:
    try:
        return state.node(name)
    except KeyError:
        raise LabError(f"unknown node {name!r}: this lab has node1..node{len(state.nodes)}") from None
