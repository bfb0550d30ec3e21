"""The consumer with its threads against kinesis-local and a real Redis.

Each test creates its own small stream (kinesis-local is slow to put) and its own checkpoint
namespace (the application name), and removes both afterwards.
"""

from __future__ import annotations

import time

import pytest

from pistats.kinesis.checkpoint import RedisCheckpointStore
from pistats.kinesis.config import KinesisConfig
from pistats.kinesis.consumer import Consumer
from pistats.kinesis.ledger import Position
from pistats.testing.faults import FaultyCheckpointStore, FaultyKinesis
from tests.support.kinesis_consumer import FAST, collect, consumer_client, wait_active, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def kinesis(kinesis_endpoint):
    return consumer_client(kinesis_endpoint)


@pytest.fixture
def make_stream(kinesis, unique_name):
    created = []

    def make(shards: int) -> str:
        name = f"{unique_name}-{len(created)}"
        kinesis.create_stream(StreamName=name, ShardCount=shards)
        created.append(name)
        wait_active(kinesis, name)
        return name

    yield make
    for name in created:
        kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)


@pytest.fixture
def consumers(kinesis, kinesis_endpoint, redis_client, unique_name):
    """Build consumers (started); all are closed at the end of the test."""
    started = []

    def build(stream, *, app="", client=None, store_wrapper=None, task_index=0, task_count=1, **settings):
        config = KinesisConfig(stream=stream, endpoint_url=kinesis_endpoint, app_name=unique_name + app,
                               **{**FAST, **settings})
        store = RedisCheckpointStore(redis_client, config.app_name, stream)
        if store_wrapper is not None:
            store = store_wrapper(store)
        consumer = Consumer(config, client or kinesis, store, task_index=task_index, task_count=task_count)
        consumer.start()
        started.append(consumer)
        return consumer, store

    yield build
    for consumer in started:
        consumer.close()


def put(client, stream, items):
    """Put ``(partition_key, data)`` pairs in order; returns the sequence numbers."""
    response = client.put_records(StreamName=stream, Records=[{"PartitionKey": k, "Data": d} for k, d in items])
    assert response["FailedRecordCount"] == 0
    return [int(r["SequenceNumber"]) for r in response["Records"]]


def quiet(consumer, seconds):
    """Deliveries during ``seconds`` (expected: none)."""
    return collect(consumer, 10**9, timeout=seconds)


def data(deliveries):
    return [d.record.data for d in deliveries]


def test_trim_horizon_latest_and_at_timestamp_and_bad_bytes(kinesis, make_stream, consumers):
    stream = make_stream(1)
    early = [("a", b'{"ok":1}'), ("b", b"\xff\xfe not utf-8"), ("c", b"{broken json")]
    put(kinesis, stream, early)
    trim, _ = consumers(stream, app="-trim")
    assert data(collect(trim, 3)) == [d for _, d in early]  # bad bytes emitted unchanged

    latest, _ = consumers(stream, app="-latest", start_position="LATEST")
    wait_for(lambda: latest.metrics().get("shardId-000000000000") is not None
             and latest.shard_states()["shardId-000000000000"] == "reading")
    time.sleep(0.5)  # its first GetRecords has pinned the iterator at the tip
    put(kinesis, stream, [("d", b"late-1"), ("e", b"late-2")])
    late = collect(latest, 2)
    assert data(late) == [b"late-1", b"late-2"]
    assert quiet(latest, 0.3) == []

    at_ms = late[0].record.arrival_ms
    at, _ = consumers(stream, app="-at", start_position="AT_TIMESTAMP", start_timestamp=at_ms)
    assert data(collect(at, 2)) == [b"late-1", b"late-2"]
    assert data(collect(trim, 2)) == [b"late-1", b"late-2"]


def test_restart_resumes_from_the_checkpoint_without_loss_or_replay(kinesis, make_stream, consumers):
    stream = make_stream(1)
    seqs = put(kinesis, stream, [(f"k{i}", f"r{i}".encode()) for i in range(6)])
    first, store = consumers(stream)
    held = collect(first, 6, verdict=lambda d: "ack" if d.record.seq <= seqs[2] else None)
    assert data(held) == [f"r{i}".encode() for i in range(6)]
    wait_for(lambda: store.load("shardId-000000000000").position == Position(seqs[2]))
    first.close()  # r3..r5 were never acked: the task "dies" with them in flight

    second, _ = consumers(stream)
    again = collect(second, 3)
    assert data(again) == [b"r3", b"r4", b"r5"]
    assert quiet(second, 0.3) == []
    wait_for(lambda: store.load("shardId-000000000000").position == Position(seqs[5]))


def test_fail_replays_and_the_ack_commits(kinesis, make_stream, consumers):
    stream = make_stream(1)
    seqs = put(kinesis, stream, [("k", b"one"), ("k", b"two")])
    consumer, store = consumers(stream)
    failed = []

    def verdict(d):
        if d.record.data == b"one" and not failed:
            failed.append(d)
            return "fail"
        return "ack"

    seen = collect(consumer, 3, verdict=verdict)
    assert data(seen) == [b"one", b"two", b"one"]
    wait_for(lambda: store.load("shardId-000000000000").position == Position(seqs[1]))


