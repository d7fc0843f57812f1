"""Cilium's tunnel endpoints in the collect script's `tunnel` section: the tunnel map (`cilium-dbg bpf tunnel
list -o json`, up to v1.17) and, from v1.18 where that command is gone, the ipcache's pod CIDR entries
(`cilium-dbg bpf ipcache list -o json`). The section's first line names the command that was read."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.unit.builders import ADDR, CIDR, IPCACHE_LIST, go_json, ipcache_list
from vxlan_conformance.collect import facts
from vxlan_conformance.lab import cilium as lab_cilium

OUTPUTS = Path(__file__).resolve().parents[2] / "fixtures" / "outputs"
FIXTURE = "cilium-v1.18_bpf-ipcache-list-o-json.txt"


def fixture_output() -> str:
    """The fixture without its `# ` comment lines: what cilium-dbg printed."""
    text = (OUTPUTS / FIXTURE).read_text()
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("# "))


def tunnel_section(body: str, read: str | None, rc: int = 0) -> str:
    head = f"{facts._READ} {read}\n" if read else ""
    return f"{facts.MARKER} tunnel\n{head}{body}\n{facts.MARKER} tunnel rc={rc}\n"


def parse(body: str, read: str | None, rc: int = 0):
    return facts.parse("node1", tunnel_section(body, read, rc), "cilium_vxlan", ADDR["node1"])


def test_fixture_is_upstreams_json_shape():
    output = fixture_output()
    assert output.endswith("}\n\n")                          # Println of the JSON, then of ""
    data = json.loads(output)
    assert all(isinstance(v, list) and len(v) == 1 for v in data.values())
    assert data["0.0.0.0/0"] == ["identity=2 encryptkey=0 tunnelendpoint=0.0.0.0 flags=<none>"]
    assert "\\u003cnone\\u003e" in output and "<none>" not in output  # Go's encoding/json escapes < and >
    assert list(data) == sorted(data)                         # encoding/json sorts map keys


def test_ipcache_pod_cidr_entries_give_the_pod_cidr_address_to_tunnel_endpoint_map():
    """Only the remote nodes' pod CIDR prefixes with a tunnel endpoint count: not the /32s (pods, node,
    router and health IPs), not the world entry or a CIDR identity (no endpoint), not a skiptunnel prefix,
    not another ClusterMesh cluster's prefix (@7)."""
    assert facts._ipcache_tunnels(fixture_output()) == {"100.127.2.0": "198.18.192.2", "100.127.3.0": "198.18.192.3"}


def test_ipcache_read_on_v1_18_is_recorded_with_its_command():
    node = parse(fixture_output().rstrip("\n"), IPCACHE_LIST)
    assert node.tunnel_map == {"100.127.2.0": "198.18.192.2", "100.127.3.0": "198.18.192.3"}
    assert node.tunnel_source == IPCACHE_LIST
    assert not [n for n in node.notes if n.startswith("section tunnel")]
    assert node.raw["tunnel"].startswith(f"{facts._READ} {IPCACHE_LIST}\n{{")  # the evidence keeps the command


def test_the_builders_ipcache_is_the_same_shape():
    assert facts._ipcache_tunnels(go_json(ipcache_list("node2"))) == {
        CIDR["node1"].split("/")[0]: ADDR["node1"], CIDR["node3"].split("/")[0]: ADDR["node3"]}


@pytest.mark.parametrize(("entries", "expected"), [
    pytest.param({"10.0.1.0/24": ["identity=2 encryptkey=0 tunnelendpoint=0.0.0.0 flags=<none>"]}, {},
                 id="no tunnel endpoint"),
    pytest.param({"10.0.1.0/24": ["identity=2 encryptkey=0 tunnelendpoint=192.0.2.2 flags=skiptunnel,hastunnel"]},
                 {}, id="skiptunnel"),
    pytest.param({"10.0.1.0/24@3": ["identity=2 encryptkey=0 tunnelendpoint=192.0.2.2 flags=hastunnel"]}, {},
                 id="another cluster"),
    pytest.param({"10.0.1.0/24": ["identity=2 encryptkey=0 tunnelendpoint=192.0.2.2 flags=hastunnel"],
                  "10.0.1.0/25": ["identity=2 encryptkey=0 tunnelendpoint=192.0.2.9 flags=hastunnel"]},
                 {"10.0.1.0": "192.0.2.9"}, id="longest prefix wins"),
    pytest.param({"<unknown>": ["identity=0 encryptkey=0 tunnelendpoint=0.0.0.0 flags=<none>"],
                  "fd00:10:244:2::/64": ["identity=2 encryptkey=0 tunnelendpoint=192.0.2.2 flags=hastunnel"]},
                 {"fd00:10:244:2::": "192.0.2.2"}, id="unknown family and IPv6"),
    pytest.param({"10.0.1.0/24": ["identity=2 encryptkey=0 tunnelendpoint=2001:db8::2 flags=hastunnel,ipv6tunnel"]},
                 {"10.0.1.0": "2001:db8::2"}, id="IPv6 underlay"),
])
def test_ipcache_entries_as_upstream_means_them(entries, expected):
    assert facts._ipcache_tunnels(go_json(entries)) == expected


def test_tunnel_map_before_v1_18_is_still_read_and_recorded():
    node = parse(json.dumps({"100.127.2.0": ["198.18.192.2:0"]}), "cilium-dbg bpf tunnel list -o json")
    assert node.tunnel_map == {"100.127.2.0": "198.18.192.2"}
    assert node.tunnel_source == "cilium-dbg bpf tunnel list -o json"


def test_failed_or_oversized_listing_is_a_note_naming_the_command_not_a_map():
    failed = parse("Error: Unable to open map: no such file or directory", IPCACHE_LIST, rc=1)
    assert failed.tunnel_map is None and failed.tunnel_source == IPCACHE_LIST
    assert "section tunnel: rc=1: Error: Unable to open map: no such file or directory" in failed.notes
    big = parse(f"{facts._SKIPPED}: cilium-dbg bpf ipcache list printed 17000000 bytes, over {facts.TUNNEL_MAX}",
                IPCACHE_LIST)
    assert big.tunnel_map is None
    assert f"section tunnel: cilium-dbg bpf ipcache list printed 17000000 bytes, over {facts.TUNNEL_MAX}" in big.notes
    garbled = parse('{"100.127.2.0/24": [', IPCACHE_LIST)
    assert garbled.tunnel_map is None and any("section tunnel: unparseable" in n for n in garbled.notes)


@pytest.mark.parametrize(("version", "source"), [("1.17", "cilium-dbg bpf tunnel list -o json"),
                                                 ("1.18", IPCACHE_LIST)])
def test_collect_script_reads_the_command_the_cilium_dbg_on_path_has(tmp_path, version, source):
    """The real collect script with the lab's cilium-dbg stand-in first on PATH: v1.17's answers `bpf tunnel
    list`; v1.18's rejects it as cobra does (`bpf` has no `tunnel`), so the script reads the ipcache."""
    lab_cilium.write_cilium_dbg([tmp_path], version)
    script = facts.collect_script("cilium_vxlan", 8472)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    output = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60, env=env).stdout
    node = facts.parse("node1", output, "cilium_vxlan", ADDR["node1"])
    assert node.tunnel_source == source
    assert isinstance(node.tunnel_map, dict), node.notes
