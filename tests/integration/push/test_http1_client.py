"""pistats.push.http1.Http1Client against real sockets: the local FCM and servers that misbehave
(chunked answers, Connection: close, answers cut short, silence, garbage, idle connections closed)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from pistats.push import http1
from pistats.push.fcm import FcmClient, FcmConfig
from pistats.push.message import Content, build_message
from pistats.testing.fcm import LocalFcm

pytestmark = pytest.mark.integration

CONTENT = Content("Back in stock", "The shoes you liked", "https://shop.example/p/1", "c_0123456789abcdef0123", "c_0123")
OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"name":"m1"}'


def request(body: bytes = b'{"x":1}', target: str = "/v1/projects/p/messages:send") -> bytes:
    return (f"POST {target} HTTP/1.1\r\nHost: test\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


class Scripted:
    """A TCP server answering each request (head + Content-Length body) with what ``answer(n)``
    says: bytes to write, or ``("close", bytes)`` to write then close, ``("hang", bytes)`` to write
    then never answer again. Records each request and each connection."""

    def __init__(self, answer):
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0
        self.open_now = 0
        self.open_max = 0

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    async def _serve(self, reader, writer):
        self.connections += 1
        self.open_now += 1
        self.open_max = max(self.open_max, self.open_now)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                self.requests.append(head + await reader.readexactly(length))
                what = self.answer(len(self.requests))
                action, data = what if isinstance(what, tuple) else ("answer", what)
                if isinstance(data, list):  # pieces with a pause between them
                    for piece in data:
                        writer.write(piece)
                        await writer.drain()
                        await asyncio.sleep(0.01)
                else:
                    writer.write(data)
                    await writer.drain()
                if action == "close":
                    return
                if action == "hang":
                    await asyncio.sleep(3600)
        finally:
            self.open_now -= 1
            writer.close()


def run(coroutine):
    return asyncio.run(coroutine)


def test_requests_reach_the_server_whole_and_connections_are_kept():
    async def go():
        async with Scripted(lambda n: OK) as server:
            client = http1.Http1Client("127.0.0.1", server.port, max_connections=4, timeout_s=5)
            answers = [await client.exchange(request(b'{"n":%d}' % n)) for n in range(5)]
            await client.aclose()
            return server, answers

    server, answers = run(go())
    assert [(a.status, a.body) for a in answers] == [(200, b'{"name":"m1"}')] * 5
    assert server.requests == [request(b'{"n":%d}' % n) for n in range(5)]
    assert server.connections == 1


def test_chunked_answers_in_pieces():
    chunked = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n{\"na", b"me\"\r\n7\r\n:\"m1\"}\n\r\n", b"0\r\n\r\n"]

    async def go():
        async with Scripted(lambda n: chunked) as server:
            client = http1.Http1Client("127.0.0.1", server.port, timeout_s=5)
            answers = [await client.exchange(request()) for _ in range(2)]
            await client.aclose()
            return server, answers

    server, answers = run(go())
    assert [a.body for a in answers] == [b'{"name":"m1"}\n'] * 2
    assert server.connections == 1


def test_connection_close_opens_a_new_connection():
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"

    async def go():
        async with Scripted(lambda n: ("close", closing)) as server:
            client = http1.Http1Client("127.0.0.1", server.port, timeout_s=5)
            answers = [await client.exchange(request()) for _ in range(3)]
            await client.aclose()
            return server, answers, client.connections_opened

    server, answers, opened = run(go())
    assert [a.body for a in answers] == [b"ok"] * 3
    assert server.connections == opened == 3


def test_body_until_close():
    async def go():
        async with Scripted(lambda n: ("close", b"HTTP/1.1 500 Oops\r\n\r\nplain text")) as server:
            client = http1.Http1Client("127.0.0.1", server.port, timeout_s=5)
            answer = await client.exchange(request())
            await client.aclose()
            return answer

    answer = run(go())
    assert (answer.status, answer.body, answer.keep_alive) == (500, b"plain text", False)


def test_an_idle_connection_the_server_closed_is_not_reused():
    async def go():
        async with Scripted(lambda n: ("close", OK)) as server:  # closes without saying so
            client = http1.Http1Client("127.0.0.1", server.port, timeout_s=5)
            first = await client.exchange(request())
            await asyncio.sleep(0.1)  # the EOF arrives while the connection is idle
            second = await client.exchange(request())
            await client.aclose()
            return server, first, second

    server, first, second = run(go())
    assert first.status == second.status == 200 and server.connections == 2


@pytest.mark.parametrize("answer, error", [
    (("close", OK[:40]), http1.ConnectionClosed),            # cut in the head
    (("close", OK[:-4]), http1.ConnectionClosed),            # cut in the body
    (("close", b""), http1.ConnectionClosed),                # closed without a word
    (("hang", b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n{\"na"), http1.Timeout),  # stalls mid-body
    (("hang", b""), http1.Timeout),                          # never answers
    (("hang", b"SPDY/3 200 OK\r\n\r\n"), http1.ProtocolError),
    (("hang", b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000), http1.ProtocolError),
])
def test_broken_answers_are_errors_that_say_the_request_went(answer, error):
    async def go():
        async with Scripted(lambda n: answer if n == 1 else OK) as server:
            client = http1.Http1Client("127.0.0.1", server.port, timeout_s=0.5)
            with pytest.raises(error) as raised:
                await client.exchange(request())
            after = await client.exchange(request())  # a broken connection is never used again
            await client.aclose()
            return server, raised.value, after

    server, raised, after = run(go())
    assert raised.sent is True
    assert after.status == 200 and server.connections == 2 and len(server.requests) == 2


def test_bytes_nobody_asked_for_end_the_connection():
    async def go():
        async with Scripted(lambda n: OK + b"HTTP/1.1 200 OK\r\n") as server:
            client = http1.Http1Client("127.0.0.1", server.port, timeout_s=5)
            answers = [await client.exchange(request()) for _ in range(2)]
            await client.aclose()
            return server, answers

    server, answers = run(go())
    assert [a.status for a in answers] == [200, 200] and server.connections == 2


def test_connection_refused_says_nothing_was_sent():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def go():
        client = http1.Http1Client("127.0.0.1", port, timeout_s=2)
        with pytest.raises(http1.ConnectError) as raised:
            await client.exchange(request())
        return raised.value

    assert run(go()).sent is False


def test_at_most_max_connections_and_waiting_for_a_free_one_is_bounded():
    async def go():
        async with Scripted(lambda n: [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", b"ok"]) as server:
            client = http1.Http1Client("127.0.0.1", server.port, max_connections=2, timeout_s=5)
            answers = await asyncio.gather(*(client.exchange(request()) for _ in range(20)))
            await client.aclose()
        async with Scripted(lambda n: ("hang", b"")) as silent:
            client = http1.Http1Client("127.0.0.1", silent.port, max_connections=1, timeout_s=0.3)
            outcomes = await asyncio.gather(client.exchange(request()), client.exchange(request()),
                                            return_exceptions=True)
            await client.aclose()
        return server, answers, silent, outcomes

    server, answers, silent, outcomes = run(go())
    assert len(answers) == 20 and {a.body for a in answers} == {b"ok"}
    assert server.open_max <= 2 and server.connections <= 2
    assert [type(o) for o in outcomes] == [http1.Timeout, http1.Timeout]
    assert sorted(o.sent for o in outcomes) == [False, True]  # the second never got a connection
    assert len(silent.requests) == 1


def test_a_cancelled_exchange_closes_its_connection():
    async def go():
        async with Scripted(lambda n: ("hang", b"") if n == 1 else OK) as server:
            client = http1.Http1Client("127.0.0.1", server.port, max_connections=1, timeout_s=5)
            task = asyncio.ensure_future(client.exchange(request()))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            after = await client.exchange(request())  # the slot came back, on a new connection
            await client.aclose()
            return server, after

    server, after = run(go())
    assert after.status == 200 and server.connections == 2


# -- through FcmClient --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def local_fcm():
    with LocalFcm(script={"default": "ok", "prefixes": {"gone-": "unregistered", "quota-": "quota:1:2"}}) as fcm:
        yield fcm


def test_fcm_client_over_http1_reads_every_kind_of_answer(local_fcm, tmp_path):
    config = FcmConfig(local_fcm.url, local_fcm.write_credentials(tmp_path / "sa.json"), max_connections=3)

    async def go():
        async with FcmClient(config) as client:
            tokens = ["fine-0000000000", "gone-0000000000", "quota-000000000", "quota-000000000"]
            return client.client_kind, [await client.send(build_message(CONTENT, t)) for t in tokens]

    kind, results = run(go())
    assert kind == "http1"
    assert [(r.kind, r.code) for r in results] == [("sent", None), ("invalid_token", "UNREGISTERED"),
                                                   ("retry", "QUOTA_EXCEEDED"), ("sent", None)]
    assert results[0].name and results[2].retry_after_s == 2.0 and results[2].http_status == 429


def test_fcm_client_makes_a_connection_broken_after_the_request_unknown(local_fcm, tmp_path):
    credentials = local_fcm.write_credentials(tmp_path / "sa.json")  # the token endpoint stays the live FCM

    async def go():
        async with Scripted(lambda n: ("close", OK[:30])) as broken:
            async with FcmClient(FcmConfig(f"http://127.0.0.1:{broken.port}", credentials, timeout_s=2)) as client:
                return broken, await client.send(build_message(CONTENT, "a-token-that-must-not-leak-000000000000000000"))

    broken, result = run(go())
    assert (result.kind, result.code) == ("unknown", "NETWORK") and "ConnectionClosed" in result.detail
    assert b"Authorization: Bearer " in broken.requests[0] and b"a-token-that-must-not-leak" in broken.requests[0]
    assert "a-token-that-must-not-leak" not in result.detail
