"""Recordings to and from live streams: :class:`StreamReplayer` puts a recording into a stream,
:class:`StreamCapture` records a stream (every shard, closed and open) into the format.

Replay keeps the shard structure: each record goes to the live shard that covers the same hash
key range as the shard it was recorded in (``ExplicitHashKey`` inside that range), and when the
recording has resharding the live stream is resharded the same way (SplitShard / MergeShards)
right before the first record of a child shard, i.e. after its parents' records were put.
Records are put in arrival order (parents before children at equal times) with PutRecords
batches of at most 500 records and 5 MiB; entries that come back with an ErrorCode are retried
alone, with exponential backoff, a bounded number of times, then counted as failures.
"""

from __future__ import annotations

import hashlib
import heapq
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError

from pistats.errors import ConfigError, DataError, ServiceError
from pistats.kinesis.admin import error_code, list_all_shards, wait_active
from pistats.kinesis.recording import (
    RecordedRecord,
    Recording,
    RecordingWriter,
    ShardInfo,
    iter_manifest_order,
    shard_sort_key,
)

PUT_RECORDS_MAX_ENTRIES = 500
PUT_RECORDS_MAX_BYTES = 5 * 1024 * 1024
RETRYABLE_CALL_ERRORS = {
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "InternalFailureException",
    "InternalFailure",
    "ServiceUnavailable",
    "ThrottlingException",
}


def hash_key_for(partition_key: str) -> int:
    """The hash key Kinesis derives from a partition key: MD5 as a 128-bit integer."""
    return int.from_bytes(hashlib.md5(partition_key.encode("utf-8")).digest(), "big")


def explicit_hash_key(record: RecordedRecord, low: int, high: int) -> str:
    """A hash key in ``low..high`` (the recorded shard's range, narrowed to its live shard's),
    stable for a partition key: the recorded ExplicitHashKey or the partition key's own hash
    when inside, else the partition key's hash folded into the range."""
    if record.explicit_hash_key is not None and low <= int(record.explicit_hash_key) <= high:
        return record.explicit_hash_key
    natural = hash_key_for(record.partition_key)
    if low <= natural <= high:
        return str(natural)
    return str(low + natural % (high - low + 1))


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]) + 1)


@dataclass
class Failure:
    shard_id: str
    sequence_number: str
    code: str
    message: str


@dataclass
class ReplayReport:
    records_put: int = 0
    failures: list[Failure] = field(default_factory=list)
    reshards: list[str] = field(default_factory=list)
    shard_map: dict[str, str] = field(default_factory=dict)
    misrouted: int = 0
    retried_entries: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Pending:
    shard_id: str
    record: RecordedRecord
    entry: dict[str, Any]
    size: int


