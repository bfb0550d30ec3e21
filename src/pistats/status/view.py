"""``pistats status``: how far behind a running topology is, and how fast it goes, in one view.

Two sources, both readable while the topology runs (the chdb store is not: one process per path):
- **the stream and the checkpoints**: per shard, the committed checkpoint (Redis), and from
  Kinesis the records after it (one ``GetRecords`` from the checkpoint, up to ``count_up_to``
  records, so a probe costs one call per shard and bounded memory) and the age of the oldest of
  them: how far the checkpoint is behind the tip, in records and milliseconds;
- **what the tasks publish** (``pistats.status.publish``): per shard, records read and finished
  per second, in flight, failed, dead letters, the spout's ``MillisBehindLatest`` (its read
  position); per sink task, rows and batches stored per second, failed batches, pending rows,
  the insert latency.

A shard closed by a reshard and finished (its checkpoint marked ended) is shown as done and not
probed.

With ``arrivals_window_s`` (the autoscaler's), each open shard is also probed at its tip: one
``GetRecords`` from ``AT_TIMESTAMP`` that long ago, up to ``count_up_to`` records, gives the
records per second written to it lately (``arrived_per_s``), which no count behind a checkpoint
can say once it stops at its limit or while a backlog drains.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone

import orjson

from pistats.kinesis.admin import list_all_shards
from pistats.kinesis.checkpoint import Checkpoint, RedisCheckpointStore
from pistats.redisconn import get_values
from pistats.status.publish import status_prefix
from pistats.status.tasks import SINK, SPOUT

DEFAULT_COUNT_UP_TO = 10_000
MAX_COUNT_UP_TO = 10_000  # GetRecords' own limit: one call per shard
# A full arrivals page whose records all arrived within this of the window's start still measures a
# rate, not a division by almost nothing.
MIN_ARRIVALS_SPAN_S = 0.1


@dataclass(frozen=True)
class ShardStatus:
    shard_id: str
    state: str  # "open", "closed" (a reshard closed it, records remain) or "done"
    checkpoint: str  # "sequence[/sub-sequence]", or "" before the first checkpoint
    owner: str
    behind_records: int | None  # None: not probed (done) or the probe failed
    behind_exact: bool  # False: at least behind_records (the probe stopped at its limit)
    behind_ms: int | None  # age of the oldest record after the checkpoint; 0 when caught up
    probe_error: str = ""
    read_per_s: float | None = None
    finished_per_s: float | None = None
    in_flight: int | None = None
    failed: int | None = None
    dead_letters: int | None = None
    read_behind_ms: int | None = None  # the spout's MillisBehindLatest (its read position)
    arrived_per_s: float | None = None  # records/s written lately; None: not probed (see above)


@dataclass(frozen=True)
class SinkTaskStatus:
    task: int
    rows_per_s: float
    batches_per_s: float
    rows_stored: int
    batches_failed: int
    insert_errors: int
    rows_refused: int
    pending_rows: int
    inserts_in_flight: int
    insert_ms_mean: float | None
    insert_ms_max: float | None


@dataclass(frozen=True)
class StatusView:
    app: str
    stream: str
    at: float
    shards: list[ShardStatus]
    sinks: list[SinkTaskStatus]
    spout_tasks: int
    problems: list[str] = field(default_factory=list)
    # CPU the tasks spent publishing over the CPU of their processes (None: nothing published).
    publishing_cpu_share: float | None = None

    @property
    def behind_records(self) -> int:
        return sum(s.behind_records or 0 for s in self.shards)

    @property
    def behind_ms(self) -> int:
        return max((s.behind_ms or 0 for s in self.shards), default=0)

    @property
    def behind_exact(self) -> bool:
        """Every shard still read was counted to the tip (none stopped at the limit or failed)."""
        return all(s.behind_exact for s in self.shards if s.state != "done")

    @property
    def arrived_per_s(self) -> float | None:
        """Records/s written to the stream lately, when every open shard's arrivals were probed."""
        rates = [s.arrived_per_s for s in self.shards if s.state == "open"]
        return None if not rates or None in rates else sum(rates)

    def as_json(self) -> dict:
        document = asdict(self)
        document["behind_records"] = self.behind_records
        document["behind_ms"] = self.behind_ms
        return document


def read_published(redis_client, app: str, stream: str) -> list[dict]:
    """Every live task's published figures (expired tasks have dropped out)."""
    keys = sorted(redis_client.scan_iter(match=status_prefix(app, stream) + "*", count=1000))
    documents = []
    for raw in get_values(redis_client, keys):
        if raw:
            try:
                documents.append(orjson.loads(raw))
            except orjson.JSONDecodeError:
                continue
    return documents


