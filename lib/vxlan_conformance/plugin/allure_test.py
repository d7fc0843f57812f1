"""Allure metadata for one suite test: a readable title, the epic/feature/story grouping, parameters, and,
once the verdict is known, links to the incident, steps for each probe and the evidence as attachments.

`describe_test` runs at teardown of every suite test (so even a test that crashed gets its title);
`attach_verdict` runs from vxlan_conformance.model.result.record() with the CheckResult.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import allure
import pytest
from allure_commons.types import AttachmentType

from vxlan_conformance import catalog
from vxlan_conformance.model.evidence import PairEvidence
from vxlan_conformance.model.result import CheckResult
from vxlan_conformance.model.rundata import RunData
from vxlan_conformance.report.nodes_table import markdown_text
from vxlan_conformance.report.probe_steps import record_probe_steps
from vxlan_conformance.report.titles import EPIC, check_and_subject, feature_of, pair_label, title_for

# catalog severity -> Allure's severity scale
SEVERITY = {"critical": "blocker", "high": "critical", "medium": "normal", "low": "minor", "info": "trivial"}
# one copy of each node's facts in a passing run: on its first access check
FACTS_ON_PASS = "ssh-reachable"
# the codes of the test's verdicts, for its title at teardown
CODES = pytest.StashKey[list[str]]()


def describe_test(item: pytest.Item) -> None:
    """A failing test's title ends with its codes, so the report's test list alone says which pairs are
    broken and why."""
    check, subject = check_and_subject(item.nodeid)
    codes = dict.fromkeys(item.stash.get(CODES, []))
    title = title_for(check, subject)
    allure.dynamic.title(f"{title}: {', '.join(codes)}" if codes else title)
    allure.dynamic.epic(EPIC)
    allure.dynamic.feature(feature_of(item.path.stem))
    allure.dynamic.story(check)
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    if "node" in params:
        allure.dynamic.parameter("node", params["node"])
    if "pairs" in params:  # readable instead of the list's repr: the test id, `A -> B` or `A -> *`
        allure.dynamic.parameter("pairs", pair_label(subject))


def attach_verdict(item: pytest.Item, result: CheckResult, run: RunData | None) -> None:
    """Links, severity, description, probe steps and evidence attachments for one verdict."""
    item.stash.setdefault(CODES, []).extend(result.codes)
    sender, _, receiver = result.subject.partition("->")
    if run is not None and result.check == "datapath" and result.subject in run.mesh:
        # a test that judges several pairs (one sender's, on large clusters) nests each pair's steps
        _, tested = check_and_subject(item.nodeid)
        record_probe_steps(run.mesh[result.subject], run.overlay.get("device", ""),
                           parent=None if tested == result.subject else pair_label(result.subject))
    if result.passed:
        if run is not None and result.check == FACTS_ON_PASS:
            _attach_facts(run, sender)
        return
    infos = [catalog.info(code) for code in dict.fromkeys(result.codes) if code in catalog.load()]
    for info in infos:
        for link in info.links:
            allure.dynamic.issue(link, name=f"{info.code}: {link_name(link)}")
    if infos:
        worst = min(infos, key=lambda i: catalog.SEVERITIES.index(i.severity))
        allure.dynamic.severity(SEVERITY[worst.severity])
        allure.dynamic.description(_description(result, infos))
    evidence = "\n\n".join(filter(None, [result.message, result.evidence]))
    if evidence:
        allure.attach(evidence, name="evidence", attachment_type=AttachmentType.TEXT)
    if remediation := result.remediation():
        allure.attach(remediation, name="remediation", attachment_type=AttachmentType.TEXT)
    if run is None:
        return
    if sender in run.facts:
        _attach_facts(run, sender)
    if result.check == "datapath" and result.subject in run.mesh:
        _attach_mesh_evidence(run.mesh[result.subject], sender, receiver)


def link_name(url: str) -> str:
    """`https://github.com/flannel-io/flannel/issues/869` -> `flannel-io/flannel#869`; other URLs as
    they are."""
    head, sep, number = url.removeprefix("https://github.com/").rpartition("/")
    repo, _, kind = head.rpartition("/")
    if url.startswith("https://github.com/") and kind in ("issues", "pull") and number.isdigit():
        return f"{repo}#{number}"
    return url


def _description(result: CheckResult, infos: list[catalog.CodeInfo]) -> str:
    """Markdown: per code its title, meaning, and the incident it comes from."""
    sender, _, receiver = result.subject.partition("->")
    values = {**result.values, "node": result.values.get("node", sender)}
    if receiver:
        values.setdefault("peer", receiver)
    values = {key: markdown_text(value) if isinstance(value, str) else value for key, value in values.items()}
    parts = []
    for info in infos:
        parts.append(f"**{info.code}**: {info.title}\n\n{catalog.fill(info.what, **values)}\n\n"
                     f"Incident: {info.incident}")
    return "\n\n---\n\n".join(parts)


def _attach_facts(run: RunData, host: str) -> None:
    facts = run.facts.get(host)
    if facts is not None:
        allure.attach(json.dumps(facts.to_dict(), indent=1, default=str), name=f"facts of {host}",
                      attachment_type=AttachmentType.JSON)


def _attach_mesh_evidence(evidence: PairEvidence, sender: str, receiver: str) -> None:
    summary = {key: value for key, value in evidence.to_dict().items() if key != "pcap_frames"}
    allure.attach(json.dumps(summary, indent=1), name=f"probe evidence {sender} -> {receiver}",
                  attachment_type=AttachmentType.JSON)
    frames = evidence.pcap_frames
    if not frames:
        return
    from vxlan_conformance.mesh.frames import write_pcapng  # scapy: only for a failing pair that captured frames

    verdicts = [(f.csum, f.tp_status) for f in evidence.captured.frames]
    with tempfile.TemporaryDirectory(prefix="vxlan-pcap-") as tmp:
        path = Path(tmp) / "frames.pcapng"
        count = write_pcapng(path, frames, verdicts)
        allure.attach(path.read_bytes(), name=f"{count} frames from {sender} captured at {receiver} (pcapng, "
                      "each with the receiver's checksum verdict as comment)",
                      attachment_type="application/x-pcapng", extension="pcapng")
