import threading
from datetime import datetime, timezone

import pytest

from store_fakes import MemoryStore

from tests.support.clock import Clock
from tests.support.samples import make_event, make_reject

from pistats.store.config import SinkConfig
from pistats.store.sink import Sink

NOW = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)


def sink_for(store, clock, **config):
    options = {"max_rows": 3, "max_age_s": 1.0, "retry_budget_s": 5.0, "backoff_initial_s": 0.5, "backoff_max_s": 2.0,
               # Inserts in the caller's thread: each call settles what it flushed (background
               # inserts have their own tests).
               "inserts_in_flight": 0}
    options.update(config)
    return Sink(store, SinkConfig(**options), now=clock, sleep=clock.sleep, wall_clock=lambda: NOW)


def test_size_flush_acks_only_after_the_insert():
    store, clock = MemoryStore(), Clock(1000.0)
    sink = sink_for(store, clock)
    assert sink.add_event("t0", make_event(0)).acked == []
    assert sink.add_event("t1", make_event(1)).acked == []
    assert store.inserts == []
    settled = sink.add_event("t2", make_event(2))
    assert settled.acked == ["t0", "t1", "t2"] and settled.failed == []
    assert len(store.rows("events")) == 3


def test_age_flush_on_tick():
    store, clock = MemoryStore(), Clock(1000.0)
    sink = sink_for(store, clock)
    sink.add_event("t0", make_event(0))
    clock.now += 0.5
    sink.add_reject("r0", make_reject(0))
    clock.now += 0.4
    assert sink.tick().acked == []
    clock.now += 0.1
    assert sink.tick().acked == ["t0"]
    assert sink.pending("events_rejected") == 1
    clock.now += 0.5
    assert sink.tick().acked == ["r0"]


def test_bytes_bound_flushes_before_overflow():
    store, clock = MemoryStore(), Clock(1000.0)
    sink = sink_for(store, clock, max_rows=100, max_bytes=4096, max_string_chars=1500)
    acked = []
    for index in range(6):
        acked += sink.add_event(index, make_event(index, context_json="c" * 1500)).acked
    assert acked and all(len(rows) * 1500 <= 4096 for _, rows, _ in store.inserts)


def test_retries_with_backoff_then_acks():
    store, clock = MemoryStore(fail_next=3), Clock(1000.0)
    sink = sink_for(store, clock)
    settled = Settled_of(sink, 3)
    assert settled.acked == [0, 1, 2] and settled.failed == []
    assert clock.sleeps == [0.5, 1.0, 2.0]
    assert sink.stats.insert_errors == 3


def Settled_of(sink, count):
    from pistats.store.sink import Settled

    settled = Settled()
    for index in range(count):
        settled.extend(sink.add_event(index, make_event(index)))
    return settled


def test_fails_the_batch_when_the_retry_budget_is_spent():
    store, clock = MemoryStore(fail_next=100), Clock(1000.0)
    sink = sink_for(store, clock)
    settled = Settled_of(sink, 3)
    assert settled.acked == [] and settled.failed == [0, 1, 2]
    assert sum(clock.sleeps) <= 5.0 + 1e-9
    assert sink.stats.batches_failed == 1 and sink.pending("events") == 0


def test_retry_after_a_landed_insert_reuses_the_token():
    store, clock = MemoryStore(fail_next=1, fail_after_storing=True), Clock(1000.0)
    sink = sink_for(store, clock)
    settled = Settled_of(sink, 3)
    assert settled.acked == [0, 1, 2]
    (_, first_rows, first_token), (_, second_rows, second_token) = store.inserts
    assert first_rows == second_rows and first_token == second_token


def test_unstorable_event_becomes_an_acked_reject():
    store, clock = MemoryStore(), Clock(1000.0)
    sink = sink_for(store, clock, max_rows=1)
    settled = sink.add_event("bad", make_event(0, event_time="not a time"))
    assert settled.acked == ["bad"]
    (reject,) = store.rows("events_rejected")
    assert reject[1:4] == ("schema", "sink", "event_time")
    assert store.rows("events") == [] and sink.stats.events_rejected_by_sink == 1


