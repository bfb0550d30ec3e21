"""Fakes for the ingest's collaborators (pure logic and fault injection only) and a harness.

Integration tests (tests/integration/ingest) use the real Redis and kinesis-local instead.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from botocore.exceptions import ClientError
from redis.exceptions import ConnectionError as RedisConnectionError

from pistats.contract import decode_record
from pistats.ingest.api import IngestRequest
from pistats.ingest.keys import UNKNOWN, KeyLookup
from pistats.ingest.putter import RecordPutter
from pistats.ingest.service import IngestService


class FakeKinesis:
    """Records PutRecords calls. ``plan`` is a list, one item per call, of per-entry error codes
    (None = accepted) or an exception to raise; calls beyond the plan accept everything."""

    def __init__(self, plan=None):
        self.plan = list(plan or [])
        self.calls: list[list[dict]] = []
        self.stored: list[dict] = []

    def put_records(self, StreamName, Records):
        self.calls.append(Records)
        step = self.plan.pop(0) if self.plan else None
        if isinstance(step, Exception):
            raise step
        codes = step if step is not None else [None] * len(Records)
        results = []
        for number, (record, code) in enumerate(zip(Records, codes)):
            if code:
                results.append({"ErrorCode": code, "ErrorMessage": "injected"})
            else:
                self.stored.append(record)
                results.append({"ShardId": "shardId-000000000000", "SequenceNumber": str(len(self.stored))})
        return {"FailedRecordCount": sum(1 for c in codes if c), "Records": results}

    def describe_stream_summary(self, StreamName):
        return {"StreamDescriptionSummary": {"StreamName": StreamName}}


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "injected"}}, "PutRecords")


class FakeKeys:
    def __init__(self, keys=None, down=False):
        self.keys = keys or {}
        self.down = down

    def resolve(self, key):
        if self.down:
            raise RedisConnectionError("injected")
        return self.keys.get(key, UNKNOWN)

    def ping(self):
        pass


class FakeMarks:
    def __init__(self, down=False):
        self.marked: set[tuple[str, str]] = set()
        self.down = down

    def seen(self, client_id, event_ids):
        if self.down:
            raise RedisConnectionError("injected")
        return {e for e in event_ids if (client_id, e) in self.marked}

    def mark(self, client_id, event_ids):
        if self.down:
            raise RedisConnectionError("injected")
        new = {(client_id, e) for e in event_ids} - self.marked
        self.marked |= new
        return len(new)


GOOD_KEY = "pk_good"
DISABLED_KEY = "pk_disabled"
KEYS = {
    GOOD_KEY: KeyLookup("ok", "client-1", "aaaaaaaaaaaa"),
    DISABLED_KEY: KeyLookup("disabled", "client-2", "bbbbbbbbbbbb"),
}

NOW = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=timezone.utc)


class Harness:
    def __init__(self, plan=None, keys_down=False, marks_down=False, trusted_hops=0, attempts=3, registry=None,
                 welcome=None):
        self.kinesis = FakeKinesis(plan)
        self.marks = FakeMarks(down=marks_down)
        self.sleeps: list[float] = []
        self.service = IngestService(
            keys=FakeKeys(KEYS, down=keys_down),
            marks=self.marks,
            putter=RecordPutter(self.kinesis, "s", attempts=attempts, sleep=self.sleeps.append),
            now=lambda: NOW,
            trusted_hops=trusted_hops,
            retry_after_s=2,
            registry=registry,
            welcome=welcome,
        )

    def post(self, body, **kwargs):
        """(status, parsed body, headers) of ``respond(body, **kwargs)``."""
        response = self.respond(body, **kwargs)
        return response.status, json.loads(response.body_bytes() or b"{}"), dict(response.all_headers())

    def respond(self, body, *, key=GOOD_KEY, content_type="application/json", method="POST", path="/v1/events",
                headers=None, source_ip="198.51.100.7"):
        """The service's IngestResponse to ``body`` (bytes as they are, anything else as JSON)."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        all_headers = {"Content-Type": content_type, "User-Agent": "Mozilla/5.0 test"}
        if key is not None:
            all_headers["X-Pistats-Key"] = key
        all_headers.update(headers or {})
        return self.service.handle(
            IngestRequest.build(method, path, {k: v for k, v in all_headers.items() if v is not None}, raw, source_ip)
        )

    def records(self):
        return [decode_record(r["Data"]) for r in self.kinesis.stored]


@pytest.fixture
def make_harness():
    """``make_harness(plan=..., keys_down=..., marks_down=..., trusted_hops=..., attempts=..., registry=...,
    welcome=...)``."""
    return Harness


@pytest.fixture
def kinesis_error():
    return client_error