def probe_shard(kinesis, stream: str, shard_id: str, checkpoint: Checkpoint | None, count_up_to: int,
                wall: Callable[[], float]) -> tuple[int, bool, int]:
    """Records after the checkpoint (up to ``count_up_to``), whether that count is exact, and the
    age in ms of the oldest of them (0 when there are none)."""
    if checkpoint is None or checkpoint.position is None:
        args = {"ShardIteratorType": "TRIM_HORIZON"}
    else:
        kind = "AFTER_SEQUENCE_NUMBER" if checkpoint.complete else "AT_SEQUENCE_NUMBER"
        args = {"ShardIteratorType": kind, "StartingSequenceNumber": str(checkpoint.position.seq)}
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard_id, **args)["ShardIterator"]
    page = kinesis.get_records(ShardIterator=iterator, Limit=count_up_to)
    records = page.get("Records", [])
    # The page reached the tip when nothing is left behind it; a full page may have more after it.
    exact = len(records) < count_up_to and not page.get("MillisBehindLatest")
    age_ms = 0
    if records:
        arrival = records[0].get("ApproximateArrivalTimestamp")
        if isinstance(arrival, datetime):
            age_ms = max(0, int((wall() - arrival.timestamp()) * 1000))
    return len(records), exact, age_ms


