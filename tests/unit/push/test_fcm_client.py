"""FcmConfig, AccessTokens and FcmClient without a network: httpx mock transports and a manual clock."""

from __future__ import annotations

import asyncio
import os

import httpx
import orjson
import pytest

from pistats.errors import ConfigError
from pistats.push.fcm import AccessTokens, FcmClient, FcmConfig, SendResult, read_credentials
from pistats.testing.fcm import FcmServer
from tests.support.clock import Clock

TOKEN_URI = "https://oauth2.test/token"


@pytest.fixture(scope="module")
def info():
    """A real-shaped service-account JSON (the local FCM's generator; its key is fresh)."""
    credentials = FcmServer(project_id="proj-1").credentials()
    credentials["token_uri"] = TOKEN_URI
    return credentials


@pytest.fixture
def credentials_path(tmp_path, info):
    path = tmp_path / "sa.json"
    path.write_bytes(orjson.dumps(info))
    return str(path)


class TokenEndpoint:
    """A token endpoint answering grants with numbered tokens of a given lifetime."""

    def __init__(self, lifetime=3600, status=200, answer=None):
        self.lifetime, self.status, self.answer = lifetime, status, answer
        self.grants = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url == TOKEN_URI and b"grant_type=urn" in request.content
        if self.status != 200:
            return httpx.Response(self.status, json=self.answer)
        self.grants += 1
        return httpx.Response(200, json={"access_token": f"ya29.access-{self.grants}", "expires_in": self.lifetime,
                                         "token_type": "Bearer"})


def test_from_env_reads_both_settings(credentials_path):
    config = FcmConfig.from_env({"PISTATS_FCM_CREDENTIALS": credentials_path})
    assert (config.endpoint, config.credentials_path, config.http2) == ("https://fcm.googleapis.com", credentials_path, True)
    config = FcmConfig.from_env({"PISTATS_FCM_CREDENTIALS": "/nope", "PISTATS_FCM_ENDPOINT": "http://127.0.0.1:9/"},
                                credentials=credentials_path)
    assert (config.endpoint, config.http2) == ("http://127.0.0.1:9", False)
    assert FcmConfig.from_env({}, endpoint="https://x.test", credentials=credentials_path, timeout_s=2.5).timeout_s == 2.5


def test_from_env_names_the_setting(tmp_path, info):
    def problem(environ):
        with pytest.raises(ConfigError) as caught:
            FcmConfig.from_env(environ)
        assert caught.value.field == "PISTATS_FCM_CREDENTIALS"
        assert info["private_key"][40:80] not in str(caught.value)
        return caught.value.problem

    assert problem({}).startswith("is not set")
    assert problem({"PISTATS_FCM_CREDENTIALS": str(tmp_path / "missing.json")}).startswith("cannot be read")
    (tmp_path / "bad.json").write_text("{not json")
    assert problem({"PISTATS_FCM_CREDENTIALS": str(tmp_path / "bad.json")}).startswith("is not JSON")
    (tmp_path / "user.json").write_bytes(orjson.dumps({**info, "type": "authorized_user"}))
    assert problem({"PISTATS_FCM_CREDENTIALS": str(tmp_path / "user.json")}).startswith("is not a service-account JSON")
    (tmp_path / "short.json").write_bytes(orjson.dumps({k: v for k, v in info.items() if k != "project_id"}))
    assert problem({"PISTATS_FCM_CREDENTIALS": str(tmp_path / "short.json")}).startswith("lacks project_id")
    broken = {**info, "private_key": info["private_key"][:200] + "garbage" + info["private_key"][220:]}
    (tmp_path / "key.json").write_bytes(orjson.dumps(broken))
    assert problem({"PISTATS_FCM_CREDENTIALS": str(tmp_path / "key.json")}).startswith("holds a private_key that cannot")


def test_config_checks_its_values(credentials_path):
    for endpoint in ("fcm.googleapis.com", "ftp://x", ""):
        with pytest.raises(ConfigError) as caught:
            FcmConfig(endpoint, credentials_path)
        assert caught.value.field == "PISTATS_FCM_ENDPOINT"
    with pytest.raises(ConfigError):
        FcmConfig("https://x", credentials_path, timeout_s=0)
    with pytest.raises(ConfigError):
        FcmConfig("https://x", credentials_path, max_connections=0)


def test_http2_by_scheme(credentials_path):
    assert FcmClient(FcmConfig("https://fcm.test", credentials_path)).http2 is True
    assert FcmClient(FcmConfig("HTTPS://fcm.test", credentials_path)).http2 is True
    assert FcmClient(FcmConfig("http://127.0.0.1:1", credentials_path)).http2 is False


def test_tokens_cached_until_five_minutes_before_expiry(info):
    endpoint, clock = TokenEndpoint(lifetime=3600), Clock(1000.0)
    tokens = AccessTokens(info, http=httpx.Client(transport=httpx.MockTransport(endpoint)), clock=clock)
    assert tokens.current() is None
    assert tokens.get() == "ya29.access-1"
    clock.now += 3600 - 300 - 1
    assert (tokens.current(), tokens.get(), endpoint.grants) == ("ya29.access-1", "ya29.access-1", 1)
    clock.now += 2
    assert tokens.current() is None
    assert (tokens.get(), endpoint.grants) == ("ya29.access-2", 2)
    tokens.invalidate("ya29.access-1")  # a stale 401 does not drop the new token
    assert tokens.current() == "ya29.access-2"
    tokens.invalidate("ya29.access-2")
    assert (tokens.get(), endpoint.grants) == ("ya29.access-3", 3)
    assert "ya29" not in repr(tokens) and "PRIVATE" not in repr(tokens)


