"""PutRecords chunking, backoff and partial-failure retry (fault injection with a fake client)."""

from __future__ import annotations

import random

import pytest
from botocore.exceptions import EndpointConnectionError

from pistats.ingest.putter import (
    MAX_BYTES_PER_CALL,
    PutEntry,
    RecordPutter,
    backoff_delay,
    chunk_entries,
)

THROTTLED = "ProvisionedThroughputExceededException"


def entries(n: int, size: int = 10) -> list[PutEntry]:
    return [PutEntry(bytes([65 + i % 26]) * size, f"c:u{i}") for i in range(n)]


def test_chunks_by_count_and_size():
    assert chunk_entries([1] * 1001) == [list(range(500)), list(range(500, 1000)), [1000]]
    assert chunk_entries([40, 40, 40], max_bytes=100) == [[0, 1], [2]]
    assert chunk_entries([150, 10], max_bytes=100) == [[0], [1]]
    assert chunk_entries([]) == []


def test_entry_size_counts_the_partition_key():
    assert PutEntry(b"abc", "k:é").size == 3 + 4


def test_backoff_grows_is_capped_and_jittered():
    rng = random.Random(7)
    for retry in range(1, 10):
        cap = min(1.0, 0.05 * 2 ** (retry - 1))
        delays = [backoff_delay(retry, 0.05, 1.0, rng) for _ in range(50)]
        assert all(0 <= d <= cap for d in delays)
        assert len(set(delays)) > 1


class Client:
    def __init__(self, plan):
        self.plan = list(plan)
        self.calls = []

    def put_records(self, StreamName, Records):
        self.calls.append([r["PartitionKey"] for r in Records])
        step = self.plan.pop(0) if self.plan else None
        if isinstance(step, Exception):
            raise step
        codes = step or [None] * len(Records)
        return {
            "Records": [
                {"ErrorCode": c, "ErrorMessage": "x"} if c else {"ShardId": "shardId-1", "SequenceNumber": str(n)}
                for n, c in enumerate(codes)
            ]
        }


def putter(client, attempts=4):
    sleeps = []
    return RecordPutter(client, "s", attempts=attempts, sleep=sleeps.append, rng=random.Random(1)), sleeps


def test_only_failed_entries_are_retried():
    client = Client([[None, THROTTLED, None, "InternalFailure"], [None, THROTTLED], [None]])
    p, sleeps = putter(client)
    result = p.put(entries(4))
    assert client.calls == [["c:u0", "c:u1", "c:u2", "c:u3"], ["c:u1", "c:u3"], ["c:u3"]]
    assert sorted(result.accepted) == [0, 1, 2, 3] and result.failed == {}
    assert len(sleeps) == 2 and result.calls == 3


def test_attempts_are_bounded_and_leftovers_reported():
    client = Client([[THROTTLED, None]] + [[THROTTLED]] * 5)
    p, sleeps = putter(client, attempts=3)
    result = p.put(entries(2))
    assert len(client.calls) == 3 and len(sleeps) == 2
    assert result.failed == {0: THROTTLED}
    assert sorted(result.accepted) == [1]


def test_connection_errors_are_retried():
    client = Client([EndpointConnectionError(endpoint_url="http://x")])
    p, _ = putter(client)
    result = p.put(entries(3))
    assert sorted(result.accepted) == [0, 1, 2] and len(client.calls) == 2


def test_missing_result_entries_count_as_failed():
    class Short(Client):
        def put_records(self, StreamName, Records):
            self.calls.append(len(Records))
            return {"Records": []}

    p, _ = putter(Short([]), attempts=1)
    assert p.put(entries(2)).failed == {0: "MissingResult", 1: "MissingResult"}


def test_large_requests_are_split():
    client = Client([])
    p, _ = putter(client)
    big = entries(100, size=60 * 1024)
    result = p.put(big)
    assert len(result.accepted) == 100
    assert len(client.calls) == 2
    assert sum(e.size for e in big[: len(client.calls[0])]) <= MAX_BYTES_PER_CALL


def test_attempts_must_be_positive():
    with pytest.raises(ValueError):
        RecordPutter(Client([]), "s", attempts=0)