def probe_arrivals(kinesis, stream: str, shard_id: str, window_s: float, count_up_to: int,
                   wall: Callable[[], float]) -> float:
    """Records per second written to the shard over the last ``window_s``. A page that stops at
    its limit gives the rate from the window's start to its last record."""
    start = wall() - window_s
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard_id, ShardIteratorType="AT_TIMESTAMP",
                                          Timestamp=datetime.fromtimestamp(start, timezone.utc))["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator, Limit=count_up_to).get("Records", [])
    if len(records) < count_up_to:
        return len(records) / window_s
    last = records[-1].get("ApproximateArrivalTimestamp")
    span = last.timestamp() - start if isinstance(last, datetime) else window_s
    return len(records) / max(span, MIN_ARRIVALS_SPAN_S)


def collect(kinesis, redis_client, app: str, stream: str, *, count_up_to: int = DEFAULT_COUNT_UP_TO,
            arrivals_window_s: float | None = None, wall: Callable[[], float] = time.time) -> StatusView:
    if not 1 <= count_up_to <= MAX_COUNT_UP_TO:
        raise ValueError(f"count_up_to must be in 1..{MAX_COUNT_UP_TO}")
    checkpoints = RedisCheckpointStore(redis_client, app, stream)
    published = read_published(redis_client, app, stream)
    spout_shards: dict[str, dict] = {}
    for document in published:
        if document.get("component") == SPOUT:
            for shard_id, counters in document.get("counters", {}).items():
                spout_shards[shard_id] = {"counters": counters, "per_s": document.get("per_s", {}).get(shard_id, {}),
                                          "gauges": document.get("gauges", {}).get(shard_id, {})}
    problems = []
    shards = []
    for listed in list_all_shards(kinesis, stream):
        shard_id = listed["ShardId"]
        checkpoint = checkpoints.load(shard_id)
        closed = "EndingSequenceNumber" in listed.get("SequenceNumberRange", {})
        state = "done" if checkpoint is not None and checkpoint.ended else ("closed" if closed else "open")
        behind, exact, age, error = None, False, None, ""
        if state != "done":
            try:
                behind, exact, age = probe_shard(kinesis, stream, shard_id, checkpoint, count_up_to, wall)
            except Exception as failure:  # noqa: BLE001 - one shard's probe failing is shown, not fatal
                error = type(failure).__name__
                problems.append(f"shard {shard_id}: probe failed ({error})")
        shards.append(_shard_status(shard_id, state, checkpoint, behind, exact, age, error, spout_shards.get(shard_id)))
    if arrivals_window_s is not None:
        shards = [_with_arrivals(kinesis, stream, s, arrivals_window_s, count_up_to, wall, problems) for s in shards]
    sinks = [_sink_status(d) for d in published if d.get("component") == SINK]
    spout_tasks = sum(1 for d in published if d.get("component") == SPOUT)
    if not published:
        problems.append("no task has published figures: is the topology running with this app name and stream?")
    process_cpu = sum(d.get("process_cpu_s", 0.0) for d in published)
    share = sum(d.get("status_cpu_s", 0.0) for d in published) / process_cpu if process_cpu else None
    return StatusView(app, stream, wall(), shards, sorted(sinks, key=lambda s: s.task), spout_tasks, problems,
                      share)


def _with_arrivals(kinesis, stream, shard: ShardStatus, window_s, count_up_to, wall, problems) -> ShardStatus:
    if shard.state != "open":
        return shard
    try:
        return replace(shard, arrived_per_s=probe_arrivals(kinesis, stream, shard.shard_id, window_s, count_up_to, wall))
    except Exception as failure:  # noqa: BLE001 - shown, and the rate stays unknown
        problems.append(f"shard {shard.shard_id}: arrivals probe failed ({type(failure).__name__})")
        return shard


def _shard_status(shard_id, state, checkpoint, behind, exact, age, error, spout) -> ShardStatus:
    position = checkpoint.position if checkpoint is not None else None
    shown = "" if position is None else (str(position.seq) + (f"/{position.subseq}" if position.subseq else ""))
    figures = {}
    if spout:
        counters, per_s = spout["counters"], spout["per_s"]
        figures = dict(read_per_s=per_s.get("read"), finished_per_s=per_s.get("acked"),
                       in_flight=spout["gauges"].get("in_flight"), failed=counters.get("failed"),
                       dead_letters=counters.get("dead_lettered"),
                       read_behind_ms=spout["gauges"].get("millis_behind_latest"))
    return ShardStatus(shard_id, state, shown, checkpoint.owner if checkpoint else "", behind, exact, age, error,
                       **figures)


def _sink_status(document: dict) -> SinkTaskStatus:
    counters = document.get("counters", {}).get("sink", {})
    per_s = document.get("per_s", {}).get("sink", {})
    gauges = document.get("gauges", {})
    inserts = counters.get("batches_inserted", 0)
    total_ms = counters.get("insert_ms_total", 0.0)
    return SinkTaskStatus(
        task=int(document.get("task", 0)),
        rows_per_s=per_s.get("rows_inserted", 0.0),
        batches_per_s=per_s.get("batches_inserted", 0.0),
        rows_stored=counters.get("rows_inserted", 0),
        batches_failed=counters.get("batches_failed", 0),
        insert_errors=counters.get("insert_errors", 0),
        rows_refused=counters.get("rows_refused", 0),
        pending_rows=gauges.get("pending_rows", 0),
        inserts_in_flight=gauges.get("inserts_in_flight", 0),
        insert_ms_mean=round(total_ms / inserts, 1) if inserts else None,
        insert_ms_max=gauges.get("insert_ms_max"),
    )


def render_text(view: StatusView) -> str:
    def number(value, suffix=""):
        return "-" if value is None else f"{value:,.0f}{suffix}" if isinstance(value, float) else f"{value:,}{suffix}"

    lines = [f"stream {view.stream} (app {view.app}): behind {view.behind_records:,} records, "
             f"{view.behind_ms / 1000:.1f} s; {view.spout_tasks} spout task(s), {len(view.sinks)} sink task(s)"]
    header = ("shard", "state", "behind", "behind s", "read/s", "done/s", "in flight", "failed", "dead", "read lag s")
    rows = [header]
    for shard in view.shards:
        behind = "-" if shard.behind_records is None else f"{shard.behind_records:,}{'' if shard.behind_exact else '+'}"
        rows.append((shard.shard_id, shard.state + (f" ({shard.probe_error})" if shard.probe_error else ""), behind,
                     "-" if shard.behind_ms is None else f"{shard.behind_ms / 1000:.1f}",
                     number(shard.read_per_s), number(shard.finished_per_s), number(shard.in_flight),
                     number(shard.failed), number(shard.dead_letters),
                     "-" if shard.read_behind_ms is None else f"{shard.read_behind_ms / 1000:.1f}"))
    lines += _table(rows)
    if view.sinks:
        rows = [("sink task", "rows/s", "batches/s", "rows stored", "failed batches", "insert errors", "refused",
                 "pending", "inserting", "insert ms mean", "insert ms max")]
        for sink in view.sinks:
            rows.append((str(sink.task), number(sink.rows_per_s), number(sink.batches_per_s), number(sink.rows_stored),
                         number(sink.batches_failed), number(sink.insert_errors), number(sink.rows_refused),
                         number(sink.pending_rows), number(sink.inserts_in_flight), number(sink.insert_ms_mean),
                         number(sink.insert_ms_max)))
        lines += [""] + _table(rows)
    if view.publishing_cpu_share is not None:
        lines.append(f"publishing these figures cost the tasks {view.publishing_cpu_share:.3%} of their CPU")
    lines += [f"! {problem}" for problem in view.problems]
    return "\n".join(lines) + "\n"


def _table(rows: list[tuple]) -> list[str]:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(str(cell).ljust(width) if i == 0 else str(cell).rjust(width)
                      for i, (cell, width) in enumerate(zip(row, widths))).rstrip() for row in rows]


def json_line(view: StatusView) -> bytes:
    return orjson.dumps(view.as_json())
