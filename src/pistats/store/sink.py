"""The batching sink: events and rejects in, batched inserts out, and which tuples to ack or fail.

Ack contract: a tuple (one micro-batch of rows) id appears in ``Settled.acked`` only after the
inserts holding all its rows returned; if an insert keeps failing for ``retry_budget_s`` the ids
of every tuple with a row in it appear in ``Settled.failed`` (the spout replays them). A replayed
or retried row collapses in the ReplacingMergeTree (``FINAL``), and on servers with
``insert_deduplication_token`` a retried batch is not even stored twice.

An event the store cannot hold (see ``pistats.store.rows``) is stored as a reject instead and its
tuple is acked with the rejects batch: a data failure is a value, not a replay loop. The same
holds for rows the store itself refuses for their data (``pistats.store.refusal``): the batch is
split until the refused rows are found, they are stored as ``store_refused`` rejects and the
others as usual; the batch's tuples are acked once both are stored. Each row has one outcome:
stored in its table, or a reject.

Inserts run on a writer thread (``pistats.store.inflight``) while the caller keeps adding rows:
a full batch is encoded in the caller's thread, handed over, and its tuples settle in a later
call (``add_*`` collects what has finished without waiting; ``tick`` and ``flush_all`` wait for
every insert in flight). With ``inserts_in_flight = 0`` inserts run in the caller's thread and
settle in the call that flushed them.

Retries can still block the caller: a full batch waits while the previous insert retries, and a
tick waits for it. The bolt answers no heartbeat meanwhile, so ``retry_budget_s`` plus one
insert's timeout must stay below Storm's subprocess timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pistats.errors import ConfigError
from pistats.store.backends import SendInsert, Store, StoreError, StoreRefused
from pistats.store.batch import Accumulator, Batch, PendingTuples
from pistats.store.config import SinkConfig, StoreURL
from pistats.store.inflight import InsertPipeline
from pistats.store.refusal import Isolation, Refused, isolate_refused
from pistats.store.rows import (
    RowError,
    event_key,
    event_row,
    event_rows_columnar,
    event_rows_from_columns,
    reject_for_event,
    reject_for_refused_row,
    reject_key,
    reject_row,
)
from pistats.retry import retry_within
from pistats.store.schema import EVENTS, REJECTS, TABLE_COLUMNS
from pistats.wire import PackedColumns, PackedRows, WireError, unpack_batch

log = logging.getLogger(__name__)


@dataclass
class Settled:
    """Tuple ids to ack (their rows are stored) and to fail (their batch could not be stored)."""

    acked: list = field(default_factory=list)
    failed: list = field(default_factory=list)

    def extend(self, other: "Settled") -> "Settled":
        self.acked.extend(other.acked)
        self.failed.extend(other.failed)
        return self


@dataclass
class SinkStats:
    rows_inserted: int = 0
    batches_inserted: int = 0
    batches_failed: int = 0
    insert_errors: int = 0
    events_rejected_by_sink: int = 0
    rows_refused: int = 0  # rows the store refused, stored as store_refused rejects instead
    bisect_inserts: int = 0  # inserts made to find the refused rows of a batch
    # Time from a batch's first insert to every row having an outcome (retries included), for
    # `pistats status`: the sum, and the longest since the last publish (which resets it).
    insert_ms_total: float = 0.0
    insert_ms_max: float = 0.0


@dataclass(frozen=True)
class Written:
    """What became of a batch's rows once every one of them has an outcome: ``stored`` in the
    batch's table, or ``refused`` by the store for their data and stored as rejects instead;
    ``bisect_inserts`` is what finding the refused rows cost."""

    stored: int
    refused: int = 0
    bisect_inserts: int = 0


class Sink:
    """Two accumulators (events, rejects) in front of a store.

    ``now`` is a monotonic clock in seconds (batch age, retry budget); ``wall_clock`` gives the
    ``rejected_at`` of rejects the sink creates; ``sleep`` waits between retries.
    """

    def __init__(
        self,
        store: Store,
        config: SinkConfig | None = None,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ):
        self.store = store
        self.config = config or SinkConfig()
        self._now = now
        self._wall_clock = wall_clock
        self.stats = SinkStats()
        self._accumulators = {
            table: Accumulator(table, self.config.max_rows, self.config.max_bytes, self.config.max_age_s)
            for table in (EVENTS, REJECTS)
        }
        self._events, self._rejects = self._accumulators[EVENTS], self._accumulators[REJECTS]
        self._tuples = PendingTuples()
        self._inserts: InsertPipeline[tuple[Batch, SendInsert], Written | None] = InsertPipeline(
            _Writer(store, self.config, self.stats, now, sleep, wall_clock), self.config.inserts_in_flight)

    def pending(self, table: str) -> int:
        return len(self._accumulators[table])

    @property
    def pending_rows(self) -> int:
        return sum(len(accumulator) for accumulator in self._accumulators.values())

    @property
    def inserts_in_flight(self) -> int:
        return len(self._inserts)

    def add_events(self, tuple_id: Hashable, events: Sequence[Mapping | None] | PackedRows | PackedColumns
                   ) -> Settled:
        """Queue the enriched events of one tuple; returns what got settled meanwhile (by this
        call's flushes, or by inserts that finished on the writer thread)."""
        if isinstance(events, (PackedColumns, PackedRows)):
            if isinstance(events, PackedColumns):
                converted = event_rows_from_columns(events.fields, events.columns, self.config.max_string_chars)
            else:
                converted = event_rows_columnar(events.fields, events.values, self.config.max_string_chars)
            if converted is not None:
                return self._add_plain_events(tuple_id, *converted)
            events = events.as_dicts()  # something in it needs a repair or is a reject: row by row
        return self._add_tuple(tuple_id, events, self._add_event)

    def add_rejects(self, tuple_id: Hashable, rejects: Sequence[Mapping | None] | PackedRows | PackedColumns
                    ) -> Settled:
        """Queue the rejects (dead letters) of one tuple; returns what got settled meanwhile."""
        if isinstance(rejects, (PackedColumns, PackedRows)):
            rejects = rejects.as_dicts()
        return self._add_tuple(tuple_id, rejects, self._add_reject)

    def _add_plain_events(self, tuple_id: Hashable, rows: list[tuple], sizes: list[int]) -> Settled:
        """The rows of a tuple whose events all converted without repairs, added in bulk with
        the same bounds as one by one."""
        settled = Settled(acked=self._tuples.expect(tuple_id, len(rows)))
        keys = list(map(event_key, rows))
        accumulator, start = self._events, 0
        while start < len(rows):
            start += accumulator.add_many(tuple_id, rows, keys, sizes, start, self._now())
            if start < len(rows) or accumulator.full:
                settled.extend(self._flush(accumulator))
        return settled.extend(self._settle(self._inserts.finished()))

    def _add_tuple(self, tuple_id: Hashable, items: Sequence[Mapping | None],
                   add_one: Callable[[Hashable, Mapping | None, Settled], None]) -> Settled:
        settled = Settled(acked=self._tuples.expect(tuple_id, len(items)))
        for item in items:
            add_one(tuple_id, item, settled)
        return settled.extend(self._settle(self._inserts.finished()))

    def add_event(self, tuple_id: Hashable, event: Mapping | None) -> Settled:
        """``add_events`` of a tuple holding one event."""
        return self.add_events(tuple_id, [event])

    def add_reject(self, tuple_id: Hashable, reject: Mapping | None) -> Settled:
        """``add_rejects`` of a tuple holding one reject."""
        return self.add_rejects(tuple_id, [reject])

    # The per-item steps below add what flushes settle to the caller's ``settled``: one Settled
    # per tuple rather than per row, since this runs for every row.
    def _add_event(self, tuple_id: Hashable, event: Mapping | None, settled: Settled) -> None:
        try:
            row, nbytes = event_row(event, self.config.max_string_chars)
        except RowError as error:
            self.stats.events_rejected_by_sink += 1
            log.warning("event not storable (%s): stored as a reject", error)
            self._add_reject(tuple_id, reject_for_event(event, error, self._wall_clock()), settled)
            return
        self._add(self._events, tuple_id, row, event_key(row), nbytes, settled)

    def _add_reject(self, tuple_id: Hashable, reject: Mapping | None, settled: Settled) -> None:
        row, nbytes = reject_row(reject, self.config.max_string_chars, self._wall_clock())
        self._add(self._rejects, tuple_id, row, reject_key(row), nbytes, settled)

    def _add(self, accumulator: Accumulator, tuple_id: Hashable, row: tuple, key: str, nbytes: int,
             settled: Settled) -> None:
        if not accumulator.fits(nbytes):
            settled.extend(self._flush(accumulator))
        accumulator.add(tuple_id, row, key, nbytes, self._now())
        if accumulator.full:
            settled.extend(self._flush(accumulator))

    def tick(self) -> Settled:
        """Flush every table whose batch is old enough, then wait for every insert in flight
        (call on each tick tuple: no tuple waits for its ack much longer than a tick)."""
        settled = Settled()
        now = self._now()
        for accumulator in self._accumulators.values():
            if accumulator.due(now):
                settled.extend(self._flush(accumulator))
        return settled.extend(self._settle(self._inserts.wait_all()))

    def flush_all(self) -> Settled:
        """Flush everything pending, whatever its age, and wait for it (shutdown, tests, the CLI)."""
        settled = Settled()
        for accumulator in self._accumulators.values():
            settled.extend(self._flush(accumulator))
        return settled.extend(self._settle(self._inserts.wait_all()))

    def _flush(self, accumulator: Accumulator) -> Settled:
        """Encode the accumulated batch here and hand it to the writer; settles only a batch
        that cannot be encoded (inserts settle when collected)."""
        batch = accumulator.take()
        if batch is None:
            return Settled()
        try:
            send = self.store.prepare_insert(batch.table, batch.rows)
        except StoreError as error:
            log.error("batch of %d rows for %s cannot be encoded, failing tuples: %s", len(batch), batch.table, error)
            return self._settle([((batch, None), None)])
        self._inserts.submit((batch, send))
        return Settled()

    def _settle(self, results: list[tuple[tuple[Batch, SendInsert | None], Written | None]]) -> Settled:
        settled = Settled()
        for (batch, _), written in results:
            if written is not None:
                self.stats.rows_inserted += written.stored
                self.stats.rows_refused += written.refused
                self.stats.bisect_inserts += written.bisect_inserts
                self.stats.batches_inserted += 1
                settled.acked.extend(self._tuples.stored(batch.tuple_ids))
            else:
                self.stats.batches_failed += 1
                settled.failed.extend(self._tuples.failed(batch.tuple_ids))
        return settled


class _Writer:
    """Writes one batch on the writer thread until every row has an outcome, or gives up.

    A failure is retried with exponential backoff within ``retry_budget_s``, one budget for
    everything the batch needs (its insert, the inserts that find refused rows, their rejects);
    once it is spent the batch fails (None) and its tuples are replayed. The job thus lasts the
    budget plus the insert under way when it ran out (and its rejects'), about what
    ``check_heartbeat_budget`` assumes. A refusal is not
    retried: ``isolate_refused`` splits the batch (at most ``max_bisect_inserts`` more inserts,
    tokens derived from the batch's, so a retried or replayed batch sends the same inserts), and
    the refused rows go to ``events_rejected`` as ``store_refused`` rejects. A reject the store
    refuses is stored again without its payload; if the store refuses even that, the batch
    fails. The writer holds the store (to encode the split parts) and never the sink; it
    touches only ``stats.insert_errors``.
    """

    def __init__(self, store: Store, config: SinkConfig, stats: SinkStats, now: Callable[[], float],
                 sleep: Callable[[float], None], wall_clock: Callable[[], datetime]):
        self._store = store
        self._config = config
        self._stats = stats
        self._now = now
        self._sleep = sleep
        self._wall_clock = wall_clock

    def __call__(self, job: tuple[Batch, SendInsert]) -> Written | None:
        batch, send = job
        started = self._now()
        deadline = started + self._config.retry_budget_s
        try:
            found = self._store_rows(batch.table, batch.rows, batch.token, deadline, send)
            if found.refused:
                self._store_refused(batch.table, batch.rows, found.refused, batch.token, deadline)
        except StoreError as error:
            self._stats.insert_errors += 1
            log.error("insert of %d rows into %s failed for %g s, failing tuples: %s",
                      len(batch), batch.table, self._config.retry_budget_s, error)
            return None
        elapsed_ms = (self._now() - started) * 1000
        self._stats.insert_ms_total += elapsed_ms
        self._stats.insert_ms_max = max(self._stats.insert_ms_max, elapsed_ms)
        return Written(found.stored, sum(map(len, found.refused)), found.inserts)

    def _store_rows(self, table: str, rows: Sequence[tuple], token: str, deadline: float,
                    send: SendInsert | None = None) -> Isolation:
        """Insert the rows; when the store refuses them, find which by bisection. Raises
        StoreError when a failure outlasts the retry budget."""
        refusal = self._send(table, len(rows), send or self._store.prepare_insert(table, rows), token, deadline)
        if refusal is None:
            return Isolation(len(rows), (), 0)
        log.warning("the store refused %d rows for %s, finding which: %s", len(rows), table, refusal.detail)

        def insert(start: int, stop: int) -> str | None:
            # The budget bounds the whole job, so that the bolt waiting for it (a full batch, a
            # tick) still answers Storm's heartbeats in time: past it the batch fails and is
            # replayed rather than split further.
            if self._now() > deadline:
                raise StoreError(f"retry budget of {self._config.retry_budget_s:g} s spent finding the refused rows")
            part = rows[start:stop]
            answer = self._send(table, len(part), self._store.prepare_insert(table, part),
                                f"{token}:{start}-{stop}", deadline)
            return None if answer is None else answer.detail

        return isolate_refused(len(rows), refusal.detail, insert, self._config.max_bisect_inserts)

    def _store_refused(self, table: str, rows: Sequence[tuple], refused: tuple[Refused, ...], token: str,
                       deadline: float) -> None:
        """Store the refused rows of ``table`` as store_refused rejects (with their payload,
        unless they are rejects themselves)."""
        now = self._wall_clock()
        columns, keep_raw = TABLE_COLUMNS[table], table != REJECTS
        rejects = [
            reject_row(reject_for_refused_row(columns, row, part.message, len(part), now, keep_raw),
                       self._config.max_string_chars, now)[0]
            for part in refused for row in rows[part.start:part.stop]
        ]
        log.error("the store refused %d rows of %s for their data: stored as store_refused rejects (first: %s)",
                  len(rejects), table, refused[0].message)
        found = self._store_rows(REJECTS, rejects, f"{token}:refused", deadline)
        if not found.refused:
            return
        if table == REJECTS:
            raise StoreError(f"the store refused {sum(map(len, found.refused))} store_refused rejects without "
                             f"payload: {found.refused[0].message}")
        self._store_refused(REJECTS, rejects, found.refused, f"{token}:refused", deadline)

    def _send(self, table: str, rows: int, send: SendInsert, token: str, deadline: float) -> StoreRefused | None:
        """Send until it returns (None) or the store refuses the rows (the refusal, not retried);
        other failures are retried until ``deadline`` and then raised."""

        def attempt() -> StoreRefused | None:
            try:
                send(token)
            except StoreRefused as refusal:
                return refusal
            return None

        def retrying(error: BaseException, attempt_number: int, wait: float) -> None:
            self._stats.insert_errors += 1
            log.warning("insert of %d rows into %s failed (attempt %d), retrying: %s", rows, table, attempt_number, error)

        return retry_within(attempt, retry_on=StoreError, budget_s=max(0.0, deadline - self._now()),
                            initial_delay_s=self._config.backoff_initial_s, max_delay_s=self._config.backoff_max_s,
                            monotonic=self._now, sleep=self._sleep, on_retry=retrying)


def subprocess_timeout_s(options: Mapping) -> float:
    """How long Storm waits for a heartbeat reply before killing the bolt's process."""
    for key in ("topology.subprocess.timeout.secs", "supervisor.worker.timeout.secs"):
        if options.get(key) is not None:
            return float(options[key])
    return 30.0


def check_heartbeat_budget(config: SinkConfig, url: StoreURL, options: Mapping) -> None:
    """Refuse a configuration whose longest flush could outlast Storm's heartbeat timeout.

    The longest flush is the retry budget plus one more attempt (connect and send/receive
    timeouts of a server; chdb inserts are in-process and have no such timeout).
    """
    attempt_s = 0.0 if url.scheme == "chdb" else url.connect_timeout + url.send_receive_timeout
    limit_s = subprocess_timeout_s(options)
    if config.retry_budget_s + attempt_s >= limit_s:
        raise ConfigError(
            "pistats.sink.retry_budget_s",
            f"{config.retry_budget_s:g} s + one insert attempt {attempt_s:g} s must stay below Storm's "
            f"subprocess timeout {limit_s:g} s (lower it or the store URL's timeouts)",
        )


def tuple_payloads(values) -> list[Mapping | None] | PackedRows | PackedColumns:
    """The events or rejects of a tuple's first field: a batch packed by
    ``pistats.wire.pack_columns`` (what the enrich bolt emits) or ``pack_rows`` (the spout's
    rejects), kept packed, or a list or one object. Anything unreadable becomes one None, which
    the sink stores as a ``schema`` reject rather than crashing on."""
    if not values:
        return [None]
    value = values[0]
    if isinstance(value, str):
        try:
            return unpack_batch(value)
        except WireError:
            return [None]
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, list):
        return [item if isinstance(item, Mapping) else None for item in value]
    return [None]


def sink_from_topology_conf(conf: Mapping, env: Mapping[str, str]) -> Sink:
    """Open the store a Storm topology conf names (:meth:`StoreURL.from_topology_conf`), bring its
    schema up to date and return a sink configured by ``pistats.sink``. A migration that copies
    stored data is left to ``pistats store init`` (PistatsError): other sink tasks may be writing
    while this one starts."""
    from pistats.store.backends import open_store
    from pistats.store.schema import migrate

    config = SinkConfig.from_topology_conf(conf)
    url = StoreURL.from_topology_conf(conf, env)
    check_heartbeat_budget(config, url, conf)
    store = open_store(url)
    migrate(store, copy_data=False)
    log.info("sink writing to %s (server %s)", store.url.redacted, store.server_version)
    return Sink(store, config)
