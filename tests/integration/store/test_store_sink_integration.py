"""The sink against the real ClickHouse server and chdb: batching, failures, replays, bad rows."""

import socket
from datetime import datetime, timezone

import pytest
from store_doubles import FlakyStore

from tests.support.clock import Clock
from tests.support.samples import make_event, make_reject

from pistats.store.backends import ClickHouseStore, StoreError
from pistats.store.config import SinkConfig, StoreURL
from pistats.store.schema import applied_versions, migrate
from pistats.store.sink import Settled, Sink

NOW = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)


def make_sink(store, clock, **config):
    options = {"max_rows": 10, "max_age_s": 1.0, "retry_budget_s": 1.0, "backoff_initial_s": 0.1, "backoff_max_s": 0.4,
               # Inserts in the caller's thread: each call settles what it flushed (background
               # inserts have their own tests).
               "inserts_in_flight": 0}
    options.update(config)
    return Sink(store, SinkConfig(**options), now=clock, sleep=clock.sleep, wall_clock=lambda: NOW)


def add_events(sink, indexes):
    settled = Settled()
    for index in indexes:
        settled.extend(sink.add_event(f"tuple-{index}", make_event(index)))
    return settled


def count(store, table="events", final=True):
    return store.query(f"SELECT count() FROM {store.database}.{table}{' FINAL' if final else ''}")[0][0]


def per_event(store):
    return store.query(
        f"SELECT client_id, event_id, count() FROM {store.database}.events FINAL GROUP BY client_id, event_id"
    )


def test_schema_init_twice_is_a_no_op(store):
    assert migrate(store) == [1, 2, 3, 4, 5]
    tables = store.query(f"SELECT name FROM system.tables WHERE database = '{store.database}' ORDER BY name")
    assert migrate(store) == []
    assert store.query(f"SELECT name FROM system.tables WHERE database = '{store.database}' ORDER BY name") == tables
    assert [row[0] for row in tables] == ["event_records", "event_records_mv", "events", "events_rejected",
                                          "push_sends", "schema_migrations"]
    assert applied_versions(store) == {1, 2, 3, 4, 5}
    assert count(store, "schema_migrations", final=False) == 5


def test_flush_on_size(store):
    migrate(store)
    clock = Clock()
    sink = make_sink(store, clock, max_age_s=3600.0)
    settled = add_events(sink, range(25))
    assert settled.acked == [f"tuple-{index}" for index in range(20)]
    assert count(store) == 20
    assert sink.flush_all().acked == [f"tuple-{index}" for index in range(20, 25)]
    assert count(store) == 25


def test_flush_on_age(store):
    migrate(store)
    clock = Clock()
    sink = make_sink(store, clock)
    assert add_events(sink, range(3)).acked == []
    sink.add_reject("reject-0", make_reject(0))
    clock.now = 0.5
    assert sink.tick().acked == []
    assert count(store) == 0
    clock.now = 1.0
    assert sorted(sink.tick().acked) == ["reject-0", "tuple-0", "tuple-1", "tuple-2"]
    assert count(store) == 3 and count(store, "events_rejected") == 1


def test_failed_inserts_fail_tuples_and_replay_stores_each_event_once(store):
    migrate(store)
    clock = Clock()
    flaky = FlakyStore(store, fail_before=1000)
    sink = make_sink(flaky, clock)
    first = add_events(sink, range(15))
    assert first.acked == [] and first.failed == [f"tuple-{index}" for index in range(10)]
    assert count(store) == 0
    flaky.fail_before = 2  # recovers within the retry budget on the next batch
    assert sink.flush_all().acked == [f"tuple-{index}" for index in range(10, 15)]
    # the spout replays the failed tuples; some of them overlap rows that are already stored
    replay = add_events(sink, range(15))
    replay.extend(sink.flush_all())
    assert sorted(replay.acked) == sorted(f"tuple-{index}" for index in range(15))
    assert count(store) == 15
    assert {row[2] for row in per_event(store)} == {1}


def test_retry_after_a_landed_insert_leaves_no_duplicates(store):
    migrate(store)
    clock = Clock()
    sink = make_sink(store=FlakyStore(store, fail_after=1), clock=clock)
    assert add_events(sink, range(10)).acked == [f"tuple-{index}" for index in range(10)]
    assert count(store) == 10
    assert {row[2] for row in per_event(store)} == {1}
    if store.features.insert_deduplication_token:
        # the same token made the server drop the second insert outright
        assert count(store, final=False) == 10
    else:
        # 18.16 stored it twice; ReplacingMergeTree + FINAL hides the copy
        assert count(store, final=False) == 20


