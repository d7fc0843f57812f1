"""Reports of a real run against the lab with UDP 8472 blocked at node2: the matrix marks exactly the cells
X->node2, report.html opens from disk in headless Chromium with no network and shows the failing pairs
with their code, the pcap is attached, and no password of the inventory lands in any file or the console.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.lab.suite_runner import LAB_INSTANCE, PROJECT_ROOT, SuiteRun, run_suite
from vxlan_conformance.lab import Lab
from vxlan_conformance.report.html import ALLURE_BIN

CHROMIUM = shutil.which("chromium")
PASSWORD = "pw-7f3e1c9a-ssh-secret"
BECOME_PASSWORD = "pw-b42d8e61-become-secret"
BLOCKED = "node2"
NODES = [f"node{i}" for i in range(1, 5)]
# Chromium's flags for a closed machine (/work/.library/env/machines/python.md); no name resolves, so
# nothing can leave even if the page tried
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=5000"]

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (scripts/install.sh)")
needs_allure = pytest.mark.skipif(not ALLURE_BIN.exists(), reason="report tool not installed (scripts/install.sh)")


@dataclass
class Page:
    text: str                 # the rendered DOM's visible text
    page_fetches: list[str]   # http(s) URLs the page itself asked for (not Chromium's own services)


def render(url: str, tmp: Path) -> Page:
    """Open `url` in headless Chromium, return the rendered text and what the page fetched (net log)."""
    assert CHROMIUM is not None
    profile, netlog = tmp / "profile", tmp / "net.json"
    shutil.rmtree(profile, ignore_errors=True)
    proc = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--log-net-log={netlog}",
                           "--dump-dom", url], capture_output=True, text=True, timeout=120)
    dom = proc.stdout
    body = dom[dom.find("<body"):]
    root_text = _visible_text(body)
    log = json.loads(netlog.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    fetches = [event["params"]["url"] for event in log["events"]
               if event["type"] == start_job and str(event.get("params", {}).get("url", "")).startswith("http")
               and event["params"].get("initiator") != "not an origin"]   # "not an origin": the browser's own
    return Page(root_text, fetches)


def _visible_text(html: str) -> str:
    html = re.sub(r"<script[\s\S]*?</script>|<style[\s\S]*?</style>", " ", html)
    text = re.sub(r"<[^>]+>", " ", html)
    return " ".join(text.replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&").split())


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SuiteRun]:
    """The suite run as a user runs it, on a lab with blocked-port@node2 and an inventory that carries an
    SSH password and a become password (the lab authenticates with its key; the passwords are there
    to prove they never reach a report)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    tmp = tmp_path_factory.mktemp("report-lab")
    lab = Lab(LAB_INSTANCE)
    try:
        state = lab.up(nodes=4, faults=[f"blocked-port@{BLOCKED}"], inventory_path=str(tmp / "lab.yaml"))
        inventory = yaml.safe_load(Path(state.inventory_path).read_text())
        inventory["all"]["vars"].update(ansible_password=PASSWORD, ansible_become=True,
                                        ansible_become_password=BECOME_PASSWORD)
        secret_inventory = tmp / "inventory-with-passwords.yaml"
        secret_inventory.write_text(yaml.safe_dump(inventory))
        result = run_suite(secret_inventory, tmp / "reports")
        if ALLURE_BIN.exists():  # the README's command that turns the results into report.html
            html = subprocess.run([sys.executable, "-m", "vxlan_conformance.report", "html",
                                   "--reports-dir", str(tmp / "reports")], cwd=PROJECT_ROOT,
                                  capture_output=True, text=True, timeout=300)
            result.output += html.stdout + html.stderr
        yield result
    finally:
        lab.down()



@pytest.mark.root
def test_matrix_marks_exactly_the_cells_into_the_blocked_node(faulty_run: SuiteRun):
    svg = (faulty_run.reports / "mesh-matrix.svg").read_text()
    failing = set()
    for rect in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}rect"):
        if rect.get("class") == "cell" and rect.get("data-outcome") != "PASSED":
            r0, r1 = map(int, rect.get("data-rows").split("-"))
            c0, c1 = map(int, rect.get("data-cols").split("-"))
            failing |= {(NODES[i], NODES[j], rect.get("data-outcome"))
                        for i in range(r0, r1 + 1) for j in range(c0, c1 + 1) if i != j}
    assert failing == {(a, BLOCKED, "UDP_PORT_BLOCKED") for a in NODES if a != BLOCKED}, faulty_run.output[-2000:]
    nodes_md = (faulty_run.reports / "nodes.md").read_text()
    assert "| node2 | 198.18." in nodes_md and "| 0 / 3 |" in nodes_md


