"""Issue 19: both inventory readers against ansible-core's own answer, inventory by inventory.

Ansible's answer is taken from a real `ansible-playbook` run (tests/ansible_truth/truth.yml: kubespray's
group_by steps, then a test-only action plugin that records, per host, the connection plugin's options as the
task executor set them, the sudo plugin's become password and the rendered vxlan_* / kube_network_plugin /
address variables). `--limit` patterns are compared with `ansible all --limit PATTERN --list-hosts`.
The ansible-core reader must agree field for field; the builtin reader must agree or refuse in one line
(never a traceback, never a secret's value), as each case states.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from vxlan_conformance.inventory import ALIASES, Inventory, InventoryError, VaultOptions, load
from vxlan_conformance.inventory.overlay import overlay_for
from vxlan_conformance.inventory.values import VarReader

pytest.importorskip("ansible", reason="the parity test needs ansible-core (pip install -e '.[dev]')")

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "inventory" / "parity"
TRUTH = Path(__file__).resolve().parents[2] / "ansible_truth"
PASSWORD_FILE = CORPUS / "vault-password.txt"
ANSIBLE_BIN = Path(sys.executable).parent
SECRETS = ("parity-secret-1", "parity-secret-2", "p a s s", "p#ss", "only-old")


@dataclass(frozen=True)
class Case:
    source: str
    builtin: str = "equal"          # or the words of its one-line refusal
    ansible: str = "equal"          # a refusal here is the suite's own (the same on both readers)
    vault: bool = False
    limits: tuple[str, ...] = ()


CASES = {
    "precedence": Case("precedence/hosts", limits=("node1,node3", "kube_node:!node2", "kube_control_plane:&etcd",
                                                   "node*", "~node[13]", "kube_node[0]", "kube_node[0:1]")),
    "children-ranges": Case("children-ranges/inventory.ini",
                            limits=("workers", "cluster:!masters", "@{corpus}/children-ranges/limit-file",
                                    "10.0.0.*", "rack*")),
    "ipv6-ports": Case("ipv6-ports/hosts", limits=("2001:db8::12", "node3,node4")),
    "comments-quoting": Case("comments-quoting/hosts"),
    "become-spellings": Case("become-spellings/hosts"),
    "legacy-names": Case("legacy-names/hosts"),
    "yaml-null": Case("yaml-null/hosts.yaml", limits=("kube_node", "kube_node:node1")),
    "multi-file": Case("multi-file", limits=("kube_control_plane", "kube_node:!node1")),
    "group-vars-layout": Case("group-vars-layout"),
    "group-priority": Case("group-priority/hosts"),
    "templates": Case("templates/hosts", builtin="is a Jinja template, which only ansible-core renders"),
    "templates-reference": Case("templates-reference/hosts"),
    "local-connection": Case("local-connection/hosts"),
    "local-node": Case("local-node/hosts", builtin="node2 is a cluster node with ansible_connection=local",
                       ansible="node2 is a cluster node with ansible_connection=local"),
    "kubeasz": Case("kubeasz/hosts", limits=("kube_master", "etcd")),
    "aliases-vars": Case("aliases-vars/hosts"),
    "bastion": Case("bastion/hosts"),
    "script": Case("script/inventory.py", builtin="an executable inventory script; only ansible-core runs"),
    "plugin-config": Case("plugin-config/generated.yml", builtin="an inventory plugin config"),
    "vault-file": Case("vault-file", vault=True, builtin="vault-encrypted; only ansible-core decrypts it"),
    "vault-inline": Case("vault-inline/hosts", vault=True, builtin="vault-encrypted, which needs ansible-core"),
}


def ansible_env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "ANSIBLE_ACTION_PLUGINS": str(TRUTH / "action_plugins"), "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_HOME": str(tmp / "ansible-home"),
            "PATH": f"{ANSIBLE_BIN}:{os.environ.get('PATH', '')}"}


@pytest.fixture(scope="module")
def truth(tmp_path_factory) -> dict[str, dict[str, dict]]:
    """Every case run through ansible-playbook once (in parallel): {case: {host: record}}."""
    tmp = tmp_path_factory.mktemp("truth")
    runs = {}
    for name, case in CASES.items():
        out = tmp / f"{name}.jsonl"
        command = ["ansible-playbook", "-i", str(CORPUS / case.source), str(TRUTH / "truth.yml"),
                   "-e", f"truth_out={out}", "--forks", "1"]
        if case.vault:
            command += ["--vault-password-file", str(PASSWORD_FILE)]
        runs[name] = (out, subprocess.Popen(command, cwd=tmp, env=ansible_env(tmp), stdout=subprocess.PIPE,
                                            stderr=subprocess.STDOUT, text=True))
    answers = {}
    for name, (out, proc) in runs.items():
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{name}: ansible-playbook failed:\n{output[-3000:]}"
        answers[name] = {r["host"]: r for r in map(json.loads, out.read_text().splitlines())}
    return answers


def expected_host(record: dict) -> dict:
    """A Host's fields as Ansible's answer gives them (the suite's address rule on Ansible's values)."""
    options, rendered = record["options"], record["vars"]
    ssh_host = str(options["host"] or record["host"])
    common = " ".join(str(a) for a in (options["ssh_common_args"], options["ssh_extra_args"]) if a) or None
    key = options["private_key_file"]
    connection = record["connection"].rsplit(".", 1)[-1]
    return {
        "address": str(rendered.get("access_ip") or rendered.get("ip") or ssh_host),
        "ssh_host": ssh_host,
        "ssh_port": int(options["port"] or 22),
        "user": options["remote_user"] or None,
        "key_file": os.path.expanduser(key) if key else None,
        "password": options["password"] or None,
        "become": record["become"],
        "become_password": record["become_pass"] or None,
        "ssh_common_args": common,
        "connection": {"smart": "ssh", "paramiko": "paramiko_ssh"}.get(connection, connection),
    }


def actual_host(inventory: Inventory, name: str) -> dict:
    host = inventory.hosts[name]
    return {field: getattr(host, field) for field in ("address", "ssh_host", "ssh_port", "user", "key_file",
                                                       "password", "become", "become_password",
                                                       "ssh_common_args", "connection")}


def canonical_groups(groups: dict[str, list[str]]) -> dict[str, set[str]]:
    return {g: set(h) for g, h in groups.items() if g not in set(ALIASES) - set(ALIASES.values())}


def differences(inventory: Inventory, answer: dict[str, dict]) -> list[str]:
    found = []
    if list(inventory.hosts) != [h for h in answer] and set(inventory.hosts) != set(answer):
        found.append(f"hosts: {sorted(inventory.hosts)} != {sorted(answer)}")
    some = next(iter(answer.values()))
    want_groups = canonical_groups(some["groups"])
    got_groups = {g: set(m) for g, m in inventory.groups.items()}
    for group in sorted(set(want_groups) | set(got_groups)):
        if want_groups.get(group, set()) != got_groups.get(group, set()):
            found.append(f"group {group}: {sorted(got_groups.get(group, ()))} != {sorted(want_groups.get(group, ()))}")
    for name, record in answer.items():
        if name not in inventory.hosts:
            continue
        want, got = expected_host(record), actual_host(inventory, name)
        for field in want:
            if want[field] != got[field]:
                hidden = field in ("password", "become_password")
                found.append(f"{name}.{field}: {'<differs>' if hidden else repr(got[field])} != "
                             f"{'' if hidden else repr(want[field])}")
        member_of = {g for g, hosts in want_groups.items() if name in hosts}
        if set(inventory.hosts[name].groups) != member_of:
            found.append(f"{name}.groups: {sorted(inventory.hosts[name].groups)} != {sorted(member_of)}")
    first = inventory.nodes[0]
    want_overlay = overlay_for(VarReader(answer[first]["vars"], inventory.path, first), inventory.path)
    if want_overlay != inventory.overlay:
        found.append(f"overlay: {inventory.overlay} != {want_overlay}")
    return found


def load_case(case: Case, reader: str, limit: str | None = None) -> Inventory:
    vault = VaultOptions(password_files=(str(PASSWORD_FILE),)) if case.vault and reader == "ansible" else VaultOptions()
    return load(CORPUS / case.source, limit=limit, reader=reader, vault=vault)


def assert_clear_refusal(message: str, words: str) -> None:
    assert words in message, message
    assert "\n" not in message and "Traceback" not in message, message
    for secret in SECRETS:
        assert secret not in message, f"a secret in: {message}"


@pytest.mark.parametrize("reader", ["ansible", "builtin"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_reader_agrees_with_ansible(truth, name: str, reader: str) -> None:
    case = CASES[name]
    expected = case.ansible if reader == "ansible" else case.builtin
    if expected != "equal":
        with pytest.raises(InventoryError) as refused:
            load_case(case, reader)
        assert_clear_refusal(str(refused.value), expected)
        return
    inventory = load_case(case, reader)
    assert differences(inventory, truth[name]) == []


def list_hosts(source: Path, pattern: str, tmp: Path) -> set[str] | None:
    """`ansible all --limit PATTERN --list-hosts`; None when Ansible warns that a term matched nothing."""
    proc = subprocess.run(["ansible", "all", "-i", str(source), "--limit", pattern, "--list-hosts"], cwd=tmp,
                          env=ansible_env(tmp), capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or "Could not match supplied host pattern" in proc.stderr:
        return None
    lines = proc.stdout.splitlines()
    return {line.strip() for line in lines[1:] if line.strip()}


LIMITS = [(name, pattern) for name, case in sorted(CASES.items()) for pattern in case.limits]


@pytest.mark.parametrize(("name", "pattern"), LIMITS)
def test_limit_agrees_with_ansible(tmp_path, name: str, pattern: str) -> None:
    case = CASES[name]
    pattern = pattern.format(corpus=CORPUS)
    want = list_hosts(CORPUS / case.source, pattern, tmp_path)
    assert want, f"{pattern}: Ansible selects nothing; pick a pattern that selects hosts"
    for reader in ("ansible", "builtin"):
        got = set(load_case(case, reader, limit=pattern).hosts)
        assert got == want, f"{reader}: {sorted(got)} != {sorted(want)}"


# --- vault: the password as `ansible` takes it, and clear refusals without it -------------------------------

def test_vault_file_decrypted_with_password_file() -> None:
    inventory = load_case(CASES["vault-file"], "ansible")
    assert inventory.hosts["node1"].become_password == "parity-secret-1"
    assert inventory.overlay.cni == "calico"  # vxlan_cni lives in the encrypted file


def test_ask_vault_pass_prompts_once() -> None:
    asked = []

    def prompt(text: str) -> str:
        asked.append(text)
        return PASSWORD_FILE.read_text().strip()

    inventory = load(CORPUS / "vault-inline" / "hosts", reader="ansible", vault=VaultOptions(ask=True, prompt=prompt))
    assert inventory.hosts["node1"].password == "parity-secret-2" and asked == ["Vault password: "]


@pytest.mark.parametrize("case", ["vault-file", "vault-inline"])
def test_vault_without_password_is_one_clear_line(case: str) -> None:
    with pytest.raises(InventoryError) as refused:
        load(CORPUS / CASES[case].source, reader="ansible")
    assert_clear_refusal(str(refused.value), "--vault-password-file FILE or --ask-vault-pass")


def test_wrong_vault_password_is_one_clear_line(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    with pytest.raises(InventoryError) as refused:
        load(CORPUS / "vault-file", reader="ansible", vault=VaultOptions(password_files=(str(wrong),)))
    assert_clear_refusal(str(refused.value), "vault")
    assert "not-the-password" not in str(refused.value)


def test_builtin_reader_refuses_a_vault_password(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as refused:
        load(CORPUS / "vault-file", reader="builtin", vault=VaultOptions(password_files=(str(PASSWORD_FILE),)))
    assert_clear_refusal(str(refused.value), "pip install 'vxlan-conformance[ansible]'")


@pytest.mark.parametrize("reader", ["ansible", "builtin"])
def test_unparsable_file_in_a_directory_is_refused(tmp_path: Path, reader: str) -> None:
    """A file Ansible cannot read inside the inventory directory would leave its nodes unchecked."""
    (tmp_path / "a.ini").write_text("[kube_node]\nnode1\n")
    (tmp_path / "b.yml").write_text("all:\n  hosts:\n    node2: {ansible_host: [\n")
    with pytest.raises(InventoryError) as refused:
        load(tmp_path, reader=reader)
    assert_clear_refusal(str(refused.value), "b.yml")


def test_ansible_reader_hosts_pickle_without_ansible_types() -> None:
    """Workers under pytest-xdist receive the inventory pickled; Ansible's tagged values must not leak in."""
    import pickle

    inventory = load_case(CASES["precedence"], "ansible")
    data = pickle.dumps(inventory)
    assert b"ansible" not in data.replace(b"ansible_", b"")
    assert pickle.loads(data) == inventory


@pytest.mark.parametrize("reader", ["ansible", "builtin"])
def test_local_host_is_not_a_node(reader: str) -> None:
    inventory = load_case(CASES["local-connection"], reader)
    assert inventory.nodes == ("node1", "node2", "node3")
    assert inventory.hosts["localhost"].connection == "local"
    assert load_case(CASES["local-node"], reader, limit="!node2").nodes == ("node1",)


def test_builtin_refusal_never_shows_a_password(tmp_path: Path) -> None:
    (tmp_path / "hosts").write_text("[kube_node]\nn1 ansible_ssh_pass='s3cr{{ et'\n")
    with pytest.raises(InventoryError) as refused:
        load(tmp_path / "hosts", reader="builtin")
    assert_clear_refusal(str(refused.value), "ansible_ssh_pass=<hidden> for host n1")
    assert "s3cr" not in str(refused.value)
