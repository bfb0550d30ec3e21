"""The kinesis-shards-jsonl/1 reader and writer."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import datetime, timedelta, timezone

import pytest

from pistats.errors import DataError
from pistats.kinesis.recording import (
    FORMAT,
    Recording,
    RecordedRecord,
    RecordingWriter,
    ShardInfo,
    format_timestamp,
    iter_manifest_order,
)

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)
HALF = 2**127


def _parent() -> ShardInfo:
    return ShardInfo("shardId-000000000000", 0, 2**128 - 1, "100", ending_sequence_number="900")


def _children() -> list[ShardInfo]:
    return [
        ShardInfo("shardId-000000000001", 0, HALF - 1, "1000", parent_shard_id="shardId-000000000000"),
        ShardInfo("shardId-000000000002", HALF, 2**128 - 1, "1001", parent_shard_id="shardId-000000000000"),
    ]


def _record(sequence: int, data: bytes = b"{}", key: str = "c1:u1", seconds: int = 0) -> RecordedRecord:
    return RecordedRecord(str(sequence), T0 + timedelta(seconds=seconds), key, data)


def _write_sample(path, compress: bool = False):
    with RecordingWriter(path, stream="events", captured_at=T0, compress=compress) as writer:
        writer.add_shard(_parent())
        for child in _children():
            writer.add_shard(child)
        writer.write("shardId-000000000000", _record(200, b"\xff\xfe not utf-8"))
        # 10**30 > 999 as integers, although "1000..." < "999" as strings.
        writer.write("shardId-000000000000", _record(999, b'{"v":1}', seconds=1))
        writer.end_shard("shardId-000000000000", [{"ShardId": c.shard_id} for c in _children()])
        writer.write("shardId-000000000001", _record(10**30, b"child", seconds=2))
        writer.commit()
    return path


@pytest.mark.parametrize("compress", [False, True])
def test_round_trip_keeps_bytes_order_and_shard_end(tmp_path, compress):
    path = _write_sample(tmp_path / "rec", compress=compress)
    recording = Recording.open(path)

    assert [s.shard_id for s in recording.shards] == [
        "shardId-000000000000",
        "shardId-000000000001",
        "shardId-000000000002",
    ]
    parent = recording.read_shard("shardId-000000000000")
    assert [r.data for r in parent.records] == [b"\xff\xfe not utf-8", b'{"v":1}']
    assert [r.sequence_number for r in parent.records] == ["200", "999"]
    assert parent.records[1].arrival == T0 + timedelta(seconds=1)
    assert parent.end is not None
    assert [c["ShardId"] for c in parent.end.child_shards] == ["shardId-000000000001", "shardId-000000000002"]
    child = recording.read_shard("shardId-000000000001")
    assert [r.sequence_number for r in child.records] == [str(10**30)]
    assert child.end is None
    assert recording.read_shard("shardId-000000000002").records == []
    assert recording.validate() == {"shardId-000000000000": 2, "shardId-000000000001": 1, "shardId-000000000002": 0}
    suffix = ".jsonl.gz" if compress else ".jsonl"
    assert recording.shard_file("shardId-000000000001").name == "shardId-000000000001" + suffix


def test_manifest_is_the_list_shards_shape(tmp_path):
    path = _write_sample(tmp_path / "rec")
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format"] == FORMAT
    assert manifest["stream"] == "events"
    assert manifest["captured_at"] == "2026-11-01T08:00:00.000Z"
    parent, child, _ = manifest["shards"]
    assert parent == {
        "ShardId": "shardId-000000000000",
        "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(2**128 - 1)},
        "SequenceNumberRange": {"StartingSequenceNumber": "100", "EndingSequenceNumber": "900"},
    }
    assert child["ParentShardId"] == "shardId-000000000000"
    assert "AdjacentParentShardId" not in child
    assert "EndingSequenceNumber" not in child["SequenceNumberRange"]


def test_record_line_format(tmp_path):
    line = json.loads(_record(5, b"\x00\x01").to_line())
    assert line == {
        "SequenceNumber": "5",
        "ApproximateArrivalTimestamp": "2026-11-01T08:00:00.000Z",
        "PartitionKey": "c1:u1",
        "Data": base64.b64encode(b"\x00\x01").decode(),
    }


def test_unknown_keys_are_accepted(tmp_path):
    path = _write_sample(tmp_path / "rec")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["producer"] = {"name": "future pistats"}
    manifest["shards"][0]["Extra"] = 1
    (path / "manifest.json").write_text(json.dumps(manifest))
    shard_file = path / "shards" / "shardId-000000000001.jsonl"
    entry = json.loads(shard_file.read_text())
    entry["SubSequenceNumber"] = 3
    entry["EncryptionType"] = "NONE"
    shard_file.write_text(json.dumps(entry) + "\n")

    recording = Recording.open(path)
    assert recording.manifest.extra == {"producer": {"name": "future pistats"}}
    assert [r.data for r in recording.records("shardId-000000000001")] == [b"child"]


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ("kinesis-shards-jsonl/2", "unsupported format version 'kinesis-shards-jsonl/2'"),
        ("firehose-archive", "format is 'firehose-archive'"),
        (None, "format is None"),
    ],
)
def test_other_formats_and_versions_are_rejected(tmp_path, declared, message):
    path = _write_sample(tmp_path / "rec")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["format"] = declared
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError) as caught:
        Recording.open(path)
    assert message in str(caught.value)
    assert str(path / "manifest.json") in str(caught.value)


def test_manifest_not_json_names_file_and_line(tmp_path):
    path = _write_sample(tmp_path / "rec")
    (path / "manifest.json").write_text('{\n  "format": \n')
    with pytest.raises(DataError) as caught:
        Recording.open(path)
    assert caught.value.path == str(path / "manifest.json")
    assert caught.value.line == 3
    assert "not JSON" in str(caught.value)


def test_missing_manifest_means_incomplete(tmp_path):
    (tmp_path / "rec").mkdir()
    with pytest.raises(DataError, match="no manifest.json"):
        Recording.open(tmp_path / "rec")


def _shard_lines(path, lines):
    shard_file = path / "shards" / "shardId-000000000001.jsonl"
    shard_file.write_text("".join(line + "\n" for line in lines))
    return shard_file


def test_non_monotonic_sequence_compared_as_integers(tmp_path):
    path = _write_sample(tmp_path / "rec")
    # "10" > "9" is false as strings but true as integers: this order is valid.
    shard_file = _shard_lines(path, [_record(9).to_line(), _record(10).to_line(), _record(10).to_line()])
    recording = Recording.open(path)
    with pytest.raises(DataError) as caught:
        list(recording.records("shardId-000000000001"))
    assert caught.value.path == str(shard_file)
    assert caught.value.line == 3
    assert "does not follow 10" in str(caught.value)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"SequenceNumber": "1", truncated', "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"SequenceNumber": 1, "ApproximateArrivalTimestamp": "2026-11-01T08:00:00Z", "PartitionKey": "k", "Data": ""}', "SequenceNumber must be a decimal string"),
        ('{"SequenceNumber": "1", "ApproximateArrivalTimestamp": "yesterday", "PartitionKey": "k", "Data": ""}', "not RFC 3339"),
        ('{"SequenceNumber": "1", "ApproximateArrivalTimestamp": "2026-11-01T08:00:00Z", "Data": ""}', "PartitionKey"),
        ('{"SequenceNumber": "1", "ApproximateArrivalTimestamp": "2026-11-01T08:00:00Z", "PartitionKey": "k", "Data": "***"}', "not valid base64"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, line, problem):
    path = _write_sample(tmp_path / "rec")
    shard_file = _shard_lines(path, [_record(1).to_line(), line])
    with pytest.raises(DataError) as caught:
        Recording.open(path).read_shard("shardId-000000000001")
    assert problem in str(caught.value)
    assert str(caught.value).startswith(f"{shard_file}:2: ")


def test_line_after_shard_end_is_rejected(tmp_path):
    path = _write_sample(tmp_path / "rec")
    shard_file = path / "shards" / "shardId-000000000000.jsonl"
    with open(shard_file, "a") as handle:
        handle.write(_record(5000).to_line() + "\n")
    with pytest.raises(DataError, match=":4: line after the shard end line"):
        Recording.open(path).read_shard("shardId-000000000000")


def test_missing_shard_file_is_named(tmp_path):
    path = _write_sample(tmp_path / "rec")
    (path / "shards" / "shardId-000000000002.jsonl").unlink()
    with pytest.raises(DataError, match="shardId-000000000002 is in the manifest but has no file"):
        Recording.open(path).read_shard("shardId-000000000002")


def test_gzip_shards_are_deterministic(tmp_path):
    first = _write_sample(tmp_path / "a", compress=True)
    second = _write_sample(tmp_path / "b", compress=True)
    name = "shards/shardId-000000000000.jsonl.gz"
    assert (first / name).read_bytes() == (second / name).read_bytes()
    assert gzip.decompress((first / name).read_bytes()).count(b"\n") == 3


def test_aborted_write_leaves_nothing(tmp_path):
    target = tmp_path / "rec"
    with pytest.raises(RuntimeError):
        with RecordingWriter(target, stream="s", captured_at=T0) as writer:
            writer.add_shard(_parent())
            writer.write("shardId-000000000000", _record(1))
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_uncommitted_write_is_not_visible(tmp_path):
    target = tmp_path / "rec"
    writer = RecordingWriter(target, stream="s", captured_at=T0)
    writer.add_shard(_parent())
    writer.write("shardId-000000000000", _record(1))
    assert not target.exists()
    writer.commit()
    assert Recording.open(target).read_shard("shardId-000000000000").records == [_record(1)]


def test_writer_refuses_out_of_order_records(tmp_path):
    with RecordingWriter(tmp_path / "rec", stream="s", captured_at=T0) as writer:
        writer.add_shard(_parent())
        writer.write("shardId-000000000000", _record(10))
        with pytest.raises(ValueError, match="does not follow"):
            writer.write("shardId-000000000000", _record(9))


def test_existing_target_needs_overwrite(tmp_path):
    path = _write_sample(tmp_path / "rec")
    with pytest.raises(FileExistsError, match="already exists"):
        RecordingWriter(path, stream="s", captured_at=T0)
    with RecordingWriter(path, stream="other", captured_at=T0, overwrite=True) as writer:
        writer.add_shard(_parent())
        writer.commit()
    assert Recording.open(path).manifest.stream == "other"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec"]


def test_parents_come_before_children(tmp_path):
    path = tmp_path / "rec"
    with RecordingWriter(path, stream="s", captured_at=T0) as writer:
        for shard in [*_children(), _parent()]:
            writer.add_shard(shard)
        writer.commit()
    order = [s.shard_id for s in iter_manifest_order(Recording.open(path))]
    assert order.index("shardId-000000000000") < order.index("shardId-000000000001")


def test_format_timestamp_is_utc_milliseconds():
    moment = datetime(2026, 11, 1, 9, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert format_timestamp(moment) == "2026-11-01T08:00:00.123Z"
