"""The known-kernel list: streams, rpm comparison, the project rows, and a site's own list."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

from vxlan_conformance import kernels
from vxlan_conformance.kernels import KernelListError, classify, load_rows, rpmvercmp, stream_of

SEED_003_BAD = "4.19.90-52.49.v2207.ky10.x86_64"
SEED_003_GOOD = "4.19.90-52.22.v2207.ky10.x86_64"
SEED_004 = "3.10.0-957.el7.x86_64"
SEED_000 = "4.19.90-17.ky10.aarch64"
NAT_CONDITIONS = ("tx-offload-on", "random-fully")


@pytest.fixture(scope="module")
def rows() -> list[kernels.KernelRow]:
    return load_rows()


def write(tmp_path: Path, text: str, name: str = "site-kernels.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("release", "stream"), [
    (SEED_003_BAD, "ky10"),
    (SEED_000, "ky10"),
    (SEED_004, "el7"),
    ("4.18.0-305.7.1.el8_4.x86_64", "el8"),
    ("5.14.0-70.13.1.el9_0.aarch64", "el9"),
    ("5.4.17-2136.300.7.el7uek.x86_64", "el7uek"),
    ("6.5.6-300.fc39.x86_64", "fc39"),
    ("5.4.0-42-generic", "ubuntu"),
    ("5.15.0-1051-aws", "ubuntu"),
    ("6.1.0-18-amd64", "debian"),
    ("4.19.0-26-cloud-amd64", "debian"),
    ("5.14.21-150400.24.97-default", "suse"),
    ("5.10.123", "upstream"),
    ("5.7.0-rc5", "upstream"),
    ("6.18.44-fc-v669", "upstream"),       # the lab machine's self-built kernel: local suffix, no dist tag
    ("not-a-kernel", "unknown"),
])
def test_stream_of(release: str, stream: str) -> None:
    assert stream_of(release) == stream


@pytest.mark.parametrize(("a", "b", "expected"), [   # vectors from rpm's tests/rpmvercmp.at
    ("1.0", "1.0", 0), ("1.0", "2.0", -1), ("2.0", "1.0", 1), ("2.0.1", "2.0.1", 0),
    ("2.0", "2.0.1", -1), ("2.0.1a", "2.0.1", 1), ("5.5p1", "5.5p2", -1), ("5.5p10", "5.5p1", 1),
    ("10xyz", "10.1xyz", -1), ("xyz10", "xyz10.1", -1), ("xyz.4", "8", -1), ("8", "xyz.4", 1),
    ("1.0010", "1.9", 1), ("1.05", "1.5", 0), ("1.0", "1", 1), ("2.0", "2_0", 0), ("2.0", "2a", 1),
    ("6.0.rc1", "6.0", 1), ("10b2", "10a1", 1), ("1b.fc17", "1.fc17", -1),
    ("1.0~rc1", "1.0", -1), ("1.0~rc1", "1.0~rc2", -1), ("1.0~rc1~git123", "1.0~rc1", -1),
    ("1.0^", "1.0", 1), ("1.0^git1", "1.0^git2", -1), ("1.0^git1", "1.01", -1),
    ("1.0^20160101", "1.0.1", -1), ("1.0^git1~pre", "1.0^git1", -1), ("1.0~rc1^git1", "1.0~rc1", 1),
    ("4.19.90-52.49.v2207.ky10", "4.19.90-52.22.v2207.ky10", 1),
    ("3.10.0-957", "3.10.0-1062.9.1", -1), ("3.10.0-1127.8.2", "3.10.0-1062.9.1", 1),
])
def test_rpmvercmp(a: str, b: str, expected: int) -> None:
    assert rpmvercmp(a, b) == expected
    assert rpmvercmp(b, a) == -expected


def test_seed_003_bad_kernel_is_bad_without_conditions(rows: list[kernels.KernelRow]) -> None:
    verdict = classify(SEED_003_BAD, rows)
    assert (verdict.stream, verdict.status, verdict.conditions) == ("ky10", "bad", ())
    assert verdict.row is not None and verdict.row.bug == "ky10-udp-csum"
    assert "seed 003" in verdict.reason and "\n" not in verdict.reason


def test_seed_003_previous_build_is_good(rows: list[kernels.KernelRow]) -> None:
    verdict = classify(SEED_003_GOOD, rows)
    assert verdict.status == "good" and verdict.row is not None and verdict.row.source == "seed 003"


def test_untested_row_gives_unknown_but_names_the_row(rows: list[kernels.KernelRow]) -> None:
    verdict = classify("4.19.90-52.45.v2207.ky10.x86_64", rows)
    assert verdict.status == "unknown" and verdict.row is not None and "untested" in verdict.reason


def test_seed_004_exact_row_beats_the_el7_range(rows: list[kernels.KernelRow]) -> None:
    verdict = classify(SEED_004, rows)
    assert (verdict.stream, verdict.status, verdict.conditions) == ("el7", "bad", NAT_CONDITIONS)
    assert verdict.row is not None and verdict.row.exact == "3.10.0-957.el7"
    assert verdict.row.confidence == "verified" and "seed 004" in verdict.reason


@pytest.mark.parametrize("release", ["3.10.0-1062.9.1.el7.x86_64", "3.10.0-1127.8.2.el7.x86_64"])
def test_reported_el7_kernels_are_bad_by_exact_row(rows: list[kernels.KernelRow], release: str) -> None:
    verdict = classify(release, rows)
    assert verdict.status == "bad" and verdict.row is not None and verdict.row.exact is not None
    assert verdict.conditions == NAT_CONDITIONS


def test_other_el7_builds_fall_under_the_inferred_range(rows: list[kernels.KernelRow]) -> None:
    verdict = classify("3.10.0-1160.119.1.el7.x86_64", rows)
    assert verdict.status == "bad" and verdict.row is not None
    assert verdict.row.exact is None and verdict.row.confidence == "inferred"


def test_distribution_kernel_is_never_judged_by_upstream_ranges(rows: list[kernels.KernelRow]) -> None:
    # as upstream, 4.19.90 is older than the 4.19.123 fix point and would be bad
    assert classify("4.19.90", rows).status == "bad"
    verdict = classify(SEED_000, rows)
    assert (verdict.stream, verdict.status, verdict.row) == ("ky10", "unknown", None)


@pytest.mark.parametrize(("release", "status"), [
    ("4.9.337", "bad"), ("4.14.180", "bad"), ("4.14.181", "unknown"), ("4.14.300", "unknown"),
    ("4.18.20", "bad"), ("4.20.0-rc3", "bad"), ("4.19.100", "bad"), ("4.19.122", "bad"), ("4.19.123", "unknown"),
    ("4.19.325", "unknown"), ("5.0.21", "bad"), ("5.4.40", "bad"), ("5.4.41", "unknown"), ("5.5.19", "bad"),
    ("5.6.12", "bad"), ("5.6.13", "unknown"), ("5.7.0", "unknown"), ("6.18.44-fc-v669", "unknown"),
])
def test_upstream_nat_fix_points(rows: list[kernels.KernelRow], release: str, status: str) -> None:
    # a kernel with the fix is no longer bad, but it is not "good" (validated) either
    verdict = classify(release, rows)
    assert verdict.status == status
    if status == "bad":
        assert verdict.row is not None and verdict.row.bug == "nat-outer-csum"
        assert verdict.conditions == NAT_CONDITIONS
    else:
        assert (verdict.row, verdict.conditions) == (None, ())


def test_narrowest_range_wins(rows: list[kernels.KernelRow]) -> None:
    # inside the whole-stream el8 row (untested) and the RHEL 8.3-8.6 vmxnet3 range (bad)
    verdict = classify("4.18.0-305.7.1.el8_4.x86_64", rows)
    assert verdict.status == "bad" and verdict.row is not None
    assert verdict.row.bug == "vmxnet3-tunnel-csum" and verdict.conditions == ("driver-vmxnet3",)
    assert classify("4.18.0-477.10.1.el8_8.x86_64", rows).status == "unknown"


def test_conditions_come_from_the_row(rows: list[kernels.KernelRow]) -> None:
    verdict = classify("5.9.1", rows)
    assert verdict.status == "bad" and verdict.conditions == ("driver-vmxnet3", "port-not-standard")
    assert set(verdict.conditions) <= set(kernels.CONDITIONS)
    assert classify("5.10.53", rows).status == "unknown"


def test_unknown_release_says_so(rows: list[kernels.KernelRow]) -> None:
    verdict = classify("6.1.0-18-amd64", rows)
    assert (verdict.status, verdict.row, verdict.conditions) == ("unknown", None, ())
    assert "6.1.0-18-amd64" in verdict.reason


def test_every_project_row_has_a_source_and_confidence(rows: list[kernels.KernelRow]) -> None:
    assert rows
    for row in rows:
        assert row.source and row.confidence in kernels.CONFIDENCES and row.origin == str(kernels.PROJECT_LIST)


def test_user_row_replaces_project_row_with_the_same_match(tmp_path: Path) -> None:
    site = write(tmp_path, """
