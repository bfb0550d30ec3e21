"""The ingest with the subscriber registry on, on kinesis-local, Redis and PostgreSQL.

PostgreSQL is reached through a TcpProxy the tests take down and bring back (the shared server
is never stopped): while it is down requests answer 503 with Retry-After and put nothing; the
client's retries converge on exactly the registry and the stream that no failure would give.
"""

from __future__ import annotations

import base64
import copy
import json
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from pistats.ingest.lambda_handler import ALB, APIGW_V1, APIGW_V2, LambdaApp, handle_event
from pistats.ingest.service import build_service
from pistats.registry.config import RegistryConfig
from pistats.registry.migrations import LATEST_VERSION
from pistats.registry.store import Registry
from pistats.testing.proxy import TcpProxy
from tests.integration.registry.conftest import delete_client, read_rows
from tests.support.registry import expected

EVENTS = Path(__file__).resolve().parents[2] / "unit" / "ingest" / "events"
T0 = datetime(2026, 11, 26, 11, 0, tzinfo=timezone.utc)


def ev(n, kind, user, token=None, second=0, prop="site-1"):
    event = {"event_id": f"e-{n}", "type": kind, "property_id": prop, "user_id": user,
             "timestamp": (T0 + timedelta(seconds=second)).isoformat().replace("+00:00", "Z"),
             "context": {"sdk": {"name": "pistats-js", "version": "2.5.0"}, "locale": "fr-FR"}}
    if token:
        event["push_token"] = token
    return event


@pytest.fixture
def postgres_proxy(registry_url):
    proxy = TcpProxy(urlsplit(registry_url).port)
    yield proxy
    proxy.close()


@pytest.fixture
def proxied_url(registry_url, postgres_proxy):
    """The registry URL through the proxy."""
    parts = urlsplit(registry_url)
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.port}", f":{postgres_proxy.port}")))


@pytest.fixture
def client_key(key_store, unique_name, registry_url):
    """A write key of a client of this test's own: its registry rows are this test's only (and
    deleted afterwards)."""
    key, _ = key_store.create(unique_name)
    yield key
    delete_client(registry_url, unique_name)


@pytest.fixture
def make_registry_service(ingest_config, kinesis_client, redis_client):
    """``make(url, pooled)``: an ingest service writing the registry at ``url``."""
    made = []

    def make(url, pooled=False, kinesis=None):
        config = RegistryConfig(url, connect_timeout_s=1, pool_timeout_s=1)
        registry = Registry.pooled(config) if pooled else Registry.for_lambda(config)
        made.append(registry)
        return build_service(ingest_config, kinesis_client=kinesis or kinesis_client, redis=redis_client,
                             registry=registry)

    yield make
    for registry in made:
        registry.close()


def registry_rows(registry_url, client_id):
    with psycopg.connect(registry_url) as conn:
        return read_rows(conn, client_id)


def post_until_accepted(client, body, key, within_s: float = 15.0) -> dict:
    """Post as an SDK does: again after Retry-After while the answer is 503."""
    deadline = time.monotonic() + within_s
    while True:
        status, answer, headers = client.post(body, key=key)
        if status != 503 or time.monotonic() > deadline:
            assert status == 200, answer
            return answer
        time.sleep(min(float(headers["Retry-After"]), 0.2))


NOW = datetime.now(timezone.utc)  # the events are all older: the registry's time cap plays no part


