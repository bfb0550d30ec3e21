"""The consumer, driven single-threaded over a recorded shard map (ReplaySource) with a fake clock.

Faults come from ReplaySource (throttling, expired iterators, GetRecords errors) and from the
in-memory checkpoint store (unavailable for a while).
"""

import hashlib
import time
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pistats.kinesis.checkpoint import MemoryCheckpointStore
from pistats.kinesis.config import KinesisConfig
from pistats.kinesis.consumer import Consumer, assigned_task
from pistats.kinesis.kpl import MAGIC, aggregate
from pistats.kinesis.ledger import Position
from pistats.kinesis.recording import RecordedRecord, ShardEnd, ShardInfo
from pistats.testing.replay_source import Fault, ReplaySource

T0 = datetime(2026, 11, 26, 5, 0, tzinfo=timezone.utc)
BASE = 49680574275476335198516986152487755993581893416107638786
FULL = 2**128 - 1


class Clock:
    def __init__(self):
        self.ms = int(T0.timestamp() * 1000)

    def __call__(self) -> int:
        return self.ms

    def seconds(self) -> float:
        return self.ms / 1000


def sid(n):
    return f"shardId-{n:012d}"


def seq(shard, i):
    return BASE + shard * 10**9 + i * 10


def records(shard, count, start=0, data=None):
    return [RecordedRecord(str(seq(shard, i)), T0 + timedelta(seconds=i), f"pk{i % 3}",
                           data(i) if data else f"s{shard}r{i}".encode()) for i in range(start, start + count)]


def info(n, lo=0, hi=FULL, closed=False, parents=()):
    parents = list(parents) + [None, None]
    return ShardInfo(sid(n), lo, hi, str(seq(n, 0)), str(seq(n, 10**6)) if closed else None, parents[0], parents[1])


def source(shards, clock, **kw):
    return ReplaySource(shards, stream="events", now=clock.seconds, **kw)


def config(**kw):
    values = {"stream": "events", "checkpoint_interval_ms": 1000, "idle_poll_ms": 200, "lease_ms": 10_000,
              "retry_base_delay_ms": 100, "retry_max_delay_ms": 1000}
    values.update(kw)
    return KinesisConfig(**values)


def drive(consumer, clock, rounds=50, on=None, tick_ms=100):
    """Step the consumer; every delivery goes to ``on(delivery) -> "ack"|"fail"|None`` (default ack)."""
    seen = []
    for _ in range(rounds):
        consumer.step()
        for d in consumer.poll(1000):
            seen.append(d)
            verdict = on(d) if on else "ack"
            if verdict == "ack":
                consumer.ack(d.message_id)
            elif verdict == "fail":
                consumer.fail(d.message_id)
        clock.ms += tick_ms
    return seen


def payloads(deliveries):
    return [d.record.data for d in deliveries if d.dead_letter_reason is None]


@pytest.fixture
def clock():
    return Clock()


