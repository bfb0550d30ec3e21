"""The FCM client's HTTP transport: httpx and httpcore over plain asyncio, in lanes.

Two costs of httpx's default transport dominate a campaign's CPU (profiled in benchmarks/push.py):

- httpcore's asyncio backend goes through anyio, and its connection pool asks every connection
  whether it has expired on every request event; for an idle HTTP/1.1 connection that is
  ``get_extra_info("is_readable")``, which anyio answers by building a dict of socket attributes
  (a ``getpeername`` syscall included) and httpcore by polling the socket. :class:`AsyncioBackend`
  is the same :class:`httpcore.AsyncNetworkBackend` interface on an asyncio protocol that reads as
  data arrives: a connection is "readable" when bytes or an EOF wait in its buffer, no syscall.
- One pool of N HTTP/1.1 connections scans all N connections for each queued request on each
  request event (O(N²) work per round of N requests), and hands an idle connection to several
  queued requests at once, all but one of which then retry. :class:`LaneTransport` shards it:
  N lanes of one connection each; a request takes an idle lane (the most recently used first,
  so a slow campaign keeps few connections warm) and gives it back when its response is closed.

HTTP/2 (https endpoints: FCM itself) keeps one pool, on :class:`AsyncioBackend`: there one
connection carries many requests at once, and the pool holds a handful of connections.

Errors are httpcore's (``ConnectError``, ``ReadTimeout``, ...), which httpx maps to its own, as
with its default backend.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import AsyncIterator, Iterable

import httpcore
import httpx

READ_BUFFER_MAX_BYTES = 256 * 1024  # reading pauses above this much unread data


class _Protocol(asyncio.Protocol):
    """Buffers what arrives; one reader and one writer wait on it at a time (httpcore's use)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.eof = False
        self.error: BaseException | None = None
        self.read_waiter: asyncio.Future | None = None
        self.drain_waiter: asyncio.Future | None = None
        self.write_paused = False
        self.read_paused = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > READ_BUFFER_MAX_BYTES and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False  # close the transport

    def connection_lost(self, exc: BaseException | None) -> None:
        self.eof = True
        self.error = exc
        self._wake_reader()
        waiter, self.drain_waiter = self.drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter, self.drain_waiter = self.drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_reader(self) -> None:
        waiter, self.read_waiter = self.read_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


async def _wait(future: asyncio.Future, timeout: float | None, timeout_error: type[Exception]) -> None:
    """Await ``future``; ``timeout_error`` when ``timeout`` seconds pass first (None: no limit)."""
    if timeout is None:
        await future
        return
    loop = asyncio.get_running_loop()
    timer = loop.call_later(timeout, _expire, future, timeout_error)
    try:
        await future
    finally:
        timer.cancel()


def _expire(future: asyncio.Future, timeout_error: type[Exception]) -> None:
    if not future.done():
        future.set_exception(timeout_error("timed out"))


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection (TCP, or TLS over it) for httpcore."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._pending: list[bytes] | None = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if not protocol.chunks and not protocol.eof:
            protocol.read_waiter = asyncio.get_running_loop().create_future()
            await _wait(protocol.read_waiter, timeout, httpcore.ReadTimeout)
        chunks = protocol.chunks
        if not chunks:
            if protocol.error is not None:
                raise httpcore.ReadError(str(protocol.error) or type(protocol.error).__name__)
            return b""
        data = chunks.popleft()
        if len(data) > max_bytes:
            chunks.appendleft(data[max_bytes:])
            data = data[:max_bytes]
        protocol.buffered -= len(data)
        if protocol.read_paused and protocol.buffered <= READ_BUFFER_MAX_BYTES // 2:
            protocol.read_paused = False
            self._transport.resume_reading()
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        protocol = self._protocol
        if protocol.error is not None or self._transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        # httpcore writes a request's head and body apart; they leave in one segment (one
        # syscall, one wake-up of the server) when the writing task next yields.
        if self._pending is None:
            self._pending = [buffer]
            asyncio.get_running_loop().call_soon(self._flush)
        else:
            self._pending.append(buffer)
        if protocol.write_paused:
            self._flush()
            protocol.drain_waiter = asyncio.get_running_loop().create_future()
            await _wait(protocol.drain_waiter, timeout, httpcore.WriteTimeout)
            if protocol.error is not None:
                raise httpcore.WriteError(str(protocol.error) or type(protocol.error).__name__)

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    async def aclose(self) -> None:
        self._flush()
        self._transport.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            transport = await loop.start_tls(self._transport, self._protocol, ssl_context,
                                             server_hostname=server_hostname, ssl_handshake_timeout=timeout)
        except TimeoutError as error:
            self._transport.close()
            raise httpcore.ConnectTimeout(str(error) or "TLS handshake timed out") from None
        except (OSError, ssl.SSLError, ConnectionError) as error:
            self._transport.close()
            raise httpcore.ConnectError(str(error)) from None
        if transport is None:
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        self._protocol.transport = transport
        return AsyncioStream(transport, self._protocol)

    def get_extra_info(self, info: str):
        if info == "is_readable":
            # Idle and readable: the peer closed or sent bytes nobody asked for. Either way the
            # connection is done, as httpcore's socket poll would say.
            return bool(self._protocol.chunks) or self._protocol.eof
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend on asyncio's own transports (TCP_NODELAY, as asyncio sets it)."""

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable | None = None) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(
                    _Protocol, host, port, local_addr=(local_address, 0) if local_address else None)
        except TimeoutError:  # before OSError: TimeoutError is one
            raise httpcore.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as error:
            raise httpcore.ConnectError(str(error)) from None
        return self._stream(transport, protocol, socket_options)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable | None = None) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_unix_connection(_Protocol, path)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"connecting to {path} timed out") from None
        except OSError as error:
            raise httpcore.ConnectError(str(error)) from None
        return self._stream(transport, protocol, socket_options)

    @staticmethod
    def _stream(transport, protocol, socket_options) -> AsyncioStream:
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(transport, protocol)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _PoolTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (its request conversion and exception mapping) on a pool given
    whole: ``AsyncHTTPTransport.__init__`` would build a pool on httpcore's default backend, and
    an SSL context loading the CA bundle (tens of milliseconds) for each lane."""

    def __init__(self, pool) -> None:  # noqa: super().__init__ on purpose not called
        self._pool = pool


def _pooled(*, http2: bool, max_connections: int, keepalive_expiry: float | None,
            backend: httpcore.AsyncNetworkBackend, ssl_context: ssl.SSLContext) -> _PoolTransport:
    return _PoolTransport(httpcore.AsyncConnectionPool(
        ssl_context=ssl_context, max_connections=max_connections, max_keepalive_connections=max_connections,
        keepalive_expiry=keepalive_expiry, http1=True, http2=http2, network_backend=backend))


class _LaneStream(httpx.AsyncByteStream):
    """A response's body; closing it gives its lane back (once)."""

    def __init__(self, stream: httpx.AsyncByteStream, release) -> None:
        self._stream = stream
        self._release = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        release, self._release = self._release, None
        try:
            await self._stream.aclose()
        finally:
            if release is not None:
                release()


