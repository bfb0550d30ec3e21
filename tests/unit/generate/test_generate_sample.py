"""The committed sample recording is exactly what its documented command generates."""

from __future__ import annotations

import re
from pathlib import Path

from pistats.cli.main import main as pistats
from pistats.kinesis.recording import Recording

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "tests" / "fixtures" / "sample_recording"
DOCS = ROOT / "docs" / "recordings.md"


def _documented_command() -> list[str]:
    match = re.search(r"^pistats (generate --out tests/fixtures/sample_recording [^\n`]+)$", DOCS.read_text(), re.MULTILINE)
    assert match, "docs/recordings.md must show the command that made the sample"
    return match.group(1).split()


def test_sample_is_reproducible_from_the_documented_command(tmp_path):
    arguments = _documented_command()
    arguments[arguments.index("--out") + 1] = str(tmp_path / "sample")
    assert pistats([*arguments, "--no-progress"]) == 0
    sample = Recording.open(SAMPLE)
    names = ["manifest.json", "expected.json", *(f"shards/{s.shard_id}.jsonl" for s in sample.shards)]
    assert sorted(p.relative_to(SAMPLE).as_posix() for p in SAMPLE.rglob("*") if p.is_file()) == sorted(names)
    for name in names:
        assert (tmp_path / "sample" / name).read_bytes() == (SAMPLE / name).read_bytes(), name
    assert len(sample.shards) == 6 and sum(1 for s in sample.shards if s.closed) == 2
