"""What Registry.write reports, in the same round trip: the subscriptions a write made active that
were not active before (registry_write of migration 4), and those owed their property's welcome
(migration 5): active, activated by the write or since the window's start, with no send in the
property's current welcome campaign."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from pistats.push.ledger import Ledger, Target
from pistats.registry.changes import token_digest
from pistats.registry.config import RegistryConfig
from pistats.registry.migrations import MIGRATIONS, migrate
from pistats.registry.store import InvalidMark, Registry
from tests.integration.registry.conftest import RECEIVED

T0 = RECEIVED - timedelta(hours=1)


def ev(kind, user="u-1", token=None, second=0, n=[0]):
    n[0] += 1
    event = {"event_id": f"e-{n[0]}", "type": kind, "property_id": "site-1", "user_id": user,
             "timestamp": (T0 + timedelta(seconds=second)).isoformat().replace("+00:00", "Z")}
    if token:
        event["push_token"] = token
    return event


def activated(registry, client_id, *events):
    return [(p, d) for p, d in registry.write(client_id, list(events), RECEIVED).activated]


def test_new_tokens_are_activated_replays_and_refreshes_are_not(registry, client_id):
    assert activated(registry, client_id, ev("register"), ev("subscribe", token="a", second=1),
                     ev("subscribe", token="b", second=1)) == sorted(
        [("site-1", token_digest("a")), ("site-1", token_digest("b"))])
    assert activated(registry, client_id, ev("subscribe", token="a", second=1)) == []  # a replay
    assert activated(registry, client_id, ev("subscribe", token="a", second=9)) == []  # active already
    assert activated(registry, client_id, ev("subscribe", "u-2", token="a", second=10)) == []  # moved, active
    assert activated(registry, client_id, ev("register", second=11), ev("page_view", second=12)) == []


def test_a_newer_subscribe_after_an_unsubscribe_or_an_invalid_mark_activates_again(registry, client_id):
    activated(registry, client_id, ev("subscribe", token="a", second=1))
    assert activated(registry, client_id, ev("unsubscribe", token="a", second=2)) == []
    assert activated(registry, client_id, ev("subscribe", token="a", second=1.5)) == []  # older than the unsubscribe
    assert activated(registry, client_id, ev("subscribe", token="a", second=3)) == [("site-1", token_digest("a"))]
    registry.mark_invalid([InvalidMark(client_id, "site-1", "a", "UNREGISTERED", T0 + timedelta(seconds=4))])
    assert activated(registry, client_id, ev("subscribe", token="a", second=5)) == [("site-1", token_digest("a"))]
    activated(registry, client_id, ev("unsubscribe", second=6))  # unsubscribe-all
    assert activated(registry, client_id, ev("subscribe", token="a", second=7)) == [("site-1", token_digest("a"))]


def test_an_unsubscribe_all_in_the_same_batch_decides_by_time(registry, client_id):
    assert activated(registry, client_id, ev("subscribe", token="a", second=1), ev("unsubscribe", second=2)) == []
    assert activated(registry, client_id, ev("subscribe", "u-2", token="b", second=3),
                     ev("unsubscribe", "u-2", second=2)) == [("site-1", token_digest("b"))]
    # A user's unsubscribe-all reaching a token the batch activated for them earlier in time.
    assert activated(registry, client_id, ev("subscribe", "u-3", token="c", second=1),
                     ev("subscribe", "u-3", token="d", second=5), ev("unsubscribe", "u-3", second=3)) == [
        ("site-1", token_digest("d"))]


def test_migration_4_on_a_registry_at_3_keeps_its_campaigns_and_runs_twice(scratch_database):
    url = scratch_database()
    with psycopg.connect(url, autocommit=True) as conn:
        for migration in MIGRATIONS[:3]:
            conn.execute(migration.sql)
        conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
                     "applied_at timestamptz NOT NULL DEFAULT now())")
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        conn.execute("INSERT INTO campaigns (campaign_id, client_id, property_id, title, body, rate, created_at) "
                     "VALUES ('c_1', 'acme', 'web', 't', 'b', 1, now())")
        assert migrate(conn) == [4, 5] and migrate(conn) == []
        assert conn.execute("SELECT kind FROM campaigns").fetchall() == [("campaign",)]
        columns = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'property_settings'")}
        assert columns == {"client_id", "property_id", "welcome_campaign_id", "updated_at"}
        # Code of migration 3 calling the function as it did still runs (the rows come back unread).
        arrays = ["{}"] * 9
        conn.execute("SELECT registry_write('acme', " + ", ".join(["%s::text[]"] * 2 + ["%s::timestamptz[]"] * 3
                     + ["%s::text[]"] * 2 + ["%s::timestamptz[]"] * 2) + ", NULL, NULL, NULL, NULL, NULL, NULL, "
                     "NULL, NULL, NULL)", arrays)


# -- welcomes owed (migration 5) ---------------------------------------------------------------------

WINDOW_START = RECEIVED - timedelta(hours=24)


def owed(registry, client_id, *events, since=WINDOW_START):
    return list(registry.write(client_id, list(events), RECEIVED, welcome_since=since).welcome_owed)


@pytest.fixture
def ledger(registry_url):
    ledger = Ledger.from_config(RegistryConfig(registry_url))
    yield ledger
    ledger.close()


def claim(ledger, campaign_id, token):
    return ledger.claim(campaign_id, [Target(token_digest(token), token, "u-1", "unknown")])


def test_nothing_is_owed_without_a_welcome_or_without_the_window(registry, client_id, ledger):
    assert owed(registry, client_id, ev("subscribe", token="a", second=1)) == []  # no welcome configured
    ledger.set_welcome(client_id, "site-1", "Hi", "Welcome", None, RECEIVED)
    written = registry.write(client_id, [ev("subscribe", token="b", second=2)], RECEIVED)  # welcomes off
    assert (written.activated, written.welcome_owed) == ((("site-1", token_digest("b")),), ())


def test_a_welcome_is_owed_until_claimed(registry, client_id, ledger):
    welcome = ledger.set_welcome(client_id, "site-1", "Hi", "Welcome", None, RECEIVED)
    key = ("site-1", token_digest("a"))
    assert owed(registry, client_id, ev("subscribe", token="a", second=1)) == [key]
    # Its put failed, nothing was claimed: the retry (a replay) and a refresh find it owed still.
    assert owed(registry, client_id, ev("subscribe", token="a", second=1)) == [key]
    assert owed(registry, client_id, ev("subscribe", token="a", second=9)) == [key]
    assert claim(ledger, welcome.campaign_id, "a")
    assert owed(registry, client_id, ev("subscribe", token="a", second=10)) == []  # claimed: at most once
    # Unsubscribed and subscribed again: activated, but this welcome campaign has a send to it.
    owed(registry, client_id, ev("unsubscribe", token="a", second=11))
    written = registry.write(client_id, [ev("subscribe", token="a", second=12)], RECEIVED, welcome_since=WINDOW_START)
    assert (written.activated, written.welcome_owed) == ((key,), ())
    # A new welcome text is a new campaign: owed again (the token was activated within the window).
    ledger.set_welcome(client_id, "site-1", "Hello", "New text", None, RECEIVED)
    assert owed(registry, client_id, ev("subscribe", token="a", second=13)) == [key]


def test_a_token_activated_before_the_window_is_owed_nothing_unless_activated_again(registry, client_id, ledger):
    old = RECEIVED - timedelta(days=2) - T0  # seconds from T0 to two days before the request
    registry.write(client_id, [ev("subscribe", token="a", second=old.total_seconds())], RECEIVED)
    registry.write(client_id, [ev("subscribe", "u-2", token="b", second=1)], RECEIVED)
    ledger.set_welcome(client_id, "site-1", "Hi", "Welcome", None, RECEIVED)
    # Refreshes of both: "b" was activated an hour ago, within the window; "a" two days ago.
    assert owed(registry, client_id, ev("subscribe", token="a", second=20),
                ev("subscribe", "u-2", token="b", second=20)) == [("site-1", token_digest("b"))]
    # A subscribe activating a token is owed its welcome whatever its event time (an SDK's old
    # queue): the window only bounds how long a later write still finds it owed.
    assert owed(registry, client_id, ev("subscribe", "u-3", token="c", second=old.total_seconds())) == [
        ("site-1", token_digest("c"))]


def test_an_unsubscribe_all_in_the_same_batch_leaves_nothing_owed(registry, client_id, ledger):
    ledger.set_welcome(client_id, "site-1", "Hi", "Welcome", None, RECEIVED)
    assert owed(registry, client_id, ev("subscribe", token="a", second=1), ev("unsubscribe", second=2)) == []
    assert owed(registry, client_id, ev("subscribe", "u-2", token="b", second=3),
                ev("unsubscribe", "u-2", second=2)) == [("site-1", token_digest("b"))]
    # An unsubscribe with the token (an event of the batch that is no subscribe) is never owed.
    assert owed(registry, client_id, ev("unsubscribe", "u-2", token="b", second=4)) == []


def test_activated_at_is_the_event_time_of_the_activation(registry, client_id, db):
    registry.write(client_id, [ev("subscribe", token="a", second=1)], RECEIVED)
    registry.write(client_id, [ev("subscribe", token="a", second=5)], RECEIVED)  # a refresh: unchanged
    registry.write(client_id, [ev("unsubscribe", token="a", second=6)], RECEIVED)
    registry.write(client_id, [ev("subscribe", token="a", second=8)], RECEIVED)  # activated again

    def activated_at():
        return db.execute("SELECT activated_at FROM push_subscriptions WHERE client_id = %s",
                          (client_id,)).fetchone()[0]

    assert activated_at() == T0 + timedelta(seconds=8)
    registry.write(client_id, [ev("subscribe", token="a", second=9)], RECEIVED)
    assert activated_at() == T0 + timedelta(seconds=8)


def test_migration_5_on_a_registry_at_4_keeps_rows_and_the_old_call(scratch_database):
    url = scratch_database()
    with psycopg.connect(url, autocommit=True) as conn:
        assert migrate(conn) == [m.version for m in MIGRATIONS]  # applied from scratch, then undo 5
        conn.execute("DROP FUNCTION registry_write(text, text[], text[], timestamptz[], timestamptz[], "
                     "timestamptz[], text[], text[], timestamptz[], timestamptz[], text[], bytea[], text[], text[], "
                     "text[], timestamptz[], text[], timestamptz[], text[], timestamptz)")
        conn.execute("ALTER TABLE push_subscriptions DROP COLUMN activated_at")
        conn.execute("DELETE FROM schema_migrations WHERE version = 5")
    registry = Registry.for_lambda(RegistryConfig(url))
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            # A token written by migration 4's code, then the migration, twice.
            conn.execute("SELECT registry_write('acme', '{web}', '{u-1}', '{2026-11-26T10:00:00Z}', "
                         "'{2026-11-26T10:00:00Z}', '{2026-11-26T10:00:00Z}', '{NULL}', '{NULL}', '{NULL}', '{NULL}', "
                         "'{web}', ARRAY[sha256('t-1')], '{t-1}', '{u-1}', '{web}', '{2026-11-26T10:00:00Z}', "
                         "'{active}', '{2026-11-26T10:00:00Z}', '{NULL}')")
            assert migrate(conn) == [5] and migrate(conn) == []
            assert conn.execute("SELECT status, activated_at FROM push_subscriptions").fetchall() == [("active", None)]
            assert conn.execute("SELECT count(*) FROM pg_proc WHERE proname = 'registry_write'").fetchone() == (2,)
        ledger = Ledger.from_config(RegistryConfig(url))
        ledger.set_welcome("acme", "web", "Hi", "Welcome", None, RECEIVED)
        ledger.close()
        event = {"event_id": "e", "type": "subscribe", "property_id": "web", "user_id": "u-1", "push_token": "t-1",
                 "timestamp": "2026-11-26T11:00:00Z"}
        # Active before the migration: no activated_at, so not owed on a refresh.
        assert registry.write("acme", [event], RECEIVED, welcome_since=WINDOW_START).welcome_owed == ()
    finally:
        registry.close()
