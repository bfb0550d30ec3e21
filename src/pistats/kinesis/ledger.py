"""In-flight bookkeeping for the Kinesis spout: what was emitted, acked, failed, dead-lettered.

The rule that decides checkpoints is the pure function :func:`committable`; :class:`ShardLedger`
is its incremental, bounded-memory form (and is tested against it). Positions are
``(sequence_number, sub_sequence_number)`` pairs of ints: sequence numbers are decimal strings
up to 129 digits on the wire and must never be compared as strings.
"""

from __future__ import annotations

import functools
import heapq
from collections import deque
from dataclasses import dataclass
from typing import AbstractSet, Iterable, NamedTuple


class Position(NamedTuple):
    """A record's place in its shard; sub-records of a KPL aggregate share ``seq``."""

    seq: int
    subseq: int = 0


# Position(seq, subseq) without the generated __new__'s Python call (about 200 ns against 290-370
# here), as the spout builds one or two per record it emits and acks.
_position = functools.partial(tuple.__new__, Position)


@dataclass(slots=True)
class ShardRecord:
    """One (de-aggregated) user record as the consumer reads it from its shard and keeps it in
    its books until the checkpoint passes it: its position as integers, to order and commit.

    ``last_in_aggregate`` is True for a plain record and for the final sub-record of a KPL
    aggregate: a checkpoint at such a position may resume ``AFTER_SEQUENCE_NUMBER``; any other
    position must resume ``AT_SEQUENCE_NUMBER`` and skip the sub-records already committed.
    """

    shard_id: str
    seq: int
    subseq: int
    partition_key: str
    arrival_ms: int
    data: bytes
    last_in_aggregate: bool = True

    @property
    def position(self) -> Position:
        return _position((self.seq, self.subseq))

    @property
    def message_id(self) -> str:
        return _message_id(self.shard_id, self.seq, self.subseq)


def _message_id(shard_id: str, seq: int, subseq: int) -> str:
    """The Storm tuple id of a record: ``"<shard>|<seq>|<subseq>"`` (shard ids never contain ``|``)."""
    return f"{shard_id}|{seq}|{subseq}"


def parse_message_id(text: str) -> tuple[str, Position]:
    """Inverse of ``ShardRecord.message_id``: (shard id, position); raises ValueError for anything else."""
    shard_id, seq, subseq = text.split("|")
    return shard_id, _position((int(seq), int(subseq)))


