"""IngestService: every status path, with fakes for Redis and Kinesis (fault injection)."""

from __future__ import annotations

import pytest

from pistats.contract import MAX_BODY_BYTES
from pistats.ingest.service import (
    ACCEPTED,
    DUPLICATE,
    INVALID,
    MAX_RESPONSE_ERRORS,
    NOT_ACCEPTED,
    EventOutcome,
    summarise,
)
from tests.support import hostile


def event(n=1, **overrides):
    base = {
        "event_id": f"e-{n}",
        "type": "page_view",
        "property_id": "site-1",
        "user_id": f"u-{n}",
        "timestamp": "2026-11-26T11:59:00Z",
    }
    base.update(overrides)
    return base


def test_single_event_is_put_with_partition_key_and_record(make_harness):
    h = make_harness()
    status, body, headers = h.post(event())
    assert status == 200
    assert body["accepted"] == 1 and body["duplicate"] is False
    assert body["results"] == [{"index": 0, "event_id": "e-1", "status": "accepted"}]
    assert h.kinesis.stored[0]["PartitionKey"] == "client-1:u-1"
    assert h.records() == [
        {
            "v": 1,
            "client_id": "client-1",
            "received_at": "2026-11-26T12:00:00.123Z",
            "ip": "198.51.100.7",
            "user_agent": "Mozilla/5.0 test",
            "event": event(),
            "clock_skew": False,
        }
    ]
    assert headers["Access-Control-Allow-Origin"] == "*"


def test_retry_after_success_is_a_duplicate_and_not_put_again(make_harness):
    h = make_harness()
    h.post(event())
    status, body, _ = h.post(event())
    assert status == 200
    assert body["duplicate"] is True and body["results"][0]["status"] == "duplicate"
    assert len(h.kinesis.stored) == 1


def test_duplicate_within_one_batch(make_harness):
    h = make_harness()
    status, body, _ = h.post({"batch": [event(1), event(2), event(1)]})
    assert status == 200
    assert [r["status"] for r in body["results"]] == ["accepted", "accepted", "duplicate"]
    assert len(h.kinesis.stored) == 2


def test_same_event_id_of_another_client_is_not_a_duplicate(make_harness):
    h = make_harness()
    h.marks.marked.add(("client-9", "e-1"))
    status, body, _ = h.post(event())
    assert (status, body["accepted"]) == (200, 1)


def test_batch_with_invalid_events_is_207_and_valid_ones_are_put(make_harness):
    h = make_harness()
    status, body, _ = h.post({"batch": [event(1), event(2, timestamp="yesterday"), event(3, color="red")]})
    assert status == 207
    assert (body["accepted"], body["invalid"]) == (1, 2)
    assert body["errors"] == [
        {"index": 1, "field": "timestamp", "problem": "not RFC 3339"},
        {"index": 2, "field": "color", "problem": "unknown field"},
    ]
    assert [r["status"] for r in body["results"]] == ["accepted", "invalid", "invalid"]
    assert len(h.kinesis.stored) == 1


def test_all_invalid_is_400_with_each_problem(make_harness):
    h = make_harness()
    status, body, _ = h.post({"batch": [event(1, timestamp="x"), "not an event"]})
    assert status == 400
    assert body["errors"] == [
        {"index": 0, "field": "timestamp", "problem": "not RFC 3339"},
        {"index": 1, "field": "", "problem": "event is not a JSON object"},
    ]
    assert h.kinesis.calls == []


def test_single_invalid_event_is_400(make_harness):
    status, body, _ = make_harness().post(event(user_id=""))
    assert status == 400
    assert body["errors"] == [{"index": 0, "field": "user_id", "problem": "empty"}]
    assert body["error"] == "invalid event"


def test_event_whose_record_is_too_large_is_invalid(make_harness):
    big_context = {f"k{i}": "x" * 4000 for i in range(17)}
    status, body, _ = make_harness().post({"batch": [event(1), event(2, context=big_context)]})
    assert status == 207
    assert body["errors"][0]["index"] == 1
    assert body["errors"][0]["problem"].startswith("event too large")


