"""The suite session: gather once on the controller, share with xdist workers, write the reports.

Registered by vxlan_conformance.plugin only when the run collects suites/. On the controller (or a run without
xdist) `pytest_sessionstart` reads the inventory, opens one SSH connection per node, gathers facts, view
and mesh, and saves them to one JSON file; workers receive its path through `workerinput` and only read.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from vxlan_conformance import PROJECT_ROOT, SUITES_DIR
from vxlan_conformance import inventory as inventory_mod
from vxlan_conformance.model.rundata import RunData
from vxlan_conformance.plugin.allure_test import describe_test
from vxlan_conformance.plugin.suite import in_suites
from vxlan_conformance.plugin.verdicts import PROPERTY, entries, from_report, status_of
from vxlan_conformance.report import summary

WORKER_KEY = "vxlan_run"


class SuiteSession:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.reports_dir = reports_dir(config)
        self.run_path = self.reports_dir / ".run" / "run.json"
        self.run: RunData | None = None
        self.inventory: inventory_mod.Inventory | None = None
        self.entries: list[dict[str, Any]] = []
        self.started = time.time()
        self.is_worker = hasattr(config, "workerinput")
        self.interrupted = ""  # why the gathering was interrupted, if it was, and in which phase
        self.interrupted_in = ""
        self.phase_errors: list[dict[str, Any]] = []  # a phase that failed: one error entry each

    # -- set-up -------------------------------------------------------------------------------
    def pytest_configure(self, config: pytest.Config) -> None:
        if self.is_worker:
            return
        self.inventory = load_inventory(config)
        signal.signal(signal.SIGTERM, _terminate_like_ctrl_c)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.is_worker:
            self.run = RunData.load(self.config.workerinput[WORKER_KEY])
            return
        from vxlan_conformance.collect.gather import current_phase, gather, new_run, open_pool, ssh_options
        from vxlan_conformance.collect.predict import run_predict_phase
        from vxlan_conformance.mesh.phase import run_mesh_phase

        assert self.inventory is not None
        opts = self.config.option
        options = {"kernel_policy": opts.kernel_policy or self.inventory.overlay.kernel_policy,
                   "kernel_lists": [*opts.kernel_list, *filter(None, [self.inventory.overlay.kernel_list])],
                   "new_nodes": _split(opts.new_nodes), "pairs": opts.pairs, "pairs_seed": opts.pairs_seed,
                   "allow_state_changes": opts.allow_state_changes,
                   "mesh": selects(self.config, "test_datapath.py"),
                   "predict": opts.allow_state_changes and selects(self.config, "test_predict.py")}
        pool = open_pool(self.inventory, ssh_options(self.inventory, opts.connect_timeout,
                                                     opts.command_timeout))
        self.run = new_run(self.inventory, options)
        try:
            for phase, work in (("gather", lambda: gather(self.inventory, pool, self.run, progress=self.progress)),
                                ("predict", lambda: run_predict_phase(pool, self.run, progress=self.progress)),
                                ("mesh", lambda: run_mesh_phase(self.inventory, pool, self.run,
                                                                progress=self.progress))):
                self._guarded(phase, work)
        except KeyboardInterrupt as exc:
            # pytest skips sessionfinish (and so every report) when sessionstart is interrupted:
            # record where we were and stop from the run loop instead
            self.interrupted_in = current_phase(self.run)
            self.interrupted = (f"run interrupted ({str(exc) or 'SIGINT'}) during the {self.interrupted_in} "
                                "phase; no checks ran")
            self.progress(self.interrupted)
        finally:
            self.run.counters["ssh_connections"] = pool.connections_opened
            pool.close()
            self.run.save(self.run_path)

    def _guarded(self, phase: str, work: Any) -> None:
        """One phase; a bug or a node's data we did not foresee ends that phase with an error entry (the
        checks still run on what was gathered, and every report is written), never the run."""
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - KeyboardInterrupt is not an Exception and goes on up
            assert self.inventory is not None
            secrets = [s for h in self.inventory.hosts.values() for s in (h.password, h.become_password) if s]
            text = f"{type(exc).__name__}: {exc}"
            for secret in secrets:
                text = text.replace(secret, "***")
            message = f"the {phase} phase failed ({' '.join(text.split())[:300]}); results of that phase are missing"
            self.phase_errors.append({"check": "run", "subject": phase, "status": "error", "codes": [],
                                      "message": message, "remediation": "report this with run.json"})
            self.progress(message)
            if phase == "mesh" and self.run is not None:
                self.run.mesh_error = self.run.mesh_error or message

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        if self.interrupted:
            raise session.Interrupted(self.interrupted)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[WORKER_KEY] = str(self.run_path)

    def progress(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"vxlan-conformance: {line}")
        else:
            print(f"vxlan-conformance: {line}", file=sys.stderr)

    # -- results ------------------------------------------------------------------------------
    def pytest_runtest_teardown(self, item: pytest.Item) -> None:
        """Title and grouping of the Allure test, set last so they hold even when setup failed."""
        if in_suites(item.path):
            describe_test(item)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Take the verdicts off the report before junitxml sees them: they belong in summary.json, and
        as JUnit properties they would make junit.xml grow with every pair."""
        if self.is_worker:
            return
        results = from_report(report.user_properties)
        report.user_properties[:] = [p for p in report.user_properties if p[0] != PROPERTY]
        status = status_of(report)
        if status is not None:
            self.entries.extend(entries(report, status, results))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.is_worker or self.run is None:
            return
        if self.interrupted:
            self.entries.append({"check": "run", "subject": self.interrupted_in, "status": "error",
                                 "codes": [], "message": self.interrupted, "remediation": ""})
        self.entries.extend(self.phase_errors)
        summary.write(self.reports_dir / "summary.json", self.run, self.entries,
                      duration_s=time.time() - self.started)
        from vxlan_conformance.report import finish_run

        allure_dir = getattr(self.config.option, "allure_report_dir", None)
        try:
            finish_run(self.reports_dir, Path(allure_dir) if allure_dir else None, self.run, self.entries,
                       duration_s=time.time() - self.started, progress=self.progress)
        except Exception as exc:  # noqa: BLE001 - summary.json and junit.xml are written whatever happens here
            self.progress(f"node table / matrix not written ({type(exc).__name__}: {str(exc)[:200]})")

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """--redact, after the last report is written; then the run is let go, so the five garbage
        collections pytest makes on its way out do not walk it (0.3 s a process at 100 nodes)."""
        if not self.is_worker and self.run is not None and config.option.redact:
            self._redact(config)
        self.run, self.entries = None, []

    def _redact(self, config: pytest.Config) -> None:
        """--redact, after the last report is written (junitxml writes at sessionfinish, Allure per test)."""
        from vxlan_conformance.report.redact import Redactor, redact_files, written_files

        assert self.inventory is not None and self.run is not None
        redactor = Redactor.for_run(self.run, other_hosts=_other_hosts(self.inventory, self.run.nodes),
                                    secrets=_secrets(self.inventory))
        junit, allure_dir = (getattr(config.option, name, None) for name in ("xmlpath", "allure_report_dir"))
        files = written_files(self.reports_dir, Path(junit) if junit else None,
                              Path(allure_dir) if allure_dir else None)
        done = redact_files(files, redactor, self.progress)
        self.progress(f"--redact: {len(done)} report files redacted for handover")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.is_worker:
            summary.print_console(terminalreporter, self.entries)


