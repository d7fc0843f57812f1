"""inventory against the inventories users have: kubespray INI/YAML, kubeasz, plain Ansible, bad input."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import pytest

from vxlan_conformance.inventory import Host, Inventory, InventoryError, load
from vxlan_conformance.inventory.raw import expand_host_range

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "inventory"
EXAMPLES = Path(__file__).resolve().parents[3] / "inventory" / "examples"


@pytest.fixture(scope="module", autouse=True)
def _builtin_reader():
    """This file tests the suite's own reader; tests/test_inventory_parity.py holds both readers to Ansible."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VXLAN_INVENTORY_READER", "builtin")
        yield


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def names(hosts: list[Host]) -> list[str]:
    return [h.name for h in hosts]


# --- formats -------------------------------------------------------------------------------------------

def test_kubespray_new_ini_synthesises_k8s_cluster() -> None:
    inv = load(EXAMPLES / "kubespray-inventory.ini")
    assert inv.nodes == ("node1", "node2", "node3", "node4", "node5")
    assert inv.groups["k8s_cluster"] == inv.nodes
    assert names(inv.etcd_hosts()) == ["node1", "node2", "node3"]
    assert names(inv.control_plane()) == ["node1", "node2", "node3"]
    node1 = inv.hosts["node1"]
    assert (node1.address, node1.ssh_host, node1.user, node1.become) == (
        "198.18.10.11", "198.19.10.11", "ubuntu", True)
    assert node1.groups[0] == "all" and {"k8s_cluster", "etcd", "kube_control_plane"} <= set(node1.groups)
    assert inv.hosts["node5"].vars["ip"] == "198.18.10.15"  # the inline comment is not part of the value
    assert (inv.overlay.cni, inv.overlay.device, inv.overlay.port, inv.overlay.vni) == ("flannel", "flannel.1",
                                                                                       8472, 1)


def test_kubespray_hosts_yaml_with_null_members_and_calico_vars() -> None:
    inv = load(EXAMPLES / "kubespray-hosts.yaml")
    assert inv.nodes == ("node1", "node2", "node3")
    assert names(inv.group("kube_node")) == ["node1", "node2", "node3"]
    assert inv.groups["calico_rr"] == ()
    assert inv.hosts["node2"].address == "198.18.20.12"
    assert inv.hosts["node2"].key_file == os.path.expanduser("~/.ssh/id_ed25519")
    assert (inv.overlay.cni, inv.overlay.device, inv.overlay.port, inv.overlay.vni) == (
        "calico", "vxlan.calico", 4789, 4096)


def test_kubeasz_hosts_named_by_ip() -> None:
    inv = load(EXAMPLES / "kubeasz-hosts")
    assert inv.nodes == ("198.18.30.1", "198.18.30.2", "198.18.30.4", "198.18.30.5")
    assert names(inv.control_plane()) == ["198.18.30.1", "198.18.30.2"]  # kube_master is an alias
    assert names(inv.group("kube_master")) == names(inv.control_plane())
    assert inv.hosts["198.18.30.1"].vars["NODE_NAME"] == "etcd1"
    assert inv.hosts["198.18.30.1"].vars["k8s_nodename"] == "master-01"  # quotes removed
    assert inv.hosts["198.18.30.6"].vars["CLUSTER_NETWORK"] == "flannel"
    assert inv.overlay.cni == "flannel" and inv.overlay.cluster_view == "etcd"
    assert inv.overlay.etcdctl == "/opt/kube/bin/etcdctl"


def test_plain_yaml_without_k8s_groups_uses_every_host() -> None:
    inv = load(EXAMPLES / "plain.yaml")
    assert inv.nodes == ("node1", "node2", "node3", "edge1")
    assert inv.control_plane() == [] and inv.etcd_hosts() == []
    assert inv.overlay.host_key_policy == "accept-new" and inv.overlay.cluster_view == "none"
    assert inv.hosts["node2"].user == "root" and inv.hosts["edge1"].ssh_host == "198.18.40.10"


