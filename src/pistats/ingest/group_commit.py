"""Group commit: the concurrent requests of one process share PutRecords calls.

A gunicorn ``gthread`` worker serves several requests at once; with the plain
:class:`~pistats.ingest.putter.RecordPutter` each makes its own PutRecords call, and a Kinesis
that charges per call (moto, or a stream near its per-shard call limit) caps the requests/s.
:class:`GroupCommitPutter` keeps one call in flight per process, the classic leader pattern: a
request queues its entries and, if no call is in flight, becomes the leader and sends what is
queued (FIFO, at most 500 entries and 5 MiB, the PutRecords limits); otherwise it waits, and
the entries queued while a call is in flight go together in the next one. A lone request is
sent at once (no added latency when idle); ``max_wait_s`` (default 0) lets a leader wait that
long for company first.

Contract, the same as RecordPutter's, request by request:

- ``put(entries)`` returns exactly that request's outcomes: accepted (shard, sequence number)
  or refused (error code), index by index; an entry is reported accepted only after the
  PutRecords answer holding it said so.
- Refused entries are retried by their own request, after its own backoff, a bounded number of
  attempts, as RecordPutter does; a whole-call error refuses only the entries of that call, and
  ends the requests it touched when no retry will heal it.
- A request's entries are queued together and in order, so they stay in order within a call;
  a request larger than one call spans consecutive calls, one after the other (one call in
  flight), so its order within a shard is kept as with RecordPutter.
- Memory is bounded: at most ``max_queued_entries`` wait in the queue (a request larger than
  that is let in when the queue is empty). A request finding no room waits for it up to
  ``admission_timeout_s``, then its entries are refused ``QueueFull`` (the client retries them).

The clock (for the waits) and the client are injected; it knows nothing of HTTP or gunicorn.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pistats.ingest.putter import (
    MAX_BYTES_PER_CALL,
    MAX_RECORDS_PER_CALL,
    PutEntry,
    PutResult,
    RecordPutter,
    put_records_once,
    retriable_call_error,
)

QUEUE_FULL = "QueueFull"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupCommitSettings:
    """How a process groups its requests' entries into PutRecords calls."""

    max_queued_entries: int = 10_000
    max_wait_s: float = 0.0
    admission_timeout_s: float = 10.0

    def __post_init__(self):
        if self.max_queued_entries < 1:
            raise ValueError("max_queued_entries must be >= 1")
        if self.max_wait_s < 0 or self.admission_timeout_s < 0:
            raise ValueError("max_wait_s and admission_timeout_s must be >= 0")


class _Submission:
    """One attempt of one request: its pending entries and, as calls answer, their outcomes."""

    __slots__ = ("entries", "left", "refused", "accepted", "call_codes", "calls")

    def __init__(self, entries: Sequence[PutEntry], count: int):
        self.entries = entries
        self.left = count
        self.accepted: dict[int, tuple[str, str]] = {}
        self.refused: dict[int, str] = {}
        self.call_codes: set[str] = set()
        self.calls = 0


