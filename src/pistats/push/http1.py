"""A small HTTP/1.1 client on an asyncio Protocol, for FCM at a plain http:// endpoint.

Why not httpx here: a campaign against the local FCM spent about 1 ms of CPU per send in httpx,
httpcore and h11 (a request and response object each, cookies, event hooks, locks through anyio,
h11's per-event state machine; profiled with benchmarks/push.py), 10 to 20 times the cost of the
runner's own work and of the server's. This client does what ``messages:send`` needs and no
more: one POST at a time per connection (no pipelining), a request written in one piece, the
answer read as it arrives. HTTPS and HTTP/2 (FCM itself) stay on httpx + h2
(:mod:`pistats.push.transport`); this path only serves ``http://`` endpoints.

It is still a correct HTTP/1.1 client for what an answer can be (RFC 9112):

- the body framed by ``Transfer-Encoding: chunked`` (extensions and trailers read and dropped),
  else ``Content-Length`` (several must agree), else by the connection's close; no body on
  1xx/204/304; interim 1xx answers (``100 Continue``) skipped;
- keep-alive unless the answer says ``Connection: close`` (or is HTTP/1.0 without
  ``keep-alive``, or its body ends with the connection); an idle connection the server closed,
  that received bytes nobody asked for, or idle longer than ``keepalive_expiry`` is not reused;
- bounded: the head (status line, headers, a chunk's size line, trailers) to ``max_head_bytes``,
  the body to ``max_body_bytes``; beyond that, or on anything malformed, :class:`ProtocolError`
  and the connection closed;
- one timeout per exchange covering connect, write and the whole answer (:class:`Timeout`).

Every failure is an :class:`Http1Error` whose ``sent`` says whether the request may have
reached the server (False: connecting failed, or the connection was known closed before
writing). The caller decides what that means: :func:`pistats.push.fcm.network_failure` makes a
request that may have arrived an ``unknown`` send (never sent again) and any other a ``retry``.
"""

from __future__ import annotations

import asyncio
import collections
import re
import time
from collections.abc import Callable
from typing import NamedTuple

HEAD_MAX_BYTES = 64 * 1024
BODY_MAX_BYTES = 1024 * 1024
CHUNK_LINE_MAX_BYTES = 4096

_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: [^\r\n]*)?")
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_FIELDS = re.compile(_TOKEN + rb":[^\r\n\0]*(?:\r\n" + _TOKEN + rb":[^\r\n\0]*)*")
_DIGITS = re.compile(r"[0-9]{1,18}")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?")


class Http1Error(Exception):
    """A failed exchange; ``sent``: the request may have reached the server."""

    def __init__(self, message: str, *, sent: bool = True):
        super().__init__(message)
        self.sent = sent


class ConnectError(Http1Error):
    def __init__(self, message: str):
        super().__init__(message, sent=False)


class Timeout(Http1Error):
    timed_out = True  # read by pistats.push.fcm.network_failure (TIMEOUT rather than NETWORK)


class ProtocolError(Http1Error):
    """The answer is not HTTP/1.1 as we read it, or is larger than allowed."""


class ConnectionClosed(Http1Error):
    """The connection ended before the answer did."""


class Response(NamedTuple):
    status: int
    headers: dict[str, str]  # lower-case names; repeated fields joined with ", "
    body: bytes
    keep_alive: bool


# -- reading answers (pure: bytes in, responses out) -----------------------------------------------

