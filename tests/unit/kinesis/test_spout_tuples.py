"""What the spout emits, without Storm: batch tuples the enrich bolt reads back, one rejects tuple
per poll for the dead letters, and the task's place among its component's tasks."""

from datetime import datetime, timezone

from pistats.enrich.parse import RawRecord, records_from_batch
from pistats.kinesis.consumer import Delivery
from pistats.kinesis.ledger import ShardRecord
from pistats.kinesis.microbatch import bucket_of
from pistats.kinesis.spout_tuples import (
    RECORD_TUPLE_FIELDS,
    REJECTS_STREAM,
    spout_emits,
    task_position,
    tuple_values,
)
from pistats.wire import unpack_rows

SEQ = 49680574275476335198516986152487755993581893416107638786  # beyond 2**53: travels as text
NOW = datetime(2026, 11, 26, 5, 0, 0, 123456, tzinfo=timezone.utc)


def delivery(n, key="client-1:u-1", dead=None):
    record = ShardRecord("shardId-000000000001", SEQ + n, n % 2, key, 1_790_000_000_000 + n, f"r{n}".encode())
    return Delivery(record.message_id, record, dead)


def test_a_record_travels_as_the_enrich_bolt_reads_it():
    record = delivery(1).record
    assert len(tuple_values(record)) == len(RECORD_TUPLE_FIELDS)
    emits = spout_emits([delivery(1)], buckets=1, batch_records=10, now=lambda: NOW)
    assert records_from_batch(emits[0].values[1]) == [
        RawRecord(record.shard_id, str(SEQ + 1), 1, record.partition_key, record.arrival_ms, b"r1")]


def test_dead_letters_come_first_in_one_rejects_tuple_then_one_tuple_per_bucket():
    keys = ["client-1:a", "client-1:d"]
    assert bucket_of(keys[0], 2) != bucket_of(keys[1], 2)
    polled = [delivery(0, keys[0]), delivery(1, keys[1], dead="max_retries"), delivery(2, keys[1]),
              delivery(3, keys[0]), delivery(4, keys[0], dead="max_retries")]
    emits = spout_emits(polled, buckets=2, batch_records=10, now=lambda: NOW)

    rejects, *batches = emits
    assert rejects.stream == REJECTS_STREAM
    assert rejects.message_ids == (polled[1].message_id, polled[4].message_id)
    rows = unpack_rows(rejects.values[0])
    assert [(r["reason"], r["stage"], r["kinesis_seq"], r["rejected_at"]) for r in rows] == [
        ("max_retries", "spout", str(SEQ + 1), "2026-11-26T05:00:00.123456Z"),
        ("max_retries", "spout", str(SEQ + 4), "2026-11-26T05:00:00.123456Z")]

    assert [b.stream for b in batches] == [None, None]
    by_bucket = {b.values[0]: b for b in batches}
    assert by_bucket[bucket_of(keys[0], 2)].message_ids == (polled[0].message_id, polled[3].message_id)
    assert by_bucket[bucket_of(keys[1], 2)].message_ids == (polled[2].message_id,)


def test_no_clock_read_and_no_tuple_for_an_empty_poll():
    assert spout_emits([], buckets=4, batch_records=10, now=lambda: 1 / 0) == []


def test_task_position_among_the_component_tasks():
    context = {"taskid": 7, "componentid": "kinesis",
               "task->component": {"3": "enrich", "5": "kinesis", "7": "kinesis", "9": "kinesis"}}
    assert task_position(context) == (1, 3)
    assert task_position({"taskid": 4}) == (0, 1)