def test_short_lived_tokens_refresh_at_half_their_life(info):
    endpoint, clock = TokenEndpoint(lifetime=10), Clock(1000.0)
    tokens = AccessTokens(info, http=httpx.Client(transport=httpx.MockTransport(endpoint)), clock=clock)
    tokens.get()
    clock.now += 4.9
    assert tokens.current() == "ya29.access-1"
    clock.now += 0.2
    assert tokens.current() is None


def run(coroutine):
    return asyncio.run(coroutine)


def fcm_transport(answers, seen):
    """An FCM answering from a list of (status, body, headers), recording each request."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status, body, headers = answers.pop(0)
        if isinstance(body, Exception):
            raise body
        return httpx.Response(status, content=body, headers=headers)

    return httpx.MockTransport(handle)


UNAUTHENTICATED = orjson.dumps({"error": {"code": 401, "message": "Request had invalid authentication credentials.",
                                          "status": "UNAUTHENTICATED"}})
OK = b'{"name": "projects/proj-1/messages/1"}'


def client(credentials_path, answers, seen, endpoint=None, clock=None):
    endpoint = endpoint or TokenEndpoint()
    return FcmClient(FcmConfig("https://fcm.test", credentials_path), transport=fcm_transport(answers, seen),
                     token_transport=httpx.MockTransport(endpoint), clock=clock or Clock(1000.0)), endpoint


def test_send_posts_the_message_with_the_bearer(credentials_path):
    seen = []
    fcm, _ = client(credentials_path, [(200, OK, {})], seen)

    async def go():
        async with fcm:
            return await fcm.send({"token": "t" * 20, "data": {"a": "b"}})

    assert run(go()) == SendResult("sent", http_status=200, name="projects/proj-1/messages/1")
    (request,) = seen
    assert str(request.url) == "https://fcm.test/v1/projects/proj-1/messages:send"
    assert request.headers["authorization"] == "Bearer ya29.access-1"
    assert orjson.loads(request.content) == {"message": {"token": "t" * 20, "data": {"a": "b"}}}
    assert fcm.project_id == "proj-1"


def test_401_refreshes_once_then_sends(credentials_path):
    seen = []
    fcm, endpoint = client(credentials_path, [(401, UNAUTHENTICATED, {}), (200, OK, {})], seen)
    result = run(fcm.send({"token": "tok"}))
    assert (result.kind, endpoint.grants) == ("sent", 2)
    assert [r.headers["authorization"] for r in seen] == ["Bearer ya29.access-1", "Bearer ya29.access-2"]


def test_401_twice_aborts(credentials_path):
    seen = []
    fcm, endpoint = client(credentials_path, [(401, UNAUTHENTICATED, {}), (401, UNAUTHENTICATED, {})], seen)
    result = run(fcm.send({"token": "tok"}))
    assert (result.kind, result.code, result.http_status, endpoint.grants, len(seen)) == (
        "abort", "UNAUTHENTICATED", 401, 2, 2)


def test_third_party_auth_is_not_refreshed(credentials_path):
    body = orjson.dumps({"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "APNs", "details": [
        {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "THIRD_PARTY_AUTH_ERROR"}]}})
    seen = []
    fcm, endpoint = client(credentials_path, [(401, body, {})], seen)
    result = run(fcm.send({"token": "tok"}))
    assert (result.kind, result.code, endpoint.grants, len(seen)) == ("abort", "THIRD_PARTY_AUTH_ERROR", 1, 1)


@pytest.mark.parametrize("error, kind, code", [
    (httpx.ConnectError("refused"), "retry", "NETWORK"),
    (httpx.WriteError("broken pipe"), "retry", "NETWORK"),
    (httpx.ReadTimeout("slow"), "unknown", "TIMEOUT"),
    (httpx.RemoteProtocolError("peer closed"), "unknown", "NETWORK"),
])
def test_network_trouble_is_a_retry_before_the_request_and_unknown_after(credentials_path, error, kind, code):
    """The rule itself is tested in test_fcm_network.py; here, that send() applies it."""
    fcm, _ = client(credentials_path, [(0, error, {})], [])
    result = run(fcm.send({"token": "tok"}))
    assert (result.kind, result.code, result.http_status) == (kind, code, None)


def test_token_endpoint_trouble_is_a_value(credentials_path):
    refused = TokenEndpoint(status=400, answer={"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
    fcm, _ = client(credentials_path, [], [], endpoint=refused)
    result = run(fcm.send({"token": "tok"}))
    assert result == SendResult("abort", "AUTH", "access token refresh failed: invalid_grant: Invalid JWT Signature.")

    def down(request):
        raise httpx.ConnectError("refused")

    fcm = FcmClient(FcmConfig("https://fcm.test", credentials_path), transport=fcm_transport([], []),
                    token_transport=httpx.MockTransport(down))
    result = run(fcm.send({"token": "tok"}))
    assert (result.kind, result.code) == ("retry", "NETWORK")


def test_concurrent_sends_share_one_grant(credentials_path):
    answers = [(200, OK, {})] * 50
    fcm, endpoint = client(credentials_path, list(answers), [])

    async def go():
        async with fcm:
            return await asyncio.gather(*(fcm.send({"token": f"tok-{i}"}) for i in range(50)))

    assert {result.kind for result in run(go())} == {"sent"} and endpoint.grants == 1


def test_credentials_file_readable_only_by_its_owner(tmp_path):
    server = FcmServer()
    path = server.write_credentials(str(tmp_path / "sa.json"))
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert read_credentials(path)["client_email"] == server.client_email
