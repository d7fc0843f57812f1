"""Issue 8.4: passwords and become passwords never reach the console, logs, JUnit, summary.json or Allure
files. One run with both secrets in the inventory, where one node's login fails (so the password is
really tried), and a scan of everything that run wrote."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.lab.lab_fixtures import lab_4
from tests.lab.suite_runner import run_suite

pytestmark = pytest.mark.root
__all__ = ["lab_4"]  # the fixture is used by name

PASSWORD = "Pw-7f3a9c-login"
BECOME_PASSWORD = "Pw-51d2e8-become"


def everything_written(reports: Path, output: str) -> dict[str, str]:
    texts = {"console": output}
    for path in reports.rglob("*"):
        if path.is_file():
            texts[str(path.relative_to(reports))] = path.read_text(errors="replace")
    return texts


def test_no_secret_in_anything_a_run_writes(lab_4, tmp_path):
    _, state = lab_4
    inventory = yaml.safe_load(Path(state.inventory_path).read_text())
    inventory["all"]["vars"].update(ansible_password=PASSWORD, ansible_become=True,
                                    ansible_become_password=BECOME_PASSWORD)
    inventory["all"]["hosts"]["node4"]["ansible_user"] = "operator"  # no such user: key, then password fail
    path = tmp_path / "hosts.yaml"
    path.write_text(yaml.safe_dump(inventory))
    result = run_suite(path, tmp_path / "reports", "-v", "-rA", workers="0")
    assert result.exit_code == 1
    assert ("node4", "NODE_UNREACHABLE") in result.failures(), result.output[-3000:]
    texts = everything_written(tmp_path / "reports", result.output)
    assert {"console", "summary.json", "junit.xml"} <= set(texts)
    assert any(name.startswith("allure-results/") for name in texts)
    leaks = [f"{name}: {secret}" for name, text in texts.items() for secret in (PASSWORD, BECOME_PASSWORD)
             if secret in text]
    assert leaks == []
