"""Layering rules read from the source with ``ast``: the core knows no command line, and no import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "siamgui"

#: Known cycles in areas another change is reworking: (importer, imported) edges left out of the check.
ALLOWED_CYCLE_EDGES: set[tuple[str, str]] = set()


def module_files(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` below ``package_dir`` (a package ``__init__`` is the package)."""
    base = package_dir.parent
    mods = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


def _is_package(name: str, mods: dict[str, Path]) -> bool:
    return name in mods and mods[name].name == "__init__.py"


def _resolve_relative(importer: str, level: int, module: str | None, mods: dict[str, Path]) -> str:
    parts = importer.split(".")
    if not _is_package(importer, mods):
        parts = parts[:-1]
    parts = parts[: len(parts) - (level - 1)] if level > 1 else parts
    return ".".join(parts + ([module] if module else []))


def _known(name: str, mods: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is one of our modules."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in mods:
            return candidate
        parts.pop()
    return None


def imports_of(importer: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """The modules of ``mods`` that ``importer`` imports, at module level or inside functions.

    ``from pkg import name`` depends on ``pkg.name`` when that is a module, else on ``pkg`` itself
    (its ``__init__``); ``importlib.import_module("literal")`` counts as an import.
    """
    deps: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            deps.update(filter(None, (_known(a.name, mods) for a in node.names)))
        elif isinstance(node, ast.ImportFrom):
            base = (_resolve_relative(importer, node.level, node.module, mods) if node.level
                    else node.module or "")
            for alias in node.names:
                full = f"{base}.{alias.name}"
                target = full if full in mods else _known(base, mods)
                if target:
                    deps.add(target)
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and (getattr(node.func, "attr", None) == "import_module"
                   or getattr(node.func, "id", None) == "import_module")):
            target = _known(node.args[0].value, mods)
            if target:
                deps.add(target)
    deps.discard(importer)
    return deps


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    mods = module_files(package_dir)
    return {name: imports_of(name, path, mods) for name, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_core_knows_no_command_line():
    """siamgui/core/ neither imports argparse nor prints: the CLI and the GUI decide what the user sees."""
    offenders = []
    for path in sorted((PACKAGE / "core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] == "argparse" for n in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: imports argparse")
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: print()")
    assert not offenders, "\n".join(offenders)


def test_no_import_cycles():
    graph = import_graph(PACKAGE)
    for importer, imported in ALLOWED_CYCLE_EDGES:
        graph.get(importer, set()).discard(imported)
    found = cycles(graph)
    assert not found, "import cycles among siamgui's modules:\n" + "\n".join(
        " <-> ".join(c) + "\n    " + "; ".join(f"{m} -> {d}" for m in c for d in sorted(graph[m] & set(c)))
        for c in found)


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "pkg"


@pytest.mark.parametrize("cnn_import, is_cycle", [
    ("from pkg.models.base import Base", False),  # a sibling, through its full name
    ("from pkg.models import Base", True),  # the package __init__'s names, which import cnn
    ("from . import base", False),
    ("from .. import models", True),
    ("def late():\n    import pkg.models", True),  # a function-level import counts
    ("import importlib\nimportlib.import_module('pkg.models')", True),
])
def test_cycle_check_sees_package_cycles(tmp_path, cnn_import, is_cycle):
    pkg = _write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/models/__init__.py": "from pkg.models.base import Base\nfrom pkg.models.cnn import Cnn\n",
        "pkg/models/base.py": "class Base: ...\n",
        "pkg/models/cnn.py": f"{cnn_import}\nclass Cnn: ...\n",
    })
    assert bool(cycles(import_graph(pkg))) is is_cycle


def test_cycle_check_sees_a_two_module_cycle(tmp_path):
    pkg = _write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/cli.py": "def run():\n    from pkg.gallery_cli import add\n",
        "pkg/gallery_cli.py": "from pkg import cli\n",
    })
    assert cycles(import_graph(pkg)) == [["pkg.cli", "pkg.gallery_cli"]]


def _qt_imports(folder: Path) -> list[str]:
    found = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            if any(n.split(".")[0] in ("PySide6", "shiboken6", "pyqtgraph") for n in names):
                found.append(f"{folder.name}/{path.relative_to(folder)}:{node.lineno}")
    return found


@pytest.mark.parametrize("area", ["core", "capture", "cli"])
def test_only_the_gui_imports_qt(area):
    """Qt (and pyqtgraph, which is Qt) is imported under siamgui/gui/ only, at any depth of any function."""
    offenders = _qt_imports(PACKAGE / area)
    assert not offenders, "Qt imported outside siamgui/gui/: " + ", ".join(offenders)


def test_qt_check_sees_a_nested_import(tmp_path):
    (tmp_path / "m.py").write_text("def f():\n    from PySide6.QtCore import QObject\n")
    assert _qt_imports(tmp_path) == [f"{tmp_path.name}/m.py:2"]
