"""PutRecords with partial-failure retry.

PutRecords accepts at most 500 entries and 5 MiB per call and may accept some entries while
refusing others (each refused entry carries an ``ErrorCode``, e.g. throttling). The putter
retries only the refused entries, after a full-jitter exponential backoff, a bounded number of
times, and reports which entries stayed refused so the caller can tell the client to retry
exactly those.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 5 * 1024 * 1024

# Whole-call errors worth another attempt; any other ClientError (missing stream, access denied,
# validation) will not heal within one request.
RETRIABLE_CALL_ERRORS = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "LimitExceededException",
        "KMSThrottlingException",
        "InternalFailure",
        "InternalFailureException",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
    }
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PutEntry:
    data: bytes
    partition_key: str

    @property
    def size(self) -> int:
        """What counts against the 5 MiB request limit: data plus partition key."""
        return len(self.data) + len(self.partition_key.encode("utf-8"))


@dataclass
class PutResult:
    """``accepted``: index -> (shard_id, sequence_number); ``failed``: index -> last error code."""

    accepted: dict[int, tuple[str, str]] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    calls: int = 0


def retriable_call_error(code: str) -> bool:
    """Whether a whole-call error (a ClientError's code, or ``BotoCore:<name>`` for a transport
    error) may heal on another attempt."""
    return code in RETRIABLE_CALL_ERRORS or code.startswith("BotoCore:")


def chunk_entries(
    sizes: Sequence[int], max_records: int = MAX_RECORDS_PER_CALL, max_bytes: int = MAX_BYTES_PER_CALL
) -> list[list[int]]:
    """Split entry indexes (in order) into calls of at most ``max_records`` entries and
    ``max_bytes`` bytes. An entry larger than ``max_bytes`` goes alone (and Kinesis refuses it)."""
    chunks: list[list[int]] = []
    current: list[int] = []
    current_bytes = 0
    for index, size in enumerate(sizes):
        if current and (len(current) >= max_records or current_bytes + size > max_bytes):
            chunks.append(current)
            current, current_bytes = [], 0
        current.append(index)
        current_bytes += size
    if current:
        chunks.append(current)
    return chunks


def backoff_delay(retry: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(max_s, base_s * 2**(retry - 1))] for retry 1, 2, ..."""
    return rng.uniform(0.0, min(max_s, base_s * (2 ** (retry - 1))))


class RecordPutter:
    """Puts entries into one stream through an injected boto3 Kinesis client."""

    def __init__(
        self,
        client,
        stream: str,
        attempts: int = 4,
        base_delay_s: float = 0.05,
        max_delay_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ):
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        self._client = client
        self._stream = stream
        self._attempts = attempts
        self._base_delay_s = base_delay_s
        self._max_delay_s = max_delay_s
        self._sleep = sleep
        self._rng = rng or random.Random()

    def check(self) -> None:
        """Raise the client's error unless the stream exists and is reachable."""
        self._client.describe_stream_summary(StreamName=self._stream)

    def put(self, entries: Sequence[PutEntry]) -> PutResult:
        """Put every entry, retrying refused ones; never raises for Kinesis errors (they are
        reported in ``failed``)."""
        result = PutResult()
        pending = list(range(len(entries)))
        for attempt in range(1, self._attempts + 1):
            if attempt > 1:
                self._sleep(backoff_delay(attempt - 1, self._base_delay_s, self._max_delay_s, self._rng))
            refused, give_up = self._attempt(entries, pending, result)
            result.failed = refused
            pending = sorted(refused)
            if not pending or give_up:
                break
            log.info("PutRecords refused %d of %d entries (attempt %d): %s",
                     len(pending), len(entries), attempt, sorted(set(refused.values())))
        return result

    def _attempt(self, entries: Sequence[PutEntry], pending: list[int], result: PutResult) -> tuple[dict[int, str], bool]:
        """One attempt at the ``pending`` entries (indexes into ``entries``, in order): record the
        accepted ones in ``result``; return the refused ones (index -> code) and whether a call
        failed with an error no retry will heal."""
        refused: dict[int, str] = {}
        give_up = False
        for chunk in chunk_entries([entries[i].size for i in pending]):
            indexes = [pending[position] for position in chunk]
            result.calls += 1
            code = self._put_chunk(entries, indexes, result, refused)
            if code is not None and not retriable_call_error(code):
                give_up = True
        return refused, give_up

    def _put_chunk(
        self, entries: Sequence[PutEntry], indexes: list[int], result: PutResult, refused: dict[int, str]
    ) -> str | None:
        """One PutRecords call; returns the whole-call error code, if the call itself failed."""
        code, outcomes = put_records_once(self._client, self._stream, [entries[i] for i in indexes])
        for index, outcome in zip(indexes, outcomes):
            if isinstance(outcome, str):
                refused[index] = outcome
            else:
                result.accepted[index] = outcome
        return code


def put_records_once(
    client, stream: str, entries: Sequence[PutEntry]
) -> tuple[str | None, list[tuple[str, str] | str]]:
    """One PutRecords call of ``entries`` (in order). Returns the whole-call error code (None if
    the call was answered) and, per entry, ``(shard_id, sequence_number)`` if Kinesis took it or
    its error code if not (the whole-call code for every entry of a failed call)."""
    try:
        response = client.put_records(
            StreamName=stream,
            Records=[{"Data": entry.data, "PartitionKey": entry.partition_key} for entry in entries],
        )
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code") or "ClientError"
    except BotoCoreError as error:
        code = f"BotoCore:{type(error).__name__}"
    else:
        answers = response.get("Records") or []
        outcomes: list[tuple[str, str] | str] = []
        for position in range(len(entries)):
            answer = answers[position] if position < len(answers) else {"ErrorCode": "MissingResult"}
            if answer.get("ErrorCode"):
                outcomes.append(answer["ErrorCode"])
            else:
                outcomes.append((answer.get("ShardId", ""), answer.get("SequenceNumber", "")))
        return None, outcomes
    log.warning("PutRecords failed for %d entries: %s", len(entries), code)
    return code, [code] * len(entries)