def test_bastion_is_not_a_node_and_keeps_its_own_args() -> None:
    inv = load(EXAMPLES / "with-bastion.ini")
    assert inv.bastion is not None and inv.bastion.name == "bastion" and inv.bastion.user == "jump"
    assert inv.bastion.ssh_common_args is None
    assert "bastion" not in inv.nodes
    assert inv.nodes == ("master1", "worker01", "worker02", "worker03", "worker04")
    worker = inv.hosts["worker03"]
    assert worker.ssh_common_args == '-o ProxyCommand="ssh -W %h:%p -q jump@198.19.50.1"'
    assert worker.become is True and inv.hosts["master1"].become is False
    assert inv.overlay.cni == "calico"


def test_host_named_bastion_without_group_is_the_bastion(tmp_path: Path) -> None:
    inv = load(write(tmp_path, "hosts", "[all]\nbastion ansible_host=198.18.64.1\nnode1\n"))
    assert inv.bastion is not None and inv.bastion.name == "bastion" and inv.nodes == ("node1",)


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.iterdir()))
def test_every_example_loads(example: str) -> None:
    inv = load(EXAMPLES / example)
    assert inv.nodes and all(n in inv.hosts for n in inv.nodes)


def test_format_is_detected_by_content(tmp_path: Path) -> None:
    yaml_named_hosts = write(tmp_path, "a/hosts", "all:\n  hosts:\n    n1:\n      ansible_host: 198.18.64.2\n")
    ini_named_txt = write(tmp_path, "b/inventory.txt", "[kube_node]\nn1 ansible_host=198.18.64.3\n")
    assert load(yaml_named_hosts).hosts["n1"].ssh_host == "198.18.64.2"
    assert load(ini_named_txt).hosts["n1"].ssh_host == "198.18.64.3"


def test_hosts_before_any_section_are_ungrouped(tmp_path: Path) -> None:
    inv = load(write(tmp_path, "hosts", "loose1\n[kube_node]\nn1\n"))
    assert inv.groups["ungrouped"] == ("loose1",)
    assert inv.nodes == ("n1",)


def test_same_host_in_several_groups_merges(tmp_path: Path) -> None:
    text = "[all]\nn1 ansible_host=198.18.64.4 ip=198.18.65.4\n[kube_node]\nn1 role=worker\n[etcd]\nn1\n"
    host = load(write(tmp_path, "hosts", text)).hosts["n1"]
    assert (host.ssh_host, host.address, host.vars["role"]) == ("198.18.64.4", "198.18.65.4", "worker")
    assert {"kube_node", "etcd", "k8s_cluster"} <= set(host.groups)


def test_identical_duplicate_lines_are_fine(tmp_path: Path) -> None:
    text = "[kube_node]\nn1 ansible_host=198.18.64.5\nn1 ansible_host=198.18.64.5\n"
    assert load(write(tmp_path, "hosts", text)).nodes == ("n1",)


def test_quoted_values_and_ansible_literals_stay_strings(tmp_path: Path) -> None:
    text = ("[kube_node]\nn1 note='a b' other=\"c d\" count=3 flag=True\n"
            "[all:vars]\nspaced = 'x y'\nhashed=p#ss\nregexp='10\\\\.0'\nnumber=8472\n")
    variables = load(write(tmp_path, "hosts", text)).hosts["n1"].vars
    assert (variables["note"], variables["other"], variables["count"], variables["flag"]) == (
        "a b", "c d", "3", "True")
    assert (variables["spaced"], variables["hashed"], variables["number"]) == ("x y", "p#ss", "8472")
    assert variables["regexp"] == "10\\.0"  # Ansible reads :vars values as Python literals


# --- ranges --------------------------------------------------------------------------------------------

