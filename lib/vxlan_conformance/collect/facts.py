"""Every node's real VXLAN state in ONE round trip: a read-only POSIX sh script and its parser.

`collect_script(device, port)` returns a script to run as a single ssh exec (`sh -c <script>`); it prints
one section per probe, delimited by `@@vxc@@ <name>` and `@@vxc@@ <name> rc=<exit code>` lines, so a
missing tool (rc 127) or a failing probe never hides the others. `parse(host, output, device)` turns
that output into `NodeFacts` and never raises: a section it cannot understand becomes None/empty plus a
line in `facts.notes`.

The script only reads: no `ethtool -K`, no `sysctl -w`, no modprobe. It even skips `iptables-save` /
`nft` when their kernel module is not loaded, because reading the ruleset would load it.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from vxlan_conformance.collect.parsers import bridge_fdb, ethtool, ifconfig, iproute, netfilter, procfs, systemd
from vxlan_conformance.model.facts import NodeFacts, tunnel_table
from vxlan_conformance.model.records import (
    Interface,
    MacPolicy,
    NatFacts,
    PythonInfo,
    VxlanDevice,
)

MARKER = "@@vxc@@"
RAW_LIMIT = 64 * 1024  # per section: keeps facts small enough to ship to every xdist worker
DEFAULT_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")  # ssh PATH of non-root users lacks them
_IFNAME = re.compile(r"^[^\s/:]{1,15}$")
_MARKER_LINE = re.compile(rf"^{MARKER} (\S+)(?: rc=(\d+))?$", re.M)  # an opening or a closing line
_SKIPPED = "# vxc: skipped"
_READ = "# vxc: read"  # the tunnel section's first line: the command its body came from
TUNNEL_MAX = 16 << 20  # the tunnel/ipcache listing (~100 bytes an entry): 150k entries fit in 16 MiB
# section -> the tool whose absence rc 127 reports
_TOOLS = {
    "link": "ip", "addr": "ip", "route": "ip", "neigh": "ip", "fdb": "bridge", "ethtool": "ethtool",
    "iptables": "iptables-save", "nft": "nft", "nmcli": "nmcli", "sudo": "sudo", "udevadm": "udevadm",
}

_SCRIPT = r"""exec </dev/null
LC_ALL=C; export LC_ALL
PATH="$PATH__SBIN__"; export PATH
D=__DEVICE__
P=__PORT__
M=__MARKER__
set -f; set -- $(uname -nrm 2>/dev/null); set +f; HN=$1 R=$2 MA=$3  # one uname for all three (~1 ms each)
U=$(id -u 2>/dev/null)
have() { command -v "$1" >/dev/null 2>&1; }
tmo() { if have timeout; then timeout 5 "$@"; else "$@"; fi; }
sec() { n=$1; shift; printf '%s %s\n' "$M" "$n"; "$@" 2>&1; printf '\n%s %s rc=%s\n' "$M" "$n" "$?"; }
show() {  # cat of a small file without a process
  [ -r "$1" ] || { echo "cannot read $1"; return 1; }
  while IFS= read -r l || [ -n "$l" ]; do printf '%s\n' "$l"; done < "$1"
}
osrel() { if [ -r /etc/os-release ]; then show /etc/os-release; else show /usr/lib/os-release; fi; }
sudo_ok() { have sudo || return 127; [ "$U" = 0 ] && return 0; tmo sudo -n true; }  # root: no sudo run
fdb() {
  have bridge || return 127
  bridge -j fdb show dev "$D" 2>/dev/null && return 0
  bridge fdb show dev "$D" 2>/dev/null && return 0
  bridge fdb show
}
ethk() { have ethtool || return 127; ethtool -k "$D"; }
stats() {
  s=/sys/class/net/$D/statistics
  if [ -d "$s" ]; then
    for f in "$s"/*; do v=; read -r v < "$f"; [ -n "$v" ] && printf '%s %s\n' "${f##*/}" "$v"; done; :
  elif [ -d /sys/class/net ]; then echo "no statistics for $D"; return 1
  else ifconfig "$D"; fi
}
drivers() {
  for i in /sys/class/net/*; do
    [ -e "$i/device/driver" ] && (cd -P "$i/device/driver" && printf '%s %s\n' "${i##*/}" "$PWD")
  done; :
}
rpf() {
  for f in /proc/sys/net/ipv4/conf/*/rp_filter; do
    v=; read -r v < "$f"; d=${f%/rp_filter}; [ -n "$v" ] && printf '%s %s\n' "${d##*/}" "$v"
  done; :
}
nft_ready() {
  [ -d /sys/module/nf_tables ] || [ ! -e /proc/modules ] || grep -qs '/nf_tables\.ko' "/lib/modules/$R/modules.builtin"
}
ipt() {
  have iptables-save || return 127
  case $(iptables -V 2>/dev/null) in
    *nf_tables*)
      nft_ready || { echo "__SKIPPED__: nf_tables module not loaded (reading would load it)"; return 0; }
      tmo iptables-save || return
      if have iptables-legacy-save && [ -s /proc/net/ip_tables_names ]; then tmo iptables-legacy-save; fi ;;
    *)
      if [ ! -e /proc/net/ip_tables_names ]; then
        echo "__SKIPPED__: ip_tables module not loaded (reading would load it)"; return 0
      fi
      tmo iptables-save ;;
  esac
}
nftr() {
  have nft || return 127
  nft_ready || { echo "__SKIPPED__: nf_tables module not loaded (reading would load it)"; return 0; }
  tmo nft list ruleset
}
linkfiles() {
  for d in /etc/systemd/network /run/systemd/network /usr/local/lib/systemd/network \
           /usr/lib/systemd/network /lib/systemd/network; do
    for f in "$d"/*.link; do
      if [ -f "$f" ]; then printf '=== %s\n' "$f"; cat "$f"; echo
      elif [ -L "$f" ]; then printf '=== masked %s\n' "$f"; fi
    done
  done; :
}
nm() { have nmcli || return 127; tmo nmcli -t -f DEVICE,STATE device; }
udev() { have udevadm || return 127; udevadm --version; }
tunl() {  # Cilium's tunnel endpoints, read-only: the tunnel map (cilium-dbg from v1.15, cilium before), and
  # from v1.18, which has no `bpf tunnel`, the ipcache (its pod CIDR entries carry the endpoints)
  c=; for b in cilium-dbg cilium; do if have "$b"; then c=$b; break; fi; done
  [ -n "$c" ] || return 127
  o=$(tmo "$c" bpf tunnel list -o json 2>&1); r=$?
  case $o in  # v1.18+: cobra stops at `bpf` and rejects -o, which only `list` defines
    *"unknown shorthand flag: 'o' in -o"*) m="bpf ipcache list"; o=$(tmo "$c" bpf ipcache list -o json 2>&1); r=$? ;;
    *) m="bpf tunnel list" ;;
  esac
  printf '%s %s %s -o json\n' "__READ__" "$c" "$m"
  if [ ${#o} -gt __TUNNEL_MAX__ ]; then echo "__SKIPPED__: $c $m printed ${#o} bytes, over __TUNNEL_MAX__"; return 0; fi
  printf '%s\n' "$o"; return $r
}
pythons() {
  for p in python3 python2 python /usr/libexec/platform-python; do
    if have "$p"; then printf '%s ' "$(command -v "$p")"; tmo "$p" -V; fi
  done; :
}
if ip -j link show lo >/dev/null 2>&1; then J=-j; else J=; fi
sec params printf 'device=%s\nport=%s\nip_json=%s\n' "$D" "$P" "${J:+yes}"
sec uname_r printf '%s\n' "$R"
sec uname_m printf '%s\n' "$MA"
sec hostname printf '%s\n' "$HN"
sec proc_version show /proc/version
sec os_release osrel
sec machine_id show /etc/machine-id
sec uid printf '%s\n' "$U"
sec sudo sudo_ok
sec link ip -d $J link show dev "$D"
sec addr ip $J addr show
sec route ip $J route show
sec neigh ip $J neigh show dev "$D"
sec fdb fdb
sec ethtool ethk
sec stats stats
sec drivers drivers
sec snmp show /proc/net/snmp
sec udp_sockets cat /proc/net/udp /proc/net/udp6
sec rp_filter rpf
sec iptables ipt
sec nft nftr
sec link_files linkfiles
sec nmcli nm
sec udevadm udev
sec python pythons
case $D in cilium_*) sec tunnel tunl ;; esac
"""


@dataclass
class Section:
    name: str
    body: str
    rc: int


def collect_script(device: str, port: int, sbin_dirs: Sequence[str] = DEFAULT_SBIN) -> str:
    """The read-only POSIX sh script; run it as ONE exec: `sh -c <script>` (root or sudo for netfilter).

    `sbin_dirs` are appended to PATH because ssh gives non-root users a PATH without /usr/sbin, where
    ethtool lives although `ethtool -k` needs no privileges.
    """
    if not _IFNAME.match(device):
        raise ValueError(f"invalid VXLAN device name {device!r}: 1-15 characters, no spaces, '/' or ':'")
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"invalid VXLAN port {port!r}: must be an integer 1-65535")
    extra = "".join(f":{d}" for d in sbin_dirs)
    return (
        _SCRIPT.replace("__SBIN__", extra)
        .replace("__DEVICE__", shlex.quote(device))
        .replace("__PORT__", str(port))
        .replace("__MARKER__", MARKER)
        .replace("__SKIPPED__", _SKIPPED)
        .replace("__READ__", _READ)
        .replace("__TUNNEL_MAX__", str(TUNNEL_MAX))
    )


def split_sections(output: str) -> dict[str, Section]:
    """The script's output -> {name: Section}; text outside sections (login banners) is ignored.

    One pass over the marker lines, so the cost is linear in the output whatever a node prints (a regex
    with a back-reference cost markers x output size: 4,000 unclosed markers in 1 MB took a minute).
    A section runs from the first unclosed `@@vxc@@ name` line to the next `@@vxc@@ name rc=N` line;
    sections do not nest (the script prints them one after the other)."""
    text = output.replace("\r\n", "\n")
    sections: dict[str, Section] = {}
    opened: dict[str, int] = {}  # name -> where its body starts
    for match in _MARKER_LINE.finditer(text):
        name, rc = match.group(1), match.group(2)
        if rc is None:
            opened.setdefault(name, match.end() + 1)
            continue
        start = opened.get(name)
        if start is None:
            continue
        body = text[start:match.start()] if start <= match.start() else ""
        if body.endswith("\n"):
            body = body[:-1]
        sections[name] = Section(name, body, int(rc))
        opened.clear()  # sections follow one another: nothing opened before this one is still open
    return sections


def parse(host: str, output: str, device: str, address: str | None = None) -> NodeFacts:
    """Parse the collect script's output; never raises (problems become `facts.notes`). `address`: the
    node's address, whose interface is the underlay of a flow-based device (Cilium: no dev, no local)."""
    facts = NodeFacts(host=host)
    sections = split_sections(output)
    if not sections:
        facts.notes.append(f"{host}: no {MARKER} sections in the output; was collect_script's output passed?")
        return facts
    collector = _Collector(facts, sections, device)
    collector.address = address
    collector.run()
    return facts


T = TypeVar("T")


class _Collector:
    """Fills one NodeFacts from the sections, each step guarded so one bad section costs only itself."""

    def __init__(self, facts: NodeFacts, sections: dict[str, Section], device: str) -> None:
        self.facts = facts
        self.sections = sections
        self.device_name = device
        self.interfaces: list[Interface] = []
        self.address: str | None = None

    def run(self) -> None:
        facts = self.facts
        facts.raw = {name: s.body[:RAW_LIMIT] for name, s in self.sections.items()}
        for name, section in self.sections.items():
            tool = _TOOLS.get(name)
            if section.rc == 127 and tool and tool not in facts.absent_tools:
                facts.absent_tools.append(tool)
        params = procfs.parse_os_release(self._body("params") or "")
        port = int(params["port"]) if params.get("port", "").isdigit() else None
        if "params" in self.sections and params.get("ip_json") != "yes" and "ip" not in facts.absent_tools:
            facts.notes.append("ip -j unsupported: text parser")
        facts.kernel_release = self._text("uname_r")
        facts.kernel_version = self._text("proc_version")
        facts.arch = self._text("uname_m")
        facts.hostname = self._text("hostname")
        facts.machine_id = self._text("machine_id")
        facts.os_release = self._guard("os_release", procfs.parse_os_release, {})
        facts.uid = self._guard("uid", lambda body: int(body.strip()), None)
        facts.sudo_ok = self._sudo()
        facts.device = self._device()
        self.interfaces = self._guard("addr", iproute.parse_interfaces, [])
        drivers = self._guard("drivers", procfs.parse_drivers, {})
        for interface in self.interfaces:
            interface.driver = drivers.get(interface.name)
        facts.addresses = [a for interface in self.interfaces for a in interface.addresses]
        facts.underlay = self._underlay()
        if facts.device is not None:
            facts.fdb = self._guard("fdb", lambda b: bridge_fdb.parse_fdb(b, self.device_name), [])
            facts.neighbours = self._guard("neigh", lambda b: iproute.parse_neighbours(b, self.device_name), [])
            facts.offloads = self._guard("ethtool", ethtool.parse_features, None)
            facts.device_counters = self._guard("stats", _counters, {})
        facts.routes = self._guard("route", iproute.parse_routes, [])
        snmp = self._guard("snmp", procfs.parse_snmp, {})
        facts.udp_counters = snmp.get("Udp", {})
        facts.udp_in_csum_errors = facts.udp_counters.get("InCsumErrors")
        facts.rp_filter = self._rp_filter()
        facts.nat = netfilter.merge(self._nat("iptables", netfilter.parse_iptables_save, "iptables"),
                                    self._nat("nft", netfilter.parse_nft_ruleset, "nft"))
        if port is not None:
            ports = self._guard("udp_sockets", procfs.parse_udp_ports, None, accept_rc=True)
            facts.udp_port_bound = None if ports is None else port in ports
            rules = "\n".join(self._usable(name) or "" for name in ("iptables", "nft"))
            facts.firewall_port_rules = netfilter.port_rules(rules, port)
        facts.mac_policy = self._mac_policy()
        facts.python = self._guard("python", _pythons, [])
        if "tunnel" in self.sections:  # Cilium only: pod CIDR address -> peer node IP
            self._tunnel()

    def _tunnel(self) -> None:
        """The tunnel section's first line names the command its body came from: the tunnel map, or from
        Cilium v1.18 the ipcache. A listing over TUNNEL_MAX is skipped, not cut: a cut one would lose entries."""
        section = self.sections["tunnel"]
        head, _, body = section.body.partition("\n")
        if head.startswith(_READ):
            self.facts.tunnel_source = head.removeprefix(_READ).strip()
            section = self.sections["tunnel"] = Section("tunnel", body, section.rc)
        if section.rc == 0 and section.body.startswith(_SKIPPED):
            self.facts.notes.append(f"section tunnel: {section.body.strip().removeprefix(_SKIPPED + ': ')}")
            return
        ipcache = tunnel_table(self.facts.tunnel_source) == "ipcache"
        self.facts.tunnel_map = self._guard("tunnel", _ipcache_tunnels if ipcache else _tunnel_map, None)

    def _body(self, name: str) -> str | None:
        section = self.sections.get(name)
        return None if section is None else section.body

    def _usable(self, name: str) -> str | None:
        """The body of a section that ran successfully and was not skipped."""
        section = self.sections.get(name)
        if section is None or section.rc != 0 or section.body.startswith(_SKIPPED):
            return None
        return section.body

    def _text(self, name: str) -> str | None:
        body = self._usable(name)
        if body is None or not body.strip():
            return None
        return body.strip()

    def _guard(self, name: str, parser: Callable[[str], T], default: T, accept_rc: bool = False) -> T:
        """Run one parser on one section; a missing/failed/odd section gives `default` and a note."""
        section = self.sections.get(name)
        if section is None:
            self.facts.notes.append(f"section {name}: missing from the output (script cut short?)")
            return default
        if section.rc != 0 and not (accept_rc and section.body.strip()):
            if section.rc != 127:
                first = section.body.strip().splitlines()[0] if section.body.strip() else "no output"
                self.facts.notes.append(f"section {name}: rc={section.rc}: {first}")
            return default
        try:
            return parser(section.body)
        except Exception as exc:  # noqa: BLE001 - any parser failure must cost only its own section
            self.facts.notes.append(f"section {name}: unparseable ({type(exc).__name__}: {exc})")
            return default

    def _sudo(self) -> bool | None:
        section = self.sections.get("sudo")
        if section is None or section.rc == 127:
            return None
        return section.rc == 0

    def _device(self) -> VxlanDevice | None:
        section = self.sections.get("link")
        if section is not None and section.rc == 127:
            self.facts.notes.append(f"device {self.device_name} unknown: ip (iproute2) is absent")
            return None
        if section is not None and section.rc != 0:
            self.facts.notes.append(f"device {self.device_name} absent: {section.body.strip() or 'no output'}")
            return None
        device = self._guard("link", iproute.parse_vxlan_link, None)
        if device is not None and device.kind != "vxlan":
            self.facts.notes.append(f"device {device.name} is of kind {device.kind!r}, not vxlan")
        return device

    def _underlay(self) -> Interface | None:
        device = self.facts.device
        if device is None:
            return None
        by_name = {i.name: i for i in self.interfaces}
        if device.dev in by_name:
            return by_name[device.dev]
        local = device.local or (self.address if device.external else None)
        for interface in self.interfaces:
            if any(a.address == local for a in interface.addresses):
                return interface
        if self.interfaces and (device.dev or device.local):
            self.facts.notes.append(f"underlay of {device.name} not found (dev={device.dev}, local={device.local})")
        return None

    def _rp_filter(self) -> dict[str, int]:
        values = self._guard("rp_filter", procfs.parse_name_values, {})
        wanted = ["all", "default", self.device_name]
        if self.facts.underlay is not None:
            wanted.append(self.facts.underlay.name)
        return {name: values[name] for name in wanted if name in values}

    def _nat(self, name: str, parser: Callable[[str], NatFacts], tool: str) -> NatFacts:
        section = self.sections.get(name)
        if section is None or section.rc == 127:
            return NatFacts(tool="absent")
        if section.body.startswith(_SKIPPED):
            self.facts.notes.append(f"{name}: {section.body.strip().removeprefix(_SKIPPED + ': ')}")
            return NatFacts(tool=tool, readable=False)
        return self._guard(name, parser, NatFacts(tool=tool, readable=False))

    def _mac_policy(self) -> MacPolicy:
        device = self.facts.device
        nmcli = self._usable("nmcli")
        udevadm = self._usable("udevadm")
        return self._guard(
            "link_files",
            lambda dump: systemd.mac_policy(
                dump, self.device_name, device.kind if device else None, device.mac if device else None,
                nmcli=nmcli, udevadm=udevadm,
            ),
            MacPolicy(),
        )


def _counters(body: str) -> dict[str, int]:
    """sysfs `name value` lines, or `ifconfig` output when the node has no /sys."""
    values = procfs.parse_name_values(body)
    return values or ifconfig.parse_counters(body)


def _pythons(body: str) -> list[PythonInfo]:
    """`<path> Python X.Y.Z` lines; a candidate that fails to report a version gets version None."""
    found = []
    for line in body.splitlines():
        path, _, rest = line.partition(" ")
        if not path.startswith("/"):
            continue
        match = re.search(r"Python (\S+)", rest)
        found.append(PythonInfo(path=path, version=match.group(1) if match else None))
    return found


def _json_object(body: str) -> dict:
    """The JSON object a cilium-dbg listing prints (a config-file line may come first, cilium-dbg/cmd/root.go)."""
    data = json.loads(body[body.find("{"):] if "{" in body else body)
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    return data


def _tunnel_map(body: str) -> dict[str, str]:
    """`cilium-dbg bpf tunnel list -o json`: {"10.0.1.0": ["192.168.56.12:0"]} -> {"10.0.1.0": "192.168.56.12"}
    (cilium-dbg/cmd/bpf_tunnel_list.go; TunnelValue.String() is "<ip>:<key>", pkg/maps/tunnel/tunnel.go)."""
    data = _json_object(body)
    out = {}
    for key, values in data.items():
        value = values[0] if isinstance(values, list) and values else values
        out[str(key).split("@")[0]] = str(value).rsplit(":", 1)[0]
    return out


def _ipcache_tunnels(body: str) -> dict[str, str]:
    """Cilium v1.18+: `cilium-dbg bpf ipcache list -o json` -> {pod CIDR address: tunnel endpoint}, the map
    `bpf tunnel list` gave before v1.18 (the tunnel map is gone: cilium/cilium #38483 put the pod CIDRs into
    the ipcache, #38839 removed the map and its cilium-dbg command).

    The listing (cilium-dbg/cmd/bpf_ipcache_list.go: pkg/bpf Map.Dump into map[string][]string, printed by
    pkg/command/output.go as indented JSON) maps each key's String() to its values' String():
    pkg/maps/ipcache Key.String() is the prefix, "@<cluster id>" appended for a non-zero cluster ID
    (pkg/clustermesh/types PrefixCluster.String); RemoteEndpointInfo.String() is "identity=<n>
    encryptkey=<n> tunnelendpoint=<ip> flags=<f,...|<none>>" (flags skiptunnel, hastunnel, ipv6tunnel,
    remotecluster). Read as upstream means the entries:

    - a remote node's pod CIDR is a prefix entry (pkg/node/manager/manager.go podCIDREntries: world
      identity, TunnelPeer = the node's IP); its network address keys the result, as in the tunnel map;
    - single addresses (/32, /128) are endpoints, node and health IPs, not pod CIDRs: left out;
    - the node's own pod CIDR gets no entry (NodeUpdated: "no tunnel endpoint fallback is needed for the
      local node"); one found is kept like any prefix, and nothing asks for it;
    - an entry without a tunnel endpoint (0.0.0.0 / ::, no hastunnel: the world entry 0.0.0.0/0, CIDR
      identities) or flagged skiptunnel is not tunnelled (bpf/bpf_host.c and bpf/lib/encap.h encapsulate
      only with flag_has_tunnel_ep && !flag_skip_tunnel): left out, so a peer's pod CIDR holding only such
      an entry has no tunnel endpoint;
    - a prefix tagged "@<cluster id>" is another cluster's (ClusterMesh): left out;
    - two prefixes on one network address: the longer wins, as the LPM lookup of that address would.
    """
    out: dict[str, tuple[int, str]] = {}
    for key, values in _json_object(body).items():
        prefix, at, _cluster = str(key).partition("@")
        if at or prefix.endswith(("/32", "/128")):  # the bulk of a big ipcache: pods, cheaply skipped
            continue
        try:
            network = ipaddress.ip_network(prefix, strict=False)
        except ValueError:  # "<unknown>": a key of an unknown address family (Key.String)
            continue
        if network.prefixlen == network.max_prefixlen:
            continue
        value = values[0] if isinstance(values, list) and values else values
        fields = dict(part.partition("=")[::2] for part in str(value).split())
        endpoint = fields.get("tunnelendpoint", "")
        if "skiptunnel" in fields.get("flags", "").split(",") or not endpoint:
            continue
        if ipaddress.ip_address(endpoint).is_unspecified:
            continue
        address = str(network.network_address)
        if address not in out or out[address][0] < network.prefixlen:
            out[address] = (network.prefixlen, endpoint)
    return {address: endpoint for address, (_, endpoint) in out.items()}
