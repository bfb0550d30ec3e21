"""StreamReplayer's batching and pacing rules, against a recording client fake (no service)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pistats.kinesis.recording import RecordedRecord, Recording, RecordingWriter, ShardInfo
from pistats.kinesis.stream_replay import PUT_RECORDS_MAX_BYTES, StreamReplayer, explicit_hash_key, hash_key_for
from tests.support.clock import Clock

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
TOP = 2**128 - 1


class PutRecorder:
    """Answers ListShards with one open shard and accepts every PutRecords entry."""

    def __init__(self):
        self.batches: list[list[dict]] = []

    def list_shards(self, **_):
        return {"Shards": [{"ShardId": "shardId-000000000000", "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(TOP)},
                            "SequenceNumberRange": {"StartingSequenceNumber": "1"}}]}

    def put_records(self, *, StreamName, Records):
        self.batches.append(Records)
        return {"FailedRecordCount": 0, "Records": [{"ShardId": "shardId-000000000000", "SequenceNumber": "1"} for _ in Records]}


def _recording(path, sizes, spacing=timedelta(0)) -> Recording:
    shard = ShardInfo("shardId-000000000000", 0, TOP, "1")
    with RecordingWriter(path, stream="s", captured_at=T0) as writer:
        writer.add_shard(shard)
        for index, size in enumerate(sizes):
            writer.write(shard.shard_id, RecordedRecord(str(index + 1), T0 + spacing * index, f"k{index}", b"x" * size))
        writer.commit()
    return Recording.open(path)


def test_batches_hold_at_most_500_records(tmp_path):
    client = PutRecorder()
    report = StreamReplayer(client, "s").replay(_recording(tmp_path / "r", [10] * 1201))
    assert [len(b) for b in client.batches] == [500, 500, 201]
    assert report.records_put == 1201


def test_batches_hold_at_most_5_mib(tmp_path):
    client = PutRecorder()
    StreamReplayer(client, "s").replay(_recording(tmp_path / "r", [1_000_000] * 12))
    assert [len(b) for b in client.batches] == [5, 5, 2]
    for batch in client.batches:
        assert sum(len(e["Data"]) + len(e["PartitionKey"]) for e in batch) <= PUT_RECORDS_MAX_BYTES


def test_speed_keeps_recorded_gaps_divided(tmp_path):
    clock = Clock()
    client = PutRecorder()
    recording = _recording(tmp_path / "r", [1] * 4, spacing=timedelta(seconds=10))
    StreamReplayer(client, "s", speed=5.0, sleep=clock.sleep, clock=clock).replay(recording)
    assert [round(s, 6) for s in clock.sleeps] == [2.0, 2.0, 2.0]
    assert [len(b) for b in client.batches] == [1, 1, 1, 1]


def test_explicit_hash_key_stays_in_range():
    record = RecordedRecord("1", T0, "c:u", b"")
    natural = hash_key_for("c:u")
    assert explicit_hash_key(record, 0, TOP) == str(natural)
    low, high = (natural + 1, natural + 1000) if natural < TOP - 1000 else (0, 999)
    assert low <= int(explicit_hash_key(record, low, high)) <= high
    pinned = RecordedRecord("1", T0, "c:u", b"", explicit_hash_key="42")
    assert explicit_hash_key(pinned, 0, 100) == "42"