class StreamReplayer:
    """Puts a recording into a live stream (see the module docstring).

    ``speed``: None for as fast as possible, else the factor applied to recorded arrival gaps
    (2.0 replays twice as fast as recorded). ``sleep``/``clock``/``seed`` are injectable so
    tests and the backoff are deterministic.
    """

    def __init__(
        self,
        client,
        stream: str,
        *,
        speed: float | None = None,
        max_attempts: int = 8,
        backoff: float = 0.05,
        max_backoff: float = 2.0,
        reshard_timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        seed: int = 0,
    ):
        if speed is not None and speed <= 0:
            raise ConfigError("speed", "must be positive")
        self.client = client
        self.stream = stream
        self.speed = speed
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.reshard_timeout = reshard_timeout
        self._sleep = sleep
        self._clock = clock
        self._random = random.Random(seed)

    def replay(self, recording: Recording, counts: dict[str, int] | None = None, *,
               progress: Callable[[int], None] | None = None) -> ReplayReport:
        """Put every record; ``counts`` (from :meth:`Recording.validate`) saves a reading pass.
        ``progress``, if given, is called with the number of records each PutRecords call put."""
        self._progress = progress or _nothing
        report = ReplayReport()
        self._routes: dict[str, tuple[int, int]] = {}
        shards = {shard.shard_id: shard for shard in recording.shards}
        order = [shard.shard_id for shard in iter_manifest_order(recording)]
        depth = _depths(shards)
        counts = counts if counts is not None else recording.validate()
        remaining = dict(counts)
        children_of: dict[str, list[str]] = {shard_id: [] for shard_id in shards}
        for shard in shards.values():
            for parent in shard.parents:
                if parent in children_of:
                    children_of[parent].append(shard.shard_id)
        roots = [s for s in order if not any(p in shards for p in shards[s].parents)]
        self._map_live(report, [shards[s] for s in roots])
        pending: list[_Pending] = []
        pending_bytes = 0
        first_arrival: datetime | None = None
        started = self._clock()
        for shard_id, record in _merged(recording, order, depth):
            if shard_id not in report.shard_map:
                self._flush(report, pending)
                pending, pending_bytes = [], 0
                self._reshard_for(report, shards, shard_id, remaining, children_of)
            if self.speed is not None:
                first_arrival = first_arrival or record.arrival
                due = started + (record.arrival - first_arrival).total_seconds() / self.speed
                wait = due - self._clock()
                if wait > 0:
                    self._flush(report, pending)
                    pending, pending_bytes = [], 0
                    self._sleep(wait)
            item = self._entry(shard_id, shards[shard_id], record)
            if len(pending) == PUT_RECORDS_MAX_ENTRIES or pending_bytes + item.size > PUT_RECORDS_MAX_BYTES:
                self._flush(report, pending)
                pending, pending_bytes = [], 0
            pending.append(item)
            pending_bytes += item.size
            remaining[shard_id] -= 1
        self._flush(report, pending)
        # Reshards whose children recorded nothing still happen, so the shard map matches.
        for shard_id in order:
            if shard_id not in report.shard_map:
                self._reshard_for(report, shards, shard_id, remaining, children_of)
        return report

    # -- live shard map ----------------------------------------------------------------

    def _open_live_shards(self) -> list[dict[str, Any]]:
        return [s for s in list_all_shards(self.client, self.stream) if "EndingSequenceNumber" not in s["SequenceNumberRange"]]

    def _map_live(self, report: ReplayReport, recorded: list[ShardInfo]) -> None:
        """Map recorded shards to the open live shards covering (most of) the same hash range.

        Emulators and AWS may draw boundaries one key apart, so the match is by largest overlap,
        and records are routed inside the intersection of both ranges."""
        taken = set(report.shard_map.values())
        live = [s for s in self._open_live_shards() if s["ShardId"] not in taken]
        for shard in recorded:
            if shard.shard_id in report.shard_map:
                continue
            wanted = (shard.starting_hash_key, shard.ending_hash_key)
            best, best_overlap = None, 0
            for candidate in live:
                span = (int(candidate["HashKeyRange"]["StartingHashKey"]), int(candidate["HashKeyRange"]["EndingHashKey"]))
                overlap = _overlap(wanted, span)
                if overlap > best_overlap:
                    best, best_overlap = (candidate["ShardId"], span), overlap
            width = wanted[1] - wanted[0] + 1
            if best is None or best_overlap * 100 < width * 99:
                report.warnings.append(
                    f"recorded shard {shard.shard_id} has no open live shard with the same hash key range; "
                    "its records go wherever their hash key falls"
                )
                report.shard_map[shard.shard_id] = ""
                self._routes[shard.shard_id] = wanted
                continue
            live_id, span = best
            live = [s for s in live if s["ShardId"] != live_id]
            report.shard_map[shard.shard_id] = live_id
            self._routes[shard.shard_id] = (max(wanted[0], span[0]), min(wanted[1], span[1]))

    def _reshard_for(self, report, shards, shard_id, remaining, children_of) -> None:
        """Create ``shard_id`` (a child in the recording) by resharding, after also doing every
        earlier-numbered reshard that is due, so live shard ids follow the recorded ones."""
        due = []
        for candidate in sorted(shards, key=shard_sort_key):
            if candidate in report.shard_map:
                continue
            parents = [p for p in shards[candidate].parents if p in shards]
            if parents and all(remaining[p] == 0 and report.shard_map.get(p) for p in parents):
                due.append(candidate)
            if candidate == shard_id:
                break
        if shard_id not in due:
            parents = [p for p in shards[shard_id].parents if p in shards]
            raise DataError(f"shard {shard_id} starts before its parents {parents} are done or replayable")
        done: set[str] = set()
        for child in due:
            if child in report.shard_map or child in done:
                continue
            parents = [p for p in shards[child].parents if p in shards]
            if len(parents) == 1:
                parent = shards[parents[0]]
                siblings = sorted((shards[c] for c in children_of[parent.shard_id]), key=lambda s: s.starting_hash_key)
                if len(siblings) != 2:
                    raise DataError(f"shard {parent.shard_id} has {len(siblings)} children; a split makes 2")
                upper = siblings[1]
                self._call(
                    "SplitShard",
                    ShardToSplit=report.shard_map[parent.shard_id],
                    NewStartingHashKey=str(upper.starting_hash_key),
                )
                report.reshards.append(f"split {parent.shard_id} at {upper.starting_hash_key}")
                created = siblings
            else:
                lower, upper = sorted((shards[p] for p in parents), key=lambda s: s.starting_hash_key)
                self._call(
                    "MergeShards",
                    ShardToMerge=report.shard_map[lower.shard_id],
                    AdjacentShardToMerge=report.shard_map[upper.shard_id],
                )
                report.reshards.append(f"merge {lower.shard_id} + {upper.shard_id}")
                created = [shards[child]]
            wait_active(self.client, self.stream, timeout=self.reshard_timeout)
            self._map_live(report, created)
            done.update(s.shard_id for s in created)

    def _call(self, operation: str, **arguments: Any) -> None:
        method = {"SplitShard": self.client.split_shard, "MergeShards": self.client.merge_shards}[operation]
        for attempt in range(self.max_attempts):
            try:
                method(StreamName=self.stream, **arguments)
                return
            except ClientError as error:
                # A reshard right after another one answers ResourceInUse/LimitExceeded for a moment.
                if error_code(error) not in RETRYABLE_CALL_ERRORS | {"ResourceInUseException"} or attempt + 1 == self.max_attempts:
                    raise ServiceError(f"{operation} failed on stream {self.stream}: {error}") from None
                wait_active(self.client, self.stream, timeout=self.reshard_timeout)
                self._sleep(self._delay(attempt))

    # -- PutRecords ----------------------------------------------------------------------

    def _entry(self, shard_id: str, shard: ShardInfo, record: RecordedRecord) -> _Pending:
        entry = {
            "Data": record.data,
            "PartitionKey": record.partition_key,
            "ExplicitHashKey": explicit_hash_key(record, *self._routes[shard_id]),
        }
        size = len(record.data) + len(record.partition_key.encode("utf-8"))
        return _Pending(shard_id, record, entry, size)

    def _delay(self, attempt: int) -> float:
        ceiling = min(self.max_backoff, self.backoff * (2**attempt))
        return ceiling / 2 + self._random.uniform(0, ceiling / 2)

    def _flush(self, report: ReplayReport, batch: list[_Pending]) -> None:
        remaining = list(batch)
        attempt = 0
        while remaining:
            try:
                response = self.client.put_records(StreamName=self.stream, Records=[p.entry for p in remaining])
            except ClientError as error:
                code = error_code(error)
                if code not in RETRYABLE_CALL_ERRORS:
                    raise ServiceError(f"PutRecords failed on stream {self.stream}: {error}") from None
                if attempt + 1 >= self.max_attempts:
                    for item in remaining:
                        report.failures.append(Failure(item.shard_id, item.record.sequence_number, code, str(error)))
                    return
                self._sleep(self._delay(attempt))
                attempt += 1
                continue
            failed = []
            for item, result in zip(remaining, response["Records"]):
                if result.get("ErrorCode"):
                    failed.append((item, result))
                    continue
                report.records_put += 1
                expected = report.shard_map.get(item.shard_id)
                if expected and result.get("ShardId") != expected:
                    report.misrouted += 1
            self._progress(len(remaining) - len(failed))
            if not failed:
                return
            attempt += 1
            if attempt >= self.max_attempts:
                for item, result in failed:
                    report.failures.append(
                        Failure(item.shard_id, item.record.sequence_number, result["ErrorCode"], result.get("ErrorMessage", ""))
                    )
                return
            report.retried_entries += len(failed)
            remaining = [item for item, _ in failed]
            self._sleep(self._delay(attempt - 1))


