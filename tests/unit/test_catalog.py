"""The check catalog: contract codes, placeholders, per-CNI remediation, validation, generated docs."""

from __future__ import annotations

import doctest
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vxlan_conformance import catalog, checks
from vxlan_conformance.catalog import CatalogError

ROOT = Path(__file__).resolve().parents[2]


def test_every_contract_code_is_present_and_complete() -> None:
    codes = catalog.load()
    assert set(catalog.CONTRACT_CODES) <= set(codes)
    for item in codes.values():
        assert item.severity in catalog.SEVERITIES and item.scope in catalog.SCOPES
        assert item.title and item.what and item.incident and item.remediation


def test_access_codes_the_suite_already_emits_exist() -> None:
    for code in ("ROUTE_MISSING", "PYTHON_MISSING", "PRIVILEGES_INSUFFICIENT", "VTEP_DOWN"):
        assert catalog.info(code).code == code


def test_unknown_code_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match="unknown diagnosis code 'NO_SUCH_CODE'"):
        catalog.info("NO_SUCH_CODE")


def test_placeholders_are_filled() -> None:
    text = catalog.remediation("UDP_PORT_BLOCKED", port=8475, node="node1", peer="node2")
    assert "firewall-cmd --permanent --add-port=8475/udp" in text
    assert "{port}" not in text and "{peer}" not in text


def test_placeholders_without_value_stay_as_written() -> None:
    text = catalog.remediation("FDB_MISSING", node="node1", device="flannel.1")
    assert "bridge fdb append {peer_mac} dev flannel.1 dst {peer_address}" in text


def test_other_braces_are_left_alone() -> None:
    grub = catalog.remediation("KERNEL_KNOWN_BAD", kernel="4.19.90-52.49.v2207.ky10.x86_64")
    assert """awk -F\\' '$1=="menuentry " {print i++ " : " $2}' /etc/grub2.cfg""" in grub
    risk = catalog.remediation("CHECKSUM_OFFLOAD_RISK", device="flannel.1")
    assert 'ENV{INTERFACE}=="flannel.1"' in risk
    assert """'{"spec":{"featureDetectOverride":"ChecksumOffloadBroken=true"}}'""" in risk


def test_kernel_list_entry_is_filled_for_the_node() -> None:
    text = catalog.remediation("KERNEL_NOT_VALIDATED", kernel="4.19.90-17.ky10.aarch64", stream="ky10")
    assert 'match: {exact: "4.19.90-17.ky10.aarch64"}' in text and "stream: ky10" in text


def test_fill_ignores_none_and_formats_numbers() -> None:
    assert catalog.fill("{node}:{port}/{peer}", node=None, port=8472) == "{node}:8472/{peer}"


def test_remediation_for_one_cni_leaves_the_others_out() -> None:
    flannel = catalog.remediation("VTEP_MAC_DUPLICATE", cni="flannel", node="node2")
    assert "/etc/systemd/network/10-flannel.link" in flannel and "vxlan.calico" not in flannel
    assert "systemd-machine-id-setup" in flannel            # the common part stays
    every = catalog.remediation("VTEP_MAC_DUPLICATE", node="node2")
    assert "flannel:" in every and "calico:" in every and "cilium:" in every


@pytest.mark.parametrize(("code", "needles"), [
    ("VTEP_MAC_DUPLICATE", ("[Match]", "OriginalName=flannel*", "[Link]", "MACAddressPolicy=none",
                            "ip link delete flannel.1", "restart flanneld")),
    ("PUBLIC_IP_MISMATCH", ("--iface=<nic>", "--public-ip=", "flannel.alpha.coreos.com/public-ip-overwrite")),
    ("PUBLIC_IP_DUPLICATE", ("--iface=<nic>", "--public-ip=", "flannel.alpha.coreos.com/public-ip-overwrite")),
    ("UDP_PORT_BLOCKED", ("security group", "UDP {port}")),
    ("CHECKSUM_OFFLOAD_RISK", ("ethtool -K {device} tx-checksum-ip-generic off", "v1.16.13", "v1.17.9",
                               "v1.18.6")),
    ("KERNEL_KNOWN_BAD", ("grub2-set-default", "grub2-mkconfig -o /etc/grub2.cfg", "52.22.v2207.ky10")),
])
def test_remediation_names_the_concrete_fix(code: str, needles: tuple[str, ...]) -> None:
    text = catalog.info(code).remediation
    for needle in needles:
        assert needle in text