@pytest.mark.root
@needs_allure
def test_allure_results_carry_titles_steps_pcap_and_links(faulty_run: SuiteRun):
    results = [json.loads(p.read_text()) for p in (faulty_run.reports / "allure-results").glob("*-result.json")]
    failing = {r["name"]: r for r in results if r["status"] == "failed"}
    assert set(failing) == {f"Datapath {a} -> {BLOCKED}: UDP_PORT_BLOCKED" for a in NODES if a != BLOCKED}
    test = failing[f"Datapath node1 -> {BLOCKED}: UDP_PORT_BLOCKED"]
    labels = {(label["name"], label["value"]) for label in test["labels"]}
    assert {("epic", "vxlan-conformance"), ("feature", "datapath"), ("story", "datapath")} <= labels
    assert {"name": "pairs", "value": f"'node1 -> {BLOCKED}'"} in test["parameters"]
    assert [s["name"] for s in test["steps"]][-1] == f"Capture at {BLOCKED} of traffic from node1"
    assert any(link["url"].endswith("flannel-io/flannel/issues/871") for link in test["links"])
    kinds = {a["type"]: a for a in test["attachments"]}
    pcap = faulty_run.reports / "allure-results" / kinds["application/x-pcapng"]["source"]
    assert pcap.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a" and pcap.suffix == ".pcapng"  # a pcapng section header
    assert {"text/plain", "application/json"} <= set(kinds)
    env = (faulty_run.reports / "allure-results" / "environment.properties").read_text()
    assert "cni=flannel" in env and "nodes=4" in env


@pytest.mark.root
@needs_allure
def test_grouped_pairs_nest_probe_steps_only_for_failing_pairs(faulty_run: SuiteRun, tmp_path: Path):
    """One test per sender (--group-pairs below N): a step per pair; only the failing pair shows its probes."""
    inventory = faulty_run.reports.parent / "lab.yaml"
    run = run_suite(inventory, tmp_path / "reports", "suites/test_datapath.py", "--group-pairs", "2")
    results = [json.loads(p.read_text()) for p in (run.reports / "allure-results").glob("*-result.json")]
    group = next(r for r in results if {"name": "pairs", "value": "'node1 -> *'"} in r["parameters"])
    steps = {s["name"]: s for s in group["steps"]}
    assert set(steps) == {f"node1 -> {b}" for b in NODES if b != "node1"}, run.output[-2000:]
    assert steps[f"node1 -> {BLOCKED}"]["status"] == "failed" and steps[f"node1 -> {BLOCKED}"]["steps"]
    assert all(s["status"] == "passed" and not s.get("steps") for name, s in steps.items()
               if name != f"node1 -> {BLOCKED}")


@pytest.mark.root
@needs_allure
@needs_chromium
def test_report_html_opens_offline_and_shows_the_failing_pairs_and_code(faulty_run: SuiteRun, tmp_path: Path):
    report = faulty_run.reports / "report.html"
    assert report.exists(), faulty_run.output[-2000:]
    assert "googletagmanager" not in report.read_text()
    tree = render(report.as_uri(), tmp_path)
    for sender in (a for a in NODES if a != BLOCKED):
        assert f"Datapath {sender} -> {BLOCKED}: UDP_PORT_BLOCKED" in tree.text
    assert "Datapath node1 -> node3:" not in tree.text   # a passing pair has no code in its title
    assert tree.page_fetches == []
    categories = render(report.as_uri() + "#/categories", tmp_path)
    assert "UDP_PORT_BLOCKED: VXLAN UDP port blocked between nodes 3" in categories.text
    attachments = render(report.as_uri() + "#/globalAttachments", tmp_path)
    assert "mesh matrix image/svg+xml" in attachments.text and "nodes text/html" in attachments.text


@needs_chromium
def test_render_sees_what_a_page_fetches(tmp_path: Path):
    """The no-network check above can fail: a page that loads a remote image is caught."""
    page = tmp_path / "page.html"
    page.write_text('<html><body><p>hello</p><img src="https://example.invalid/x.png"></body></html>')
    result = render(page.as_uri(), tmp_path)
    assert result.text == "hello"
    assert result.page_fetches == ["https://example.invalid/x.png"]


@pytest.mark.root
def test_no_password_in_any_file_or_the_console(faulty_run: SuiteRun):
    written = [p for p in faulty_run.reports.rglob("*") if p.is_file()]
    assert any(p.name == "summary.json" for p in written) and any(p.suffix == ".pcapng" for p in written)
    for secret in (PASSWORD, BECOME_PASSWORD):
        assert secret not in faulty_run.output
        leaked = [str(p) for p in written if secret.encode() in p.read_bytes()]
        assert leaked == [], f"{secret} found in {leaked}"


@pytest.mark.root
@needs_allure
def test_history_accumulates_across_report_runs(faulty_run: SuiteRun):
    command = [sys.executable, "-m", "vxlan_conformance.report", "html", "--reports-dir", str(faulty_run.reports),
               "--history"]
    for _ in range(2):
        proc = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    history = (faulty_run.reports / "history" / "history.jsonl").read_text().splitlines()
    assert len(history) == 2
    assert "googletagmanager" not in (faulty_run.reports / "report.html").read_text()


def test_html_command_without_results_says_what_to_do(tmp_path: Path):
    proc = subprocess.run([sys.executable, "-m", "vxlan_conformance.report", "html", "--reports-dir", str(tmp_path)],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "no Allure results; run the suite first" in proc.stderr