class GroupCommitPutter(RecordPutter):
    """A RecordPutter whose attempts, from any number of threads, share PutRecords calls.

    Thread-safe; one instance per process (per boto3 client), shared by its request threads.
    """

    def __init__(
        self,
        client,
        stream: str,
        *,
        settings: GroupCommitSettings = GroupCommitSettings(),
        clock: Callable[[], float] = time.monotonic,
        max_records: int = MAX_RECORDS_PER_CALL,
        max_bytes: int = MAX_BYTES_PER_CALL,
        **retries: Any,
    ):
        """``retries``: :class:`RecordPutter`'s (attempts, delays, sleep, rng), its defaults kept there."""
        super().__init__(client, stream, **retries)
        self._settings = settings
        self._clock = clock
        self._max_records = max_records
        self._max_bytes = max_bytes
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[tuple[_Submission, int]] = deque()
        self._leading = False

    @property
    def queued(self) -> int:
        """Entries waiting for a call (not those of the call in flight)."""
        with self._cond:
            return len(self._queue)

    def _attempt(self, entries: Sequence[PutEntry], pending: list[int], result: PutResult) -> tuple[dict[int, str], bool]:
        submission = _Submission(entries, len(pending))
        with self._cond:
            if not self._admit(len(pending)):
                log.warning("group commit queue full (%d entries): %d entries refused",
                            len(self._queue), len(pending))
                return {index: QUEUE_FULL for index in pending}, True
            self._queue.extend((submission, index) for index in pending)
            if self._settings.max_wait_s > 0:
                self._cond.notify_all()  # a leader gathering company may now have a full call
            while submission.left:
                if self._leading:
                    self._cond.wait()
                    continue
                self._leading = True
                try:
                    self._lead()
                finally:
                    self._leading = False
                    self._cond.notify_all()
        result.accepted.update(submission.accepted)
        result.calls += submission.calls
        give_up = any(not retriable_call_error(code) for code in submission.call_codes)
        return submission.refused, give_up

    def _admit(self, count: int) -> bool:
        """Wait (lock held) until ``count`` more entries fit in the queue; False on timeout."""
        deadline = self._clock() + self._settings.admission_timeout_s
        while self._queue and len(self._queue) + count > self._settings.max_queued_entries:
            remaining = deadline - self._clock()
            if remaining <= 0:
                return False
            self._cond.wait(remaining)
        return True

    def _take(self) -> list[tuple[_Submission, int]]:
        """The queue's head (lock held), within the call limits; the first entry always goes (one
        larger than the byte limit goes alone, and Kinesis refuses it)."""
        taken: list[tuple[_Submission, int]] = []
        size = 0
        while self._queue and len(taken) < self._max_records:
            submission, index = self._queue[0]
            entry_size = submission.entries[index].size
            if taken and size + entry_size > self._max_bytes:
                break
            taken.append(self._queue.popleft())
            size += entry_size
        return taken

    def _gather(self) -> None:
        """Wait (lock held) up to ``max_wait_s`` for the queue to fill one call."""
        deadline = self._clock() + self._settings.max_wait_s
        while len(self._queue) < self._max_records:
            remaining = deadline - self._clock()
            if remaining <= 0:
                return
            self._cond.wait(remaining)

    def _lead(self) -> None:
        """Send one call of the queue's head and hand its outcomes to their submissions. Called
        with the lock held; releases it for the call itself, so others can queue meanwhile."""
        if self._settings.max_wait_s > 0:
            self._gather()
        taken = self._take()
        if not taken:
            return
        self._cond.notify_all()  # room in the queue for requests waiting to be admitted
        self._cond.release()
        code: str | None = "Interrupted"
        outcomes: list = [code] * len(taken)
        try:
            code, outcomes = put_records_once(self._client, self._stream,
                                              [submission.entries[index] for submission, index in taken])
        except Exception as error:  # noqa: BLE001 - a bug here must not hang the other requests
            code = f"Error:{type(error).__name__}"
            outcomes = [code] * len(taken)
            log.error("PutRecords raised for %d entries: %s", len(taken), code)
        finally:
            # Also when the thread is interrupted mid-call (the entries then count as refused):
            # every entry taken is answered, or its request would wait for ever.
            self._cond.acquire()
            self._settle(taken, code, outcomes)

    @staticmethod
    def _settle(taken: list[tuple[_Submission, int]], code: str | None, outcomes: list) -> None:
        """Hand one call's outcomes (lock held) to the submissions their entries came from."""
        touched: set[int] = set()
        for (submission, index), outcome in zip(taken, outcomes):
            if isinstance(outcome, str):
                submission.refused[index] = outcome
            else:
                submission.accepted[index] = outcome
            submission.left -= 1
            if id(submission) not in touched:
                touched.add(id(submission))
                submission.calls += 1
                if code is not None:
                    submission.call_codes.add(code)
