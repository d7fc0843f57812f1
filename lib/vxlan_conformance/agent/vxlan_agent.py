# -*- coding: utf-8 -*-
"""vxlan-conformance node agent: probes every planned peer and captures what arrives.

Runs as root on a node, fed over stdin by the loader in lib/vxlan_conformance/agent/__init__.py (nothing is written to the
node's disk). Stdlib only, Python 2.7 and 3.6+ (CentOS 7 nodes have only 2.7): no f-strings, no type hints.

Protocol (one line each):  agent -> READY <json> ; runner -> GO ; agent -> SENT <json> ; runner -> STOP ;
agent -> EVIDENCE <json> and exit.  Problems -> ERROR <one line>.  The agent leaves at the plan's deadline
on its own (printing EVIDENCE with "deadline": true), so a dead SSH session never leaves it behind.
It changes nothing on the node: it only opens sockets.
"""
from __future__ import print_function

import binascii
import errno
import json
import os
import select
import re
import socket
import struct
import subprocess
import sys
import time

SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_OUTGOING = 4
ETH_P_IP = 0x0800
TP_STATUS_CSUMNOTREADY = 8
TP_STATUS_CSUM_VALID = 128
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33
IP_MTU_DISCOVER = 10
IP_PMTUDISC_DONT = 0
IP_PMTUDISC_DO = 2
IP_RECVERR = 11
MSG_ERRQUEUE = 0x2000
BUFFER_BYTES = 4 * 1024 * 1024
BACKOFF_S = 0.003
MAX_BACKOFFS = 200  # consecutive pauses (~0.6 s) before a probe is recorded as failed with ENOBUFS

KIND_FRAME, KIND_OVERLAY, KIND_DF = 0, 1, 2
KIND_NAMES = {KIND_FRAME: "vxlan_frame", KIND_OVERLAY: "overlay_ping", KIND_DF: "df_probe"}
ECHO_MAGIC = b"VXC1"
ECHO_HEADER = struct.Struct("!4sHHHH")  # magic, run_id, target index, size index, attempt
ICMP_TAG = b"vxlan-conformance"
MAX_SET = 16  # per peer: distinct VNIs, inner MACs and outer sources kept (a flood cannot grow the evidence)
MAX_ECHO_REPLIES = 256  # per peer and run: the responder never becomes a reflector
VXLAN_PORTS = (4789, 8472)  # IANA's and Linux's/flannel's: never echo into them, whatever the plan says


class AgentError(Exception):
    """A problem worth one ERROR line (bad plan, missing interface, no privileges)."""


def inet_sum(data):
    """One's complement sum of 16-bit big-endian words (RFC 1071), folded to 16 bits."""
    if len(data) % 2:
        data = data + b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def icmp_echo(icmp_id, seq, size):
    """ICMP echo request of `size` bytes (header included) carrying a recognisable tag."""
    body = (ICMP_TAG * (size // len(ICMP_TAG) + 1))[:max(size - 8, 0)]
    header = struct.pack("!BBHHH", 8, 0, 0, icmp_id, seq)
    csum = (~inet_sum(header + body)) & 0xFFFF
    return struct.pack("!BBHHH", 8, 0, csum, icmp_id, seq) + body


def filler(size):
    """Deterministic payload bytes: a corrupted echo differs from what was sent."""
    return bytes(bytearray((i * 31 + 7) & 0xFF for i in range(size)))


def udp_checksum_verdict(frame, ip_off, ihl, total_len, udp_csum, status):
    """'none' (checksum 0), 'unverifiable' (partial csum / truncated), 'ok' or 'bad'."""
    if udp_csum == 0:
        return "none"
    if status & TP_STATUS_CSUMNOTREADY or len(frame) < ip_off + total_len:
        return "unverifiable"
    udp = frame[ip_off + ihl:ip_off + total_len]
    pseudo = frame[ip_off + 12:ip_off + 20] + struct.pack("!BBH", 0, 17, len(udp))
    return "ok" if inet_sum(pseudo + udp) == 0xFFFF else "bad"


def parse_frame(frame, status):
    """Outer IPv4/UDP fields of an Ethernet frame, or None when it is not a whole UDP header."""
    if len(frame) < 14:
        return None
    ethertype, = struct.unpack_from("!H", frame, 12)
    ip_off = 14
    if ethertype == 0x8100 and len(frame) >= 18:
        ethertype, = struct.unpack_from("!H", frame, 16)
        ip_off = 18
    if ethertype != ETH_P_IP or len(frame) < ip_off + 28:
        return None
    vihl, _tos, total_len, _ident, frag, _ttl, proto = struct.unpack_from("!BBHHHBB", frame, ip_off)
    ihl = (vihl & 0x0F) * 4
    if proto != 17 or frag & 0x1FFF or len(frame) < ip_off + ihl + 8:
        return None
    src = socket.inet_ntoa(frame[ip_off + 12:ip_off + 16])
    dst = socket.inet_ntoa(frame[ip_off + 16:ip_off + 20])
    sport, dport, _ulen, ucsum = struct.unpack_from("!HHHH", frame, ip_off + ihl)
    return {
        "src": src, "dst": dst, "sport": sport, "dport": dport, "length": len(frame),
        "ip_len": total_len, "udp_off": ip_off + ihl,
        "csum": udp_checksum_verdict(frame, ip_off, ihl, total_len, ucsum, status),
    }


def inner_source(frame, inner_off):
    """Inner IPv4 source of a VXLAN frame: finds a peer whose kernel sends from a wrong outer address."""
    if len(frame) < inner_off + 14 + 20 or struct.unpack_from("!H", frame, inner_off + 12)[0] != ETH_P_IP:
        return None
    return socket.inet_ntoa(frame[inner_off + 26:inner_off + 30])


def probe_kind(frame, inner_off, icmp_id):
    """Which of our ICMP echo requests an encapsulated frame carries ('frame', 'overlay', 'df'), or None.

    Lets the receiver tell the sender's kernel overlay packets from the runner-built raw frames."""
    ip_off = inner_off + 14
    if len(frame) < ip_off + 28 or struct.unpack_from("!H", frame, inner_off + 12)[0] != ETH_P_IP:
        return None
    ihl = (bytearray(frame[ip_off:ip_off + 1])[0] & 0x0F) * 4
    if bytearray(frame[ip_off + 9:ip_off + 10])[0] != 1 or len(frame) < ip_off + ihl + 8:
        return None
    icmp_type, _code, _sum, ident, seq = struct.unpack_from("!BBHHH", frame, ip_off + ihl)
    if icmp_type != 8 or ident != icmp_id:
        return None
    return KIND_NAMES.get(seq % 4)


def read_udp_snmp():
    """Udp counters of this network namespace (InCsumErrors rises when the kernel drops bad checksums)."""
    with open("/proc/net/snmp") as handle:
        rows = [line.split() for line in handle if line.startswith("Udp:")]
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0][1:], [int(value) for value in rows[1][1:]]))


