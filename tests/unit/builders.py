"""Healthy runs built from typed model objects (NodeFacts, Advertised, PairEvidence), no root and no lab: a
flannel cluster of N nodes, and Calico and Cilium clusters of three, each as its CNI builds the kernel
state and as a healthy mesh observes it. A test breaks one thing in the typed data and runs every check
(`failures`) to see exactly what the suite would report.

The Calico and Cilium shapes follow their CNI modules' upstream citations (cni/calico.py, cni/cilium.py):
felix's derived VTEP MAC, per-block routes and borrowed /32; Cilium's flow-based cilium_vxlan, the router
IP on cilium_host, routes via the own router IP and the tunnel map."""

from __future__ import annotations

import json
import pkgutil
from collections.abc import Callable

from vxlan_conformance import checks, cni
from vxlan_conformance.cni import calico
from vxlan_conformance.model.advertised import Advertised
from vxlan_conformance.model.evidence import (
    Capture,
    Echo,
    EchoSize,
    PairEvidence,
    Probe,
    ReceivePath,
    Requests,
)
from vxlan_conformance.model.facts import NodeFacts
from vxlan_conformance.model.records import (
    Address,
    FdbEntry,
    Interface,
    NatFacts,
    Neighbour,
    PythonInfo,
    Route,
    VxlanDevice,
)
from vxlan_conformance.model.result import CheckResult
from vxlan_conformance.model.rundata import RunData
from vxlan_conformance.plugin.suite import unreachable_result

KERNEL = "6.1.0-18-amd64"      # on no known-kernel list: passes under the default denylist, with a note
PROBE_PORT = 18472
ECHO_SIZES = ("37", "1200", "1472")


# -- the mesh of a healthy run ----------------------------------------------------------------------------

def healthy_evidence(run: RunData, a: str, b: str, *, vxlan_port: int, vni: int, df_size: int,
                     csum: str = "ok") -> PairEvidence:
    """A->B as the agents report it when everything works: every probe answered, B's capture saw A's
    requests intact at the VXLAN and the probe port, B's receive path dropped nothing."""
    facts_b = run.facts[b]
    requests = {kind: Requests(intact=1) for kind in ("vxlan_frame", "overlay_ping", "df_probe")}
    frames = len(requests)
    checked = {"valid_csum": frames + len(ECHO_SIZES)} if csum == "ok" else {
        "valid_csum": len(ECHO_SIZES), "no_csum": frames}
    return PairEvidence(
        a, b, probed=True,
        udp_echo=Echo(PROBE_PORT, len(ECHO_SIZES), len(ECHO_SIZES),
                      per_size={size: EchoSize(1, 1, rtt_ms=0.4) for size in ECHO_SIZES}),
        vxlan_frame=Probe(sent=1, reply_seen=True, rtt_ms=0.3, port=vxlan_port),
        overlay_ping=Probe(sent=1, reply_seen=True, rtt_ms=0.3),
        df_probe=Probe(sent=1, reply_seen=True, rtt_ms=0.3, size=df_size),
        captured=Capture(available=True, count=frames + len(ECHO_SIZES),
                         by_dport={vxlan_port: frames, PROBE_PORT: len(ECHO_SIZES)}, **checked,
                         inner_dst_macs=[facts_b.device.mac] if facts_b.device and facts_b.device.mac else [],
                         vnis=[vni], outer_srcs=[run.addresses[a]], requests=requests),
        receive_path=ReceivePath(available=True, device=run.overlay["device"],
                                 udp_delta={"InDatagrams": 30, "NoPorts": 0, "InErrors": 0, "InCsumErrors": 0},
                                 device_delta={"rx_packets": 12, "rx_dropped": 0},
                                 rp_filter={"all": 0, "default": 0}, rp_filter_drops_delta=0,
                                 netfilter_listed=True))