def test_render_has_title_meaning_and_fix() -> None:
    text = catalog.render("UDP_PORT_BLOCKED", node="node1", peer="node2", port=8475)
    first, meaning, fix_label = text.splitlines()[:3]
    assert first == "UDP_PORT_BLOCKED: " + catalog.info("UDP_PORT_BLOCKED").title
    assert "from node1 to node2 on UDP 8475" in meaning and fix_label == "fix:"


def test_docs_page_is_up_to_date() -> None:
    page = (ROOT / "docs" / "checks.md").read_text(encoding="utf-8")
    assert page == catalog.render_markdown(), "regenerate: python -m vxlan_conformance.catalog > docs/checks.md"


def test_module_prints_the_docs_page() -> None:
    done = subprocess.run([sys.executable, "-m", "vxlan_conformance.catalog"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout == catalog.render_markdown()
    for code in catalog.CONTRACT_CODES:
        assert f"\n## {code}\n" in done.stdout and f"[{code}](#{code.lower()})" in done.stdout


def broken_catalog(tmp_path: Path, change) -> Path:
    data = yaml.safe_load(catalog.CATALOG.read_text(encoding="utf-8"))
    change(data["checks"])
    path = tmp_path / "checks.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def entry(checks: list[dict], code: str) -> dict:
    return next(item for item in checks if item["code"] == code)


@pytest.mark.parametrize(("change", "problem"), [
    (lambda checks: entry(checks, "MTU_MISMATCH").pop("severity"), "MTU_MISMATCH: missing field(s) severity"),
    (lambda checks: checks.append(dict(entry(checks, "VTEP_DOWN"))), "code VTEP_DOWN appears twice"),
    (lambda checks: checks.remove(entry(checks, "FDB_WRONG_DST")), "contract code(s) missing: FDB_WRONG_DST"),
    (lambda checks: entry(checks, "VTEP_DOWN").update(severity="fatal"), "severity 'fatal' is not one of"),
    (lambda checks: entry(checks, "VTEP_DOWN").update(scope="pod"), "scope 'pod' is not one of"),
    (lambda checks: entry(checks, "VTEP_DOWN").update(what="down on {host}"), "unknown placeholder(s) {host}"),
    (lambda checks: entry(checks, "VTEP_DOWN").update(remediation={"weave": "x"}), "unknown part(s) weave"),
    (lambda checks: entry(checks, "VTEP_DOWN").update(owner="me"), "unknown field(s) owner"),
    (lambda checks: entry(checks, "VTEP_DOWN").update(title=""), "'title' must be non-empty text"),
])
def test_broken_catalog_is_one_line_naming_the_file(tmp_path: Path, change, problem: str) -> None:
    path = broken_catalog(tmp_path, change)
    with pytest.raises(CatalogError) as caught:
        catalog.load(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and "\n" not in message and problem in message


def test_unchanged_copy_of_the_catalog_loads(tmp_path: Path) -> None:
    assert catalog.load(broken_catalog(tmp_path, lambda checks: None)).keys() == catalog.load().keys()


def test_docstring_examples() -> None:
    assert doctest.testmod(catalog).failed == 0


def test_every_check_id_is_its_suite_test_name() -> None:
    """summary.json takes a result's check id from the registry, an unreachable node's from the test name,
    and the Allure title from the test name: they must be one name, both ways."""
    tests = {name.replace("_", "-") for module in (ROOT / "suites").glob("test_*.py")
             for name in re.findall(r"^def test_(\w+)", module.read_text(), re.M)}
    assert set(checks.REGISTRY) == tests, sorted(set(checks.REGISTRY) ^ tests)


def test_every_registered_code_is_catalogued_and_every_returned_code_registered() -> None:
    known = catalog.load()
    for spec in checks.REGISTRY.values():
        assert set(spec.codes) <= known.keys(), (spec.id, sorted(set(spec.codes) - known.keys()))
        assert spec.title and spec.scope in ("node", "pair", "cluster"), spec
    for module in (ROOT / "lib" / "vxlan_conformance" / "checks").glob("*.py"):
        text = module.read_text()
        for match in re.finditer(r'@check\("([a-z0-9-]+)"', text):
            body = text[match.end():].split("\n@check(", 1)[0]
            returned = set(re.findall(r'"([A-Z][A-Z0-9_]{3,})"', body)) & known.keys()
            assert returned <= set(checks.REGISTRY[match.group(1)].codes), (match.group(1), returned)