def test_partial_put_failure_is_retried_then_accepted(make_harness):
    h = make_harness(plan=[[None, "ProvisionedThroughputExceededException", "InternalFailure"]])
    status, body, _ = h.post({"batch": [event(1), event(2), event(3)]})
    assert status == 200 and body["accepted"] == 3
    assert [len(call) for call in h.kinesis.calls] == [3, 2]
    assert len(h.sleeps) == 1
    assert sorted(r["event"]["event_id"] for r in h.records()) == ["e-1", "e-2", "e-3"]


def test_leftover_failures_are_503_with_retry_after_and_not_marked(make_harness):
    throttled = "ProvisionedThroughputExceededException"
    h = make_harness(plan=[[None, throttled], [throttled], [throttled]], attempts=3)
    status, body, headers = h.post({"batch": [event(1), event(2)]})
    assert status == 503
    assert headers["Retry-After"] == "2"
    assert body["retry"] == [{"index": 1, "event_id": "e-2"}]
    assert (body["accepted"], body["not_accepted"]) == (1, 1)
    assert h.marks.marked == {("client-1", "e-1")}
    # The client's retry of the refused event goes through: it was never marked.
    status, body, _ = h.post({"batch": [event(2)]})
    assert (status, body["accepted"]) == (200, 1)


def test_whole_call_failure_is_503_and_retried(make_harness, kinesis_error):
    h = make_harness(plan=[kinesis_error("ServiceUnavailable")] * 3, attempts=3)
    status, body, _ = h.post(event())
    assert status == 503
    assert body["duplicate"] is False and body["retry"] == [{"index": 0, "event_id": "e-1"}]
    assert len(h.kinesis.calls) == 3


def test_missing_stream_is_not_retried(make_harness, kinesis_error):
    h = make_harness(plan=[kinesis_error("ResourceNotFoundException")], attempts=3)
    status, _, _ = h.post(event())
    assert status == 503
    assert len(h.kinesis.calls) == 1


@pytest.mark.parametrize(
    "kwargs, status, message",
    [
        ({"key": None}, 401, "missing write key (X-Pistats-Key header)"),
        ({"key": ""}, 401, "missing write key (X-Pistats-Key header)"),
        ({"key": "pk_nope"}, 401, "unknown write key"),
        ({"key": "pk_disabled"}, 403, "write key disabled"),
        ({"content_type": "text/plain"}, 400, "Content-Type must be application/json"),
        ({"content_type": None}, 400, "Content-Type must be application/json"),
        ({"path": "/v2/events"}, 404, "not found; events go to POST /v1/events"),
        ({"method": "GET"}, 405, "method not allowed; use POST"),
    ],
)
def test_request_rejections(kwargs, status, message, make_harness):
    h = make_harness()
    got_status, body, _ = h.post(event(), **kwargs)
    assert (got_status, body["error"]) == (status, message)
    assert h.kinesis.calls == []


def test_non_json_body_is_400(make_harness):
    status, body, _ = make_harness().post(b"{nope")
    assert status == 400 and body["error"].startswith("the body is not JSON")


def test_body_too_large_is_413_before_anything_else(make_harness):
    status, body, _ = make_harness().post(b" " * (MAX_BODY_BYTES + 1), key=None)
    assert (status, body["error"]) == (413, f"body larger than {MAX_BODY_BYTES} bytes")


def test_preflight(make_harness):
    status, _, headers = make_harness().post(b"", method="OPTIONS", key=None)
    assert status == 204
    assert "X-Pistats-Key" in headers["Access-Control-Allow-Headers"]


def test_stage_prefix_in_path_is_accepted(make_harness):
    status, _, _ = make_harness().post(event(), path="/prod/v1/events/")
    assert status == 200


