"""ReplaySource: a recording served through the boto3 Kinesis client surface, with faults."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.exceptions import ClientError

from pistats.kinesis.recording import RecordedRecord, RecordingWriter, ShardEnd, ShardInfo
from pistats.testing.replay_source import Fault, ReplaySource
from tests.support.clock import Clock

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)
TOP = 2**128 - 1
HALF = 2**127


def _records(first: int, count: int, start_second: int = 0) -> list[RecordedRecord]:
    return [
        RecordedRecord(str(first + i * 10**20), T0 + timedelta(seconds=start_second + i), f"c:u{i}", f"r{first}-{i}".encode())
        for i in range(count)
    ]


def _source(**options) -> ReplaySource:
    parent = ShardInfo("shardId-000000000000", 0, TOP, "1", ending_sequence_number=str(10**22))
    left = ShardInfo("shardId-000000000001", 0, HALF - 1, str(10**23), parent_shard_id=parent.shard_id)
    right = ShardInfo("shardId-000000000002", HALF, TOP, str(10**23 + 1), parent_shard_id=parent.shard_id)
    children = [
        {"ShardId": c.shard_id, "ParentShards": [parent.shard_id], "HashKeyRange": c.to_dict()["HashKeyRange"]}
        for c in (left, right)
    ]
    shards = [
        (parent, _records(5, 5), ShardEnd(tuple(children))),
        (left, _records(10**23 + 5, 3, start_second=10), None),
        (right, [], None),
    ]
    return ReplaySource(shards, stream="events", **options)


def _iterator(source, shard_id="shardId-000000000000", kind="TRIM_HORIZON", **extra):
    return source.get_shard_iterator(StreamName="events", ShardId=shard_id, ShardIteratorType=kind, **extra)["ShardIterator"]


def test_list_shards_pages_with_next_token():
    source = _source()
    first = source.list_shards(StreamName="events", MaxResults=2)
    assert [s["ShardId"] for s in first["Shards"]] == ["shardId-000000000000", "shardId-000000000001"]
    assert first["Shards"][0]["SequenceNumberRange"]["EndingSequenceNumber"] == str(10**22)
    assert first["Shards"][1]["ParentShardId"] == "shardId-000000000000"
    second = source.list_shards(NextToken=first["NextToken"])
    assert [s["ShardId"] for s in second["Shards"]] == ["shardId-000000000002"]
    assert "NextToken" not in second


def test_list_shards_rejects_next_token_with_stream_name():
    source = _source()
    token = source.list_shards(StreamName="events", MaxResults=1)["NextToken"]
    with pytest.raises(ClientError) as caught:
        source.list_shards(StreamName="events", NextToken=token)
    assert caught.value.response["Error"]["Code"] == "InvalidArgumentException"


def test_list_shards_filters():
    source = _source()
    open_only = source.list_shards(StreamName="events", ShardFilter={"Type": "AT_LATEST"})
    assert [s["ShardId"] for s in open_only["Shards"]] == ["shardId-000000000001", "shardId-000000000002"]
    after = source.list_shards(StreamName="events", ExclusiveStartShardId="shardId-000000000001")
    assert [s["ShardId"] for s in after["Shards"]] == ["shardId-000000000002"]


def test_unknown_stream_is_resource_not_found():
    with pytest.raises(ClientError) as caught:
        _source().list_shards(StreamName="other")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_get_records_with_limit_then_shard_end_with_child_shards():
    source = _source()
    first = source.get_records(ShardIterator=_iterator(source), Limit=3)
    assert [r["Data"] for r in first["Records"]] == [b"r5-0", b"r5-1", b"r5-2"]
    assert first["MillisBehindLatest"] == 2000
    assert first["Records"][0]["ApproximateArrivalTimestamp"] == T0
    second = source.get_records(ShardIterator=first["NextShardIterator"], Limit=3)
    assert [r["Data"] for r in second["Records"]] == [b"r5-3", b"r5-4"]
    assert "NextShardIterator" not in second
    assert [c["ShardId"] for c in second["ChildShards"]] == ["shardId-000000000001", "shardId-000000000002"]
    assert second["ChildShards"][0]["ParentShards"] == ["shardId-000000000000"]
    assert second["MillisBehindLatest"] == 0


def test_open_shard_at_tip_returns_nothing_and_same_position():
    source = _source()
    response = source.get_records(ShardIterator=_iterator(source, "shardId-000000000001"))
    assert len(response["Records"]) == 3
    tip = source.get_records(ShardIterator=response["NextShardIterator"])
    assert tip["Records"] == []
    assert tip["NextShardIterator"]
    assert tip["MillisBehindLatest"] == 0
    empty = source.get_records(ShardIterator=_iterator(source, "shardId-000000000002"))
    assert empty["Records"] == [] and empty["NextShardIterator"]


@pytest.mark.parametrize(
    ("kind", "extra", "first_data"),
    [
        ("TRIM_HORIZON", {}, b"r5-0"),
        ("AT_SEQUENCE_NUMBER", {"StartingSequenceNumber": str(5 + 2 * 10**20)}, b"r5-2"),
        ("AFTER_SEQUENCE_NUMBER", {"StartingSequenceNumber": str(5 + 2 * 10**20)}, b"r5-3"),
        ("AT_TIMESTAMP", {"Timestamp": T0 + timedelta(seconds=3)}, b"r5-3"),
        ("AT_TIMESTAMP", {"Timestamp": (T0 + timedelta(seconds=1, milliseconds=500)).timestamp()}, b"r5-2"),
    ],
)
def test_iterator_types(kind, extra, first_data):
    source = _source()
    response = source.get_records(ShardIterator=_iterator(source, kind=kind, **extra), Limit=1)
    assert response["Records"][0]["Data"] == first_data


def test_latest_on_closed_shard_reaches_shard_end():
    source = _source()
    response = source.get_records(ShardIterator=_iterator(source, kind="LATEST"))
    assert response["Records"] == []
    assert "NextShardIterator" not in response
    assert len(response["ChildShards"]) == 2


def test_sequence_numbers_are_compared_as_integers():
    source = _source()
    # "9" > "100000000000000000005" as strings; as integers it precedes every record.
    response = source.get_records(
        ShardIterator=_iterator(source, kind="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber="9"), Limit=1
    )
    assert response["Records"][0]["Data"] == b"r5-1"


def test_bad_arguments_are_invalid_argument():
    source = _source()
    for call in (
        lambda: source.get_records(ShardIterator=_iterator(source), Limit=0),
        lambda: source.get_records(ShardIterator=_iterator(source), Limit=10_001),
        lambda: source.get_records(ShardIterator="not-an-iterator"),
        lambda: _iterator(source, kind="AT_SEQUENCE_NUMBER"),
        lambda: _iterator(source, kind="AT_TIMESTAMP"),
        lambda: _iterator(source, kind="SOMEWHERE"),
    ):
        with pytest.raises(ClientError) as caught:
            call()
        assert caught.value.response["Error"]["Code"] == "InvalidArgumentException"


def test_iterators_expire_after_five_minutes():
    clock = Clock(1000.0)
    source = _source(now=clock)
    iterator = _iterator(source)
    clock.now += 300
    source.get_records(ShardIterator=iterator, Limit=1)
    clock.now += 0.001
    with pytest.raises(source.exceptions.ExpiredIteratorException):
        source.get_records(ShardIterator=iterator, Limit=1)


def test_faults_are_boto3_client_errors():
    source = _source(faults=[Fault("GetRecords", "ProvisionedThroughputExceededException", shard_id="shardId-000000000000", times=2, skip=1)])
    iterator = _iterator(source)
    response = source.get_records(ShardIterator=iterator, Limit=1)
    real = boto3.client("kinesis", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    for _ in range(2):
        with pytest.raises(ClientError) as caught:
            source.get_records(ShardIterator=response["NextShardIterator"], Limit=1)
        error = caught.value
        # The same class a real client's ``exceptions`` attribute exposes, with the same response.
        assert type(error).__name__ == "ProvisionedThroughputExceededException"
        assert type(error).__bases__ == real.exceptions.ProvisionedThroughputExceededException.__bases__
        assert error.operation_name == "GetRecords"
        assert error.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert "An error occurred (ProvisionedThroughputExceededException) when calling the GetRecords operation" in str(error)
    # The iterator survives a throttled call: the retry reads the next record.
    after = source.get_records(ShardIterator=response["NextShardIterator"], Limit=1)
    assert after["Records"][0]["Data"] == b"r5-1"
    outcomes = [c.outcome for c in source.calls if c.operation == "GetRecords"]
    assert outcomes == ["ok", "ProvisionedThroughputExceededException", "ProvisionedThroughputExceededException", "ok"]


def test_injected_expiry_and_generic_errors():
    source = _source()
    source.inject(Fault("GetRecords", "ExpiredIteratorException"))
    source.inject(Fault("GetShardIterator", "InternalFailureException", shard_id="shardId-000000000001"))
    iterator = _iterator(source)
    with pytest.raises(source.exceptions.ExpiredIteratorException):
        source.get_records(ShardIterator=iterator)
    with pytest.raises(ClientError) as caught:
        _iterator(source, "shardId-000000000001")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert caught.value.response["Error"]["Code"] == "InternalFailureException"
    assert source.get_records(ShardIterator=_iterator(source, "shardId-000000000001"))["Records"]


def test_from_recording_directory(tmp_path):
    shard = ShardInfo("shardId-000000000000", 0, TOP, "1")
    with RecordingWriter(tmp_path / "rec", stream="recorded", captured_at=T0) as writer:
        writer.add_shard(shard)
        writer.write_many(shard.shard_id, _records(7, 4))
        writer.commit()
    source = ReplaySource.from_recording(str(tmp_path / "rec"))
    iterator = source.get_shard_iterator(StreamName="recorded", ShardId=shard.shard_id, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert [r["Data"] for r in source.get_records(ShardIterator=iterator)["Records"]] == [b"r7-0", b"r7-1", b"r7-2", b"r7-3"]
    summary = source.describe_stream_summary(StreamName="recorded")["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == 1


def test_same_calls_give_same_answers():
    answers = []
    for _ in range(2):
        source = _source(now=Clock(1000.0))
        answers.append(source.get_records(ShardIterator=_iterator(source), Limit=2))
    assert answers[0] == answers[1]
