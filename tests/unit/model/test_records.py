"""from_plain: typed data back from JSON. The run file of every CNI reads back equal to what was saved; strict
reading (evidence as agents send it) refuses each wrong shape with ValueError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit import builders
from vxlan_conformance.model.evidence import PairEvidence
from vxlan_conformance.model.records import Route, VxlanDevice, from_plain
from vxlan_conformance.model.rundata import RunData


@pytest.mark.parametrize("cni", sorted(builders.BUILDERS))
def test_a_saved_run_loads_back_equal(cni: str, tmp_path: Path) -> None:
    run = builders.BUILDERS[cni]()
    run.save(tmp_path / "run.json")
    assert RunData.load(tmp_path / "run.json") == run


def test_evidence_reads_back_equal_strict_or_not() -> None:
    evidence = builders.flannel_run().mesh["node1->node2"]
    plain = evidence.to_dict()
    assert PairEvidence.from_dict(plain) == evidence == PairEvidence.from_dict(plain, strict=False)


def _evidence() -> dict:
    return builders.flannel_run().mesh["node1->node2"].to_dict()


@pytest.mark.parametrize(("break_it", "said"), [
    (lambda e: e["captured"].update(count="3"), "'3' is not int"),
    (lambda e: e["captured"].update(count=True), "True is not int"),
    (lambda e: e.update(captured=[]), "[] is not a dict"),
    (lambda e: e.update(errors="boom"), "'boom' is not a list"),
    (lambda e: e["captured"].update(by_dport={"x": 1}), "bad key in"),
], ids=["string-for-int", "bool-for-int", "list-for-record", "string-for-list", "bad-int-key"])
def test_strict_reading_refuses_a_wrong_shape(break_it, said: str) -> None:
    evidence = _evidence()
    break_it(evidence)
    with pytest.raises(ValueError, match=said.replace("[", r"\[").replace("]", r"\]")):
        PairEvidence.from_dict(evidence)


def test_int_keys_come_back_from_json_strings() -> None:
    evidence = json.loads(json.dumps(_evidence()))
    assert all(isinstance(port, int) for port in PairEvidence.from_dict(evidence).captured.by_dport)


def test_unknown_keys_are_ignored_and_none_stays_none() -> None:
    assert from_plain(Route, {"dst": "default", "via": None, "extra": 1}) == Route("default", None)
    device = VxlanDevice(name="flannel.1", vni=1, port=8472, local="198.18.0.1", learning=False)
    assert from_plain(VxlanDevice, {**vars(device), "unknown": [1]}) == device


def test_per_process_caches_are_not_saved(tmp_path: Path) -> None:
    run = builders.flannel_run()
    run.pairs()                                   # fills RunData._derived
    run.facts["node1"].fdb_for("00:00:00:00:00:00")  # fills NodeFacts._index
    run.save(tmp_path / "run.json")
    text = (tmp_path / "run.json").read_text()
    assert "_derived" not in text and "_index" not in text
    assert RunData.load(tmp_path / "run.json") == run
