"""The pure core of the sink: an accumulator per table that decides when a batch is flushed.

No I/O and no clock: the caller passes ``now`` (monotonic seconds) in.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate, repeat
from typing import Hashable

from pistats.store.rows import dedup_token


@dataclass(frozen=True)
class Batch:
    """Rows for one insert and the tuple ids to ack once it returned (or fail if it never does).

    ``token`` is deterministic in the rows' keys: a retried batch carries the same token, so a
    server with ``insert_deduplication_token`` drops the second copy of an insert that did land.
    """

    table: str
    tuple_ids: tuple
    rows: tuple
    token: str

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class Accumulator:
    """Collects rows of one table until ``max_rows`` or ``max_bytes`` is reached or the oldest is ``max_age_s`` old.

    Contract: ``fits(nbytes)`` tells whether one more row may join without exceeding a bound; the
    caller flushes (``take``) first when it does not. An empty accumulator accepts any single row,
    so a row larger than ``max_bytes`` travels alone (string truncation bounds its size).
    """

    table: str
    max_rows: int
    max_bytes: int
    max_age_s: float
    _ids: list = field(default_factory=list)
    _rows: list = field(default_factory=list)
    _keys: list = field(default_factory=list)
    _bytes: int = 0
    _opened_at: float | None = None

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def fits(self, nbytes: int) -> bool:
        if not self._rows:
            return True
        return len(self._rows) + 1 <= self.max_rows and self._bytes + nbytes <= self.max_bytes

    def add(self, tuple_id: Hashable, row: tuple, key: str, nbytes: int, now: float) -> None:
        if not self.fits(nbytes):
            raise ValueError("accumulator is full: take() the batch first")
        if not self._rows:
            self._opened_at = now
        self._ids.append(tuple_id)
        self._rows.append(row)
        self._keys.append(key)
        self._bytes += nbytes

    def add_many(self, tuple_id: Hashable, rows: Sequence[tuple], keys: Sequence[str], sizes: Sequence[int],
                 start: int, now: float) -> int:
        """``add`` for ``rows[start:]`` of one tuple, as many as fit; returns how many were added
        (0 when even the next one does not fit: ``take`` the batch first)."""
        room = self.max_rows - len(self._rows)
        end = min(len(rows), start + room)
        taken = bisect_right(list(accumulate(sizes[start:end])), self.max_bytes - self._bytes)
        if taken == 0 and not self._rows and end > start:
            taken = 1  # an empty accumulator takes any single row
        if taken == 0:
            return 0
        if not self._rows:
            self._opened_at = now
        stop = start + taken
        self._ids.extend(repeat(tuple_id, taken))
        self._rows.extend(rows[start:stop])
        self._keys.extend(keys[start:stop])
        self._bytes += sum(sizes[start:stop])
        return taken

    @property
    def full(self) -> bool:
        return len(self._rows) >= self.max_rows or self._bytes >= self.max_bytes

    def due(self, now: float) -> bool:
        """True when non-empty and full, or its oldest row waited ``max_age_s`` or longer."""
        if not self._rows:
            return False
        return self.full or now - self._opened_at >= self.max_age_s

    def take(self) -> Batch | None:
        """Hand over the batch (None when empty) and start a new one."""
        if not self._rows:
            return None
        batch = Batch(self.table, tuple(self._ids), tuple(self._rows), dedup_token(self.table, self._keys))
        self._ids, self._rows, self._keys, self._bytes, self._opened_at = [], [], [], 0, None
        return batch


@dataclass
class _Expected:
    rows: int
    failed: bool = False


class PendingTuples:
    """Which tuples are settled as their rows are stored: a tuple (one micro-batch) may hold many
    rows, which may land in different inserts (and tables). It is acked when its last row is
    stored, failed at the first insert of one of its rows that fails; rows of a failed tuple
    still stored later are harmless (the replay collapses with them) and settle nothing."""

    def __init__(self):
        self._expected: dict[Hashable, _Expected] = {}

    def expect(self, tuple_id: Hashable, rows: int) -> list:
        """Register a tuple and its row count; returns ``[tuple_id]`` when there is nothing to
        store (settled at once), else ``[]``."""
        if rows == 0:
            return [tuple_id]
        self._expected[tuple_id] = _Expected(rows)
        return []

    def stored(self, tuple_ids) -> list:
        """One entry per stored row; returns the tuples now complete and not failed."""
        acked = []
        for tuple_id, rows in Counter(tuple_ids).items():
            entry = self._count_rows(tuple_id, rows)
            if entry is not None and entry.rows == 0 and not entry.failed:
                acked.append(tuple_id)
        return acked

    def failed(self, tuple_ids) -> list:
        """One entry per row whose insert failed; returns the tuples failing now (each once)."""
        failing = []
        for tuple_id, rows in Counter(tuple_ids).items():
            entry = self._count_rows(tuple_id, rows)
            if entry is not None and not entry.failed:
                entry.failed = True
                failing.append(tuple_id)
        return failing

    def _count_rows(self, tuple_id: Hashable, rows: int) -> _Expected | None:
        """Rows of the tuple are settled; its entry (forgotten once no row is left), or None for
        a tuple already settled. Counted per tuple, not per row: a batch holds thousands of rows
        of a few dozen tuples."""
        entry = self._expected.get(tuple_id)
        if entry is None:
            return None
        entry.rows -= rows
        if entry.rows <= 0:
            del self._expected[tuple_id]
        return entry

    def __len__(self) -> int:
        return len(self._expected)
