"""Welcome notifications from the ingest: kinesis-local, Redis, PostgreSQL and the local FCM.

A subscribe that activates a token sends its property's welcome once (at most once per token per
welcome campaign), after the put; whatever FCM does (refuses the token, answers too late, is not
there) the request answers as it would without a welcome, and the outcome is settled in the
ledger. A welcome is owed until claimed: a put failing after the registry write leaves it owed,
and the retry sends it; a token activated before the welcome window gets none.
"""

from __future__ import annotations

import json
import socket
import time
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from botocore.exceptions import ClientError

from pistats.ingest.api import IngestRequest
from pistats.ingest.service import build_service
from pistats.push.fcm import FcmConfig
from pistats.push.fcm_sync import SyncFcmSender
from pistats.push.ledger import Ledger
from pistats.push.welcome import WelcomeConfig, Welcomer, welcomer_from_env
from pistats.registry.config import RegistryConfig
from pistats.registry.store import Registry
from pistats.testing.fcm import LocalFcm
from tests.integration.registry.conftest import read_rows
from tests.integration.registry.conftest import delete_client
from tests.support.push_tokens import sha

pytestmark = pytest.mark.integration

T0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)


def ev(n, kind, user, token=None, second=0, prop="site-1"):
    event = {"event_id": f"e-{n}", "type": kind, "property_id": prop, "user_id": user,
             "timestamp": (T0 + timedelta(seconds=second)).isoformat().replace("+00:00", "Z"),
             "context": {"sdk": {"name": "pistats-js", "version": "2.5.0"}}}
    if token:
        event["push_token"] = token
    return event


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def client_key(key_store, unique_name, registry_url):
    key, _ = key_store.create(unique_name)
    yield key
    delete_client(registry_url, unique_name)


@pytest.fixture
def fcm():
    with LocalFcm(keep_messages=True) as server:
        yield server


@pytest.fixture
def ledger(registry_url):
    ledger = Ledger.from_config(RegistryConfig(registry_url))
    yield ledger
    ledger.close()


