"""The WSGI adapter, driven with wsgiref's test environ (no socket)."""

from __future__ import annotations

import io
import json
from wsgiref.util import setup_testing_defaults

from pistats.contract import MAX_BODY_BYTES
from pistats.ingest.wsgi import make_wsgi_app

EVENT = {
    "event_id": "w-1",
    "type": "register",
    "property_id": "site-1",
    "user_id": "u-1",
    "timestamp": "2026-11-26T11:00:00Z",
}


def call(app, body: bytes, headers: dict, method="POST", path="/v1/events", length=None):
    environ = {}
    setup_testing_defaults(environ)
    environ.update(
        {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "REMOTE_ADDR": "192.0.2.8",
            "CONTENT_LENGTH": str(len(body) if length is None else length),
            "wsgi.input": io.BytesIO(body),
        }
    )
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        environ[key if key == "CONTENT_TYPE" else f"HTTP_{key}"] = value
    started = {}

    def start_response(status, response_headers):
        started["status"], started["headers"] = status, dict(response_headers)

    body_out = b"".join(app(environ, start_response))
    return started["status"], started["headers"], json.loads(body_out) if body_out else None


def test_post_event(make_harness):
    h = make_harness()
    status, headers, body = call(
        make_wsgi_app(h.service),
        json.dumps(EVENT).encode(),
        {"Content-Type": "application/json", "X-Pistats-Key": "pk_good", "User-Agent": "curl/8"},
    )
    assert status == "200 OK"
    assert int(headers["Content-Length"]) > 0
    assert body["accepted"] == 1
    assert h.records()[0]["ip"] == "192.0.2.8"
    assert h.records()[0]["user_agent"] == "curl/8"


def test_oversized_body_is_413_from_content_length(make_harness):
    status, _, body = call(make_wsgi_app(make_harness().service), b"x" * (MAX_BODY_BYTES + 1), {})
    assert status == "413 Request Entity Too Large"
    assert body == {"error": f"body larger than {MAX_BODY_BYTES} bytes"}


def test_bad_content_length_is_400(make_harness):
    status, _, body = call(make_wsgi_app(make_harness().service), b"{}", {}, length="lots")
    assert (status, body) == ("400 Bad Request", {"error": "invalid Content-Length"})


def test_preflight_has_no_body(make_harness):
    status, headers, body = call(make_wsgi_app(make_harness().service), b"", {}, method="OPTIONS")
    assert status == "204 No Content" and body is None
    assert headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"


def test_internal_error_is_500():
    class Broken:
        def handle(self, request):
            raise KeyError("bug")

    status, _, body = call(make_wsgi_app(Broken()), b"{}", {"Content-Type": "application/json"})
    assert (status, body) == ("500 Internal Server Error", {"error": "internal error"})
