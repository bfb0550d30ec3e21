"""Migrations on databases of the test's own: applied once, twice is a no-op, concurrently too."""

from __future__ import annotations

import threading

import psycopg
import pytest

from pistats.registry.errors import RegistrySchemaError
from pistats.registry.migrations import LATEST_VERSION, MIGRATIONS, applied_versions, migrate, schema_version


def test_migrations_run_twice(scratch_database):
    url = scratch_database()
    with psycopg.connect(url, autocommit=True) as conn:
        assert schema_version(conn) == 0
        assert migrate(conn) == [m.version for m in MIGRATIONS]
        assert migrate(conn) == []
        assert applied_versions(conn) == [m.version for m in MIGRATIONS]
        assert schema_version(conn) == LATEST_VERSION
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
        assert {"subscribers", "push_subscriptions", "schema_migrations", "campaigns", "campaign_sends"} <= tables


def test_the_schema_is_at_version_2_with_the_ledger(scratch_database):
    """Migration 2 (the push sender's ledger) comes after 1, on a database at 1 as on an empty one."""
    assert [m.version for m in MIGRATIONS][:2] == [1, 2] and LATEST_VERSION >= 2
    url = scratch_database()
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():  # a registry made before the ledger: migration 1 alone
            conn.execute(MIGRATIONS[0].sql)
            conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
                         "applied_at timestamptz NOT NULL DEFAULT now())")
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (1, %s)", (MIGRATIONS[0].name,))
        assert schema_version(conn) == 1
        assert migrate(conn)[:1] == [2]
        assert migrate(conn) == []
        assert schema_version(conn) == LATEST_VERSION

        def columns(table):
            return {r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,))}

        assert {"campaign_id", "client_id", "property_id", "title", "body", "url", "segment", "rate", "created_at",
                "state", "reason", "finished_at"} <= columns("campaigns")
        assert {"campaign_id", "token_digest", "user_id", "platform", "state", "error_code", "attempts",
                "claimed_at", "settled_at", "exported"} <= columns("campaign_sends")
        assert "token" not in columns("campaign_sends")


def test_concurrent_inits_apply_each_migration_once(scratch_database):
    url = scratch_database()
    results, errors = [], []

    def init():
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                results.append(migrate(conn))
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=init) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # Each migration is its own transaction under the lock: one init may apply 1 and another 2,
    # but every version exactly once, each init's in order.
    assert sorted(v for applied in results for v in applied) == [m.version for m in MIGRATIONS]
    assert all(applied == sorted(applied) for applied in results)
    with psycopg.connect(url) as conn:
        assert applied_versions(conn) == [m.version for m in MIGRATIONS]


def test_the_contract_columns_are_there(registry_url):
    """docs/registry.md's schema: other services read these names."""
    with psycopg.connect(registry_url) as conn:
        def columns(table):
            return {r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,))}

        assert {"client_id", "property_id", "user_id", "registered_at", "first_seen_at", "last_seen_at", "locale",
                "timezone"} <= columns("subscribers")
        assert {"client_id", "property_id", "user_id", "token", "platform", "status", "status_changed_at",
                "created_at", "updated_at", "last_error"} <= columns("push_subscriptions")


def test_an_unmigrated_database_is_refused_by_check(scratch_database, make_registry):
    registry = make_registry(scratch_database())
    with pytest.raises(RegistrySchemaError, match="pistats registry init"):
        registry.check()


def test_status_cannot_be_written_directly(registry_url):
    """status is computed from the registers: no writer can set one that contradicts them."""
    with psycopg.connect(registry_url) as conn:
        with pytest.raises(psycopg.errors.GeneratedAlways):
            conn.execute("UPDATE push_subscriptions SET status = 'active' WHERE false")
