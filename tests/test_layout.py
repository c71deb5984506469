"""The floors of the layout (issue 21): no module over 400 lines, the consumer under 300, no
import cycle between modules, and the packages' imports point one way (no upward import)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "agent_sre"
# Left to the TRM work (issue 21, point 4): novelty.py and predict.py import each other lazily.
KNOWN_CYCLES: list[set[str]] = []


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that `name` imports at run time (lazy imports too, typing-only ones not)."""
    tree = ast.parse(path.read_text())
    typing_only = {id(node) for block in tree.body if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
                   for node in ast.walk(block)}
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    # A package's __init__ re-exporting its own modules is no arrow between rooms.
    return {m for m in found if m in known and m != name and package != m and not m.startswith(name + ".")}


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_is_over_400_lines_and_the_consumer_is_under_300() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert {name: n for name, n in sizes.items() if n > 400} == {}
    assert sizes["agent_sre.worker.consumer"] < 300


def test_no_two_modules_import_each_other_and_no_package_imports_upward() -> None:
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    assert [c for c in cycles(graph) if c not in KNOWN_CYCLES] == []

    def room(name: str) -> str:
        parts = name.split(".")  # agent_sre.<room>.<module>, or a module of its own at the top
        return parts[1] if len(parts) > 2 or (len(parts) == 2 and known[name].name == "__init__.py") else name

    rooms: dict[str, set[str]] = {}
    for name, targets in graph.items():
        rooms.setdefault(room(name), set()).update(room(t) for t in targets if room(t) != room(name))
    assert cycles(rooms) == []
