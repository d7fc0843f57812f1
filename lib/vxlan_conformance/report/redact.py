"""`--redact`: rewrite every file a run wrote so the reports can be handed to a third party.

The operator's reports carry what a handover should not: every node's machine-id (systemd's machine-id(5):
"should be considered confidential"), the text of the nodes' firewall rules, raw command output, addresses
of hosts that are no nodes of the cluster (customers' pods, other peers, NAT addresses) and names of hosts
that were not checked. After the last report is written, the files are rewritten in place:

- machine-ids become `<machine-id HASH>` (an HMAC with a key of this suite, as systemd asks for ids shown
  outside the machine: sd_id128_get_machine_app_specific); equal ids keep equal hashes, so a duplicate
  stays visible;
- firewall rule text becomes `<rule HASH redacted>` (its table and chain stay);
- raw command output (`facts.raw`) is dropped;
- addresses other than the nodes' own become `<addr-N>`, the same N for the same address in every file
  (in pcapng captures: 240.0.0.N / 2001:db8::N, RFC 1112 reserved and RFC 3849 documentation space);
- names of hosts that are no checked node become `<host-N>`;
- passwords and view-command arguments, should any have slipped through, become `***`;
- pcapng captures are rewritten byte for byte the same length: addresses mapped, every payload beyond the
  innermost header zeroed, checksums recomputed where they were right and left wrong where they were wrong,
  so tshark still reads them and still sees the receiver's verdicts.

The verdicts are computed before, so a redacted run judges exactly as an unredacted one.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
import struct
from collections.abc import Callable, Iterable
from html import escape
from pathlib import Path
from typing import Any

from vxlan_conformance.model.rundata import RunData
from vxlan_conformance.report.nodes_table import markdown_text
from vxlan_conformance.report.run_files import MATRIX_SVG, NODES_HTML, NODES_MD

KEY = b"vxlan-conformance/redact/v1"
# pcapng captures: where <addr-N> lives when it must stay an address of the same size
PCAP_V4_BASE = int(ipaddress.IPv4Address("240.0.0.0"))
PCAP_V6_BASE = int(ipaddress.IPv6Address("2001:db8::"))
IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
MARKUP = {".xml", ".html", ".htm", ".svg", ".md"}  # labels like <addr-1> must not read as tags there
TEXT = MARKUP | {".txt", ".properties", ".csv", ".log", ""}
HEAD = 24  # the characters of a hidden value by which it is found before it is compared whole
RAW_MIN = 64  # raw outputs shorter than this (a hostname, a uid) are not searched for in text


def digest(text: str, length: int = 12) -> str:
    """A stable keyed hash: the same value gives the same hash in every report, and no other program's."""
    return hmac.new(KEY, text.encode(), hashlib.sha256).hexdigest()[:length]


def rule_body(rule: str) -> str:
    """The rule itself of a netfilter hit (`iptables TABLE CHAIN <body>`, `nft FAMILY TABLE CHAIN <body>`);
    empty for a chain policy, which is no rule text."""
    words = rule.split()
    skip = 3 if rule.startswith("iptables ") else 4 if rule.startswith("nft ") else 0
    body = words[skip:]
    return "" if not body or body[0] == ":policy" else " ".join(body)


