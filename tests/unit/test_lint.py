"""pyflakes over every Python file of the project: no unused imports or names, no undefined ones."""

from pathlib import Path

from pyflakes.api import checkPath
from pyflakes.reporter import Reporter

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("src", "storm_compat", "topologies", "tests", "benchmarks")


class Collect(Reporter):
    def __init__(self):
        self.problems: list[str] = []

    def unexpectedError(self, filename, message):
        self.problems.append(f"{filename}: {message}")

    def syntaxError(self, filename, message, lineno, offset, text):
        self.problems.append(f"{filename}:{lineno}: {message}")

    def flake(self, message):
        self.problems.append(str(message))


def test_pyflakes_finds_nothing():
    reporter = Collect()
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            checkPath(str(path), reporter)
    assert reporter.problems == []
