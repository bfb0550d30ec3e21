import base64
import hashlib
import json
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings, strategies as st

from pistats import contract
from pistats.enrich.event import EVENT_FIELDS, REJECT_FIELDS
from pistats.enrich.parse import Parser, RawRecord, UndecodableTuple, record_from_tuple
from pistats.kinesis import kpl
from pistats.kinesis.ledger import ShardRecord
from pistats.kinesis.spout_tuples import tuple_values
from pistats.wire import pack, unpack

NOW = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)


def event(**overrides):
    base = {
        "event_id": "e-1", "type": "page_view", "property_id": "site-1", "user_id": "u-1",
        "timestamp": "2026-11-26T05:59:00.250+01:00",
        "context": {"page_url": "https://example.com/a", "referrer": "https://ref.example/",
                    "locale": "fr-FR", "sdk": {"name": "pistats-js", "version": "1.2.0"}, "extra": [1, 2]},
        "properties": {"plan": "pro", "n": 3},
    }
    base.update(overrides)
    return base


def record_bytes(ev=None, **overrides):
    record = contract.build_record(
        client_id="client-1", event=ev or event(), received_at=NOW, ip="81.2.69.160",
        user_agent="Mozilla/5.0", now=NOW,
    )
    record.update(overrides)
    return contract.encode_record(record)


def kinesis(data, seq="49590338271490256608559692538361571095921575989136588898", sub=0):
    return RawRecord("shardId-000000000001", seq, sub, "client-1:u-1", 1_790_000_000_000, data)


@pytest.fixture
def parser():
    return Parser(now=lambda: NOW)


def test_valid_record_becomes_the_base_event(parser):
    kind, ev = parser.parse(kinesis(record_bytes()))
    assert kind == "event"
    assert set(ev) == set(EVENT_FIELDS)
    assert (ev["client_id"], ev["event_id"], ev["event_type"], ev["user_id"], ev["property_id"]) == (
        "client-1", "e-1", "page_view", "u-1", "site-1")
    assert ev["event_time"] == datetime(2026, 11, 26, 4, 59, 0, 250000, tzinfo=timezone.utc)
    assert ev["received_at"] == NOW and ev["processed_at"] == NOW
    assert (ev["page_url"], ev["referrer"], ev["locale"]) == ("https://example.com/a", "https://ref.example/", "fr-FR")
    assert (ev["sdk_name"], ev["sdk_version"]) == ("pistats-js", "1.2.0")
    assert json.loads(ev["context_json"])["extra"] == [1, 2]
    assert json.loads(ev["properties_json"]) == {"plan": "pro", "n": 3}
    assert ev["clock_skew"] is False and ev["enrich_errors"] == []
    assert (ev["kinesis_shard"], ev["kinesis_subseq"]) == ("shardId-000000000001", 0)
    assert ev["kinesis_seq"] == "49590338271490256608559692538361571095921575989136588898"
    assert ev["push_token"] is None and ev["device_type"] == "other" and ev["session_id"] is None


def test_context_and_properties_are_stored_as_compact_json_with_their_exact_values(parser):
    context = {"page_url": "https://example.com/é", "note": "tab\there \u2028 😀 \"q\" \\", "depth": [{"a": None}],
               "ratio": 0.30000000000000004}
    properties = {"big": 2 ** 70, "n": -3, "ok": True, "price": 1e21}
    _, ev = parser.parse(kinesis(record_bytes(event(context=context, properties=properties))))
    # The same text as the standard library's compact form, integers beyond 64 bits included.
    assert ev["context_json"] == json.dumps(context, ensure_ascii=False, separators=(",", ":"))
    assert ev["properties_json"] == json.dumps(properties, ensure_ascii=False, separators=(",", ":"))
    assert json.loads(ev["properties_json"])["big"] == 2 ** 70


def test_optional_context_absent(parser):
    ev = event()
    del ev["context"], ev["properties"]
    _, out = parser.parse(kinesis(record_bytes(ev)))
    assert (out["page_url"], out["sdk_name"], out["context_json"], out["properties_json"]) == (None, None, "{}", "{}")


