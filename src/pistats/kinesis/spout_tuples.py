"""What the Kinesis spout emits, as plain values: the consumer's deliveries in Storm's terms,
without Storm (``src/spouts/kinesis.py`` only writes them out).

* On the default stream, one tuple ``["bucket", "records"]`` per micro-batch
  (``pistats.kinesis.microbatch``): ``records`` is a list of ``RECORD_TUPLE_FIELDS`` lists packed
  by ``pistats.wire``; ``pistats.enrich.parse.records_from_batch`` reads it back.
* On stream ``rejects``, one tuple ``["rejects"]`` per poll that gave dead letters: their reject
  rows (``dead_letter_reject``) packed by ``pistats.wire``, for the ``events_rejected`` table.

A tuple stands for the consumer's message ids it carries: its ack acks each of them in the
consumer, its fail fails each of them.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from pistats.kinesis.ledger import ShardRecord
from pistats.kinesis.microbatch import split
from pistats.wire import format_time, pack, pack_rows

if TYPE_CHECKING:
    from pistats.kinesis.consumer import Delivery

# A record's values in a batch tuple, in order.
RECORD_TUPLE_FIELDS = (
    "shard_id", "sequence_number", "sub_sequence_number", "partition_key", "arrival_ms", "data",
)
REJECTS_STREAM = "rejects"


def tuple_values(record: ShardRecord) -> list:
    """A record's values in ``RECORD_TUPLE_FIELDS`` order. The sequence number travels as
    decimal text (JSON numbers lose digits beyond 2**53); the data by ``wire_data``."""
    return [record.shard_id, str(record.seq), record.subseq, record.partition_key, record.arrival_ms,
            wire_data(record.data)]


def wire_data(data: bytes) -> str | list[str]:
    """A record's bytes as a tuple carries them: UTF-8 as the text it is (the SDKs' JSON: the
    same bytes back on the other side), anything else as ``[base64]``.

    Text rather than base64 inside the compressed batch: the compressor finds the JSON's repeated
    keys in text, not in base64, so a batch is about a third smaller for the JVM to parse and
    write twice, and neither end spends a base64 pass per record (docs/performance.md)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return [base64.b64encode(data).decode("ascii")]


def dead_letter_reject(delivery: Delivery, rejected_at: datetime) -> dict:
    """The reject (dead letter) for a record that failed downstream past its retries, in wire
    form (``rejected_at`` as RFC 3339 UTC text), for the ``events_rejected`` table."""
    record = delivery.record
    return {
        "reason": delivery.dead_letter_reason, "stage": "spout", "field": None,
        "detail": "tuple failed downstream after every replay",
        "raw_b64": base64.b64encode(record.data).decode("ascii"),
        "kinesis_shard": record.shard_id, "kinesis_seq": str(record.seq), "kinesis_subseq": record.subseq,
        "client_id": "", "rejected_at": format_time(rejected_at),
    }


@dataclass(frozen=True, slots=True)
class Emit:
    """One tuple for the spout to emit: its values, its stream (None: the default one) and the
    consumer's message ids it stands for."""

    values: list
    message_ids: tuple[str, ...]
    stream: str | None = None


def spout_emits(deliveries: Iterable[Delivery], buckets: int, batch_records: int,
                now: Callable[[], datetime]) -> list[Emit]:
    """The tuples for one poll's deliveries, in emit order: the dead letters first, all in one
    ``rejects`` tuple (``now()`` is their ``rejected_at``), then the records, one batch tuple per
    micro-batch of at most ``batch_records`` records of one of ``buckets`` buckets."""
    records, dead_letters = [], []
    for delivery in deliveries:
        (records if delivery.dead_letter_reason is None else dead_letters).append(delivery)
    emits = []
    if dead_letters:
        rejected_at = now()
        rows = pack_rows([dead_letter_reject(delivery, rejected_at) for delivery in dead_letters])
        emits.append(Emit([rows], tuple(delivery.message_id for delivery in dead_letters), REJECTS_STREAM))
    for batch in split(records, buckets, batch_records):
        records_packed = pack([tuple_values(delivery.record) for delivery in batch.deliveries])
        emits.append(Emit([batch.bucket, records_packed], batch.message_ids))
    return emits


def task_position(context: dict) -> tuple[int, int]:
    """``(task_index, task_count)`` of this task among its component's tasks, from the Storm
    multilang context (``taskid``, ``componentid``, ``task->component``)."""
    task_id = int(context["taskid"])
    components = context.get("task->component") or {}
    component = context.get("componentid") or components.get(str(task_id))
    tasks = sorted(int(t) for t, c in components.items() if c == component) or [task_id]
    return tasks.index(task_id), len(tasks)