class Redactor:
    """What to hide in one run's files, and how; one instance for all files so labels agree across them."""

    def __init__(self, *, keep_addresses: Iterable[str] = (), machine_ids: Iterable[str] = (),
                 rules: Iterable[str] = (), raw_outputs: Iterable[tuple[str, str]] = (),
                 other_hosts: Iterable[str] = (), secrets: Iterable[str] = (), vxlan_ports: Iterable[int] = ()):
        self.keep = {a for a in map(_address, keep_addresses) if a is not None}
        self.labels: dict[str, str] = {}   # plain text -> plain label
        for machine_id in machine_ids:
            if len(machine_id) >= 8 and machine_id != "uninitialized":  # systemd's word before first boot ends
                self.labels[machine_id] = f"<machine-id {digest(machine_id)}>"
        self.rules = {" ".join(r.split()) for r in rules if len(r.split()) >= 2}  # one word (`drop`) tells nothing
        for rule in self.rules:
            self.labels[rule] = f"<rule {digest(rule, 8)} redacted>"
        for section, body in raw_outputs:
            if len(body) >= RAW_MIN and "\n" in body.strip():
                self.labels[body] = self.labels[body[:2000]] = f"<output of {section} redacted>"
        for secret in secrets:
            if secret:
                self.labels[secret] = "***"
        self.hosts: dict[str, str] = {}
        for index, name in enumerate(sorted(set(filter(None, other_hosts)) - set(self.labels)), 1):
            if _address(name) is None:
                self.hosts[name] = f"<host-{index}>"
        self.numbers: dict[str, int] = {}  # address (canonical) -> N of <addr-N>
        self.vxlan_ports = set(vxlan_ports) | {4789, 8472}
        self._patterns()

    @classmethod
    def for_run(cls, run: RunData, *, other_hosts: Iterable[str] = (), secrets: Iterable[str] = ()) -> Redactor:
        """From what the run gathered: the nodes' own addresses are kept, everything else is hidden."""
        keep = list(run.addresses.values())
        rules, raw = [], []
        for facts in run.facts.values():
            versions = [facts.kernel_release, facts.kernel_version, *facts.os_release.values(),
                        *(p.version for p in facts.python)]
            keep += [m.group(0) for v in versions if v for m in IPV4.finditer(v)]  # 4.18.0.193 is a kernel
            rules += [*facts.firewall_port_rules, *facts.nat.masquerade_rules]
            raw += sorted(facts.raw.items())
            if facts.device is not None and facts.device.local:
                keep.append(facts.device.local)
        for evidence in run.mesh.values():
            rules += [rule_body(hit.rule) for hit in evidence.receive_path.netfilter_delta]
        for advertised in run.view.values():
            keep += [a for a in (advertised.public_ip, advertised.internal_ip, advertised.vtep_ip) if a]
        names = [*other_hosts, *(a.node_name for a in run.view_unmatched)]
        names = [n for n in names if n not in run.nodes]
        return cls(keep_addresses=keep, machine_ids=[f.machine_id for f in run.facts.values() if f.machine_id],
                   rules=rules, raw_outputs=raw, other_hosts=names, secrets=secrets,
                   vxlan_ports=[p for p in [run.overlay.get("port")] if isinstance(p, int)])

    def _patterns(self) -> None:
        """Every literal and its escaped forms (HTML, Markdown). Values that may stand anywhere are found by
        their first HEAD characters, one trie for all (raw outputs of every node share their heads; a plain
        alternation of thousands of them cost 43 s per MB), then confirmed whole; rules and host names
        are matched as whole words."""
        self._variants: dict[str, str] = {}
        bounded = set(self.hosts)  # whole words only: a host `db1` is not in `db10`, a rule not in a longer one
        for plain, label in self.labels.items():
            for form in (plain, escape(plain), escape(plain, quote=False), markdown_text(plain)):
                self._variants.setdefault(form, label)
                if plain in self.rules:
                    bounded.add(form)
        for name, label in self.hosts.items():
            self._variants.setdefault(name, label)
        self._heads: dict[str, list[str]] = {}
        for form in sorted((w for w in self._variants if w not in bounded), key=len, reverse=True):
            self._heads.setdefault(form[:HEAD], []).append(form)
        # a lookahead: every position is tried, so a head that is not confirmed hides no value inside it
        self._anywhere = re.compile(f"(?=({_trie(list(self._heads))}))") if self._heads else None
        words = sorted(bounded, key=len, reverse=True)
        self._words = re.compile("|".join(rf"(?<![\w.-]){re.escape(w)}(?![\w-])" for w in words)) if words else None

    # -- text ------------------------------------------------------------------------------------
    def text(self, text: str, markup: bool = False) -> str:
        """`text` with every hidden value replaced; `markup`: labels HTML-escaped (XML, HTML, SVG, Markdown)."""
        shown: Callable[[str], str] = escape if markup else str
        if self._anywhere is not None:
            text = self._replace_anywhere(text, shown)
        if self._words is not None:
            text = self._words.sub(lambda m: shown(self._variants[m.group(0)]), text)
        text = IPV4.sub(lambda m: self._address_label(m.group(0), shown), text)
        return IPV6.sub(lambda m: self._address_label(m.group(0), shown), text)

    def _replace_anywhere(self, text: str, shown: Callable[[str], str]) -> str:
        assert self._anywhere is not None
        parts, cursor = [], 0
        for match in self._anywhere.finditer(text):
            start = match.start()
            if start < cursor:
                continue
            head = match.group(1)
            candidates = (f for n in range(len(head), 0, -1) for f in self._heads.get(head[:n], ()))
            form = next((f for f in candidates if text.startswith(f, start)), None)
            if form is not None:
                parts += [text[cursor:start], shown(self._variants[form])]
                cursor = start + len(form)
        return "".join(parts) + text[cursor:] if parts else text

    def _address_label(self, text: str, shown: Callable[[str], str]) -> str:
        address = _address(text)
        if address is None or self._kept(address):
            return text
        return shown(f"<addr-{self.number(address)}>")

    def _kept(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return (address in self.keep or address.is_loopback or address.is_unspecified or address.is_multicast
                or _netmask(address))

    def number(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
        return self.numbers.setdefault(str(address), len(self.numbers) + 1)

    # -- JSON ------------------------------------------------------------------------------------
    def value(self, obj: Any, key: str = "") -> Any:
        """A JSON document: strings (and keys) redacted, a node's facts without their raw outputs. Allure's
        `description` is Markdown, so its labels are escaped."""
        if isinstance(obj, dict):
            if "raw" in obj and "machine_id" in obj:  # NodeFacts.to_dict(): in run.json and in attachments
                obj = {**obj, "raw": {}}
            return {self.text(k): self.value(v, k) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.value(v, key) for v in obj]
        if isinstance(obj, str):
            return self.text(obj, markup=key in ("description", "descriptionHtml"))
        return obj

    # -- files -----------------------------------------------------------------------------------
    def file(self, path: Path) -> None:
        """Rewrite one written file in place. A file that is neither JSON, text nor pcapng is emptied:
        what cannot be read cannot be vouched for."""
        data = path.read_bytes()
        suffix = path.suffix.lower()
        if suffix == ".pcapng":
            result = self.pcapng(data)
        elif suffix == ".json":
            result = (json.dumps(self.value(json.loads(data)), indent=1) + "\n").encode()
        else:
            try:
                text = data.decode()
            except UnicodeDecodeError:
                text = None
            if text is None or suffix not in TEXT and "\0" in text:
                result = b""
            else:
                result = self.text(text, markup=suffix in MARKUP).encode()
        tmp = path.with_name(path.name + ".redact")
        tmp.write_bytes(result)
        tmp.replace(path)

    # -- pcapng ----------------------------------------------------------------------------------
    def pcapng(self, data: bytes) -> bytes:
        """The capture with each packet rewritten in place (same block and packet lengths). Raises
        ValueError on a file that is no pcapng."""
        buf = bytearray(data)
        order = "<"
        offset = 0
        while offset + 12 <= len(buf):
            kind, length = struct.unpack_from(order + "II", buf, offset)
            if kind == 0x0A0D0D0A:  # section header: its byte-order magic says how to read the rest
                order = "<" if buf[offset + 8:offset + 12] == b"\x4d\x3c\x2b\x1a" else ">"
                length = struct.unpack_from(order + "I", buf, offset + 4)[0]
            if length < 12 or length % 4 or offset + length > len(buf):
                raise ValueError("not a pcapng file (a block overruns it)")
            if kind == 6:  # enhanced packet block: caplen at +20, data from +28
                caplen = struct.unpack_from(order + "I", buf, offset + 20)[0]
                start = offset + 28
                self._frame(buf, start, min(start + caplen, offset + length - 4))
            elif kind == 3:  # simple packet block: data from +12
                self._frame(buf, offset + 12, offset + length - 4)
            offset += length
        if offset != len(buf):
            raise ValueError("not a pcapng file (trailing bytes)")
        return bytes(buf)

    def _frame(self, buf: bytearray, off: int, end: int, depth: int = 0) -> None:
        """Ethernet, VLAN tags, then IPv4 / IPv6 / ARP; anything else is zeroed after the header."""
        if off + 14 > end:
            _zero(buf, off, end)
            return
        etype, off = struct.unpack_from("!H", buf, off + 12)[0], off + 14
        while etype in (0x8100, 0x88A8) and off + 4 <= end:
            etype, off = struct.unpack_from("!H", buf, off + 2)[0], off + 4
        if etype == 0x0800:
            self._ipv4(buf, off, end, depth)
        elif etype == 0x86DD:
            self._ipv6(buf, off, end, depth)
        elif etype == 0x0806 and off + 28 <= end and buf[off + 4:off + 6] == b"\x06\x04":
            self._map(buf, off + 14, 4)
            self._map(buf, off + 24, 4)
        else:
            _zero(buf, off, end)

    def _ipv4(self, buf: bytearray, off: int, end: int, depth: int) -> None:
        ihl = (buf[off] & 0x0F) * 4 if off < end else 0
        if ihl < 20 or off + ihl > end:
            _zero(buf, off, end)
            return
        header_ok = _checksum(buf[off:off + ihl]) == 0
        total = struct.unpack_from("!H", buf, off + 2)[0]
        stop = min(end, off + total) if total >= ihl else end
        first_fragment = struct.unpack_from("!H", buf, off + 6)[0] & 0x1FFF == 0
        self._transport(buf, off + ihl, stop, end, buf[off + 9] if first_fragment else -1,
                        lambda: bytes(buf[off + 12:off + 20]), depth, complete=off + total <= end,
                        addresses=[(off + 12, 4), (off + 16, 4)])
        if header_ok:
            struct.pack_into("!H", buf, off + 10, 0)
            struct.pack_into("!H", buf, off + 10, _checksum(buf[off:off + ihl]))

    def _ipv6(self, buf: bytearray, off: int, end: int, depth: int) -> None:
        if off + 40 > end:
            _zero(buf, off, end)
            return
        length = struct.unpack_from("!H", buf, off + 4)[0]
        self._transport(buf, off + 40, min(end, off + 40 + length), end, buf[off + 6],
                        lambda: bytes(buf[off + 8:off + 40]), depth, complete=off + 40 + length <= end,
                        addresses=[(off + 8, 16), (off + 24, 16)])

    def _transport(self, buf: bytearray, off: int, stop: int, end: int, proto: int,
                   pseudo_addresses: Callable[[], bytes], depth: int, *, complete: bool,
                   addresses: list[tuple[int, int]]) -> None:
        """UDP (VXLAN inside: its inner frame too), TCP, ICMP / ICMPv6: addresses mapped, payload zeroed,
        the L4 checksum recomputed if it was right and kept wrong if it was wrong."""
        header = {17: 8, 6: 20, 1: 8, 58: 8}.get(proto)
        if header is not None and proto == 6 and off + 13 <= stop:
            header = max(20, (buf[off + 12] >> 4) * 4)
        field = {17: 6, 6: 16, 1: 2, 58: 2}.get(proto)
        if header is None or off + header > stop or field is None:
            for where, size in addresses:
                self._map(buf, where, size)
            _zero(buf, off, end)
            return
        pseudo = proto != 1  # ICMPv4 has no pseudo-header
        old = struct.unpack_from("!H", buf, off + field)[0]
        verifiable = complete and not (proto == 17 and old == 0)
        was_ok = verifiable and self._l4_sum(buf, off, stop, proto, pseudo_addresses() if pseudo else b"") == 0
        for where, size in addresses:
            self._map(buf, where, size)
        ports = struct.unpack_from("!HH", buf, off) if proto in (17, 6) else (0, 0)
        if proto == 17 and depth == 0 and self.vxlan_ports & set(ports) and off + 16 + 14 <= stop \
                and buf[off + 8] & 0x08:
            self._frame(buf, off + 16, stop, depth + 1)  # VXLAN header kept, the inner frame rewritten
        else:
            _zero(buf, off + header, stop)
        _zero(buf, stop, end)  # Ethernet padding after the IP packet
        if verifiable:
            struct.pack_into("!H", buf, off + field, 0)
            right = self._l4_sum(buf, off, stop, proto, pseudo_addresses() if pseudo else b"")
            if proto == 17 and right == 0:
                right = 0xFFFF  # RFC 768: a computed zero is sent as all ones
            struct.pack_into("!H", buf, off + field, right if was_ok else (right + 1) & 0xFFFF or 1)

    @staticmethod
    def _l4_sum(buf: bytearray, off: int, stop: int, proto: int, addresses: bytes) -> int:
        segment = bytes(buf[off:stop])
        if not addresses:
            return _checksum(segment)
        if len(addresses) == 8:
            pseudo = addresses + struct.pack("!BBH", 0, proto, len(segment))
        else:
            pseudo = addresses + struct.pack("!I3xB", len(segment), proto)
        return _checksum(pseudo + segment)

    def _map(self, buf: bytearray, off: int, size: int) -> None:
        address = ipaddress.ip_address(bytes(buf[off:off + size]))
        if self._kept(address):
            return
        number = self.number(address)
        base = PCAP_V4_BASE if size == 4 else PCAP_V6_BASE
        buf[off:off + size] = (base + number).to_bytes(size, "big")


def redact_files(paths: Iterable[Path], redactor: Redactor, progress: Callable[[str], None]) -> list[Path]:
    """Redact every file; one that cannot be redacted is removed (a handover must not carry it as it was).
    Returns the files redacted."""
    done = []
    for path in sorted(set(paths)):
        if not path.is_file():
            continue
        try:
            redactor.file(path)
            done.append(path)
        except (ValueError, OSError) as exc:
            path.unlink(missing_ok=True)
            progress(f"--redact: {path} removed: it could not be redacted ({exc})")
    return done


def written_files(reports_dir: Path, junit: Path | None, allure_dir: Path | None) -> list[Path]:
    """The files a run writes: its own in the report directory (other files there are left alone), the JUnit
    file and everything in the Allure results directory (all of it is shown in the Allure report)."""
    own = [reports_dir / name for name in ("summary.json", NODES_MD, NODES_HTML, MATRIX_SVG)]
    found = [*own, reports_dir / ".run" / "run.json", *filter(None, [junit])]
    if allure_dir is not None and allure_dir.is_dir():
        found += [p for p in allure_dir.rglob("*") if p.is_file()]
    return [p for p in found if p.is_file()]


def _trie(words: list[str]) -> str:
    """A regex matching any of `words`, longest first, that branches by character instead of trying each word
    at every position."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        branches = []
        for char, child in sorted(node.items()):
            if not char:
                continue
            chain = char
            while len(child) == 1 and "" not in child:  # a run without branches: one literal
                (next_char, child), = child.items()
                chain += next_char
            branches.append(re.escape(chain) + build(child))
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return build(root)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return None


def _netmask(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """255.255.255.0 and the like: a netmask, no host."""
    value, bits = int(address), address.max_prefixlen
    inverted = ~value & ((1 << bits) - 1)
    return address.version == 4 and value >> 24 == 255 and inverted & (inverted + 1) == 0


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of `data`; 0 over a segment whose checksum field is right."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _zero(buf: bytearray, start: int, stop: int) -> None:
    if stop > start:
        buf[start:stop] = bytes(stop - start)