def _mesh(run: RunData, vni: int, df_size: int, csum: str = "ok") -> None:
    run.mesh_pairs = [f"{a}->{b}" for a, b in run.pairs()]
    run.mesh = {f"{a}->{b}": healthy_evidence(run, a, b, vxlan_port=int(run.overlay["port"]), vni=vni,
                                              df_size=df_size, csum=csum) for a, b in run.pairs()}


def _node(host: str, i: int, address: str, device: VxlanDevice, extra: list[Address]) -> NodeFacts:
    """What every node has apart from its overlay state: root, Python, a kernel, a unique machine-id."""
    eth0 = Interface("eth0", ifindex=2, mtu=1500, mac=f"52:54:00:00:00:{i:02x}", up=True, operstate="UP",
                     addresses=[Address("eth0", "inet", address, 24)])
    return NodeFacts(host, kernel_release=KERNEL, machine_id=f"{i:032x}", arch="x86_64", hostname=host,
                     device=device, underlay=eth0, addresses=[*eth0.addresses, *extra],
                     offloads={"tx-checksum-ip-generic": "on"}, nat=NatFacts("iptables", readable=True),
                     python=[PythonInfo("/usr/bin/python3", "3.11.2")], uid=0, sudo_ok=True,
                     udp_port_bound=True, rp_filter={"all": 0, "default": 0})


def _run(nodes: list[str], addresses: dict[str, str], overlay: dict) -> RunData:
    return RunData("hosts.yaml", "2026-12-05T00:00:00Z", nodes, addresses,
                   {"mtu": None, "probe_port": PROBE_PORT, **overlay}, view_source="kubectl",
                   options={"kernel_lists": [], "kernel_policy": "denylist", "pairs": "all", "mesh": True})


# -- flannel ----------------------------------------------------------------------------------------------

def flannel_mac(i: int) -> str:
    return f"02:f1:00:00:00:{i:02x}"


def flannel_run(n: int = 3) -> RunData:
    """n nodes node1..nodeN at 198.18.0.i with pod subnet 100.64.i.0/24: flannel.1 (VNI 1, UDP 8472,
    nolearning, MTU 1450), per peer `fdb <mac> dst <ip>`, neighbour <subnet>.0 -> mac, route <subnet> via
    <subnet>.0 dev flannel.1 onlink; every node advertised in its Node annotations."""
    nodes = [f"node{i}" for i in range(1, n + 1)]
    addresses = {h: f"198.18.0.{i}" for i, h in enumerate(nodes, 1)}
    subnet = {h: f"100.64.{i}.0" for i, h in enumerate(nodes, 1)}
    run = _run(nodes, addresses, {"cni": "flannel", "device": "flannel.1", "port": 8472, "vni": 1})
    for i, host in enumerate(nodes, 1):
        device = VxlanDevice("flannel.1", mac=flannel_mac(i), vni=1, port=8472, local=addresses[host], dev="eth0",
                             mtu=1450, up=True, learning=False, udpcsum=True, kind="vxlan", ifindex=5,
                             lower_up=True, operstate="UNKNOWN")
        facts = _node(host, i, addresses[host], device, [Address("flannel.1", "inet", subnet[host], 32)])
        peers = [(j, p) for j, p in enumerate(nodes, 1) if p != host]
        facts.fdb = [FdbEntry(flannel_mac(j), dst=addresses[p], dev="flannel.1", flags=["self"], state="permanent")
                     for j, p in peers]
        facts.neighbours = [Neighbour(subnet[p], flannel_mac(j), "PERMANENT", "flannel.1") for j, p in peers]
        facts.routes = [Route("default", via="198.18.0.254", dev="eth0"),
                        Route("198.18.0.0/24", dev="eth0", proto="kernel", scope="link", src=addresses[host])]
        facts.routes += [Route(f"{subnet[p]}/24", via=subnet[p], dev="flannel.1", onlink=True) for _, p in peers]
        run.facts[host] = facts
        run.view[host] = Advertised(host, "kubectl", vtep_mac=flannel_mac(i), public_ip=addresses[host],
                                    backend_type="vxlan", pod_cidr=f"{subnet[host]}/24", vtep_ip=subnet[host],
                                    internal_ip=addresses[host], host=host)
    _mesh(run, vni=1, df_size=1450)
    return run