def test_ranges_in_ini() -> None:
    inv = load(FIXTURES / "ranges.ini")
    assert list(inv.hosts) == ["node08", "node09", "node10", "10.0.0.1", "10.0.0.2", "10.0.0.3",
                               "racka", "rackb", "rackc", "odd1", "odd3", "odd5", "odd7"]
    assert inv.hosts["odd5"].user == "r"


@pytest.mark.parametrize(("pattern", "expected"), [
    ("n[1:3]", ["n1", "n2", "n3"]),
    ("n[:2]", ["n0", "n1", "n2"]),
    ("n[01:03].lab", ["n01.lab", "n02.lab", "n03.lab"]),
    ("n[0:10:5]", ["n0", "n5", "n10"]),
    ("x[a:c]y[1:2]", ["xay1", "xay2", "xby1", "xby2", "xcy1", "xcy2"]),
    ("plain", ["plain"]),
])
def test_expand_host_range(pattern: str, expected: list[str]) -> None:
    assert expand_host_range(pattern) == expected


@pytest.mark.parametrize(("pattern", "reason"), [
    ("n[3:1]", "start > end"), ("n[1]", "use [start:end]"), ("n[1:]", "no end"),
    ("n[01:100]", "width"), ("n[1:3:0]", "step"), ("n[a:3]", "numbers or single letters")])