def read_netstat(name):
    """One counter of /proc/net/netstat (TcpExt: IPReversePathFilter counts rp_filter drops), or None."""
    try:
        with open("/proc/net/netstat") as handle:
            lines = handle.read().splitlines()
    except (IOError, OSError):
        return None
    for head, values in zip(lines[::2], lines[1::2]):
        names, numbers = head.split()[1:], values.split()[1:]
        if name in names and len(numbers) == len(names):
            return int(numbers[names.index(name)])
    return None


def read_device(device):
    """rx/tx counters of a network device (the VXLAN device: did it decapsulate anything?), or {}."""
    out = {}
    for name in ("rx_packets", "rx_dropped", "rx_errors", "tx_packets", "tx_dropped", "tx_errors"):
        try:
            with open(os.path.join("/sys/class/net", device, "statistics", name)) as handle:
                out[name] = int(handle.read().strip())
        except (IOError, OSError, ValueError):
            pass
    return out


def read_rp_filter(names):
    """rp_filter of all, default and the named interfaces (the kernel applies max(all, interface))."""
    out = {}
    for name in ("all", "default") + tuple(names):
        try:
            with open("/proc/sys/net/ipv4/conf/%s/rp_filter" % name) as handle:
                out[name] = int(handle.read().strip())
        except (IOError, OSError, ValueError):
            pass
    return out


NFT_COUNTER = re.compile(r"\s*counter packets (\d+) bytes \d+")
IPT_COUNTER = re.compile(r"^\[(\d+):\d+\]\s*")
IPT_POLICY = re.compile(r"^:(\S+) (\S+) \[(\d+):\d+\]")
COMMAND_BYTES = 4 << 20  # kube-proxy's iptables rules on a big cluster are a few MB
COMMAND_SECONDS = 3.0


def read_command(argv, limit_s=COMMAND_SECONDS):
    """Output of a read-only listing command (iptables-save -c, nft list ruleset), or None when the
    node has no such command, it fails, or it does not finish within limit_s; at most COMMAND_BYTES are
    read (a huge or endless output, e.g. a hostile PATH-first binary, is cut and the command ended)."""
    try:
        devnull = open(os.devnull, "wb")
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=devnull, stdin=devnull)
        finally:
            devnull.close()
    except (IOError, OSError):
        return None
    chunks, size, complete = [], 0, False
    until = time.time() + limit_s
    try:
        while size < COMMAND_BYTES:
            left = until - time.time()
            if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
                break
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                complete = True
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        if proc.poll() is None:
            try:
                proc.kill()
            except OSError:
                pass
        proc.stdout.close()
        proc.wait()
    if not complete or proc.returncode != 0:
        return None
    return b"".join(chunks).decode("utf-8", "replace")


