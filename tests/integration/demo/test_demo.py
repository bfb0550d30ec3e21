"""The main job end to end: `pistats demo` through real Storm equals the recording's expected.json.

Kinesis (kinesis-local) -> Storm 2.8 LocalCluster (spout, parse, enrich, sessions, sink) ->
chdb; the summary is read back from the store, de-duplicated, and must match exactly what
`pistats generate` says a correct pipeline produces: no loss, no duplicates.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pistats.localenv.paths import project_root

pytestmark = [pytest.mark.integration, pytest.mark.storm]

BIN = Path(sys.executable).parent
COMPARED = ("records_in", "events_stored", "rejected", "duplicates_dropped", "users", "sessions",
            "by_country", "by_device_type")


def run_demo(*args: str) -> dict:
    result = subprocess.run(
        [str(BIN / "pistats"), "demo", "--json", "--no-progress", "--timeout", "600", *args],
        cwd=project_root(), capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, f"pistats demo failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["events_per_s"] > 0 and summary["elapsed_s"] > 0
    return summary


def assert_matches_expected(summary: dict, recording: Path) -> None:
    expected = json.loads((recording / "expected.json").read_text())
    assert {key: summary[key] for key in COMPARED} == {key: expected[key] for key in COMPARED}


def test_demo_on_the_bundled_sample_matches_expected(redis_client):
    summary = run_demo()
    assert_matches_expected(summary, project_root() / "tests" / "fixtures" / "sample_recording")
    # The run leaves nothing in Redis: its session state and checkpoints were its own.
    run_id = summary["stream"].removeprefix("pistats-demo-")
    assert redis_client.exists(f"pistats:ckpt:pistats-demo-{run_id}:{summary['stream']}:shardId-000000000000") == 0
    assert not list(redis_client.scan_iter(match=f"pistats:demo:{run_id}:*", count=1000))
    assert not list(redis_client.scan_iter(match=f"pistats:ckpt:pistats-demo-{run_id}:*", count=1000))


def test_demo_on_a_fresh_recording_with_a_reshard_matches_expected(tmp_path):
    recording = tmp_path / "recording"
    subprocess.run(
        [str(BIN / "pistats"), "generate", "--out", str(recording), "--events", "1500", "--shards", "2",
         "--reshard-at", "0.4", "--seed", "2026", "--no-progress"],
        check=True, capture_output=True,
    )
    manifest = json.loads((recording / "manifest.json").read_text())
    assert any(shard.get("ParentShardId") for shard in manifest["shards"])  # really resharded
    assert_matches_expected(run_demo("--recording", str(recording)), recording)
