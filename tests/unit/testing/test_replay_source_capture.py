"""StreamCapture reading from a ReplaySource: the sample comes back whole, through faults."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from pistats.kinesis.recording import Recording, RecordingWriter
from pistats.kinesis.stream_replay import StreamCapture
from pistats.testing.clock import ManualClock
from pistats.testing.replay_source import Fault, ReplaySource

SAMPLE = Path(__file__).resolve().parents[2] / "fixtures" / "sample_recording"


def _contents(recording: Recording) -> dict:
    return {s.shard_id: [(r.sequence_number, r.partition_key, r.data) for r in recording.records(s.shard_id)] for s in recording.shards}


def test_capture_through_throttling_expiry_and_small_batches(tmp_path):
    sample = Recording.open(SAMPLE)
    clock = ManualClock()  # sleeping advances it: idle timeouts pass at once
    source = ReplaySource.from_recording(sample, now=clock.seconds)
    source.inject(Fault("GetRecords", "ProvisionedThroughputExceededException", shard_id="shardId-000000000000", times=3, skip=1))
    source.inject(Fault("GetRecords", "ExpiredIteratorException", shard_id="shardId-000000000003", skip=2))
    with RecordingWriter(tmp_path / "copy", stream=sample.manifest.stream, captured_at=datetime(2026, 11, 26, tzinfo=timezone.utc)) as writer:
        report = StreamCapture(source, sample.manifest.stream, limit=200, until_idle=1.0, sleep=clock.sleep, clock=clock.seconds).capture(writer)
        writer.commit()

    copy = Recording.open(tmp_path / "copy")
    assert report.records == 3000 and report.shards == 6 and report.closed_shards == 2
    assert _contents(copy) == _contents(sample)
    for shard in sample.shards:
        assert copy.manifest.shard(shard.shard_id) == shard
        assert copy.read_shard(shard.shard_id).end == sample.read_shard(shard.shard_id).end
    outcomes = [c.outcome for c in source.calls]
    assert outcomes.count("ProvisionedThroughputExceededException") == 3
    assert outcomes.count("ExpiredIteratorException") == 1


def test_max_records_stops_early(tmp_path):
    clock = ManualClock()
    source = ReplaySource.from_recording(SAMPLE, now=clock.seconds)
    with RecordingWriter(tmp_path / "part", stream=source.stream, captured_at=datetime(2026, 11, 26, tzinfo=timezone.utc)) as writer:
        report = StreamCapture(source, source.stream, max_records=250, limit=100, sleep=clock.sleep, clock=clock.seconds).capture(writer)
        writer.commit()
    assert report.records == 250
    part = Recording.open(tmp_path / "part")
    assert sum(len(list(part.records(s.shard_id))) for s in part.shards) == 250


def test_capture_from_timestamp_and_latest(tmp_path):
    sample = Recording.open(SAMPLE)
    child = sample.read_shard("shardId-000000000004").records
    start = child[len(child) // 2].arrival
    clock = ManualClock()
    source = ReplaySource.from_recording(sample, now=clock.seconds)
    captured_at = datetime(2026, 11, 26, tzinfo=timezone.utc)
    with RecordingWriter(tmp_path / "since", stream=source.stream, captured_at=captured_at) as writer:
        StreamCapture(source, source.stream, start="timestamp", timestamp=start, sleep=clock.sleep, clock=clock.seconds).capture(writer)
        writer.commit()
    since = Recording.open(tmp_path / "since")
    assert [r.data for r in since.records("shardId-000000000004")] == [r.data for r in child if r.arrival >= start]
    # Parents closed before the timestamp: nothing but their shard end.
    assert since.read_shard("shardId-000000000000").records == []
    assert since.read_shard("shardId-000000000000").end is not None

    with RecordingWriter(tmp_path / "latest", stream=source.stream, captured_at=captured_at) as writer:
        report = StreamCapture(source, source.stream, start="latest", until_idle=1.0, sleep=clock.sleep, clock=clock.seconds).capture(writer)
        writer.commit()
    assert report.records == 0 and report.closed_shards == 2