@pytest.mark.parametrize("pooled", [False, True], ids=["lambda-connection", "server-pool"])
def test_postgres_down_mid_run_then_everything_converges(make_registry_service, proxied_url, registry_url,
                                                         postgres_proxy, http_server, client_key, stream_records,
                                                         unique_name, pooled):
    client = http_server(make_registry_service(proxied_url, pooled=pooled))
    requests = []
    for n in range(30):
        user, token = f"{unique_name}-u{n % 4}", f"{unique_name}-tok{n % 6}"
        kind = ["register", "subscribe", "subscribe", "unsubscribe"][n % 4]
        batch = [ev(f"{n}-a", kind, user, token if kind != "register" else None, n % 9),
                 ev(f"{n}-b", "page_view", user, second=n)]
        if n % 5 == 0:
            batch.append(ev(f"{n}-c", "unsubscribe", user, second=n % 7))
        requests.append({"batch": batch})

    refused = []
    for n, body in enumerate(requests):
        if n == 10:
            postgres_proxy.down()
        if n == 20:
            postgres_proxy.up()
        if 10 <= n < 20:
            status, answer, headers = client.post(body, key=client_key)
            assert (status, headers["Retry-After"]) == (503, "1"), answer
            assert {r["status"] for r in answer["results"]} == {"not_accepted"}
            assert all(e["push_token"] not in json.dumps(answer) for e in body["batch"] if e.get("push_token"))
            refused.append(body)
        else:
            # Once PostgreSQL is back, a pool may still be waiting to reconnect: clients retry.
            post_until_accepted(client, body, client_key)
    assert len(stream_records()) == sum(len(b["batch"]) for b in requests) - sum(len(b["batch"]) for b in refused)

    for body in refused:  # the clients retry what was refused
        post_until_accepted(client, body, client_key)
    every_event = [e for body in requests for e in body["batch"]]
    records = stream_records()
    assert sorted(r["event"]["event_id"] for _, r in records) == sorted(e["event_id"] for e in every_event)
    assert registry_rows(registry_url, unique_name) == expected(unique_name, every_event, NOW)


class FailFirstPuts:
    """A Kinesis client whose first ``failures`` PutRecords calls fail."""

    def __init__(self, client, failures):
        self.client, self.failures = client, failures

    def put_records(self, **kwargs):
        if self.failures:
            self.failures -= 1
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "InternalFailure", "Message": "injected"}}, "PutRecords")
        return self.client.put_records(**kwargs)

    def __getattr__(self, name):
        return getattr(self.client, name)


def test_put_failing_after_the_registry_write_converges_on_retry(make_registry_service, kinesis_client, ingest_config,
                                                                registry_url, http_server, client_key,
                                                                stream_records, unique_name):
    """Every PutRecords attempt of the first request fails, after its registry write succeeded."""
    service = make_registry_service(registry_url, kinesis=FailFirstPuts(kinesis_client, ingest_config.put_attempts))
    client = http_server(service)
    body = {"batch": [ev("1", "subscribe", f"{unique_name}-u", f"{unique_name}-t", 1),
                      ev("2", "unsubscribe", f"{unique_name}-u", f"{unique_name}-t", 2)]}
    status, answer, _ = client.post(body, key=client_key)
    assert status == 503 and answer["not_accepted"] == 2
    assert registry_rows(registry_url, unique_name)[1][("site-1", f"{unique_name}-t")]["status"] == "unsubscribed"
    status, answer, _ = client.post(body, key=client_key)
    assert (status, answer["accepted"]) == (200, 2)
    assert len(stream_records()) == 2
    assert registry_rows(registry_url, unique_name) == expected(unique_name, body["batch"], NOW)


def lambda_event(kind: str, key: str, events: list[dict]) -> dict:
    name = {APIGW_V1: "apigw_v1", APIGW_V2: "apigw_v2", ALB: "alb"}[kind]
    event = copy.deepcopy(json.loads((EVENTS / f"{name}.json").read_text()))
    body = json.dumps({"batch": events})
    if event.get("isBase64Encoded"):
        event["body"] = base64.b64encode(body.encode()).decode()
    else:
        event["body"] = body
    for headers in (event.get("headers") or {}, event.get("multiValueHeaders") or {}):
        for name in list(headers):
            if name.lower() == "x-pistats-key":
                headers[name] = [key] if isinstance(headers[name], list) else key
    return event


