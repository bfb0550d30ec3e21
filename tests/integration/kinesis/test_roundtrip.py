"""generate -> pistats replay into kinesis-local -> pistats record: same records, shard by shard."""

from __future__ import annotations

import pytest

from pistats.cli.main import main as pistats
from pistats.generate import GenerateConfig, generate
from pistats.kinesis import admin
from pistats.kinesis.client import make_kinesis_client
from pistats.kinesis.recording import Recording

pytestmark = pytest.mark.integration


def _by_shard(recording: Recording) -> dict[str, list[tuple[str, bytes]]]:
    return {
        shard.shard_id: [(r.partition_key, r.data) for r in recording.records(shard.shard_id)]
        for shard in recording.shards
    }


def test_generated_recording_survives_replay_and_record(kinesis_endpoint, unique_name, tmp_path, capsys):
    source_path = tmp_path / "generated"
    generate(GenerateConfig(events=300, shards=2, seed=21, reshard_at=0.5, bad_fraction=0.05, duplicate_fraction=0.05), source_path)
    client = make_kinesis_client(kinesis_endpoint)
    try:
        code = pistats(["replay", str(source_path), "--stream", unique_name, "--endpoint-url", kinesis_endpoint,
                        "--create", "--as-fast-as-possible", "--no-progress"])
        out = capsys.readouterr().out
        assert code == 0, out
        assert "records put: 300" in out and "failures: 0" in out
        assert out.count("reshard: split") == 2

        captured_path = tmp_path / "captured"
        code = pistats(["record", "--stream", unique_name, "--out", str(captured_path), "--endpoint-url", kinesis_endpoint,
                        "--until-idle", "0.5", "--no-progress"])
        assert code == 0
        assert "records: 300" in capsys.readouterr().out
    finally:
        admin.delete_stream(client, unique_name)

    source = Recording.open(source_path)
    captured = Recording.open(captured_path)
    assert _by_shard(captured) == _by_shard(source)
    for shard in source.shards:
        live = captured.manifest.shard(shard.shard_id)
        assert live.parent_shard_id == shard.parent_shard_id
        assert live.closed == shard.closed
        end = captured.read_shard(shard.shard_id).end
        assert (end is not None) == shard.closed
