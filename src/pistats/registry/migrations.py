"""The registry's tables and their versioned migrations, shipped in the package as SQL text.

Why a ``schema_migrations`` table and not alembic: PostgreSQL runs DDL inside transactions, so
:func:`migrate` applies each migration and records its version in one transaction, under a
transaction-scoped advisory lock (two ``pistats registry init`` at once: the second waits, then
finds nothing to do). That is all alembic would give here, for two tables, at the price of
SQLAlchemy in the Lambda bundle and a second description of the tables. Migrations are append
only: a change to the schema is a new entry in :data:`MIGRATIONS`, never an edit of an old one.

The tables are a contract other services read (the push sender, operators): see
docs/registry.md. Columns beyond the contract's are the registers behind ``status``
(:mod:`pistats.registry.rules`).
"""

from __future__ import annotations

from dataclasses import dataclass

MIGRATIONS_TABLE = "schema_migrations"
# Any constant will do: it names this schema's migration lock among advisory locks.
_LOCK_ID = 0x70697374  # "pist"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


_SUBSCRIBERS_AND_SUBSCRIPTIONS = """
CREATE TABLE subscribers (
    client_id        text NOT NULL,
    property_id      text NOT NULL,
    user_id          text NOT NULL,
    registered_at    timestamptz,           -- event time of the first register (NULL: none yet)
    first_seen_at    timestamptz NOT NULL,  -- event times of the user's registry events
    last_seen_at     timestamptz NOT NULL,
    locale           text,
    timezone         text,
    context_at       timestamptz,           -- event time of the event locale and timezone come from
    unsubscribed_at  timestamptz,           -- event time of the newest unsubscribe without a token
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, property_id, user_id)
);

CREATE TABLE push_subscriptions (
    client_id              text NOT NULL,
    property_id            text NOT NULL,
    token_digest           bytea NOT NULL CHECK (octet_length(token_digest) = 32),  -- sha256(token)
    token                  text NOT NULL,
    user_id                text NOT NULL,
    platform               text NOT NULL CHECK (platform IN ('web', 'android', 'ios', 'unknown')),
    -- The registers behind status (pistats.registry.rules):
    owner_changed_at       timestamptz,     -- event time of the subscribe that made user_id the owner
    token_status           text NOT NULL CHECK (token_status IN ('active', 'unsubscribed', 'invalid')),
    token_status_at        timestamptz NOT NULL,
    owner_unsubscribed_at  timestamptz,     -- the owner's subscribers.unsubscribed_at
    status                 text NOT NULL GENERATED ALWAYS AS (
        CASE WHEN owner_unsubscribed_at >= token_status_at THEN 'unsubscribed' ELSE token_status END
    ) STORED,
    status_changed_at      timestamptz NOT NULL GENERATED ALWAYS AS (
        CASE WHEN owner_unsubscribed_at >= token_status_at THEN owner_unsubscribed_at ELSE token_status_at END
    ) STORED,
    last_error             text,            -- the push sender's error, while the token's own state is invalid
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    -- Unique by (client_id, property_id, token): a token of up to 4 KiB does not fit a btree
    -- entry (at most 2,704 bytes), its SHA-256 does.
    PRIMARY KEY (client_id, property_id, token_digest),
    CHECK (last_error IS NULL OR token_status = 'invalid')
);

-- A user's subscriptions (unsubscribe-all, registry show) and a property's active ones (the push sender).
CREATE INDEX push_subscriptions_by_user ON push_subscriptions (client_id, property_id, user_id);
CREATE INDEX push_subscriptions_active ON push_subscriptions (client_id, property_id) WHERE status = 'active';
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "subscribers and push_subscriptions", _SUBSCRIBERS_AND_SUBSCRIPTIONS),
)

LATEST_VERSION = MIGRATIONS[-1].version


def _create_migrations_table() -> str:
    return (f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())")


def applied_versions(conn) -> list[int]:
    """Versions recorded in ``schema_migrations`` ([] when the table does not exist)."""
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (MIGRATIONS_TABLE,)).fetchone()[0]
    if not exists:
        return []
    return [row[0] for row in conn.execute(f"SELECT version FROM {MIGRATIONS_TABLE} ORDER BY version")]


def schema_version(conn) -> int:
    """The newest applied migration, 0 for an empty database."""
    versions = applied_versions(conn)
    return versions[-1] if versions else 0


def migrate(conn) -> list[int]:
    """Bring the registry schema to :data:`LATEST_VERSION`; returns the versions applied now.

    Idempotent and safe to run concurrently. ``conn`` is a psycopg connection; each migration
    commits with its record, so a failure leaves the schema at the last complete version.
    """
    applied = []
    for migration in MIGRATIONS:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            conn.execute(_create_migrations_table())
            done = conn.execute(f"SELECT 1 FROM {MIGRATIONS_TABLE} WHERE version = %s",
                                (migration.version,)).fetchone()
            if done:
                continue
            conn.execute(migration.sql)
            conn.execute(f"INSERT INTO {MIGRATIONS_TABLE} (version, name) VALUES (%s, %s)",
                         (migration.version, migration.name))
            applied.append(migration.version)
    return applied