def netfilter_counters(iptables_text, nft_text):
    """{rule key: packets} of every counted rule: iptables-save -c lines (`table chain rule`, chain
    policies as `table chain policy DROP`) and nft rules with a counter (`table chain rule`)."""
    counts = {}
    table = None
    for line in (iptables_text or "").splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            continue
        policy = IPT_POLICY.match(line)
        if policy and policy.group(2) != "-":
            counts["iptables %s %s :policy %s" % (table, policy.group(1), policy.group(2))] = int(policy.group(3))
            continue
        counter = IPT_COUNTER.match(line)
        if counter:
            rule = line[counter.end():]
            parts = rule.split()
            chain = parts[1] if len(parts) > 1 and parts[0] == "-A" else "?"
            key = "iptables %s %s %s" % (table, chain, rule)
            counts[key] = counts.get(key, 0) + int(counter.group(1))
    table = chain = None
    for line in (nft_text or "").splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "table" and words[-1] == "{":
            table, chain = " ".join(words[1:-1]), None
            continue
        if len(words) >= 2 and words[0] == "chain" and words[-1] == "{":
            chain = words[1]
            continue
        match = NFT_COUNTER.search(line)
        if match and table and chain:
            rule = (line[:match.start()] + " counter" + line[match.end():]).strip()
            rule = " ".join(rule.split())
            key = "nft %s %s %s" % (table, chain, rule)
            counts[key] = counts.get(key, 0) + int(match.group(1))
    return counts


def firewalld_zones():
    """firewalld's default and active zones, read-only, when firewall-cmd is on the node and running."""
    state = read_command(["firewall-cmd", "--state"])
    if state is None or "running" not in state:
        return None
    return {"default": (read_command(["firewall-cmd", "--get-default-zone"]) or "").strip(),
            "active": (read_command(["firewall-cmd", "--get-active-zones"]) or "").strip()[:2000]}


class ReceivePath(object):
    """Read-only snapshots of this node's receive path around the mesh: UDP MIB, the VXLAN device's
    counters, rp_filter and its drop counter, netfilter rule counters (before and after: which rules
    matched packets while the probes ran) and firewalld's zones."""

    def __init__(self, device, underlay_if):
        self.device = device
        self.underlay_if = underlay_if
        self.before = self.snapshot()

    def snapshot(self):
        saved, ruleset = read_command(["iptables-save", "-c"]), read_command(["nft", "list", "ruleset"])
        # listed: a tool answered, even with no rules at all (a node without a firewall is not unreadable)
        return {"udp": read_udp_snmp(), "device": read_device(self.device) if self.device else {},
                "rp_filter_drops": read_netstat("IPReversePathFilter"),
                "netfilter": netfilter_counters(saved, ruleset),
                "listed": saved is not None or ruleset is not None}

    def result(self, max_rules=40):
        after = self.snapshot()
        before = self.before
        udp = dict((name, after["udp"].get(name, 0) - before["udp"].get(name, 0))
                   for name in ("InDatagrams", "NoPorts", "InErrors", "RcvbufErrors", "InCsumErrors")
                   if name in after["udp"])
        device = dict((name, value - before["device"].get(name, 0)) for name, value in after["device"].items())
        rules = []
        for key, packets in after["netfilter"].items():
            delta = packets - before["netfilter"].get(key, 0)
            if delta > 0 and len(rules) < max_rules:
                rules.append({"rule": key[:400], "packets": delta})
        drops = None
        if after["rp_filter_drops"] is not None and before["rp_filter_drops"] is not None:
            drops = after["rp_filter_drops"] - before["rp_filter_drops"]
        return {"udp_delta": udp, "device": self.device, "device_delta": device,
                "rp_filter": read_rp_filter([n for n in (self.device, self.underlay_if) if n]),
                "rp_filter_drops_delta": drops, "netfilter_delta": rules,
                "netfilter_listed": after["listed"] or before["listed"],
                "firewalld": firewalld_zones()}


ICMP_UNREACH_CODES = {3: "port_unreachable", 9: "net_prohibited", 10: "host_prohibited", 13: "admin_prohibited",
                      1: "host_unreachable", 0: "net_unreachable", 4: "frag_needed"}


def icmp_error_of(packet, peers):
    """(peer name, kind, udp dport) of an ICMP destination-unreachable a peer sent about one of our UDP
    datagrams to it (its VXLAN or probe port), or None."""
    if len(packet) < 20:
        return None
    ihl = (bytearray(packet[:1])[0] & 0x0F) * 4
    if len(packet) < ihl + 8 + 20 + 4:
        return None
    icmp_type, code = struct.unpack_from("!BB", packet, ihl)
    if icmp_type != 3:
        return None
    inner = ihl + 8
    inner_ihl = (bytearray(packet[inner:inner + 1])[0] & 0x0F) * 4
    if bytearray(packet[inner + 9:inner + 10])[0] != 17 or len(packet) < inner + inner_ihl + 4:
        return None
    name = peers.get(socket.inet_ntoa(packet[inner + 16:inner + 20]))
    if name is None:
        return None
    dport = struct.unpack_from("!H", packet, inner + inner_ihl + 2)[0]
    return name, ICMP_UNREACH_CODES.get(code, "code_%d" % code), dport


