"""A Kinesis client that serves a recording: fast, deterministic shard reading with faults.

:class:`ReplaySource` answers the boto3 Kinesis client calls a shard reader makes
(``list_shards``, ``get_shard_iterator``, ``get_records``, ``describe_stream_summary``) from a
recording in memory, with the response shapes and errors boto3 gives:

- ``list_shards`` pages with ``MaxResults``/``NextToken`` (a ``NextToken`` call must not repeat
  ``StreamName``, as on AWS) and honours ``ExclusiveStartShardId`` and ``ShardFilter``.
- ``get_shard_iterator`` takes all five iterator types. AT/AFTER_SEQUENCE_NUMBER position on the
  first record at/after the number (compared as integers); AT_TIMESTAMP on the first record that
  arrived at or after the timestamp; LATEST at the tip (the recording never grows, so nothing).
- ``get_records`` honours ``Limit`` (1..10000). ``MillisBehindLatest`` is the arrival-time distance
  from the last returned record to the shard's last record (0 at the tip). On a closed shard, the
  response that reaches its end has no ``NextShardIterator`` key (boto3 drops JSON nulls) and
  carries ``ChildShards``, as kinesis-local and AWS do; an open shard at its tip returns no records
  and an iterator at the same place.
- Iterators expire ``iterator_ttl`` seconds after they were issued, by the injected ``now`` clock.
- Faults (:class:`Fault`) are raised as the ``botocore.exceptions.ClientError`` subclasses of a
  real boto3 Kinesis client (``client.exceptions.ProvisionedThroughputExceededException`` etc.),
  with the same ``response`` dict, so ``except ClientError`` and code checks behave as with AWS.

Everything is deterministic: no randomness, time only from ``now``. ``calls`` logs every call
(operation, shard, outcome) for assertions.
"""

from __future__ import annotations

import base64
import bisect
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import botocore.session
from botocore.errorfactory import ClientExceptionsFactory
from dateutil.tz import tzlocal

from pistats.kinesis.recording import Recording, RecordedRecord, ShardEnd, ShardInfo, shard_sort_key

ITERATOR_TYPES = ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER", "TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")
GET_RECORDS_MAX_LIMIT = 10_000
LIST_SHARDS_MAX_RESULTS = 10_000
LIST_SHARDS_DEFAULT_RESULTS = 1_000
ITERATOR_TTL_SECONDS = 300.0
ACCOUNT = "123456789012"
REGION = "us-east-1"

# HTTP status Kinesis answers with, per error code (everything unknown is a 400 client error).
_STATUS = {
    "InternalFailureException": 500,
    "InternalFailure": 500,
    "ServiceUnavailable": 503,
    "ServiceUnavailableException": 503,
}

_EXCEPTIONS = None


def kinesis_exceptions():
    """The exception classes of a real boto3 Kinesis client (built from botocore's service model)."""
    global _EXCEPTIONS
    if _EXCEPTIONS is None:
        model = botocore.session.get_session().get_service_model("kinesis")
        _EXCEPTIONS = ClientExceptionsFactory().create_client_exceptions(model)
    return _EXCEPTIONS


def client_error(code: str, message: str, operation: str) -> Exception:
    """A ClientError exactly as botocore raises it for a Kinesis error response."""
    status = _STATUS.get(code, 400)
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {
            "RequestId": "00000000-0000-0000-0000-000000000000",
            "HTTPStatusCode": status,
            "HTTPHeaders": {"content-type": "application/x-amz-json-1.1"},
            "RetryAttempts": 0,
        },
        "message": message,
    }
    exceptions = kinesis_exceptions()
    return exceptions.from_code(code)(response, operation)


@dataclass
class Fault:
    """Make matching calls fail.

    ``operation`` is the API name (``GetRecords``, ``GetShardIterator``, ``ListShards``, ``*``);
    ``shard_id`` limits it to one shard (None: any). The first ``skip`` matching calls pass, the
    next ``times`` fail with ``code`` (``ProvisionedThroughputExceededException``,
    ``ExpiredIteratorException``, ``InternalFailureException``, or any other code).
    """

    operation: str
    code: str
    shard_id: str | None = None
    times: int = 1
    skip: int = 0
    message: str | None = None
    seen: int = field(default=0, init=False)
    raised: int = field(default=0, init=False)

    def matches(self, operation: str, shard_id: str | None) -> bool:
        if self.operation not in ("*", operation):
            return False
        return self.shard_id is None or self.shard_id == shard_id

    @property
    def exhausted(self) -> bool:
        return self.raised >= self.times