# -- Calico (felix's VXLAN, vxlanMode Always) -------------------------------------------------------------

CALICO_NODES = {"node1": ("10.0.0.11", "10.244.1.0"), "node2": ("10.0.0.12", "10.244.2.0"),
                "node3": ("10.0.1.13", "10.244.3.0")}
# node -> the CIDRs felix on the other nodes routes to it: its affine blocks, then a /32 it borrows from
# node1's first block (ordinal 5, allocation attribute secondary.node = node2)
CALICO_ROUTED = {"node1": ["10.244.1.0/26", "10.244.1.64/26"],
                 "node2": ["10.244.2.0/26", "10.244.2.64/26", "10.244.1.5/32"],
                 "node3": ["10.244.3.0/26"]}


def calico_routes(host: str, mode: str = "Always") -> list[Route]:
    """felix's routes on `host` (vxlan_mgr.go tunnelRoute, route_mgr.go noEncapRoute): remote blocks via the
    peer's tunnel address on vxlan.calico (CrossSubnet: via the peer's IP on eth0 inside the subnet), own
    blocks as blackholes, a borrowed /32 to the borrower."""
    out = []
    for peer, cidrs in CALICO_ROUTED.items():
        for cidr in cidrs:
            if peer == host:
                if not cidr.endswith("/32"):
                    out.append(Route(cidr, type="blackhole", proto="80"))
                continue
            ip, tunnel = CALICO_NODES[peer]
            if cidr == "10.244.1.5/32" and host == "node2":
                continue
            same = mode == "CrossSubnet" and ip.rsplit(".", 1)[0] == CALICO_NODES[host][0].rsplit(".", 1)[0]
            out.append(Route(cidr, via=ip, dev="eth0", onlink=True, proto="80") if same
                       else Route(cidr, via=tunnel, dev="vxlan.calico", onlink=True))
    return out


def calico_facts(host: str, mode: str = "Always", mtu: int = 1450) -> NodeFacts:
    """A Calico node's overlay state as felix programs it (vxlan.calico VNI 4096, UDP 4789, nolearning)."""
    ip, tunnel = CALICO_NODES[host]
    return NodeFacts(
        host, device=VxlanDevice("vxlan.calico", mac=calico.felix_mac(host), vni=4096, port=4789, local=ip,
                                 dev="eth0", mtu=mtu, up=True, learning=False, kind="vxlan"),
        underlay=Interface("eth0", mtu=1500),
        addresses=[Address("eth0", "inet", ip, 24), Address("vxlan.calico", "inet", tunnel, 32)],
        fdb=[FdbEntry(calico.felix_mac(p), dst=CALICO_NODES[p][0]) for p in CALICO_NODES if p != host],
        neighbours=[Neighbour(CALICO_NODES[p][1], mac=calico.felix_mac(p), state="PERMANENT")
                    for p in CALICO_NODES if p != host],
        routes=calico_routes(host, mode))


def calico_cluster_view(mode: str = "always") -> dict:
    """RunData.view_cluster as Calico.view_extra reads it from the pools, blocks and felix config."""
    blocks = [{"cidr": cidr, "node": node, "borrowed": []}
              for node, cidrs in CALICO_ROUTED.items() for cidr in cidrs if not cidr.endswith("/32")]
    blocks[0]["borrowed"] = [["10.244.1.5", "node2"]]
    return {"calico": {"blocks": blocks, "pools": [{"cidr": "10.244.0.0/16", "vxlan_mode": mode, "disabled": False}],
                       "felix": {"default": {"vxlanVNI": 4096}}, "version": "v3.26.1", "unreadable": [],
                       "node_cidrs": {n: f"{ip}/24" for n, (ip, _) in CALICO_NODES.items()}}}


