"""--redact without a lab (report/redact.py), on the recorded run data of a real lab run with an iptables DROP on
node2 (tests/fixtures/evidence/, see tests/unit/checks/test_receive_path.py): machine-ids hashed, rule text and
raw outputs gone, addresses other than the nodes' labelled the same way in every file, other hosts hidden,
pcapng captures rewritten to the same length with payloads zeroed and checksum verdicts kept."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN
from scapy.utils import rdpcap

from vxlan_conformance.mesh.frames import write_pcapng
from vxlan_conformance.model.rundata import RunData
from vxlan_conformance.report.redact import Redactor, digest, redact_files, rule_body, written_files

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "evidence" / "firewall-iptables-node2.json"
RULE = "-A INPUT -p udp -m udp --dport 8472 -j DROP"
POD = b"POD-SECRET-payload-31f7"
STRANGER = "203.0.113.77"  # an address no node has: a customer's pod or another peer


@pytest.fixture(scope="module")
def run() -> RunData:
    return RunData.load(FIXTURE)


@pytest.fixture()
def redactor(run) -> Redactor:
    return Redactor.for_run(run, other_hosts=["bastion.corp.example", "node9"], secrets=["Pw-3c9d-secret"])


def test_run_json_loses_machine_ids_rules_and_raw_outputs_and_keeps_the_rest(run, redactor):
    document = json.loads(FIXTURE.read_text())
    redacted = json.dumps(redactor.value(document))
    for facts in run.facts.values():
        assert facts.machine_id not in redacted
        assert f"<machine-id {digest(facts.machine_id)}>" in redacted
    assert RULE not in redacted and "counter packets 0 bytes 0 drop" not in redacted
    assert f"<rule {digest(RULE, 8)} redacted>" in redacted
    again = json.loads(redacted)
    assert all(facts["raw"] == {} for facts in again["facts"].values())
    assert again["facts"]["node2"]["firewall_port_rules"][0] == f"<rule {digest(RULE, 8)} redacted>"
    hits = [h["rule"] for e in again["mesh"].values() for h in e["receive_path"]["netfilter_delta"]]
    assert f"iptables filter INPUT <rule {digest(RULE, 8)} redacted>" in hits
    assert "iptables filter INPUT :policy ACCEPT" in hits  # a chain policy is no rule text
    assert again["addresses"] == document["addresses"]  # the nodes' own addresses stay
    assert again["view"]["node1"]["vtep_ip"] == document["view"]["node1"]["vtep_ip"]
    assert again["facts"]["node1"]["kernel_release"] == document["facts"]["node1"]["kernel_release"]


def test_duplicate_machine_ids_keep_equal_hashes():
    redactor = Redactor(machine_ids=["a" * 32, "b" * 32])
    text = redactor.text(f"node1 {'a' * 32}, node2 {'a' * 32}, node3 {'b' * 32}")
    first, second, third = (part.split(" ", 1)[1] for part in text.split(", "))
    assert first == second != third and "a" * 32 not in text


def test_the_failure_message_names_the_hop_without_the_rule(run, redactor):
    from vxlan_conformance.checks.datapath import diagnose

    message = diagnose(run, "node1", "node2").message
    assert RULE in message
    shown = redactor.text(message)
    assert RULE not in shown and f"`iptables -t filter <rule {digest(RULE, 8)} redacted>`" in shown


def test_addresses_other_than_the_nodes_get_one_label_everywhere(redactor):
    text = (f"from {STRANGER} and fe80::1c2f:3aff:feb0:f53a to 198.18.64.2; again {STRANGER}; "
            "lo 127.0.0.1 ::1, mask 255.255.224.0, mac c6:57:3a:b0:f5:3a, at 23:59:01, "
            "test suites/test_datapath.py::test_datapath")
    shown = redactor.text(text)
    assert shown == ("from <addr-1> and <addr-2> to 198.18.64.2; again <addr-1>; "
                     "lo 127.0.0.1 ::1, mask 255.255.224.0, mac c6:57:3a:b0:f5:3a, at 23:59:01, "
                     "test suites/test_datapath.py::test_datapath")
    assert redactor.text(f"{STRANGER}/24") == "<addr-1>/24"  # the same label in the next file


def test_a_kernel_release_that_looks_like_an_address_is_kept(run):
    run = RunData.load(FIXTURE)
    run.facts["node1"].kernel_release = "4.18.0.193-el8"
    assert Redactor.for_run(run).text("kernel 4.18.0.193-el8") == "kernel 4.18.0.193-el8"


def test_hosts_that_are_no_node_are_hidden_as_whole_words(redactor):
    shown = redactor.text("via bastion.corp.example: node9 down, node90 fine, node1 fine")
    assert shown == "via <host-1>: <host-2> down, node90 fine, node1 fine"


def test_secrets_and_labels_in_markup_files(tmp_path, redactor):
    xml = tmp_path / "junit.xml"
    xml.write_text(f'<testsuite><testcase name="x"><failure message="{RULE} from {STRANGER}">'
                   f"Pw-3c9d-secret {RULE} &amp; {STRANGER}</failure></testcase></testsuite>")
    redactor.file(xml)
    failure = ET.parse(xml).find(".//failure")  # still well-formed: labels escaped
    assert failure.get("message") == f"<rule {digest(RULE, 8)} redacted> from <addr-1>"
    assert failure.text == f"*** <rule {digest(RULE, 8)} redacted> & <addr-1>"


def test_allure_description_is_markdown_and_gets_escaped_labels(tmp_path, redactor):
    result = tmp_path / "x-result.json"
    result.write_text(json.dumps({"description": f"peer {STRANGER}", "statusDetails": {"message": STRANGER}}))
    redactor.file(result)
    assert json.loads(result.read_text()) == {"description": "peer &lt;addr-1&gt;",
                                              "statusDetails": {"message": "<addr-1>"}}


def frames_of(run: RunData) -> list[bytes]:
    """The fixture's captured probe frames, a pod's frame from a stranger through the same tunnel, and one
    with a bad outer checksum."""
    frames = [bytes.fromhex(f) for e in run.mesh.values() for f in e.pcap_frames]
    pod = (Ether() / IP(src="198.18.64.1", dst="198.18.64.2") / UDP(sport=40000, dport=8472) / VXLAN(vni=1)
           / Ether() / IP(src=STRANGER, dst="100.64.2.7") / UDP(sport=5000, dport=8080) / POD)
    bad = pod.copy()
    bad[UDP].chksum = 0x1234
    return [*frames, bytes(pod), bytes(bad)]


def checksums_ok(frame: Ether) -> list[bool]:
    """Whether each IP header and L4 checksum in the frame is right: scapy recomputes the one set to None
    when the whole frame is rebuilt."""
    raw = bytes(frame)
    verdicts = []
    for index, layer in enumerate(frame.iterpayloads()):
        if isinstance(layer, (IP, UDP, ICMP)) and not (isinstance(layer, UDP) and layer.chksum == 0):
            copy = Ether(raw)
            target = list(copy.iterpayloads())[index]
            target.chksum = None
            verdicts.append(list(Ether(bytes(copy)).iterpayloads())[index].chksum == layer.chksum)
    return verdicts


def test_pcapng_is_rewritten_same_length_addresses_mapped_payload_zeroed(tmp_path, run, redactor):
    frames = frames_of(run)
    path = tmp_path / "frames.pcapng"
    write_pcapng(path, [f.hex() for f in frames])
    before = path.read_bytes()
    redactor.file(path)
    after = path.read_bytes()
    assert len(after) == len(before) and POD not in after and b"vxlan-conformance" not in after
    packets = rdpcap(str(path))
    assert [len(bytes(p)) for p in packets] == [len(f) for f in frames]
    verdicts = [checksums_ok(Ether(f)) for f in frames]
    assert verdicts[-2] == [True] * 4 and verdicts[-1] == [True, False, True, True]  # outer UDP bad
    assert [checksums_ok(p) for p in packets] == verdicts  # right stays right, wrong stays wrong
    pod = packets[-2]
    inner = pod[VXLAN][IP]
    assert (pod[IP].src, pod[IP].dst) == ("198.18.64.1", "198.18.64.2")  # node addresses stay
    assert (inner.src, inner.dst) == (f"240.0.0.{redactor.numbers[STRANGER]}",
                                      f"240.0.0.{redactor.numbers['100.64.2.7']}")  # a pod, not a VTEP
    assert bytes(inner[UDP].payload) == bytes(len(POD))
    assert redactor.text(STRANGER) == f"<addr-{redactor.numbers[STRANGER]}>"  # text and pcap agree
    for packet in packets[:-2]:
        if IP in packet and ICMP in packet:
            assert set(bytes(packet[ICMP].payload)) <= {0}


def test_a_file_that_cannot_be_redacted_is_removed_and_unknown_binaries_emptied(tmp_path, redactor):
    reports = tmp_path / "reports"
    (reports / "allure-results").mkdir(parents=True)
    broken = reports / "allure-results" / "a-attachment.pcapng"
    broken.write_bytes(b"\x0a\x0d\x0d\x0a\xff\xff\xff\xff")
    blob = reports / "allure-results" / "b-attachment.bin"
    blob.write_bytes(b"\x00\xff" + STRANGER.encode())
    text = reports / "nodes.md"
    text.write_text(f"| node9 | {STRANGER} |")
    theirs = reports / "notes.pdf"  # a file the run did not write
    theirs.write_bytes(b"%PDF\0" + STRANGER.encode())
    lines: list[str] = []
    done = redact_files(written_files(reports, None, reports / "allure-results"), redactor, lines.append)
    assert not broken.exists() and len(lines) == 1 and "could not be redacted" in lines[0]
    assert blob.read_bytes() == b"" and text.read_text() == "| &lt;host-2&gt; | &lt;addr-1&gt; |"
    assert set(done) == {blob, text} and theirs.read_bytes() == b"%PDF\0" + STRANGER.encode()


@pytest.mark.parametrize("rule,body", [("iptables filter INPUT -A INPUT -j DROP", "-A INPUT -j DROP"),
                                       ("nft inet filter input counter drop", "counter drop"),
                                       ("iptables filter INPUT :policy DROP", "")])
def test_rule_body(rule, body):
    assert rule_body(rule) == body


def test_overlapping_values_are_replaced_longest_first():
    redactor = Redactor(secrets=["abc-secret", "abc-secret-longer", "abx-secret"], machine_ids=["abc-secret-l0ng"])
    shown = redactor.text("abc-secret-longer abc-secret abx-secret abc-secret-l0ng abz-secret")
    assert shown == f"*** *** *** <machine-id {digest('abc-secret-l0ng')}> abz-secret"


def test_thousands_of_raw_outputs_cost_little_per_megabyte():
    """A 100-node run holds ~1,500 raw outputs; as one plain alternation 1 MB of text took 43 s."""
    import time

    raw = [(f"section{i}", f"line one of {i}\n" + "x" * 80 + f"\nnode{i} end") for i in range(3000)]
    redactor = Redactor(raw_outputs=raw)
    text = ("x " * 250_000) + raw[1234][1]
    started = time.perf_counter()
    shown = redactor.text(text)
    assert time.perf_counter() - started < 10
    assert shown.endswith("<output of section1234 redacted>")


def test_a_value_inside_or_at_the_start_of_an_unconfirmed_head_is_still_found():
    long_value = "prefix-shared-by-two-values-then-A" + "x" * 60
    redactor = Redactor(secrets=["prefix-shared", long_value, "shared-by-two-values-then-B"])
    assert redactor.text("prefix-shared-by-two-values-then-B") == "***-by-two-values-then-B"
    assert redactor.text("prefix-shared-by-two-values-then-B".replace("prefix-", "p ")) == "p ***"
