"""Issue 19: `pytest -n auto --inventory DIR --vault-password-file FILE` on an inventory whose connection and
vxlan_* settings sit in a vault-encrypted group_vars/all/vault.yml (Ansible's recommended layout), run as a
user runs it (a subprocess). Without ansible-core nothing here applies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.lab.lab_fixtures import lab_4
from tests.lab.suite_runner import run_suite

__all__ = ["lab_4"]  # the fixture is used by name

pytest.importorskip("ansible", reason="vault needs ansible-core (pip install -e '.[dev]')")

PASSWORD = "vxlan-e2e-vault-password"
ANSIBLE_VAULT = str(Path(sys.executable).parent / "ansible-vault")


def vaulted_inventory(tmp_path: Path, hosts: dict, secret_vars: dict) -> tuple[Path, Path]:
    """hosts.yaml in plain text, every var of `secret_vars` in an encrypted group_vars/all/vault.yml."""
    folder = tmp_path / "inventory"
    (folder / "group_vars" / "all").mkdir(parents=True)
    (folder / "hosts.yaml").write_text(yaml.safe_dump(hosts))
    vault = folder / "group_vars" / "all" / "vault.yml"
    vault.write_text(yaml.safe_dump(secret_vars))
    password = tmp_path / "vault-pass"
    password.write_text(PASSWORD + "\n")
    subprocess.run([ANSIBLE_VAULT, "encrypt", "--vault-password-file", str(password), str(vault)], check=True,
                   capture_output=True, timeout=60)
    assert vault.read_text().startswith("$ANSIBLE_VAULT;")
    return folder, password


def error_line(output: str) -> str:
    assert "Traceback" not in output, output[-3000:]
    lines = [line for line in output.splitlines() if line.startswith("ERROR:")]
    assert len(lines) == 1, output[-3000:]
    return lines[0]


SMALL = {"all": {"hosts": {"node1": {"ansible_host": "198.18.0.1"}},
                 "children": {"kube_node": {"hosts": {"node1": {}}}}}}


def test_vault_password_file_option_reaches_the_inventory(tmp_path):
    """Through the plugin's options, no node contacted: with the password the run gets past the vault and
    stops at the (deliberately) wrong --limit; without it, one line says which option to pass."""
    folder, password = vaulted_inventory(tmp_path, SMALL, {"ansible_user": "vaulted", "vxlan_port": 4790})
    with_password = run_suite(folder, tmp_path / "r1", "--vault-password-file", str(password), "--limit", "nosuch",
                              "suites/test_access.py", workers="0")
    assert with_password.exit_code == 4
    assert "'nosuch' matches no host or group" in error_line(with_password.output)
    without = run_suite(folder, tmp_path / "r2", "suites/test_access.py", workers="0")
    assert without.exit_code == 4
    assert "--vault-password-file FILE or --ask-vault-pass" in error_line(without.output)


def test_wrong_vault_password_is_one_line_without_it(tmp_path):
    folder, _ = vaulted_inventory(tmp_path, SMALL, {"ansible_password": "do-not-print-me"})
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-vault-password\n")
    result = run_suite(folder, tmp_path / "r", "--vault-password-file", str(wrong), "suites/test_access.py",
                       workers="0")
    assert result.exit_code == 4
    line = error_line(result.output)
    assert "the vault password given does not decrypt it" in line, line
    assert "do-not-print-me" not in result.output and "not-the-vault-password" not in result.output


def test_missing_vault_password_file_is_named(tmp_path):
    folder, _ = vaulted_inventory(tmp_path, SMALL, {"ansible_user": "vaulted"})
    missing = tmp_path / "no-such-pass"
    result = run_suite(folder, tmp_path / "r", "--vault-password-file", str(missing), "suites/test_access.py",
                       workers="0")
    assert result.exit_code == 4
    assert error_line(result.output) == (f"ERROR: {missing}: no such vault password file; "
                                         "pass the file that holds the vault password")


def test_suite_runs_on_a_vaulted_lab_inventory(lab_4, tmp_path):
    """The lab's inventory with its login, key, known_hosts and vxlan_* settings moved into the vault: every
    node is reached and checked only if the vault was decrypted."""
    _, state = lab_4
    data = yaml.safe_load(Path(state.inventory_path).read_text())
    secret_vars = data["all"].pop("vars")
    folder, password = vaulted_inventory(tmp_path, data, secret_vars)
    result = run_suite(folder, tmp_path / "reports", "--vault-password-file", str(password), "suites/test_access.py")
    assert result.exit_code == 0, result.output[-3000:]
    assert result.summary is not None and result.failures() == set()
    subjects = {r["subject"] for r in result.summary["results"] if r["status"] == "passed"}
    assert {n.name for n in state.nodes} <= subjects, subjects