def calico_run() -> RunData:
    nodes = list(CALICO_NODES)
    addresses = {n: ip for n, (ip, _) in CALICO_NODES.items()}
    run = _run(nodes, addresses, {"cni": "calico", "device": "vxlan.calico", "port": 4789, "vni": 4096})
    for i, host in enumerate(nodes, 1):
        ip, tunnel = CALICO_NODES[host]
        healthy = calico_facts(host)
        facts = _node(host, i, ip, healthy.device, [Address("vxlan.calico", "inet", tunnel, 32)])
        facts.fdb, facts.neighbours, facts.routes = healthy.fdb, healthy.neighbours, healthy.routes
        run.facts[host] = facts
        run.view[host] = Advertised(host, "kubectl", vtep_mac=calico.felix_mac(host), public_ip=ip,
                                    backend_type="vxlan", pod_cidr="10.233.0.0/24", vtep_ip=tunnel, internal_ip=ip,
                                    host=host, vtep_mac_source="felix-derived from the node name")
    run.view_cluster = calico_cluster_view()
    _mesh(run, vni=4096, df_size=1450)
    return run


# -- Cilium (VXLAN tunnel mode) ---------------------------------------------------------------------------

CILIUM_NODES = ("node1", "node2", "node3")
ROUTER = {"node1": "100.127.1.87", "node2": "100.127.2.140", "node3": "100.127.3.12"}  # random, not .1
CIDR = {n: f"100.127.{i}.0/24" for i, n in enumerate(CILIUM_NODES, 1)}
ADDR = {n: f"198.18.192.{i}" for i, n in enumerate(CILIUM_NODES, 1)}
MAC = {"node1": "de:46:f4:2f:28:18", "node2": "2a:77:01:9c:3e:40", "node3": "7e:11:5a:02:c4:9b"}


def tunnel_map(host: str) -> dict:
    """`cilium-dbg bpf tunnel list -o json` on a healthy node: every peer's pod CIDR address -> its IP:key."""
    return {CIDR[p].split("/")[0]: [f"{ADDR[p]}:0"] for p in CILIUM_NODES if p != host}


IPCACHE_LIST = "cilium-dbg bpf ipcache list -o json"  # what the collect script reads from Cilium v1.18


