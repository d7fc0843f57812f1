"""mesh.frames: probe layout, checksum verdicts on synthetic and on really captured frames, pcap output."""

from __future__ import annotations

import subprocess

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN

from tests.lab.agent_netns import Overlay, requires_root
from vxlan_conformance.mesh.agents import build_plans, pair_evidence, run_mesh
from vxlan_conformance.mesh.frames import pack_vxlan_probe, parse_capture, vxlan_probe, write_pcap

needs_root = pytest.mark.skipif(requires_root() is not None, reason=str(requires_root()))


def outer(payload: bytes, chksum: int | None = None, dport: int = 8472) -> bytes:
    """A complete Ethernet/IPv4/UDP frame as it would be on the wire (checksum computed unless given)."""
    packet = (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
              / IP(src="198.19.200.1", dst="198.19.200.2") / UDP(sport=40000, dport=dport, chksum=chksum)
              / payload)
    return bytes(packet)


PROBE = vxlan_probe(7, "02:a9:00:00:00:01", "02:a9:00:00:00:02", "100.126.1.0", "100.126.2.0", 4321, 9)


def test_probe_is_vxlan_with_the_pair_identified():
    packet = VXLAN(PROBE)
    assert packet.vni == 7 and packet.flags == 0x08
    inner = packet[Ether]
    assert (inner.src, inner.dst) == ("02:a9:00:00:00:01", "02:a9:00:00:00:02")
    assert (inner[IP].src, inner[IP].dst) == ("100.126.1.0", "100.126.2.0")
    assert (inner[ICMP].type, inner[ICMP].id, inner[ICMP].seq) == (8, 4321, 9)


@pytest.mark.parametrize("args", [
    (1, "02:a9:00:00:00:01", "02:a9:00:00:00:02", "100.126.1.0", "100.126.2.0", 1, 0),
    (0xFFFFFF, "fe:22:77:eb:2f:a4", "ff:ff:ff:ff:ff:ff", "10.244.255.0", "10.244.0.0", 0xFFFF, 0xFFFF),
    (4096, "00:00:00:00:00:00", "76:21:69:41:de:fe", "172.27.0.0", "172.27.1.0", 12345, 399),
])
def test_fast_probe_is_byte_identical_to_scapy(args):
    assert pack_vxlan_probe(*args) == vxlan_probe(*args)


def test_parse_reads_outer_and_inner_fields():
    frame = parse_capture(outer(PROBE, dport=8475).hex())  # non-default port still decoded as VXLAN
    assert (frame.src, frame.dst, frame.sport, frame.dport) == ("198.19.200.1", "198.19.200.2", 40000, 8475)
    assert (frame.vni, frame.inner_src_mac, frame.inner_dst_mac) == (7, "02:a9:00:00:00:01",
                                                                     "02:a9:00:00:00:02")
    assert frame.csum_valid is True and not frame.truncated


@pytest.mark.parametrize(("chksum", "tp_status", "expected"), [
    (None, 0, True),  # computed by scapy: correct
    (0, 0, True),  # zero = "no checksum", legal for IPv4 (what flannel sends with udpcsum off)
    (0xFFFF, 0, False),  # seed 004: the --random-fully / offload bug
    (0x1234, 0, False),
    (0x1234, 8, None),  # TP_STATUS_CSUMNOTREADY: offload still owes the sum, field is partial
])
def test_checksum_verdict(chksum, tp_status, expected):
    assert parse_capture(outer(PROBE, chksum).hex(), tp_status).csum_valid is expected


def test_truncated_frame_is_unverifiable_but_keeps_its_wire_length():
    raw = outer(PROBE + bytes(1000))
    frame = parse_capture(raw[:160].hex())
    assert frame.truncated and frame.csum_valid is None and frame.wire_len == len(raw)
    assert frame.vni == 7


def test_non_udp_frame_is_refused():
    with pytest.raises(ValueError, match="not IPv4/UDP"):
        parse_capture(bytes(Ether() / IP(dst="198.19.200.2") / ICMP()).hex())


def tcpdump_read(path) -> list[str]:
    """tcpdump's verbose decode, one text block per packet (a block starts with the timestamp)."""
    done = subprocess.run(["tcpdump", "-r", str(path), "-nn", "-vv"], capture_output=True, text=True,
                          timeout=20)
    assert done.returncode == 0, done.stderr
    blocks: list[str] = []
    for line in done.stdout.splitlines():
        if line[:1].isdigit():
            blocks.append(line)
        elif blocks:
            blocks[-1] += "\n" + line
    return blocks


def test_pcap_is_readable_by_tcpdump(tmp_path):
    frames = [outer(PROBE).hex(), outer(PROBE, 0xFFFF).hex(), outer(PROBE + bytes(1000))[:160].hex()]
    path = tmp_path / "pair.pcap"
    assert write_pcap(path, frames) == 3
    lines = tcpdump_read(path)
    assert len(lines) == 3
    assert "udp sum ok" in lines[0] and "bad udp cksum 0xffff" in lines[1]
    assert "198.19.200.1.40000 > 198.19.200.2.8472" in lines[2]


@pytest.fixture(scope="module")
def corrupted_run():
    """Two agt- nodes, node 2 writes checksum 0xffff on VXLAN egress; the mesh captures both ways."""
    overlay = Overlay(2).build()
    try:
        overlay.corrupt_checksum_from(2)
        pairs = [("agt-1", "agt-2"), ("agt-2", "agt-1")]
        plans = build_plans(overlay.nodes, pairs, 18472, deadline_s=20)
        yield pair_evidence(plans, run_mesh(plans, overlay.launch, timeout_s=15))
    finally:
        overlay.close()


@needs_root
def test_scapy_and_agent_agree_on_real_captured_frames(corrupted_run):
    seen = {True: 0, False: 0}
    for item in corrupted_run.values():
        for hex_frame, agent_view in zip(item.pcap_frames, item.captured.frames, strict=True):
            frame = parse_capture(hex_frame, agent_view.tp_status)
            if frame.csum_valid is None:
                continue
            seen[frame.csum_valid] += 1
            assert frame.csum_valid is (agent_view.csum == "ok"), (item.sender, frame)
            if not frame.csum_valid:  # only node 2's VXLAN traffic is corrupted
                assert (frame.src, frame.dport) == ("198.19.200.2", 8472)
    assert seen[True] > 0 and seen[False] > 0


@needs_root
def test_real_captures_make_a_pcap_tcpdump_reads(corrupted_run, tmp_path):
    frames = corrupted_run[("agt-2", "agt-1")].pcap_frames
    path = tmp_path / "agt-2_to_agt-1.pcap"
    write_pcap(path, frames)
    lines = tcpdump_read(path)
    assert len(lines) == len(frames) > 0
    assert any("bad udp cksum" in line for line in lines)
