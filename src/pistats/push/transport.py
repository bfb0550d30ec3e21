"""The FCM client's HTTPS transport: httpx and httpcore over plain asyncio.

httpcore's asyncio backend goes through anyio, and its connection pool asks every connection
whether it has expired on every request event; for an idle connection that is
``get_extra_info("is_readable")``, which anyio answers by building a dict of socket attributes
(a ``getpeername`` syscall included) and httpcore by polling the socket. :class:`AsyncioBackend`
is the same :class:`httpcore.AsyncNetworkBackend` interface on an asyncio protocol that reads as
data arrives: a connection is "readable" when bytes or an EOF wait in its buffer, no syscall.

It serves https endpoints (FCM itself), HTTP/2 over TLS: one pool of a handful of connections,
each carrying many requests at once. Plain http endpoints (the local FCM) go through
:mod:`pistats.push.http1` instead, which costs about a tenth of httpx's CPU per request (the
lanes of single HTTP/1.1 connections this module had for them are gone with it).

Errors are httpcore's (``ConnectError``, ``ReadTimeout``, ...), which httpx maps to its own, as
with its default backend.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import Iterable

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
            try:
                await _wait(protocol.drain_waiter, timeout, httpcore.WriteTimeout)
            except httpcore.WriteTimeout:
                # The rest of this write still waits in asyncio's buffer: drop it with the
                # connection, so that a request reported not sent (pistats.push.fcm.network_failure)
                # never leaves later (close() would flush it; abort() discards it).
                self._transport.abort()
                raise
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


def fcm_transport(*, http2: bool, max_connections: int, keepalive_expiry: float | None = 5.0) -> httpx.AsyncBaseTransport:
    """The transport :class:`pistats.push.fcm.FcmClient` sends with to https endpoints: one pool
    of at most ``max_connections`` connections (HTTP/2 when ``http2``). Plain http endpoints
    do not come here: :mod:`pistats.push.http1` serves them."""
    return _pooled(http2=http2, max_connections=max_connections, keepalive_expiry=keepalive_expiry,
                   backend=AsyncioBackend(), ssl_context=httpx.create_ssl_context())
