"""pytest plugin of the installed project (entry point `pytest11`): options, and the suite session.

It is loaded before any conftest.py. That matters for `--inventory PATH` typed with a space: pytest
chooses its rootdir before plugins load, takes PATH for a test path, and misses pytest.ini when PATH lies
outside the project. `_recover_rootdir` redoes that choice once `--inventory` is known to take a value.

The suite session itself (gather facts, view and mesh once, share them with xdist workers, write the
reports) is in `plugin/session.py`; it is registered only when the run collects the suites, so the project's
own tests and any other project using this Python environment are left alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _pytest.config import findpaths

from vxlan_conformance import SUITES_DIR


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vxlan-conformance", "VXLAN overlay conformance")
    group.addoption("--inventory", metavar="PATH", default=None,
                    help="Ansible inventory (YAML or INI, file or directory); default inventory/lab.yaml")
    group.addoption("--limit", metavar="PATTERN", default=None,
                    help="Ansible-style host pattern: node1,node2 / kube_node / !node3 / &etcd / node[1:3]")
    group.addoption("--vault-password-file", "--vault-pass-file", metavar="FILE", action="append", default=[],
                    dest="vault_password_files",
                    help="vault password file (or script) for the inventory, as ansible takes it; needs ansible-core")
    group.addoption("--ask-vault-pass", "--ask-vault-password", "-J", action="store_true", default=False,
                    help="ask for the inventory's vault password, as ansible does; needs ansible-core")
    group.addoption("--new-nodes", metavar="A,B", default=None,
                    help="check only pairs touching these nodes (the run after a cluster expansion)")
    group.addoption("--pairs", metavar="all|new|sample:K", default="all",
                    help="which directed pairs the pair tests check and the mesh probes (default all); "
                         "sample:K: every node with K peers, both directions")
    group.addoption("--pairs-seed", type=int, default=0, metavar="N",
                    help="seed of --pairs sample:K (same seed, same pairs; default 0)")
    group.addoption("--group-pairs", type=int, default=30, metavar="N",
                    help="above N nodes, one test per sender node covers its pairs (default 30)")
    group.addoption("--kernel-policy", choices=("denylist", "allowlist"), default=None,
                    help="denylist: only known-bad kernels fail; allowlist: only known-good kernels pass")
    group.addoption("--kernel-list", metavar="PATH", action="append", default=[],
                    help="the site's own known-kernel list (YAML), may be repeated")
    group.addoption("--connect-timeout", type=float, default=10.0, metavar="S",
                    help="SSH connect + auth limit per node (default 10)")
    group.addoption("--command-timeout", type=float, default=60.0, metavar="S",
                    help="limit for any one remote command (default 60)")
    group.addoption("--reports-dir", metavar="DIR", default=None,
                    help="where summary.json, junit.xml and allure-results go (default reports/)")
    group.addoption("--redact", action="store_true", default=False,
                    help="rewrite every report file for a handover to a third party: machine-ids hashed, "
                         "firewall rules, raw outputs and addresses other than the nodes' left out (docs/redact.md)")
    group.addoption("--allow-state-changes", action="store_true", default=False,
                    help="run the opt-in checks that change node state (they restore it afterwards)")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser,
                                  args: list[str]) -> None:
    _recover_rootdir(early_config, args)


def _recover_rootdir(config: pytest.Config, args: list[str]) -> None:
    """Choose rootdir and ini again, now that the value of `--inventory` is no longer a test path."""
    if "--inventory" not in args:
        return
    ns = config.known_args_namespace
    rootpath, inipath, inicfg, ignored = findpaths.determine_setup(
        inifile=ns.inifilename, override_ini=ns.override_ini, args=ns.file_or_dir,
        rootdir_cmd_arg=ns.rootdir or None, invocation_dir=config.invocation_params.dir)
    if (rootpath, inipath) == (config.rootpath, config.inipath):
        return
    # pytest keeps these privately and has no public way to re-home a session; the pinned pytest
    # version and tests/test_plugin_cli.py guard this.
    config._rootpath, config._inipath, config._inicfg = rootpath, inipath, inicfg
    config._ignored_config_files = ignored
    config._inicache.clear()
    config._parser.extra_info.update(rootdir=str(rootpath), inifile=str(inipath))
    addopts = config._validate_args(config.getini("addopts"), "via addopts config")
    args[:] = addopts + args
    # plugins were loaded before the ini was found: honour its `-p no:NAME` now (pluggy unregisters)
    config.pluginmanager.consider_preparse(addopts, exclude_only=True)
    config._parser.parse_known_args(args, namespace=ns)
    ns.confcutdir = str(inipath.parent if inipath else rootpath)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Before junitxml and allure configure themselves, so the report paths default to reports/."""
    if not _runs_suites(config):
        return
    from vxlan_conformance.plugin.session import SuiteSession, prepare_reports
    from vxlan_conformance.plugin.verdicts import SESSION

    if not config.pluginmanager.has_plugin(SESSION):
        prepare_reports(config)
        config.pluginmanager.register(SuiteSession(config), SESSION)


def _runs_suites(config: pytest.Config) -> bool:
    """True when the command line (or testpaths) points into the project's suites/ directory."""
    for arg in config.args:
        path = Path(config.invocation_params.dir, arg.split("::", 1)[0]).resolve()
        if path == SUITES_DIR or SUITES_DIR in path.parents:
            return True
    return False
