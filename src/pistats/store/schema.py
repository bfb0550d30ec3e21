"""Tables of the store and their versioned, idempotent migrations.

``migrate(store)`` applies, in order, every migration whose version is not yet recorded in
``schema_migrations``. Each migration is itself idempotent (``IF NOT EXISTS``, or steps that look
at what is there first), so a crash between a statement and its record, or two sink tasks
starting at once, is harmless: the next run repeats it and ``schema_migrations`` (a
ReplacingMergeTree on ``version``) collapses the double record.

A fresh store gets the latest tables from the first migrations; later migrations bring a store
created by an older version to the same place (and do nothing on a fresh one). A migration that
copies stored data runs only with ``copy_data`` (``pistats store init``, the topology stopped):
a sink migrating at startup may start next to others still writing, and a copy taken meanwhile
would lose their rows, so the sink refuses to start instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from pistats.errors import PistatsError
from pistats.store.base import Store
from pistats.store.features import ServerFeatures
from pistats.store.rows import epoch_ms
from pistats.store.rows.columns import (
    EVENT_COLUMNS,
    FLAG,
    LOW_CARDINALITY_TEXT,
    NULLABLE_FLOAT64,
    NULLABLE_UINT32,
    PUSH_SEND_COLUMNS,
    REJECT_COLUMNS,
    TEXT,
    TEXT_LIST,
    TIMESTAMP,
    UINT32,
    Column,
)

EVENTS = "events"
REJECTS = "events_rejected"
RECORDS = "event_records"
PUSH_SENDS = "push_sends"
MIGRATIONS_TABLE = "schema_migrations"
_RECORDS_VIEW = "event_records_mv"


def column_type(kind: str, features: ServerFeatures) -> str:
    """The SQL type of a column kind on this server."""
    text = "LowCardinality(String)" if features.low_cardinality else "String"
    return {
        TEXT: "String",
        LOW_CARDINALITY_TEXT: text,
        TIMESTAMP: "DateTime64(3, 'UTC')" if features.datetime64 else "DateTime('UTC')",
        FLAG: "UInt8",
        UINT32: "UInt32",
        NULLABLE_FLOAT64: "Nullable(Float64)",
        NULLABLE_UINT32: "Nullable(UInt32)",
        TEXT_LIST: f"Array({text})",
    }[kind]


def columns_sql(columns: tuple[Column, ...], features: ServerFeatures) -> str:
    """The column list of a CREATE TABLE on this server."""
    return ",\n    ".join(f"{column.name} {column_type(column.kind, features)}" for column in columns)


def _table_settings(features: ServerFeatures) -> str:
    # Insert deduplication on a non-replicated MergeTree needs a window of remembered block hashes.
    if features.insert_deduplication_token:
        return "\nSETTINGS non_replicated_deduplication_window = 1000"
    return ""


# PARTITION BY of ``events``: the month of the event, unless the event's clock is more than 30
# days behind or 1 day ahead of the ingest that received it (the contract's clock_skew bounds),
# then the month it was received. Why:
# - The partitions one insert creates must be bounded by what the pipeline controls, not by a
#   client's clock: with toYYYYMM(event_time) alone, one client whose events are dated in 150
#   different months made a batch span 150 partitions, which servers from 19.x refuse whole
#   (max_partitions_per_insert_block = 100) on every retry and replay. ``received_at`` is the
#   ingest's own clock, so a batch spans the months of its records' receipt plus the one before
#   and after: a handful, even for a backlog of a year.
# - De-duplication needs the copies of an event in one partition (ReplacingMergeTree and FINAL
#   collapse within a partition). A replayed record has the same event_time and received_at, so
#   the same partition. A client's re-sent event has the same event_time and a later
#   received_at: the same partition unless its clock is off and the two receipts fall in
#   different months (then FINAL counts it twice; distinct counts by event_id do not).
# - Honest events keep event-time partitions: reports filter by event time, and a month of
#   events can be dropped or moved as one partition.
# The bounds are written out rather than taken from pistats.contract: they are part of the
# stored schema, which must not change when the contract's flag does. Grouping a batch's rows per
# toYYYYMM(event_time) partition instead would keep the old key but still let one client create
# up to 1,632 monthly partitions (1970-2105), each insert writing a part per month; rejected.
# The sink still copes with a refusal for too many partitions (it splits the batch) whatever the
# key, so this only keeps the common case cheap.
EVENTS_PARTITION_KEY = (
    "toYYYYMM(if(event_time < received_at - toIntervalDay(30) OR event_time > received_at + toIntervalDay(1), "
    "received_at, event_time))"
)
_OLD_EVENTS_PARTITION_KEY = "toYYYYMM(event_time)"


def create_events_sql(database: str, features: ServerFeatures, table: str = EVENTS) -> str:
    # ORDER BY: every report query filters on client_id (one piStats client looks at its own data),
    # often on property_id, and groups by day; user_id next makes distinct-user counts and
    # per-user scans read contiguous ranges; event_id last makes the sorting key identify one
    # event, which is what ReplacingMergeTree collapses on. property_id, user_id and event_time are
    # fields of the event itself, so a replayed or retried event has the same key and collapses
    # (within its partition, see EVENTS_PARTITION_KEY) to the row with the latest processed_at.
    return (
        f"CREATE TABLE IF NOT EXISTS {database}.{table} (\n    {columns_sql(EVENT_COLUMNS, features)}\n)\n"
        "ENGINE = ReplacingMergeTree(processed_at)\n"
        f"PARTITION BY {EVENTS_PARTITION_KEY}\n"
        "ORDER BY (client_id, property_id, toDate(event_time), user_id, event_id)"
        f"{_table_settings(features)}"
    )


def create_rejects_sql(database: str, features: ServerFeatures) -> str:
    # A reject is identified by the record (shard, sequence, sub-sequence), where and why it failed,
    # and its payload (rejects raised by the sink itself may lack provenance); report queries group
    # by client and reason, hence their place at the front. PARTITION BY rejected_at: the clock of
    # the component that rejected the record (spout, enrich bolt, sink), never a client's, so a
    # batch of rejects spans a month or two.
    return (
        f"CREATE TABLE IF NOT EXISTS {database}.{REJECTS} (\n    {columns_sql(REJECT_COLUMNS, features)}\n)\n"
        "ENGINE = ReplacingMergeTree(rejected_at)\n"
        "PARTITION BY toYYYYMM(rejected_at)\n"
        "ORDER BY (client_id, reason, stage, kinesis_shard, kinesis_seq, kinesis_subseq, cityHash64(raw_b64))"
        f"{_table_settings(features)}"
    )


_RECORD_COLUMNS = (
    Column("client_id", LOW_CARDINALITY_TEXT),
    Column("event_id", TEXT),
    Column("kinesis_shard", LOW_CARDINALITY_TEXT),
    Column("kinesis_seq", TEXT),
    Column("kinesis_subseq", UINT32),
    Column("received_at", TIMESTAMP),
)


def create_records_sql(database: str, features: ServerFeatures) -> str:
    # One row per Kinesis record whose event was stored: the copies that ``events`` collapses
    # (a client's re-sent event is another record with the same event_id) stay countable here,
    # so "duplicates dropped" is measured (records per stored event, beyond the first) rather
    # than derived from what is missing. A replayed record has the same key and collapses.
    # received_at is the ingest's clock: a batch spans a few partitions, and a replay's copy
    # lands in the same one.
    return (
        f"CREATE TABLE IF NOT EXISTS {database}.{RECORDS} (\n    {columns_sql(_RECORD_COLUMNS, features)}\n)\n"
        "ENGINE = ReplacingMergeTree\n"
        "PARTITION BY toYYYYMM(received_at)\n"
        "ORDER BY (client_id, event_id, kinesis_shard, kinesis_seq, kinesis_subseq)"
    )


def create_records_view_sql(database: str) -> str:
    # Fed by every insert into events, in the same statement: rows the engine refuses reach
    # neither table.
    columns = ", ".join(column.name for column in _RECORD_COLUMNS)
    return (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.{_RECORDS_VIEW} TO {database}.{RECORDS} "
        f"AS SELECT {columns} FROM {database}.{EVENTS}"
    )


def create_push_sends_sql(database: str, features: ServerFeatures) -> str:
    # One row per (client, campaign, token): ReplacingMergeTree(settled_at) keeps the latest
    # settlement, so exporting a campaign's sends again (a resumed campaign, a retried insert)
    # changes no count read with FINAL. No PARTITION BY: the copies of a send must share a
    # partition to collapse, and a send settled again may be settled in another month; one
    # partition of narrow rows stays cheap (a million sends is tens of megabytes).
    return (
        f"CREATE TABLE IF NOT EXISTS {database}.{PUSH_SENDS} (\n    {columns_sql(PUSH_SEND_COLUMNS, features)}\n)\n"
        "ENGINE = ReplacingMergeTree(settled_at)\n"
        "ORDER BY (client_id, campaign_id, token_hash)"
    )


def _needs_init(store: Store, what: str) -> PistatsError:
    return PistatsError(f"{store.url.redacted}: schema migration needs to copy {what}: stop the topology and run "
                        "`pistats store init` on this store first")


def _repartition_events(store: Store, copy_data: bool) -> None:
    """Migration 3: ``events`` of a store created with PARTITION BY toYYYYMM(event_time) is
    copied into a table with EVENTS_PARTITION_KEY, which then takes its name.

    Idempotent at every step: a copy left by a crash before the swap is dropped and made again
    (``events`` is still the original); a crash between the two renames leaves the complete
    copy, which takes the name; a crash after the swap leaves only the original to drop. The
    copy takes as long as reading and writing every event once.
    """
    database = store.database
    copy, original = f"{EVENTS}_repartitioned", f"{EVENTS}_before_repartition"
    tables = {row[0]: row[1] for row in store.query(
        f"SELECT name, partition_key FROM system.tables WHERE database = {quote(database)}")}
    if EVENTS not in tables and copy in tables:
        store.execute(f"RENAME TABLE {database}.{copy} TO {database}.{EVENTS}")
    elif tables.get(EVENTS) == _OLD_EVENTS_PARTITION_KEY:
        if not copy_data:
            raise _needs_init(store, "events into a table with the new partition key")
        columns = ", ".join(column.name for column in EVENT_COLUMNS)
        store.execute(f"DROP TABLE IF EXISTS {database}.{copy}")
        store.execute(create_events_sql(database, store.features, table=copy))
        store.execute(f"INSERT INTO {database}.{copy} ({columns}) SELECT {columns} FROM {database}.{EVENTS}"
                      f"{_copy_settings(store)}")
        store.execute(f"RENAME TABLE {database}.{EVENTS} TO {database}.{original}, {database}.{copy} TO {database}.{EVENTS}")
    store.execute(f"DROP TABLE IF EXISTS {database}.{original}")
    store.execute(f"DROP TABLE IF EXISTS {database}.{copy}")


def _record_events(store: Store, copy_data: bool) -> None:
    """Migration 4: ``event_records`` and the view that fills it, then the records of the events
    already stored (those whose copies merges already collapsed count once)."""
    database = store.database
    if not copy_data and store.query(f"SELECT count() FROM {database}.{EVENTS}")[0][0]:
        raise _needs_init(store, "the records of the stored events")
    store.execute(create_records_sql(database, store.features))
    store.execute(create_records_view_sql(database))
    columns = ", ".join(column.name for column in _RECORD_COLUMNS)
    store.execute(f"INSERT INTO {database}.{RECORDS} ({columns}) SELECT {columns} FROM {database}.{EVENTS}"
                  f"{_copy_settings(store)}")


def _copy_settings(store: Store) -> str:
    """SETTINGS for an INSERT ... SELECT over a whole table: its blocks may span any number of
    partitions (the setting exists from 19.x; asked of the server rather than assumed), and
    rows not yet collapsed by merges stay as they are (the records of re-sent events count)."""
    settings = []
    known = store.query("SELECT count() FROM system.settings WHERE name = 'max_partitions_per_insert_block'")
    if int(known[0][0]):
        settings.append("max_partitions_per_insert_block = 0")
    if store.features.optimize_on_insert:
        settings.append("optimize_on_insert = 0")
    return f" SETTINGS {', '.join(settings)}" if settings else ""


@dataclass(frozen=True)
class Migration:
    """A schema version: ``apply(store, copy_data)`` brings the store to it, idempotently (raising
    PistatsError, before changing anything, when it would have to copy data without ``copy_data``)."""

    version: int
    name: str
    apply: Callable[[Store, bool], None]


def _statements(make: Callable[[str, ServerFeatures], list[str]]) -> Callable[[Store, bool], None]:
    def apply(store: Store, copy_data: bool) -> None:
        for statement in make(store.database, store.features):
            store.execute(statement)

    return apply


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "create events", _statements(lambda db, features: [create_events_sql(db, features)])),
    Migration(2, "create events_rejected", _statements(lambda db, features: [create_rejects_sql(db, features)])),
    Migration(3, "events partitioned by a month the pipeline bounds", _repartition_events),
    Migration(4, "create event_records", _record_events),
    Migration(5, "create push_sends", _statements(lambda db, features: [create_push_sends_sql(db, features)])),
)


_MIGRATION_COLUMNS = (Column("version", UINT32), Column("name", TEXT), Column("applied_at", TIMESTAMP))
# Every table rows are inserted into, with its columns in row order.
TABLE_COLUMNS: dict[str, tuple[Column, ...]] = {
    EVENTS: EVENT_COLUMNS,
    REJECTS: REJECT_COLUMNS,
    RECORDS: _RECORD_COLUMNS,
    PUSH_SENDS: PUSH_SEND_COLUMNS,
    MIGRATIONS_TABLE: _MIGRATION_COLUMNS,
}


def _create_migrations_table(database: str, features: ServerFeatures) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {database}.{MIGRATIONS_TABLE} "
        f"(version UInt32, name String, applied_at {column_type(TIMESTAMP, features)}) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )


def applied_versions(store: Store) -> set[int]:
    rows = store.query(f"SELECT DISTINCT version FROM {store.database}.{MIGRATIONS_TABLE}")
    return {int(row[0]) for row in rows}


def migrate(store: Store, now: Callable[[], datetime] | None = None, copy_data: bool = True) -> list[int]:
    """Create the database and bring the schema to the latest version; returns the versions applied now.

    Without ``copy_data`` (a sink starting, maybe next to others writing) a migration that would
    copy stored data raises PistatsError instead."""
    now = now or (lambda: datetime.now(timezone.utc))
    database = store.database
    store.ensure_database()
    store.execute(_create_migrations_table(database, store.features))
    done = applied_versions(store)
    applied = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        migration.apply(store, copy_data)
        stamp = epoch_ms(now(), "applied_at")
        store.prepare_insert(MIGRATIONS_TABLE, [(migration.version, migration.name, stamp)])(None)
        applied.append(migration.version)
    return applied


def quote(text: str) -> str:
    """A ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
