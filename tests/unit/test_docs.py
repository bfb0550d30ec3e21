"""The README stays a front page, and the docs carry today's state only (git holds the history)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN_HISTORY = re.compile(r"\bstop \d+\b|\bat stop\b|earlier runs?\b|final code\b", re.IGNORECASE)


def test_the_readme_is_at_most_ten_thousand_characters():
    assert len((ROOT / "README.md").read_text(encoding="utf-8")) <= 10_000


def test_readme_and_docs_carry_no_run_history():
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
             if RUN_HISTORY.search(line)]
    assert found == []


def test_every_document_the_readme_links_exists():
    links = re.findall(r"\]\((docs/[^)#]+)", (ROOT / "README.md").read_text(encoding="utf-8"))
    assert links and [link for link in links if not (ROOT / link).exists()] == []
