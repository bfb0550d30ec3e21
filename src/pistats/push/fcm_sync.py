"""A synchronous FCM sender for the ingest's welcome notifications, with a deadline.

The ingest is synchronous (a Lambda invocation, a gunicorn thread), so the welcome does not go
through :class:`pistats.push.fcm.FcmClient` (async): it shares that module's configuration
(:class:`~pistats.push.fcm.FcmConfig`), access tokens (:class:`~pistats.push.fcm.AccessTokens`)
and the reading of FCM's answers (:func:`~pistats.push.fcm.classify`), on a sync
``httpx.Client`` kept for the container's life. Why not ``asyncio.run`` around the async
client per request: an ``httpx.AsyncClient``'s connections belong to the event loop that opened
them, so each request would open a new connection (and TLS session) to FCM; measured against the
local FCM on loopback, see docs/push.md ("Welcome notifications").

This module is imported only when FCM is configured: without it, the ingest imports neither
httpx nor google-auth.

:meth:`SyncFcmSender.send` never raises for what HTTP, the network or the token endpoint does: it
returns a :class:`Delivery`, whose ``state`` is the ledger's (``sent``, ``invalid``, ``failed``:
certainly not delivered, ``unknown``: the request may have reached FCM).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from google.auth import exceptions as auth_exceptions

from pistats.push.fcm import (
    AccessTokens,
    FcmConfig,
    SendResult,
    _refresh_detail,
    classify,
    mask,
    network_failure,
)
from pistats.push.message import request_body

KEEPALIVE_EXPIRY_S = 30.0  # a connection idle longer is closed rather than reused (httpx's default: 5 s)


@dataclass(frozen=True)
class Delivery:
    """One welcome's outcome: ``state`` one of sent, invalid, failed, unknown; ``code`` FCM's
    error code, else ``DEADLINE`` (not sent: no time left), ``AUTH`` (no access token),
    ``NETWORK`` (no connection: not sent; or, when ``unknown``, the connection failed after the
    request went), ``TIMEOUT`` (no answer in time: unknown); ``attempts`` the requests made."""

    state: str
    code: str | None = None
    detail: str = ""
    attempts: int = 1


def delivery_of(result: SendResult, attempts: int) -> Delivery:
    """FCM's answer, or :func:`~pistats.push.fcm.network_failure`'s reading of a network error,
    as a welcome's outcome (pure). ``unknown`` stays unknown (the request may have reached FCM);
    every other failure is ``failed``, with no retry: the request waits for the welcome, and a
    welcome that did not go is better than a slow answer. Our payload refused or our credentials
    refused are ``failed`` too (the request answers as ever; the log says why)."""
    if result.kind == "sent":
        return Delivery("sent", None, "", attempts)
    if result.kind == "invalid_token":
        return Delivery("invalid", result.code, result.detail, attempts)
    if result.kind == "unknown":
        return Delivery("unknown", result.code, result.detail, attempts)
    return Delivery("failed", result.code or result.kind.upper(), result.detail, attempts)


class SyncFcmSender:
    """``sender.send(message, deadline)``, ``deadline`` on ``clock`` (monotonic seconds).

    Each step (an access token when none is cached, the connection, the answer) is bounded by what
    is left of the deadline when it starts: FCM slow or unreachable, a send ends at the deadline;
    in the worst case (a connection slow to open, then an answer slow to come) at twice it.
    ``config.timeout_s`` bounds the token endpoint's call. ``transport``/``token_transport``
    (``httpx.BaseTransport``) replace the network in tests. Thread-safe (gunicorn threads share one).
    """

    def __init__(self, config: FcmConfig, *, transport: httpx.BaseTransport | None = None,
                 token_transport: httpx.BaseTransport | None = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time):
        info, credentials = config.load_credentials()  # the RSA key parsed once
        self.config = config
        self.project_id: str = info["project_id"]
        self.url = f"{config.endpoint.rstrip('/')}/v1/projects/{self.project_id}/messages:send"
        self._clock, self._wall = clock, wall
        self._token_http = httpx.Client(timeout=config.timeout_s, transport=token_transport)
        self.tokens = AccessTokens(info, http=self._token_http, clock=clock, timeout_s=config.timeout_s,
                                   credentials=credentials)
        limits = httpx.Limits(max_connections=config.max_connections,
                              max_keepalive_connections=config.max_connections, keepalive_expiry=KEEPALIVE_EXPIRY_S)
        self._http = httpx.Client(http2=config.http2, limits=limits, timeout=config.timeout_s, transport=transport)

    def __repr__(self) -> str:
        return f"SyncFcmSender(url={self.url!r}, http2={self.config.http2})"

    def close(self) -> None:
        self._http.close()
        self._token_http.close()

    def send(self, message: dict, deadline: float) -> Delivery:
        """One request (plus one refresh-and-resend on 401 ``UNAUTHENTICATED``, time allowing)."""
        body = request_body(message)
        registration_token = message.get("token") if isinstance(message.get("token"), str) else None
        delivery = Delivery("failed", "UNAUTHENTICATED", "", 0)
        for attempt in (1, 2):
            if deadline - self._clock() <= 0:
                return Delivery("failed", "DEADLINE", "no time left before the request", attempt - 1)
            try:
                access_token = self.tokens.get()
            except auth_exceptions.RefreshError as error:
                return Delivery("failed", "AUTH", _refresh_detail(error), attempt - 1)
            except auth_exceptions.TransportError as error:
                return Delivery("failed", "AUTH", mask(str(error)), attempt - 1)
            remaining = deadline - self._clock()
            if remaining <= 0:
                return Delivery("failed", "DEADLINE", "no time left after the access token", attempt - 1)
            try:
                response = self._http.post(self.url, content=body, timeout=httpx.Timeout(remaining), headers={
                    "Authorization": f"Bearer {access_token}",
                    "Content-Type": "application/json; charset=UTF-8",
                })
            except httpx.HTTPError as error:
                # fcm.py's rule: not sent (failed), or may have been (unknown, never sent again).
                return delivery_of(network_failure(error, registration_token), attempt)
            result = classify(response.status_code, response.headers, response.content,
                              token=registration_token, now=self._wall())
            delivery = delivery_of(result, attempt)
            if result.code == "UNAUTHENTICATED" and attempt == 1:
                self.tokens.invalidate(access_token)
                continue
            return delivery
        return delivery