def set_buffer(sock, force_opt, opt):
    """Large socket buffers so a burst from 100 peers is not dropped (affects only this socket)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, force_opt, BUFFER_BYTES)
    except (OSError, socket.error):
        sock.setsockopt(socket.SOL_SOCKET, opt, BUFFER_BYTES)


def bounded_add(values, value, limit=MAX_SET):
    """Add to a set of evidence values unless it is full: the agent's memory and its EVIDENCE line stay
    bounded whatever a peer (or a spoofed source) sends."""
    if value in values or len(values) < limit:
        values.add(value)


def echo_allowed(data, source, run_id, peers, closed_ports):
    """Whether the responder may echo `data` back to `source`: a probe of this run (magic, run id, a
    whole header), from an inventory peer's address, to an unprivileged port that is no VXLAN or probe
    port (a spoofed source must not make it reflect frames into a peer's VXLAN port)."""
    address, port = source[0], source[1]
    if address not in peers or port < 1024 or port in closed_ports:
        return False
    if len(data) < ECHO_HEADER.size:
        return False
    magic, probe_run = ECHO_HEADER.unpack_from(data)[:2]
    return magic == ECHO_MAGIC and probe_run == run_id


def error_name(exc):
    """EMSGSIZE-style name of a socket error."""
    code = getattr(exc, "errno", None)
    return errno.errorcode.get(code, str(exc)) if code else str(exc)


class PacketReader(object):
    """Reads one frame plus the kernel's tp_status from an AF_PACKET socket (recvmsg or ctypes on 2.7)."""

    def __init__(self, sock):
        self.sock = sock
        self.native = hasattr(sock, "recvmsg")
        if not self.native:
            self._setup_ctypes()

    def _setup_ctypes(self):
        import ctypes
        self.ctypes = ctypes

        class IOVec(ctypes.Structure):
            _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

        class MsgHdr(ctypes.Structure):
            _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                        ("iov", ctypes.POINTER(IOVec)), ("iovlen", ctypes.c_size_t),
                        ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                        ("flags", ctypes.c_int)]

        self.libc = ctypes.CDLL(None, use_errno=True)
        self.data = ctypes.create_string_buffer(65536)
        self.name = ctypes.create_string_buffer(32)
        self.control = ctypes.create_string_buffer(128)
        self.iov = IOVec(ctypes.cast(self.data, ctypes.c_void_p), 65536)
        self.msg = MsgHdr()
        self.msg_type = MsgHdr
        self.size_t = ctypes.sizeof(ctypes.c_size_t)

    def read(self):
        """(frame bytes, tp_status, pkttype)."""
        if self.native:
            data, ancdata, _flags, addr = self.sock.recvmsg(65536, 128)
            status = 0
            for level, kind, cdata in ancdata:
                if level == SOL_PACKET and kind == PACKET_AUXDATA and len(cdata) >= 4:
                    status, = struct.unpack_from("=I", cdata)
            return data, status, addr[2]
        return self._read_ctypes()

    def _read_ctypes(self):
        ctypes = self.ctypes
        msg = self.msg
        msg.name = ctypes.cast(self.name, ctypes.c_void_p)
        msg.namelen = 32
        msg.iov = ctypes.pointer(self.iov)
        msg.iovlen = 1
        msg.control = ctypes.cast(self.control, ctypes.c_void_p)
        msg.controllen = 128
        msg.flags = 0
        count = self.libc.recvmsg(self.sock.fileno(), ctypes.byref(msg), socket.MSG_DONTWAIT)
        if count < 0:
            code = ctypes.get_errno()
            raise socket.error(code, os.strerror(code))
        data = self.data.raw[:count]
        pkttype = struct.unpack_from("B", self.name.raw, 10)[0]
        control = self.control.raw[:msg.controllen]
        header = self.size_t + 8
        status = 0
        offset = 0
        while offset + header <= len(control):
            length = struct.unpack_from("=Q" if self.size_t == 8 else "=I", control, offset)[0]
            level, kind = struct.unpack_from("=ii", control, offset + self.size_t)
            if level == SOL_PACKET and kind == PACKET_AUXDATA and length >= header + 4:
                status, = struct.unpack_from("=I", control, offset + header)
            if length < header:
                break
            offset += (length + self.size_t - 1) // self.size_t * self.size_t
        return data, status, pkttype


class Target(object):
    """One receiver this node probes, with the state of every probe."""

    def __init__(self, index, spec, sizes):
        self.index = index
        self.name = spec["name"]
        self.address = spec["address"]
        self.vtep_ip = spec["vtep_ip"]
        self.port = int(spec["port"])
        self.frame = binascii.unhexlify(spec["frame"]) if spec.get("frame") else b""
        self.echo = dict((size, {"sent": 0, "replied": 0, "corrupted": 0, "rtt_ms": None, "error": None})
                         for size in sizes)
        self.icmp = dict((kind, {"sent": 0, "reply_seen": False, "error": None, "rtt_ms": None})
                         for kind in KIND_NAMES)
        self.sent_at = {}

    def pending(self):
        """Probes without an answer yet: (kind, key) pairs."""
        echo = [("echo", size) for size, state in self.echo.items() if not state["replied"]]
        icmp = [("icmp", kind) for kind, state in self.icmp.items()
                if not state["reply_seen"] and (kind != KIND_FRAME or self.frame)]
        return echo + icmp

    def result(self, df_size, echo_port):
        """This target's probe outcome, as the runner expects it."""
        per_size = dict((str(size), state) for size, state in self.echo.items())
        udp_echo = {
            "port": echo_port, "per_size": per_size,
            "sent": sum(state["sent"] for state in self.echo.values()),
            "replied": sum(1 for state in self.echo.values() if state["replied"]),
            "corrupted": sum(state["corrupted"] for state in self.echo.values()),
        }
        frame = dict(self.icmp[KIND_FRAME], port=self.port)
        df = dict(self.icmp[KIND_DF], size=df_size)
        return {"udp_echo": udp_echo, "vxlan_frame": frame, "overlay_ping": dict(self.icmp[KIND_OVERLAY]),
                "df_probe": df}


