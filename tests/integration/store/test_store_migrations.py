"""Schema migrations of a store an older version created, against the real server and chdb."""

import pytest
from store_doubles import events_across_months, old_schema, scalar

from tests.support.samples import make_event

from pistats.errors import PistatsError
from pistats.store.rows import event_row
from pistats.store.schema import create_events_sql, migrate


def test_a_store_of_version_2_is_repartitioned_and_keeps_its_events(store):
    old_schema(store)
    events = events_across_months(30) + [make_event(index) for index in range(5)]
    events.append(make_event(1, kinesis_seq="4962" + "0" * 20))  # a client's re-sent event: another record
    store.prepare_insert("events", [event_row(event, 1000)[0] for event in events])(None)
    assert scalar(store, "SELECT uniqExact(partition) FROM system.parts WHERE database = '{db}' AND table = 'events' "
                         "AND active") == 31
    # A sink starting (maybe next to others still writing) does not copy the events itself.
    with pytest.raises(PistatsError, match="pistats store init"):
        migrate(store, copy_data=False)
    assert scalar(store, "SELECT partition_key FROM system.tables WHERE database = '{db}' AND name = 'events'") == \
        "toYYYYMM(event_time)"
    assert migrate(store) == [3, 4, 5]
    key = scalar(store, "SELECT partition_key FROM system.tables WHERE database = '{db}' AND name = 'events'")
    assert key != "toYYYYMM(event_time)" and "received_at" in key
    assert scalar(store, "SELECT count() FROM {db}.events FINAL") == 35
    assert scalar(store, "SELECT uniqExact(partition) FROM system.parts WHERE database = '{db}' AND table = 'events' "
                         "AND active") == 1
    # The records behind the stored events, the re-sent one included.
    assert scalar(store, "SELECT count() FROM {db}.event_records FINAL") == 36
    tables = [row[0] for row in store.query(f"SELECT name FROM system.tables WHERE database = '{store.database}' ORDER BY name")]
    assert tables == ["event_records", "event_records_mv", "events", "events_rejected", "push_sends",
                      "schema_migrations"]
    assert migrate(store) == []


def test_repartitioning_resumes_after_a_crash_at_any_step(store):
    from pistats.store.schema import MIGRATIONS

    (repartition,) = [migration for migration in MIGRATIONS if migration.version == 3]
    old_schema(store)
    store.prepare_insert("events", [event_row(make_event(index), 1000)[0] for index in range(4)])(None)
    db = store.database
    # A crash during the copy left part of it behind: the copy is made again from the original.
    store.execute(create_events_sql(db, store.features, table="events_repartitioned"))
    store.prepare_insert("events", [event_row(make_event(9), 1000)[0]])(None)
    store.execute(f"INSERT INTO {db}.events_repartitioned SELECT * FROM {db}.events WHERE event_id = 'ev-0'")
    repartition.apply(store, True)
    assert scalar(store, "SELECT count() FROM {db}.events") == 5
    # A crash between the two renames: the complete copy takes the name.
    store.execute(f"RENAME TABLE {db}.events TO {db}.events_repartitioned")
    repartition.apply(store, True)
    assert scalar(store, "SELECT count() FROM {db}.events") == 5
    names = [row[0] for row in store.query(f"SELECT name FROM system.tables WHERE database = '{db}' ORDER BY name")]
    assert names == ["events", "events_rejected", "schema_migrations"]
