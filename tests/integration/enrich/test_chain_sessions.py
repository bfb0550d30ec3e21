from datetime import datetime, timezone

import pytest
import redis as redis_lib

from pistats import contract
from pistats.enrich.chain import Chain, EnrichConfig
from pistats.enrich.parse import RawRecord
from pistats.enrich.sessions import SessionConfig

NOW = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)


def record(event_id, minute, user="u1", seq=1):
    ev = {"event_id": event_id, "type": "page_view", "property_id": "p", "user_id": user,
          "timestamp": f"2026-11-26T05:{minute:02d}:00Z"}
    data = contract.encode_record(contract.build_record(
        client_id="c1", event=ev, received_at=NOW, ip="8.8.8.8", user_agent="curl/8", now=NOW))
    return RawRecord("shardId-0", str(seq), 0, f"c1:{user}", None, data)


def test_full_chain_with_redis_sessions(redis_client, key_prefix):
    config = EnrichConfig(sessions=SessionConfig(key_prefix=key_prefix))
    chain = Chain.build(config, redis=redis_client, now=lambda: NOW)
    events, _ = chain.run([record("a", 0), record("b", 5), record("x", 1, user="u2"), record("a", 0)])
    assert [(e["session_index"], e["session_event_index"], e["is_new_user"]) for e in events] == [
        (1, 1, True), (1, 2, False), (1, 1, True), (1, 1, True)]
    assert events[3]["session_id"] == events[0]["session_id"]
    assert events[0]["first_seen_at"] == datetime(2026, 11, 26, 5, 0, tzinfo=timezone.utc)
    assert events[0]["device_type"] == "bot" and events[0]["geo_country"] == "US"
    assert chain.summary()["session_replays"] == 1


def test_redis_failure_leaves_no_session_fields(key_prefix):
    dead = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=None)
    chain = Chain.build(EnrichConfig(sessions=SessionConfig(key_prefix=key_prefix)), redis=dead, now=lambda: NOW)
    events = [chain.enrich(chain.parse(record("a", 0))[1])]
    with pytest.raises(redis_lib.ConnectionError):
        chain.sessionise(events)
    assert events[0]["session_id"] is None


def test_sink_rows_accept_the_chains_output(redis_client, key_prefix):
    """The enriched events and rejects, in wire form, are rows the store accepts unchanged."""
    from pistats.enrich.event import to_wire
    from pistats.store.rows import EVENT_COLUMN_NAMES, REJECT_COLUMN_NAMES, event_row, reject_row

    chain = Chain.build(EnrichConfig(sessions=SessionConfig(key_prefix=key_prefix)), redis=redis_client,
                        now=lambda: NOW)
    events, rejects = chain.run([record("a", 0), RawRecord("shardId-0", "9", 0, "pk", None, b"\xff")])
    for event in events:
        row = dict(zip(EVENT_COLUMN_NAMES, event_row(to_wire(event), 65536)[0]))
        assert row["enrich_errors"] == []  # the store repaired nothing
        assert (row["session_id"], row["geo_country"], row["device_type"]) == (
            event["session_id"], "US", "bot")
    row = dict(zip(REJECT_COLUMN_NAMES, reject_row(to_wire(rejects[0]), 65536, NOW)[0]))
    assert (row["reason"], row["kinesis_seq"]) == ("bad_encoding", "9")


SESSION_KEYS = ("session_id", "session_index", "session_event_index", "is_new_user", "first_seen_at")


def _sessions_of(events):
    return [tuple(event[key] for key in SESSION_KEYS) for event in events]


def test_a_batch_in_chunks_gets_the_fields_of_the_batch_at_once(redis_client, key_prefix):
    # Users spread over the chunks, a duplicate event id in a later chunk, an event out of order
    # by less than the gap, and a gap of more than 30 minutes: chunks of 3 must assign exactly as
    # one pass over the whole batch does.
    batch = [record("a1", 0), record("b1", 1, user="u2"), record("a2", 5), record("c1", 2, user="u3"),
             record("b2", 40, user="u2"), record("a3", 3), record("a1", 0), record("c2", 50, user="u3"),
             record("a4", 45), record("b3", 41, user="u2"), record("x", 7, user="u4")]
    results = {}
    for chunk in (0, 3):
        config = EnrichConfig(sessions=SessionConfig(key_prefix=f"{key_prefix}:{chunk}", chunk_events=chunk))
        chain = Chain.build(config, redis=redis_client, now=lambda: NOW)
        events, _ = chain.run(batch)
        assert [e["event_id"] for e in events] == ["a1", "b1", "a2", "c1", "b2", "a3", "a1", "c2", "a4", "b3", "x"]
        results[chunk] = _sessions_of(events)
        assert chain.summary()["session_replays"] == 1
    assert results[3] == results[0]
    assert [row[2] for row in results[0]] == [1, 1, 2, 1, 1, 3, 1, 1, 1, 2, 1]  # session_event_index


def test_chunks_after_a_redis_failure_are_not_returned(key_prefix):
    dead = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=None)
    config = EnrichConfig(sessions=SessionConfig(key_prefix=key_prefix, chunk_events=2, outage_budget_s=0))
    chain = Chain.build(config, redis=dead, now=lambda: NOW)
    with pytest.raises(redis_lib.ConnectionError):
        chain.run([record(f"e{n}", n) for n in range(5)])
