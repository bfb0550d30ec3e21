"""Registry fixtures: the real PostgreSQL, a client id per test, the rows read back as the
views of tests/support/registry.py, and databases of a test's own."""

from __future__ import annotations

from datetime import datetime, timezone

import psycopg
import pytest

from pistats.registry.config import RegistryConfig
from pistats.registry.store import Registry
from tests.support.registry import subscriber_view, subscription_view

RECEIVED = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def delete_client(registry_url: str, client_id: str) -> None:
    """Every registry row of ``client_id``: property settings, campaigns (their sends cascade),
    subscriptions and subscribers. The registry, push and demo tests clean up with it."""
    with psycopg.connect(registry_url, autocommit=True) as conn:
        for table in ("property_settings", "campaigns", "push_subscriptions", "subscribers"):
            conn.execute(f"DELETE FROM {table} WHERE client_id = %s", (client_id,))


@pytest.fixture
def client_id(unique_name, registry_url):
    """This test's client: registry rows of other tests and runs have other client ids. Its rows
    are deleted afterwards."""
    yield unique_name
    delete_client(registry_url, unique_name)


@pytest.fixture
def make_registry(registry_url):
    """``make_registry(url=None, pooled=False)``: a Registry, closed after the test."""
    made = []

    def make(url=None, pooled=False, **config):
        settings = RegistryConfig(url or registry_url, **config)
        registry = Registry.pooled(settings) if pooled else Registry.for_lambda(settings)
        made.append(registry)
        return registry

    yield make
    for registry in made:
        registry.close()


@pytest.fixture
def registry(make_registry):
    return make_registry()


@pytest.fixture
def db(registry_url):
    conn = psycopg.connect(registry_url, autocommit=True)
    yield conn
    conn.close()


def read_rows(conn, client_id: str) -> tuple[dict, dict]:
    """The registry rows of ``client_id`` as (subscribers, subscriptions) views keyed like
    tests.support.registry.expected."""
    subscribers = {
        (p, u): subscriber_view(*rest)
        for p, u, *rest in conn.execute(
            "SELECT property_id, user_id, registered_at, first_seen_at, last_seen_at, locale, timezone, "
            "unsubscribed_at FROM subscribers WHERE client_id = %s", (client_id,))
    }
    subscriptions = {
        (p, t): subscription_view(*rest)
        for p, t, *rest in conn.execute(
            "SELECT property_id, token, user_id, platform, status, status_changed_at, last_error "
            "FROM push_subscriptions WHERE client_id = %s", (client_id,))
    }
    return subscribers, subscriptions


@pytest.fixture
def rows(db, client_id):
    return lambda client=None: read_rows(db, client or client_id)


@pytest.fixture
def scratch_database(registry_url, unique_name):
    """``scratch_database(icu_locale=None)``: the URL of a new empty database, dropped afterwards."""
    made = []
    admin = psycopg.connect(registry_url, autocommit=True)

    def make(icu_locale: str | None = None) -> str:
        name = f"{unique_name}_{len(made)}"
        locale = f" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '{icu_locale}' LOCALE 'C.UTF-8'" \
            if icu_locale else ""
        admin.execute(f'CREATE DATABASE "{name}"{locale}')
        made.append(name)
        return registry_url.rsplit("/", 1)[0] + "/" + name

    yield make
    for name in made:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()
