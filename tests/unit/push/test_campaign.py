"""The campaign runner's decisions, against an in-memory ledger, a scripted FCM and a manual clock.

The real ledger, FCM server and store are exercised in tests/integration/push; here each rule
of the runner is checked on its own: what each answer settles, retries and the pace, aborts,
the store failing, and a resume after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

import pytest

from pistats.push.campaign import CampaignRunner, CampaignSettings
from pistats.push.fcm import SendResult
from pistats.push.ledger import Campaign, Target
from pistats.push.pacing import RetryPolicy
from pistats.store.base import StoreError

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


def target(n: int) -> Target:
    token = f"token-{n:05d}"
    return Target(hashlib.sha256(token.encode()).digest(), token, f"user-{n}", "web")


@dataclass
class Row:
    target: Target
    state: str = "pending"
    error_code: str | None = None
    attempts: int = 0
    settled_at: datetime | None = None
    exported: bool = False

    @property
    def token_digest(self):
        return self.target.token_digest

    @property
    def user_id(self):
        return self.target.user_id

    @property
    def platform(self):
        return self.target.platform


class MemoryLedger:
    """The ledger's contract in memory: a claim is never given twice."""

    def __init__(self, subscriptions: list[Target]):
        self.subscriptions = sorted(subscriptions, key=lambda t: t.token_digest)
        self.rows: dict[bytes, Row] = {}
        self.campaign = Campaign(campaign_id="c_0123456789abcdef0123", client_id="acme", property_id="web",
                                 title="Hi", body="Come back", url=None, segment="", rate=1000.0,
                                 created_at=T0, state="running", reason=None, finished_at=None)

    @contextlib.contextmanager
    def hold(self, campaign_id):
        yield self

    def check(self):
        pass

    def orphans_to_unknown(self, campaign_id):
        orphans = [row for row in self.rows.values() if row.state == "pending"]
        for row in orphans:
            row.state = "unknown"
        return len(orphans)

    def active_targets(self, client_id, property_id, *, user_ids=None, after=b"", limit=1000):
        return [t for t in self.subscriptions if t.token_digest > after][:limit]

    def claim(self, campaign_id, targets):
        fresh = [t for t in targets if t.token_digest not in self.rows]
        for t in fresh:
            self.rows[t.token_digest] = Row(t)
        return fresh

    def release(self, campaign_id, digests):
        for digest in digests:
            if self.rows[digest].state == "pending":
                del self.rows[digest]

    def settle(self, campaign_id, settled):
        for s in settled:
            row = self.rows[s.token_digest]
            if row.state == "pending":
                row.state, row.error_code, row.attempts, row.settled_at = s.state, s.error_code, s.attempts, s.at

    def unexported(self, campaign_id, limit):
        return [row for row in self.rows.values() if row.state != "pending" and not row.exported][:limit]

    def mark_exported(self, campaign_id, digests):
        for digest in digests:
            self.rows[digest].exported = True

    def finish(self, campaign_id, state, reason=None):
        self.campaign = replace(self.campaign, state=state, reason=reason)

    def get(self, campaign_id):
        return self.campaign

    def counts(self, campaign_id):
        states = [row.state for row in self.rows.values()]
        return {"targeted": len(states), **{s: states.count(s) for s in ("pending", "sent", "failed", "invalid", "unknown")}}


class ScriptedFcm:
    """Answers per token from a list of SendResults (the last one repeats); counts requests."""

    def __init__(self, script=None, default=SendResult("sent", name="projects/p/messages/1")):
        self.script = script or {}
        self.default = default
        self.requests: list[str] = []

    async def send(self, message):
        token = message["token"]
        self.requests.append(token)
        answers = self.script.get(token)
        if not answers:
            return self.default
        return answers.pop(0) if len(answers) > 1 else answers[0]


class Registry:
    def __init__(self):
        self.marks = []

    def mark_invalid(self, marks):
        self.marks.extend(marks)
        return len(marks)


class Store:
    def __init__(self, failing=False):
        self.failing = failing
        self.sends = []


@pytest.fixture(autouse=True)
def captured_sends(monkeypatch):
    """push_sends go to the fake store (or fail with it)."""

    def write(store, sends):
        if store.failing:
            raise StoreError("store down")
        store.sends.extend(sends)

    monkeypatch.setattr("pistats.push.campaign.write_push_sends", write)


class ManualTime:
    def __init__(self):
        self.monotonic = 0.0
        self.sleeps: list[float] = []

    def clock(self):
        return self.monotonic

    def now(self):
        return T0 + timedelta(seconds=self.monotonic)

    async def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.monotonic += seconds
        await asyncio.sleep(0)


def run(ledger, fcm, *, store=None, registry=None, settings=None, time=None):
    time = time or ManualTime()
    runner = CampaignRunner(ledger=ledger, registry=registry or Registry(), store=store or Store(), fcm=fcm,
                            now=time.now, clock=time.clock, sleep=time.sleep, random=lambda: 0.5,
                            settings=settings or CampaignSettings(concurrency=4, settle_every=3,
                                                                  settle_interval_s=0.01))
    return asyncio.run(runner.run(ledger.get("c")))


