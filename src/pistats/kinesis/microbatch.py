"""Micro-batches: one Storm tuple carries the records of one bucket of users.

Every tuple costs a multilang message in each Python component and a tuple, an ack and a tree
in the JVM, whatever it carries; one record per tuple capped the whole topology near 1,000
events/s on two cores, with the JVM its largest CPU consumer. So the spout emits each poll's
records as a few tuples, one per *bucket*: ``crc32(partition key) mod buckets``. The hash is
stable across processes and restarts (Python's ``hash()`` is salted per process), so every record
of a user always lands in the same bucket, fields grouping on the bucket sends it to the same task
of the enrich bolt, and one user's events keep their shard order all the way to its sessions.

The unit of replay is the batch: Storm acks or fails a batch tuple as a whole, and the spout acks
or fails each of its records in the consumer's books (``InFlight``), so checkpoints still move
record by record and a failed batch replays exactly its own records (regrouped with whatever else
is due, in shard order). Batches are capped at ``max_records`` to keep that replay small.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def bucket_of(partition_key: str, buckets: int) -> int:
    """The bucket of a partition key: the same in every process, run and release."""
    return zlib.crc32(partition_key.encode("utf-8", "surrogatepass")) % buckets


@dataclass(frozen=True, slots=True)
class MicroBatch:
    bucket: int
    deliveries: tuple

    @property
    def message_ids(self) -> tuple[str, ...]:
        return tuple(delivery.message_id for delivery in self.deliveries)


def split(deliveries: Iterable, buckets: int, max_records: int) -> list[MicroBatch]:
    """Group deliveries (``consumer.Delivery``: a ``message_id`` and a ``record``) by bucket,
    keeping their order within each bucket; a bucket with more than ``max_records`` gives several
    batches, in order."""
    if buckets < 1 or max_records < 1:
        raise ValueError("buckets and max_records must be >= 1")
    open_batches: dict[int, list] = {}
    done: list[MicroBatch] = []
    for delivery in deliveries:
        bucket = bucket_of(delivery.record.partition_key, buckets)
        batch = open_batches.setdefault(bucket, [])
        batch.append(delivery)
        if len(batch) == max_records:
            done.append(MicroBatch(bucket, tuple(batch)))
            del open_batches[bucket]
    done.extend(MicroBatch(bucket, tuple(batch)) for bucket, batch in open_batches.items())
    return done


class InFlight:
    """The message ids of every emitted batch tuple until Storm acks or fails it."""

    def __init__(self):
        self._batches: dict[str, Sequence[str]] = {}
        self._ids = itertools.count(1)

    def open(self, message_ids: Sequence[str]) -> str:
        """Register a batch about to be emitted; returns its tuple id."""
        batch_id = f"b{next(self._ids)}"
        self._batches[batch_id] = tuple(message_ids)
        return batch_id

    def close(self, batch_id: str) -> Sequence[str]:
        """The message ids of an acked or failed batch; none for an id this task never emitted
        (a tuple of the process before a restart, or a repeated ack)."""
        return self._batches.pop(batch_id, ())

    def __len__(self) -> int:
        return len(self._batches)
