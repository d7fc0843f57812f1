"""The suite session: gather once on the controller, share with xdist workers, write the reports.

Registered by lib.pytest_plugin only when the run collects suites/. On the controller (or a run without
xdist) `pytest_sessionstart` reads the inventory, opens one SSH connection per node, gathers facts, view
and mesh, and saves them to one JSON file; workers receive its path through `workerinput` and only read.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lib import inventory as inventory_mod
from lib import summary
from lib.pytest_plugin import PROJECT_ROOT, SUITES_DIR
from lib.results import from_report
from lib.rundata import RunData

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

    # -- set-up -------------------------------------------------------------------------------
    def pytest_configure(self, config: pytest.Config) -> None:
        if self.is_worker:
            return
        self.inventory = load_inventory(config)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.is_worker:
            self.run = RunData.load(self.config.workerinput[WORKER_KEY])
            return
        from lib.gather import gather, open_pool, ssh_options
        from lib.mesh_phase import run_mesh_phase

        assert self.inventory is not None
        opts = self.config.option
        options = {"kernel_policy": opts.kernel_policy or self.inventory.overlay.kernel_policy,
                   "kernel_lists": [*opts.kernel_list, *filter(None, [self.inventory.overlay.kernel_list])],
                   "new_nodes": _split(opts.new_nodes), "pairs": opts.pairs,
                   "allow_state_changes": opts.allow_state_changes, "mesh": wants_mesh(self.config)}
        pool = open_pool(self.inventory, ssh_options(self.inventory, opts.connect_timeout,
                                                     opts.command_timeout))
        try:
            self.run = gather(self.inventory, pool, options=options, progress=self.progress)
            run_mesh_phase(self.inventory, pool, self.run, progress=self.progress)
        finally:
            pool.close()
        self.run.save(self.run_path)

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
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.is_worker:
            return
        status = summary.status_of(report)
        if status is None:
            return
        result = from_report(report.user_properties)
        self.entries.append(summary.entry(report, status, result))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.is_worker or self.run is None:
            return
        summary.write(self.reports_dir / "summary.json", self.run, self.entries,
                      duration_s=time.time() - self.started)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.is_worker:
            summary.print_console(terminalreporter, self.entries)


def reports_dir(config: pytest.Config) -> Path:
    return Path(config.option.reports_dir or PROJECT_ROOT / "reports").resolve()


def prepare_reports(config: pytest.Config) -> None:
    """Default report paths for suite runs; the allure results dir is cleared here, once, on the
    controller (allure's own --clean-alluredir races under xdist)."""
    directory = reports_dir(config)
    if config.option.xmlpath is None:
        config.option.xmlpath = str(directory / "junit.xml")
    if not config.option.allure_report_dir:
        config.option.allure_report_dir = str(directory / "allure-results")
        if not hasattr(config, "workerinput"):
            shutil.rmtree(config.option.allure_report_dir, ignore_errors=True)


def load_inventory(config: pytest.Config) -> inventory_mod.Inventory:
    path = config.option.inventory
    if path is None:
        default = PROJECT_ROOT / "inventory" / "lab.yaml"
        if not default.exists():
            raise pytest.UsageError("no inventory: pass --inventory PATH (or bring the lab up: "
                                    "python -m lib.lab up)")
        path = str(default)
    try:
        return inventory_mod.load(path, limit=config.option.limit)
    except inventory_mod.InventoryError as exc:
        raise pytest.UsageError(str(exc)) from None


def wants_mesh(config: pytest.Config) -> bool:
    """The mesh costs seconds; run it only when the datapath suite is among the selected paths."""
    datapath = SUITES_DIR / "test_datapath.py"
    for arg in config.args:
        path = Path(config.invocation_params.dir, arg.split("::", 1)[0]).resolve()
        if path in (SUITES_DIR, datapath):
            return True
    return False


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]
