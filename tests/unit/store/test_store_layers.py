"""The store's modules import one another in one direction: the interface (``base``) and the
column schema below the table schema, the table schema below the backends, no cycle anywhere."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src"
STORE = SRC / "pistats" / "store"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def store_imports() -> dict[str, set[str]]:
    """Each store module and the store modules it imports, at any place in the file (an import
    under TYPE_CHECKING or inside a function counts: a cycle there is still a tangle)."""
    modules = {module_name(path): path for path in STORE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    imported.add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
        graph[name] = {other for other in imported if other in modules and other != name}
    return graph


def cycle_from(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A path start -> ... -> start, or None."""
    stack, seen = [(start, [start])], set()
    while stack:
        name, path = stack.pop()
        for other in sorted(graph[name]):
            if other == start:
                return path + [start]
            if other not in seen:
                seen.add(other)
                stack.append((other, path + [other]))
    return None


def test_no_import_cycle_among_store_modules():
    graph = store_imports()
    assert "pistats.store.backends" in graph and "pistats.store.schema" in graph
    cycles = [cycle for name in sorted(graph) if (cycle := cycle_from(graph, name))]
    assert cycles == []