@pytest.mark.parametrize("kind", [APIGW_V1, APIGW_V2, ALB])
def test_lambda_handlers_with_the_registry(make_registry_service, registry_url, proxied_url, postgres_proxy,
                                           client_key, stream_records, unique_name, kind):
    """The container's service is built on the first invocation; its registry connection is
    opened on first use, not before, and reopened after PostgreSQL went away."""
    postgres_proxy.down()
    app = LambdaApp(lambda: make_registry_service(proxied_url))
    app.service()  # built while PostgreSQL is unreachable: no connection attempted yet
    postgres_proxy.up()
    user, token = f"{unique_name}-u", f"{unique_name}-t"
    first = [ev("1", "register", user), ev("2", "subscribe", user, token, 1)]
    result = handle_event(app.service(), lambda_event(kind, client_key, first))
    assert result["statusCode"] == 200, result
    postgres_proxy.down()  # drops the container's connection
    later = [ev("3", "unsubscribe", user, token, 2)]
    result = handle_event(app.service(), lambda_event(kind, client_key, later))
    assert (result["statusCode"], json.loads(result["body"])["not_accepted"]) == (503, 1)
    assert token not in result["body"]
    postgres_proxy.up()
    result = handle_event(app.service(), lambda_event(kind, client_key, later))
    assert result["statusCode"] == 200, result
    assert registry_rows(registry_url, unique_name)[1][("site-1", token)]["status"] == "unsubscribed"
    assert len(stream_records()) == 3


def test_nul_ids_are_refused_with_the_registry_on(make_registry_service, registry_url, http_server, client_key,
                                                   stream_records):
    client = http_server(make_registry_service(registry_url))
    status, answer, _ = client.post({"batch": [ev("1", "subscribe", "nul\x00user", "t"),
                                               ev("2", "page_view", "nul\x00user")]}, key=client_key)
    assert status == 207
    assert answer["errors"][0]["field"] == "user_id"
    assert [r["event"]["type"] for _, r in stream_records()] == ["page_view"]


PISTATS = str(Path(sys.executable).parent / "pistats")


def test_ingest_server_command_with_a_registry(ingest_stream, kinesis_endpoint, redis_url, key_prefix, key_store,
                                               registry_url, unique_name, stream_records):
    key, _ = key_store.create(unique_name)
    password_url = registry_url.replace("pistats@", "pistats:hunter2@")  # trust auth: the password is unused
    server = subprocess.Popen(
        [PISTATS, "ingest-server", "--port", "0", "--stream", ingest_stream, "--endpoint-url", kinesis_endpoint,
         "--redis-url", redis_url, "--key-prefix", key_prefix, "--registry-url", password_url],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        banner = server.stderr.readline()
        assert "listening on http://127.0.0.1:" in banner and "registry postgresql://pistats:***@" in banner, banner
        url = banner.split("listening on ")[1].split()[0]
        body = ev("1", "subscribe", "u-1", "tok-1", 1)
        request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json", "X-Pistats-Key": key})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["accepted"] == 1
        assert registry_rows(registry_url, unique_name)[1][("site-1", "tok-1")]["status"] == "active"
        assert len(stream_records()) == 1
    finally:
        server.terminate()
        server.wait(timeout=10)
        assert "hunter2" not in server.stderr.read()
        server.stderr.close()
        delete_client(registry_url, unique_name)


def test_ingest_server_refuses_an_unmigrated_registry(ingest_stream, kinesis_endpoint, redis_url, registry_url,
                                                      unique_name):
    admin = psycopg.connect(registry_url, autocommit=True)
    admin.execute(f'CREATE DATABASE "{unique_name}"')
    try:
        empty = registry_url.rsplit("/", 1)[0] + f"/{unique_name}"
        result = subprocess.run(
            [PISTATS, "ingest-server", "--port", "0", "--stream", ingest_stream, "--endpoint-url", kinesis_endpoint,
             "--redis-url", redis_url, "--registry-url", empty],
            capture_output=True, text=True, timeout=60,
        )
    finally:
        admin.execute(f'DROP DATABASE "{unique_name}" WITH (FORCE)')
        admin.close()
    assert result.returncode == 1
    assert f"schema version 0, this code needs {LATEST_VERSION}; run `pistats registry init`" in result.stderr
    assert "Traceback" not in result.stderr