class RefusingPuts:
    """The Kinesis client, every PutRecords refused (ServiceUnavailable) while ``refusing``."""

    def __init__(self, client):
        self._client, self.refusing = client, True

    def put_records(self, **kwargs):
        if self.refusing:
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "injected"}}, "PutRecords")
        return self._client.put_records(**kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


@pytest.fixture
def make_ingest(ingest_config, kinesis_client, redis_client, registry_url, tmp_path):
    """``make(fcm, timeout_s=2.0, endpoint=None, kinesis=None)``: an ingest service with the
    registry and welcome notifications through ``fcm`` (its endpoint replaced by ``endpoint`` when
    given), putting through ``kinesis`` when given."""
    made = []

    def make(fcm, timeout_s=2.0, endpoint=None, kinesis=None):
        registry = Registry.for_lambda(RegistryConfig(registry_url))
        credentials = fcm.write_credentials(tmp_path / "service-account.json")
        sender = SyncFcmSender(FcmConfig(endpoint or fcm.url, credentials, timeout_s=timeout_s))
        welcome = Welcomer(ledger=Ledger(registry.connections, redacted_url=registry.redacted_url),
                           registry=registry, sender=sender, config=WelcomeConfig(timeout_s=timeout_s, cache_s=0))
        made.append((registry, welcome))
        return build_service(ingest_config, kinesis_client=kinesis or kinesis_client, redis=redis_client,
                             registry=registry, welcome=welcome)

    yield make
    for registry, welcome in made:
        welcome.close()
        registry.close()


def post(service, key, *events) -> int:
    """The status of one batch request."""
    body = json.dumps({"batch": list(events)}).encode()
    return service.handle(IngestRequest.build("POST", "/v1/events", {"Content-Type": "application/json",
                                                                     "X-Pistats-Key": key}, body, "203.0.113.9")).status


def sends(registry_url, campaign_id):
    with psycopg.connect(registry_url) as conn:
        return conn.execute("SELECT encode(token_digest, 'hex'), state, error_code, attempts FROM campaign_sends "
                            "WHERE campaign_id = %s ORDER BY claimed_at, token_digest", (campaign_id,)).fetchall()


def test_a_subscribe_activating_a_token_sends_one_welcome(make_ingest, fcm, ledger, client_key, unique_name,
                                                         registry_url):
    welcome = ledger.set_welcome(unique_name, "site-1", "Welcome!", "Thanks for subscribing",
                                 "https://shop.example/welcome", datetime.now(timezone.utc))
    service = make_ingest(fcm)
    token = f"{unique_name}-token-1"
    assert post(service, client_key, ev(1, "register", "u-1"), ev(2, "subscribe", "u-1", token, 1)) == 200
    assert [(c["token_sha256"], c["status"]) for c in fcm.calls()] == [(sha(token), 200)]
    (message,) = fcm.messages()
    assert message["notification"] == {"title": "Welcome!", "body": "Thanks for subscribing"}
    assert message["data"] == {"notification_id": welcome.campaign_id}
    assert message["webpush"] == {"fcm_options": {"link": "https://shop.example/welcome"}}
    assert sends(registry_url, welcome.campaign_id) == [(sha(token), "sent", None, 1)]

    # The same request again (an SDK that missed the answer): duplicates, nothing sent. The same
    # token subscribed again later, still active: not an activation. Another token: one more.
    assert post(service, client_key, ev(1, "register", "u-1"), ev(2, "subscribe", "u-1", token, 1)) == 200
    assert post(service, client_key, ev(3, "subscribe", "u-1", token, 60)) == 200
    assert len(fcm.calls()) == 1
    assert post(service, client_key, ev(4, "subscribe", "u-2", f"{unique_name}-token-2", 61)) == 200
    assert [c["token_sha256"] for c in fcm.calls()] == [sha(token), sha(f"{unique_name}-token-2")]
    assert ledger.counts(welcome.campaign_id)["sent"] == 2


def test_a_retried_subscribe_the_marks_did_not_catch_sends_nothing_more(make_ingest, fcm, ledger, client_key,
                                                                          unique_name, registry_url):
    """The same subscribe under another event id (a retry whose idempotency mark was lost) is
    written again as a replay: nothing activated, nothing sent."""
    welcome = ledger.set_welcome(unique_name, "site-1", "Hi", "Welcome", None, datetime.now(timezone.utc))
    service = make_ingest(fcm)
    assert post(service, client_key, ev(1, "subscribe", "u-1", f"{unique_name}-t", 1)) == 200
    assert post(service, client_key, ev("1-again", "subscribe", "u-1", f"{unique_name}-t", 1)) == 200
    assert len(fcm.calls()) == 1
    assert [row[1] for row in sends(registry_url, welcome.campaign_id)] == ["sent"]


def test_an_unregistered_token_is_marked_invalid(make_ingest, fcm, ledger, client_key, unique_name, registry_url):
    welcome = ledger.set_welcome(unique_name, "site-1", "Hi", "Welcome", None, datetime.now(timezone.utc))
    fcm.set_script({"default": "ok", "prefixes": {"dead-": "unregistered"}})
    service = make_ingest(fcm)
    token = f"dead-{unique_name}"
    assert post(service, client_key, ev(1, "subscribe", "u-1", token, 1)) == 200
    assert sends(registry_url, welcome.campaign_id) == [(sha(token), "invalid", "UNREGISTERED", 1)]
    with psycopg.connect(registry_url) as conn:
        _, subscriptions = read_rows(conn, unique_name)
    assert subscriptions[("site-1", token)]["status"] == "invalid"


def test_fcm_slower_than_the_deadline_leaves_the_answer_prompt_and_the_send_unknown(
        make_ingest, fcm, ledger, client_key, unique_name, registry_url, stream_records):
    welcome = ledger.set_welcome(unique_name, "site-1", "Hi", "Welcome", None, datetime.now(timezone.utc))
    service = make_ingest(fcm, timeout_s=0.5)
    assert post(service, client_key, ev(0, "register", "u-0")) == 200  # connections warm
    fcm.set_script({"default": "slow:12000"})
    started = time.monotonic()
    assert post(service, client_key, ev(1, "subscribe", "u-1", f"{unique_name}-t", 1)) == 200
    elapsed = time.monotonic() - started
    # FCM answers after 12 s: only a request that gave up at its 0.5 s deadline is back well before
    # (the margin is for a loaded machine, not a performance figure).
    assert elapsed < 6, elapsed
    assert [(row[1], row[2]) for row in sends(registry_url, welcome.campaign_id)] == [("unknown", "TIMEOUT")]
    assert sorted(r["event"]["event_id"] for _, r in stream_records()) == ["e-0", "e-1"]


def test_fcm_unreachable_answers_200_and_the_send_failed(make_ingest, fcm, ledger, client_key, unique_name,
                                                        registry_url):
    welcome = ledger.set_welcome(unique_name, "site-1", "Hi", "Welcome", None, datetime.now(timezone.utc))
    service = make_ingest(fcm, endpoint=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    started = time.monotonic()
    assert post(service, client_key, ev(1, "subscribe", "u-1", f"{unique_name}-t", 1)) == 200
    assert time.monotonic() - started < 8  # no retrying past the 2 s welcome deadline (margin: a loaded machine)
    assert [(row[1], row[2]) for row in sends(registry_url, welcome.campaign_id)] == [("failed", "NETWORK")]

    fcm.stop()  # the token endpoint gone too (a fresh service has no access token yet)
    service = make_ingest(fcm, endpoint=f"http://127.0.0.1:{free_port()}")
    assert post(service, client_key, ev(2, "subscribe", "u-2", f"{unique_name}-t2", 2)) == 200
    assert [(row[1], row[2]) for row in sends(registry_url, welcome.campaign_id)][-1] == ("failed", "AUTH")


def test_no_welcome_configured_no_fcm_call(make_ingest, fcm, ledger, client_key, unique_name, registry_url):
    other = ledger.set_welcome(unique_name, "site-2", "Hi", "Welcome", None, datetime.now(timezone.utc))
    service = make_ingest(fcm)
    assert post(service, client_key, ev(1, "subscribe", "u-1", f"{unique_name}-t", 1)) == 200
    assert fcm.calls() == [] and sends(registry_url, other.campaign_id) == []


def test_a_token_activated_again_gets_no_second_welcome_unless_the_text_changed(make_ingest, fcm, ledger,
                                                                               client_key, unique_name):
    first = ledger.set_welcome(unique_name, "site-1", "Hi", "Welcome", None, datetime.now(timezone.utc))
    service = make_ingest(fcm)
    token = f"{unique_name}-t"
    assert post(service, client_key, ev(1, "subscribe", "u-1", token, 1)) == 200
    assert post(service, client_key, ev(2, "unsubscribe", "u-1", token, 2)) == 200
    assert post(service, client_key, ev(3, "subscribe", "u-1", token, 3)) == 200  # active again: no second
    assert len(fcm.calls()) == 1
    second = ledger.set_welcome(unique_name, "site-1", "Hello", "New text", None, datetime.now(timezone.utc))
    assert post(service, client_key, ev(4, "unsubscribe", "u-1", token, 4)) == 200
    assert post(service, client_key, ev(5, "subscribe", "u-1", token, 5)) == 200
    assert [m["data"]["notification_id"] for m in fcm.messages()] == [first.campaign_id, second.campaign_id]
    assert ledger.get(first.campaign_id).state == "done" and ledger.get(second.campaign_id).state == "running"


def test_a_put_failing_after_the_registry_write_leaves_the_welcome_owed_and_the_retry_sends_it_once(
        make_ingest, fcm, ledger, client_key, unique_name, registry_url, kinesis_client):
    welcome = ledger.set_welcome(unique_name, "site-1", "Hi", "Welcome", None, datetime.now(timezone.utc))
    kinesis = RefusingPuts(kinesis_client)
    service = make_ingest(fcm, kinesis=kinesis)
    token = f"{unique_name}-t"
    request = [ev(1, "register", "u-1"), ev(2, "subscribe", "u-1", token, 1)]
    assert post(service, client_key, *request) == 503  # the registry holds the token active, Kinesis refused
    with psycopg.connect(registry_url) as conn:
        assert read_rows(conn, unique_name)[1][("site-1", token)]["status"] == "active"
    assert fcm.calls() == [] and sends(registry_url, welcome.campaign_id) == []

    kinesis.refusing = False
    assert post(service, client_key, *request) == 200  # the SDK's retry: the token is active already
    assert [(c["token_sha256"], c["status"]) for c in fcm.calls()] == [(sha(token), 200)]
    assert sends(registry_url, welcome.campaign_id) == [(sha(token), "sent", None, 1)]

    # The retry again, and a later subscribe of the token: claimed already, nothing more.
    assert post(service, client_key, *request) == 200
    assert post(service, client_key, ev(3, "subscribe", "u-1", token, 60)) == 200
    assert len(fcm.calls()) == 1 and ledger.counts(welcome.campaign_id)["targeted"] == 1


def test_a_token_active_before_the_welcome_is_welcomed_on_its_next_subscribe_only_if_activated_in_the_window(
        make_ingest, fcm, ledger, client_key, unique_name, registry_url):
    service = make_ingest(fcm)  # the property has no welcome yet
    recent, old = f"{unique_name}-recent", f"{unique_name}-old"
    two_days = -2 * 86_400
    assert post(service, client_key, ev(1, "subscribe", "u-1", recent, 1),
                ev(2, "subscribe", "u-2", old, two_days)) == 200
    assert fcm.calls() == []
    welcome = ledger.set_welcome(unique_name, "site-1", "Hi", "Welcome", None, datetime.now(timezone.utc))
    # Their next subscribes (refreshes of active tokens): the one activated an hour ago is within
    # the 24 h window and owed its welcome; the one activated two days ago is not.
    assert post(service, client_key, ev(3, "subscribe", "u-1", recent, 120),
                ev(4, "subscribe", "u-2", old, 120)) == 200
    assert [(c["token_sha256"], c["status"]) for c in fcm.calls()] == [(sha(recent), 200)]
    assert sends(registry_url, welcome.campaign_id) == [(sha(recent), "sent", None, 1)]


def test_welcomer_from_env_reads_fcm_and_the_deadline(fcm, registry_url, tmp_path, caplog):
    registry = Registry.for_lambda(RegistryConfig(registry_url))
    try:
        assert welcomer_from_env(registry, {}) is None
        assert "welcome notifications off (no PISTATS_FCM_CREDENTIALS nor PISTATS_FCM_CREDENTIALS_SECRET_ARN)" \
            in caplog.text
        assert welcomer_from_env(registry, {"PISTATS_FCM_CREDENTIALS": str(tmp_path / "missing.json")}) is None
        assert "welcome notifications off: PISTATS_FCM_CREDENTIALS cannot be read" in caplog.text
        welcome = welcomer_from_env(registry, {"PISTATS_FCM_CREDENTIALS": fcm.write_credentials(tmp_path / "sa.json"),
                                               "PISTATS_FCM_ENDPOINT": fcm.url,
                                               "PISTATS_INGEST_WELCOME_TIMEOUT_S": "0.75",
                                               "PISTATS_INGEST_WELCOME_WINDOW_S": "600"})
        assert welcome is not None and (welcome._config.timeout_s, welcome._config.window_s) == (0.75, 600)
        welcome.close()
    finally:
        registry.close()