@pytest.mark.parametrize(
    "data, reason, field",
    [
        (b"\xff\xfe{}", "bad_encoding", None),
        (b'{"v": 1, ', "bad_json", None),
        (b"NaN", "bad_json", None),
        (json.dumps({"v": 2, "client_id": "client-1"}).encode(), "unsupported_version", None),
        (b"x" * (contract.MAX_RECORD_BYTES + 1), "too_large", None),
        (record_bytes(event=event(timestamp="yesterday")), "schema", "event.timestamp"),
        (record_bytes(event=event(type="buy")), "schema", "event.type"),
    ],
)
def test_bad_records_become_rejects(parser, data, reason, field):
    kind, reject = parser.parse(kinesis(data, sub=3))
    assert kind == "reject"
    assert set(reject) == set(REJECT_FIELDS)
    assert (reject["reason"], reject["field"], reject["stage"]) == (reason, field, "parse")
    assert base64.b64decode(reject["raw_b64"]) == data
    assert (reject["kinesis_shard"], reject["kinesis_subseq"], reject["rejected_at"]) == ("shardId-000000000001", 3, NOW)
    assert reject["detail"]


def test_reject_names_the_client_when_the_payload_does(parser):
    _, reject = parser.parse(kinesis(record_bytes(event=event(user_id=""))))
    assert reject["client_id"] == "client-1" and reject["field"] == "event.user_id"
    _, reject = parser.parse(kinesis(b"[1]"))
    assert reject["client_id"] == ""


@pytest.mark.parametrize("data", [record_bytes(), "é ✓ 😀 \x00 \"quoted\"".encode(), b"\xff\xfe not UTF-8", b"", kpl.MAGIC + b"\x01"])
def test_tuple_data_comes_back_as_the_same_bytes_as_text_or_base64(data):
    values = tuple_values(ShardRecord("shardId-0", 123, 2, "client-1:u-1", 1_790_000_000_000, data))
    assert type(values[5]) is (list if data.startswith(b"\xff") or data.startswith(kpl.MAGIC) else str)
    travelled = unpack(pack([values]))[0]  # as it crosses Storm
    assert record_from_tuple(travelled) == RawRecord("shardId-0", "123", 2, "client-1:u-1", 1_790_000_000_000, data)


@pytest.mark.parametrize("data, kept", [
    (["not base64!"], "not base64!"),
    ([5], "5"),
    ({"a": 1}, '{"a":1}'),
    (None, "null"),
    ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
])
def test_tuple_data_neither_text_nor_base64_is_a_bad_encoding_reject(parser, data, kept):
    record = record_from_tuple(["shardId-0", "123", 0, "pk", None, data])
    assert isinstance(record, UndecodableTuple)
    kind, reject = parser.parse(record)
    assert (kind, reject["reason"], reject["raw_b64"], reject["kinesis_seq"]) == ("reject", "bad_encoding", kept, "123")


def _aggregate_body(body):
    return kpl.MAGIC + body + hashlib.md5(body).digest()


KPL_PAYLOADS = {
    # an aggregate whose records entry is a varint: deaggregate raised TypeError before issue 13
    "wrong-wire-type": (_aggregate_body(b"\x0a\x01k\x18\x01"), "malformed KPL aggregate: record 0 has wire type 0"),
    "no-records": (_aggregate_body(b"\x0a\x01k"), "malformed KPL aggregate: aggregate holds no records"),
    "bad-digest": (kpl.MAGIC + b"\x0a\x01k" + b"\x00" * 16, "malformed KPL aggregate: MD5"),
    "not-de-aggregated": (kpl.aggregate([("k", b"{}"), ("k", b"{}")]), "KPL aggregate of 2 records"),
}