def test_flush_all_settles_everything_pending():
    store, clock = MemoryStore(), Clock(1000.0)
    sink = sink_for(store, clock)
    sink.add_event("e", make_event(0))
    sink.add_reject("r", make_reject(0))
    assert sorted(sink.flush_all().acked) == ["e", "r"]
    assert sink.flush_all().acked == []


def test_heartbeat_budget_check():
    import pytest

    from pistats.errors import ConfigError
    from pistats.store.config import StoreURL
    from pistats.store.sink import check_heartbeat_budget

    server = StoreURL.parse("clickhouse://h/db?connect_timeout=3&send_receive_timeout=10")
    check_heartbeat_budget(SinkConfig(retry_budget_s=10), server, {})
    with pytest.raises(ConfigError):
        check_heartbeat_budget(SinkConfig(retry_budget_s=20), server, {})
    with pytest.raises(ConfigError):
        check_heartbeat_budget(SinkConfig(retry_budget_s=10), server, {"topology.subprocess.timeout.secs": 15})
    check_heartbeat_budget(SinkConfig(retry_budget_s=25), StoreURL.parse("chdb:///x"), {})


def test_a_batch_tuple_is_acked_only_when_its_last_row_is_stored():
    store, clock = MemoryStore(), Clock(1000.0)
    sink = sink_for(store, clock, max_rows=3)
    settled = sink.add_events("b1", [make_event(n) for n in range(4)])  # rows 0-2 stored, row 3 pending
    assert len(store.rows("events")) == 3 and settled.acked == []
    settled = sink.add_events("b2", [make_event(4), make_event(5)])  # rows 3-5: a full insert
    assert settled.acked == ["b1", "b2"]
    assert sink.add_events("b3", [make_event(6)]).acked == []
    assert sink.flush_all().acked == ["b3"]


def test_rows_of_one_tuple_in_both_tables():
    store, clock = MemoryStore(), Clock(1000.0)
    sink = sink_for(store, clock, max_rows=10)
    assert sink.add_events("b", [make_event(0), make_event(1, event_time="not a time")]).acked == []
    assert sink.flush_all().acked == ["b"]  # acked once, after both the events and the rejects insert
    assert len(store.rows("events")) == 1 and len(store.rows("events_rejected")) == 1


def test_an_empty_tuple_is_acked_at_once():
    store, clock = MemoryStore(), Clock(1000.0)
    assert sink_for(store, clock).add_events("empty", []).acked == ["empty"]


def test_a_tuple_fails_once_when_one_of_its_inserts_fails():
    store, clock = MemoryStore(fail_next=100), Clock(1000.0)
    sink = sink_for(store, clock, max_rows=2)
    settled = sink.add_events("b", [make_event(n) for n in range(5)])  # two failing inserts so far
    assert settled.failed == ["b"] and settled.acked == []
    store.fail_next = 0
    assert sink.flush_all().acked == []  # its last row is stored, but the tuple already failed


def test_tuple_payloads_reads_lists_objects_and_garbage():
    from pistats.store.sink import tuple_payloads
    from pistats.wire import pack, pack_columns, pack_rows

    packed = tuple_payloads([pack_rows([{"a": 1}, {"b": 2}])])
    assert packed.as_dicts() == [{"a": 1, "b": None}, {"a": None, "b": 2}] and len(packed) == 2
    packed = tuple_payloads([pack_columns(["a", "b"], [[1, None], [None, 2]])])
    assert packed.as_dicts() == [{"a": 1, "b": None}, {"a": None, "b": 2}] and len(packed) == 2
    assert tuple_payloads([pack(["columns", ["a"], [[1], [2]]])]) == [None]  # a column without a field
    assert tuple_payloads([pack([{"a": 1}, "x"])]) == [None]  # not [fields, rows]
    assert tuple_payloads([{"a": 1}]) == [{"a": 1}]
    assert tuple_payloads([[{"a": 1}, 3]]) == [{"a": 1}, None]
    assert tuple_payloads(["not packed"]) == [None]
    assert tuple_payloads([pack_rows([])]).as_dicts() == []
    assert tuple_payloads([]) == [None]
    assert tuple_payloads([7]) == [None]