class _Lane:
    """One HTTP/1.1 connection, opened on first use and again once closed or expired: the
    "pool" of a lane, which only ever has one request at a time (its response is closed before
    the lane is free again), so none of a pool's queueing is needed."""

    def __init__(self, *, keepalive_expiry: float | None, backend: httpcore.AsyncNetworkBackend,
                 ssl_context: ssl.SSLContext) -> None:
        self._keepalive_expiry = keepalive_expiry
        self._backend = backend
        self._ssl_context = ssl_context
        self._connection: httpcore.AsyncHTTPConnection | None = None

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        connection = self._connection
        if connection is not None and (connection.is_closed() or connection.has_expired()
                                       or not connection.can_handle_request(request.url.origin)):
            self._connection = None
            await connection.aclose()
            connection = None
        if connection is None:
            connection = self._connection = httpcore.AsyncHTTPConnection(
                origin=request.url.origin, ssl_context=self._ssl_context, keepalive_expiry=self._keepalive_expiry,
                http1=True, http2=False, network_backend=self._backend)
        return await connection.handle_async_request(request)

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.aclose()


class LaneTransport(httpx.AsyncBaseTransport):
    """``lanes`` HTTP/1.1 connections, each its own pool of one, shared by whoever sends.

    A request waits for an idle lane at most the request's ``pool`` timeout (``PoolTimeout``),
    as httpx's pool would make it wait for a connection."""

    def __init__(self, lanes: int, *, keepalive_expiry: float | None = 5.0,
                 backend: httpcore.AsyncNetworkBackend | None = None) -> None:
        if lanes < 1:
            raise ValueError("lanes must be >= 1")
        backend = backend or AsyncioBackend()
        ssl_context = httpx.create_ssl_context()  # one for all lanes (an https:// URL given here)
        self._lanes = [_PoolTransport(_Lane(keepalive_expiry=keepalive_expiry, backend=backend, ssl_context=ssl_context))
                       for _ in range(lanes)]
        self._idle = list(reversed(self._lanes))  # pop() takes the most recently released
        self._waiters: collections.deque[asyncio.Future] = collections.deque()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        lane = await self._acquire(request.extensions.get("timeout", {}).get("pool"))
        try:
            response = await lane.handle_async_request(request)
        except BaseException:
            self._release(lane)
            raise
        response.stream = _LaneStream(response.stream, lambda: self._release(lane))
        return response

    async def _acquire(self, timeout: float | None) -> httpx.AsyncHTTPTransport:
        if self._idle:
            return self._idle.pop()
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await _wait(waiter, timeout, httpcore.PoolTimeout)
        except httpcore.PoolTimeout:
            self._waiters.remove(waiter)  # expired unanswered: no lane was handed to it
            raise httpx.PoolTimeout("no connection became free in time") from None
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release(waiter.result())  # handed a lane just as it was cancelled
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise
        return waiter.result()

    def _release(self, lane: httpx.AsyncHTTPTransport) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(lane)
                return
        self._idle.append(lane)

    async def aclose(self) -> None:
        for lane in self._lanes:
            await lane.aclose()


def fcm_transport(*, http2: bool, max_connections: int, keepalive_expiry: float | None = 5.0) -> httpx.AsyncBaseTransport:
    """The transport :class:`pistats.push.fcm.FcmClient` sends with: one HTTP/2 pool of at most
    ``max_connections`` connections, or ``max_connections`` HTTP/1.1 lanes."""
    if http2:
        return _pooled(http2=True, max_connections=max_connections, keepalive_expiry=keepalive_expiry,
                       backend=AsyncioBackend(), ssl_context=httpx.create_ssl_context())
    return LaneTransport(max_connections, keepalive_expiry=keepalive_expiry)
