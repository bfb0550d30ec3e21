"""The demo's summary counts, measured in a real store (server and chdb), never derived."""

from datetime import datetime, timezone

from tests.support.samples import make_event, make_reject

from pistats.demo.summary import summarise
from pistats.store.config import SinkConfig
from pistats.store.schema import migrate
from pistats.store.sink import Sink

NOW = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)


def store_through_the_sink(store, batches):
    sink = Sink(store, SinkConfig(max_rows=1000, inserts_in_flight=0), wall_clock=lambda: NOW)
    for index, batch in enumerate(batches):
        events = [item for item in batch if "event_id" in item]
        rejects = [item for item in batch if "event_id" not in item]
        if events:
            sink.add_events(f"events-{index}", events)
        if rejects:
            sink.add_rejects(f"rejects-{index}", rejects)
        sink.flush_all()  # each batch its own inserts, as a replay in a later tuple would be


def test_duplicates_are_counted_records_and_a_lost_record_is_not_one(store):
    """Eight records went in: five events, a client's re-sent copy of ev-1 (another record, same
    event_id), one reject, and one record the pipeline lost; ev-2's record was also stored twice
    (a Storm replay of the same record). The summary must say 1 duplicate (the old code,
    subtracting, said 2: the lost record passed for a duplicate), and still say so once merges
    collapsed the copies."""
    migrate(store)
    events = [make_event(index) for index in range(5)]
    resent = make_event(1, kinesis_seq="4962" + "0" * 20, received_at="2026-11-25T10:00:07Z")
    store_through_the_sink(store, [events + [make_reject(0)], [resent], [events[2]]])
    for (table,) in store.query(f"SELECT name FROM system.tables WHERE database = '{store.database}' "
                                "AND engine LIKE '%MergeTree'"):
        store.execute(f"OPTIMIZE TABLE {store.database}.{table} FINAL")
    assert store.query(f"SELECT count() FROM {store.database}.events")[0][0] == 5  # the copies are gone
    summary = summarise(store, records_in=8)
    assert summary["events_stored"] == 5
    assert summary["rejected"] == {"bad_json": 1}
    assert summary["duplicates_dropped"] == 1
    assert summary["users"] == 5 and summary["sessions"] == 1
    assert summary["by_country"] == {"DE": 5} and summary["by_device_type"] == {"desktop": 5}


def test_summary_of_an_empty_store(store):
    migrate(store)
    summary = summarise(store, records_in=0)
    assert (summary["events_stored"], summary["rejected"], summary["duplicates_dropped"]) == (0, {}, 0)
