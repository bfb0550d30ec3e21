"""Replay and capture against kinesis-local: shard routing, resharding, retries of failed entries."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pistats.kinesis import admin
from pistats.kinesis.client import make_kinesis_client
from pistats.kinesis.recording import RecordedRecord, Recording, RecordingWriter, ShardInfo
from pistats.kinesis.stream_replay import StreamCapture, StreamReplayer, hash_key_for

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)


def _key_in(shard: ShardInfo, index: int) -> str:
    n = 0
    while True:
        key = f"c{index}:u{n}"
        if shard.contains(hash_key_for(key)):
            return key
        n += 1


def _split_recording(path) -> Recording:
    """Two shards, each split in two half-way through: ids as Kinesis would give them."""
    (a0, a1), (b0, b1) = admin.even_hash_ranges(2)
    roots = [
        ShardInfo("shardId-000000000000", a0, a1, "1", ending_sequence_number="999999"),
        ShardInfo("shardId-000000000001", b0, b1, "1", ending_sequence_number="999999"),
    ]
    children = []
    for number, root in zip((2, 4), roots):
        middle = (root.starting_hash_key + root.ending_hash_key) // 2
        children.append(ShardInfo(f"shardId-{number:012d}", root.starting_hash_key, middle, "2000000", parent_shard_id=root.shard_id))
        children.append(ShardInfo(f"shardId-{number + 1:012d}", middle + 1, root.ending_hash_key, "2000000", parent_shard_id=root.shard_id))
    with RecordingWriter(path, stream="source", captured_at=T0) as writer:
        for shard in roots + children:
            writer.add_shard(shard)
        second = 0
        for generation, shards in ((0, roots), (1, children)):
            for index in range(6):
                for shard in shards:
                    second += 1
                    key = _key_in(shard, index)
                    data = f"{shard.shard_id}/{index}".encode() + (b"\xff" if index == 3 else b"")
                    sequence = 1000 + second if generation == 0 else 3_000_000 + second
                    writer.write(shard.shard_id, RecordedRecord(str(sequence), T0 + timedelta(seconds=second), key, data))
        for root, number in zip(roots, (2, 4)):
            writer.end_shard(root.shard_id, [{"ShardId": f"shardId-{number:012d}"}, {"ShardId": f"shardId-{number + 1:012d}"}])
        writer.commit()
    return Recording.open(path)


@pytest.fixture
def stream(kinesis_endpoint, unique_name):
    client = make_kinesis_client(kinesis_endpoint)
    yield client, unique_name
    admin.delete_stream(client, unique_name)


def _contents(recording: Recording) -> dict[str, list[tuple[str, bytes]]]:
    return {s.shard_id: [(r.partition_key, r.data) for r in recording.records(s.shard_id)] for s in recording.shards}


def test_replay_reshards_like_the_recording_and_capture_reads_it_back(stream, tmp_path):
    client, name = stream
    source = _split_recording(tmp_path / "source")
    admin.create_stream(client, name, 2)

    report = StreamReplayer(client, name).replay(source)

    assert report.records_put == 36 and report.failures == [] and report.misrouted == 0
    assert report.reshards == [
        f"split shardId-000000000000 at {source.manifest.shard('shardId-000000000003').starting_hash_key}",
        f"split shardId-000000000001 at {source.manifest.shard('shardId-000000000005').starting_hash_key}",
    ]
    assert report.shard_map == {s.shard_id: s.shard_id for s in source.shards}

    with RecordingWriter(tmp_path / "captured", stream=name, captured_at=T0) as writer:
        captured = StreamCapture(client, name, until_idle=0.3, poll_interval=0.05).capture(writer)
        writer.commit()
    assert captured.records == 36 and captured.shards == 6 and captured.closed_shards == 2
    back = Recording.open(tmp_path / "captured")
    assert _contents(back) == _contents(source)
    parent = back.read_shard("shardId-000000000000")
    assert [c["ShardId"] for c in parent.end.child_shards] == ["shardId-000000000002", "shardId-000000000003"]
    assert back.manifest.shard("shardId-000000000003").parent_shard_id == "shardId-000000000000"


class FlakyPuts:
    """Wraps a real client: the first PutRecords answers entries 0 and 2 with ErrorCodes."""

    def __init__(self, client):
        self._client = client
        self.calls: list[int] = []

    def __getattr__(self, name):
        return getattr(self._client, name)

    def put_records(self, **request):
        self.calls.append(len(request["Records"]))
        if len(self.calls) > 1:
            return self._client.put_records(**request)
        kept = [entry for i, entry in enumerate(request["Records"]) if i not in (0, 2)]
        real = iter(self._client.put_records(StreamName=request["StreamName"], Records=kept)["Records"])
        results = []
        for i in range(len(request["Records"])):
            if i in (0, 2):
                results.append({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded"})
            else:
                results.append(next(real))
        return {"FailedRecordCount": 2, "Records": results}


def test_only_failed_entries_are_retried(stream, tmp_path):
    client, name = stream
    (a0, a1), = admin.even_hash_ranges(1)
    shard = ShardInfo("shardId-000000000000", a0, a1, "1")
    with RecordingWriter(tmp_path / "one", stream="s", captured_at=T0) as writer:
        writer.add_shard(shard)
        for i in range(5):
            writer.write(shard.shard_id, RecordedRecord(str(10 + i), T0, f"k{i}", f"d{i}".encode()))
        writer.commit()
    admin.create_stream(client, name, 1)
    flaky = FlakyPuts(client)

    report = StreamReplayer(flaky, name, sleep=lambda _: None).replay(Recording.open(tmp_path / "one"))

    assert flaky.calls == [5, 2]
    assert report.records_put == 5 and report.retried_entries == 2 and report.failures == []
    with RecordingWriter(tmp_path / "back", stream=name, captured_at=T0) as writer:
        StreamCapture(client, name, until_idle=0.2, poll_interval=0.05).capture(writer)
        writer.commit()
    data = [r.data for r in Recording.open(tmp_path / "back").records(shard.shard_id)]
    assert sorted(data) == [b"d0", b"d1", b"d2", b"d3", b"d4"]
    assert data[-2:] == [b"d0", b"d2"]


def test_replay_merges_like_the_recording(stream, tmp_path):
    client, name = stream
    (a0, a1), (b0, b1) = admin.even_hash_ranges(2)
    left = ShardInfo("shardId-000000000000", a0, a1, "1", ending_sequence_number="500")
    right = ShardInfo("shardId-000000000001", b0, b1, "1", ending_sequence_number="500")
    merged = ShardInfo("shardId-000000000002", a0, b1, "600", parent_shard_id=left.shard_id, adjacent_parent_shard_id=right.shard_id)
    with RecordingWriter(tmp_path / "merge", stream="source", captured_at=T0) as writer:
        for shard in (left, right, merged):
            writer.add_shard(shard)
        for index, shard in enumerate((left, right, merged, left, right, merged)):
            if shard is merged and index < 3:
                continue
            key = _key_in(shard, index)
            writer.write(shard.shard_id, RecordedRecord(str(100 + index), T0 + timedelta(seconds=index), key, f"{index}".encode()))
        writer.write(merged.shard_id, RecordedRecord("700", T0 + timedelta(seconds=10), "c:late", b"after merge"))
        for parent in (left, right):
            writer.end_shard(parent.shard_id, [{"ShardId": merged.shard_id}])
        writer.commit()
    source = Recording.open(tmp_path / "merge")
    admin.create_stream(client, name, 2)

    report = StreamReplayer(client, name).replay(source)

    assert report.reshards == ["merge shardId-000000000000 + shardId-000000000001"]
    assert report.records_put == 6 and report.misrouted == 0 and report.failures == []
    with RecordingWriter(tmp_path / "back", stream=name, captured_at=T0) as writer:
        StreamCapture(client, name, until_idle=0.3, poll_interval=0.05).capture(writer)
        writer.commit()
    back = Recording.open(tmp_path / "back")
    live_child = report.shard_map[merged.shard_id]
    assert back.manifest.shard(live_child).parents == ("shardId-000000000000", "shardId-000000000001")
    assert [r.data for r in back.records(live_child)] == [b"5", b"after merge"]
    assert _contents(back)["shardId-000000000000"] == _contents(source)["shardId-000000000000"]
