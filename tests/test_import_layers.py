"""No import circles between arcodex modules (issue 12).

Every module under ``src/arcodex`` is parsed with :mod:`ast`; an import of another
arcodex module, at module level or inside a function, is an edge (imports under
``if TYPE_CHECKING:`` are not: they never run). Two modules importing each other,
directly or round a longer loop, is a circle, and fails this test — unless the
circle is in :data:`ALLOWED` with the reason it is still there.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

#: Circles known to remain, each with why; the coordinator empties this as they are fixed.
#: A circle is written as the sorted tuple of its modules.
ALLOWED: dict[tuple[str, ...], str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The arcodex modules ``module`` imports (at any depth, outside TYPE_CHECKING)."""
    found: set[str] = set()

    def resolve(name: str) -> str | None:
        # `from arcodex.x import y`: y may be a module (arcodex.x.y) or a name in arcodex.x.
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "arcodex" and (hit := resolve(alias.name)):
                    found.add(hit)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}".rstrip(".")
            if base.split(".")[0] == "arcodex":
                for alias in node.names:
                    if hit := resolve(f"{base}.{alias.name}"):
                        found.add(hit)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    """Every arcodex module and the arcodex modules it imports."""
    paths = {_module_name(p): p for p in sorted((SRC / "arcodex").rglob("*.py"))}
    known = set(paths)
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges = _imports(tree, name, path.name == "__init__.py", known)
        # A package's __init__ re-exports its modules: importing a name through the package
        # is an edge to the package, which then leads on; a module importing its own
        # package (to reach a sibling) would make every package a circle, so it counts as
        # an edge to nothing when the package is one of its parents.
        graph[name] = {e for e in edges if not name.startswith(f"{e}.")}
    return graph


def circles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[str, ...]] = []
    counter = 0

    def connect(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(tuple(sorted(component)))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(found)


def test_the_graph_sees_function_level_imports() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from arcodex.b import x\n"
        "def f():\n    from arcodex.c import y\n"
    )
    known = {"arcodex", "arcodex.a", "arcodex.b", "arcodex.c"}
    assert _imports(tree, "arcodex.a", False, known) == {"arcodex.c"}
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [("a", "b", "c")]


def test_no_import_circles() -> None:
    found = circles(import_graph())
    unexpected = [c for c in found if c not in ALLOWED]
    assert not unexpected, "import circles: " + "; ".join(" <-> ".join(c) for c in unexpected)


def test_allowed_circles_still_exist() -> None:
    """An allowed circle that is gone must leave the allow-list."""
    found = circles(import_graph())
    gone = [c for c in ALLOWED if c not in found]
    assert not gone, f"no longer circles, drop them from ALLOWED: {gone}"
