"""Inserts the engine refuses for their data, against real chdb and the real ClickHouse server.

Nothing is acked unless its rows are stored: a row the engine refuses becomes a
``store_refused`` reject, the rest of its batch is stored, and a client's clock cannot make a
batch span more partitions than an insert may create (issue 13).
"""

import base64
import json
import os
from datetime import datetime, timezone

import pytest
from store_doubles import events_across_months, old_events_sql, scalar

from tests.support.clock import Clock
from tests.support.samples import make_event

from pistats.store.backends import StoreError, open_store
from pistats.store.config import SinkConfig
from pistats.store.rows import event_row
from pistats.store.schema import migrate
from pistats.store.sink import Settled, Sink

NOW = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)


def make_sink(store, **config):
    options = {"max_rows": 1000, "max_age_s": 3600.0, "retry_budget_s": 1.0, "backoff_initial_s": 0.1,
               "backoff_max_s": 0.4, "inserts_in_flight": 0}
    options.update(config)
    clock = Clock()
    return Sink(store, SinkConfig(**options), now=clock, sleep=clock.sleep, wall_clock=lambda: NOW)


def test_a_client_dating_events_in_100_months_loses_nothing(store):
    """The reproduction of issue 13: 20 events of one client and 100 of another dated in 100
    months, in one batch. chdb (ClickHouse 26.9) refuses a block spanning more than 100
    partitions; before the fix the sink acked both tuples and stored nothing."""
    migrate(store)
    sink = make_sink(store)
    settled = Settled()
    settled.extend(sink.add_events("client-a", [make_event(index) for index in range(20)]))
    settled.extend(sink.add_events("client-b", events_across_months(100)))
    settled.extend(sink.flush_all())
    assert sorted(settled.acked) == ["client-a", "client-b"] and settled.failed == []
    assert scalar(store, "SELECT count() FROM {db}.events FINAL") == 120
    assert scalar(store, "SELECT count() FROM {db}.events_rejected") == 0
    # An event whose clock is off is partitioned by the month the ingest received it: every
    # event here was received in November 2026.
    partitions = store.query(f"SELECT DISTINCT partition FROM system.parts "
                             f"WHERE database = '{store.database}' AND table = 'events' AND active")
    assert [str(row[0]) for row in partitions] == ["202611"]


def test_a_row_the_engine_refuses_becomes_a_store_refused_reject_and_the_rest_is_stored(store):
    """A CHECK-style refusal (throwIf in a column, which both servers evaluate at write time)
    refuses the whole insert; the sink finds the two refused rows, stores them as rejects with
    the engine's message and the row, stores the other 28, then acks the three tuples."""
    migrate(store)
    store.execute(f"ALTER TABLE {store.database}.events ADD COLUMN refuse UInt8 MATERIALIZED throwIf(event_type = 'poison')")
    events = [make_event(index, event_type="poison" if index in (7, 21) else "page_view") for index in range(30)]
    sink = make_sink(store)
    settled = Settled()
    for start in range(0, 30, 10):
        settled.extend(sink.add_events(f"tuple-{start // 10}", events[start:start + 10]))
    settled.extend(sink.flush_all())
    assert sorted(settled.acked) == ["tuple-0", "tuple-1", "tuple-2"] and settled.failed == []
    stored = store.query(f"SELECT event_id FROM {store.database}.events FINAL ORDER BY event_id")
    assert sorted(row[0] for row in stored) == sorted(f"ev-{index}" for index in range(30) if index not in (7, 21))
    rejects = store.query(
        f"SELECT client_id, reason, stage, detail, raw_b64, kinesis_seq FROM {store.database}.events_rejected FINAL "
        "ORDER BY kinesis_seq")
    assert [(row[0], row[1], row[2], row[5]) for row in rejects] == [
        ("client-a", "store_refused", "store", events[7]["kinesis_seq"]),
        ("client-a", "store_refused", "store", events[21]["kinesis_seq"]),
    ]
    assert all("Code: 395" in row[3] and "throwIf" in row[3] for row in rejects)
    raw = json.loads(base64.b64decode(rejects[0][4]))
    assert raw["event_id"] == "ev-7" and raw["event_type"] == "poison" and raw["is_bot"] is False
    assert raw["event_time"] == "2026-11-25T10:00:00.250Z" and raw["received_at"] == "2026-11-25T10:00:01.000Z"
    assert sink.stats.rows_refused == 2 and sink.stats.rows_inserted == 28


