"""Inserts in flight: a batch is written by one background thread while the caller fills the next.

An insert is mostly time the caller's thread does not need: the server's own work (a socket
wait) or chdb's engine (which releases the GIL). Running it on a writer thread lets the bolt
decode and convert the next tuples meanwhile, so the sink's rate becomes the slower of the two
sides instead of their sum.

Guarantees the sink relies on:

- Results come back in submission order, and only through the caller's own thread
  (``finished`` / ``wait_all``), so the ack bookkeeping never runs on two threads.
- At most ``max_in_flight`` batches are held here; ``submit`` blocks while that many are
  unfinished (memory stays bounded; the waiting is the backpressure).
- An exception of the write (a bug: the write returns its failures as values) is re-raised in
  the caller's thread when its result is collected: the bolt dies and Storm replays its unacked
  tuples.

With ``max_in_flight = 0`` the write runs inside ``submit`` on the caller's thread (no thread at
all): the same results, in the same order, at once.
"""

from __future__ import annotations

import queue
import threading
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")


class InsertPipeline(Generic[Job, Result]):
    """Runs ``write(job) -> result`` for each submitted job, one at a time, in order."""

    def __init__(self, write: Callable[[Job], Result], max_in_flight: int = 1):
        if max_in_flight < 0:
            raise ValueError("max_in_flight must be >= 0")
        self._write = write
        self.max_in_flight = max_in_flight
        self._unfinished: deque[tuple[Job, Future]] = deque()
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def __len__(self) -> int:
        """Jobs submitted and not yet collected."""
        return len(self._unfinished)

    def submit(self, job: Job) -> None:
        """Start writing ``job``; first waits until fewer than ``max_in_flight`` are unfinished."""
        future: Future = Future()
        if self.max_in_flight == 0:
            _run(self._write, job, future)
        else:
            while sum(not f.done() for _, f in self._unfinished) >= self.max_in_flight:
                next(f for _, f in self._unfinished if not f.done()).exception()  # wait, don't raise here
            self._ensure_thread()
            self._jobs.put((self._write, job, future))
        self._unfinished.append((job, future))

    def finished(self) -> list[tuple[Job, Result]]:
        """The jobs done so far, oldest first, up to the first still running (never blocks)."""
        done = []
        while self._unfinished and self._unfinished[0][1].done():
            job, future = self._unfinished.popleft()
            done.append((job, future.result()))
        return done

    def wait_all(self) -> list[tuple[Job, Result]]:
        """Every submitted job's result, oldest first, once all are done."""
        done = []
        while self._unfinished:
            job, future = self._unfinished.popleft()
            done.append((job, future.result()))
        return done

    def _ensure_thread(self) -> None:
        if self._thread is None:
            # The thread holds only the queue, not this pipeline (nor through it the store), and
            # ends once the pipeline is garbage: an idle writer keeps no store open. A daemon,
            # so a process going away (Storm killing the worker) does not wait for an insert;
            # its tuples were never acked and are replayed.
            self._thread = threading.Thread(target=_serve, args=(self._jobs,), name="pistats-insert", daemon=True)
            self._thread.start()
            weakref.finalize(self, self._jobs.put, None)


def _serve(jobs: queue.SimpleQueue) -> None:
    while (item := jobs.get()) is not None:
        write, job, future = item
        _run(write, job, future)
        del write, job, future, item  # hold nothing of the pipeline while waiting for the next job


def _run(write: Callable, job, future: Future) -> None:
    try:
        future.set_result(write(job))
    except BaseException as error:  # handed to the caller's thread, re-raised where it collects
        future.set_exception(error)
