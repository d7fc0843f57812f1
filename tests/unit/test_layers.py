"""The package's layers import one way only, and no module imports itself back through others.

Every import counts, also those inside functions: a cycle closed through a function-level import is still
a cycle (that is how the old plugin/session/report/results circle hid)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "lib" / "vxlan_conformance"
ROOT = "vxlan_conformance"
# lowest first; a module may import its own layer and the ones before it
LAYERS = (
    ("vxlan_conformance", "vxlan_conformance.catalog", "vxlan_conformance.kernels"),
    ("vxlan_conformance.model",),
    ("vxlan_conformance.cni",),
    ("vxlan_conformance.inventory", "vxlan_conformance.transport"),
    ("vxlan_conformance.collect", "vxlan_conformance.mesh", "vxlan_conformance.agent"),
    ("vxlan_conformance.checks",),
    ("vxlan_conformance.report",),
    ("vxlan_conformance.plugin", "vxlan_conformance.demo"),
)
APART = "vxlan_conformance.lab"  # the embedded lab imports nothing of the suite (but PROJECT_ROOT)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p) for p in PACKAGE.rglob("*.py")}


def imports(path: Path) -> set[str]:
    """The vxlan_conformance modules `path` imports, relative imports resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            subs = {f"{base}.{alias.name}" for alias in node.names} & MODULES
            found |= subs if len(subs) == len(node.names) else subs | {base}  # `from pkg import submodule`
    return {m for m in found if m in MODULES and m != name}


def rank(module: str) -> int:
    """The layer of a module: its longest matching prefix (the root package alone is layer 0)."""
    matches = [(len(prefix), index) for index, layer in enumerate(LAYERS) for prefix in layer
               if module == prefix or (prefix != ROOT and module.startswith(prefix + "."))]
    if not matches:
        raise AssertionError(f"{module} is in no layer")
    return max(matches)[1]


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def test_every_module_is_in_a_layer():
    for module in graph():
        if not module.startswith(APART) and not module.endswith("__main__"):
            rank(module)


def test_layers_import_downwards_only():
    wrong = []
    for module, targets in graph().items():
        if module.startswith(APART):
            wrong += [f"{module} -> {t}" for t in targets if not t.startswith(APART) and t != ROOT]
            continue
        if module.endswith("__main__"):  # an entry point (python -m ...) stands above every layer
            continue
        wrong += [f"{module} -> {t}" for t in targets if not t.startswith(APART) and rank(t) > rank(module)]
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycle():
    edges = graph()
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> bool:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                cycle.extend(path[path.index(target):] + [node, target] if target in path else [node, target])
                return True
            if target not in state and visit(target, path + [node]):
                return True
        state[node] = 2
        return False

    for start in sorted(edges):
        if start not in state and visit(start, []):
            break
    assert not cycle, " -> ".join(cycle)


@pytest.mark.parametrize("module", ["vxlan_conformance.plugin.verdicts", "vxlan_conformance.checks.datapath"])
def test_the_graph_sees_function_level_imports(module):
    """The test is not blind: datapath imports mesh.frames inside a function only."""
    targets = graph()[module]
    assert targets, module


def test_only_the_plugin_imports_pytest():
    """The checks and everything below them are plain functions of the run data: a unit test calls them
    without pytest's machinery (a check that cannot judge raises NotApplicable, not pytest.skip)."""
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        if name.startswith(f"{ROOT}.plugin"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            wrong += [name for n in names if n.split(".")[0] in ("pytest", "_pytest")]
    assert not wrong, sorted(set(wrong))