kernels:
  - stream: ky10
    match: {exact: "4.19.90-52.49.v2207.ky10.x86_64"}
    status: good
    bug: site-validated
    confidence: verified
    source: SITE-123
""")
    project = load_rows()
    merged = load_rows([site])
    assert len(merged) == len(project)
    verdict = classify(SEED_003_BAD, merged)
    assert verdict.status == "good" and verdict.row is not None and verdict.row.origin == str(site)
    assert str(site) in verdict.reason


def test_user_exact_row_beats_project_range(tmp_path: Path) -> None:
    site = write(tmp_path, """
- stream: upstream
  match: {exact: "5.4.20"}
  status: good
  bug: site-validated
  confidence: verified
  source: lab run 2026-11-20
""")
    assert classify("5.4.20", load_rows()).status == "bad"
    assert classify("5.4.20", load_rows([site])).status == "good"
    assert classify("5.4.21", load_rows([site])).status == "bad"


def test_user_rows_stay_in_their_stream(tmp_path: Path) -> None:
    site = write(tmp_path, """
kernels:
  - stream: upstream
    match: {min: "4.19.0", max: "4.20.0-rc1"}
    status: good
    bug: site-validated
    confidence: verified
    source: SITE-9
""")
    assert classify(SEED_000, load_rows([site])).status == "unknown"
    assert classify("4.19.90", load_rows([site])).status == "good"     # narrower than the project range


def test_site_list_alone(tmp_path: Path) -> None:
    site = write(tmp_path, """