def test_bad_host_ranges(pattern: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        expand_host_range(pattern)


# --- aliases, precedence, addresses --------------------------------------------------------------------

def test_old_group_names_resolve_to_canonical(tmp_path: Path) -> None:
    text = ("[kube-master]\nm1\n[masters]\nm2\n[kube-node]\nw1\n[nodes]\nw2\n[calico-rr]\nrr1\n"
            "[k8s-cluster:children]\nkube-master\nkube-node\ncalico-rr\n")
    inv = load(write(tmp_path, "hosts", text))
    assert names(inv.control_plane()) == ["m1", "m2"]
    for alias in ("kube_master", "kube-master", "masters"):
        assert names(inv.group(alias)) == ["m1", "m2"]
    assert names(inv.group("nodes")) == ["w1", "w2"] == names(inv.group("kube-node"))
    assert inv.groups["k8s_cluster"] == ("m1", "m2", "w1", "w2", "rr1") == inv.nodes
    assert "kube-master" not in inv.groups and "kube_control_plane" in inv.hosts["m1"].groups


def test_group_precedence_all_parent_child_host() -> None:
    inv = load(FIXTURES / "precedence.yaml")
    assert inv.hosts["solo"].vars["level"] == "all"
    assert inv.hosts["node1"].vars["level"] == "child"
    assert inv.hosts["node2"].vars["level"] == "host"
    assert inv.hosts["node1"].vars["only_parent"] == "p" and inv.hosts["node1"].vars["only_all"] == "a"
    assert inv.nodes == ("node1", "node2")  # solo is outside k8s_cluster


def test_directory_with_group_vars_and_host_vars() -> None:
    inv = load(FIXTURES / "kubespray-dir")
    level = {name: host.vars["level"] for name, host in inv.hosts.items()}
    assert level == {"node1": "k8s_cluster-group_vars", "node2": "kube_node-group_vars",
                     "node3": "node3-host_vars"}
    assert inv.hosts["node2"].vars["from_file"] == "yes"
    assert inv.hosts["node1"].user == "admin"
    assert inv.hosts["node3"].address == "198.18.61.3" and inv.hosts["node3"].ssh_host == "198.18.60.3"
    assert (inv.overlay.cni, inv.overlay.port, inv.overlay.vni) == ("calico", 4790, 4096)


def test_file_path_also_reads_adjacent_group_vars() -> None:
    assert load(FIXTURES / "kubespray-dir" / "inventory.ini").overlay.cni == "calico"


def test_address_and_connection_precedence() -> None:
    hosts = load(FIXTURES / "addresses.ini").hosts
    assert [hosts[n].address for n in ("by-access", "by-ip", "by-host", "by-name", "198.18.62.9")] == [
        "198.18.62.3", "198.18.62.5", "198.18.62.6", "by-name", "198.18.62.9"]
    assert hosts["by-access"].ssh_host == "198.18.62.1"
    legacy, modern = hosts["legacy"], hosts["modern"]
    assert (legacy.ssh_host, legacy.ssh_port, legacy.user, legacy.password, legacy.become_password) == (
        "198.18.62.7", 2201, "old", "pw", "spw")
    assert (modern.ssh_port, modern.user, modern.password, modern.become, modern.become_password) == (
        2222, "new", "pw2", True, "s e c")
    assert modern.key_file == os.path.expanduser("~/.ssh/k")
    assert modern.ssh_common_args == "-o ProxyJump=jump -4"
    assert (hosts["ported"].ssh_port, hosts["by-name"].ssh_port, hosts["by-name"].become) == (2022, 22, False)


def test_simple_variable_reference_is_followed(tmp_path: Path) -> None:
    text = "all:\n  vars: {jump: 198.18.64.9}\n  hosts:\n    n1: {ansible_host: '{{ jump }}'}\n"
    assert load(write(tmp_path, "inv.yaml", text)).hosts["n1"].ssh_host == "198.18.64.9"


def test_vault_values_load_until_used(tmp_path: Path) -> None:
    write(tmp_path, "group_vars/all.yml", "secret: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162\n")
    inventory = write(tmp_path, "hosts", "[kube_node]\nn1\n")
    assert load(inventory).nodes == ("n1",)
    write(tmp_path, "host_vars/n1.yml", "ansible_become_password: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n")
    with pytest.raises(InventoryError, match="ansible_become_password.*vault-encrypted"):
        load(inventory)


# --- overlay settings ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("variables", "expected"), [
    ("", ("flannel", "flannel.1", 8472, 1)),
    ("vxlan_cni=calico", ("calico", "vxlan.calico", 4789, 4096)),
    ("vxlan_cni=cilium", ("cilium", "cilium_vxlan", 8472, 0)),
    ("vxlan_vni=7", ("flannel", "flannel.7", 8472, 7)),
    ("kube_network_plugin=cilium", ("cilium", "cilium_vxlan", 8472, 0)),
    ('CLUSTER_NETWORK="calico"', ("calico", "vxlan.calico", 4789, 4096)),
    ("kube_network_plugin=flannel\nflannel_vxlan_port=8475", ("flannel", "flannel.1", 8475, 1)),
    ("kube_network_plugin=weave\nvxlan_cni=flannel", ("flannel", "flannel.1", 8472, 1)),
    ("vxlan_cni=calico\nvxlan_device=vx0\nvxlan_port=4790\nvxlan_vni=9", ("calico", "vx0", 4790, 9)),
])
def test_per_cni_defaults_and_inference(tmp_path: Path, variables: str, expected: tuple) -> None:
    overlay = load(write(tmp_path, "hosts", f"[kube_node]\nn1\n[all:vars]\n{variables}\n")).overlay
    assert (overlay.cni, overlay.device, overlay.port, overlay.vni) == expected


def test_every_setting_is_read(tmp_path: Path) -> None:
    text = ("all:\n  hosts: {n1: }\n  vars:\n    vxlan_mtu: 1450\n    vxlan_cluster_view: kubectl-local\n"
            "    vxlan_kubectl: k3s kubectl\n    vxlan_kubeconfig: conf/admin.conf\n    vxlan_etcdctl: /bin/etcdctl\n"
            "    vxlan_probe_port: 19000\n    vxlan_host_key_policy: 'off'\n    vxlan_known_hosts: ~/kh\n"
            "    vxlan_kernel_policy: allowlist\n    vxlan_kernel_list: /etc/kernels.yaml\n")
    overlay = load(write(tmp_path, "inv.yaml", text)).overlay
    assert overlay.mtu == 1450 and overlay.cluster_view == "kubectl-local" and overlay.kubectl == "k3s kubectl"
    assert overlay.kubeconfig == str(tmp_path / "conf" / "admin.conf")
    assert (overlay.etcdctl, overlay.probe_port, overlay.host_key_policy) == ("/bin/etcdctl", 19000, "off")
    assert overlay.known_hosts == os.path.expanduser("~/kh")
    assert (overlay.kernel_policy, overlay.kernel_list) == ("allowlist", "/etc/kernels.yaml")


