"""Pure request rules: content type, body shape, caller IP."""

from __future__ import annotations

import json

import pytest

from pistats.contract import MAX_BATCH_EVENTS
from pistats.ingest.api import IngestRequest, IngestResponse
from pistats.ingest.body import ParsedBody, client_ip, content_type_problem, parse_body


@pytest.mark.parametrize(
    "content_type", ["application/json", "Application/JSON", "application/json; charset=utf-8",
                     'application/json;charset="UTF-8"', "application/json; foo=bar"]
)
def test_accepted_content_types(content_type):
    assert content_type_problem(content_type) is None


@pytest.mark.parametrize(
    "content_type, problem",
    [
        (None, "Content-Type must be application/json"),
        ("", "Content-Type must be application/json"),
        ("text/plain", "Content-Type must be application/json"),
        ("application/x-www-form-urlencoded", "Content-Type must be application/json"),
        ("application/json; charset=latin-1", "the body must be UTF-8 JSON"),
    ],
)
def test_refused_content_types(content_type, problem):
    assert content_type_problem(content_type) == problem


def parse(document) -> ParsedBody | IngestResponse:
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return parse_body("application/json", raw)


def test_single_event_and_batch():
    assert parse({"event_id": "a"}) == ParsedBody([{"event_id": "a"}], is_batch=False)
    assert parse({"batch": [{"event_id": "a"}, 3]}) == ParsedBody([{"event_id": "a"}, 3], is_batch=True)


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"", "the body is not JSON"),
        (b"{", "the body is not JSON"),
        (b'{"a": NaN}', "the body is not JSON"),
        (b"\xff\xfe{}", "the body is not UTF-8"),
        (b"[1]", 'the body must be an event object or {"batch": [event, ...]}'),
        (b'"x"', 'the body must be an event object or {"batch": [event, ...]}'),
    ],
)
def test_unreadable_bodies(raw, message):
    response = parse(raw)
    assert response.status == 400
    assert response.body["error"].startswith(message)


@pytest.mark.parametrize(
    "document, field, problem",
    [
        ({"batch": {}}, "batch", "not a list"),
        ({"batch": []}, "batch", "empty"),
        ({"batch": [{}] * (MAX_BATCH_EVENTS + 1)}, "batch", f"more than {MAX_BATCH_EVENTS} events"),
        ({"batch": [{}], "sdk": "js"}, "sdk", "unknown field next to batch"),
    ],
)
def test_bad_batches(document, field, problem):
    response = parse(document)
    assert response.status == 400
    assert response.body["errors"] == [{"index": None, "field": field, "problem": problem}]


def test_batch_of_the_maximum_size():
    assert len(parse({"batch": [{}] * MAX_BATCH_EVENTS}).events) == MAX_BATCH_EVENTS


@pytest.mark.parametrize(
    "source, forwarded, hops, expected",
    [
        ("198.51.100.1", None, 0, "198.51.100.1"),
        ("198.51.100.1", "203.0.113.9", 0, "198.51.100.1"),
        ("10.0.0.2", "203.0.113.9", 1, "203.0.113.9"),
        ("10.0.0.2", "1.2.3.4, 203.0.113.9, 10.0.0.1", 2, "203.0.113.9"),
        ("10.0.0.2", "203.0.113.9", 3, "203.0.113.9"),
        ("10.0.0.2", " , ", 1, "10.0.0.2"),
        ("10.0.0.2", "not-an-ip", 1, ""),
        (None, None, 0, ""),
        ("2001:DB8::1", None, 0, "2001:db8::1"),
        ("garbage", None, 0, ""),
    ],
)
def test_client_ip(source, forwarded, hops, expected):
    assert client_ip(source, forwarded, hops) == expected


def test_unknown_fields_next_to_batch_are_listed_up_to_ten_and_cut():
    document = {"batch": [{}], **{f"{n}{'k' * 500}": 0 for n in range(12)}}
    response = parse_body("application/json", json.dumps(document).encode())
    errors = response.body["errors"]
    assert len(errors) == 11 and errors[0]["field"] == "0" + "k" * 96 + "..."
    assert errors[-1] == {"index": None, "field": "", "problem": "2 more unknown fields"}


def test_request_headers_are_normalised_and_the_key_is_not_in_the_repr():
    request = IngestRequest.build(
        "post", "/v1/events", {"X-Pistats-Key": ["pk_secret"], "X-Forwarded-For": ["1.1.1.1", "2.2.2.2"]}, b"{}"
    )
    assert request.method == "POST"
    assert request.header("x-forwarded-for") == "1.1.1.1, 2.2.2.2"
    assert request.header("X-PISTATS-KEY") == "pk_secret"
    assert "pk_secret" not in repr(request)


def test_response_headers_and_body():
    response = IngestResponse(503, {"error": "é"}, (("Retry-After", "1"),))
    assert response.body_bytes() == '{"error":"é"}'.encode()
    # Text that is not valid Unicode cannot be UTF-8: the body falls back to ASCII escapes.
    assert IngestResponse(400, {"field": "\ud800"}).body_bytes() == b'{"field":"\\ud800"}'
    assert response.all_headers() == [
        ("Content-Type", "application/json"),
        ("Access-Control-Allow-Origin", "*"),
        ("Retry-After", "1"),
    ]
    assert response.reason == "Service Unavailable"