class ResponseReader:
    """Reads the answers of one connection from its bytes, fed in order.

    ``feed(data)`` then ``next()`` until None: a complete :class:`Response`, or None while more
    bytes are needed. ``at_eof()`` when the peer closed: the response a close-delimited body
    ends, else :class:`ConnectionClosed` (an answer was cut) or None (nothing was pending).
    ``leftover`` is what arrived after the last complete answer (we never pipeline, so any is a
    fault of the peer). :class:`ProtocolError` on anything malformed or oversized."""

    def __init__(self, *, max_head_bytes: int = HEAD_MAX_BYTES, max_body_bytes: int = BODY_MAX_BYTES):
        self._max_head = max_head_bytes
        self._max_body = max_body_bytes
        self._buffer = bytearray()
        self._reset()

    def _reset(self) -> None:
        self._stage = "head"  # head | length | chunk-size | chunk-data | trailers | until-close
        self._status = 0
        self._headers: dict[str, str] = {}
        self._keep_alive = True
        self._remaining = 0
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._head_bytes = 0  # of the trailers read (bounded as the head)

    @property
    def leftover(self) -> int:
        return len(self._buffer)

    @property
    def idle(self) -> bool:
        """No answer begun."""
        return self._stage == "head" and not self._buffer

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next(self) -> Response | None:
        while True:
            stage = self._stage
            if stage == "head":
                if not self._read_head():
                    return None
            elif stage == "length":
                take = min(self._remaining, len(self._buffer))
                if take:
                    self._take_body(take)
                if self._remaining:
                    return None
                return self._done()
            elif stage == "chunk-size":
                line = self._line(CHUNK_LINE_MAX_BYTES)
                if line is None:
                    return None
                match = _CHUNK_SIZE.fullmatch(line)
                if match is None:
                    raise ProtocolError("a malformed chunk size line")
                self._remaining = int(match.group(1), 16)
                if self._body_bytes + self._remaining > self._max_body:
                    raise ProtocolError(f"the answer's body exceeds {self._max_body} bytes")
                self._stage = "chunk-data" if self._remaining else "trailers"
            elif stage == "chunk-data":
                if self._remaining:
                    take = min(self._remaining, len(self._buffer))
                    if not take:
                        return None
                    self._take_body(take, counted=True)
                    if self._remaining:
                        return None
                if len(self._buffer) < 2:
                    return None
                if self._buffer[:2] != b"\r\n":
                    raise ProtocolError("a chunk not ended by CRLF")
                del self._buffer[:2]
                self._stage = "chunk-size"
            elif stage == "trailers":
                line = self._line(self._max_head)
                if line is None:
                    return None
                if not line:
                    return self._done()
            else:  # until-close: everything is body, until at_eof()
                if self._buffer:
                    self._take_body(len(self._buffer))
                return None

    def at_eof(self) -> Response | None:
        if self._stage == "until-close":
            return self._done()
        if self._stage == "head" and not self._buffer:
            return None
        raise ConnectionClosed("the connection closed in the middle of an answer")

    def _line(self, limit: int) -> bytes | None:
        """A CRLF-ended line; chunk size lines each within ``limit``, the trailers together."""
        used = self._head_bytes if self._stage == "trailers" else 0
        end = self._buffer.find(b"\r\n")
        if (end < 0 and used + len(self._buffer) > limit) or (end >= 0 and used + end + 2 > limit):
            raise ProtocolError(f"a chunk line or the trailers exceed {limit} bytes")
        if end < 0:
            return None
        if self._stage == "trailers":
            self._head_bytes += end + 2
        line = bytes(self._buffer[:end])
        del self._buffer[:end + 2]
        return line

    def _take_body(self, count: int, counted: bool = False) -> None:
        if not counted and self._body_bytes + count > self._max_body:
            raise ProtocolError(f"the answer's body exceeds {self._max_body} bytes")
        self._body.append(bytes(self._buffer[:count]))
        del self._buffer[:count]
        self._body_bytes += count
        self._remaining -= count

    def _done(self) -> Response:
        response = Response(self._status, self._headers, b"".join(self._body), self._keep_alive)
        self._reset()
        return response

    def _read_head(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > self._max_head:
                raise ProtocolError(f"the answer's head exceeds {self._max_head} bytes")
            return False
        if end + 4 > self._max_head:
            raise ProtocolError(f"the answer's head exceeds {self._max_head} bytes")
        head = bytes(self._buffer[:end])
        del self._buffer[:end + 4]
        first = head.find(b"\r\n")
        match = _STATUS_LINE.fullmatch(head if first < 0 else head[:first])
        if match is None:
            raise ProtocolError("not an HTTP/1.x status line")
        minor, status = match.group(1), int(match.group(2))
        headers: dict[str, str] = {}
        lengths: set[str] = set()
        if first >= 0:
            # One pass checks every field line (a token, a colon, no CR, LF or NUL in the value:
            # this also refuses obsolete line folding); then they are split as text.
            fields = head[first + 2:]
            if not _FIELDS.fullmatch(fields):
                raise ProtocolError("a malformed header line")
            for line in fields.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                key = name.lower()
                value = value.strip(" \t")
                if key == "content-length":
                    lengths.update(part.strip(" \t") for part in value.split(","))
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
        if 100 <= status < 200:
            if status == 101:
                raise ProtocolError("101 Switching Protocols was not asked for")
            return True  # an interim answer: the real one follows
        connection = {part.strip().lower() for part in headers.get("connection", "").split(",")}
        keep_alive = "close" not in connection and (minor == b"1" or "keep-alive" in connection)
        self._status, self._headers = status, headers
        if status in (204, 304):
            self._stage, self._remaining = "length", 0
        elif "transfer-encoding" in headers:
            codings = [part.strip().lower() for part in headers["transfer-encoding"].split(",")]
            if codings[-1] == "chunked":
                self._stage = "chunk-size"
            else:
                self._stage, keep_alive = "until-close", False
            if lengths:  # both: Transfer-Encoding wins, and the connection is not to be trusted again
                keep_alive = False
        elif lengths:
            if len(lengths) != 1 or not _DIGITS.fullmatch(next(iter(lengths))):
                raise ProtocolError("an invalid or conflicting Content-Length")
            self._remaining = int(next(iter(lengths)))
            if self._remaining > self._max_body:
                raise ProtocolError(f"the answer's body exceeds {self._max_body} bytes")
            self._stage = "length"
        else:
            self._stage, keep_alive = "until-close", False
        self._keep_alive = keep_alive
        return True


# -- one connection --------------------------------------------------------------------------------

class _Connection(asyncio.Protocol):
    """One TCP connection carrying one exchange at a time."""

    def __init__(self, max_head_bytes: int, max_body_bytes: int) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = ResponseReader(max_head_bytes=max_head_bytes, max_body_bytes=max_body_bytes)
        self.waiter: asyncio.Future | None = None
        self.closed = False
        self.idle_since = 0.0

    @property
    def reusable(self) -> bool:
        return not self.closed and self.reader.idle

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            self.close()  # bytes nobody asked for: this connection is out of step
            return
        self.reader.feed(data)
        try:
            response = self.reader.next()
        except ProtocolError as error:
            self._fail(error)
            return
        if response is not None:
            self.waiter = None
            waiter.set_result(response)
            if not response.keep_alive or self.reader.leftover:
                self.close()

    def eof_received(self) -> bool:
        waiter, self.waiter = self.waiter, None
        try:
            response = self.reader.at_eof()
        except Http1Error as error:
            response = None
            if waiter is not None and not waiter.done():
                waiter.set_exception(error)
        if waiter is not None and not waiter.done():
            if response is not None:
                waiter.set_result(response)
            else:
                waiter.set_exception(ConnectionClosed("the server closed the connection before answering"))
        self.closed = True
        return False  # the transport closes itself

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            detail = f": {exc}" if exc else ""
            waiter.set_exception(ConnectionClosed(f"the connection was lost before the answer{detail}"))

    def _fail(self, error: Http1Error) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def exchange(self, request: bytes) -> asyncio.Future:
        """Write ``request`` (one write: the kernel takes it, or asyncio buffers it; a request is
        a few KiB, so no back-pressure is needed) and return the future of its answer."""
        if self.closed or self.transport.is_closing():
            raise ConnectionClosed("the connection is closed", sent=False)
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter


# -- the client ------------------------------------------------------------------------------------

class Http1Client:
    """At most ``max_connections`` keep-alive connections to ``host``:``port``, one exchange each.

    ``await client.exchange(request_bytes)``: a connection (idle, the most recently used first,
    else a new one), the request written whole, its :class:`Response`; within ``timeout_s``
    (connecting, waiting for a free connection and the answer included), else :class:`Timeout`.
    A connection whose exchange failed, timed out or was cancelled is closed, never reused."""

    def __init__(self, host: str, port: int, *, max_connections: int = 100, timeout_s: float = 10.0,
                 keepalive_expiry_s: float = 5.0, max_head_bytes: int = HEAD_MAX_BYTES,
                 max_body_bytes: int = BODY_MAX_BYTES, clock: Callable[[], float] = time.monotonic) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        self.host, self.port = host, port
        self._max = max_connections
        self._timeout = timeout_s
        self._expiry = keepalive_expiry_s
        self._limits = (max_head_bytes, max_body_bytes)
        self._clock = clock
        self._idle: list[_Connection] = []
        self._busy = 0
        self._waiters: collections.deque[asyncio.Future] = collections.deque()
        self._closed = False
        self.connections_opened = 0

    async def exchange(self, request: bytes) -> Response:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        await self._slot(deadline)
        connection = None
        try:
            connection = self._idle_connection()
            if connection is None:
                connection = await self._connect(deadline)
            future = connection.exchange(request)
            timer = loop.call_at(deadline, _expire, future, "timed out waiting for the answer", True)
            try:
                response = await future
            finally:
                timer.cancel()
        except BaseException:
            if connection is not None:
                connection.close()
            self._release(None)
            raise
        self._release(connection if connection.reusable and response.keep_alive else None)
        return response

    async def _slot(self, deadline: float) -> None:
        if self._closed:
            raise ConnectionClosed("the client is closed", sent=False)
        if self._busy < self._max and not self._waiters:
            self._busy += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        timer = asyncio.get_running_loop().call_at(deadline, _expire, waiter, "timed out waiting for a free connection",
                                                   False)
        try:
            await waiter  # _release hands its slot over: _busy is already counted
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release(None)  # handed a slot just as it was cancelled
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise
        finally:
            timer.cancel()

    def _idle_connection(self) -> _Connection | None:
        now = self._clock()
        while self._idle:
            connection = self._idle.pop()
            if connection.reusable and now - connection.idle_since < self._expiry:
                return connection
            connection.close()
        return None

    async def _connect(self, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(deadline):
                _, connection = await loop.create_connection(lambda: _Connection(*self._limits), self.host, self.port)
        except TimeoutError:  # before OSError: TimeoutError is one
            raise Timeout(f"connecting to {self.host}:{self.port} timed out", sent=False) from None
        except OSError as error:
            raise ConnectError(f"connecting to {self.host}:{self.port} failed: {error.strerror or error}") from None
        self.connections_opened += 1
        return connection

    def _release(self, connection: _Connection | None) -> None:
        if connection is not None:
            if self._closed:
                connection.close()
            else:
                connection.idle_since = self._clock()
                self._idle.append(connection)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on
                return
        self._busy -= 1

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def _expire(future: asyncio.Future, message: str, sent: bool) -> None:
    if not future.done():
        future.set_exception(Timeout(message, sent=sent))