def test_settings_on_non_nodes_do_not_count(tmp_path: Path) -> None:
    text = "[bastion]\nb1 vxlan_port=9999\n[kube_node]\nn1\nn2\n"
    assert load(write(tmp_path, "hosts", text)).overlay.port == 8472


# --- limit ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def kubespray() -> Inventory:
    return load(EXAMPLES / "kubespray-inventory.ini")


@pytest.mark.parametrize(("pattern", "expected"), [
    ("node1,node4", ["node1", "node4"]),
    ("node1:node4", ["node1", "node4"]),
    ("kube_node", ["node4", "node5"]),
    ("kube-node", ["node4", "node5"]),
    ("!node3", ["node1", "node2", "node4", "node5"]),
    ("kube_control_plane:!node2", ["node1", "node3"]),
    ("k8s_cluster:&etcd", ["node1", "node2", "node3"]),
    ("node*", ["node1", "node2", "node3", "node4", "node5"]),
    ("kube_*:!etcd", ["node4", "node5"]),
    ("~node[45]", ["node4", "node5"]),
    ("node[1:3]", ["node1", "node2", "node3"]),
    ("kube_control_plane[0:1]", ["node1", "node2"]),
    ("kube_control_plane[-1]", ["node3"]),
])
def test_limit_patterns(kubespray: Inventory, pattern: str, expected: list[str]) -> None:
    limited = kubespray.limit(pattern)
    assert list(limited.hosts) == expected
    assert limited.nodes == tuple(expected)
    assert set(limited.groups) == set(kubespray.groups)
    assert limited.overlay == kubespray.overlay


def test_inventory_survives_pickle(kubespray: Inventory) -> None:
    """Workers under pytest-xdist may receive the inventory pickled."""
    clone = pickle.loads(pickle.dumps(kubespray))
    assert clone == kubespray and clone.hosts["node1"].vars["ip"] == "198.18.10.11"
    assert len({*kubespray.hosts.values(), *clone.hosts.values()}) == len(kubespray.hosts)


def test_limit_keeps_bastion_and_group_lookup() -> None:
    inv = load(EXAMPLES / "with-bastion.ini", limit="worker02")
    assert list(inv.hosts) == ["worker02"] and inv.bastion is not None
    assert inv.control_plane() == [] and names(inv.group("kube_node")) == ["worker02"]


@pytest.mark.parametrize("pattern", ["nosuch", "node1,nosuch", "node*:!k8s_cluster", "~[", "", "kube_node[9]"])
def test_limit_matching_nothing_names_the_pattern(kubespray: Inventory, pattern: str) -> None:
    with pytest.raises(InventoryError, match=f"limit '{pattern.replace('[', '.').replace('*', '.')}'"):
        kubespray.limit(pattern)


def test_unknown_group_is_an_error(kubespray: Inventory) -> None:
    with pytest.raises(InventoryError, match="no group 'workers'"):
        kubespray.group("workers")


# --- bad input: one line naming the file (and line) and what to do --------------------------------------

