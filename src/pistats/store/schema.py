"""Tables of the store and their versioned, idempotent migrations.

``migrate(store)`` applies, in order, every migration whose version is not yet recorded in
``schema_migrations``. Each migration's statements are themselves idempotent (``IF NOT EXISTS``),
so a crash between a statement and its record, or two sink tasks starting at once, is harmless:
the next run repeats them and ``schema_migrations`` (a ReplacingMergeTree on ``version``)
collapses the double record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from pistats.store.features import ServerFeatures
from pistats.store.rows import (
    BOOL,
    DT,
    EVENT_COLUMNS,
    LC,
    NF64,
    NU32,
    REJECT_COLUMNS,
    STR,
    STRARR,
    U32,
    Column,
    epoch_ms,
)

if TYPE_CHECKING:
    from pistats.store.backends import Store

EVENTS = "events"
REJECTS = "events_rejected"
MIGRATIONS_TABLE = "schema_migrations"


def column_type(kind: str, features: ServerFeatures) -> str:
    """The SQL type of a column kind on this server."""
    text = "LowCardinality(String)" if features.low_cardinality else "String"
    return {
        STR: "String",
        LC: text,
        DT: "DateTime64(3, 'UTC')" if features.datetime64 else "DateTime('UTC')",
        BOOL: "UInt8",
        U32: "UInt32",
        NF64: "Nullable(Float64)",
        NU32: "Nullable(UInt32)",
        STRARR: f"Array({text})",
    }[kind]


def columns_sql(columns: tuple[Column, ...], features: ServerFeatures) -> str:
    """The column list of a CREATE TABLE on this server."""
    return ",\n    ".join(f"{column.name} {column_type(column.kind, features)}" for column in columns)


def _table_settings(features: ServerFeatures) -> str:
    # Insert deduplication on a non-replicated MergeTree needs a window of remembered block hashes.
    if features.insert_deduplication_token:
        return "\nSETTINGS non_replicated_deduplication_window = 1000"
    return ""


def create_events_sql(database: str, features: ServerFeatures) -> str:
    # ORDER BY: every report query filters on client_id (one piStats client looks at its own data),
    # often on property_id, and groups by day; user_id next makes distinct-user counts and
    # per-user scans read contiguous ranges; event_id last makes the sorting key identify one
    # event, which is what ReplacingMergeTree collapses on. property_id, user_id and event_time are
    # fields of the event itself, so a replayed or retried event has the same key and collapses
    # (within its month partition) to the row with the latest processed_at.
    return (
        f"CREATE TABLE IF NOT EXISTS {database}.{EVENTS} (\n    {columns_sql(EVENT_COLUMNS, features)}\n)\n"
        "ENGINE = ReplacingMergeTree(processed_at)\n"
        "PARTITION BY toYYYYMM(event_time)\n"
        "ORDER BY (client_id, property_id, toDate(event_time), user_id, event_id)"
        f"{_table_settings(features)}"
    )


def create_rejects_sql(database: str, features: ServerFeatures) -> str:
    # A reject is identified by the record (shard, sequence, sub-sequence), where and why it failed,
    # and its payload (rejects raised by the sink itself may lack provenance); report queries group
    # by client and reason, hence their place at the front.
    return (
        f"CREATE TABLE IF NOT EXISTS {database}.{REJECTS} (\n    {columns_sql(REJECT_COLUMNS, features)}\n)\n"
        "ENGINE = ReplacingMergeTree(rejected_at)\n"
        "PARTITION BY toYYYYMM(rejected_at)\n"
        "ORDER BY (client_id, reason, stage, kinesis_shard, kinesis_seq, kinesis_subseq, cityHash64(raw_b64))"
        f"{_table_settings(features)}"
    )


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: Callable[[str, ServerFeatures], list[str]]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "create events", lambda db, features: [create_events_sql(db, features)]),
    Migration(2, "create events_rejected", lambda db, features: [create_rejects_sql(db, features)]),
)


_MIGRATION_COLUMNS = (Column("version", U32), Column("name", STR), Column("applied_at", DT))
# Every table rows are inserted into, with its columns in row order.
TABLE_COLUMNS: dict[str, tuple[Column, ...]] = {
    EVENTS: EVENT_COLUMNS,
    REJECTS: REJECT_COLUMNS,
    MIGRATIONS_TABLE: _MIGRATION_COLUMNS,
}


def _create_migrations_table(database: str, features: ServerFeatures) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {database}.{MIGRATIONS_TABLE} "
        f"(version UInt32, name String, applied_at {column_type(DT, features)}) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )


def applied_versions(store: "Store") -> set[int]:
    rows = store.query(f"SELECT DISTINCT version FROM {store.database}.{MIGRATIONS_TABLE}")
    return {int(row[0]) for row in rows}


def migrate(store: "Store", now: Callable[[], datetime] | None = None) -> list[int]:
    """Create the database and bring the schema to the latest version; returns the versions applied now."""
    now = now or (lambda: datetime.now(timezone.utc))
    database = store.database
    store.ensure_database()
    store.execute(_create_migrations_table(database, store.features))
    done = applied_versions(store)
    applied = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        for statement in migration.statements(database, store.features):
            store.execute(statement)
        stamp = epoch_ms(now(), "applied_at")
        store.prepare_insert(MIGRATIONS_TABLE, [(migration.version, migration.name, stamp)])(None)
        applied.append(migration.version)
    return applied


def quote(text: str) -> str:
    """A ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