def test_reads_every_shard_in_order_and_checkpoints_acked_records(clock):
    client = source([(info(0, 0, FULL // 2), records(0, 5), None), (info(1, FULL // 2 + 1), records(1, 3), None)], clock)
    store = MemoryCheckpointStore()
    consumer = Consumer(config(), client, store, now_ms=clock)
    seen = drive(consumer, clock, rounds=20)
    assert [d.record.data for d in seen if d.record.shard_id == sid(0)] == [f"s0r{i}".encode() for i in range(5)]
    assert [d.record.data for d in seen if d.record.shard_id == sid(1)] == [f"s1r{i}".encode() for i in range(3)]
    assert seen[0].message_id == f"{sid(0)}|{seq(0, 0)}|0" or seen[0].message_id == f"{sid(1)}|{seq(1, 0)}|0"
    assert store.load(sid(0)).position == Position(seq(0, 4))
    assert store.load(sid(1)).position == Position(seq(1, 2))
    metrics = consumer.metrics()[sid(0)]
    assert (metrics.read, metrics.emitted, metrics.acked, metrics.in_flight) == (5, 5, 5, 0)
    assert metrics.last_checkpoint == f"{seq(0, 4)}/0"
    assert consumer.uncommitted == 0


def test_unacked_record_holds_the_checkpoint(clock):
    client = source([(info(0), records(0, 4), None)], clock)
    store = MemoryCheckpointStore()
    consumer = Consumer(config(), client, store, now_ms=clock)
    drive(consumer, clock, rounds=20, on=lambda d: None if d.record.data == b"s0r1" else "ack")
    assert store.load(sid(0)).position == Position(seq(0, 0))
    metrics = consumer.metrics()[sid(0)]
    assert (metrics.in_flight, metrics.uncommitted) == (1, 3)


def test_acking_a_batch_at_once_is_acking_each_in_turn(clock):
    def run(ack):
        client = source([(info(0, 0, FULL // 2), records(0, 6), None), (info(1, FULL // 2 + 1), records(1, 4), None)],
                        clock)
        store = MemoryCheckpointStore()
        consumer = Consumer(config(), client, store, now_ms=clock)
        consumer.step()
        deliveries = consumer.poll(1000)
        held = {b"s0r2", b"s1r0"}  # never acked: each holds its shard's checkpoint
        ids = [d.message_id for d in deliveries if d.record.data not in held]
        ack(consumer, ids + [ids[0], "shardId-000000000009|1|0", "not an id"])  # repeats, unknown ids
        drive(consumer, clock, rounds=20, on=lambda d: None)
        metrics = consumer.metrics()
        checkpoints = {shard: store.load(shard) for shard in (sid(0), sid(1))}
        return ({shard: checkpoint.position if checkpoint else None for shard, checkpoint in checkpoints.items()},
                {shard: (m.acked, m.in_flight, m.uncommitted) for shard, m in metrics.items()}, consumer.uncommitted)

    def one_by_one(consumer, ids):
        for message_id in ids:
            consumer.ack(message_id)

    at_once = run(lambda consumer, ids: consumer.ack_all(ids))
    assert at_once == run(one_by_one)
    assert at_once[0][sid(0)] == Position(seq(0, 1))
    assert at_once[1][sid(0)] == (5, 1, 4) and at_once[1][sid(1)] == (3, 1, 4)
    assert at_once[2] == 8


def test_restart_resumes_after_the_checkpoint_without_loss_or_replay(clock):
    shards = [(info(0), records(0, 6), None)]
    store = MemoryCheckpointStore()
    first = Consumer(config(), source(shards, clock), store, now_ms=clock)
    # records 0..2 acked, 3 never acked (the task dies), 4..5 acked
    seen1 = drive(first, clock, rounds=20, on=lambda d: None if d.record.data == b"s0r3" else "ack")
    assert store.load(sid(0)).position == Position(seq(0, 2))
    clock.ms += 20_000  # the dead task's lease expires
    second = Consumer(config(), source(shards, clock), store, now_ms=clock)
    seen2 = drive(second, clock, rounds=20)
    assert payloads(seen1) == [f"s0r{i}".encode() for i in range(6)]
    assert payloads(seen2) == [b"s0r3", b"s0r4", b"s0r5"]  # at-least-once from the checkpoint on
    assert store.load(sid(0)).position == Position(seq(0, 5))


def test_a_live_lease_of_another_task_keeps_a_second_reader_off(clock):
    shards = [(info(0), records(0, 3), None)]
    store = MemoryCheckpointStore()
    store.claim(sid(0), "someone-else", clock(), 60_000)
    consumer = Consumer(config(), source(shards, clock), store, now_ms=clock)
    assert drive(consumer, clock, rounds=10) == []
    assert consumer.shard_states() == {sid(0): "waiting"}


def test_fail_replays_with_backoff_then_ack_commits(clock):
    client = source([(info(0), records(0, 3), None)], clock)
    store = MemoryCheckpointStore()
    consumer = Consumer(config(retries=3), client, store, now_ms=clock)
    failures = {"n": 0}

    def verdict(d):
        if d.record.data == b"s0r1" and failures["n"] < 2:
            failures["n"] += 1
            return "fail"
        return "ack"

    seen = drive(consumer, clock, rounds=30, on=verdict)
    assert payloads(seen).count(b"s0r1") == 3
    assert all(d.dead_letter_reason is None for d in seen)
    assert store.load(sid(0)).position == Position(seq(0, 2))
    assert consumer.metrics()[sid(0)].failed == 2


def test_after_max_retries_a_dead_letter_and_the_checkpoint_waits_for_its_ack(clock):
    client = source([(info(0), records(0, 3), None)], clock)
    store = MemoryCheckpointStore()
    consumer = Consumer(config(retries=1), client, store, now_ms=clock)
    dead = []

    def verdict(d):
        if d.dead_letter_reason:
            dead.append(d)
            return None  # the dead letter is not acked yet
        return "fail" if d.record.data == b"s0r0" else "ack"

    drive(consumer, clock, rounds=30, on=verdict)
    assert len(dead) == 1
    assert dead[0].dead_letter_reason == "max_retries"
    assert dead[0].message_id == f"{sid(0)}|{seq(0, 0)}|0|dead"
    assert store.load(sid(0)) is None or store.load(sid(0)).position is None
    consumer.ack(dead[0].message_id)
    drive(consumer, clock, rounds=15)
    assert store.load(sid(0)).position == Position(seq(0, 2))
    assert consumer.metrics()[sid(0)].dead_lettered == 1


def test_backpressure_stops_fetching_at_max_uncommitted(clock):
    client = source([(info(0), records(0, 30), None)], clock)
    consumer = Consumer(config(max_uncommitted=8), client, MemoryCheckpointStore(), now_ms=clock)
    held = drive(consumer, clock, rounds=10, on=lambda d: None)
    assert len(held) == 8
    assert consumer.uncommitted == 8
    for d in held:
        consumer.ack(d.message_id)
    more = drive(consumer, clock, rounds=10, on=lambda d: None)
    assert payloads(more) == [f"s0r{i}".encode() for i in range(8, 16)]


def test_split_child_waits_until_parent_is_acked_and_checkpointed_at_shard_end(clock):
    mid = FULL // 2
    shards = [
        (info(0, closed=True), records(0, 4), ShardEnd()),
        (info(1, 0, mid, parents=[sid(0)]), records(1, 2), None),
        (info(2, mid + 1, FULL, parents=[sid(0)]), records(2, 2), None),
    ]
    store = MemoryCheckpointStore()
    consumer = Consumer(config(), source(shards, clock), store, now_ms=clock)
    held = drive(consumer, clock, rounds=10, on=lambda d: None)
    assert payloads(held) == [f"s0r{i}".encode() for i in range(4)]  # children not read yet
    assert consumer.shard_states()[sid(1)] == "waiting"
    for d in held:
        consumer.ack(d.message_id)
    seen = drive(consumer, clock, rounds=20)
    assert store.load(sid(0)).ended and store.load(sid(0)).position == Position(seq(0, 3))
    assert sorted(payloads(seen)) == sorted([b"s1r0", b"s1r1", b"s2r0", b"s2r1"])
    assert consumer.shard_states()[sid(0)] == "done"


def test_merge_child_waits_for_both_parents(clock):
    shards = [
        (info(0, 0, FULL // 2, closed=True), records(0, 2), ShardEnd()),
        (info(1, FULL // 2 + 1, FULL, closed=True), records(1, 2), ShardEnd()),
        (info(2, parents=[sid(0), sid(1)]), records(2, 2), None),
    ]
    store = MemoryCheckpointStore()
    consumer = Consumer(config(), source(shards, clock), store, now_ms=clock)
    first = drive(consumer, clock, rounds=15, on=lambda d: None if d.record.data == b"s1r1" else "ack")
    assert sorted(payloads(first)) == [b"s0r0", b"s0r1", b"s1r0", b"s1r1"]
    assert store.load(sid(0)).ended and consumer.shard_states()[sid(2)] == "waiting"
    consumer.ack(next(d for d in first if d.record.data == b"s1r1").message_id)
    assert payloads(drive(consumer, clock, rounds=15)) == [b"s2r0", b"s2r1"]
    assert store.load(sid(2)).position == Position(seq(2, 1))


def test_closed_shard_without_records_finishes(clock):
    shards = [(info(0, closed=True), [], ShardEnd()), (info(1, parents=[sid(0)]), records(1, 1), None)]
    store = MemoryCheckpointStore()
    consumer = Consumer(config(), source(shards, clock), store, now_ms=clock)
    seen = drive(consumer, clock, rounds=20)
    assert store.load(sid(0)).ended and store.load(sid(0)).position is None
    assert payloads(seen) == [b"s1r0"]


def test_finished_shards_are_skipped_after_a_restart(clock):
    shards = [(info(0, closed=True), records(0, 2), ShardEnd()), (info(1, parents=[sid(0)]), records(1, 1), None)]
    store = MemoryCheckpointStore()
    first = Consumer(config(), source(shards, clock), store, now_ms=clock, owner="a")
    drive(first, clock, rounds=20)
    first.close()  # writes the last checkpoint and releases the leases
    again = drive(Consumer(config(), source(shards, clock), store, now_ms=clock, owner="b"), clock, rounds=20)
    assert again == []


def test_two_tasks_split_the_shards_and_read_each_once(clock):
    shards = [(info(n, n * (FULL // 4), (n + 1) * (FULL // 4)), records(n, 2), None) for n in range(4)]
    store = MemoryCheckpointStore()
    seen = []
    for index in (0, 1):
        consumer = Consumer(config(), source(shards, clock), store, task_index=index, task_count=2, now_ms=clock)
        seen.append({d.record.shard_id for d in drive(consumer, clock, rounds=10)})
    assert seen[0] | seen[1] == {sid(n) for n in range(4)}
    assert not seen[0] & seen[1]
    assert [assigned_task(sid(n), 2) for n in range(4)] == [0, 1, 0, 1]


def test_list_shards_is_paginated(clock):
    shards = [(info(n, n * (FULL // 3), (n + 1) * (FULL // 3)), records(n, 1), None) for n in range(3)]
    client = source(shards, clock)
    consumer = Consumer(config(list_shards_page_size=1), client, MemoryCheckpointStore(), now_ms=clock)
    seen = drive(consumer, clock, rounds=5)
    assert {d.record.shard_id for d in seen} == {sid(0), sid(1), sid(2)}
    assert sum(1 for c in client.calls if c.operation == "ListShards") >= 3


class GrowingShardMap:
    """The stream as seen before and after a reshard: ListShards hides shards until `grow()`."""

    def __init__(self, client, hidden):
        self._client, self._hidden = client, set(hidden)

    def grow(self):
        self._hidden.clear()

    def list_shards(self, **kw):
        response = self._client.list_shards(**kw)
        return {**response, "Shards": [s for s in response["Shards"] if s["ShardId"] not in self._hidden]}

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_new_shards_are_picked_up_by_periodic_relisting(clock):
    shards = [(info(0, 0, FULL // 2), records(0, 1), None), (info(1, FULL // 2 + 1), records(1, 1), None)]
    client = GrowingShardMap(source(shards, clock), hidden=[sid(1)])
    consumer = Consumer(config(list_shards_interval_ms=1000), client, MemoryCheckpointStore(), now_ms=clock)
    assert payloads(drive(consumer, clock, rounds=5)) == [b"s0r0"]
    client.grow()
    assert payloads(drive(consumer, clock, rounds=15)) == [b"s1r0"]


def test_throttling_backs_off_one_shard_without_stalling_the_other(clock):
    shards = [(info(0, 0, FULL // 2), records(0, 3), None), (info(1, FULL // 2 + 1), records(1, 3), None)]
    client = source(shards, clock, faults=[Fault("GetRecords", "ProvisionedThroughputExceededException",
                                                 shard_id=sid(0), times=3)])
    consumer = Consumer(config(), client, MemoryCheckpointStore(), now_ms=clock)
    early = drive(consumer, clock, rounds=3)
    assert {d.record.shard_id for d in early} == {sid(1)}
    later = drive(consumer, clock, rounds=40)
    assert payloads(later) == [b"s0r0", b"s0r1", b"s0r2"]
    assert consumer.metrics()[sid(0)].throttled == 3
    outcomes = [c.outcome for c in client.calls if c.shard_id == sid(0) and c.operation == "GetRecords"]
    assert outcomes[:4] == ["ProvisionedThroughputExceededException"] * 3 + ["ok"]


def test_expired_iterator_is_renewed_after_the_last_fetched_record(clock):
    data = records(0, 4)
    client = source([(info(0), data, None)], clock)
    consumer = Consumer(config(max_uncommitted=2), client, MemoryCheckpointStore(), now_ms=clock)
    first = drive(consumer, clock, rounds=5, on=lambda d: None)
    assert payloads(first) == [b"s0r0", b"s0r1"]
    clock.ms += 301_000  # the held iterator expires while the task is at max_uncommitted
    for d in first:
        consumer.ack(d.message_id)
    rest = drive(consumer, clock, rounds=10)
    assert payloads(rest) == [b"s0r2", b"s0r3"]
    assert any(c.outcome == "ExpiredIteratorException" for c in client.calls)


def test_get_records_errors_back_off_and_lose_nothing(clock):
    client = source([(info(0), records(0, 5), None)], clock,
                    faults=[Fault("GetRecords", "InternalFailureException", times=2, skip=1),
                            Fault("GetShardIterator", "InternalFailureException", times=1)])
    consumer = Consumer(config(get_records_limit=2), client, MemoryCheckpointStore(), now_ms=clock)
    seen = drive(consumer, clock, rounds=40)
    assert payloads(seen) == [f"s0r{i}".encode() for i in range(5)]
    assert consumer.metrics()[sid(0)].read_errors == 3


def test_checkpoint_store_outage_keeps_in_flight_state_and_retries(clock):
    client = source([(info(0), records(0, 6), None)], clock)
    store = MemoryCheckpointStore()
    consumer = Consumer(config(), client, store, now_ms=clock)
    drive(consumer, clock, rounds=3)
    store.available = False
    during = drive(consumer, clock, rounds=20)
    assert consumer.metrics()[sid(0)].checkpoint_errors > 0
    store.available = True
    drive(consumer, clock, rounds=15)
    seen = payloads(during)
    assert store.load(sid(0)).position == Position(seq(0, 5))
    assert consumer.metrics()[sid(0)].acked == 6 and len(seen) <= 6


def test_store_down_at_start_does_not_start_the_shard_at_a_guess(clock):
    client = source([(info(0), records(0, 2), None)], clock)
    store = MemoryCheckpointStore()
    store.available = False
    consumer = Consumer(config(), client, store, now_ms=clock)
    assert drive(consumer, clock, rounds=5) == []
    store.available = True
    assert payloads(drive(consumer, clock, rounds=10)) == [b"s0r0", b"s0r1"]


def test_latest_and_at_timestamp_start_positions(clock):
    shards = [(info(0), records(0, 5), None)]
    latest = Consumer(config(start_position="LATEST"), source(shards, clock), MemoryCheckpointStore(), now_ms=clock)
    assert drive(latest, clock, rounds=5) == []
    at = Consumer(config(start_position="AT_TIMESTAMP", start_timestamp=(T0 + timedelta(seconds=3)).isoformat()),
                  source(shards, clock), MemoryCheckpointStore(), now_ms=clock)
    assert payloads(drive(at, clock, rounds=5)) == [b"s0r3", b"s0r4"]


def kpl_records(shard, groups):
    out = []
    for i, group in enumerate(groups):
        data = aggregate([(f"user{j}", f"agg{i}.{j}".encode()) for j in range(group)]) if group else b"plain"
        out.append(RecordedRecord(str(seq(shard, i)), T0 + timedelta(seconds=i), "outer", data))
    return out


def test_kpl_sub_records_carry_sub_sequence_numbers(clock):
    client = source([(info(0), kpl_records(0, [3, 0]), None)], clock)
    store = MemoryCheckpointStore()
    consumer = Consumer(config(), client, store, now_ms=clock)
    seen = drive(consumer, clock, rounds=20)
    assert [(d.record.data, d.record.subseq, d.record.partition_key) for d in seen] == [
        (b"agg0.0", 0, "user0"), (b"agg0.1", 1, "user1"), (b"agg0.2", 2, "user2"), (b"plain", 0, "outer")]
    assert seen[1].message_id == f"{sid(0)}|{seq(0, 0)}|1"
    assert store.load(sid(0)).position == Position(seq(0, 1))


def test_restart_inside_an_aggregate_skips_committed_sub_records(clock):
    shards = [(info(0), kpl_records(0, [3, 2]), None)]
    store = MemoryCheckpointStore()
    first = Consumer(config(), source(shards, clock), store, now_ms=clock)
    drive(first, clock, rounds=20, on=lambda d: None if d.record.data == b"agg0.2" else "ack")
    assert store.load(sid(0)).position == Position(seq(0, 0), 1)
    assert not store.load(sid(0)).complete
    clock.ms += 20_000
    second = Consumer(config(), source(shards, clock), store, now_ms=clock)
    assert payloads(drive(second, clock, rounds=10)) == [b"agg0.2", b"agg1.0", b"agg1.1"]


def test_bad_bytes_are_delivered_unchanged(clock):
    def with_digest(body):
        return MAGIC + body + hashlib.md5(body).digest()

    # Malformed aggregates too (issue 13): one with a varint where a record belongs (it raised out
    # of the fetch, forever), one holding no records (it vanished); the parser rejects them bad_kpl.
    bad = [b"\xff\xfe\x00", b"{not json", MAGIC + b"garbage-not-an-aggregate", with_digest(b"\x0a\x01k\x18\x01"),
           with_digest(b"\x0a\x01k"), b"last"]
    client = source([(info(0), records(0, len(bad), data=lambda i: bad[i]), None)], clock)
    store = MemoryCheckpointStore()
    consumer = Consumer(config(), client, store, now_ms=clock)
    seen = drive(consumer, clock, rounds=15)
    assert payloads(seen) == bad
    assert {d.record.subseq for d in seen} == {0}
    assert store.load(sid(0)).position == Position(seq(0, len(bad) - 1))


def test_pacing_respects_five_calls_per_second_and_two_mib_per_second(clock):
    big = 1024 * 1024
    client = source([(info(0), records(0, 4, data=lambda i: b"x" * big), None)], clock)
    consumer = Consumer(config(get_records_limit=2), client, MemoryCheckpointStore(), now_ms=clock)
    drive(consumer, clock, rounds=1, tick_ms=0)
    calls_before = len([c for c in client.calls if c.operation == "GetRecords"])
    drive(consumer, clock, rounds=9, tick_ms=100)  # 0.9 s later: 2 MiB read, so no second call yet
    assert len([c for c in client.calls if c.operation == "GetRecords"]) == calls_before
    drive(consumer, clock, rounds=2, tick_ms=100)
    assert len([c for c in client.calls if c.operation == "GetRecords"]) == calls_before + 1


def test_task_index_must_be_within_count():
    with pytest.raises(ValueError):
        Consumer(config(), None, MemoryCheckpointStore(), task_index=2, task_count=2)


def test_per_shard_metrics_are_logged_periodically(clock, caplog):
    client = source([(info(0), records(0, 2), None)], clock)
    consumer = Consumer(config(), client, MemoryCheckpointStore(), now_ms=clock)
    with caplog.at_level("INFO", logger="pistats.kinesis.consumer"):
        drive(consumer, clock, rounds=15)
        caplog.clear()
        clock.ms += 60_000
        consumer.coordinate_once()
    (line,) = [r.getMessage() for r in caplog.records if "read=" in r.getMessage()]
    assert line.startswith(f"shard {sid(0)}: read=2 emitted=2 acked=2 failed=0 dead=0 in_flight=0 uncommitted=0")
    assert f"checkpoint={seq(0, 1)}/0" in line


def test_a_timestamp_start_is_pinned_before_anything_is_acked(clock):
    shards = [(info(0), records(0, 5), None)]
    store = MemoryCheckpointStore()
    settings = {"start_position": "AT_TIMESTAMP", "start_timestamp": (T0 + timedelta(seconds=3)).isoformat()}
    first = Consumer(config(**settings), source(shards, clock), store, now_ms=clock)
    assert payloads(drive(first, clock, rounds=15, on=lambda d: None)) == [b"s0r3", b"s0r4"]
    assert store.load(sid(0)).position == Position(seq(0, 3), -1)
    first.close()
    second = Consumer(config(**settings), source(shards, clock), store, now_ms=clock)
    assert payloads(drive(second, clock, rounds=15)) == [b"s0r3", b"s0r4"]
    assert store.load(sid(0)).position == Position(seq(0, 4))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["ack", "ack", "ack", "fail", "hold"]), min_size=1, max_size=40), st.integers(1, 6))
def test_random_acks_and_fails_across_a_split_lose_nothing_and_never_commit_early(verdicts, max_uncommitted):
    """Whatever Storm does, every record is delivered, a checkpoint never passes a record that is
    not done, a child record comes only after every parent record is done, and in the end every
    shard is committed to its last record (closed ones at SHARD_END)."""
    clock = Clock()
    mid = FULL // 2
    shards = [
        (info(0, closed=True), records(0, 5), ShardEnd()),
        (info(1, 0, mid, parents=[sid(0)]), records(1, 3), None),
        (info(2, mid + 1, FULL, parents=[sid(0)]), records(2, 3), None),
    ]
    store = MemoryCheckpointStore()
    consumer = Consumer(config(retries=2, max_uncommitted=max_uncommitted), source(shards, clock), store,
                        now_ms=clock)
    pending = {}   # message id -> delivery not yet acked or failed
    done = set()   # positions acked (records or their dead letters)
    delivered = set()
    step = 0
    for round_no in range(400):
        consumer.step()
        for d in consumer.poll(1000):
            if d.record.shard_id != sid(0):
                assert all(Position(seq(0, i)) in done for i in range(5)), "child before parent was done"
            delivered.add(d.record.data)
            pending[d.message_id] = d
        for message_id in list(pending):
            verdict = verdicts[step % len(verdicts)] if round_no < 150 else "ack"  # then Storm recovers
            step += 1
            if verdict == "hold":
                continue
            d = pending.pop(message_id)
            if verdict == "ack":
                consumer.ack(message_id)
                done.add(d.record.position)
            else:
                consumer.fail(message_id)
        for shard_id, n in ((sid(0), 0), (sid(1), 1), (sid(2), 2)):
            checkpoint = store.load(shard_id)
            if checkpoint is not None and checkpoint.position is not None:
                assert all(Position(seq(n, i)) in done for i in range(10) if Position(seq(n, i)) <= checkpoint.position)
        clock.ms += 100
    assert delivered == {r.data for _, recs, _ in shards for r in recs}
    assert store.load(sid(0)).ended and store.load(sid(0)).position == Position(seq(0, 4))
    assert store.load(sid(1)).position == Position(seq(1, 2))
    assert store.load(sid(2)).position == Position(seq(2, 2))


def test_foreign_tuple_ids_are_ignored(clock):
    consumer = Consumer(config(), source([(info(0), records(0, 1), None)], clock), MemoryCheckpointStore(), now_ms=clock)
    drive(consumer, clock, rounds=2, on=lambda d: None)
    for bad in ("", "nonsense", "a|b|c", 42, f"{sid(0)}|1|0", f"{sid(9)}|1|0|dead"):
        consumer.ack(bad)
        consumer.fail(bad)
    metrics = consumer.metrics()[sid(0)]
    assert (metrics.in_flight, metrics.acked, metrics.failed) == (1, 0, 0)


def test_a_mass_failure_is_replayed_in_small_batches(clock):
    consumer = Consumer(config(), source([(info(0), records(0, 30), None)], clock), MemoryCheckpointStore(),
                        now_ms=clock)
    held = drive(consumer, clock, rounds=3, on=lambda d: None)
    for d in held:
        consumer.fail(d.message_id)
    clock.ms += 1000
    batches = [consumer.poll(8) for _ in range(4)]
    assert [len(b) for b in batches] == [8, 8, 8, 6]
    assert [d.record.data for b in batches for d in b] == [f"s0r{i}".encode() for i in range(30)]


# --- a claim lost and taken again (issue 13) --------------------------------------------------


def fence(store, clock, lease_ms=10_000):
    """Another task takes the shard's lease (this one stalled past it), then lets it go again."""
    clock.ms += lease_ms + 1
    assert store.claim(sid(0), "other-task", clock(), lease_ms)
    return lambda: store.release(sid(0), "other-task")


def test_a_shard_end_marker_of_an_earlier_claim_does_not_end_the_next_one(clock):
    # Issue 13: poll applied the stale marker to the new claim, whose next save wrote SHARD_END
    # at the old checkpoint (here: none at all); a restart then skipped the whole shard.
    shards = [(info(0, closed=True), records(0, 3), ShardEnd())]
    store = MemoryCheckpointStore()
    consumer = Consumer(config(), source(shards, clock), store, now_ms=clock, owner="a")
    consumer.step()                        # claims; reads the three records and SHARD_END
    first = consumer.poll(3)               # the end marker stays queued
    assert payloads(first) == [b"s0r0", b"s0r1", b"s0r2"]
    release = fence(store, clock)
    consumer.coordinate_once()             # the save finds another owner: the claim is dropped
    release()
    consumer.coordinate_once()             # claimed again, from the store's checkpoint (none)
    assert consumer.poll(10) == []         # the first claim's marker is discarded
    clock.ms += 1000
    consumer.coordinate_once()
    assert not store.load(sid(0)).ended
    again = drive(consumer, clock, rounds=20)
    assert payloads(again) == [b"s0r0", b"s0r1", b"s0r2"]
    assert store.load(sid(0)).ended and store.load(sid(0)).position == Position(seq(0, 2))


def test_records_queued_by_an_earlier_claim_are_discarded_and_read_again_by_the_next(clock):
    # Issue 13: the first claim's queued records went into the new claim's ledger ahead of the
    # new reader's, whose earlier records the ledger then refused and poll dropped silently.
    store = MemoryCheckpointStore()
    consumer = Consumer(config(), source([(info(0), records(0, 6), None)], clock), store, now_ms=clock, owner="a")
    consumer.step()                        # reads r0..r5
    first = consumer.poll(4)               # r0..r3 emitted, r4 and r5 still queued
    for d in first[:2]:
        consumer.ack(d.message_id)         # r2 and r3 stay in flight
    clock.ms += 1000
    consumer.coordinate_once()
    assert store.load(sid(0)).position == Position(seq(0, 1))
    release = fence(store, clock)
    consumer.coordinate_once()             # dropped
    release()
    consumer.coordinate_once()             # claimed again: reads after r1
    for d in first[2:]:
        consumer.fail(d.message_id)        # Storm fails the first claim's r2 and r3: nothing to replay
    again = drive(consumer, clock, rounds=20)
    assert payloads(again) == [b"s0r2", b"s0r3", b"s0r4", b"s0r5"]
    assert store.load(sid(0)).position == Position(seq(0, 5))
    assert consumer.uncommitted == 0


def test_a_record_out_of_order_is_refused_loudly_and_never_passed_by_a_checkpoint(clock, caplog):
    # Issue 13: a record the ledger refused was dropped silently, and the checkpoint passed it.
    out_of_order = [RecordedRecord(str(seq(0, i)), T0, "pk", f"r{i}".encode()) for i in (0, 2, 1, 3)]
    store = MemoryCheckpointStore()
    consumer = Consumer(config(), source([(info(0), out_of_order, None)], clock), store, now_ms=clock)
    with caplog.at_level("ERROR", logger="pistats.kinesis.consumer"):
        seen = drive(consumer, clock, rounds=30)
    assert payloads(seen)[:2] == [b"r0", b"r2"]
    checkpoint = store.load(sid(0))
    assert checkpoint.position is None or checkpoint.position < Position(seq(0, 1))
    assert any("refused" in r.getMessage() for r in caplog.records)
    assert consumer.uncommitted <= 4


class CountingStore(MemoryCheckpointStore):
    def __init__(self):
        super().__init__()
        self.saves = 0

    def save(self, *args, **kwargs):
        self.saves += 1
        return super().save(*args, **kwargs)


def test_a_finishing_shard_that_another_owner_ended_stops_saving_and_is_done(clock):
    # Issue 13 (suspected, confirmed): every save answered STALE and the shard saved every 100 ms
    # for ever, without renewing a lease it no longer had.
    store = CountingStore()
    consumer = Consumer(config(), source([(info(0, closed=True), records(0, 3), ShardEnd())], clock), store,
                        now_ms=clock, owner="a")
    drive(consumer, clock, rounds=15, on=lambda d: None)  # all emitted, none acked
    assert consumer.shard_states()[sid(0)] == "finishing"
    release = fence(store, clock)
    assert store.save(sid(0), "other-task", Position(seq(0, 2)), True, ended=True, now_ms=clock(),
                      lease_ms=10_000) == "ok"
    release()
    saves = store.saves
    drive(consumer, clock, rounds=50)
    assert consumer.shard_states()[sid(0)] == "done"
    assert store.saves - saves <= 2


def test_a_checkpoint_behind_the_stores_makes_the_claim_resume_from_the_stores(clock):
    store = MemoryCheckpointStore()
    consumer = Consumer(config(), source([(info(0), records(0, 6), None)], clock), store, now_ms=clock, owner="a")
    held = drive(consumer, clock, rounds=12, on=lambda d: None)
    assert payloads(held) == [f"s0r{i}".encode() for i in range(6)]
    release = fence(store, clock)  # another owner gets through r3 meanwhile
    assert store.save(sid(0), "other-task", Position(seq(0, 3)), True, ended=False, now_ms=clock(),
                      lease_ms=10_000) == "ok"
    release()
    again = drive(consumer, clock, rounds=20)
    assert payloads(again) == [b"s0r4", b"s0r5"]
    assert store.load(sid(0)).position == Position(seq(0, 5))


def poll_until(consumer, count, timeout_s=5.0):
    seen, deadline = [], time.monotonic() + timeout_s
    while len(seen) < count and time.monotonic() < deadline:
        seen += consumer.poll(100)
        time.sleep(0.01)
    return seen


def wait_until(condition, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_a_shard_claimed_again_after_losing_its_lease_is_read_again_by_its_threads():
    # Issue 13: the first claim's stop flag stayed set, so the second claim's fetcher thread
    # exited at once while the task kept renewing the lease: nobody read the shard any more.
    store = MemoryCheckpointStore()
    settings = {"checkpoint_interval_ms": 100, "lease_ms": 1000, "idle_poll_ms": 50}
    consumer = Consumer(config(**settings), ReplaySource([(info(0), records(0, 3), None)], stream="events"),
                        store, owner="a")
    consumer.start()
    try:
        first = poll_until(consumer, 3)
        assert payloads(first) == [b"s0r0", b"s0r1", b"s0r2"]  # held: nothing acked
        assert store.claim(sid(0), "other-task", int(time.time() * 1000) + 2_000, 60_000)  # past a's lease
        assert wait_until(lambda: consumer.shard_states()[sid(0)] == "waiting")
        store.release(sid(0), "other-task")
        again = poll_until(consumer, 3)
        assert payloads(again) == [b"s0r0", b"s0r1", b"s0r2"]
    finally:
        consumer.close(2.0)