# Background inserts (inserts_in_flight >= 1, what the bolt runs): the same contract, settled later.


class GatedStore(MemoryStore):
    """Inserts wait for ``release`` (set it to let them land); ``started`` is set as one begins."""

    def __init__(self, **options):
        super().__init__(**options)
        self.release = threading.Event()
        self.started = threading.Event()

    def prepare_insert(self, table, rows):
        def send(token):
            self.started.set()
            assert self.release.wait(5), "the test never released the insert"
            self._insert(table, rows, token)

        return send


def test_background_insert_acks_only_after_it_landed():
    store, clock = GatedStore(), Clock(1000.0)
    sink = sink_for(store, clock, inserts_in_flight=1)
    assert Settled_of(sink, 3).acked == []  # the third row handed the batch to the writer
    assert store.started.wait(5)
    assert sink.add_event(3, make_event(3)).acked == []  # still running: nothing to ack
    assert store.inserts == []
    store.release.set()
    settled = sink.tick()  # waits for the insert in flight
    assert settled.acked == [0, 1, 2] and settled.failed == []
    assert len(store.rows("events")) == 3 and sink.pending("events") == 1


def test_background_insert_is_collected_by_the_next_tuple_without_a_tick():
    store, clock = GatedStore(), Clock(1000.0)
    store.release.set()
    sink = sink_for(store, clock, inserts_in_flight=1)
    Settled_of(sink, 3)
    acked = []  # the insert lands on the writer meanwhile; later tuples collect its acks
    for index in range(3, 200):
        acked += sink.add_event(index, make_event(index)).acked
        if 0 in acked:
            break
    assert acked[:3] == [0, 1, 2]


def test_background_failure_fails_the_tuples_at_the_next_tick():
    store, clock = MemoryStore(fail_next=100), Clock(1000.0)
    sink = sink_for(store, clock, inserts_in_flight=1)
    Settled_of(sink, 3)
    settled = sink.tick()
    assert settled.failed == [0, 1, 2] and settled.acked == []
    assert sink.stats.batches_failed == 1 and clock.sleeps  # it retried within the budget first


def test_a_full_batch_waits_while_the_previous_insert_is_in_flight():
    store, clock = GatedStore(), Clock(1000.0)
    sink = sink_for(store, clock, inserts_in_flight=1)
    Settled_of(sink, 3)
    assert store.started.wait(5)
    second_batch_handed_over = threading.Event()
    acked = []

    def add_second_batch():
        for index in range(3, 6):
            acked.extend(sink.add_event(index, make_event(index)).acked)
        second_batch_handed_over.set()

    adder = threading.Thread(target=add_second_batch)
    adder.start()
    assert not second_batch_handed_over.wait(0.3)  # bounded: one batch in flight, the next one waits
    store.release.set()
    assert second_batch_handed_over.wait(5)
    adder.join()
    assert acked == [0, 1, 2]  # collected by the call that waited
    assert sink.flush_all().acked == [3, 4, 5]


# Packed tuples (what the bolt hands over): plain batches go column by column, odd ones row by row.


def packed_tuple(events, form="columns"):
    """A tuple as the sink bolt reads it: packed by column as the enrich bolt emits it, or by
    row (``pack_rows``) as the spout's rejects travel."""
    from pistats.enrich.event import to_wire_batch
    from pistats.store.sink import tuple_payloads
    from pistats.wire import pack_rows

    return tuple_payloads([to_wire_batch(events) if form == "columns" else pack_rows(events)])


