"""Issue 20, handover reports end to end: the suite run as a user runs it (a subprocess, pytest -n auto) with
--redact against the lab with a host firewall dropping VXLAN on node3, while pods talk through the overlay.
No file the run writes holds a secret, a machine-id, the rule text or a pod's payload; tshark reads its
pcapng captures; the verdicts are those of the same run without --redact. And a view command carrying a
token never puts it in a file, whether the view works or fails."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from tests.lab.lab_fixtures import lab_4
from tests.lab.suite_runner import SuiteRun, run_suite
from tests.lab.test_e2e_receive_path import MARKER, background_traffic, stop
from tests.lab.test_secrets import everything_written
from vxlan_conformance.model.rundata import RunData
from vxlan_conformance.report.redact import rule_body

pytestmark = pytest.mark.root
__all__ = ["lab_4"]  # the fixture is used by name

FAULT = "firewall=iptables@node3"
PASSWORD, BECOME_PASSWORD = "Pw-6e0b1d-login", "Pw-a83f52-become"
TOKEN = "eyJhbGciOi-vxlan-view-token-5c1e97"


def inventory_with(state, path: Path, **all_vars: object) -> Path:
    inventory = yaml.safe_load(Path(state.inventory_path).read_text())
    inventory["all"]["vars"].update(all_vars)
    path.write_text(yaml.safe_dump(inventory))
    return path


def verdicts(result: SuiteRun) -> set[tuple[str, str, str, tuple[str, ...]]]:
    assert result.summary is not None, result.output[-3000:]
    return {(r["check"], r["subject"], r["status"], tuple(r["codes"])) for r in result.summary["results"]}


def test_redacted_reports_hold_no_machine_id_rule_secret_or_pod_payload(lab_4, tmp_path):
    lab, state = lab_4
    inventory = inventory_with(state, tmp_path / "hosts.yaml", ansible_password=PASSWORD, ansible_become=True,
                               ansible_become_password=BECOME_PASSWORD, vxlan_kubectl=f"kubectl --token={TOKEN}")
    lab.fault([FAULT])
    try:
        plain = run_suite(inventory, tmp_path / "plain")
        procs = background_traffic(state)
        try:
            redacted = run_suite(inventory, tmp_path / "redacted", "--redact")
        finally:
            stop(procs)
    finally:
        lab.clear_faults()
    assert plain.exit_code == redacted.exit_code == 1, redacted.output[-3000:]
    assert {(s, c) for s, c in plain.failures()} == {(f"{a}->node3", "HOST_FIREWALL_DROP")
                                                     for a in ("node1", "node2", "node4")}
    assert verdicts(redacted) == verdicts(plain)
    assert "report files redacted for handover" in redacted.output

    # what must not be handed over, read from the unredacted run
    run = RunData.load(tmp_path / "plain" / ".run" / "run.json")
    machine_ids = [f.machine_id for f in run.facts.values()]
    rules = {" ".join(r.split()) for f in run.facts.values() for r in f.firewall_port_rules}
    rules |= {rule_body(h.rule) for e in run.mesh.values() for h in e.receive_path.netfilter_delta} - {""}
    assert len(set(machine_ids)) == 4 and "-A INPUT -p udp -m udp --dport 8472 -j DROP" in rules
    plain_text = "\n".join(everything_written(tmp_path / "plain", "").values())
    assert all(m in plain_text for m in machine_ids)  # the scan below would see them

    needles = [*machine_ids, *rules, PASSWORD, BECOME_PASSWORD, TOKEN]
    pod = [MARKER, MARKER.hex().encode(), MARKER.hex().upper().encode(), MARKER[:16].hex().encode()]
    written = [p for p in (tmp_path / "redacted").rglob("*") if p.is_file()]
    assert {"summary.json", "junit.xml", "nodes.md", "run.json"} <= {p.name for p in written}
    assert any(p.suffix == ".pcapng" for p in written)
    for path in written:
        data = path.read_bytes()
        text = data.decode(errors="replace")
        assert [n for n in needles if n in text] == [], path
        assert not any(p in data for p in pod), f"pod traffic in {path}"
        if path.suffix == ".json":
            json.loads(data)  # still well-formed
        elif path.suffix in (".xml", ".svg"):
            ET.fromstring(data)
    assert [s for s in (PASSWORD, BECOME_PASSWORD, TOKEN) if s in redacted.output] == []  # the console is not redacted
    redacted_run = json.loads((tmp_path / "redacted" / ".run" / "run.json").read_text())
    assert all(f["raw"] == {} and f["machine_id"].startswith("<machine-id ") for f in redacted_run["facts"].values())
    messages = [r["message"] for r in redacted.summary["results"] if r["status"] == "failed"]
    assert messages and all("redacted>`" in m for m in messages), messages


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed (scripts/install.sh installs it)")
def test_tshark_reads_the_redacted_pcapng(lab_4, tmp_path):
    lab, state = lab_4
    lab.fault([FAULT])
    try:
        result = run_suite(state.inventory_path, tmp_path / "reports", "suites/test_datapath.py", "--redact")
    finally:
        lab.clear_faults()
    pcaps = sorted((tmp_path / "reports").rglob("*.pcapng"))
    assert result.exit_code == 1 and pcaps, result.output[-3000:]
    for pcap in pcaps:
        out = subprocess.run(["tshark", "-r", str(pcap), "-d", "udp.port==8472,vxlan", "-T", "fields",
                              "-e", "frame.comment", "-e", "ip.src", "-e", "data.data"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        rows = [line.split("\t") for line in out.stdout.splitlines() if line]
        assert rows and all(row[0].startswith("receiver's verdict: ") for row in rows), out.stdout
        assert all(set(row[2]) <= {"0", ","} for row in rows if len(row) > 2), out.stdout  # payloads zeroed


@pytest.mark.parametrize("works", [True, False], ids=["view-works", "view-fails"])
def test_a_view_command_token_never_reaches_a_file(lab_4, tmp_path, works):
    """vxlan_kubectl with --token: the lab's kubectl takes it and answers (or is given an argument it refuses,
    so the view fails and its error is reported); without --redact no written file and no console line holds
    the token."""
    _, state = lab_4
    command = f"kubectl --token {TOKEN}" + ("" if works else " --no-such-flag")
    inventory = inventory_with(state, tmp_path / "hosts.yaml", vxlan_kubectl=command)
    result = run_suite(inventory, tmp_path / "reports", "-v", "-rA")
    view = next(r for r in result.summary["results"] if r["check"] == "cluster-view")
    assert (view["status"], view["codes"]) == (("passed", []) if works else ("failed", ["VIEW_UNAVAILABLE"])), view
    texts = everything_written(tmp_path / "reports", result.output)
    assert any(name.startswith("allure-results/") for name in texts) and ".run/run.json" in texts
    assert [name for name, text in texts.items() if TOKEN in text] == []