def _terminate_like_ctrl_c(signum: int, frame: object) -> None:
    """pytest handles only SIGINT; a SIGTERM (systemd, CI timeouts, kill) must also end the run through
    pytest's interrupt path, so agents are stopped and summary.json / junit.xml are still written."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _other_hosts(inventory: inventory_mod.Inventory, nodes: list[str]) -> list[str]:
    """Inventory hosts that are no checked node (bastion, hosts left out by --limit), by name and address."""
    hosts = [h for name, h in inventory.hosts.items() if name not in nodes]
    return [n for h in hosts for n in (h.name, h.ssh_host) if n]


def _secrets(inventory: inventory_mod.Inventory) -> list[str]:
    """Passwords and the arguments of the view commands (a --token), should any reach a report."""
    found = [s for h in inventory.hosts.values() for s in (h.password, h.become_password) if s]
    for command in (inventory.overlay.kubectl, inventory.overlay.etcdctl):
        words = (command or "").split()[1:]
        found += [w for word in words for w in (word, word.partition("=")[2]) if len(w) >= 8]  # --token=VALUE
    return found


def reports_dir(config: pytest.Config) -> Path:
    return Path(config.option.reports_dir or PROJECT_ROOT / "reports").resolve()


def prepare_reports(config: pytest.Config) -> None:
    """Default report paths for suite runs. Our default outputs are cleared here, once, on the controller
    (allure's own --clean-alluredir races under xdist); when a report's plugin is switched off
    (`-p no:junitxml`, `-p no:allure_pytest`) its default output is only cleared, so a stale one is not
    read as this run's."""
    directory = reports_dir(config)
    opts = config.option
    informs_only = (opts.help or opts.version or opts.markers or opts.showfixtures or opts.show_fixtures_per_test
                    or opts.collectonly)  # `pytest --help` in the project must not wipe the last run's reports
    for plugin, option, default in (("junitxml", "xmlpath", directory / "junit.xml"),
                                    ("allure_pytest", "allure_report_dir", directory / "allure-results")):
        enabled = config.pluginmanager.has_plugin(plugin)
        if enabled and getattr(config.option, option):
            continue
        if enabled:
            setattr(config.option, option, str(default))
        if not hasattr(config, "workerinput") and not informs_only:
            if default.is_dir():
                shutil.rmtree(default, ignore_errors=True)
            else:
                default.unlink(missing_ok=True)


def load_inventory(config: pytest.Config) -> inventory_mod.Inventory:
    path = config.option.inventory
    if path is None:
        default = PROJECT_ROOT / "inventory" / "lab.yaml"
        if not default.exists():
            raise pytest.UsageError("no inventory: pass --inventory PATH (or bring the lab up: "
                                    "python -m vxlan_conformance.lab up)")
        path = str(default)
    if os.path.relpath(path).startswith("inventory/"):
        path = os.path.relpath(path)  # summary.json names it as the user sees it from the project
    try:
        inventory = inventory_mod.load(path, limit=config.option.limit, vault=vault_options(config))
    except inventory_mod.InventoryError as exc:
        raise pytest.UsageError(str(exc)) from None
    unknown = [name for name in _split(config.option.new_nodes) if name not in inventory.nodes]
    if unknown:
        raise pytest.UsageError(f"--new-nodes: {', '.join(unknown)} not among the checked nodes of {path}; "
                                "use inventory host names")
    mode = config.option.pairs
    if mode not in ("all", "new") and not re.fullmatch(r"sample:[1-9]\d*", mode):
        raise pytest.UsageError(f"--pairs {mode}: use all, new or sample:K (K >= 1)")
    if mode == "new" and not _split(config.option.new_nodes):
        raise pytest.UsageError("--pairs new needs --new-nodes a,b (the nodes added to the cluster)")
    return inventory


def vault_options(config: pytest.Config) -> inventory_mod.VaultOptions:
    """--vault-password-file / --ask-vault-pass; the prompt reads the terminal with pytest's capture off."""
    def prompt(text: str) -> str:
        import getpass

        capture = config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            return getpass.getpass(text)

    return inventory_mod.VaultOptions(password_files=tuple(config.option.vault_password_files),
                                      ask=config.option.ask_vault_pass, prompt=prompt)


def selects(config: pytest.Config, module: str) -> bool:
    """Whether the command line selects suites/<module> (or the whole suites/): the mesh costs seconds
    and the prediction changes node state, so each runs only when its suite is selected."""
    target = SUITES_DIR / module
    for arg in config.args:
        path = Path(config.invocation_params.dir, arg.split("::", 1)[0]).resolve()
        if path in (SUITES_DIR, target):
            return True
    return False


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]
