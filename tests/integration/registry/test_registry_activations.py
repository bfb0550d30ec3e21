"""What Registry.write reports as activated (registry_write of migration 4): the subscriptions a
write made active that were not active before, in the same round trip."""

from __future__ import annotations

from datetime import timedelta

import psycopg

from pistats.registry.changes import token_digest
from pistats.registry.migrations import MIGRATIONS, migrate
from pistats.registry.store import InvalidMark
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
        assert migrate(conn) == [4] and migrate(conn) == []
        assert conn.execute("SELECT kind FROM campaigns").fetchall() == [("campaign",)]
        columns = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'property_settings'")}
        assert columns == {"client_id", "property_id", "welcome_campaign_id", "updated_at"}
        # Code of migration 3 calling the function as it did still runs (the rows come back unread).
        arrays = ["{}"] * 9
        conn.execute("SELECT registry_write('acme', " + ", ".join(["%s::text[]"] * 2 + ["%s::timestamptz[]"] * 3
                     + ["%s::text[]"] * 2 + ["%s::timestamptz[]"] * 2) + ", NULL, NULL, NULL, NULL, NULL, NULL, "
                     "NULL, NULL, NULL)", arrays)