def committable(
    emitted: Iterable[Position],
    acked: AbstractSet[Position],
    failed: AbstractSet[Position] = frozenset(),
) -> Position | None:
    """The highest emitted position at or below which every emitted record is acked.

    ``emitted`` may come in any order. A position in ``failed`` is not done even if it was
    also acked earlier (it awaits a replay). Dead-lettered records count as acked once their
    dead letter is acked: pass them in ``acked``. Returns None when the lowest emitted record
    is not done, i.e. nothing new may be checkpointed.
    """
    best = None
    for position in sorted(set(emitted)):
        if position in failed or position not in acked:
            break
        best = position
    return best


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for failed tuples, then a dead letter.

    A record may be replayed ``max_retries`` times; its next failure sends it to the
    dead-letter output instead.
    """

    max_retries: int = 5
    base_delay_ms: int = 100
    max_delay_ms: int = 30_000
    multiplier: float = 2.0

    def __post_init__(self):
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.base_delay_ms < 0 or self.max_delay_ms < self.base_delay_ms:
            raise ValueError("need 0 <= base_delay_ms <= max_delay_ms")
        if self.multiplier < 1:
            raise ValueError("multiplier must be >= 1")

    def delay_ms(self, failures: int) -> int:
        """Delay before replaying a record that has failed ``failures`` (>= 1) times."""
        if failures < 1:
            raise ValueError("failures must be >= 1")
        return int(min(self.max_delay_ms, self.base_delay_ms * self.multiplier ** (failures - 1)))


IN_FLIGHT = "in_flight"
RETRY_PENDING = "retry_pending"
DEAD_PENDING = "dead_pending"  # handed to the dead-letter output, not yet acked there
DONE = "done"


@dataclass(slots=True)
class Entry:
    record: ShardRecord
    position: Position  # the record's, kept: ``ShardRecord.position`` builds a new one per call
    state: str = IN_FLIGHT
    failures: int = 0
    retry_at_ms: int = 0


@dataclass(frozen=True)
class Retry:
    """Outcome of a fail: replay the record at ``at_ms``."""

    record: ShardRecord
    at_ms: int


@dataclass(frozen=True)
class DeadLetter:
    """Outcome of a fail after the last retry: route the record to the dead-letter output."""

    record: ShardRecord
    reason: str

    @property
    def message_id(self) -> str:
        return self.record.message_id + "|dead"


class ShardLedger:
    """Emitted records of one shard, in order, until the checkpoint passes them.

    Records must be emitted in increasing position order (the order GetRecords returns them).
    Entries leave the ledger as soon as the committable position passes them, so the ledger
    holds exactly the uncommitted records (that is what ``max_uncommitted`` bounds).
    """

    def __init__(self, shard_id: str, policy: RetryPolicy):
        self.shard_id = shard_id
        self.policy = policy
        self._entries: deque[Entry] = deque()
        self._index: dict[Position, Entry] = {}
        self._last_emitted: Position | None = None
        self._committable: Position | None = None
        self._committable_complete = True
        self._retries: list[tuple[int, Position]] = []  # heap of (retry_at_ms, position)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, position: Position) -> bool:
        return position in self._index

    def emit(self, record: ShardRecord) -> None:
        position = record.position
        if self._last_emitted is not None and position <= self._last_emitted:
            raise ValueError(f"{self.shard_id}: emitted {position} after {self._last_emitted}")
        entry = Entry(record, position)
        self._entries.append(entry)
        self._index[position] = entry
        self._last_emitted = position

    def ack(self, position: Position) -> int:
        """Mark a record done; returns how many entries the commit point passed (0 if unknown)."""
        entry = self._index.get(position)
        if entry is None or entry.state not in (IN_FLIGHT, DEAD_PENDING):
            return 0
        entry.state = DONE
        return self._advance()

    def fail(self, position: Position, now_ms: int) -> Retry | DeadLetter | None:
        """Record a failure: a :class:`Retry`, a :class:`DeadLetter`, or None for unknown ids.

        A failed dead letter is offered again after the policy's longest delay: it is never
        dropped, because only its ack lets the checkpoint pass the record.
        """
        entry = self._index.get(position)
        if entry is None:
            return None
        if entry.state == DEAD_PENDING:
            entry.retry_at_ms = now_ms + self.policy.max_delay_ms
            heapq.heappush(self._retries, (entry.retry_at_ms, position))
            return Retry(entry.record, entry.retry_at_ms)
        if entry.state != IN_FLIGHT:
            return None
        entry.failures += 1
        if entry.failures > self.policy.max_retries:
            entry.state = DEAD_PENDING
            entry.retry_at_ms = 0
            return DeadLetter(entry.record, "max_retries")
        entry.state = RETRY_PENDING
        entry.retry_at_ms = now_ms + self.policy.delay_ms(entry.failures)
        heapq.heappush(self._retries, (entry.retry_at_ms, position))
        return Retry(entry.record, entry.retry_at_ms)

    def due(self, now_ms: int, limit: int | None = None) -> list[ShardRecord | DeadLetter]:
        """Records (and re-offered dead letters) whose backoff has elapsed, marked in flight;
        at most ``limit`` of them, earliest first (the rest stay due).

        A dead letter being re-offered has ``retry_at_ms > 0``; fresh dead letters are returned
        by :meth:`fail` itself.
        """
        out: list[ShardRecord | DeadLetter] = []
        heap = self._retries
        while heap and heap[0][0] <= now_ms and (limit is None or len(out) < limit):
            at_ms, position = heapq.heappop(heap)
            entry = self._index.get(position)
            if entry is None or entry.retry_at_ms != at_ms:
                continue
            if entry.state == RETRY_PENDING:
                entry.state = IN_FLIGHT
                out.append(entry.record)
            elif entry.state == DEAD_PENDING:
                entry.retry_at_ms = 0
                out.append(DeadLetter(entry.record, "max_retries"))
        return out

    def next_retry_ms(self) -> int | None:
        """When the earliest pending replay falls due (may be stale-early, never late)."""
        return self._retries[0][0] if self._retries else None

    def committable(self) -> tuple[Position, bool] | None:
        """The highest committable position and whether it ends its KPL aggregate, or None."""
        if self._committable is None:
            return None
        return self._committable, self._committable_complete

    def counts(self) -> dict[str, int]:
        out = {IN_FLIGHT: 0, RETRY_PENDING: 0, DEAD_PENDING: 0, DONE: 0}
        for entry in self._entries:
            out[entry.state] += 1
        return out

    def _advance(self) -> int:
        passed = 0
        entries = self._entries
        while entries and entries[0].state == DONE:
            entry = entries.popleft()
            del self._index[entry.position]
            self._committable = entry.position
            self._committable_complete = entry.record.last_in_aggregate
            passed += 1
        return passed
