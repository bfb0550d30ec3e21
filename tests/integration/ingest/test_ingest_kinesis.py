"""The ingest against kinesis-local and the real Redis: records, partial failures, duplicates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pistats.contract import partition_key
from pistats.ingest.api import IngestRequest
from pistats.ingest.lambda_handler import handle_event

THROTTLED = "ProvisionedThroughputExceededException"


def event(n: int, user: str = "u-1", **overrides) -> dict:
    base = {
        "event_id": f"evt-{n}",
        "type": "page_view",
        "property_id": "site-1",
        "user_id": user,
        "timestamp": "2026-11-26T11:00:00Z",
    }
    base.update(overrides)
    return base


def post(service, body, key, **headers):
    request = IngestRequest.build(
        "POST",
        "/v1/events",
        {"Content-Type": "application/json", "X-Pistats-Key": key, "User-Agent": "itest/1", **headers},
        json.dumps(body).encode(),
        "203.0.113.77",
    )
    response = service.handle(request)
    return response.status, response.body, dict(response.all_headers())


class FlakyKinesis:
    """Wraps the real client: refuses the entries ``refuse(call_number, partition_key, data)``
    picks (answering them with an ErrorCode, as Kinesis does) and forwards the rest."""

    def __init__(self, client, refuse):
        self.client = client
        self.refuse = refuse
        self.calls: list[int] = []

    def put_records(self, StreamName, Records):
        call = len(self.calls)
        self.calls.append(len(Records))
        refused = [self.refuse(call, r["PartitionKey"], r["Data"]) for r in Records]
        forwarded = [r for r, no in zip(Records, refused) if not no]
        results = iter(self.client.put_records(StreamName=StreamName, Records=forwarded)["Records"]) if forwarded else iter(())
        merged = [
            {"ErrorCode": THROTTLED, "ErrorMessage": "Rate exceeded (injected)"} if no else next(results)
            for no in refused
        ]
        return {"FailedRecordCount": sum(refused), "Records": merged}

    def __getattr__(self, name):
        return getattr(self.client, name)


def test_accepted_events_are_in_the_stream_with_the_partition_key(make_service, write_key, stream_records):
    service = make_service()
    batch = [event(1, "u-1"), event(2, "u-2"), event(3, "u-1", type="register")]
    status, body, _ = post(service, {"batch": batch}, write_key)
    assert (status, body["accepted"]) == (200, 3)
    found = stream_records()
    assert sorted((key, record["event"]["event_id"]) for key, record in found) == [
        ("acme:u-1", "evt-1"),
        ("acme:u-1", "evt-3"),
        ("acme:u-2", "evt-2"),
    ]
    record = dict(found)["acme:u-2"]
    assert (record["v"], record["client_id"], record["ip"], record["user_agent"]) == (1, "acme", "203.0.113.77", "itest/1")
    assert record["event"] == event(2, "u-2")


def test_partial_batch_puts_only_valid_events(make_service, write_key, stream_records):
    status, body, _ = post(make_service(), {"batch": [event(1), event(2, timestamp="noon")]}, write_key)
    assert status == 207
    assert body["errors"] == [{"index": 1, "field": "timestamp", "problem": "not RFC 3339"}]
    assert [r["event"]["event_id"] for _, r in stream_records()] == ["evt-1"]


def test_partial_put_failures_are_retried(make_service, kinesis_client, write_key, stream_records):
    # The first call refuses every other entry; the retry carries only those.
    flaky = FlakyKinesis(kinesis_client, lambda call, key, data: call == 0 and b'"evt-1' in data)
    service = make_service(kinesis_client_override=flaky)
    batch = [event(n, f"u-{n % 3}") for n in range(1, 20)]
    status, body, _ = post(service, {"batch": batch}, write_key)
    assert (status, body["accepted"]) == (200, 19)
    refused_first = sum(1 for n in range(1, 20) if str(n).startswith("1"))
    assert flaky.calls == [19, refused_first]
    ids = sorted(r["event"]["event_id"] for _, r in stream_records())
    assert ids == sorted(e["event_id"] for e in batch)


def test_leftover_failures_are_reported_and_not_marked(make_service, kinesis_client, write_key, stream_records):
    flaky = FlakyKinesis(kinesis_client, lambda call, key, data: b'"evt-2"' in data)
    service = make_service(kinesis_client_override=flaky, put_attempts=3, retry_after_s=3)
    status, body, headers = post(service, {"batch": [event(1), event(2), event(3)]}, write_key)
    assert status == 503
    assert headers["Retry-After"] == "3"
    assert body["retry"] == [{"index": 1, "event_id": "evt-2"}]
    assert (body["accepted"], body["not_accepted"]) == (2, 1)
    assert flaky.calls == [3, 1, 1]
    assert sorted(r["event"]["event_id"] for _, r in stream_records()) == ["evt-1", "evt-3"]

    # The SDK retries only the listed event, now that Kinesis is healthy: it is accepted, not
    # dropped as a duplicate, and the events already accepted are duplicates.
    status, body, _ = post(make_service(), {"batch": [event(2)]}, write_key)
    assert (status, body["accepted"]) == (200, 1)
    status, body, _ = post(make_service(), {"batch": [event(1), event(2), event(3)]}, write_key)
    assert (status, body["duplicates"]) == (200, 3)
    assert sorted(r["event"]["event_id"] for _, r in stream_records()) == ["evt-1", "evt-2", "evt-3"]


def test_duplicates_are_dropped_only_after_a_successful_put(make_service, kinesis_client, write_key, stream_records,
                                                            redis_client, key_prefix):
    down = FlakyKinesis(kinesis_client, lambda call, key, data: True)
    status, body, _ = post(make_service(kinesis_client_override=down, put_attempts=2), event(7), write_key)
    assert (status, body["duplicate"]) == (503, False)
    assert redis_client.exists(f"{key_prefix}:seen:acme:evt-7") == 0

    status, body, _ = post(make_service(), event(7), write_key)
    assert (status, body["duplicate"], body["accepted"]) == (200, False, 1)
    ttl = redis_client.ttl(f"{key_prefix}:seen:acme:evt-7")
    assert 24 * 3600 - 60 < ttl <= 24 * 3600

    status, body, _ = post(make_service(), event(7), write_key)
    assert (status, body["duplicate"], body["accepted"]) == (200, True, 0)
    assert len(stream_records()) == 1


def test_ids_at_their_limits_are_put_under_a_key_kinesis_accepts(make_service, key_store, stream_records):
    # A 128-character client id and a 128-character user id make a 257-character key; 127 astral
    # characters count 254 in Kinesis's UTF-16 length. Kinesis refused the whole call for either.
    client_id = "c" * 128
    key, _ = key_store.create(client_id)
    users = ["u" * 128, "😀" * 127, "u-1"]
    batch = [event(n, users[n % 3]) for n in range(6)]
    status, body, _ = post(make_service(), {"batch": batch}, key)
    assert (status, body["accepted"]) == (200, 6)
    found = stream_records()
    assert sorted((k, r["event"]["event_id"]) for k, r in found) == sorted(
        (partition_key(client_id, e["user_id"]), e["event_id"]) for e in batch)
    assert len({k for k, _ in found}) == 3  # one key per user: their events stay in order


def test_missing_stream_is_503(make_service, write_key):
    status, body, headers = post(make_service(stream="no-such-stream-pistats"), event(1), write_key)
    assert status == 503
    assert body["retry"] == [{"index": 0, "event_id": "evt-1"}]
    assert headers["Retry-After"] == "1"


LAMBDA_EVENTS = Path(__file__).resolve().parents[2] / "unit" / "ingest" / "events"


@pytest.mark.parametrize(
    "name, status, expected",
    [
        ("apigw_v1", 200, [("acme:u-42", "0f8fad5b-d9cb-469f-a165-70867728950e", "203.0.113.10")]),
        ("apigw_v2", 207, [("acme:u-7", "a-1", "198.51.100.23")]),
        ("alb", 200, [("acme:u-9", "n-1", "192.0.2.44")]),
    ],
)
def test_lambda_fixture_events_reach_the_stream(make_service, write_key, stream_records, name, status, expected):
    lambda_event = json.loads((LAMBDA_EVENTS / f"{name}.json").read_text())
    for headers in (lambda_event.get("headers") or {}, lambda_event.get("multiValueHeaders") or {}):
        for header in headers:
            if header.lower() == "x-pistats-key":
                headers[header] = [write_key] if isinstance(headers[header], list) else write_key
    result = handle_event(make_service(), lambda_event)
    assert result["statusCode"] == status
    assert [(key, r["event"]["event_id"], r["ip"]) for key, r in stream_records()] == expected
