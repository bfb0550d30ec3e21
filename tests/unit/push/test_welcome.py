"""Welcome notifications without services: which activations get one, the cache, the Welcomer's
rules with fakes (at most what the ledger claims, never raising, everything claimed settled), the
sync sender's answers to each network fault and FCM answer (httpx MockTransport)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import httpx
import pytest

from pistats.errors import ConfigError
from pistats.push.fcm import FcmConfig, SendResult
from pistats.push.fcm_sync import Delivery, SyncFcmSender, delivery_of
from pistats.push.ledger import Campaign
from pistats.push.welcome import WelcomeCampaigns, WelcomeConfig, Welcomer, activations
from pistats.registry.changes import plan
from pistats.registry.errors import RegistryUnavailable
from pistats.registry.store import Written
from pistats.testing.fcm import FcmServer

NOW = datetime(2026, 11, 26, 12, tzinfo=timezone.utc)


def subscribe(n, prop="web"):
    return {"event_id": f"e{n}", "type": "subscribe", "property_id": prop, "user_id": f"u{n}",
            "push_token": f"token-{n}", "timestamp": "2026-11-26T10:00:00.000Z",
            "context": {"sdk": {"name": "pistats-android"}}}


def written(*events, owed=None):
    """The write of ``events``, every subscription (or those at the indexes ``owed``) owed a welcome."""
    changes = plan("acme", list(events), NOW)
    keys = [(c.property_id, c.digest) for c in changes.subscriptions]
    return Written(changes, welcome_owed=tuple(keys if owed is None else [keys[i] for i in owed]))


def campaign(property_id="web", campaign_id="c_00000000000000000001", title="Hi"):
    return Campaign(campaign_id, "acme", property_id, title, "Welcome", None, None, 1.0, NOW, "running", None, None,
                    "welcome")


def test_activations_are_what_the_write_found_owed_and_kinesis_took():
    w = written(subscribe(1), subscribe(2), subscribe(3, "app"), owed=[0, 2])
    found = activations(w)
    assert [(a.property_id, a.user_id, a.platform, a.token) for a in found] == [
        ("app", "u3", "android", "token-3"), ("web", "u1", "android", "token-1")]
    assert "token-1" not in repr(found)
    assert [a.token for a in activations(w, {("web", "token-1"), ("web", "token-2")})] == ["token-1"]
    assert activations(Written(plan("acme", [], NOW))) == []
    activated_only = Written(w.plan, activated=w.welcome_owed)  # activated, but owed nothing (welcomed before)
    assert activations(activated_only) == []


def test_config_from_env():
    assert WelcomeConfig.from_env({}) == WelcomeConfig(2.0, 60.0, 86_400.0)
    assert WelcomeConfig.from_env({"PISTATS_INGEST_WELCOME_TIMEOUT_S": "0.5"}).timeout_s == 0.5
    assert WelcomeConfig.from_env({"PISTATS_INGEST_WELCOME_WINDOW_S": "3600"}).window_s == 3600
    for bad in ("soon", "0", "-1", "31"):
        with pytest.raises(ConfigError, match="PISTATS_INGEST_WELCOME_TIMEOUT_S"):
            WelcomeConfig.from_env({"PISTATS_INGEST_WELCOME_TIMEOUT_S": bad})
    for bad in ("a day", "-1", str(31 * 86_400)):
        with pytest.raises(ConfigError, match="PISTATS_INGEST_WELCOME_WINDOW_S"):
            WelcomeConfig.from_env({"PISTATS_INGEST_WELCOME_WINDOW_S": bad})
    assert WelcomeConfig(window_s=3600).welcome_since(NOW) == datetime(2026, 11, 26, 11, tzinfo=timezone.utc)


class FakeLedger:
    def __init__(self, welcomes=None, claim_fails=False):
        self.welcomes_by_property = welcomes or {}
        self.queries, self.claimed, self.settled = [], set(), []
        self.claim_fails = claim_fails

    def welcomes(self, client_id, property_ids):
        self.queries.append(sorted(property_ids))
        return {p: c for p, c in self.welcomes_by_property.items() if p in property_ids}

    def claim(self, campaign_id, targets):
        if self.claim_fails:
            raise RegistryUnavailable("registry: OperationalError (SQLSTATE 57014)")
        new = [t for t in targets if (campaign_id, t.token_digest) not in self.claimed]
        self.claimed |= {(campaign_id, t.token_digest) for t in new}
        return new

    def settle(self, campaign_id, settled):
        self.settled += [(campaign_id, s.state, s.error_code) for s in settled]


class FakeRegistry:
    def __init__(self):
        self.marks = []

    def mark_invalid(self, marks):
        self.marks += list(marks)


class FakeSender:
    def __init__(self, answers):
        self.answers, self.sent = list(answers), []

    def send(self, message, deadline):
        self.sent.append(message["token"])
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_the_cache_asks_once_per_property_and_lifetime():
    clock = [0.0]
    ledger = FakeLedger({"web": campaign()})
    cache = WelcomeCampaigns(ledger, ttl_s=60, clock=lambda: clock[0])
    assert set(cache.of("acme", ["web", "app"])) == {"web"}
    assert set(cache.of("acme", ["app", "web"])) == {"web"}  # "no welcome" remembered too
    clock[0] = 61
    cache.of("acme", ["web"])
    assert ledger.queries == [["app", "web"], ["web"]]


def welcomer(ledger, sender, registry=None):
    return Welcomer(ledger=ledger, registry=registry or FakeRegistry(), sender=sender,
                    config=WelcomeConfig(timeout_s=2.0, cache_s=0), now=lambda: NOW)


def test_each_claimed_token_is_sent_once_and_settled():
    ledger, registry = FakeLedger({"web": campaign()}), FakeRegistry()
    sender = FakeSender([Delivery("sent"), Delivery("invalid", "UNREGISTERED", "gone"),
                         Delivery("unknown", "TIMEOUT")])
    w = welcomer(ledger, sender, registry)
    outcome = w.after_write("acme", written(subscribe(1), subscribe(2), subscribe(3), subscribe(4, "app")))
    assert (outcome.activated, outcome.claimed, outcome.sent, outcome.invalid, outcome.unknown) == (4, 3, 1, 1, 1)
    assert sorted(sender.sent) == ["token-1", "token-2", "token-3"]  # app has no welcome
    assert [s[1:] for s in ledger.settled] == [("sent", None), ("invalid", "UNREGISTERED"), ("unknown", "TIMEOUT")]
    assert [(m.token, m.error) for m in registry.marks] == [(sender.sent[1], "UNREGISTERED: gone")]
    assert w.after_write("acme", written(subscribe(1))).claimed == 0 and len(sender.sent) == 3  # claimed before


def test_a_welcome_never_raises_and_settles_what_it_claimed():
    ledger = FakeLedger({"web": campaign()})
    sender = FakeSender([Delivery("sent"), RuntimeError("bug with token-2 in it")])
    outcome = welcomer(ledger, sender).after_write("acme", written(subscribe(1), subscribe(2), subscribe(3)))
    assert outcome.activated == 3
    assert [s[1:] for s in ledger.settled] == [("sent", None), ("unknown", "ERROR"), ("failed", "ERROR")]
    assert welcomer(FakeLedger({"web": campaign()}, claim_fails=True), FakeSender([])).after_write(
        "acme", written(subscribe(1))).claimed == 0


def test_a_failure_is_logged_without_the_token(caplog):
    ledger = FakeLedger({"web": campaign()})
    welcomer(ledger, FakeSender([RuntimeError("token-1")])).after_write("acme", written(subscribe(1)))
    assert "token-1" not in caplog.text and "RuntimeError" in caplog.text


@pytest.mark.parametrize("result, expected", [
    (SendResult("sent"), Delivery("sent", None, "", 1)),
    (SendResult("invalid_token", "UNREGISTERED", "x"), Delivery("invalid", "UNREGISTERED", "x", 1)),
    (SendResult("retry", "QUOTA_EXCEEDED"), Delivery("failed", "QUOTA_EXCEEDED", "", 1)),
    (SendResult("payload_error", "INVALID_ARGUMENT"), Delivery("failed", "INVALID_ARGUMENT", "", 1)),
    (SendResult("abort", None), Delivery("failed", "ABORT", "", 1)),
    (SendResult("retry", "NETWORK", "ConnectError: refused"), Delivery("failed", "NETWORK", "ConnectError: refused", 1)),
    (SendResult("unknown", "TIMEOUT", "ReadTimeout: x"), Delivery("unknown", "TIMEOUT", "ReadTimeout: x", 1)),
])
def test_fcm_answers_as_welcome_outcomes(result, expected):
    assert delivery_of(result, 1) == expected


@pytest.fixture(scope="module")
def credentials(tmp_path_factory):
    server = FcmServer()
    server.url = "http://fcm.test"
    return server.write_credentials(str(tmp_path_factory.mktemp("fcm") / "sa.json"))


def token_endpoint(request):
    return httpx.Response(200, json={"access_token": "ya29.test", "expires_in": 3600, "token_type": "Bearer"})


def sender_with(credentials, handler, clock=None):
    config = FcmConfig("http://fcm.test", credentials, timeout_s=1.0)
    return SyncFcmSender(config, transport=httpx.MockTransport(handler),
                         token_transport=httpx.MockTransport(token_endpoint), **({"clock": clock} if clock else {}))


MESSAGE = {"token": "registration-token-1", "notification": {"title": "t", "body": "b"}}


@pytest.mark.parametrize("error, expected", [
    (httpx.ConnectError("refused"), ("failed", "NETWORK")),
    (httpx.ConnectTimeout("slow"), ("failed", "NETWORK")),
    (httpx.PoolTimeout("busy"), ("failed", "NETWORK")),
    (httpx.WriteError("broken pipe"), ("failed", "NETWORK")),
    (httpx.WriteTimeout("slow"), ("failed", "NETWORK")),
    (httpx.ReadTimeout("slow"), ("unknown", "TIMEOUT")),
    (httpx.ReadError("reset"), ("unknown", "NETWORK")),
    (httpx.RemoteProtocolError("closed"), ("unknown", "NETWORK")),
])
def test_network_faults_before_and_after_the_request(credentials, error, expected):
    def handler(request):
        raise error

    delivery = sender_with(credentials, handler).send(MESSAGE, deadline=float("inf"))
    assert (delivery.state, delivery.code) == expected


def test_a_401_refreshes_the_token_once(credentials):
    answers = [httpx.Response(401, json={"error": {"code": 401, "status": "UNAUTHENTICATED"}}),
               httpx.Response(200, json={"name": "projects/p/messages/1"})]
    seen = []

    def handler(request):
        seen.append(json.loads(request.content)["message"]["token"])
        return answers.pop(0)

    sender = sender_with(credentials, handler)
    assert sender.send(MESSAGE, deadline=float("inf")) == Delivery("sent", None, "", 2)
    assert sender.tokens.refreshes == 2 and seen == ["registration-token-1"] * 2


def test_nothing_is_sent_after_the_deadline(credentials):
    def handler(request):  # pragma: no cover - must not be called
        raise AssertionError("sent after the deadline")

    delivery = sender_with(credentials, handler, clock=lambda: 10.0).send(MESSAGE, deadline=10.0)
    assert (delivery.state, delivery.code, delivery.attempts) == ("failed", "DEADLINE", 0)


def test_the_campaign_runner_refuses_a_welcome_campaign():
    import asyncio

    from pistats.push.campaign import CampaignRunner

    runner = CampaignRunner(ledger=None, registry=None, store=None, fcm=None, now=lambda: NOW, clock=lambda: 0.0)
    with pytest.raises(ValueError, match="is a welcome notification"):
        asyncio.run(runner.run(campaign()))
