"""The enrich bolt driven through Storm's multilang protocol (pystorm over byte streams), with
sessions in a real Redis."""

import json
from datetime import datetime, timezone
from io import BytesIO

import pytest

from bolts.enrich import EnrichBolt
from pistats import contract
from pistats.enrich.event import EVENT_FIELDS, REJECT_FIELDS
from pistats.kinesis.ledger import ShardRecord
from pistats.kinesis.spout_tuples import tuple_values
from pistats.wire import pack, unpack_rows

NOW = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)
ANDROID = ("Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/120.0.6099.144 Mobile Safari/537.36")


def message(obj) -> bytes:
    return json.dumps(obj).encode() + b"\nend\n"


def drive(bolt_class, conf, tuples, tmp_path):
    """Handshake, then one ``_run`` per tuple as ``Component.run`` would; returns sent messages."""
    stream = message({"conf": conf, "context": {"taskid": 3, "componentid": bolt_class.__name__,
                                                "task->component": {}}, "pidDir": str(tmp_path)})
    for n, values in enumerate(tuples):
        stream += message({"id": f"t{n}", "comp": "upstream", "stream": "default", "task": 1, "tuple": values})
    output = BytesIO()
    bolt = bolt_class(input_stream=BytesIO(stream), output_stream=output)
    storm_conf, context = bolt.read_handshake()
    bolt._setup_component(storm_conf, context)
    bolt.initialize(storm_conf, context)
    for _ in tuples:
        try:
            bolt._run()
        except Exception as error:  # what Component.run does before it would exit
            bolt._handle_run_exception(error)
    chunks = output.getvalue().decode().split("\nend\n")
    return [json.loads(chunk) for chunk in chunks if chunk.strip()]


def spout_record(data: bytes, seq: str):
    """A record's values in a spout tuple, as the spout writes them."""
    return tuple_values(ShardRecord("shardId-000000000000", int(seq), 0, "c1:u1", 1_790_000_000_000, data))


def spout_tuple(*records, bucket=5):
    """The spout's micro-batch tuple: a bucket and its records, packed."""
    return [bucket, pack(list(records))]


def record(event_id, minute):
    ev = {"event_id": event_id, "type": "page_view", "property_id": "p", "user_id": "u1",
          "timestamp": f"2026-11-26T05:{minute:02d}:00Z"}
    return contract.encode_record(contract.build_record(
        client_id="c1", event=ev, received_at=NOW, ip="89.160.20.112", user_agent=ANDROID, now=NOW))


def commands(messages, name):
    return [m for m in messages if m.get("command") == name]


@pytest.fixture
def conf(redis_url, key_prefix):
    return {"pistats.redis.url": redis_url, "pistats.enrich": {"sessions": {"key_prefix": key_prefix}}}


def test_enrich_bolt_emits_a_batch_of_events_and_one_of_rejects(tmp_path, conf):
    batch = spout_tuple(spout_record(record("a", 0), "1"), spout_record(b"\xff", "2"), spout_record(record("b", 1), "3"))
    sent = drive(EnrichBolt, conf, [batch], tmp_path)
    assert sent[0] == {"pid": sent[0]["pid"]}
    emits = commands(sent, "emit")
    assert [e.get("stream", "default") for e in emits] == ["default", "rejects"]
    events, rejects = unpack_rows(emits[0]["tuple"][0]), unpack_rows(emits[1]["tuple"][0])
    assert [e["event_id"] for e in events] == ["a", "b"]
    assert (events[0]["geo_country"], events[0]["ip"], events[0]["device_type"]) == ("SE", "89.160.20.0", "mobile")
    assert all(set(e) == set(EVENT_FIELDS) for e in events) and events[0]["event_time"] == "2026-11-26T05:00:00.000000Z"
    assert [(e["session_index"], e["session_event_index"], e["is_new_user"]) for e in events] == [(1, 1, True), (1, 2, False)]
    assert events[0]["first_seen_at"] == "2026-11-26T05:00:00.000000Z"
    assert [(set(r) == set(REJECT_FIELDS), r["reason"], r["kinesis_seq"]) for r in rejects] == [(True, "bad_encoding", "2")]
    assert [e["anchors"] for e in emits] == [["t0"], ["t0"]]
    assert [a["id"] for a in commands(sent, "ack")] == ["t0"]


def test_enrich_bolt_emits_no_empty_batches(tmp_path, conf):
    sent = drive(EnrichBolt, conf, [spout_tuple(spout_record(record("a", 0), "1"))], tmp_path)
    assert [e.get("stream", "default") for e in commands(sent, "emit")] == ["default"]


def test_sessions_across_batches_and_replays(tmp_path, conf):
    first, second = spout_tuple(spout_record(record("a", 0), "1")), spout_tuple(spout_record(record("b", 3), "2"))
    sent = drive(EnrichBolt, conf, [first, second, first], tmp_path)
    events = [event for e in commands(sent, "emit") for event in unpack_rows(e["tuple"][0])]
    assert [(e["session_index"], e["session_event_index"], e["is_new_user"]) for e in events] == [
        (1, 1, True), (1, 2, False), (1, 1, True)]
    assert events[2]["session_id"] == events[0]["session_id"]  # a replay gets the fields it got before
    assert [a["id"] for a in commands(sent, "ack")] == ["t0", "t1", "t2"]
    assert commands(sent, "fail") == []


def test_a_whole_batch_is_sessionised_in_order(tmp_path, conf):
    sent = drive(EnrichBolt, conf, [spout_tuple(*[spout_record(record(f"e{m}", m), str(m)) for m in (0, 10, 50)])],
                 tmp_path)
    (emit,) = commands(sent, "emit")
    events = unpack_rows(emit["tuple"][0])
    # minutes 0 and 10 share a session; 50 is past the 30-minute gap
    assert [(e["event_id"], e["session_index"], e["session_event_index"]) for e in events] == [
        ("e0", 1, 1), ("e10", 1, 2), ("e50", 2, 1)]


def test_enrich_bolt_fails_the_tuple_when_redis_stays_down(tmp_path, key_prefix):
    conf = {"pistats.redis.url": "redis://127.0.0.1:1/0?socket_connect_timeout=0.2",
            "pistats.enrich": {"sessions": {"key_prefix": key_prefix, "outage_budget_s": 0.3}}}
    batch = spout_tuple(spout_record(record("a", 0), "1"), spout_record(b"\xff", "2"))
    sent = drive(EnrichBolt, conf, [batch, batch], tmp_path)
    assert commands(sent, "emit") == []  # neither half-enriched events nor the reject: the replay brings both
    assert [f["id"] for f in commands(sent, "fail")] == ["t0", "t1"]
    assert commands(sent, "ack") == []