def test_split_mid_stream_keeps_parent_before_child_per_partition_key(kinesis, make_stream, consumers):
    stream = make_stream(1)
    keys = [f"user{i}" for i in range(6)]
    put(kinesis, stream, [(k, f"A:{k}".encode()) for k in keys])
    consumer, store = consumers(stream)
    before = collect(consumer, 6, verdict=lambda d: None if d.record.data == b"A:user0" else "ack")
    kinesis.split_shard(StreamName=stream, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**127))
    wait_active(kinesis, stream)
    put(kinesis, stream, [(k, f"B:{k}".encode()) for k in keys])
    assert quiet(consumer, 1.5) == []  # the children wait: a parent record is still in flight
    consumer.ack(next(d for d in before if d.record.data == b"A:user0").message_id)
    after = collect(consumer, 6)
    assert sorted(data(after)) == sorted(f"B:{k}".encode() for k in keys)
    assert {d.record.shard_id for d in after} <= {"shardId-000000000001", "shardId-000000000002"}
    parent = store.load("shardId-000000000000")
    assert parent.ended and parent.position == Position(before[-1].record.seq)
    assert consumer.shard_states()["shardId-000000000000"] == "done"
    order = data(before) + data(after)
    for key in keys:
        assert order.index(f"A:{key}".encode()) < order.index(f"B:{key}".encode())


def test_two_tasks_split_the_shards(kinesis, make_stream, consumers):
    stream = make_stream(2)
    put(kinesis, stream, [(f"user{i}", f"r{i}".encode()) for i in range(8)])
    task0, _ = consumers(stream, task_index=0, task_count=2)
    task1, _ = consumers(stream, task_index=1, task_count=2)
    seen0, seen1 = collect(task0, 8, timeout=2), collect(task1, 8, timeout=0.5)
    assert sorted(data(seen0) + data(seen1)) == sorted(f"r{i}".encode() for i in range(8))
    assert {d.record.shard_id for d in seen0} == {"shardId-000000000000"}
    assert {d.record.shard_id for d in seen1} == {"shardId-000000000001"}


def test_faults_throttling_expired_iterators_errors_and_redis_outage(kinesis, make_stream, consumers):
    stream = make_stream(1)
    faulty = FaultyKinesis(kinesis)
    shard = "shardId-000000000000"
    faulty.inject("ListShards", "LimitExceededException")
    faulty.inject("GetRecords", "ProvisionedThroughputExceededException", shard_id=shard, times=3)
    consumer, store = consumers(stream, client=faulty, store_wrapper=FaultyCheckpointStore)
    seqs = put(kinesis, stream, [(f"k{i}", f"r{i}".encode()) for i in range(4)])
    first = collect(consumer, 4)
    assert data(first) == [b"r0", b"r1", b"r2", b"r3"]
    wait_for(lambda: store.load(shard).position == Position(seqs[3]))

    store.down()
    faulty.expire_iterators(shard)
    faulty.inject("GetRecords", "InternalFailureException", shard_id=shard, times=2)
    more = put(kinesis, stream, [(f"k{i}", f"r{i}".encode()) for i in range(4, 8)])
    second = collect(consumer, 4)
    assert data(second) == [b"r4", b"r5", b"r6", b"r7"]  # nothing lost, nothing repeated
    time.sleep(0.5)
    assert store.refused > 0
    assert consumer.metrics()[shard].checkpoint_errors > 0
    store.up()
    wait_for(lambda: store.load(shard).position == Position(more[3]))
    metrics = consumer.metrics()[shard]
    assert metrics.throttled == 3 and metrics.read_errors == 2
    assert {code for _, _, code in faulty.raised} == {"LimitExceededException", "ProvisionedThroughputExceededException",
                                                      "ExpiredIteratorException", "InternalFailureException"}


def test_merge_mid_stream_waits_for_both_parents(kinesis, make_stream, consumers):
    stream = make_stream(2)
    keys = [f"user{i}" for i in range(6)]
    put(kinesis, stream, [(k, f"A:{k}".encode()) for k in keys])
    consumer, store = consumers(stream)
    parents = {"shardId-000000000000", "shardId-000000000001"}
    held_shard = "shardId-000000000001"
    before = collect(consumer, 6, verdict=lambda d: None if d.record.shard_id == held_shard else "ack")
    assert {d.record.shard_id for d in before} == parents
    kinesis.merge_shards(StreamName=stream, ShardToMerge="shardId-000000000000",
                         AdjacentShardToMerge="shardId-000000000001")
    wait_active(kinesis, stream)
    put(kinesis, stream, [(k, f"B:{k}".encode()) for k in keys])
    assert quiet(consumer, 1.5) == []  # one parent is closed and drained, the other not acked yet
    assert store.load("shardId-000000000000").ended
    for d in before:
        if d.record.shard_id == held_shard:
            consumer.ack(d.message_id)
    after = collect(consumer, 6)
    assert {d.record.shard_id for d in after} == {"shardId-000000000002"}
    assert sorted(data(after)) == sorted(f"B:{k}".encode() for k in keys)
    assert all(store.load(p).ended for p in parents)


def test_latest_start_is_kept_across_a_restart_before_any_ack(kinesis, make_stream, consumers):
    stream = make_stream(1)
    put(kinesis, stream, [("k", b"old")])
    first, store = consumers(stream, start_position="LATEST")
    wait_for(lambda: first.shard_states().get("shardId-000000000000") == "reading")
    time.sleep(0.5)
    put(kinesis, stream, [("k", b"new-1"), ("k", b"new-2")])
    assert data(collect(first, 2, verdict=lambda d: None)) == [b"new-1", b"new-2"]
    wait_for(lambda: store.load("shardId-000000000000").position is not None)
    first.close()
    second, _ = consumers(stream, start_position="LATEST")
    assert data(collect(second, 2)) == [b"new-1", b"new-2"]
