"""Reading one shard with GetRecords: iterators, pacing, backoff, SHARD_END, de-aggregation.

A :class:`ShardReader` makes one GetRecords call per :meth:`ShardReader.step` and says when the
next call may be made. It never sleeps itself: the consumer's fetcher thread (or a test) waits.
Errors never escape a step: throttling and service errors become a longer wait for this shard
only; an expired iterator is renewed AFTER_SEQUENCE_NUMBER of the last record fetched (before
any record: at the start position, a LATEST start as AT_TIMESTAMP of its first iterator). A page
advances the reader (last sequence number, iterator) only once all of it became records: a
response that cannot be read is retried whole, so nothing before a bad spot is skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from pistats.kinesis.kpl import MAGIC, MalformedAggregate, deaggregate
from pistats.kinesis.ledger import Position, ShardRecord

log = logging.getLogger(__name__)

MIN_CALL_INTERVAL_MS = 200            # GetRecords: 5 calls/s/shard
READ_BYTES_PER_S = 2 * 1024 * 1024    # GetRecords: 2 MiB/s/shard
THROTTLE_CODES = {"ProvisionedThroughputExceededException", "LimitExceededException", "ThrottlingException"}
UNREADABLE_RESPONSE = "UnreadableResponse"  # Fetch.error of a page this reader could not turn into records
# A LATEST start renewed as AT_TIMESTAMP begins this much before its first iterator: arrival times
# are the service's clock, the moment is ours, and a record too many beats one skipped.
LATEST_RENEWAL_MARGIN_MS = 1000


@dataclass(frozen=True)
class StartPosition:
    """Where a shard's first iterator points.

    ``kind`` is a ShardIteratorType. With ``skip_through`` set, records at or below that
    position are dropped after reading (resuming inside a KPL aggregate).
    """

    kind: str
    seq: int | None = None
    timestamp: datetime | None = None
    skip_through: Position | None = None

    def iterator_args(self) -> dict:
        args: dict = {"ShardIteratorType": self.kind}
        if self.seq is not None:
            args["StartingSequenceNumber"] = str(self.seq)
        if self.timestamp is not None:
            args["Timestamp"] = self.timestamp
        return args


@dataclass
class Fetch:
    """Result of one step: records in shard order, and when the next call may be made."""

    records: list[ShardRecord] = field(default_factory=list)
    next_call_ms: int = 0
    ended: bool = False
    children: list[str] = field(default_factory=list)
    millis_behind: int | None = None
    bytes_read: int = 0
    error: str | None = None      # error code of a failed call, for metrics
    throttled: bool = False


class ShardReader:
    """GetRecords loop state for one shard (not thread-safe: one fetcher owns it)."""

    def __init__(self, client, stream: str, shard_id: str, start: StartPosition, *,
                 now_ms: Callable[[], int], idle_poll_ms: int = 1000,
                 backoff_base_ms: int = 200, backoff_max_ms: int = 10_000):
        self._client = client
        self._stream = stream
        self.shard_id = shard_id
        self._start = start
        self._now_ms = now_ms
        self._idle_poll_ms = idle_poll_ms
        self._backoff_base_ms = backoff_base_ms
        self._backoff_max_ms = backoff_max_ms
        self._iterator: str | None = None
        self._last_seq: int | None = None  # last sequence number fetched (whole aggregates)
        self._errors_in_row = 0
        self.ended = False

    def step(self, limit: int) -> Fetch:
        """One GetRecords call (plus GetShardIterator when needed) for at most ``limit`` records."""
        now = self._now_ms()
        if self.ended:
            return Fetch(ended=True, next_call_ms=now)
        try:
            if self._iterator is None:
                self._iterator = self._new_iterator(now)
            response = self._client.get_records(ShardIterator=self._iterator, Limit=limit)
        except Exception as error:  # botocore ClientError, connection and timeout errors
            return self._on_error(error, now)
        try:
            fetch = self._on_records(response, now)
        except Exception as error:  # a response we cannot read: retry the page, take none of it
            log.exception("shard %s: cannot read a GetRecords response; retrying it", self.shard_id)
            return self._on_error(error, now, code=UNREADABLE_RESPONSE)
        self._errors_in_row = 0
        return fetch

    def _new_iterator(self, now: int) -> str:
        if self._last_seq is not None:
            args = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": str(self._last_seq)}
        else:
            args = self._start.iterator_args()
        response = self._client.get_shard_iterator(StreamName=self._stream, ShardId=self.shard_id, **args)
        if self._start.kind == "LATEST":
            # Taken again before any record (it expired, e.g. while the task was at
            # max_uncommitted), LATEST would skip everything put meanwhile: from now on the start
            # is the moment this first iterator was asked for.
            moment = datetime.fromtimestamp((now - LATEST_RENEWAL_MARGIN_MS) / 1000, timezone.utc)
            self._start = StartPosition("AT_TIMESTAMP", timestamp=moment)
        return response["ShardIterator"]

    def _on_records(self, response: dict, now: int) -> Fetch:
        """The page as records; the reader's state moves only after the whole page is read."""
        fetch = Fetch(millis_behind=response.get("MillisBehindLatest"))
        skip = self._start.skip_through
        records = fetch.records
        shard_id = self.shard_id
        last_seq = self._last_seq
        for raw in response.get("Records", ()):
            seq = int(raw["SequenceNumber"])
            data = raw["Data"]
            fetch.bytes_read += len(data)
            arrival = raw.get("ApproximateArrivalTimestamp")
            arrival_ms = int(arrival.timestamp() * 1000) if arrival is not None else 0
            last_seq = seq
            if not data.startswith(MAGIC):  # the common case: a plain record
                if skip is None or Position(seq, 0) > skip:
                    records.append(ShardRecord(shard_id, seq, 0, raw["PartitionKey"], arrival_ms, data))
                continue
            subs = deaggregate(data, raw["PartitionKey"])
            if isinstance(subs, MalformedAggregate):
                # Handed on as it came: the parser rejects it (bad_kpl, bytes kept). Never skipped
                # on a resume: no committed sub-record can have come from it.
                log.warning("shard %s: record %s is a malformed KPL aggregate (%s)", shard_id, seq, subs.detail)
                records.append(ShardRecord(shard_id, seq, 0, raw["PartitionKey"], arrival_ms, data))
                continue
            last = len(subs) - 1
            for i, sub in enumerate(subs):
                if skip is not None and Position(seq, sub.sub_sequence_number) <= skip:
                    continue
                records.append(ShardRecord(shard_id, seq, sub.sub_sequence_number, sub.partition_key,
                                             arrival_ms, sub.data, i == last))
        iterator = response.get("NextShardIterator")
        if iterator is None:
            fetch.ended = True
            fetch.children = [c["ShardId"] for c in response.get("ChildShards") or ()]
        # Pace to 5 calls/s and 2 MiB/s; poll an idle shard less often.
        wait = max(MIN_CALL_INTERVAL_MS, fetch.bytes_read * 1000 // READ_BYTES_PER_S)
        if not response.get("Records") and not fetch.ended and not response.get("MillisBehindLatest"):
            wait = max(wait, self._idle_poll_ms)
        fetch.next_call_ms = now + wait
        self._last_seq, self._iterator, self.ended = last_seq, iterator, fetch.ended
        return fetch

    def _on_error(self, error: Exception, now: int, code: str | None = None) -> Fetch:
        code = code or _error_code(error)
        self._errors_in_row += 1
        delay = min(self._backoff_max_ms, self._backoff_base_ms * 2 ** (self._errors_in_row - 1))
        fetch = Fetch(next_call_ms=now + delay, error=code, throttled=code in THROTTLE_CODES)
        if code == "ExpiredIteratorException":
            # Renew at once (AFTER_SEQUENCE_NUMBER of the last record fetched); not a fault.
            self._iterator = None
            self._errors_in_row = 0
            fetch.next_call_ms = now
        elif code in ("ResourceNotFoundException", "InvalidArgumentException"):
            # The iterator may point at trimmed data or a deleted shard: ask for a new one.
            self._iterator = None
        log.log(logging.DEBUG if fetch.throttled or code == "ExpiredIteratorException" else logging.WARNING,
                "shard %s: GetRecords failed (%s), next try in %d ms", self.shard_id, code, fetch.next_call_ms - now)
        return fetch


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code", type(error).__name__)
    return type(error).__name__
