"""The HTTP exchange as plain values, independent of Lambda event formats and WSGI.

Adapters translate their inputs into an :class:`IngestRequest` and an :class:`IngestResponse`
back into their outputs; everything in between is plain Python.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

EVENTS_PATH = "/v1/events"
KEY_HEADER = "x-pistats-key"

CORS_HEADERS = (("Access-Control-Allow-Origin", "*"),)
PREFLIGHT_HEADERS = CORS_HEADERS + (
    ("Access-Control-Allow-Methods", "POST, OPTIONS"),
    ("Access-Control-Allow-Headers", "Content-Type, X-Pistats-Key"),
    ("Access-Control-Max-Age", "86400"),
)


@dataclass(frozen=True)
class IngestRequest:
    """``headers`` has lower-case names; repeated headers are joined with ', ' (RFC 9110).

    ``source_ip`` is the peer as the platform saw it (API Gateway source IP, the ALB-appended
    X-Forwarded-For entry, the WSGI REMOTE_ADDR), or None.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    source_ip: str | None = None

    @classmethod
    def build(
        cls,
        method: str,
        path: str,
        headers: Mapping[str, object] | Iterable[tuple[str, object]] | None,
        body: bytes,
        source_ip: str | None = None,
    ) -> "IngestRequest":
        """Normalise header names; a header value may be a list (multi-value Lambda events)."""
        pairs = headers.items() if isinstance(headers, Mapping) else (headers or ())
        merged: dict[str, str] = {}
        for name, value in pairs:
            values = value if isinstance(value, (list, tuple)) else [value]
            for item in values:
                if item is None:
                    continue
                key = str(name).lower()
                merged[key] = f"{merged[key]}, {item}" if key in merged else str(item)
        return cls(method.upper(), path, merged, body, source_ip)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def __repr__(self) -> str:
        # The write key never reaches a log through a repr.
        shown = {k: ("***" if k == KEY_HEADER else v) for k, v in self.headers.items()}
        return (
            f"IngestRequest(method={self.method!r}, path={self.path!r}, headers={shown!r}, "
            f"body=<{len(self.body)} bytes>, source_ip={self.source_ip!r})"
        )


@dataclass(frozen=True)
class IngestResponse:
    """Status, a JSON body (a dict) and extra headers; Content-Type and CORS are added here."""

    status: int
    body: dict
    headers: tuple[tuple[str, str], ...] = field(default=())

    @property
    def reason(self) -> str:
        try:
            return HTTPStatus(self.status).phrase
        except ValueError:
            return ""

    def body_bytes(self) -> bytes:
        """UTF-8 JSON: text echoed from the client (event ids, field names) costs what the client
        sent, where ASCII escapes would triple it. Should a lone surrogate reach the body (the
        service echoes only valid text), the body is ASCII JSON instead."""
        if self.status == 204:
            return b""
        text = json.dumps(self.body, separators=(",", ":"), ensure_ascii=False)
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(self.body, separators=(",", ":")).encode("ascii")

    def all_headers(self) -> list[tuple[str, str]]:
        headers = [("Content-Type", "application/json")] if self.status != 204 else []
        names = {name.lower() for name, _ in self.headers}
        headers += [h for h in CORS_HEADERS if h[0].lower() not in names]
        return headers + list(self.headers)


def error_response(status: int, message: str, *, headers: Iterable[tuple[str, str]] = (), **extra) -> IngestResponse:
    """``{"error": message, ...extra}``: for failures that concern the whole request."""
    return IngestResponse(status, {"error": message, **extra}, tuple(headers))
