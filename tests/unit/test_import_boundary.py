"""The library never imports Storm: spouts and bolts are the only adapters."""

import ast
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[2] / "src" / "pistats"
FORBIDDEN = {"streamparse", "pystorm", "storm_compat"}


def test_library_does_not_import_storm():
    offenders = []
    for path in LIBRARY.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in FORBIDDEN:
                    offenders.append(f"{path.relative_to(LIBRARY)}:{node.lineno} imports {name}")
    assert offenders == []