def test_every_active_token_is_sent_once_and_settled_in_ledger_and_store():
    targets = [target(n) for n in range(25)]
    ledger, fcm, store = MemoryLedger(targets), ScriptedFcm(), Store()
    result = run(ledger, fcm, store=store, settings=CampaignSettings(concurrency=4, token_page_size=7))
    assert sorted(fcm.requests) == sorted(t.token for t in targets)
    assert (result.state, result.targeted, result.sent, result.unknown) == ("done", 25, 25, 0)
    assert sorted(s.token_hash for s in store.sends) == sorted(t.token_digest.hex() for t in targets)
    assert all(row.exported for row in ledger.rows.values())
    assert all("token-" not in repr(s) for s in store.sends)


def test_an_invalid_token_is_settled_invalid_and_marked_in_the_registry():
    targets = [target(n) for n in range(5)]
    bad = targets[2].token
    fcm = ScriptedFcm({bad: [SendResult("invalid_token", code="UNREGISTERED", http_status=404, detail="gone")]})
    ledger, registry = MemoryLedger(targets), Registry()
    result = run(ledger, fcm, registry=registry)
    assert (result.sent, result.invalidated) == (4, 1)
    assert [(m.token, m.error) for m in registry.marks] == [(bad, "UNREGISTERED: gone")]
    assert ledger.rows[targets[2].token_digest].error_code == "UNREGISTERED"


def test_quota_exceeded_waits_for_retry_after_and_slows_the_campaign():
    targets = [target(n) for n in range(3)]
    quota = SendResult("retry", code="QUOTA_EXCEEDED", http_status=429, retry_after_s=7.0)
    fcm = ScriptedFcm({targets[0].token: [quota, SendResult("sent")]})
    time = ManualTime()
    result = run(MemoryLedger(targets), fcm, time=time)
    assert result.sent == 3
    assert fcm.requests.count(targets[0].token) == 2
    assert max(time.sleeps) >= 7.0


def test_a_send_out_of_attempts_is_failed_not_repeated_forever():
    targets = [target(n) for n in range(2)]
    unavailable = SendResult("retry", code="UNAVAILABLE", http_status=503)
    fcm = ScriptedFcm({targets[1].token: [unavailable]})
    settings = CampaignSettings(concurrency=2, retry=RetryPolicy(max_attempts=3), settle_interval_s=0.01)
    ledger = MemoryLedger(targets)
    result = run(ledger, fcm, settings=settings)
    assert (result.sent, result.failed) == (1, 1)
    assert fcm.requests.count(targets[1].token) == 3
    assert ledger.rows[targets[1].token_digest].attempts == 3


@pytest.mark.parametrize("answer", [
    SendResult("payload_error", code="INVALID_ARGUMENT", http_status=400, detail="message too big"),
    SendResult("abort", code="THIRD_PARTY_AUTH_ERROR", http_status=401, detail="APNs certificate"),
])
def test_an_abort_stops_sending_keeps_tokens_and_releases_what_was_never_sent(answer):
    targets = [target(n) for n in range(40)]
    fcm = ScriptedFcm(default=answer)
    ledger, registry = MemoryLedger(targets), Registry()
    result = run(ledger, fcm, registry=registry, settings=CampaignSettings(concurrency=4, settle_interval_s=0.01))
    assert result.state == "aborted" and answer.code in result.reason
    assert len(fcm.requests) <= 4  # what was in flight when the first answer came back
    assert registry.marks == []
    assert result.targeted == 0  # nothing was delivered: every claim is released, a resume can send them


def test_outcomes_the_store_refused_are_exported_by_the_next_run():
    targets = [target(n) for n in range(6)]
    ledger, store = MemoryLedger(targets), Store(failing=True)
    result = run(ledger, ScriptedFcm(), store=store)
    assert result.sent == 6 and result.not_in_store == 6
    store.failing = False
    again = run(ledger, ScriptedFcm(), store=store)
    assert again.not_in_store == 0 and len(store.sends) == 6


def test_a_resume_turns_pending_claims_into_unknown_and_never_sends_them_again():
    targets = [target(n) for n in range(10)]
    ledger = MemoryLedger(targets)
    ledger.claim("c", targets[:3])  # a run that died after claiming these
    fcm = ScriptedFcm()
    result = run(ledger, fcm)
    assert sorted(fcm.requests) == sorted(t.token for t in targets[3:])
    assert (result.targeted, result.sent, result.unknown) == (10, 7, 3)


def test_a_send_that_may_have_reached_fcm_is_settled_unknown_and_never_sent_again():
    """An answer lost after the request went (network_failure's ``unknown``) is settled at once,
    not retried; a failure before it went (``retry``, NETWORK) is tried again."""
    targets = [target(n) for n in range(4)]
    lost = SendResult("unknown", code="TIMEOUT", detail="ReadTimeout: timed out")
    refused = SendResult("retry", code="NETWORK", detail="ConnectError: refused")
    fcm = ScriptedFcm({targets[0].token: [lost, SendResult("sent")],
                       targets[1].token: [refused, SendResult("sent")]})
    ledger, store = MemoryLedger(targets), Store()
    result = run(ledger, fcm, store=store)
    assert (result.targeted, result.sent, result.unknown, result.failed) == (4, 3, 1, 0)
    assert fcm.requests.count(targets[0].token) == 1 and fcm.requests.count(targets[1].token) == 2
    row = ledger.rows[targets[0].token_digest]
    assert (row.state, row.error_code, row.attempts) == ("unknown", "TIMEOUT", 1)
    assert [(s.status, s.error_code) for s in store.sends if s.token_hash == targets[0].token_digest.hex()] == [
        ("unknown", "TIMEOUT")]
    again = run(ledger, fcm, store=store)  # a resume sends nothing more
    assert fcm.requests.count(targets[0].token) == 1 and again.unknown == 1
