"""pistats.push.http1.ResponseReader: HTTP/1.1 answers framed, bounded and refused as RFC 9112 says."""

from __future__ import annotations

import pytest

from pistats.push.http1 import ConnectionClosed, ProtocolError, Response, ResponseReader


def read_all(data: bytes, *, pieces: int = 1, **limits) -> list[Response]:
    """Feed ``data`` in ``pieces``-byte steps (1: byte by byte) and collect the answers."""
    reader = ResponseReader(**limits)
    answers = []
    for start in range(0, len(data), pieces):
        reader.feed(data[start:start + pieces])
        while (answer := reader.next()) is not None:
            answers.append(answer)
    return answers


OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"name":"m1"}'


@pytest.mark.parametrize("pieces", [1, 7, 10_000])
def test_content_length_whole_or_in_pieces(pieces):
    (answer,) = read_all(OK, pieces=pieces)
    assert answer == Response(200, {"content-type": "application/json", "content-length": "13"}, b'{"name":"m1"}', True)


def test_keep_alive_answers_follow_one_another():
    assert [a.body for a in read_all(OK * 3, pieces=5)] == [b'{"name":"m1"}'] * 3


@pytest.mark.parametrize("pieces", [1, 3, 10_000])
def test_chunked_with_extensions_and_trailers(pieces):
    data = (b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;name=value\r\n{\"err\r\n"
            b"A\r\nor\":\"gone\"\r\n"
            b"2\r\n}\n\r\n"
            b"0\r\nX-Trailer: 1\r\n\r\n")
    (answer,) = read_all(data + OK, pieces=pieces)[:1]
    assert (answer.status, answer.body, answer.keep_alive) == (404, b'{"error":"gone"}\n', True)
    assert [a.status for a in read_all(data + OK, pieces=pieces)] == [404, 200]


def test_connection_close_and_http10():
    close = b"HTTP/1.1 503 Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    (answer,) = read_all(close)
    assert (answer.status, answer.body, answer.keep_alive) == (503, b"", False)
    (old,) = read_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert old.keep_alive is False
    (kept,) = read_all(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok")
    assert kept.keep_alive is True


def test_body_until_close():
    reader = ResponseReader()
    reader.feed(b"HTTP/1.1 500 Internal\r\nContent-Type: text/plain\r\n\r\nsomething ")
    assert reader.next() is None
    reader.feed(b"broke")
    assert reader.next() is None
    answer = reader.at_eof()
    assert (answer.status, answer.body, answer.keep_alive) == (500, b"something broke", False)


def test_no_body_on_204_304_and_interim_answers_skipped():
    data = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n") + OK
    assert [(a.status, a.body) for a in read_all(data)] == [(204, b""), (304, b""), (200, b'{"name":"m1"}')]


def test_repeated_headers_joined_and_names_lowered():
    (answer,) = read_all(b"HTTP/1.1 429 Too Many\r\nRetry-After: 3\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 0\r\n\r\n")
    assert answer.headers == {"retry-after": "3", "x-a": "1, 2", "content-length": "0"}


def test_transfer_encoding_beside_content_length_wins_and_ends_the_connection():
    (answer,) = read_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
    assert (answer.body, answer.keep_alive) == (b"ok", False)


def test_cut_answers_are_connection_closed():
    for cut in (b"HTTP/1.1 200 OK\r\nContent-Len", OK[:-3],
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"):
        reader = ResponseReader()
        reader.feed(cut)
        assert reader.next() is None
        with pytest.raises(ConnectionClosed):
            reader.at_eof()
    assert ResponseReader().at_eof() is None  # nothing pending: a clean close


@pytest.mark.parametrize("data", [
    b"HTTP/2 200 OK\r\n\r\n",
    b"ICY 200 OK\r\n\r\n",
    b"HTTP/1.1 20 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
])
def test_malformed_answers_are_refused(data):
    with pytest.raises(ProtocolError):
        read_all(data)


def test_same_content_length_twice_is_one():
    (answer,) = read_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok")
    assert answer.body == b"ok"


def test_bounds():
    with pytest.raises(ProtocolError, match="head exceeds"):
        read_all(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 2000, max_head_bytes=1024)  # no end of head in sight
    with pytest.raises(ProtocolError, match="head exceeds"):
        read_all(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n", max_head_bytes=1024)
    with pytest.raises(ProtocolError, match="body exceeds"):
        read_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n", max_body_bytes=1024)  # refused before reading
    with pytest.raises(ProtocolError, match="body exceeds"):
        read_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n300\r\n" + b"a" * 0x300 + b"\r\n"
                 b"300\r\n", max_body_bytes=1024)
    with pytest.raises(ProtocolError, match="body exceeds"):
        read_all(b"HTTP/1.1 200 OK\r\n\r\n" + b"a" * 2000, max_body_bytes=1024)  # until close
    with pytest.raises(ProtocolError, match="exceed"):
        read_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1" + b";x" * 5000)
    with pytest.raises(ProtocolError, match="exceed"):
        read_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + b"X-T: 1\r\n" * 200,
                 max_head_bytes=1024)


def test_leftover_and_idle():
    reader = ResponseReader()
    assert reader.idle
    reader.feed(OK + b"HTTP/1.1")
    assert reader.next().status == 200
    assert reader.next() is None
    assert (reader.leftover, reader.idle) == (8, False)