class PeerCapture(object):
    """What arrived on the underlay from one peer, bounded in memory."""

    def __init__(self, keep, snap):
        self.keep = keep
        self.snap = snap
        self.by_dport = {}
        self.verdicts = {"ok": 0, "bad": 0, "none": 0, "unverifiable": 0}
        self.status_flags = {"csum_not_ready": 0, "csum_valid": 0}
        self.inner_dst_macs = set()
        self.vnis = set()
        self.outer_srcs = set()
        self.requests = dict((kind, {"intact": 0, "bad": 0}) for kind in KIND_NAMES.values())
        self.frames = []
        self.bad_frames = []

    def add(self, frame, info, status, vxlan_ports, icmp_id, is_probe_echo=False):
        """Count every frame from the peer; keep the bytes of the suite's own probes only."""
        if isinstance(vxlan_ports, int):
            vxlan_ports = (vxlan_ports,)
        key = str(info["dport"])
        bounded_add(self.outer_srcs, info["src"])
        self.by_dport[key] = self.by_dport.get(key, 0) + 1
        self.verdicts[info["csum"]] += 1
        if status & TP_STATUS_CSUMNOTREADY:
            self.status_flags["csum_not_ready"] += 1
        if status & TP_STATUS_CSUM_VALID:
            self.status_flags["csum_valid"] += 1
        vxlan_off = info["udp_off"] + 8
        probe = is_probe_echo
        if info["dport"] in vxlan_ports and len(frame) >= vxlan_off + 14:
            vni = struct.unpack_from("!I", frame, vxlan_off + 4)[0] >> 8
            bounded_add(self.vnis, vni)
            bounded_add(self.inner_dst_macs, ":".join("%02x" % b for b in bytearray(frame[vxlan_off + 8:vxlan_off + 14])))
            kind = probe_kind(frame, vxlan_off + 8, icmp_id)
            if kind is not None:
                probe = True
                self.requests[kind]["bad" if info["csum"] == "bad" else "intact"] += 1
        if not probe:  # only the suite's own probes are kept: other traffic (pods') never leaves the node
            return
        kept = self.bad_frames if info["csum"] == "bad" else self.frames
        if len(kept) < self.keep:
            kept.append({"hex": binascii.hexlify(frame[:self.snap]).decode("ascii"), "tp_status": status,
                         "csum": info["csum"], "wire_len": info["length"]})

    def result(self):
        return {"count": sum(self.by_dport.values()), "by_dport": self.by_dport, "csum": self.verdicts,
                "tp_status": self.status_flags, "inner_dst_macs": sorted(self.inner_dst_macs),
                "vnis": sorted(self.vnis), "outer_srcs": sorted(self.outer_srcs), "requests": self.requests,
                "frames": self.bad_frames + self.frames}


