"""An at-least-once Kinesis consumer with ack-driven checkpoints (no Storm here).

Threads and ownership:

* one **fetcher thread per shard** runs a :class:`ShardReader` and appends records to a
  shared queue; it only fetches while the task holds fewer than ``max_uncommitted`` records;
* one **coordinator thread** lists shards (paginated, periodically, so new shards are picked up
  without a restart), starts a shard once its parents are fully checkpointed at SHARD_END,
  and writes checkpoints every ``checkpoint_interval_ms`` (retrying when the store is down);
* the **caller's thread** (Storm's) calls :meth:`Consumer.poll`, :meth:`Consumer.ack` and
  :meth:`Consumer.fail`, which never block on I/O.

A record leaves the task's books only when the checkpoint passes it: after its ack, or after
the ack of its dead letter once ``retries`` replays failed. Nothing is acked-and-dropped.

Each claim of a shard is a new **generation**: its own reader, fetcher and stop flag. What a
fetcher queues carries its generation's number, and :meth:`Consumer.poll` discards whatever an
earlier claim of the shard left in the queue (releasing its budget) without touching the
current claim's books: the current reader reads those records again from the checkpoint.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable

from pistats.kinesis.checkpoint import NOT_OWNER, STALE, Checkpoint, CheckpointStore
from pistats.kinesis.client import make_kinesis_client
from pistats.kinesis.config import KinesisConfig
from pistats.kinesis.ledger import (
    DeadLetter,
    Position,
    RetryPolicy,
    ShardLedger,
    ShardRecord,
    parse_message_id,
)
from pistats.kinesis.shard_reader import ShardReader, StartPosition

log = logging.getLogger(__name__)

_SHARD_NUMBER = re.compile(r"(\d+)$")


def assigned_task(shard_id: str, task_count: int) -> int:
    """The task index (0-based) that reads ``shard_id``: stable across re-listings and restarts.

    Uses the shard's trailing number (Kinesis numbers shards sequentially, so consecutive shards
    spread evenly), else a CRC32 of the id.
    """
    match = _SHARD_NUMBER.search(shard_id)
    number = int(match.group(1)) if match else zlib.crc32(shard_id.encode())
    return number % task_count


@dataclass(slots=True)
class Delivery:
    """One thing to emit: a record, or (with ``dead_letter_reason``) its dead letter."""

    message_id: str
    record: ShardRecord
    dead_letter_reason: str | None = None


@dataclass
class ShardMetrics:
    read: int = 0
    emitted: int = 0
    acked: int = 0
    failed: int = 0
    dead_lettered: int = 0
    in_flight: int = 0          # emitted, not yet acked (including replays and dead letters pending)
    uncommitted: int = 0        # held for the checkpoint: in flight + acked behind an unacked record
    millis_behind_latest: int | None = None
    last_checkpoint: str = ""
    throttled: int = 0
    read_errors: int = 0
    checkpoint_errors: int = 0


WAITING, READING, FINISHING, DONE = "waiting", "reading", "finishing", "done"


@dataclass
class _Generation:
    """One claim of a shard: its reader and fetcher. Items its fetcher queues carry ``number``."""

    number: int
    reader: ShardReader
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    next_call_ms: int = 0
    fetch_ended: bool = False          # the fetcher queued the shard's last record
    all_emitted: bool = False          # poll() has taken this generation's end marker off the queue
    refused: bool = False              # its ledger refused a record: read the shard again from the checkpoint


@dataclass
class _AssignedShard:
    """A shard this task reads (``assigned_task``), from its listing on, through every claim of
    it (each a :class:`_Generation`), until it is done."""

    shard_id: str
    parents: list[str]
    closed: bool
    state: str = WAITING
    ledger: ShardLedger | None = None
    gen: _Generation | None = None     # the current claim; None while waiting
    next_try_ms: int = 0               # next attempt to start a waiting shard
    pin_start: bool = False            # started at LATEST or AT_TIMESTAMP without a checkpoint
    pin: Position | None = None        # where a LATEST/AT_TIMESTAMP start actually began
    saved: Position | None = None      # last checkpoint written (or loaded)
    saved_complete: bool = True
    next_save_ms: int = 0
    save_failures: int = 0
    metrics: ShardMetrics = field(default_factory=ShardMetrics)


@dataclass(frozen=True)
class _ShardEnd:
    shard_id: str


def _now_ms() -> int:
    return int(time.time() * 1000)


class Consumer:
    """Reads the shards assigned to task ``task_index`` of ``task_count``.

    ``client`` is a boto3 Kinesis client (built with botocore retries off, see
    :func:`build_consumer`), ``store`` a checkpoint store, ``now_ms`` a clock in epoch
    milliseconds. Call :meth:`start` to run the threads, or drive :meth:`coordinate_once` and
    :meth:`fetch_once` directly (tests do).
    """

    def __init__(self, config: KinesisConfig, client, store: CheckpointStore, *, task_index: int = 0,
                 task_count: int = 1, now_ms: Callable[[], int] = _now_ms, owner: str | None = None):
        if not 0 <= task_index < task_count:
            raise ValueError(f"task_index {task_index} outside 0..{task_count - 1}")
        self.config = config
        self._client = client
        self._store = store
        self._task_index = task_index
        self._task_count = task_count
        self._now_ms = now_ms
        self._owner = owner or f"{config.app_name}:task{task_index}:{id(self):x}:{now_ms()}"
        self._policy: RetryPolicy = config.retry_policy()
        self._shards: dict[str, _AssignedShard] = {}
        self._known_shards: set[str] = set()
        self._lock = threading.Lock()               # guards ledgers, budget and shard states
        self._queue: deque = deque()                # (generation, record or shard-end marker)
        self._generations = itertools.count(1)
        self._dead_letters: deque[Delivery] = deque()
        self._uncommitted = 0                       # queued + in ledgers + reserved by fetchers
        self._min_fetch = min(config.get_records_limit, max(1, config.max_uncommitted // 10))
        self._next_list_ms = 0
        self._next_log_ms = 0
        self._stop = threading.Event()
        self._coordinator: threading.Thread | None = None

    # --- caller's thread: never blocks on I/O -------------------------------------------------

    def poll(self, max_records: int) -> list[Delivery]:
        """Up to ``max_records`` deliveries: due replays and dead letters first, then new records."""
        out: list[Delivery] = []
        now = self._now_ms()
        with self._lock:
            while self._dead_letters and len(out) < max_records:
                out.append(self._dead_letters.popleft())
            for shard in self._shards.values():
                ledger = shard.ledger
                if ledger is None or len(out) >= max_records:
                    continue
                due_at = ledger.next_retry_ms()
                if due_at is not None and due_at <= now:
                    for item in ledger.due(now, max_records - len(out)):
                        if isinstance(item, DeadLetter):
                            out.append(Delivery(item.message_id, item.record, item.reason))
                        else:
                            shard.metrics.emitted += 1
                            out.append(Delivery(item.message_id, item))
            queue = self._queue
            shard_id = shard = gen = None
            while queue and len(out) < max_records:
                number, item = queue.popleft()
                if item.shard_id != shard_id:  # a page's records come one after another
                    shard_id = item.shard_id
                    shard = self._shards.get(shard_id)
                    gen = shard.gen if shard is not None else None
                if gen is None or gen.number != number or gen.refused:
                    # Queued by an earlier claim of the shard (dropped since): whoever reads the
                    # shard now reads it again from the checkpoint. Only the budget is given back.
                    if not isinstance(item, _ShardEnd):
                        self._uncommitted -= 1
                    continue
                if isinstance(item, _ShardEnd):
                    gen.all_emitted = True
                    continue
                try:
                    shard.ledger.emit(item)
                except ValueError as error:
                    # Out of order within one claim: never dropped silently, and never passed by
                    # a checkpoint of this claim. The coordinator drops the claim; the shard is
                    # read again from its last checkpoint.
                    self._uncommitted -= 1
                    gen.refused = True
                    gen.stop.set()
                    shard.metrics.read_errors += 1
                    log.error("shard %s: record refused (%s); reading the shard again from its checkpoint",
                              shard.shard_id, error)
                    continue
                shard.metrics.emitted += 1
                out.append(Delivery(item.message_id, item))
        return out

    def _owned(self, message_id: str):
        """(shard, position) of a message id this consumer holds a ledger for, else None.
        Call with the lock held."""
        parsed = _parse(message_id)
        if parsed is None:
            return None
        shard_id, position = parsed
        shard = self._shards.get(shard_id)
        if shard is None or shard.ledger is None:
            return None
        return shard, position

    def ack(self, message_id: str) -> None:
        """A record (or its dead letter, id ending ``|dead``) was fully processed downstream."""
        self.ack_all((message_id,))

    def ack_all(self, message_ids: Iterable[str]) -> None:
        """``ack`` of each id in turn, under one hold of the lock (a batch tuple's records)."""
        with self._lock:
            for message_id in message_ids:
                owned = self._owned(message_id)
                if owned is None or owned[1] not in owned[0].ledger:
                    continue
                shard, position = owned
                passed = shard.ledger.ack(position)
                self._uncommitted -= passed
                shard.metrics.acked += 1

    def fail(self, message_id: str) -> None:
        """A record failed downstream: replay it with backoff, or dead-letter it after the retries."""
        with self._lock:
            owned = self._owned(message_id)
            if owned is None:
                return
            shard, position = owned
            outcome = shard.ledger.fail(position, self._now_ms())
            if outcome is None:
                return
            shard.metrics.failed += 1
            if isinstance(outcome, DeadLetter):
                shard.metrics.dead_lettered += 1
                self._dead_letters.append(Delivery(outcome.message_id, outcome.record, outcome.reason))

    @property
    def uncommitted(self) -> int:
        return self._uncommitted

    def metrics(self) -> dict[str, ShardMetrics]:
        with self._lock:
            for shard in self._shards.values():
                ledger = shard.ledger
                counts = ledger.counts() if ledger is not None else {}
                shard.metrics.uncommitted = len(ledger) if ledger is not None else 0
                shard.metrics.in_flight = shard.metrics.uncommitted - counts.get("done", 0)
            return {sid: ShardMetrics(**vars(s.metrics)) for sid, s in self._shards.items()}

    def shard_states(self) -> dict[str, str]:
        with self._lock:
            return {sid: s.state for sid, s in self._shards.items()}

    # --- threads ------------------------------------------------------------------------------

    def start(self) -> None:
        self._coordinator = threading.Thread(target=self._coordinate_loop, name="kinesis-coordinator", daemon=True)
        self._coordinator.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the threads (waiting at most ``timeout_s`` in all), write a last checkpoint where
        possible and release the leases, so a successor starts at once. Idempotent."""
        deadline = time.monotonic() + timeout_s
        self._stop.set()
        generations = [shard.gen for shard in list(self._shards.values()) if shard.gen is not None]
        for gen in generations:
            gen.stop.set()
        threads = [self._coordinator] + [gen.thread for gen in generations]
        for thread in threads:
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
        try:
            self._write_checkpoints(self._now_ms(), force=True)
            for shard in list(self._shards.values()):
                if shard.state in (READING, FINISHING):
                    self._store.release(shard.shard_id, self._owner)
        except Exception as error:  # the store may be down at shutdown; leases then expire
            log.warning("final checkpoint failed: %s", error)

    def _coordinate_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.coordinate_once()
            except Exception:
                log.exception("kinesis coordinator step failed; retrying")
            self._stop.wait(0.05)

    def _fetch_loop(self, shard: _AssignedShard, gen: _Generation) -> None:
        """The fetcher of one claim: it ends with the claim (``gen.stop``), not with the shard."""
        while not (self._stop.is_set() or gen.stop.is_set() or gen.fetch_ended):
            wait_ms = gen.next_call_ms - self._now_ms()
            if wait_ms > 0:
                gen.stop.wait(min(wait_ms, 1000) / 1000)
                continue
            try:
                fetched = self._fetch(shard, gen)
            except Exception:  # a bug must not silently end this shard's reading
                log.exception("shard %s: fetch failed; retrying", shard.shard_id)
                fetched = False
            if not fetched:
                gen.stop.wait(0.01)  # at max_uncommitted: wait for acks

    def step(self) -> None:
        """Single-threaded drive (tests, tools): one coordination pass, then one fetch per shard."""
        self.coordinate_once()
        for shard_id, shard in list(self._shards.items()):
            if shard.state in (READING, FINISHING):
                self.fetch_once(shard_id)

    # --- fetching -----------------------------------------------------------------------------

    def fetch_once(self, shard_id: str) -> bool:
        """One GetRecords call for the shard if its pacing and the budget allow; False if not."""
        shard = self._shards[shard_id]
        gen = shard.gen  # the coordinator may drop the shard meanwhile
        return gen is not None and self._fetch(shard, gen)

    def _fetch(self, shard: _AssignedShard, gen: _Generation) -> bool:
        now = self._now_ms()
        if gen.stop.is_set() or gen.fetch_ended or now < gen.next_call_ms:
            return False
        with self._lock:
            reserve = min(self.config.get_records_limit, self.config.max_uncommitted - self._uncommitted)
            # Fetch in large chunks and only when the queue runs low: many small fetches would
            # keep taking the GIL from the thread that answers Storm (see docs/spout.md).
            if reserve <= 0 or (self._queue and (reserve < self._min_fetch
                                                 or len(self._queue) >= self.config.get_records_limit)):
                return False
            self._uncommitted += reserve
        try:
            fetch = gen.reader.step(reserve)
        except BaseException:
            with self._lock:
                self._uncommitted -= reserve
            raise
        with self._lock:
            if shard.gen is not gen or gen.stop.is_set():
                self._uncommitted -= reserve  # dropped while reading: the next claim reads these again
                return False
            # A KPL aggregate can hold more sub-records than reserved: the bound is then exceeded
            # by at most one fetch (documented in docs/spout.md).
            self._uncommitted += len(fetch.records) - reserve
            gen.next_call_ms = fetch.next_call_ms
            metrics = shard.metrics
            metrics.read += len(fetch.records)
            if fetch.millis_behind is not None:
                metrics.millis_behind_latest = fetch.millis_behind
            if fetch.throttled:
                metrics.throttled += 1
            elif fetch.error and fetch.error != "ExpiredIteratorException":
                metrics.read_errors += 1
            self._queue.extend((gen.number, record) for record in fetch.records)
            if fetch.records and shard.pin is None and shard.saved is None and shard.pin_start:
                # Before anything is acked, a restart would begin at LATEST (or the timestamp)
                # again and skip what this task fetched; checkpointing "at the first record
                # fetched" (sub-sequence -1: nothing of it is committed) pins the start.
                shard.pin = Position(fetch.records[0].seq, -1)
            if fetch.ended:
                gen.fetch_ended = True
                self._queue.append((gen.number, _ShardEnd(shard.shard_id)))
                if fetch.children:
                    self._next_list_ms = 0  # pick the children up at once
        return True

    # --- coordination -------------------------------------------------------------------------

    def coordinate_once(self) -> None:
        """List shards when due, start ready shards, write due checkpoints, finish ended shards."""
        now = self._now_ms()
        if now >= self._next_list_ms:
            try:
                self._list_shards()
                self._next_list_ms = now + self.config.list_shards_interval_ms
            except Exception as error:
                log.warning("ListShards failed (%s); retrying", error)
                self._next_list_ms = now + min(1000, self.config.list_shards_interval_ms)
        for shard in list(self._shards.values()):
            if shard.state == WAITING and now >= shard.next_try_ms:
                shard.next_try_ms = now + 250  # waiting children poll their parents' markers
                self._try_start(shard, now)
        self._write_checkpoints(now)
        if now >= self._next_log_ms:
            self._next_log_ms = now + 60_000
            for shard_id, m in sorted(self.metrics().items()):
                log.info("shard %s: read=%d emitted=%d acked=%d failed=%d dead=%d in_flight=%d uncommitted=%d "
                         "behind_ms=%s checkpoint=%s throttled=%d read_errors=%d checkpoint_errors=%d",
                         shard_id, m.read, m.emitted, m.acked, m.failed, m.dead_lettered, m.in_flight,
                         m.uncommitted, m.millis_behind_latest, m.last_checkpoint or "-", m.throttled,
                         m.read_errors, m.checkpoint_errors)

    def _list_shards(self) -> None:
        listed: list[dict] = []
        page = self.config.list_shards_page_size
        kwargs: dict = {"StreamName": self.config.stream, "MaxResults": page}
        while True:
            response = self._client.list_shards(**kwargs)
            listed.extend(response["Shards"])
            token = response.get("NextToken")
            if not token:
                break
            kwargs = {"NextToken": token, "MaxResults": page}  # AWS refuses StreamName with NextToken
        self._known_shards = {s["ShardId"] for s in listed}
        with self._lock:
            for raw in listed:
                shard_id = raw["ShardId"]
                if shard_id in self._shards or assigned_task(shard_id, self._task_count) != self._task_index:
                    continue
                parents = [p for p in (raw.get("ParentShardId"), raw.get("AdjacentParentShardId")) if p]
                closed = "EndingSequenceNumber" in raw.get("SequenceNumberRange", {})
                self._shards[shard_id] = _AssignedShard(shard_id, parents, closed)

    def _try_start(self, shard: _AssignedShard, now: int) -> None:
        try:
            checkpoint = self._store.load(shard.shard_id)
            if checkpoint is not None and checkpoint.ended:
                shard.state = DONE
                shard.saved = checkpoint.position
                return
            # A child is read only once every parent (still listed) is checkpointed at SHARD_END.
            lineage = [self._store.load(p) for p in shard.parents if p in self._known_shards]
            if any(c is None or not c.ended for c in lineage):
                return
            if not self._store.claim(shard.shard_id, self._owner, now, self.config.lease_ms):
                return
        except Exception as error:
            log.warning("shard %s: cannot start yet (%s)", shard.shard_id, error)
            return
        start = self._start_position(checkpoint, has_parents=bool(lineage))
        reader = ShardReader(self._client, self.config.stream, shard.shard_id, start,
                             now_ms=self._now_ms, idle_poll_ms=self.config.idle_poll_ms)
        with self._lock:
            gen = _Generation(next(self._generations), reader)
            shard.ledger = ShardLedger(shard.shard_id, self._policy)
            shard.gen = gen
            if checkpoint is not None:
                shard.saved, shard.saved_complete = checkpoint.position, checkpoint.complete
                shard.metrics.last_checkpoint = _show(checkpoint.position)
            shard.pin_start = start.kind in ("LATEST", "AT_TIMESTAMP")
            shard.next_save_ms = now + self.config.checkpoint_interval_ms
            shard.state = READING
        log.info("shard %s: reading from %s", shard.shard_id, start.kind)
        if self._coordinator is not None and not self._stop.is_set():
            gen.thread = threading.Thread(target=self._fetch_loop, args=(shard, gen),
                                          name=f"kinesis-{shard.shard_id}", daemon=True)
            gen.thread.start()

    def _start_position(self, checkpoint: Checkpoint | None, has_parents: bool) -> StartPosition:
        if checkpoint is not None and checkpoint.position is not None:
            position = checkpoint.position
            if checkpoint.complete:
                return StartPosition("AFTER_SEQUENCE_NUMBER", seq=position.seq)
            return StartPosition("AT_SEQUENCE_NUMBER", seq=position.seq, skip_through=position)
        if has_parents:
            return StartPosition("TRIM_HORIZON")
        return StartPosition(self.config.start_position, timestamp=self.config.start_datetime())

    def _write_checkpoints(self, now: int, force: bool = False) -> None:
        for shard in list(self._shards.values()):
            if shard.state not in (READING, FINISHING):
                continue
            with self._lock:
                if shard.gen.refused:  # poll refused a record of this claim: nothing of it is saved
                    self._drop_locked(shard)
                    continue
                if now < shard.next_save_ms and not force:
                    continue
                point = shard.ledger.committable()
                position, complete = point if point is not None else (shard.saved, shard.saved_complete)
                if position is None and shard.pin is not None:
                    position, complete = shard.pin, False
                finished = shard.gen.all_emitted and len(shard.ledger) == 0
            try:
                result = self._store.save(shard.shard_id, self._owner, position, complete, ended=finished,
                                          now_ms=now, lease_ms=self.config.lease_ms)
            except Exception as error:
                # Keep every in-flight record and retry soon; the lease outlives a short outage.
                shard.save_failures += 1
                shard.metrics.checkpoint_errors += 1
                shard.next_save_ms = now + min(self.config.checkpoint_interval_ms, 250 * 2 ** min(shard.save_failures, 4))
                log.warning("shard %s: checkpoint write failed (%s); will retry", shard.shard_id, error)
                continue
            shard.save_failures = 0
            shard.next_save_ms = now + self.config.checkpoint_interval_ms
            if result == NOT_OWNER:
                log.error("shard %s: lease taken by another owner; dropping the shard", shard.shard_id)
                self._drop(shard)
                continue
            if result == STALE:
                # The store is past this claim: another owner checkpointed further, or ended the
                # shard, while this task's lease had lapsed (a stall longer than lease_ms). No
                # save of this claim can succeed (a finishing shard used to retry every 100 ms
                # for ever) and the lease is not renewed: drop the claim. Claiming again starts
                # from the store's checkpoint, or finds the shard ended.
                log.warning("shard %s: checkpoint %s is behind the store's; reading again from the store's",
                            shard.shard_id, _show(position))
                self._drop(shard)
                continue
            shard.saved, shard.saved_complete = position, complete
            shard.metrics.last_checkpoint = _show(position) + (" SHARD_END" if finished else "")
            if finished:
                shard.state = DONE
                shard.gen.stop.set()
                self._next_list_ms = 0
                for other in self._shards.values():
                    if shard.shard_id in other.parents:
                        other.next_try_ms = 0  # a local child may start now
                log.info("shard %s: finished at SHARD_END", shard.shard_id)
            elif shard.gen.all_emitted:
                shard.state = FINISHING
                shard.next_save_ms = min(shard.next_save_ms, now + 100)

    def _drop(self, shard: _AssignedShard) -> None:
        with self._lock:
            self._drop_locked(shard)

    def _drop_locked(self, shard: _AssignedShard) -> None:
        """End the current claim: its fetcher stops, its books and budget go; the shard waits to
        be claimed again. What its fetcher queued is discarded by poll (its generation is gone)."""
        if shard.gen is not None:
            shard.gen.stop.set()
        if shard.ledger is not None:
            self._uncommitted -= len(shard.ledger)
        shard.ledger = None
        shard.gen = None
        shard.state = WAITING


def _parse(message_id) -> tuple[str, Position] | None:
    try:
        return parse_message_id(str(message_id).removesuffix("|dead"))
    except ValueError:
        log.warning("ignoring a tuple id this spout never emitted: %r", message_id)
        return None


def _show(position: Position | None) -> str:
    return "" if position is None else f"{position.seq}/{position.subseq}"


def build_consumer(config: KinesisConfig, task_index: int, task_count: int) -> Consumer:
    """The production wiring: a boto3 client and Redis checkpoints.

    The client makes one attempt per call (the consumer's own per-shard backoff decides) with
    short timeouts, and reads GetRecords answers with orjson (``pistats.kinesis.get_records``);
    credentials come from the default AWS chain (see ``pistats.kinesis.client``).
    """
    from pistats.kinesis.checkpoint import RedisCheckpointStore
    from pistats.redisconn import RedisTarget, connect

    client = make_kinesis_client(config.endpoint_url, config.region, retries=False,
                            connect_timeout_s=config.connect_timeout_s, read_timeout_s=config.read_timeout_s,
                            max_pool_connections=64, fast_get_records=True)
    if config.fault_plan:
        from pistats.testing.faults import FaultyKinesis, parse_fault_plan

        log.warning("chaos: injecting Kinesis faults %s", config.fault_plan)
        client = FaultyKinesis(client)
        for fault in parse_fault_plan(config.fault_plan):
            client.add(fault)
    redis_target = RedisTarget.parse(config.redis_url)
    connection = connect(redis_target, connect_timeout_s=2, socket_timeout_s=2)
    store = RedisCheckpointStore(connection, config.app_name, config.stream, wait_replicas=redis_target.wait_replicas)
    return Consumer(config, client, store, task_index=task_index, task_count=task_count)
