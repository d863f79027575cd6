"""The simulator's modules import each other without a circle, and each one
imports alone in a fresh interpreter (no module relies on another having
been imported first)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import hasupd_lab.drbdsim

PACKAGE = "hasupd_lab.drbdsim"
SIM_DIR = Path(hasupd_lab.drbdsim.__file__).parent


def _type_checking_only(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imported(tree: ast.AST, package: str, modules: set[str]) -> set[str]:
    """The package's modules a module imports at run time, wherever the import
    statement is (a function-level import closes a circle too); imports under
    ``if TYPE_CHECKING:`` only serve annotations and never run."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            for alias in node.names:
                found.add(f"{node.module}.{alias.name}")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    prefix = package + "."
    return {name[len(prefix):].split(".")[0] for name in found if name.startswith(prefix)} & modules


def module_graph(directory: Path, package: str) -> dict[str, set[str]]:
    modules = {p.stem for p in directory.glob("*.py") if p.stem != "__init__"}
    return {m: _imported(ast.parse((directory / f"{m}.py").read_text()), package, modules) - {m}
            for m in sorted(modules)}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for dep in sorted(graph.get(m, ())):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state:
                cycle = walk(dep)
                if cycle:
                    return cycle
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            cycle = walk(m)
            if cycle:
                return cycle
    return None


def test_simulator_modules_have_no_import_circle():
    graph = module_graph(SIM_DIR, PACKAGE)
    assert {"daemon", "commands", "node", "resource", "link"} <= set(graph)
    assert find_cycle(graph) is None, f"import circle: {' -> '.join(find_cycle(graph))}"
    # the command layer sees resources only through the node, never the server
    assert "daemon" not in graph["commands"]


def test_graph_check_finds_a_function_level_circle(tmp_path):
    """The checker itself: a circle closed by an import inside a function (the
    shape the old daemon/commands pair had) is found; a TYPE_CHECKING import is not one."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("from pkg.b import thing\n")
    (pkg / "b.py").write_text("def thing():\n    from pkg import a\n    return a\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n")
    graph = module_graph(pkg, "pkg")
    assert graph == {"a": {"b"}, "b": {"a"}, "c": set()}
    assert find_cycle(graph) in (["a", "b", "a"], ["b", "a", "b"])
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a"}}) is None


def test_each_simulator_module_imports_alone():
    modules = sorted(module_graph(SIM_DIR, PACKAGE))
    failed = {}
    for m in modules:
        r = subprocess.run([sys.executable, "-c", f"import {PACKAGE}.{m}"], capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            failed[m] = r.stderr.strip().splitlines()[-1:]
    assert not failed, failed