class Agent(object):
    """All sockets and state of one run on one node."""

    def __init__(self, plan, started):
        self.plan = plan
        self.started = started
        self.deadline = started + float(plan["deadline_s"])
        self.node = plan["node"]
        self.address = plan["address"]
        self.vxlan_port = int(plan["vxlan_port"])
        self.probe_port = int(plan["probe_port"])
        self.run_id = int(plan["run_id"]) & 0xFFFF
        self.icmp_id = int(plan["icmp_id"]) & 0xFFFF
        self.attempts = int(plan.get("attempts", 3))
        self.retry_s = float(plan.get("retry_s", 0.3))
        self.burst = int(plan.get("burst", 16))
        self.peers = dict((peer["address"], peer["name"]) for peer in plan["peers"])
        self.closed_ports = set(VXLAN_PORTS) | set([self.vxlan_port, self.probe_port]) \
            | set(int(spec["port"]) for spec in plan["targets"])
        self.peer_vteps = dict((peer["vtep_ip"], peer["name"]) for peer in plan["peers"] if peer.get("vtep_ip"))
        self.underlay_mtu = self._underlay_mtu(plan["underlay_if"])
        self.sizes = sorted(set(int(size) for size in plan.get("echo_sizes", [37, 1200]))
                            | set([self.underlay_mtu - 28]))
        self.fillers = dict((size, filler(size)) for size in self.sizes)
        self.df_size = int(plan["device_mtu"])
        self.targets = [Target(index, spec, self.sizes) for index, spec in enumerate(plan["targets"])]
        self.captures = dict((name, PeerCapture(int(plan.get("keep_frames", 4)), int(plan.get("snap", 160))))
                             for name in self.peers.values())
        self.answered = {}
        self.refused = {}
        self.errors = []
        self.sockets = []
        self.queue = []
        self.attempt = 0
        self.next_pass = None
        self.backoff_until = 0.0
        self.backoffs = {}
        self.backoff_streak = 0
        self.sent_reported = False
        self.snmp_before = read_udp_snmp()
        self.vxlan_ports = set([self.vxlan_port]) | set(int(p) for p in plan.get("vxlan_ports", []))
        self.icmp_errors = {}
        self.receive_path = ReceivePath(plan.get("device"), plan["underlay_if"])

    def _underlay_mtu(self, ifname):
        try:
            with open(os.path.join("/sys/class/net", ifname, "mtu")) as handle:
                return int(handle.read().strip())
        except (IOError, OSError, ValueError):
            raise AgentError("underlay interface '%s' not found on node %s; fix underlay_if in the plan"
                             % (ifname, self.node))

    def open(self):
        """Responder, echo client, raw ICMP and capture sockets; fails early so READY means usable."""
        try:
            self.responder = self._udp((self.address, self.probe_port))
        except (OSError, socket.error) as exc:
            hint = " (the kernel VXLAN device owns it; use another probe port)" \
                if exc.errno == errno.EADDRINUSE else ""
            raise AgentError("cannot bind responder %s:%d: %s%s"
                             % (self.address, self.probe_port, error_name(exc), hint))
        try:
            self.client = self._udp((self.address, 0))
            self.client.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
            self.icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            self.sockets.append(self.icmp)
            self.icmp.bind((self.plan["vtep_ip"], 0))
            self.icmp.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)
            self.icmp.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
            set_buffer(self.icmp, SO_RCVBUFFORCE, socket.SO_RCVBUF)
            self.icmp_err = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            self.sockets.append(self.icmp_err)  # unbound: ICMP errors peers send to our underlay address
            self.capture = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
            self.sockets.append(self.capture)
            self.capture.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            set_buffer(self.capture, SO_RCVBUFFORCE, socket.SO_RCVBUF)
            self.capture.bind((self.plan["underlay_if"], ETH_P_IP))
        except (OSError, socket.error) as exc:
            raise AgentError("cannot open raw sockets on %s: %s (the agent must run as root)"
                             % (self.node, error_name(exc)))
        for sock in self.sockets:
            sock.setblocking(False)
        self.reader = PacketReader(self.capture)

    def _udp(self, address):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sockets.append(sock)
        set_buffer(sock, SO_RCVBUFFORCE, socket.SO_RCVBUF)
        set_buffer(sock, SO_SNDBUFFORCE, socket.SO_SNDBUF)
        sock.bind(address)
        return sock

    def ready_info(self):
        return {"node": self.node, "pid": os.getpid(), "python": "%d.%d.%d" % sys.version_info[:3],
                "responder": "%s:%d" % (self.address, self.probe_port), "underlay_mtu": self.underlay_mtu,
                "echo_sizes": self.sizes, "targets": len(self.targets)}

    # sending -------------------------------------------------------------------------------------------
    def start_pass(self):
        """Queue every unanswered probe once more (first pass: all of them)."""
        self.attempt += 1
        self.queue = [(target, probe) for target in self.targets for probe in target.pending()]
        self.queue.reverse()
        self.next_pass = None

    def send_some(self, now):
        """Send up to `burst` targets' worth of probes, then return to reading so buffers do not fill.

        ENOBUFS/EAGAIN (visible thanks to IP_RECVERR) means a queue on the way is full: put the probe
        back and pause briefly instead of losing it silently; give up on it after MAX_BACKOFFS pauses.
        """
        for _ in range(self.burst * (len(self.sizes) + 3)):
            if not self.queue:
                break
            target, (kind, key) = self.queue.pop()
            error = self._send_probe(target, kind, key)
            if error in ("ENOBUFS", "EAGAIN") and self.backoff_streak < MAX_BACKOFFS:
                reason = "%s/%s" % (kind if kind == "echo" else KIND_NAMES[key], error)
                self.backoffs[reason] = self.backoffs.get(reason, 0) + 1
                self.backoff_streak += 1
                self.queue.append((target, (kind, key)))
                self.backoff_until = now + BACKOFF_S
                return
            self.backoff_streak = 0
            if error:
                state = target.echo[key] if kind == "echo" else target.icmp[key]
                state["error"] = error
        if not self.queue:
            self.next_pass = now + self.retry_s

    def _send_probe(self, target, kind, key):
        """Send one probe; None or the errno name. A failed send may have only reported an earlier
        ICMP error (IP_RECVERR hands it to the next call), so one immediate retry tells them apart."""
        error = None
        for _ in range(2):
            try:
                if kind == "echo":
                    self._send_echo(target, key)
                else:
                    self._send_icmp(target, key)
                return None
            except (OSError, socket.error) as exc:
                error = error_name(exc)
                if error in ("ENOBUFS", "EAGAIN"):
                    return error
        return error

    def _echo_payload(self, target, size, attempt):
        size_index = self.sizes.index(size)
        header = ECHO_HEADER.pack(ECHO_MAGIC, self.run_id, target.index, size_index, attempt)
        return (header + self.fillers[size])[:size]

    def _send_echo(self, target, size):
        target.sent_at[("echo", size)] = time.time()
        self.client.sendto(self._echo_payload(target, size, self.attempt), (target.address, self.probe_port))
        target.echo[size]["sent"] += 1

    def _send_icmp(self, target, kind):
        state = target.icmp[kind]
        target.sent_at[("icmp", kind)] = time.time()
        seq = (target.index * 4 + kind) & 0xFFFF
        if kind == KIND_FRAME:
            self.client.sendto(target.frame, (target.address, target.port))
        elif kind == KIND_OVERLAY:
            self.icmp.sendto(icmp_echo(self.icmp_id, seq, 64), (target.vtep_ip, 0))
        else:
            self.icmp.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
            try:
                self.icmp.sendto(icmp_echo(self.icmp_id, seq, self.df_size - 20), (target.vtep_ip, 0))
                state["error"] = None
            finally:
                self.icmp.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)
        state["sent"] += 1

    def sending_done(self, now):
        if self.attempt == 0 or self.queue:
            return False
        if all(not target.pending() for target in self.targets):
            return True
        return self.attempt >= self.attempts and now >= self.next_pass

    # receiving -----------------------------------------------------------------------------------------
    def on_responder(self):
        while True:
            try:
                data, source = self.responder.recvfrom(65536)
            except (OSError, socket.error):
                return
            name = self.peers.get(source[0])
            if name is None or not echo_allowed(data, source, self.run_id, self.peers, self.closed_ports) \
                    or self.answered.get(name, 0) >= MAX_ECHO_REPLIES:
                self.refused[source[0]] = self.refused.get(source[0], 0) + 1
                if len(self.refused) > 64:
                    self.refused.pop(source[0])
                continue
            self.answered[name] = self.answered.get(name, 0) + 1
            try:
                self.responder.sendto(data, source)
            except (OSError, socket.error) as exc:
                self._note("echo reply to %s failed: %s" % (name, error_name(exc)))

    def drain_errors(self, sock):
        """Empty the IP_RECVERR queue (ICMP errors); left there it would keep select() readable."""
        while True:
            try:
                sock.recvfrom(65536, MSG_ERRQUEUE)
            except (OSError, socket.error):
                return

    def on_client(self):
        self.drain_errors(self.client)
        while True:
            try:
                data, source = self.client.recvfrom(65536)
            except (OSError, socket.error):
                return
            if len(data) < ECHO_HEADER.size:
                continue
            magic, run_id, index, size_index, attempt = ECHO_HEADER.unpack_from(data)
            if magic != ECHO_MAGIC or run_id != self.run_id or index >= len(self.targets) \
                    or size_index >= len(self.sizes):
                continue
            target = self.targets[index]
            if source[0] != target.address:
                continue
            size = self.sizes[size_index]
            state = target.echo[size]
            if data == self._echo_payload(target, size, attempt):
                if not state["replied"]:
                    state["rtt_ms"] = self._rtt(target, ("echo", size))
                state["replied"] += 1
            else:
                state["corrupted"] += 1

    def on_icmp(self):
        self.drain_errors(self.icmp)
        while True:
            try:
                packet = self.icmp.recv(65536)
            except (OSError, socket.error):
                return
            ihl = (bytearray(packet[:1])[0] & 0x0F) * 4 if packet else 0
            if len(packet) < ihl + 8:
                continue
            icmp_type, _code = struct.unpack_from("!BB", packet, ihl)
            if icmp_type != 0:
                continue
            icmp_id, seq = struct.unpack_from("!HH", packet, ihl + 4)
            index, kind = seq // 4, seq % 4
            if icmp_id != self.icmp_id or index >= len(self.targets) or kind not in KIND_NAMES:
                continue
            target = self.targets[index]
            if socket.inet_ntoa(packet[12:16]) != target.vtep_ip:
                continue
            state = target.icmp[kind]
            if not state["reply_seen"]:
                state["rtt_ms"] = self._rtt(target, ("icmp", kind))
            state["reply_seen"] = True

    def on_capture(self):
        while True:
            try:
                frame, status, pkttype = self.reader.read()
            except (OSError, socket.error):
                return
            if pkttype == PACKET_OUTGOING:
                continue
            info = parse_frame(frame, status)
            if info is None or (info["dport"] not in self.vxlan_ports and info["dport"] != self.probe_port):
                continue
            name = self.peers.get(info["src"])
            if name is None and info["dport"] in self.vxlan_ports:
                name = self.peer_vteps.get(inner_source(frame, info["udp_off"] + 16))
            if name is not None:
                echo = info["dport"] == self.probe_port and self._is_echo(frame, info["udp_off"] + 8)
                self.captures[name].add(frame, info, status, self.vxlan_ports, self.icmp_id, echo)

    def _is_echo(self, frame, offset):
        """A UDP echo probe of this run (magic and run id), not some other datagram to the probe port."""
        if len(frame) < offset + ECHO_HEADER.size:
            return False
        magic, run_id = ECHO_HEADER.unpack_from(frame, offset)[:2]
        return magic == ECHO_MAGIC and run_id == self.run_id

    def on_icmp_error(self):
        """Count destination-unreachable errors peers send about our datagrams (port unreachable: nothing
        listens; host/admin prohibited: a firewall's REJECT), per peer, kind and port."""
        while True:
            try:
                packet = self.icmp_err.recv(65536)
            except (OSError, socket.error):
                return
            found = icmp_error_of(packet, self.peers)
            if found is None:
                continue
            name, kind, dport = found
            per_peer = self.icmp_errors.setdefault(name, {})
            key = "%s/%d" % (kind, dport)
            if key in per_peer or len(per_peer) < MAX_SET:
                per_peer[key] = per_peer.get(key, 0) + 1

    def _rtt(self, target, key):
        sent = target.sent_at.get(key)
        return round((time.time() - sent) * 1000.0, 3) if sent else None

    def _note(self, message):
        if len(self.errors) < 20:
            self.errors.append(message)

    def sent_info(self):
        missing = sum(len(target.pending()) for target in self.targets)
        return {"node": self.node, "attempts": self.attempt, "unanswered": missing,
                "elapsed_s": round(time.time() - self.started, 3)}

    def evidence(self, by_deadline):
        return {
            "node": self.node, "deadline": by_deadline, "python": "%d.%d.%d" % sys.version_info[:3],
            "underlay_mtu": self.underlay_mtu, "echo_sizes": self.sizes, "errors": self.errors,
            "targets": dict((target.name, target.result(self.df_size, self.probe_port))
                            for target in self.targets),
            "captured": dict((name, capture.result()) for name, capture in self.captures.items()),
            "responder": {"answered": self.answered, "refused": self.refused},
            "snmp_udp": {"before": self.snmp_before, "after": read_udp_snmp()},
            "icmp_errors": self.icmp_errors,
            "receive_path": self.receive_path.result(),
            "elapsed_s": round(time.time() - self.started, 3),
            "sending": {"attempts": self.attempt, "queued": len(self.queue), "done": self.sent_reported,
                        "backoffs": self.backoffs,
                        "unanswered": sum(len(target.pending()) for target in self.targets)},
        }

    def close(self):
        for sock in self.sockets:
            sock.close()