def test_closed_port_fails_then_replay_into_the_server(server_store_url):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    real = ClickHouseStore(StoreURL.parse(server_store_url, env={}))
    migrate(real)
    dead_url = StoreURL.parse(f"clickhouse://default@127.0.0.1:{closed_port}/{real.database}?connect_timeout=0.5", env={})
    dead = ClickHouseStore(dead_url, features=real.features)
    with pytest.raises(StoreError):
        dead.query("SELECT 1")
    clock = Clock()
    settled = add_events(make_sink(dead, clock), range(10))
    assert settled.failed == [f"tuple-{index}" for index in range(10)]
    replayed = add_events(make_sink(real, clock), range(10))
    assert replayed.acked == settled.failed
    assert count(real) == 10 and {row[2] for row in per_event(real)} == {1}
    real.close()


def test_bad_rows_are_stored_or_rejected_deliberately(store):
    migrate(store)
    clock = Clock()
    sink = make_sink(store, clock, max_string_chars=2000)
    cases = [
        make_event(0, user_agent="u" * 100_000, page_url="p" * 3000),
        make_event(1, geo_lat=float("nan"), geo_lon=float("inf")),
        make_event(2, user_agent="nul\x00inside", referrer="\x00", context_json='{"a":"\\u0000"}'),
        make_event(3, referrer="surrogate\udc80"),
        make_event(4, event_time="not-a-time"),
        make_event(5, event_id=None),
        "not even a dict",
        make_reject(6, detail="d" * 100_000, raw_b64=None, kinesis_subseq=-3, rejected_at=None),
    ]
    settled = Settled()
    for index, case in enumerate(cases):
        if index == len(cases) - 1:
            settled.extend(sink.add_reject(f"tuple-{index}", case))
        else:
            settled.extend(sink.add_event(f"tuple-{index}", case))
    settled.extend(sink.flush_all())
    assert sorted(settled.acked) == [f"tuple-{index}" for index in range(len(cases))] and settled.failed == []
    rows = store.query(
        f"SELECT event_id, length(user_agent), length(page_url), geo_lat, geo_lon, user_agent, referrer, enrich_errors "
        f"FROM {store.database}.events FINAL ORDER BY event_id"
    )
    by_id = {row[0]: row[1:] for row in rows}
    assert sorted(by_id) == ["ev-0", "ev-1", "ev-2", "ev-3"]
    assert by_id["ev-0"][:2] == (2000, 2000)
    assert set(by_id["ev-0"][6]) == {"store:truncated:user_agent", "store:truncated:page_url"}
    assert by_id["ev-1"][2:4] == (None, None)
    assert set(by_id["ev-1"][6]) == {"store:bad_coordinate:geo_lat", "store:bad_coordinate:geo_lon"}
    assert by_id["ev-2"][4:6] == ("nul\x00inside", "\x00")
    assert by_id["ev-3"][5] == "surrogate?" and by_id["ev-3"][6] == ["store:bad_unicode:referrer"]
    rejects = store.query(
        f"SELECT stage, field, length(detail) FROM {store.database}.events_rejected FINAL ORDER BY stage, field"
    )
    assert [(stage, field) for stage, field, _ in rejects] == [
        ("parse", ""), ("sink", "event"), ("sink", "event_id"), ("sink", "event_time")]
    assert rejects[0][2] < 2100  # truncated detail plus the repair notes


def test_times_round_trip_at_the_server_precision(store):
    migrate(store)
    sink = make_sink(store, Clock())
    sink.add_event("t", make_event(0, event_time="2026-11-25T12:00:00.250+02:00", received_at=None))
    assert sink.flush_all().acked == ["t"]
    ((event_time, received_at, as_text),) = store.query(
        f"SELECT toUnixTimestamp(event_time), toUnixTimestamp(received_at), toString(event_time) FROM {store.database}.events"
    )
    assert event_time == received_at == int(datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc).timestamp())
    expected_text = "2026-11-25 10:00:00.250" if store.features.datetime64 else "2026-11-25 10:00:00"
    assert as_text == expected_text


def test_background_inserts_store_fail_and_replay_each_event_once(store):
    """What the bolt runs: inserts on the writer thread, settled by later calls and by ticks."""
    migrate(store)
    clock = Clock()
    flaky = FlakyStore(store, fail_before=1000)
    sink = make_sink(flaky, clock, inserts_in_flight=1, max_age_s=3600.0)
    settled = add_events(sink, range(25))  # two full batches handed to the writer, both failing
    settled.extend(sink.tick())
    assert settled.failed == [f"tuple-{index}" for index in range(20)] and settled.acked == []
    assert count(store) == 0
    flaky.fail_before = 1  # the store recovers within the retry budget
    replay = add_events(sink, range(20))  # the spout replays the failed tuples
    replay.extend(sink.flush_all())
    assert sorted(replay.acked) == sorted(f"tuple-{index}" for index in range(25))
    assert replay.failed == []
    assert count(store) == 25 and {row[2] for row in per_event(store)} == {1}
