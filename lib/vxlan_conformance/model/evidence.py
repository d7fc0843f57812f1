"""What the mesh observed for one directed pair A->B: A's probes and their answers, and what B's capture
saw of A's traffic. Built by mesh/ from the agents' reports, judged by checks/datapath.py."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from vxlan_conformance.model.records import from_plain


@dataclass
class EchoSize:
    """UDP echo of one payload size to B's probe port."""

    sent: int = 0
    replied: int = 0
    corrupted: int = 0
    rtt_ms: float | None = None
    error: str | None = None


@dataclass
class Echo:
    port: int | None = None
    sent: int = 0
    replied: int = 0
    corrupted: int = 0
    per_size: dict[str, EchoSize] = field(default_factory=dict)  # payload size (as text) -> result

    @property
    def ok(self) -> bool:
        """Every size answered, none corrupted."""
        return bool(self.per_size) and all(s.replied and not s.corrupted for s in self.per_size.values())


@dataclass
class Probe:
    """An ICMP echo through the overlay: a raw VXLAN frame, the kernel's own path, or a DF packet."""

    sent: int = 0
    reply_seen: bool = False
    error: str | None = None
    rtt_ms: float | None = None
    port: int | None = None   # raw frame: the UDP port it was sent to
    size: int | None = None   # DF probe: the packet size


@dataclass
class Requests:
    """A's echo requests of one kind that B's capture saw: intact or with a bad outer checksum."""

    intact: int = 0
    bad: int = 0


@dataclass
class CapturedFrame:
    tp_status: int = 0
    csum: str = ""           # ok | bad | none | unverifiable
    wire_len: int = 0


@dataclass
class Capture:
    """B's capture on its underlay interface of what came from A (the ground truth of seed 002)."""

    available: bool = False
    count: int = 0
    by_dport: dict[int, int] = field(default_factory=dict)
    bad_csum: int = 0
    valid_csum: int = 0
    no_csum: int = 0
    unverifiable: int = 0
    tp_status: dict[str, int] = field(default_factory=dict)
    inner_dst_macs: list[str] = field(default_factory=list)
    vnis: list[int] = field(default_factory=list)
    outer_srcs: list[str] = field(default_factory=list)
    requests: dict[str, Requests] = field(default_factory=dict)  # probe kind -> requests seen
    frames: list[CapturedFrame] = field(default_factory=list)
    receiver_in_csum_errors_delta: int = 0

    def at_port(self, port: int | None) -> int:
        return self.by_dport.get(port, 0) if port else 0

    def intact(self, kind: str) -> int:
        return self.requests[kind].intact if kind in self.requests else 0


@dataclass
class RuleHits:
    """A netfilter rule (or chain policy) on the receiver whose packet counter rose during the mesh."""

    rule: str = ""  # `iptables TABLE CHAIN -A ...`, `iptables TABLE CHAIN :policy DROP`, `nft FAMILY TABLE CHAIN rule`
    packets: int = 0

    @property
    def verdict(self) -> str | None:
        """drop | reject | None (the rule lets packets on, or jumps elsewhere)."""
        words = self.rule.lower().split()
        if ":policy" in words:
            return "drop" if words[-1] == "drop" else None
        if "-j" in words:
            target = words[words.index("-j") + 1] if words.index("-j") + 1 < len(words) else ""
            return target if target in ("drop", "reject") else None
        if self.rule.startswith("nft "):
            for word in ("drop", "reject"):
                if word in words:
                    return word
        return None

    @property
    def input_path(self) -> bool:
        """In the path of packets to this node: iptables filter INPUT (and the chains it jumps to, as
        firewalld's INPUT_ZONES/IN_<zone>), nft chains of the input hook (named input/INPUT by convention)."""
        words = self.rule.split()
        if self.rule.startswith("iptables "):
            chain = words[2] if len(words) > 2 else ""
            return words[1] == "filter" and not chain.startswith(("FORWARD", "OUTPUT", "FWD", "OUT_", "fwd", "out"))
        chain = words[3] if len(words) > 3 else ""
        return "forward" not in chain.lower() and "output" not in chain.lower()


@dataclass
class ReceivePath:
    """The receiver's own path, read-only, around the mesh (counter deltas from before to after it)."""

    available: bool = False
    device: str | None = None
    udp_delta: dict[str, int] = field(default_factory=dict)  # NoPorts, InErrors, RcvbufErrors, InCsumErrors, ...
    device_delta: dict[str, int] = field(default_factory=dict)   # the VXLAN device's rx_packets, rx_dropped, ...
    rp_filter: dict[str, int] = field(default_factory=dict)      # all, default, <device>, <underlay>
    rp_filter_drops_delta: int | None = None                     # TcpExt IPReversePathFilter
    netfilter_delta: list[RuleHits] = field(default_factory=list)
    netfilter_listed: bool = False                               # iptables-save / nft could be read
    firewalld: dict[str, str] | None = None                      # default and active zones, when firewalld runs

    def dropping_rules(self) -> list[RuleHits]:
        """Rules on the input path that dropped or rejected packets during the mesh, most hits first."""
        hits = [r for r in self.netfilter_delta if r.verdict and r.input_path]
        return sorted(hits, key=lambda r: -r.packets)


@dataclass
class PairEvidence:
    """Everything observed for one directed pair sender -> receiver; JSON round-trippable."""

    sender: str
    receiver: str
    probed: bool = False        # the sender reported its probes
    udp_echo: Echo = field(default_factory=Echo)
    vxlan_frame: Probe = field(default_factory=Probe)
    overlay_ping: Probe = field(default_factory=Probe)
    df_probe: Probe = field(default_factory=Probe)
    captured: Capture = field(default_factory=Capture)
    pcap_frames: list[str] = field(default_factory=list)  # hex, bad checksums first, bounded by the agent
    receive_path: ReceivePath = field(default_factory=ReceivePath)  # the receiver's own path during the mesh
    icmp_errors: dict[str, int] = field(default_factory=dict)  # `kind/port` -> count: the receiver's ICMP errors
    errors: list[str] = field(default_factory=list)

    @property
    def answered(self) -> bool:
        """The raw frame and the kernel's overlay ping were both answered."""
        return self.vxlan_frame.reply_seen and self.overlay_ping.reply_seen

    def to_dict(self) -> dict[str, Any]:
        """A deep copy made by json's C code: dataclasses.asdict took 0.8 ms a pair, 7.8 s of a 100-node
        run's controller (cProfile, bench/RESULTS.md)."""
        return json.loads(json.dumps(self, default=_plain))

    @classmethod
    def from_dict(cls, data: dict[str, Any], strict: bool = True) -> PairEvidence:
        """Strict: evidence of the wrong shape (a broken or hostile agent) raises ValueError. Not strict:
        evidence this run already checked, read back from its run.json."""
        return from_plain(cls, data, strict=strict)


def _plain(obj: object) -> dict[str, Any]:
    return obj.__dict__