def test_every_backend_raises_when_the_engine_refuses_an_insert(chdb_store_url):
    """chdb's streaming insert swallowed these; the store must raise them as refusals (the
    server always did: the sink tests above show what it makes of them)."""
    store = open_store(chdb_store_url, env={})
    try:
        migrate(store)
        store.execute(f"ALTER TABLE {store.database}.events ADD CONSTRAINT no_poison CHECK event_type != 'poison'")
        rows = [event_row(make_event(index, event_type="poison" if index == 1 else "page_view"), 1000)[0]
                for index in range(3)]
        with pytest.raises(StoreError) as refused:
            store.prepare_insert("events", rows)("token-check")
        assert is_refusal(refused.value, 469) and "no_poison" in refused.value.detail
        assert scalar(store, "SELECT count() FROM {db}.events") == 0

        # A table partitioned by the event's own month (the schema before migration 3).
        store.execute(f"DROP TABLE IF EXISTS {store.database}.event_records_mv")
        store.execute(f"DROP TABLE {store.database}.events")
        store.execute(old_events_sql(store))
        rows = [event_row(event, 1000)[0] for event in events_across_months(101)]
        with pytest.raises(StoreError) as refused:
            store.prepare_insert("events", rows)("token-partitions")
        assert is_refusal(refused.value, 252) and "partitions" in refused.value.detail
        assert scalar(store, "SELECT count() FROM {db}.events") == 0
    finally:
        store.close()


def is_refusal(error, code):
    from pistats.store.backends import StoreRefused

    return isinstance(error, StoreRefused) and error.code == code


def test_a_batch_refused_for_too_many_partitions_is_split_and_stored_whole(chdb_store_url):
    """Whatever the partition key, a refusal that comes from the rows together (not from one of
    them) costs a few more inserts and no row: here a table keyed by the event's own month."""
    store = open_store(chdb_store_url, env={})
    try:
        migrate(store)
        store.execute(f"DROP TABLE IF EXISTS {store.database}.event_records_mv")
        store.execute(f"DROP TABLE {store.database}.events")
        store.execute(old_events_sql(store))
        sink = make_sink(store)
        settled = sink.add_events("client-b", events_across_months(150))
        settled.extend(sink.flush_all())
        assert settled.acked == ["client-b"] and settled.failed == []
        assert scalar(store, "SELECT count() FROM {db}.events FINAL") == 150
        assert scalar(store, "SELECT count() FROM {db}.events_rejected") == 0
        assert sink.stats.rows_refused == 0 and sink.stats.bisect_inserts == 2
    finally:
        store.close()


def test_chdb_batch_files_are_removed_after_each_insert_and_leftovers_at_open(chdb_store_url):
    store = open_store(chdb_store_url, env={})
    folder = os.path.join(store.url.path, "pistats_inserts")
    try:
        migrate(store)
        store.execute(f"ALTER TABLE {store.database}.events ADD CONSTRAINT no_poison CHECK event_type != 'poison'")
        store.prepare_insert("events", [event_row(make_event(0), 1000)[0]])("ok")
        with pytest.raises(StoreError):
            store.prepare_insert("events", [event_row(make_event(1, event_type="poison"), 1000)[0]])("refused")
        assert os.listdir(folder) == []
        with open(os.path.join(folder, "1-left-by-a-dead-process.arrow"), "wb") as file:
            file.write(b"partial")
    finally:
        store.close()
    open_store(chdb_store_url, env={}).close()
    assert os.listdir(folder) == []
