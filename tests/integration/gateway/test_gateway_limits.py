"""What Kong did, done by nginx: per-key rate limits, the body size bound, slow clients cut off,
the overall connection limit, and every error nginx answers in the ingest's JSON shape."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import uuid

import pytest

from pistats.contract import MAX_BODY_BYTES
from tests.support.gateway import event, wait_until

pytestmark = pytest.mark.integration


def test_a_flooding_key_gets_429s_while_a_key_at_a_normal_rate_sees_none(start_gateway, write_keys):
    rate, burst, seconds = 20, 10, 3.0
    gateway = start_gateway(PISTATS_GATEWAY_RATE=str(rate), PISTATS_GATEWAY_BURST=str(burst))
    flooder, neighbour = write_keys(2)
    statuses: dict[str, list[int]] = {"flood": [], "normal": []}
    refusals = []
    lock = threading.Lock()
    began = time.monotonic()
    deadline = began + seconds

    def flood():
        while time.monotonic() < deadline:
            response = gateway.post(event(uuid.uuid4().hex), flooder)
            with lock:
                statuses["flood"].append(response.status)
                if response.status == 429:
                    refusals.append(response)

    def normal():  # 5 requests/s, a quarter of the rate
        while time.monotonic() < deadline:
            response = gateway.post(event(uuid.uuid4().hex), neighbour)
            statuses["normal"].append(response.status)
            time.sleep(0.2)

    threads = [threading.Thread(target=flood) for _ in range(8)] + [threading.Thread(target=normal)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began

    assert set(statuses["normal"]) == {200} and len(statuses["normal"]) >= 5
    flood_ok = statuses["flood"].count(200)
    assert statuses["flood"].count(429) > 0 and set(statuses["flood"]) <= {200, 429}
    # The limiter lets through its rate plus the burst, not what the flooder asks for.
    assert 0 < flood_ok <= rate * elapsed + burst + 2
    first = refusals[0]
    assert first.body == {"error": "too many requests for this write key"}
    assert (first.headers["Retry-After"], first.headers["Content-Type"]) == ("1", "application/json")
    assert first.headers["Access-Control-Allow-Origin"] == "*"
    # Every 429 was nginx's: the ingest never saw those requests.
    refused_upstream = [line for line in gateway.log_lines() if line["status"] == 429 and line["upstream"]]
    assert refused_upstream == []


def test_an_oversized_body_gets_413_without_the_ingest_seeing_it(start_gateway, write_keys):
    gateway = start_gateway()
    (key,) = write_keys(1)
    served = gateway.ingest_requests()

    response = gateway.post(b" " * (MAX_BODY_BYTES + 1), key)

    assert (response.status, response.body) == (413, {"error": f"body larger than {MAX_BODY_BYTES} bytes"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    line = gateway.log_line(413)
    assert (line["upstream"], line["method"], line["path"]) == ("", "POST", "/v1/events")
    # At the bound exactly, the body goes through (and the ingest finds it is not JSON).
    at_bound = gateway.post(b" " * MAX_BODY_BYTES, key)
    assert at_bound.status == 400 and at_bound.body["error"].startswith("the body is not JSON")
    gateway.wait_ingest_requests(served + 1)  # the one at the bound, not the oversized one
    assert gateway.records() == []


def _slow_body(port: int) -> socket.socket:
    """A request whose body stops after a few bytes of the 1,000 it announces."""
    client = socket.create_connection(("127.0.0.1", port))
    client.sendall(b"POST /v1/events HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 1000\r\nX-Pistats-Key: slow\r\n\r\n{\"event_id\":")
    return client


def test_a_slow_body_client_is_cut_off_while_others_are_served(start_gateway, write_keys):
    gateway = start_gateway(PISTATS_GATEWAY_CLIENT_TIMEOUT_S="1")
    (key,) = write_keys(1)
    served = gateway.ingest_requests()
    slow = _slow_body(gateway.port)
    slow.settimeout(10)
    began = time.monotonic()

    assert gateway.post(event("while-slow"), key).status == 200
    try:
        answer = slow.recv(1024)
    except ConnectionResetError:
        answer = b""
    waited = time.monotonic() - began
    slow.close()

    # nginx closes a timed-out connection without an answer (reset_timedout_connection).
    assert answer == b"" and 0.8 <= waited < 5
    assert gateway.log_line(408)["upstream"] == ""
    gateway.wait_ingest_requests(served + 1)  # the normal request only


def test_the_overall_connection_limit_answers_503_in_the_ingest_shape(start_gateway, write_keys):
    gateway = start_gateway(PISTATS_GATEWAY_CONNECTIONS="2", PISTATS_GATEWAY_CLIENT_TIMEOUT_S="3")
    (key,) = write_keys(1)
    holders = [_slow_body(gateway.port) for _ in range(2)]  # each holds a request in flight
    try:
        time.sleep(0.3)
        response = gateway.post(event("third"), key)
    finally:
        for holder in holders:
            holder.close()
    assert (response.status, response.body) == (503, {"error": "gateway busy"})
    assert response.headers["Retry-After"] == "1"
    wait_until(lambda: gateway.post(event("later"), key).status == 200)


MALFORMED = [
    (b"NONSENSE\r\n\r\n", 400, "bad request"),
    (b"POST /v1/events HTTP/1.1\r\nHost: g\r\nContent-Length: many\r\n\r\n", 400, "bad request"),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: g\r\n\r\n", 414, "request line too long"),
    (b"GET / HTTP/1.1\r\nHost: g\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 400, "request headers too large"),
]


def test_malformed_requests_get_json_errors_from_nginx(start_gateway):
    gateway = start_gateway()
    answers = []
    for raw, _, _ in MALFORMED:
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as client:
            client.sendall(raw)
            response = http.client.HTTPResponse(client)
            response.begin()
            answers.append((response.status, json.loads(response.read()), response.getheader("Content-Type"),
                            response.getheader("Access-Control-Allow-Origin")))
    assert answers == [(status, {"error": message}, "application/json", "*") for _, status, message in MALFORMED]
    gateway.wait_ingest_requests(0)


def test_ingest_down_is_502_in_the_ingest_shape_and_healthz_says_so(start_gateway):
    gateway = start_gateway()
    assert gateway.get("/healthz").status == 200
    assert gateway.services("stop", "gateway-ingest").returncode == 0
    response = gateway.post(event("e-1"), "any-key")
    assert (response.status, response.body) == (502, {"error": "ingest unavailable"})
    assert (response.headers["Retry-After"], response.headers["Access-Control-Allow-Origin"]) == ("1", "*")
    assert gateway.get("/healthz").status == 502