def _depths(shards: dict[str, ShardInfo]) -> dict[str, int]:
    depths: dict[str, int] = {}

    def depth(shard_id: str) -> int:
        if shard_id not in depths:
            parents = [p for p in shards[shard_id].parents if p in shards]
            depths[shard_id] = 1 + max((depth(p) for p in parents), default=-1)
        return depths[shard_id]

    for shard_id in shards:
        depth(shard_id)
    return depths


def _merged(recording: Recording, order: list[str], depth: dict[str, int]) -> Iterator[tuple[str, RecordedRecord]]:
    """All records in arrival order; at equal arrival, parents' generation first, then shard order."""
    def tagged(index: int, shard_id: str):
        key = (depth[shard_id], index)
        for record in recording.records(shard_id):
            yield record.arrival, key, shard_id, record

    streams = [tagged(index, shard_id) for index, shard_id in enumerate(order)]
    for _, _, shard_id, record in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
        yield shard_id, record


# -- capture -------------------------------------------------------------------------------


@dataclass
class _Reader:
    shard: dict[str, Any]
    iterator: str | None
    last_sequence: str | None = None
    idle_since: float | None = None
    ended: bool = False
    idle: bool = False
    backoff_until: float = 0.0


@dataclass
class CaptureReport:
    records: int = 0
    shards: int = 0
    closed_shards: int = 0