kernels:
  - stream: ky10
    match: {exact: "4.19.90-17.ky10"}
    status: good
    bug: site-validated
    confidence: verified
    source: SITE-1
""")
    only_site = load_rows([site], include_project=False)
    assert len(only_site) == 1
    assert classify(SEED_000, only_site).status == "good"
    assert classify(SEED_003_GOOD, only_site).status == "unknown"


ROW = """
kernels:
  - stream: {stream}
    match: {match}
    status: {status}
    bug: b
    conditions: {conditions}
    confidence: verified
    source: s
"""


def malformed(**changes: str) -> str:
    fields = {"stream": "upstream", "match": '{exact: "5.4.1"}', "status": "bad", "conditions": "[]"}
    fields.update(changes)
    return ROW.format(**fields)


@pytest.mark.parametrize(("text", "problem"), [
    ("kernels: [\n  - stream: upstream\n", "not valid YAML at line"),
    ("kernels: {stream: upstream}\n", "expected a list"),
    (malformed(status="broken"), "status 'broken' is not one of bad|good|untested"),
    (malformed(conditions="[offload]"), "unknown condition(s) offload"),
    (malformed(match="{max: 5.7}"), "must be quoted"),
    (malformed(match='{exact: "5.4.1", min: "5.4.0"}'), "exact together with min/max"),
    (malformed(match="{}"), "'match' must be a mapping"),
    (malformed(stream="el7", match='{exact: "4.19.90-52.49.v2207.ky10"}'), "belongs to stream ky10"),
    (malformed(match='{min: "5.4.0", min_inclusive: "yes"}'), "must be true or false"),
    (malformed().replace("    source: s\n", ""), "'source' is missing"),
    (malformed().replace("bug: b", "bugs: b"), "unknown field(s) bugs"),
])
def test_malformed_user_list_is_one_line_naming_the_file(tmp_path: Path, text: str, problem: str) -> None:
    site = write(tmp_path, text)
    with pytest.raises(KernelListError) as caught:
        load_rows([site])
    message = str(caught.value)
    assert message.startswith(str(site)) and "\n" not in message
    assert problem in message


def test_missing_user_list_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(KernelListError, match="check vxlan_kernel_list"):
        load_rows([tmp_path / "absent.yaml"])


def test_docstring_examples() -> None:
    assert doctest.testmod(kernels).failed == 0
