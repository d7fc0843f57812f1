"""Issue 20, runner side: what one node prints can neither stall the runner nor get into the reports as
markup. Unit tests on the real parsers and renderers with crafted input."""

from __future__ import annotations

import time

from vxlan_conformance.collect import facts


def test_facts_sections_parse_in_linear_time_with_thousands_of_unclosed_markers() -> None:
    junk = "".join(f"@@vxc@@ s{i}\n" + "x" * 240 + "\n" for i in range(4000))  # ~1 MB, nothing closed
    output = junk + "@@vxc@@ uname_r\n6.1.0\n\n@@vxc@@ uname_r rc=0\n"
    started = time.perf_counter()
    sections = facts.split_sections(output)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, elapsed
    assert list(sections) == ["uname_r"]
    assert sections["uname_r"].body == "6.1.0\n" and sections["uname_r"].rc == 0


def test_facts_sections_keep_their_bodies_exactly() -> None:
    output = ("banner\n@@vxc@@ a\nline1\nline2\n\n@@vxc@@ a rc=0\n@@vxc@@ empty\n\n@@vxc@@ empty rc=1\n"
              "@@vxc@@ b\nno trailing newline\n@@vxc@@ b rc=127\n")
    sections = facts.split_sections(output)
    assert {name: (s.body, s.rc) for name, s in sections.items()} == {
        "a": ("line1\nline2\n", 0), "empty": ("", 1), "b": ("no trailing newline", 127)}


# --- the node agent (its own code, imported as the module the node runs) -----------------------------------

def agent_module():
    import importlib.util

    from vxlan_conformance.agent import agent_source

    spec = importlib.util.spec_from_loader("vxlan_agent_under_test", loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(agent_source(), "vxlan_agent.py", "exec"), module.__dict__)
    return module


def test_echo_responder_answers_only_probes_of_this_run_from_peers_to_unprivileged_non_vxlan_ports() -> None:
    agent = agent_module()
    probe = agent.ECHO_HEADER.pack(agent.ECHO_MAGIC, 77, 0, 0, 1) + b"x" * 20
    peers = {"198.18.0.2": "node2"}
    closed = {8472, 4789, 18472, 9999}
    assert agent.echo_allowed(probe, ("198.18.0.2", 40000), 77, peers, closed)
    assert not agent.echo_allowed(probe, ("198.18.0.9", 40000), 77, peers, closed)  # not an inventory peer
    for port in (8472, 4789, 18472, 9999, 53, 0):  # VXLAN ports, the probe port, privileged ports
        assert not agent.echo_allowed(probe, ("198.18.0.2", port), 77, peers, closed), port
    assert not agent.echo_allowed(probe, ("198.18.0.2", 40000), 78, peers, closed)  # another run
    assert not agent.echo_allowed(b"reflect-me-please", ("198.18.0.2", 40000), 77, peers, closed)
    assert not agent.echo_allowed(probe[:5], ("198.18.0.2", 40000), 77, peers, closed)


def vxlan_frame(src_ip: str, vni: int, inner_mac: bytes) -> bytes:
    import socket
    import struct

    inner = inner_mac + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" + b"\x00" * 40
    vxlan = struct.pack("!II", 0x08000000, vni << 8)
    udp = struct.pack("!HHHH", 40000, 8472, 8 + len(vxlan) + len(inner), 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp) + len(vxlan) + len(inner), 0, 0, 64, 17, 0,
                     socket.inet_aton(src_ip), socket.inet_aton("198.18.0.1"))
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + udp + vxlan + inner


def test_agent_capture_sets_stay_bounded_under_a_flood_of_crafted_frames() -> None:
    agent = agent_module()
    capture = agent.PeerCapture(4, 160)
    for i in range(5000):
        frame = vxlan_frame(f"198.18.{i // 250}.{i % 250 + 1}", i, bytes([2, 0, 0, 0, i >> 8 & 0xFF, i & 0xFF]))
        info = agent.parse_frame(frame, 0)
        capture.add(frame, info, 0, 8472, 1)
    result = capture.result()
    assert result["count"] == 5000
    assert len(result["vnis"]) == len(result["inner_dst_macs"]) == len(result["outer_srcs"]) == agent.MAX_SET
    assert len(result["frames"]) <= 4


# --- reports: what a node says is text, never markup -------------------------------------------------------

EVIL_KERNEL = "5.10.0 [click me](http://evil.example/x) <img src=x onerror=alert(1)> **bold** a|b\nnew line"


def test_allure_description_keeps_a_kernel_string_as_text() -> None:
    from vxlan_conformance import catalog
    from vxlan_conformance.model.result import CheckResult
    from vxlan_conformance.plugin.allure_test import _description

    code = next(c for c, info in catalog.load().items() if "{kernel}" in info.what)
    result = CheckResult("node2", (code,), "bad kernel", values={"kernel": EVIL_KERNEL}, check="kernel-known")
    text = _description(result, [catalog.info(code)])
    assert "<img" not in text and "](http" not in text and "**bold**" not in text
    assert "[click me]" not in text and "http://" not in text
    assert "&lt;img src=x onerror=alert\\(1\\)&gt;" in text  # still readable, as text


def test_node_table_markdown_and_html_escape_what_nodes_report() -> None:
    from vxlan_conformance.report.nodes_table import NodeRow, render_html, render_markdown

    row = NodeRow("node2", "198.18.0.2", EVIL_KERNEL, "<b>02:00</b>", "-", "passed", 0, 0)
    markdown = render_markdown([row])
    body = markdown.splitlines()[4:]
    assert len(body) == 1  # one line per node: a newline in a value cannot break the table
    assert "<img" not in markdown and "<b>" not in markdown and "](http" not in markdown
    assert body[0].count(" | ") == len(NodeRow.HEADERS) - 1  # the `|` in the value does not add a cell
    html = render_html([row])
    assert "<img" not in html and "<b>02" not in html and "&lt;img" in html


def test_agent_report_of_the_wrong_shape_costs_only_its_pairs() -> None:
    from vxlan_conformance.mesh.agents import pair_evidence

    plans = {name: {"targets": [{"name": peer} for peer in ("a", "b", "c") if peer != name]} for name in "abc"}
    good = {"udp_echo": {}, "vxlan_frame": {}, "overlay_ping": {}, "df_probe": {}}
    capture = {"count": 1, "by_dport": {}, "csum": {"bad": 0, "ok": 1, "none": 0, "unverifiable": 0},
               "tp_status": {}, "inner_dst_macs": [], "vnis": [], "outer_srcs": [], "requests": {}, "frames": []}
    reports = {"a": {"targets": {"b": good, "c": good}, "captured": {"b": capture, "c": capture}},
               "b": {"targets": {"a": good, "c": good}, "captured": {"a": capture, "c": capture}},
               "c": {"targets": 5, "captured": {"a": 7, "b": None}}}  # c's agent: garbage
    evidence = pair_evidence(plans, reports)
    assert set(evidence) == {(s, r) for s in "abc" for r in "abc" if s != r}
    assert evidence[("a", "b")].errors == [] and evidence[("b", "a")].errors == []
    for pair in (("c", "a"), ("c", "b"), ("a", "c")):
        assert any("wrong shape" in e for e in evidence[pair].errors), evidence[pair]