@pytest.mark.parametrize("data, detail", KPL_PAYLOADS.values(), ids=KPL_PAYLOADS.keys())
def test_a_payload_still_starting_with_the_kpl_magic_is_a_bad_kpl_reject(parser, data, detail):
    kind, reject = parser.parse(kinesis(data))
    assert kind == "reject" and set(reject) == set(REJECT_FIELDS)
    assert (reject["reason"], reject["stage"], reject["field"], reject["client_id"]) == ("bad_kpl", "parse", None, "")
    assert detail in reject["detail"]
    assert base64.b64decode(reject["raw_b64"]) == data
    assert (reject["kinesis_seq"], reject["kinesis_subseq"]) == (kinesis(data).sequence_number, 0)


def test_enrich_over_a_recording_with_a_malformed_aggregate_rejects_it_and_keeps_the_rest(tmp_path, capsys, monkeypatch):
    """Issue 13: `pistats enrich` stopped with a traceback and wrote nothing."""
    from pistats.cli.main import main
    from pistats.kinesis.recording import RecordedRecord, RecordingWriter, ShardInfo

    monkeypatch.delenv("PISTATS_REDIS_URL", raising=False)  # no sessions: no service needed
    bad = KPL_PAYLOADS["wrong-wire-type"][0]
    path, rejects = tmp_path / "rec", tmp_path / "rejects.jsonl"
    with RecordingWriter(path, stream="s", captured_at=NOW) as writer:
        writer.add_shard(ShardInfo("shardId-000000000000", 0, 2**128 - 1, "1"))
        writer.write_many("shardId-000000000000", [
            RecordedRecord("10", NOW, "client-1:u-1", record_bytes(event(event_id="a"))),
            RecordedRecord("11", NOW, "client-1:u-1", bad),
            RecordedRecord("12", NOW, "client-1:u-1", kpl.aggregate([("client-1:u-1", record_bytes(event(event_id="b"))),
                                                                    ("client-1:u-1", record_bytes(event(event_id="c")))])),
        ])
        writer.commit()
    assert main(["enrich", "--recording", str(path), "--rejects", str(rejects)]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["kinesis_seq"], e["kinesis_subseq"], e["event_id"]) for e in events] == [
        ("10", 0, "a"), ("12", 0, "b"), ("12", 1, "c")]
    (reject,) = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert (reject["reason"], reject["kinesis_seq"], reject["kinesis_subseq"]) == ("bad_kpl", "11", 0)
    assert base64.b64decode(reject["raw_b64"]) == bad


def _check_one_outcome(parser, record):
    kind, value = parser.parse(record)
    if kind == "event":
        assert set(value) == set(EVENT_FIELDS)
    else:
        assert kind == "reject" and value["reason"] in contract.REJECT_REASONS
        assert set(value) == set(REJECT_FIELDS)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_crash(data):
    _check_one_outcome(Parser(now=lambda: NOW), kinesis(data))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=8,
)


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.sampled_from(["v", "client_id", "received_at", "ip", "user_agent", "event",
                                        "clock_skew", "other"]), JSON, max_size=8),
       st.dictionaries(st.sampled_from(list(contract.EVENT_FIELDS)), JSON, max_size=9))
def test_arbitrary_record_shaped_json_never_crashes(record, ev):
    record.setdefault("v", 1)
    if "event" not in record:
        record["event"] = ev
    data = json.dumps(record, allow_nan=True).encode()
    _check_one_outcome(Parser(now=lambda: NOW), kinesis(data))


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200) | st.lists(st.text(max_size=200), max_size=2) | st.integers() | st.none())
def test_arbitrary_tuple_data_never_crashes(data):
    _check_one_outcome(Parser(now=lambda: NOW), record_from_tuple(["s", "1", 0, "pk", None, data]))


@pytest.mark.parametrize(
    "text", ["2026-11-26T05:59:00Z", "2026-11-26t05:59:00.1234567z", "2026-11-26T06:29:00.5+00:30",
             "2026-11-25T23:59:59.999999-06:00", "2026-11-26T05:59:00.123456789Z"],
)
def test_event_time_matches_the_contract_parser(parser, text):
    _, ev = parser.parse(kinesis(record_bytes(event=event(timestamp=text))))
    assert ev["event_time"] == contract.parse_timestamp(text)