def go_json(data: dict) -> str:
    """JSON as cilium-dbg prints it (pkg/command/output.go json.MarshalIndent(data, "", "  ")): keys sorted,
    `<`, `>` and `&` escaped as Go's encoding/json does."""
    text = json.dumps(data, indent=2, sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def ipcache_list(host: str) -> dict:
    """`cilium-dbg bpf ipcache list -o json` on a healthy Cilium v1.18 node (pkg/node/manager/manager.go):
    the world entry, its own addresses (host identity 1), and per peer its InternalIP (remote-node 6, no
    tunnel), its router IP (tunnelled to it) and its pod CIDR (world identity 2, tunnelled to it)."""
    def value(identity: int, endpoint: str = "0.0.0.0") -> list[str]:
        flags = "<none>" if endpoint == "0.0.0.0" else "hastunnel"
        return [f"identity={identity} encryptkey=0 tunnelendpoint={endpoint} flags={flags}"]

    out = {"0.0.0.0/0": value(2), f"{ADDR[host]}/32": value(1), f"{ROUTER[host]}/32": value(1)}
    for peer in CILIUM_NODES:
        if peer != host:
            out |= {f"{ADDR[peer]}/32": value(6), f"{ROUTER[peer]}/32": value(6, ADDR[peer]),
                    CIDR[peer]: value(2, ADDR[peer])}
    return out


def cilium_v118_run() -> RunData:
    """cilium_run as Cilium v1.18 shows it: the tunnel endpoints read from the ipcache (no tunnel map)."""
    run = cilium_run()
    for facts in run.facts.values():
        facts.tunnel_source = IPCACHE_LIST
    return run


def cilium_run() -> RunData:
    """Flow-based cilium_vxlan (id 0, UDP 8472, MTU 1500 = the underlay's), the router IP as a /32 on
    cilium_host, per peer `<podCIDR> via <own router IP> dev cilium_host mtu 1450`, no FDB or neighbour,
    the tunnel map read; the host's probes carry VNI 6 and a zero outer checksum (BPF_F_ZERO_CSUM_TX)."""
    run = _run(list(CILIUM_NODES), dict(ADDR), {"cni": "cilium", "device": "cilium_vxlan", "port": 8472, "vni": 0})
    for i, host in enumerate(CILIUM_NODES, 1):
        device = VxlanDevice("cilium_vxlan", mac=MAC[host], vni=0, port=8472, mtu=1500, up=True, learning=False,
                             kind="vxlan", external=True, lower_up=True, operstate="UNKNOWN")
        facts = _node(host, i, ADDR[host], device, [Address("cilium_host", "inet", ROUTER[host], 32)])
        facts.underlay.addresses[0].prefixlen = 19
        me = ROUTER[host]
        facts.routes = [Route(CIDR[host], via=me, dev="cilium_host", proto="kernel", src=me),
                        Route(me, dev="cilium_host", proto="kernel", scope="link"),
                        Route("198.18.192.0/19", dev="eth0", proto="kernel", scope="link", src=ADDR[host])]
        facts.routes += [Route(CIDR[p], via=me, dev="cilium_host", proto="kernel", src=me)
                         for p in CILIUM_NODES if p != host]
        facts.tunnel_map = {CIDR[p].split("/")[0]: ADDR[p] for p in CILIUM_NODES if p != host}
        run.facts[host] = facts
        run.view[host] = Advertised(host, "kubectl", public_ip=ADDR[host], backend_type="vxlan", pod_cidr=CIDR[host],
                                    vtep_ip=ROUTER[host], internal_ip=ADDR[host], host=host)
    _mesh(run, vni=cni.by_name("cilium").probe_vni(run, "node1"), df_size=1450, csum="none")
    return run


BUILDERS: dict[str, Callable[[], RunData]] = {"flannel": flannel_run, "calico": calico_run, "cilium": cilium_run,
                                              "cilium-v1.18": cilium_v118_run}


# -- running every check ----------------------------------------------------------------------------------

def check_functions() -> dict[str, Callable[..., CheckResult]]:
    """check id -> its registered function (as the suite tests call it), from every module of checks/."""
    found = {}
    for info in pkgutil.iter_modules(checks.__path__):
        module = getattr(checks, info.name, None)
        for value in vars(module or object).values():
            spec = getattr(value, "spec", None)
            if spec is not None and spec.id in checks.REGISTRY:
                found[spec.id] = value
    missing = set(checks.REGISTRY) - set(found)
    if missing:
        raise LookupError(f"registered checks not found in checks/: {sorted(missing)}")
    return found


def every_result(run: RunData) -> dict[str, list[CheckResult]]:
    """Every registered check over every subject of its scope, as the suite runs them: a check the CNI
    declares not applicable once (its skip), a subject with an unreachable node as NODE_UNREACHABLE."""
    out: dict[str, list[CheckResult]] = {}
    model = cni.of_run(run)
    for check_id, fn in check_functions().items():
        scope = checks.REGISTRY[check_id].scope
        if model.not_applicable(check_id, run):
            out[check_id] = [fn(run, *(() if scope == "cluster" else ("*",) * (1 if scope == "node" else 2)))]
            continue
        if scope == "cluster":
            subjects: list[tuple[str, ...]] = [()]
        elif scope == "node":
            subjects = [(h,) for h in run.nodes]
        else:
            subjects = list(run.pairs())
        results = []
        for subject in subjects:
            down = next((h for h in subject if h in run.unreachable), None)
            results.append(unreachable_result(run, check_id, "->".join(subject), down)
                           if down else fn(run, *subject))
        out[check_id] = results
    return out


def failures(run: RunData) -> set[tuple[str, str, str]]:
    """(check id, subject, code) of every failing result of every check."""
    return {(r.check, r.subject, code) for results in every_result(run).values() for r in results
            for code in r.codes}
