"""vxlan_conformance.report without a lab: the matrix picture marks exactly the failing pairs, categories catch the
failure messages the suite writes, the analytics tag is stripped, probe steps follow the evidence."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from vxlan_conformance.model.evidence import PairEvidence
from vxlan_conformance.model.result import CheckResult
from vxlan_conformance.plugin.allure_test import link_name
from vxlan_conformance.report.html import external_fetches, strip_analytics
from vxlan_conformance.report.matrix import MAX_SIDE, build_matrix, render_svg
from vxlan_conformance.report.probe_steps import probe_steps
from vxlan_conformance.report.run_files import categories
from vxlan_conformance.report.titles import title_for

SVG = "{http://www.w3.org/2000/svg}"


def svg_cells(svg: str, nodes: list[str]) -> dict[tuple[str, str], str]:
    """Every (sender, receiver) the picture colours, with its outcome, from the cells' data-* ranges."""
    cells = {}
    for rect in ET.fromstring(svg).iter(f"{SVG}rect"):
        if rect.get("class") != "cell":
            continue
        r0, r1 = map(int, rect.get("data-rows").split("-"))
        c0, c1 = map(int, rect.get("data-cols").split("-"))
        for i in range(r0, r1 + 1):
            for j in range(c0, c1 + 1):
                if i != j:
                    cells[(nodes[i], nodes[j])] = rect.get("data-outcome")
    return cells


def datapath_entries(nodes: list[str], broken: dict[tuple[str, str], str]) -> list[dict]:
    return [{"check": "datapath", "subject": f"{a}->{b}", "status": "failed" if (a, b) in broken else "passed",
             "codes": [broken[(a, b)]] if (a, b) in broken else []}
            for a in nodes for b in nodes if a != b]


def test_matrix_marks_exactly_the_failing_cells():
    nodes = [f"node{i}" for i in range(1, 6)]
    broken = {(a, "node2"): "UDP_PORT_BLOCKED" for a in nodes if a != "node2"}
    broken[("node4", "node5")] = "OUTER_CHECKSUM_BAD"
    entries = datapath_entries(nodes, broken) + [
        {"check": "vtep-mtu", "subject": "node3", "status": "failed", "codes": ["MTU_MISMATCH"]}]
    svg = render_svg(build_matrix(nodes, entries))
    cells = svg_cells(svg, nodes)
    assert {pair for pair, outcome in cells.items() if outcome != "PASSED"} == set(broken)
    assert {pair: cells[pair] for pair in broken} == broken
    assert len(cells) == len(nodes) * (len(nodes) - 1)
    assert "UDP_PORT_BLOCKED (4 pairs)" in svg and "OUTER_CHECKSUM_BAD (1 pairs)" in svg


def test_matrix_shows_pairs_without_a_verdict_as_not_probed():
    nodes = ["a", "b", "c"]
    entries = datapath_entries(["a", "b"], {})
    cells = svg_cells(render_svg(build_matrix(nodes, entries)), nodes)
    assert cells[("a", "c")] == cells[("c", "b")] == "NOT_PROBED"
    assert cells[("a", "b")] == "PASSED"


def test_matrix_at_1000_nodes_aggregates_and_keeps_the_failing_column():
    nodes = [f"n{i:04}" for i in range(1000)]
    broken = {(a, "n0500"): "UDP_PORT_BLOCKED" for a in nodes if a != "n0500"}
    svg = render_svg(build_matrix(nodes, datapath_entries(nodes, broken)))
    root = ET.fromstring(svg)
    rects = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "cell"]
    labels = [t for t in root.iter(f"{SVG}text") if t.get("class") == "row-label"]
    assert len(labels) <= MAX_SIDE and len(svg) < 1_000_000
    failing_cols = {r.get("data-cols") for r in rects if r.get("data-outcome") == "UDP_PORT_BLOCKED"}
    assert len(failing_cols) == 1
    first, last = map(int, failing_cols.pop().split("-"))
    assert first <= 500 <= last


@pytest.mark.parametrize("codes", [("UDP_PORT_BLOCKED",), ("VTEP_MAC_DUPLICATE", "UDP_PORT_BLOCKED")])
def test_categories_match_the_failure_message_of_each_code(codes):
    message = "Failed: " + CheckResult("node1->node2", codes, "nothing arrived", check="datapath").failure_text()
    for code in codes:
        category = next(c for c in categories() if c["name"].startswith(f"{code}:"))
        assert re.fullmatch(category["messageRegex"], message)      # Allure 2 (Java matches())
        assert re.search(category["messageRegex"], message)         # Allure 3 (JS RegExp.test)
    other = next(c for c in categories() if c["name"].startswith("MTU_MISMATCH:"))
    assert not re.fullmatch(other["messageRegex"], message)


def test_strip_analytics_removes_the_tag_and_leaves_the_page():
    page = ('<head><script async src="https://www.googletagmanager.com/gtag/js?id=G-X"></script>\n'
            "<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}"
            "gtag('js',new Date());</script><script>window.app=1</script></head>")
    assert external_fetches(page)
    html, count = strip_analytics(page)
    assert count == 2 and "gtag" not in html and "window.app=1" in html
    assert external_fetches(html) == []


def test_external_fetches_ignores_plain_links():
    assert external_fetches('<a href="https://github.com/flannel-io/flannel/issues/869">x</a>') == []
    assert external_fetches('<link rel="stylesheet" href="//fonts.example/x.css">')


def test_titles_name_the_subject():
    assert title_for("vtep-mac-unique", "node2") == "VTEP MAC unique on node2"
    assert title_for("datapath", "node1->node2") == "Datapath node1 -> node2"
    assert title_for("datapath", "node1->*") == "Datapath from node1 to every peer"
    assert title_for("cluster-view", "") == "Cluster view available"


def test_link_name():
    assert link_name("https://github.com/flannel-io/flannel/issues/869") == "flannel-io/flannel#869"
    assert link_name("https://github.com/kubernetes/kubernetes/pull/92035") == "kubernetes/kubernetes#92035"
    assert link_name("https://example.org/page") == "https://example.org/page"


def test_probe_steps_of_a_blocked_port_pair():
    """The evidence of node1->node2 with UDP 8472 dropped at node2 (recorded from the lab)."""
    evidence = {
        "sender": "node1", "receiver": "node2",
        "udp_echo": {"port": 18472, "per_size": {
            "1472": {"sent": 1, "replied": 1, "corrupted": 0, "error": None, "rtt_ms": 1.1},
            "37": {"sent": 1, "replied": 1, "corrupted": 0, "error": None, "rtt_ms": 1.1}}},
        "vxlan_frame": {"sent": 3, "reply_seen": False, "error": None, "port": 8472},
        "overlay_ping": {"sent": 3, "reply_seen": False, "error": None},
        "df_probe": {"sent": 3, "reply_seen": False, "error": None, "size": 1450},
        "captured": {"available": True, "count": 3, "by_dport": {"18472": 3}, "bad_csum": 0, "valid_csum": 3,
                     "outer_srcs": ["198.18.128.1"]},
    }
    steps = probe_steps(PairEvidence.from_dict({**evidence, "probed": True}), "flannel.1")
    assert [(s.title, s.ok) for s in steps] == [
        ("UDP echo 37 bytes to port 18472", True),
        ("UDP echo 1472 bytes to port 18472", True),
        ("Raw VXLAN frame to UDP 8472", False),
        ("Overlay ping through flannel.1", False),
        ("DF probe of 1450 bytes", False),
        ("Capture at node2 of traffic from node1", False),
    ]
    assert steps[-1].problem == "no frame arrived at the VXLAN port 8472"
