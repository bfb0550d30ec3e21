"""A WSGI adapter for the ingest and a small threaded server (``pistats ingest-server``).

The server is the standard library's wsgiref with one thread per connection: enough for local
use, load tests and running behind nginx, not a hardened internet-facing server.
"""

from __future__ import annotations

import logging
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from pistats.contract import MAX_BODY_BYTES
from pistats.ingest.api import IngestRequest, error_response

log = logging.getLogger(__name__)

_READ_CHUNK = 64 * 1024
# An oversized body is read and dropped up to this size so the client sees the 413 rather than
# a reset connection; beyond it the connection is simply closed after the answer.
_DRAIN_LIMIT = 8 * 1024 * 1024


def _headers(environ: dict) -> list[tuple[str, str]]:
    headers = [(key[5:].replace("_", "-"), value) for key, value in environ.items() if key.startswith("HTTP_")]
    if environ.get("CONTENT_TYPE"):
        headers.append(("content-type", environ["CONTENT_TYPE"]))
    return headers


def _read(stream, length: int) -> bytes:
    chunks, remaining = [], length
    while remaining > 0:
        chunk = stream.read(min(_READ_CHUNK, remaining))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def make_wsgi_app(service):
    """A WSGI application answering with ``service`` (an IngestService)."""

    def app(environ, start_response):
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0:
            response = error_response(400, "invalid Content-Length")
        elif length > MAX_BODY_BYTES:
            if length <= _DRAIN_LIMIT:
                _read(environ["wsgi.input"], length)
            response = error_response(413, f"body larger than {MAX_BODY_BYTES} bytes")
        else:
            request = IngestRequest.build(
                environ.get("REQUEST_METHOD", "GET"),
                environ.get("PATH_INFO") or "/",
                _headers(environ),
                _read(environ["wsgi.input"], length),
                environ.get("REMOTE_ADDR"),
            )
            try:
                response = service.handle(request)
            except Exception:
                log.exception("ingest failed on %r", request)
                response = error_response(500, "internal error")
        body = response.body_bytes()
        headers = response.all_headers() + [("Content-Length", str(len(body)))]
        start_response(f"{response.status} {response.reason}", headers)
        return [body]

    return app


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    # Load generators open many connections at once.
    request_queue_size = 128


class QuietRequestHandler(WSGIRequestHandler):
    """No access log line per request (the default prints every request to stderr)."""

    def log_message(self, format, *args):
        log.debug("%s - %s", self.address_string(), format % args)


def make_ingest_server(service, host: str = "127.0.0.1", port: int = 8080) -> ThreadingWSGIServer:
    """A threaded WSGI server for ``service``; ``port`` 0 picks a free port (see ``server_port``)."""
    return make_server(
        host, port, make_wsgi_app(service), server_class=ThreadingWSGIServer, handler_class=QuietRequestHandler
    )