def emit(tag, payload):
    """One protocol line on stdout; False when the runner is gone."""
    text = payload if isinstance(payload, str) else json.dumps(payload, sort_keys=True, separators=(",", ":"))
    try:
        sys.stdout.write(tag + " " + text + "\n")
        sys.stdout.flush()
        return True
    except (IOError, OSError):
        return False


def serve(agent, pending):
    """Event loop: commands on stdin, answers and captures on sockets, probes after GO, until STOP."""
    handlers = {agent.responder: agent.on_responder, agent.client: agent.on_client,
                agent.icmp: agent.on_icmp, agent.capture: agent.on_capture, agent.icmp_err: agent.on_icmp_error}
    buffered = pending
    stdin_open = True
    while True:
        now = time.time()
        if now >= agent.deadline:
            return True
        while b"\n" in buffered:
            line, buffered = buffered.split(b"\n", 1)
            command = line.strip()
            if command == b"GO" and agent.attempt == 0:
                agent.start_pass()
            elif command == b"STOP":
                return False
        timeout = agent.deadline - now
        if agent.queue:
            timeout = max(0.0, agent.backoff_until - now)
        elif agent.next_pass is not None:
            timeout = max(0.0, min(timeout, agent.next_pass - now))
        fds = list(handlers) + ([0] if stdin_open else [])
        readable = select.select(fds, [], [], timeout)[0]
        for source in readable:
            if source == 0:
                chunk = os.read(0, 65536)
                if not chunk:
                    return False
                buffered += chunk
            else:
                handlers[source]()
        now = time.time()
        if agent.queue and now >= agent.backoff_until:
            agent.send_some(now)
        elif agent.next_pass is not None and now >= agent.next_pass and agent.attempt < agent.attempts \
                and any(target.pending() for target in agent.targets):
            agent.start_pass()
        if not agent.sent_reported and agent.sending_done(now):
            agent.sent_reported = True
            agent.next_pass = None
            if not emit("SENT", agent.sent_info()):
                return False


def main(plan_json, pending):
    started = time.time()
    try:
        plan = json.loads(plan_json.decode("utf-8") if isinstance(plan_json, bytes) else plan_json)
        agent = Agent(plan, started)
        agent.open()
    except AgentError as exc:
        emit("ERROR", str(exc))
        return 2
    except (KeyError, TypeError, ValueError) as exc:
        emit("ERROR", "bad plan: %s: %s; rebuild it with vxlan_conformance.mesh.agents.build_plans" % (type(exc).__name__, exc))
        return 2
    if not emit("READY", agent.ready_info()):
        agent.close()
        return 1
    try:
        by_deadline = serve(agent, pending)
        emit("EVIDENCE", agent.evidence(by_deadline))
    finally:
        agent.close()
    return 0


if __name__ == "__vxlan_agent__":
    sys.exit(main(PLAN_JSON, PENDING))  # noqa: F821 - both are given by the loader