def test_key_store_down_is_503(make_harness):
    status, body, headers = make_harness(keys_down=True).post(event())
    assert (status, body["error"], headers["Retry-After"]) == (503, "write key store unavailable", "2")


def test_marks_down_still_puts(make_harness):
    h = make_harness(marks_down=True)
    status, body, _ = h.post(event())
    assert (status, body["accepted"], len(h.kinesis.stored)) == (200, 1, 1)


def test_trusted_forwarded_for_hop_is_the_ip(make_harness):
    h = make_harness(trusted_hops=1)
    h.post(event(), headers={"X-Forwarded-For": "10.0.0.1, 203.0.113.5"})
    assert h.records()[0]["ip"] == "203.0.113.5"


def test_forwarded_for_is_ignored_without_trusted_hops(make_harness):
    h = make_harness()
    h.post(event(), headers={"X-Forwarded-For": "203.0.113.5"})
    assert h.records()[0]["ip"] == "198.51.100.7"


def test_clock_skew_is_flagged(make_harness):
    h = make_harness()
    h.post({"batch": [event(1, timestamp="2026-11-28T12:00:00Z"), event(2, timestamp="2026-10-01T00:00:00Z")]})
    assert [r["clock_skew"] for r in h.records()] == [True, True]


# A response may always spend this much on its listed problems (at most 100, each with a field
# of at most 100 bytes) and one result per event; anything beyond must come from the request.
RESPONSE_ALLOWANCE = 32 * 1024


@pytest.mark.parametrize("name", sorted(hostile.CASES))
def test_a_hostile_request_never_amplifies(name, make_harness):
    body = hostile.CASES[name]()
    assert len(body) <= MAX_BODY_BYTES
    response = make_harness().respond(body)
    size = len(response.body_bytes())
    assert response.status == 400
    assert size <= RESPONSE_ALLOWANCE + len(body)
    if len(body) >= 10 * RESPONSE_ALLOWANCE:
        assert size * 10 <= len(body)


def test_a_response_lists_at_most_a_hundred_problems_then_counts_the_rest(make_harness):
    status, body, _ = make_harness().post({"batch": [{}] * 100})  # five problems each
    assert status == 400 and len(body["results"]) == 100
    assert len(body["errors"]) == MAX_RESPONSE_ERRORS + 1
    assert body["errors"][-1] == {"index": None, "field": "", "problem": "400 more problems not listed"}


def test_an_invalid_event_id_is_not_echoed(make_harness):
    status, body, _ = make_harness().post({"batch": [event(1, event_id="x" * 65), event(2, event_id=7), event(3)]})
    assert status == 207
    assert [r["event_id"] for r in body["results"]] == [None, None, "e-3"]


def test_summarise_counts_and_status_precedence():
    outcomes = [
        EventOutcome(0, "a", ACCEPTED),
        EventOutcome(1, "b", DUPLICATE),
        EventOutcome(2, None, INVALID),
        EventOutcome(3, "d", NOT_ACCEPTED, error_code="InternalFailure"),
    ]
    response = summarise(outcomes, is_batch=True, retry_after_s=5)
    assert response.status == 503
    assert (response.body["accepted"], response.body["duplicates"], response.body["invalid"]) == (1, 1, 1)
    assert response.body["retry"] == [{"index": 3, "event_id": "d"}]
    assert "duplicate" not in response.body
    assert summarise(outcomes[:3], True, 5).status == 207
    assert summarise(outcomes[:2], True, 5).status == 200
    assert summarise(outcomes[2:3], True, 5).status == 400


def test_failures_are_logged_without_the_key(make_harness, kinesis_error, caplog):
    h = make_harness(plan=[kinesis_error("InternalFailure")] * 3, marks_down=True)
    with caplog.at_level("DEBUG"):
        status, _, _ = h.post(event())
    assert status == 503
    assert "InternalFailure" in caplog.text
    assert "pk_good" not in caplog.text
