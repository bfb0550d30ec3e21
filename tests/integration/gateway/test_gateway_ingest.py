"""The ingest behind the gateway: one trusted hop of X-Forwarded-For, /healthz without Kinesis,
`pistats services` start and stop, and logs that keep neither write keys nor push tokens."""

from __future__ import annotations

import http.client
import json
import secrets
import subprocess

import pytest

from pistats.contract import MAX_BODY_BYTES
from pistats.gateway.nginx import nginx_command
from tests.support.gateway import event

pytestmark = pytest.mark.integration


def test_events_land_with_the_address_nginx_saw_not_a_forged_one(start_gateway, write_keys):
    gateway = start_gateway()
    (key,) = write_keys(1)
    response = gateway.post(event("xff-1"), key, headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.4"})
    assert (response.status, response.body["accepted"]) == (200, 1)
    (record,) = gateway.records()
    # nginx appended 127.0.0.1 (the peer it saw); the ingest trusts that one hop and no more.
    assert (record["client_id"], record["ip"]) == ("acme", "127.0.0.1")


def test_a_chunked_body_reaches_the_ingest_whole(start_gateway, write_keys):
    gateway = start_gateway()
    (key,) = write_keys(1)
    body = json.dumps({"batch": [event(f"chunk-{n}") for n in range(3)]}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    connection.request("POST", "/v1/events", iter([body[:40], body[40:]]),
                       {"Content-Type": "application/json", "X-Pistats-Key": key}, encode_chunked=True)
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()
    assert (response.status, answer["accepted"]) == (200, 3)
    assert sorted(record["event"]["event_id"] for record in gateway.records()) == ["chunk-0", "chunk-1", "chunk-2"]


def test_healthz_answers_without_kinesis(start_gateway, write_keys):
    gateway = start_gateway()
    (key,) = write_keys(1)
    gateway.kinesis.delete_stream(StreamName=gateway.stream)
    health = gateway.get("/healthz")
    assert (health.status, health.body) == (200, {"status": "ok"})
    # The same workers cannot put: the stream is gone.
    assert gateway.post(event("no-stream"), key).status == 503
    gateway.kinesis.create_stream(StreamName=gateway.stream, ShardCount=1)  # for the fixture to delete


def test_services_start_is_idempotent_and_stop_stops_both(start_gateway):
    gateway = start_gateway()
    again = gateway.services("start")
    assert again.returncode == 0 and again.stdout.count("already running") == 2
    status = gateway.services("status")
    assert status.stdout.split() == ["gateway-ingest", "running", f"127.0.0.1:{gateway.port}",
                                     "gateway", "running", f"127.0.0.1:{gateway.port}"]
    stopped = gateway.services("stop")
    assert stopped.stdout.split() == ["gateway", "stopped", "gateway-ingest", "stopped"]
    assert "stopped" in gateway.services("status").stdout
    assert not (gateway.ingest_home / "ingest.sock").exists()


def test_the_rendered_configuration_passes_nginx_t(start_gateway):
    gateway = start_gateway()
    check = subprocess.run(nginx_command(gateway.nginx_home, "-t"), capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "@" not in (gateway.nginx_home / "nginx.conf").read_text().replace("*.log", "")


def test_the_logs_hold_no_write_key_and_no_push_token(start_gateway, write_keys):
    # 1 request/s per key, burst 2: the 8 requests below meet a 429 even on a loaded machine
    # (at 5/s, requests slower than 200 ms each never did).
    gateway = start_gateway(PISTATS_GATEWAY_RATE="1", PISTATS_GATEWAY_BURST="2")
    key, other = write_keys(2)
    unknown = secrets.token_urlsafe(24)
    tokens = [f"fcm:{secrets.token_urlsafe(40)}" for _ in range(4)]
    subscribe = {"type": "subscribe", "push_token": tokens[0]}

    answers = [
        gateway.post(event("s-1", **subscribe), key).status,                                # 200
        gateway.post({"batch": [event("s-2", type="subscribe", push_token=tokens[1]),
                                event("s-3", type="subscribe", push_token=tokens[2], timestamp="no")]},
                     key).status,                                                           # 207
        gateway.post(event("s-4", **subscribe), unknown).status,                            # 401
        gateway.post(b'{"push_token": "' + tokens[3].encode() + b'"', key).status,         # 400
        gateway.post(b"x" * (MAX_BODY_BYTES + 1), other).status,                           # 413
    ]
    answers += [gateway.post(event(f"r-{n}"), other).status for n in range(8)]             # 429s
    assert answers[:5] == [200, 207, 401, 400, 413] and 429 in answers[5:]

    logs = gateway.logs()
    assert gateway.access_log in logs and len(gateway.log_lines()) >= 13
    for secret in [key, other, unknown, *tokens]:
        assert [path.name for path, text in logs.items() if secret in text] == []
    assert {line["write_key_sent"] for line in gateway.log_lines()} == {"yes"}
