"""The package's imports follow the data flow (docs/ARCHITECTURE.md, "Layers"): each
module imports only its own layer or those below it, no import goes round in a cycle,
and nothing imports the package root. Imports made inside functions count too; those
under ``if TYPE_CHECKING:`` do not (they never run)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "llmtrace_nb"

#: top-level module or folder -> its layer; a module may import only layers <= its own
LAYERS = {
    "_version": 0, "_fork": 0, "_current": 0,
    "_capture": 1,
    "_read": 2,
    "_shape": 3,
    "views": 4, "_ship": 4, "_keep": 4,
    "_notebook": 5,
    "__init__": 6, "__main__": 6,
    "demo": 0,  # stands alone: an HTTP server that knows nothing of tracing
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    assert top in LAYERS, f"{module}: a new top-level module needs a place in LAYERS"
    return LAYERS[top]


def _under_type_checking(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and ast.unparse(node.test) in (
                "TYPE_CHECKING", "typing.TYPE_CHECKING"):
            return True
    return False


def imports_of(path: Path) -> set[str]:
    """The package modules ``path`` imports (a name imported from a package counts as
    the submodule when there is one)."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if _under_type_checking(node, parents):
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "llmtrace_nb")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "llmtrace_nb":
                target = node.module
            else:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if known(sub) else target)
    return found - {me}


def known(module: str) -> bool:
    rel = Path(*module.split(".")[1:]) if "." in module else Path()
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


GRAPH = {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_go_down_or_across(module: str) -> None:
    up = sorted(t for t in GRAPH[module] if layer(t) > layer(module))
    assert not up, f"{module} (layer {layer(module)}) imports from above: {up}"
    if module != "llmtrace_nb":
        assert "llmtrace_nb" not in GRAPH[module], f"{module} imports the package root"


def test_no_import_cycles() -> None:
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = [*path[path.index(module):], module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for target in sorted(GRAPH.get(module, ())):
            # a package's __init__ is run on the way to its submodules: that is no cycle
            if not module.startswith(target + "."):
                visit(target, [*path, module])
        done.add(module)

    for module in sorted(GRAPH):
        visit(module, [])


def test_the_checker_sees_imports() -> None:
    """It must be able to fail: the root's imports are found, and a lazy import of the
    glue from a view would be an upward one."""
    assert "llmtrace_nb._notebook.api" in GRAPH["llmtrace_nb"]
    assert layer("llmtrace_nb._notebook.session") > layer("llmtrace_nb.views.charts")
    assert "llmtrace_nb._current" in GRAPH["llmtrace_nb.views.charts"]