@pytest.mark.parametrize(("fixture", "message"), [
    ("bad-range.ini", r"bad-range.ini:3: bad host range 'node\[3:1\]' \(start > end\); fix the range"),
    ("bad-hostvar.ini", r"bad-hostvar.ini:3: expected key=value, got 'ansible_host'"),
    ("bad-varline.ini", r"bad-varline.ini:4: expected key=value, got 'vxlan_port'"),
    ("malformed.yaml", r"malformed.yaml:5: malformed YAML"),
    ("no-hosts.ini", r"no-hosts.ini: no hosts found"),
    ("conflict.ini", r"conflict.ini:3: host 'node1' is listed again in \[kube_node\] with "
                     r"ansible_host=198.18.63.2 \(line 2 says 198.18.63.1\)"),
    ("typo.ini", r"unknown setting vxlan_prot in .*typo.ini \(did you mean vxlan_port\?\); known: vxlan_cni"),
    ("bad-cni.yaml", r"bad-cni.yaml: vxlan_cni='weave' for host node1 is not valid; use one of flannel"),
    ("bad-port.ini", r"bad-port.ini: vxlan_port='abc' for host node1 is not a number"),
    ("big-port.ini", r"big-port.ini: vxlan_port='70000' for host node1 is out of range; use an integer 1..65535"),
    ("bad-policy.yaml", r"vxlan_host_key_policy='maybe' .* use one of strict, accept-new, off"),
    ("bad-view.ini", r"vxlan_cluster_view='x' .* use one of kubectl, kubectl-local, etcd, none"),
    ("inconsistent.ini", r"inconsistent.ini: vxlan_port differs between overlay nodes node1 \(8472\) "
                         r"and node3 \(8475\)"),
    ("cycle.ini", r"cycle.ini: group '.' contains itself"),
    ("bad-section.ini", r"bad-section.ini:3: unknown section type ':hostvars'"),
    ("unclosed-quote.ini", r"unclosed-quote.ini:2: cannot parse .*check the quotes"),
    ("weave.ini", r"kube_network_plugin='weave' for host node1 is not a VXLAN overlay this suite checks; "
                  r"set vxlan_cni"),
    ("unknown-key.yaml", r"unknown-key.yaml: unexpected key 'host' in group 'all'"),
    ("bad-become.ini", r"ansible_become='maybe' for host node1 is not a boolean"),
    ("template.ini", r"ansible_become_pass=.* is a Jinja template"),
])
def test_bad_input_is_one_line_error(fixture: str, message: str) -> None:
    with pytest.raises(InventoryError, match=message) as caught:
        load(FIXTURES / "bad" / fixture)
    assert "\n" not in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match=r"nope.ini: no such inventory file"):
        load(tmp_path / "nope.ini")


def test_directory_without_inventory(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="no inventory file in this directory"):
        load(tmp_path)


def test_undecodable_file(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_bytes(b"\xff\xfe[kube_node]\n")
    with pytest.raises(InventoryError, match="hosts: cannot read the inventory"):
        load(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of permissions")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts", "[kube_node]\nn1\n")
    path.chmod(0)
    with pytest.raises(InventoryError, match="Permission denied"):
        load(path)


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")
def test_read_error_even_for_root() -> None:
    with pytest.raises(InventoryError, match=r"/proc/self/mem: cannot read the inventory \(Input/output error\)"):
        load("/proc/self/mem")


def test_yaml_extension_with_a_list_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="not an Ansible YAML inventory"):
        load(write(tmp_path, "inv.yml", "- node1\n- node2\n"))


def test_typo_in_group_vars_names_that_file(tmp_path: Path) -> None:
    write(tmp_path, "group_vars/k8s_cluster/net.yml", "vxlan_cluster_veiw: etcd\n")
    with pytest.raises(InventoryError, match=r"vxlan_cluster_veiw in .*net.yml \(did you mean vxlan_cluster_view"):
        load(write(tmp_path, "inventory.ini", "[kube_node]\nn1\n"))


def test_unquoted_off_in_yaml_is_the_off_policy(tmp_path):
    """YAML 1.1 turns `off` into false; for the host key policy the user meant the word."""
    path = tmp_path / "hosts.yaml"
    path.write_text("all:\n  vars:\n    vxlan_host_key_policy: off\n  hosts:\n    n1: {}\n")
    assert load(path).overlay.host_key_policy == "off"