FORMS = pytest.mark.parametrize("form", ["columns", "rows"])


@FORMS
def test_a_packed_tuple_stores_the_rows_the_row_path_stores(form):
    events = [make_event(index) for index in range(7)]
    columnar_store, row_store = MemoryStore(), MemoryStore()
    columnar, one_by_one = (sink_for(store, Clock(1000.0), max_rows=3) for store in (columnar_store, row_store))
    settled = columnar.add_events("b", packed_tuple(events, form))
    assert settled.acked == [] and columnar.pending("events") == 1  # two inserts of 3, one row waiting
    assert columnar.flush_all().acked == ["b"]
    one_by_one.add_events("b", packed_tuple(events, form).as_dicts())
    one_by_one.flush_all()
    assert columnar_store.inserts == row_store.inserts  # same rows, same batches, same tokens


@FORMS
def test_a_packed_tuple_with_an_unstorable_event_goes_row_by_row(form):
    events = [make_event(0), make_event(1, event_time="not a time"), make_event(2)]
    store = MemoryStore()
    sink = sink_for(store, Clock(1000.0), max_rows=10)
    sink.add_events("b", packed_tuple(events, form))
    assert sink.flush_all().acked == ["b"]
    assert [row[2] for row in store.rows("events")] == ["ev-0", "ev-2"]
    (reject,) = store.rows("events_rejected")
    assert reject[1:4] == ("schema", "sink", "event_time")


@FORMS
def test_a_packed_tuple_respects_the_bytes_bound(form):
    events = [make_event(index, context_json="c" * 900) for index in range(6)]  # about 1,600 bytes each
    stores = MemoryStore(), MemoryStore()
    columnar, one_by_one = (sink_for(store, Clock(1000.0), max_rows=100, max_bytes=4096) for store in stores)
    columnar.add_events("b", packed_tuple(events, form))
    one_by_one.add_events("b", packed_tuple(events, form).as_dicts())
    for sink in (columnar, one_by_one):
        sink.flush_all()
    assert [len(rows) for _, rows, _ in stores[0].inserts] == [2, 2, 2]
    assert stores[0].inserts == stores[1].inserts


# Rows the store refuses for their data (issue 13): found by bisection, stored as rejects, the
# rest stored; tuples acked once every row has its outcome.

EVENT_ID, REJECT_REASON, REJECT_STAGE, REJECT_DETAIL, REJECT_RAW = 2, 1, 2, 4, 5


def refusing(event_ids=(), rejects=lambda rows: None):
    """``refuse`` for MemoryStore: an events insert holding one of ``event_ids`` is refused
    (with a message naming the first); a rejects insert as ``rejects(rows)`` says."""

    def refuse(table, rows):
        if table == "events":
            bad = [row[EVENT_ID] for row in rows if row[EVENT_ID] in event_ids]
            return f"Code: 469. Constraint violated by {bad[0]}" if bad else None
        return rejects(rows)

    return refuse


def test_a_refused_row_becomes_a_store_refused_reject_and_the_rest_is_stored():
    import base64
    import json

    store, clock = MemoryStore(refuse=refusing({"ev-5"})), Clock(1000.0)
    sink = sink_for(store, clock, max_rows=8)
    settled = sink.add_events("b0", [make_event(index) for index in range(4)])
    settled.extend(sink.add_events("b1", [make_event(index) for index in range(4, 8)]))
    assert sorted(settled.acked) == ["b0", "b1"] and settled.failed == []
    assert sorted(row[EVENT_ID] for row in store.rows("events")) == [f"ev-{index}" for index in range(8) if index != 5]
    (reject,) = store.rows("events_rejected")
    assert (reject[0], reject[REJECT_REASON], reject[REJECT_STAGE]) == ("client-a", "store_refused", "store")
    assert reject[REJECT_DETAIL] == "Code: 469. Constraint violated by ev-5"
    assert reject[6:9] == ("shardId-000000000000", make_event(5)["kinesis_seq"], 0)
    assert json.loads(base64.b64decode(reject[REJECT_RAW]))["event_id"] == "ev-5"
    stats = sink.stats
    assert (stats.rows_inserted, stats.rows_refused, stats.batches_inserted, stats.insert_errors) == (7, 1, 1, 0)
    assert stats.bisect_inserts == 6  # two per level: 8 -> 4 -> 2 -> 1


