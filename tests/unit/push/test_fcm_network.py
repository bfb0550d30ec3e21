"""network_failure(): which network failures leave a send to be tried again (FCM certainly did not
act on it) and which make it ``unknown`` (FCM may have it: never sent again), for httpx's errors,
HTTP/2's resets and GOAWAYs as httpcore raises them, and pistats.push.http1's errors."""

from __future__ import annotations

import h2.errors
import h2.events
import httpcore
import httpx
import pytest

from pistats.push import http1
from pistats.push.fcm import SendResult, network_failure, request_may_have_arrived


def h2_error(event) -> httpx.RemoteProtocolError:
    """What httpx raises when httpcore meets ``event`` on an HTTP/2 stream: httpcore's
    RemoteProtocolError carrying the event, mapped by httpx with ``raise ... from``."""
    try:
        try:
            raise httpcore.RemoteProtocolError(event)
        except httpcore.RemoteProtocolError as cause:
            raise httpx.RemoteProtocolError(str(cause)) from cause
    except httpx.RemoteProtocolError as error:
        return error


def reset(code) -> h2.events.StreamReset:
    return h2.events.StreamReset(stream_id=3, error_code=code)


def goaway(last_stream_id: int, code=h2.errors.ErrorCodes.NO_ERROR) -> h2.events.ConnectionTerminated:
    event = h2.events.ConnectionTerminated()
    event.error_code, event.last_stream_id = code, last_stream_id
    return event


NOT_SENT = [
    httpx.ConnectError("[Errno 111] Connection refused"),
    httpx.ConnectTimeout("timed out"),
    httpx.PoolTimeout("no connection free"),
    httpx.WriteError("[Errno 32] Broken pipe"),
    httpx.WriteTimeout("timed out"),
    httpx.UnsupportedProtocol("ftp"),
    h2_error(reset(h2.errors.ErrorCodes.REFUSED_STREAM)),
    h2_error(reset(7)),  # h2 hands over an unknown code as a plain int; REFUSED_STREAM is 7
    h2_error(goaway(0)),
    http1.ConnectError("connecting to 127.0.0.1:9 failed: Connection refused"),
    http1.Timeout("connecting to 127.0.0.1:9 timed out", sent=False),
    http1.Timeout("timed out waiting for a free connection", sent=False),
    http1.ConnectionClosed("the connection is closed", sent=False),
]

MAYBE_SENT = [
    (httpx.ReadTimeout("timed out"), "TIMEOUT"),
    (httpx.ReadError("[Errno 104] Connection reset by peer"), "NETWORK"),
    (httpx.RemoteProtocolError("Server disconnected without sending a response."), "NETWORK"),
    (h2_error(reset(h2.errors.ErrorCodes.INTERNAL_ERROR)), "NETWORK"),
    (h2_error(reset(h2.errors.ErrorCodes.CANCEL)), "NETWORK"),
    (h2_error(goaway(5)), "NETWORK"),  # our stream at most 5: it may have been processed
    (h2_error(goaway(2**31 - 1, h2.errors.ErrorCodes.INTERNAL_ERROR)), "NETWORK"),
    (httpx.RemoteProtocolError("malformed answer"), "NETWORK"),  # no h2 event behind it
    (httpx.LocalProtocolError("??"), "NETWORK"),
    (httpx.DecodingError("bad gzip"), "NETWORK"),
    (http1.Timeout("timed out waiting for the answer", sent=True), "TIMEOUT"),
    (http1.ConnectionClosed("the server closed the connection before answering"), "NETWORK"),
    (http1.ProtocolError("bad status line"), "NETWORK"),
    (RuntimeError("a failure nobody classified"), "NETWORK"),
]


@pytest.mark.parametrize("error", NOT_SENT, ids=lambda e: f"{type(e).__name__}:{e}"[:60])
def test_failures_before_fcm_could_act_are_retried(error):
    assert request_may_have_arrived(error) is False
    result = network_failure(error)
    assert (result.kind, result.code, result.http_status) == ("retry", "NETWORK", None)
    assert result.detail.startswith(type(error).__name__)


@pytest.mark.parametrize("error, code", MAYBE_SENT, ids=lambda e: f"{type(e).__name__}:{e}"[:60])
def test_failures_after_the_request_may_have_arrived_are_unknown(error, code):
    assert request_may_have_arrived(error) is True
    assert network_failure(error) == SendResult("unknown", code, network_failure(error).detail)


def test_the_token_never_reaches_the_detail():
    token = "registration-token-" + "x" * 140
    for error in (httpx.ReadError(f"reset while sending {token}"), httpx.ConnectError(f"{token} refused")):
        assert token not in network_failure(error, token).detail
        assert len(network_failure(error, token).detail) <= 300
