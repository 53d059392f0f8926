"""The shape of the code: no import cycle among pii-blur's modules, no function over 60 lines."""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "src" / "piiblur"
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(SOURCE.rglob("*.py")):
        parts = ("piiblur", *path.relative_to(SOURCE).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(), str(path))
    return found


def _imports(tree: ast.Module, known: set[str]) -> set[str]:
    """The pii-blur modules ``tree`` imports, anywhere in it (in functions too) but for type checking, and the
    packages that hold them (importing ``a.b.c`` runs ``a/b/__init__.py`` first)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names.update({node.module, *(f"{node.module}.{alias.name}" for alias in node.names)})
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    parents = {name.rsplit(".", depth)[0] for name in names for depth in range(1, name.count("."))}
    return {name for name in names | parents if name in known}


def test_no_import_cycle():
    modules = _modules()
    # a module's own packages are not counted: they are being imported already when it runs
    graph = {name: {other for other in _imports(tree, set(modules)) if not (name + ".").startswith(other + ".")}
             for name, tree in modules.items()}
    cycles: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for other in sorted(graph[name]):
            if state.get(other) == 1:
                cycles.append(" -> ".join([*path[path.index(other):], name, other]))
            elif other not in state:
                visit(other, [*path, name])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    assert not cycles, cycles


def test_no_function_over_60_lines():
    long = [f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
            for name, tree in _modules().items() for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, long
