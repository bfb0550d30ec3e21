"""The real FcmClient against the local FCM v1 server: each error mapping, tokens, the message shape."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import orjson
import pytest

from pistats.push.fcm import FcmClient, FcmConfig, SendResult
from pistats.push.message import MESSAGE_MAX_BYTES, Content, build_message, message_size
from pistats.testing.fcm import LocalFcm
from tests.support.clock import Clock
from tests.support.push_tokens import sha

pytestmark = pytest.mark.integration

CONTENT = Content("Back in stock", "The shoes you liked", "https://shop.example/p/1", "c_0123456789abcdef0123", "c_0123")
SCRIPT = {
    "tokens": {
        "tok-unregistered-000": "unregistered",
        "tok-mismatch-0000000": "sender_id_mismatch",
        "tok-invalid-00000000": "invalid_token",
        "tok-third-party-0000": "third_party_auth",
    },
    "prefixes": {"quota-": "quota:1:0.2", "unavailable-": "unavailable:1", "internal-": "internal:2:1",
                 "slow-": "slow:150"},
    "default": "ok",
}


@pytest.fixture(scope="module")
def local_fcm():
    with LocalFcm(script=SCRIPT, keep_messages=True) as fcm:
        yield fcm


@pytest.fixture
def fcm(local_fcm):
    local_fcm.set_script(SCRIPT)
    local_fcm.restore()
    return local_fcm


@pytest.fixture
def config(fcm, tmp_path):
    return FcmConfig(fcm.url, fcm.write_credentials(tmp_path / "sa.json"), timeout_s=5.0)


def send_all(config, tokens, content=CONTENT, **client_options):
    async def go():
        async with FcmClient(config, **client_options) as client:
            return [await client.send(build_message(content, token)) for token in tokens]

    return asyncio.run(go())


def calls_of(fcm, token):
    return [(call["status"], call["error_code"]) for call in fcm.calls() if call["token_sha256"] == sha(token)]


def test_sent_and_the_message_shape_the_server_accepts(fcm, config):
    token = "tok-ok-" + "A" * 150
    (result,) = send_all(config, [token])
    assert result.kind == "sent" and result.http_status == 200
    assert result.name.startswith(f"projects/{fcm.project_id}/messages/")
    assert fcm.messages()[-1] == build_message(CONTENT, token)
    assert calls_of(fcm, token) == [(200, None)]


@pytest.mark.parametrize("token,kind,code,status", [
    ("tok-unregistered-000", "invalid_token", "UNREGISTERED", 404),
    ("tok-mismatch-0000000", "invalid_token", "SENDER_ID_MISMATCH", 403),
    ("tok-invalid-00000000", "invalid_token", "INVALID_ARGUMENT", 400),
    ("tok-third-party-0000", "abort", "THIRD_PARTY_AUTH_ERROR", 401),
])
def test_each_token_error(fcm, config, token, kind, code, status):
    (result,) = send_all(config, [token])
    assert (result.kind, result.code, result.http_status) == (kind, code, status)
    assert token not in result.detail
    assert calls_of(fcm, token) == [(status, code)]


def test_retries_with_and_without_retry_after(fcm, config):
    quota, unavailable, internal = "quota-1", "unavailable-1", "internal-1"
    results = send_all(config, [quota, quota, unavailable, unavailable, internal, internal, internal])
    assert [(r.kind, r.code, r.retry_after_s) for r in results] == [
        ("retry", "QUOTA_EXCEEDED", 0.2), ("sent", None, None),
        ("retry", "UNAVAILABLE", None), ("sent", None, None),
        ("retry", "INTERNAL", 1.0), ("retry", "INTERNAL", 1.0), ("sent", None, None)]
    assert calls_of(fcm, quota) == [(429, "QUOTA_EXCEEDED"), (200, None)]


def test_payload_faults_come_back_as_payload_errors(fcm, config):
    # Bypassing content_problems on purpose: the server is the one refusing here.
    too_big = build_message(Content("t", "x" * MESSAGE_MAX_BYTES, None, "c_1", "c_1"), "tok-big-00000000")
    assert message_size(too_big) > MESSAGE_MAX_BYTES
    not_strings = {"token": "tok-data-0000000", "data": {"count": 12}}
    http_link = build_message(Content("t", "b", "http://shop.example", "c_1", "c_1"), "tok-link-0000000")

    async def go():
        async with FcmClient(config) as client:
            return [await client.send(message) for message in (too_big, not_strings, http_link)]

    big, data, link = asyncio.run(go())
    assert (big.kind, big.code, big.http_status) == ("payload_error", "INVALID_ARGUMENT", 400)
    assert "Message is too big" in big.detail and "[message:" in big.detail
    assert (data.kind, data.code) == ("payload_error", "INVALID_ARGUMENT")
    assert "message.data[0].value" in data.detail
    assert link.kind == "payload_error" and "message.webpush.fcm_options.link" in link.detail
    assert calls_of(fcm, "tok-big-00000000") == [(400, "INVALID_ARGUMENT")]


def test_revoked_token_refreshes_once_then_sends(fcm, config):
    async def go():
        async with FcmClient(config) as client:
            first = await client.send(build_message(CONTENT, "tok-before-revoke"))
            grants = fcm.grants
            fcm.revoke()
            second = await client.send(build_message(CONTENT, "tok-after-revoke"))
            return first, second, fcm.grants - grants

    first, second, new_grants = asyncio.run(go())
    assert (first.kind, second.kind, new_grants) == ("sent", "sent", 1)
    assert calls_of(fcm, "tok-after-revoke") == [(401, "UNAUTHENTICATED"), (200, None)]


def test_revoked_for_good_aborts_after_one_refresh(fcm, config):
    async def go():
        async with FcmClient(config) as client:
            await client.send(build_message(CONTENT, "tok-warm-00000000"))
            fcm.revoke(future=True)
            return await client.send(build_message(CONTENT, "tok-revoked-twice"))

    result = asyncio.run(go())
    assert (result.kind, result.code, result.http_status) == ("abort", "UNAUTHENTICATED", 401)
    assert calls_of(fcm, "tok-revoked-twice") == [(401, "UNAUTHENTICATED"), (401, "UNAUTHENTICATED")]


def test_access_token_cached_then_refreshed_before_expiry(tmp_path):
    clock = Clock()
    # A 2-second token: the client refreshes at half its life (tokens under 10 minutes), the
    # server refuses it after 2 s of real time; the client's clock is the test's.
    with LocalFcm(token_lifetime_s=2) as fcm:
        config = FcmConfig(fcm.url, fcm.write_credentials(tmp_path / "sa.json"))

        async def go():
            async with FcmClient(config, clock=clock) as client:
                kinds = [(await client.send(build_message(CONTENT, f"tok-cache-{i}"))).kind for i in range(5)]
                cached = fcm.grants
                clock.now += 1.1
                kinds.append((await client.send(build_message(CONTENT, "tok-cache-after"))).kind)
                return kinds, cached, fcm.grants

        kinds, cached, grants = asyncio.run(go())
    assert kinds == ["sent"] * 6
    assert (cached, grants) == (1, 2)
    assert [call["status"] for call in fcm.calls()] == [200] * 6  # refreshed before the server refused


def test_expired_access_token_is_refused_by_the_server(tmp_path):
    with LocalFcm(token_lifetime_s=0.3) as fcm:
        config = FcmConfig(fcm.url, fcm.write_credentials(tmp_path / "sa.json"))

        async def go():
            # A frozen client clock keeps the expired token: the server says 401, the client refreshes.
            async with FcmClient(config, clock=lambda: 0.0) as client:
                await client.send(build_message(CONTENT, "tok-expiry-1"))
                await asyncio.sleep(0.35)
                return await client.send(build_message(CONTENT, "tok-expiry-2"))

        assert asyncio.run(go()).kind == "sent"
        assert calls_of(fcm, "tok-expiry-2") == [(401, "UNAUTHENTICATED"), (200, None)]


def test_wrong_credentials_are_refused_at_the_token_endpoint(fcm, tmp_path):
    with LocalFcm() as other:
        stranger = other.write_credentials(tmp_path / "other.json")
    info = orjson.loads(open(stranger, "rb").read())
    info["token_uri"] = f"{fcm.url}/token"  # another key, sent to this server
    path = tmp_path / "forged.json"
    path.write_bytes(orjson.dumps(info))
    (result,) = send_all(FcmConfig(fcm.url, str(path)), ["tok-forged-0000000"])
    assert (result.kind, result.code) == ("abort", "AUTH")
    assert "invalid_grant" in result.detail


def test_an_answer_slower_than_the_timeout_is_unknown_and_fcm_got_the_request(fcm, tmp_path):
    config = FcmConfig(fcm.url, fcm.write_credentials(tmp_path / "sa.json"), timeout_s=0.05)
    (result,) = send_all(config, ["slow-1"])
    assert (result.kind, result.code) == ("unknown", "TIMEOUT")
    deadline = time.monotonic() + 30
    while not calls_of(fcm, "slow-1") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert calls_of(fcm, "slow-1") == [(200, None)]  # delivered after the client gave up


def test_connection_refused_is_a_network_retry(fcm, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    credentials = fcm.write_credentials(tmp_path / "sa.json")  # token endpoint still the live server
    (result,) = send_all(FcmConfig(f"http://127.0.0.1:{port}", credentials), ["tok-refused-000000"])
    assert result == SendResult("retry", "NETWORK", result.detail)


def test_http11_to_http_endpoints_on_our_own_client(fcm, config):
    async def go():
        async with FcmClient(config, transport=None) as client:
            results = [await client.send(build_message(CONTENT, f"tok-version-{n:05d}")) for n in range(3)]
            return client.client_kind, client._http1.connections_opened, results

    kind, opened, results = asyncio.run(go())
    assert kind == "http1" and [r.kind for r in results] == ["sent"] * 3
    assert opened == 1  # kept alive between sends


def test_server_bounds_headers_and_bodies(fcm):
    with httpx.Client(base_url=fcm.url) as http:
        assert http.post("/v1/projects/x/messages:send", headers={"X-Big": "a" * 17_000}).status_code == 431
        assert http.post("/token", content=b"x" * (64 * 1024 + 1)).status_code == 413
        assert http.get("/token").status_code == 405
        assert http.post("/nothing").status_code == 404
        wrong_project = http.post("/v1/projects/other/messages:send", content=b"{}")
        assert wrong_project.status_code == 403 and wrong_project.json()["error"]["status"] == "PERMISSION_DENIED"
        assert http.post(f"/v1/projects/{fcm.project_id}/messages:send", content=b"{}").status_code == 401


def test_as_a_process_with_calls_written_per_call(tmp_path):
    credentials, calls_out, script = tmp_path / "sa.json", tmp_path / "calls.jsonl", tmp_path / "script.json"
    script.write_bytes(orjson.dumps({"tokens": {"tok-gone-0000000": "unregistered"}}))
    process = subprocess.Popen(
        [sys.executable, "-m", "pistats.testing.fcm", "--port", "0", "--credentials-out", str(credentials),
         "--script", str(script), "--calls-out", str(calls_out)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        results = send_all(FcmConfig(url, str(credentials)), ["tok-fine-0000000", "tok-gone-0000000"])
        assert [r.kind for r in results] == ["sent", "invalid_token"]
        lines = [orjson.loads(line) for line in calls_out.read_bytes().splitlines()]  # before the server stops
        assert [(c["token_sha256"], c["status"], c["error_code"]) for c in lines] == [
            (sha("tok-fine-0000000"), 200, None), (sha("tok-gone-0000000"), 404, "UNREGISTERED")]
        assert b"tok-fine" not in calls_out.read_bytes()
        httpx.post(f"{url}/_local/revoke", json={"future": True})
        (revoked,) = send_all(FcmConfig(url, str(credentials)), ["tok-late-0000000"])
        assert revoked.code == "UNAUTHENTICATED"
    finally:
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert process.wait(10) == 0 and time.monotonic() - started < 5
