"""The ledger on the real PostgreSQL: campaigns, claims at most once, settling pending sends only,
orphans, export marks, counts, and the active targets read from the registry."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from pistats.push.ledger import CampaignSpec, Ledger, Settled, Target
from pistats.registry.config import RegistryConfig
from pistats.registry.store import Registry

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


class Clock:
    """A manual clock for claim, orphan and finish times."""

    def __init__(self, now: datetime = T0):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def target(n: int, user: str | None = None) -> Target:
    token = f"fcm-token-{n}"
    return Target(digest(token), token, user or f"u-{n}", "web")


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def ledger(registry_url, clock):
    ledger = Ledger.from_config(RegistryConfig(registry_url), clock=clock)
    yield ledger
    ledger.close()


@pytest.fixture
def campaign(ledger, client_id):
    return ledger.create(CampaignSpec(client_id, "site-1", "Title", "Body", None, None, 500.0), T0)


def test_create_stores_the_parameters_and_reference_time(ledger, client_id):
    created_at = datetime(2026, 11, 20, 8, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    made = ledger.create(CampaignSpec(client_id, "site-1", "Hello 😀", "Come 'back'", "https://example.com/x",
                                      "country=DE,active_within=7d", 250.5), created_at)
    assert made.campaign_id.startswith("c_") and len(made.campaign_id) == 22
    assert (made.state, made.reason, made.finished_at) == ("running", None, None)
    assert ledger.get(made.campaign_id) == made
    assert (made.client_id, made.property_id, made.title, made.body, made.url, made.segment, made.rate) == (
        client_id, "site-1", "Hello 😀", "Come 'back'", "https://example.com/x", "country=DE,active_within=7d", 250.5)
    assert made.created_at == created_at
    assert ledger.get("c_00000000000000000000") is None


def test_finish_once(ledger, campaign, clock):
    clock.now = T0 + timedelta(minutes=5)
    assert ledger.finish(campaign.campaign_id, "aborted", "THIRD_PARTY_AUTH_ERROR") is True
    clock.now = T0 + timedelta(minutes=6)
    assert ledger.finish(campaign.campaign_id, "done") is False
    got = ledger.get(campaign.campaign_id)
    assert (got.state, got.reason, got.finished_at) == ("aborted", "THIRD_PARTY_AUTH_ERROR", T0 + timedelta(minutes=5))
    assert ledger.finish("c_00000000000000000000", "done") is False


def test_claim_is_at_most_once_per_token_per_campaign(ledger, campaign, client_id):
    first = [target(n) for n in range(5)]
    assert ledger.claim(campaign.campaign_id, first) == first
    assert ledger.claim(campaign.campaign_id, first) == []
    again = [target(3), target(5), target(5), target(6)]
    assert ledger.claim(campaign.campaign_id, again) == [target(5), target(6)]  # each digest once
    assert ledger.counts(campaign.campaign_id) == {
        "targeted": 7, "pending": 7, "sent": 0, "failed": 0, "invalid": 0, "unknown": 0}
    # Another campaign claims the same tokens for itself.
    other = ledger.create(CampaignSpec(client_id, "site-1", "T", "B", None, None, 1.0), T0)
    assert ledger.claim(other.campaign_id, first) == first


def test_claim_of_an_unknown_campaign_is_refused(ledger):
    with pytest.raises(ValueError, match="ForeignKeyViolation"):
        ledger.claim("c_00000000000000000000", [target(1)])


def test_no_token_text_in_campaign_sends(ledger, campaign, db_conn):
    ledger.claim(campaign.campaign_id, [target(1)])
    (row,) = db_conn.execute("SELECT row_to_json(s)::text FROM campaign_sends s WHERE campaign_id = %s",
                             (campaign.campaign_id,)).fetchall()
    assert "fcm-token-1" not in row[0]
    columns = {r[0] for r in db_conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'campaign_sends'")}
    assert "token" not in columns


@pytest.fixture
def db_conn(registry_url):
    with psycopg.connect(registry_url, autocommit=True) as conn:
        yield conn


def test_settle_changes_pending_sends_only(ledger, campaign, clock):
    targets = [target(n) for n in range(4)]
    clock.now = T0 + timedelta(seconds=1)
    ledger.claim(campaign.campaign_id, targets)
    at = T0 + timedelta(seconds=2)
    outcomes = [Settled(targets[0].token_digest, "sent", None, 1, at),
                Settled(targets[1].token_digest, "invalid", "UNREGISTERED", 1, at),
                Settled(targets[2].token_digest, "failed", "INTERNAL", 4, at),
                Settled(digest("never-claimed"), "sent", None, 1, at)]
    assert ledger.settle(campaign.campaign_id, outcomes) == 3
    # Twice: nothing changes, not even to another outcome.
    later = T0 + timedelta(seconds=9)
    assert ledger.settle(campaign.campaign_id, [Settled(targets[0].token_digest, "failed", "X", 9, later)]) == 0
    assert ledger.counts(campaign.campaign_id) == {
        "targeted": 4, "pending": 1, "sent": 1, "failed": 1, "invalid": 1, "unknown": 0}
    # The first of two outcomes for one digest counts.
    assert ledger.settle(campaign.campaign_id, [Settled(targets[3].token_digest, "sent", None, 2, later),
                                                Settled(targets[3].token_digest, "failed", "Y", 3, later)]) == 1
    rows = {r.token_digest: r for r in ledger.unexported(campaign.campaign_id)}
    assert rows[targets[1].token_digest].state == "invalid"
    assert rows[targets[1].token_digest].error_code == "UNREGISTERED"
    assert rows[targets[2].token_digest].attempts == 4
    assert rows[targets[3].token_digest].state == "sent" and rows[targets[3].token_digest].attempts == 2
    assert rows[targets[0].token_digest].claimed_at == T0 + timedelta(seconds=1)
    assert rows[targets[0].token_digest].settled_at == at


def test_orphans_become_unknown_and_are_never_claimed_again(ledger, campaign, clock):
    targets = [target(n) for n in range(3)]
    ledger.claim(campaign.campaign_id, targets)
    ledger.settle(campaign.campaign_id, [Settled(targets[0].token_digest, "sent", None, 1, T0)])
    clock.now = T0 + timedelta(hours=1)  # the resume
    assert ledger.orphans_to_unknown(campaign.campaign_id) == 2
    assert ledger.orphans_to_unknown(campaign.campaign_id) == 0
    assert ledger.claim(campaign.campaign_id, targets) == []
    assert ledger.settle(campaign.campaign_id, [Settled(targets[1].token_digest, "sent", None, 1, T0)]) == 0
    assert ledger.counts(campaign.campaign_id) == {
        "targeted": 3, "pending": 0, "sent": 1, "failed": 0, "invalid": 0, "unknown": 2}
    unknown = [r for r in ledger.unexported(campaign.campaign_id) if r.state == "unknown"]
    assert {r.settled_at for r in unknown} == {T0 + timedelta(hours=1)}


def test_release_gives_back_pending_claims_only(ledger, campaign):
    targets = [target(n) for n in range(4)]
    ledger.claim(campaign.campaign_id, targets)
    ledger.settle(campaign.campaign_id, [Settled(targets[0].token_digest, "sent", None, 1, T0)])
    digests = [t.token_digest for t in targets[:3]] + [digest("never-claimed")]
    assert ledger.release(campaign.campaign_id, digests) == 2  # the sent one stays
    assert ledger.counts(campaign.campaign_id) == {
        "targeted": 2, "pending": 1, "sent": 1, "failed": 0, "invalid": 0, "unknown": 0}
    assert ledger.claim(campaign.campaign_id, targets) == targets[1:3]  # a later run may send them


def test_unexported_pages_until_marked(ledger, campaign):
    targets = [target(n) for n in range(7)]
    ledger.claim(campaign.campaign_id, targets)
    settled = targets[:5]
    ledger.settle(campaign.campaign_id, [Settled(t.token_digest, "sent", None, 1, T0) for t in settled])
    seen = []
    while page := ledger.unexported(campaign.campaign_id, limit=2):
        assert [r.token_digest for r in page] == sorted(r.token_digest for r in page)
        seen += [r.token_digest for r in page]
        assert ledger.mark_exported(campaign.campaign_id, [r.token_digest for r in page]) == len(page)
    assert sorted(seen) == sorted(t.token_digest for t in settled)  # pending sends are not exported
    assert ledger.mark_exported(campaign.campaign_id, seen) == 0
    assert ledger.mark_exported(campaign.campaign_id, [targets[6].token_digest]) == 0  # pending
    ledger.settle(campaign.campaign_id, [Settled(targets[6].token_digest, "failed", "INTERNAL", 3, T0)])
    assert [r.token_digest for r in ledger.unexported(campaign.campaign_id)] == [targets[6].token_digest]


def subscribe(registry: Registry, client_id: str, user: str, token: str, second: int, prop: str = "site-1",
              kind: str = "subscribe") -> None:
    registry.write(client_id, [{
        "event_id": f"{kind}-{user}-{token}-{second}", "type": kind, "property_id": prop, "user_id": user,
        "push_token": token, "timestamp": (T0 + timedelta(seconds=second)).isoformat().replace("+00:00", "Z"),
        "context": {"sdk": {"name": "pistats-android"}}}], T0 + timedelta(minutes=1))


@pytest.fixture
def registry(registry_url):
    registry = Registry.for_lambda(RegistryConfig(registry_url))
    yield registry
    registry.close()


def test_active_targets_pages_by_digest(ledger, registry, client_id):
    tokens = [f"tok-{n}" for n in range(25)]
    for n, token in enumerate(tokens):
        subscribe(registry, client_id, f"u-{n % 5}", token, 1)
    subscribe(registry, client_id, "u-0", "tok-3", 2, kind="unsubscribe")
    subscribe(registry, client_id, "u-9", "other-site", 1, prop="site-2")
    pages, after = [], b""
    while page := ledger.active_targets(client_id, "site-1", after=after, limit=4):
        pages.append(page)
        after = page[-1].token_digest
    got = [t for page in pages for t in page]
    assert [len(p) for p in pages] == [4, 4, 4, 4, 4, 4]
    expected = sorted((digest(t), t, f"u-{n % 5}") for n, t in enumerate(tokens) if t != "tok-3")
    assert [(t.token_digest, t.token, t.user_id) for t in got] == expected
    assert {t.platform for t in got} == {"android"}


def test_active_targets_of_some_users(ledger, registry, client_id):
    for n in range(30):
        subscribe(registry, client_id, f"u-{n % 6}", f"tok-{n}", 1)
    subscribe(registry, client_id, "u-1", "tok-1", 2, kind="unsubscribe")
    users = ["u-1", "u-4", "nobody", "u-4"]
    got, after = [], b""
    while page := ledger.active_targets(client_id, "site-1", user_ids=users, after=after, limit=3):
        got += page
        after = page[-1].token_digest
    expected = sorted(digest(f"tok-{n}") for n in range(30) if n % 6 in (1, 4) and n != 1)
    assert [t.token_digest for t in got] == expected
    assert {t.user_id for t in got} == {"u-1", "u-4"}
    assert ledger.active_targets(client_id, "site-1", user_ids=["nobody"]) == []


def test_failures_name_no_value(registry_url, unique_name):
    """A registry that is not there: RegistryUnavailable naming the class, not the token."""
    from pistats.registry.errors import RegistryUnavailable

    dead = RegistryConfig("postgresql://pistats:s3cret@127.0.0.1:1/pistats", connect_timeout_s=1)
    ledger = Ledger.from_config(dead)
    with pytest.raises(RegistryUnavailable) as caught:
        ledger.claim("c_x", [target(1)])
    assert "fcm-token-1" not in str(caught.value) and "s3cret" not in str(caught.value)
    with pytest.raises(RegistryUnavailable):
        with ledger.hold("c_x"):
            pass