@dataclass(frozen=True)
class Call:
    operation: str
    shard_id: str | None
    outcome: str  # "ok" or the error code


@dataclass
class _Shard:
    info: ShardInfo
    records: list[RecordedRecord]
    sequences: list[int]
    arrivals: list[datetime]
    end: ShardEnd | None

    @property
    def closed(self) -> bool:
        return self.end is not None or self.info.closed


class ReplaySource:
    """A boto3-Kinesis-client look-alike over a recording (see the module docstring)."""

    def __init__(
        self,
        shards: Iterable[tuple[ShardInfo, list[RecordedRecord], ShardEnd | None]],
        *,
        stream: str = "replay",
        faults: Iterable[Fault] = (),
        now: Callable[[], float] = time.monotonic,
        iterator_ttl: float = ITERATOR_TTL_SECONDS,
    ):
        self.stream = stream
        self._shards: dict[str, _Shard] = {}
        for info, records, end in shards:
            self._shards[info.shard_id] = _Shard(
                info,
                list(records),
                [r.sequence_int for r in records],
                [r.arrival for r in records],
                end,
            )
        self._order = sorted(self._shards, key=shard_sort_key)
        self.faults: list[Fault] = list(faults)
        self._now = now
        self._iterator_ttl = iterator_ttl
        self._issued = 0
        self.calls: list[Call] = []
        self.exceptions = kinesis_exceptions()

    @classmethod
    def from_recording(cls, recording: Recording | str, **options: Any) -> ReplaySource:
        if not isinstance(recording, Recording):
            recording = Recording.open(recording)
        contents = [recording.read_shard(shard.shard_id) for shard in recording.shards]
        options.setdefault("stream", recording.manifest.stream or "replay")
        return cls(((c.shard, c.records, c.end) for c in contents), **options)

    def inject(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    # -- the boto3 client surface ----------------------------------------------------------

    def describe_stream_summary(self, *, StreamName: str | None = None, StreamARN: str | None = None) -> dict:
        self._check_stream("DescribeStreamSummary", StreamName, StreamARN)
        self._fault("DescribeStreamSummary", None)
        open_count = sum(1 for s in self._shards.values() if not s.closed)
        self._log("DescribeStreamSummary", None, "ok")
        return {
            "StreamDescriptionSummary": {
                "StreamName": self.stream,
                "StreamARN": self._arn(),
                "StreamStatus": "ACTIVE",
                "RetentionPeriodHours": 24,
                "StreamCreationTimestamp": datetime(2026, 1, 1, tzinfo=timezone.utc),
                "EnhancedMonitoring": [{"ShardLevelMetrics": []}],
                "EncryptionType": "NONE",
                "OpenShardCount": open_count,
                "ConsumerCount": 0,
            }
        }

    def list_shards(
        self,
        *,
        StreamName: str | None = None,
        NextToken: str | None = None,
        ExclusiveStartShardId: str | None = None,
        MaxResults: int | None = None,
        StreamCreationTimestamp: Any = None,
        ShardFilter: dict | None = None,
        StreamARN: str | None = None,
        StreamId: str | None = None,
    ) -> dict:
        operation = "ListShards"
        if NextToken is not None:
            if StreamName is not None or StreamARN is not None or ExclusiveStartShardId is not None:
                raise self._error(operation, None, "InvalidArgumentException",
                                  "NextToken and StreamName cannot be provided together.")
            start, limit_from_token, filter_from_token = self._decode_token(operation, NextToken)
            shard_filter = filter_from_token
            max_results = MaxResults or limit_from_token
        else:
            self._check_stream(operation, StreamName, StreamARN)
            shard_filter = ShardFilter
            max_results = MaxResults or LIST_SHARDS_DEFAULT_RESULTS
            start = 0
            if ExclusiveStartShardId is not None:
                start = bisect.bisect_right(
                    [shard_sort_key(s) for s in self._order], shard_sort_key(ExclusiveStartShardId)
                )
        if not 1 <= max_results <= LIST_SHARDS_MAX_RESULTS:
            raise self._error(operation, None, "InvalidArgumentException",
                              f"MaxResults must be between 1 and {LIST_SHARDS_MAX_RESULTS}.")
        self._fault(operation, None)
        page: list[str] = []
        position = start
        while position < len(self._order) and len(page) < max_results:
            shard_id = self._order[position]
            position += 1
            if self._passes(self._shards[shard_id], shard_filter):
                page.append(shard_id)
        response: dict[str, Any] = {"Shards": [self._shards[s].info.to_dict() for s in page]}
        if any(self._passes(self._shards[s], shard_filter) for s in self._order[position:]):
            response["NextToken"] = self._encode_token(position, max_results, shard_filter)
        self._log(operation, None, "ok")
        return response

    def get_shard_iterator(
        self,
        *,
        ShardId: str,
        ShardIteratorType: str,
        StreamName: str | None = None,
        StartingSequenceNumber: str | None = None,
        Timestamp: datetime | float | int | None = None,
        StreamARN: str | None = None,
        StreamId: str | None = None,
    ) -> dict:
        operation = "GetShardIterator"
        self._check_stream(operation, StreamName, StreamARN)
        shard = self._shards.get(ShardId)
        if shard is None:
            raise self._error(operation, ShardId, "ResourceNotFoundException",
                              f"Shard {ShardId} in stream {self.stream} under account {ACCOUNT} does not exist")
        if ShardIteratorType not in ITERATOR_TYPES:
            raise self._error(operation, ShardId, "InvalidArgumentException",
                              f"1 validation error detected: Value '{ShardIteratorType}' at 'shardIteratorType' "
                              f"failed to satisfy constraint: Member must satisfy enum value set: {list(ITERATOR_TYPES)}")
        self._fault(operation, ShardId)
        if ShardIteratorType == "TRIM_HORIZON":
            position = 0
        elif ShardIteratorType == "LATEST":
            position = len(shard.records)
        elif ShardIteratorType in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
            if StartingSequenceNumber is None or not str(StartingSequenceNumber).isdigit():
                raise self._error(operation, ShardId, "InvalidArgumentException",
                                  f"StartingSequenceNumber is required and must be a decimal string for {ShardIteratorType}.")
            number = int(StartingSequenceNumber)
            if ShardIteratorType == "AT_SEQUENCE_NUMBER":
                position = bisect.bisect_left(shard.sequences, number)
            else:
                position = bisect.bisect_right(shard.sequences, number)
        else:
            if Timestamp is None:
                raise self._error(operation, ShardId, "InvalidArgumentException",
                                  "Timestamp is required for AT_TIMESTAMP.")
            moment = _as_datetime(Timestamp)
            position = bisect.bisect_left(shard.arrivals, moment)
        self._log(operation, ShardId, "ok")
        return {"ShardIterator": self._issue(ShardId, position)}

    def get_records(self, *, ShardIterator: str, Limit: int | None = None, StreamARN: str | None = None) -> dict:
        operation = "GetRecords"
        shard_id, position, issued_at = self._read_iterator(operation, ShardIterator)
        shard = self._shards[shard_id]
        limit = GET_RECORDS_MAX_LIMIT if Limit is None else Limit
        if not 1 <= limit <= GET_RECORDS_MAX_LIMIT:
            raise self._error(operation, shard_id, "InvalidArgumentException",
                              f"1 validation error detected: Value '{limit}' at 'limit' failed to satisfy "
                              f"constraint: Member must have value between 1 and {GET_RECORDS_MAX_LIMIT}")
        now = self._now()
        if now - issued_at > self._iterator_ttl:
            raise self._error(operation, shard_id, "ExpiredIteratorException",
                              f"Iterator expired. The iterator was created at time {issued_at:.3f} while right now "
                              f"it is {now:.3f} which is further in the future than the tolerated delay of "
                              f"{int(self._iterator_ttl * 1000)} milliseconds.")
        self._fault(operation, shard_id)
        batch = shard.records[position : position + limit]
        after = position + len(batch)
        response: dict[str, Any] = {"Records": [_record_response(r) for r in batch]}
        at_end = after >= len(shard.records)
        if at_end and shard.closed:
            response["MillisBehindLatest"] = 0
            response["ChildShards"] = self._child_shards(shard)
        else:
            response["NextShardIterator"] = self._issue(shard_id, after)
            response["MillisBehindLatest"] = self._behind(shard, after)
        self._log(operation, shard_id, "ok")
        return response

    # -- internals -------------------------------------------------------------------------

    def _behind(self, shard: _Shard, after: int) -> int:
        if after >= len(shard.records):
            return 0
        last_read = shard.arrivals[after - 1] if after > 0 else shard.arrivals[0]
        return int((shard.arrivals[-1] - last_read).total_seconds() * 1000)

    def _child_shards(self, shard: _Shard) -> list[dict]:
        if shard.end is not None and shard.end.child_shards:
            return [dict(child) for child in shard.end.child_shards]
        children = []
        for shard_id in self._order:
            info = self._shards[shard_id].info
            if shard.info.shard_id in info.parents:
                children.append({
                    "ShardId": info.shard_id,
                    "ParentShards": list(info.parents),
                    "HashKeyRange": info.to_dict()["HashKeyRange"],
                })
        return children

    def _issue(self, shard_id: str, position: int) -> str:
        self._issued += 1
        payload = {"s": shard_id, "p": position, "t": self._now(), "n": self._issued}
        return base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()

    def _read_iterator(self, operation: str, token: str) -> tuple[str, int, float]:
        try:
            payload = json.loads(base64.b64decode(token, validate=True))
            shard_id, position, issued_at = payload["s"], int(payload["p"]), float(payload["t"])
        except (ValueError, KeyError, TypeError):
            raise self._error(operation, None, "InvalidArgumentException",
                              "Invalid ShardIterator.") from None
        if shard_id not in self._shards:
            raise self._error(operation, shard_id, "ResourceNotFoundException",
                              f"Shard {shard_id} in stream {self.stream} under account {ACCOUNT} does not exist")
        return shard_id, position, issued_at

    def _encode_token(self, start: int, max_results: int, shard_filter: dict | None) -> str:
        payload = {"stream": self.stream, "start": start, "max": max_results, "filter": shard_filter}
        return base64.b64encode(json.dumps(payload, default=str).encode()).decode()

    def _decode_token(self, operation: str, token: str) -> tuple[int, int, dict | None]:
        try:
            payload = json.loads(base64.b64decode(token, validate=True))
            if payload["stream"] != self.stream:
                raise ValueError
            return int(payload["start"]), int(payload["max"]), payload["filter"]
        except (ValueError, KeyError, TypeError):
            raise self._error(operation, None, "InvalidArgumentException", "Invalid NextToken.") from None

    def _passes(self, shard: _Shard, shard_filter: dict | None) -> bool:
        if not shard_filter:
            return True
        kind = shard_filter.get("Type")
        if kind in ("AT_LATEST",):
            return not shard.closed
        if kind == "AFTER_SHARD_ID":
            return shard_sort_key(shard.info.shard_id) > shard_sort_key(shard_filter.get("ShardId", ""))
        # AT/FROM_TRIM_HORIZON and AT/FROM_TIMESTAMP: a recording holds only retained shards,
        # all of which these filters include.
        return True

    def _check_stream(self, operation: str, name: str | None, arn: str | None) -> None:
        if name is None and arn is None:
            raise self._error(operation, None, "InvalidArgumentException",
                              "Either StreamName or StreamARN should be provided.")
        if name is not None and name != self.stream or arn is not None and arn != self._arn():
            raise self._error(operation, None, "ResourceNotFoundException",
                              f"Stream {name or arn} under account {ACCOUNT} not found.")

    def _arn(self) -> str:
        return f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{self.stream}"

    def _fault(self, operation: str, shard_id: str | None) -> None:
        for fault in self.faults:
            if fault.exhausted or not fault.matches(operation, shard_id):
                continue
            fault.seen += 1
            if fault.seen <= fault.skip:
                continue
            fault.raised += 1
            raise self._error(operation, shard_id, fault.code, fault.message or _default_message(fault.code, shard_id, self.stream))

    def _error(self, operation: str, shard_id: str | None, code: str, message: str) -> Exception:
        self._log(operation, shard_id, code)
        return client_error(code, message, operation)

    def _log(self, operation: str, shard_id: str | None, outcome: str) -> None:
        self.calls.append(Call(operation, shard_id, outcome))


def _default_message(code: str, shard_id: str | None, stream: str) -> str:
    if code == "ProvisionedThroughputExceededException":
        return f"Rate exceeded for shard {shard_id} in stream {stream} under account {ACCOUNT}."
    if code == "ExpiredIteratorException":
        return "Iterator expired. The iterator was created at time 0 while right now it is 300001 which is " \
               "further in the future than the tolerated delay of 300000 milliseconds."
    if code in ("InternalFailureException", "InternalFailure"):
        return "Internal service failure."
    return f"Injected {code}."


def _as_datetime(value: datetime | float | int) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)
    return datetime.fromtimestamp(float(value), timezone.utc)


def _record_response(record: RecordedRecord) -> dict:
    # botocore parses Kinesis' epoch-seconds timestamps into local-timezone datetimes.
    return {
        "SequenceNumber": record.sequence_number,
        "ApproximateArrivalTimestamp": record.arrival.astimezone(tzlocal()),
        "Data": record.data,
        "PartitionKey": record.partition_key,
    }
