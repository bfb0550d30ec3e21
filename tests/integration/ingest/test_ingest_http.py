"""The ingest over HTTP (threaded WSGI server) on kinesis-local and Redis: every status path."""

from __future__ import annotations

import pytest

from pistats.contract import MAX_BODY_BYTES

EVENT = {
    "event_id": "h-1",
    "type": "subscribe",
    "push_token": "fcm:abc",
    "property_id": "site-1",
    "user_id": "u-1",
    "timestamp": "2026-11-26T11:00:00Z",
}


def test_accept_then_duplicate(http_server, write_key, stream_records):
    client = http_server()
    status, body, headers = client.post(EVENT, key=write_key)
    assert (status, body["accepted"], body["duplicate"]) == (200, 1, False)
    assert headers["Content-Type"] == "application/json"
    status, body, _ = client.post(EVENT, key=write_key)
    assert (status, body["duplicate"], body["results"][0]["status"]) == (200, True, "duplicate")
    (record,) = stream_records()
    assert record[0] == "acme:u-1"
    assert record[1]["ip"] == "127.0.0.1"


def test_batch_207(http_server, write_key, stream_records):
    status, body, _ = http_server().post({"batch": [EVENT, {**EVENT, "event_id": "h-2", "push_token": None}]},
                                         key=write_key)
    assert status == 207
    assert body["errors"] == [{"index": 1, "field": "push_token", "problem": "required for subscribe"}]
    assert len(stream_records()) == 1


def test_disabled_key_is_403_and_unknown_401(http_server, key_store, write_key):
    client = http_server()
    key_id = [info.key_id for info in key_store.list() if info.client_id == "acme"][0]
    key_store.set_enabled(key_id, False)
    assert client.post(EVENT, key=write_key)[:2] == (403, {"error": "write key disabled"})
    assert client.post(EVENT, key=write_key + "x")[:2] == (401, {"error": "unknown write key"})


@pytest.mark.parametrize(
    "kwargs, status, message",
    [
        ({"key": None}, 401, "missing write key (X-Pistats-Key header)"),
        ({"content_type": "text/plain"}, 400, "Content-Type must be application/json"),
        ({"body": b"not json"}, 400, "the body is not JSON: Expecting value: line 1 column 1 (char 0)"),
        ({"body": b"[]"}, 400, 'the body must be an event object or {"batch": [event, ...]}'),
        ({"body": b" " * (MAX_BODY_BYTES + 1)}, 413, f"body larger than {MAX_BODY_BYTES} bytes"),
        ({"path": "/v1/other"}, 404, "not found; events go to POST /v1/events"),
        ({"method": "PUT"}, 405, "method not allowed; use POST"),
        ({"body": {**EVENT, "timestamp": "now"}}, 400, "invalid event"),
        ({"body": {"batch": []}}, 400, "invalid request"),
    ],
)
def test_rejections(http_server, write_key, stream_records, kwargs, status, message):
    body = kwargs.pop("body", EVENT)
    key = kwargs.pop("key", write_key)
    got_status, got_body, _ = http_server().post(body, key=key, **kwargs)
    assert (got_status, got_body["error"]) == (status, message)
    assert stream_records() == []


def test_redis_down_is_503(http_server, make_service, write_key):
    client = http_server(make_service(redis_url="redis://127.0.0.1:1/0"))
    status, body, headers = client.post(EVENT, key=write_key)
    assert (status, body["error"], headers["Retry-After"]) == (503, "write key store unavailable", "1")