def test_refused_inserts_are_not_retried_and_the_parts_have_tokens_of_their_own():
    store, clock = MemoryStore(refuse=refusing({"ev-1"})), Clock(1000.0)
    sink = sink_for(store, clock, max_rows=4)
    sink.add_events("b", [make_event(index) for index in range(4)])
    assert clock.sleeps == []  # no backoff: a refusal is an answer, not an outage
    (_, _, token, refused), *parts, rejects = store.attempts
    assert refused and [(rows, refused) for _, rows, _, refused in parts] == [(2, True), (2, False), (1, False), (1, True)]
    assert [part_token for _, _, part_token, _ in parts] == [f"{token}:0-2", f"{token}:2-4", f"{token}:0-1", f"{token}:1-2"]
    assert rejects == ("events_rejected", 1, f"{token}:refused", False)


def test_the_same_batch_refused_again_sends_the_same_inserts():
    """A replayed or retried batch reproduces the same outcome, insert for insert."""
    attempts = []
    for _ in range(2):
        store = MemoryStore(refuse=refusing({"ev-2", "ev-9"}))
        sink_for(store, Clock(1000.0), max_rows=12).add_events("b", [make_event(index) for index in range(12)])
        attempts.append(store.attempts)
    assert attempts[0] == attempts[1]


def test_when_every_row_is_refused_the_inserts_are_bounded_and_every_row_is_a_reject():
    store, clock = MemoryStore(refuse=refusing({f"ev-{index}" for index in range(100)})), Clock(1000.0)
    sink = sink_for(store, clock, max_rows=100, max_bisect_inserts=10)
    settled = sink.add_events("b", [make_event(index) for index in range(100)])
    assert settled.acked == ["b"]
    events_attempts = [attempt for attempt in store.attempts if attempt[0] == "events"]
    assert len(events_attempts) == 1 + 10
    rejects = store.rows("events_rejected")
    assert sorted(row[7] for row in rejects) == sorted(make_event(index)["kinesis_seq"] for index in range(100))
    assert store.rows("events") == [] and sink.stats.rows_refused == 100
    assert any("refused together with" in row[REJECT_DETAIL] for row in rejects)


def test_a_refused_reject_is_stored_again_without_its_payload():
    def refuse_payloads(rows):
        return "Code: 131. String too large" if any(row[REJECT_RAW] for row in rows) else None

    store, clock = MemoryStore(refuse=refusing({"ev-1"}, rejects=refuse_payloads)), Clock(1000.0)
    sink = sink_for(store, clock, max_rows=3)
    settled = sink.add_events("b", [make_event(index) for index in range(3)])
    assert settled.acked == ["b"]
    assert [row[EVENT_ID] for row in store.rows("events")] == ["ev-0", "ev-2"]
    (reject,) = store.rows("events_rejected")
    assert reject[REJECT_REASON] == "store_refused" and reject[REJECT_RAW] == ""
    assert reject[7] == make_event(1)["kinesis_seq"]
    assert "String too large" in reject[REJECT_DETAIL] and "store_refused reject" in reject[REJECT_DETAIL]