START_POSITIONS = {"trim_horizon": "TRIM_HORIZON", "latest": "LATEST", "timestamp": "AT_TIMESTAMP"}


class StreamCapture:
    """Reads every shard of a live stream into a recording.

    A closed shard is read to its end (null NextShardIterator; its ChildShards become the shard
    end line). An open shard is read until it has been at the tip (no records,
    MillisBehindLatest 0) for ``until_idle`` seconds. Shards that appear while capturing
    (a reshard) are picked up from TRIM_HORIZON. Stops early after ``max_records``.

    ``start`` is where the shards present at the start are read from: ``trim_horizon``,
    ``latest`` or ``timestamp`` (at ``timestamp``). ``sleep``/``clock`` are injectable so tests
    need not wait.
    """

    def __init__(
        self,
        client,
        stream: str,
        *,
        start: str = "trim_horizon",
        timestamp: datetime | None = None,
        until_idle: float = 2.0,
        max_records: int | None = None,
        limit: int = 10_000,
        poll_interval: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        if start not in START_POSITIONS:
            raise ConfigError("start", f"must be one of {', '.join(START_POSITIONS)}, not {start!r}")
        if start == "timestamp" and timestamp is None:
            raise ConfigError("start", "timestamp needs `timestamp`")
        if max_records is not None and max_records < 1:
            raise ConfigError("max_records", "must be at least 1")
        if until_idle < 0:
            raise ConfigError("until_idle", "must not be negative")
        self.client = client
        self.stream = stream
        self.start_type = START_POSITIONS[start]
        self.timestamp = timestamp
        self.until_idle = until_idle
        self.max_records = max_records
        self.limit = limit
        self.poll_interval = poll_interval
        self._sleep = sleep
        self._clock = clock

    def capture(self, writer: RecordingWriter, *, progress: Callable[[int], None] | None = None) -> CaptureReport:
        """Read every shard into ``writer`` (the caller commits). ``progress``, if given, is
        called with the number of records each GetRecords call returned."""
        self._progress = progress or _nothing
        report = CaptureReport()
        readers: dict[str, _Reader] = {}
        self._discover(writer, readers, first=True)
        while True:
            active = [r for r in sorted(readers.values(), key=lambda r: shard_sort_key(r.shard["ShardId"])) if not (r.ended or r.idle)]
            if not active or self._enough(report):
                self._discover(writer, readers, first=False)
                active = [r for r in readers.values() if not (r.ended or r.idle)]
                if not active or self._enough(report):
                    break
            got_any = False
            for reader in active:
                got_any = self._read(reader, writer, report) or got_any
                if self._enough(report):
                    break
            if not got_any:
                self._sleep(self.poll_interval)
        # Shard map as it is now: shards closed while capturing get their EndingSequenceNumber.
        for entry in list_all_shards(self.client, self.stream):
            writer.add_shard(ShardInfo.from_dict(entry))
        report.shards = len(readers)
        return report

    def _enough(self, report: CaptureReport) -> bool:
        return self.max_records is not None and report.records >= self.max_records

    def _discover(self, writer: RecordingWriter, readers: dict[str, _Reader], first: bool) -> None:
        for entry in list_all_shards(self.client, self.stream):
            shard_id = entry["ShardId"]
            writer.add_shard(ShardInfo.from_dict(entry))
            if shard_id in readers:
                readers[shard_id].shard = entry
                continue
            kind = self.start_type if first else "TRIM_HORIZON"
            request: dict[str, Any] = {"StreamName": self.stream, "ShardId": shard_id, "ShardIteratorType": kind}
            if kind == "AT_TIMESTAMP":
                request["Timestamp"] = self.timestamp
            readers[shard_id] = _Reader(entry, self.client.get_shard_iterator(**request)["ShardIterator"])

    def _read(self, reader: _Reader, writer: RecordingWriter, report: CaptureReport) -> bool:
        """One GetRecords of one shard; True if it returned records."""
        now = self._clock()
        if now < reader.backoff_until:
            return False
        shard_id = reader.shard["ShardId"]
        limit = self.limit if self.max_records is None else max(1, min(self.limit, self.max_records - report.records))
        try:
            response = self.client.get_records(ShardIterator=reader.iterator, Limit=limit)
        except ClientError as error:
            code = error_code(error)
            if code == "ExpiredIteratorException":
                reader.iterator = _renew(self.client, self.stream, shard_id, reader.last_sequence)
                return False
            if code in RETRYABLE_CALL_ERRORS:
                reader.backoff_until = now + 1.0
                return False
            raise ServiceError(f"GetRecords failed on {self.stream}/{shard_id}: {error}") from None
        records = response.get("Records", [])
        for item in records:
            writer.write(shard_id, _recorded(item))
            reader.last_sequence = item["SequenceNumber"]
        report.records += len(records)
        self._progress(len(records))
        if records:
            reader.idle_since = None
        next_iterator = response.get("NextShardIterator")
        if next_iterator is None:
            writer.end_shard(shard_id, response.get("ChildShards", []))
            reader.ended = True
            report.closed_shards += 1
            return bool(records)
        reader.iterator = next_iterator
        if not records and response.get("MillisBehindLatest", 0) == 0:
            reader.idle_since = reader.idle_since if reader.idle_since is not None else now
            if now - reader.idle_since >= self.until_idle:
                reader.idle = True
        return bool(records)


def _nothing(count: int) -> None:
    pass


def _renew(client, stream: str, shard_id: str, last_sequence: str | None) -> str:
    request: dict[str, Any] = {"StreamName": stream, "ShardId": shard_id}
    if last_sequence is None:
        request["ShardIteratorType"] = "TRIM_HORIZON"
    else:
        request.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=last_sequence)
    return client.get_shard_iterator(**request)["ShardIterator"]


def _recorded(item: dict[str, Any]) -> RecordedRecord:
    arrival = item["ApproximateArrivalTimestamp"]
    if isinstance(arrival, (int, float)):
        arrival = datetime.fromtimestamp(arrival, timezone.utc)
    return RecordedRecord(
        sequence_number=item["SequenceNumber"],
        arrival=arrival,
        partition_key=item["PartitionKey"],
        data=bytes(item["Data"]),
        explicit_hash_key=item.get("ExplicitHashKey"),
    )