def test_a_refused_rejects_batch_keeps_its_records():
    def refuse_parse_rejects(rows):
        return "Code: 6. Cannot parse" if any(row[1] == "bad_json" and row[REJECT_RAW] for row in rows) else None

    store = MemoryStore(refuse=refusing(rejects=refuse_parse_rejects))
    sink = sink_for(store, Clock(1000.0), max_rows=2)
    sink.add_reject("r0", make_reject(0))
    settled = sink.add_reject("r1", make_reject(1, reason="schema"))
    assert sorted(settled.acked) == ["r0", "r1"]
    stored = sorted((row[REJECT_REASON], row[7]) for row in store.rows("events_rejected"))
    assert stored == sorted([("store_refused", make_reject(0)["kinesis_seq"]), ("schema", make_reject(1)["kinesis_seq"])])


def test_when_the_store_refuses_even_a_bare_reject_the_tuples_fail():
    store = MemoryStore(refuse=refusing({"ev-1"}, rejects=lambda rows: "Code: 469. rejects refused"))
    sink = sink_for(store, Clock(1000.0), max_rows=3)
    settled = sink.add_events("b", [make_event(index) for index in range(3)])
    assert settled.acked == [] and settled.failed == ["b"]
    assert sink.stats.batches_failed == 1


def test_tuples_wait_for_the_rejects_of_their_refused_rows():
    """The good rows are stored, but the rejects insert fails past the retry budget: the tuple
    is not acked (it is failed, and its replay collapses with the rows already stored)."""

    class RejectsDown(MemoryStore):
        def _insert(self, table, rows, token):
            if table == "events_rejected":
                raise StoreError("injected: connection refused")
            super()._insert(table, rows, token)

    from pistats.store.backends import StoreError

    store, clock = RejectsDown(refuse=refusing({"ev-0"})), Clock(1000.0)
    sink = sink_for(store, clock, max_rows=2)
    settled = sink.add_events("b", [make_event(0), make_event(1)])
    assert settled.acked == [] and settled.failed == ["b"]
    assert [row[EVENT_ID] for row in store.rows("events")] == ["ev-1"]
    assert sum(clock.sleeps) <= 5.0 + 1e-9  # one retry budget for the whole batch


def test_a_transient_failure_while_splitting_is_retried_within_the_budget():
    store, clock = MemoryStore(refuse=refusing({"ev-3"})), Clock(1000.0)
    sink = sink_for(store, clock, max_rows=4)

    original = store._insert
    calls = []

    def flaky(table, rows, token):
        calls.append(token)
        if len(calls) == 2:  # the first part's first attempt
            raise StoreError("injected: timed out")
        original(table, rows, token)

    from pistats.store.backends import StoreError

    store._insert = flaky
    settled = sink.add_events("b", [make_event(index) for index in range(4)])
    assert settled.acked == ["b"] and clock.sleeps == [0.5]
    assert calls[1] == calls[2]  # the part was sent again with its own token
    assert len(store.rows("events")) == 3 and len(store.rows("events_rejected")) == 1


def test_background_refusals_settle_like_the_others():
    store, clock = MemoryStore(refuse=refusing({"ev-1"})), Clock(1000.0)
    sink = sink_for(store, clock, inserts_in_flight=1)
    Settled_of(sink, 3)
    settled = sink.tick()
    assert settled.acked == [0, 1, 2] and settled.failed == []
    assert len(store.rows("events")) == 2 and len(store.rows("events_rejected")) == 1


def test_finding_refused_rows_stops_when_the_retry_budget_is_spent():
    """Slow inserts (2 s each on the manual clock): the batch fails once the 5 s budget is spent
    rather than keep the bolt waiting past Storm's heartbeat timeout."""
    store, clock = MemoryStore(refuse=refusing({"ev-5"})), Clock(1000.0)
    original = store._insert

    def slow(table, rows, token):
        clock.now += 2.0
        original(table, rows, token)

    store._insert = slow
    sink = sink_for(store, clock, max_rows=64)
    settled = sink.add_events("b", [make_event(index) for index in range(64)])
    assert settled.acked == [] and settled.failed == ["b"]
    assert len(store.attempts) == 3  # the batch and two parts: 6 s, past the budget
