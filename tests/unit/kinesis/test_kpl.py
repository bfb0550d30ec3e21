"""KPL de-aggregation: our decoder against the reference aggregator; plain payloads pass through;
anything with the magic that is not a usable aggregate is a MalformedAggregate, never an exception."""

import base64
import hashlib
import os
import sys
import tracemalloc

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pistats.kinesis.kpl import MAGIC, MalformedAggregate, UserRecord, aggregate, deaggregate, is_aggregated


@pytest.fixture(scope="module")
def reference_agg():
    """aws-kinesis-agg 1.2.3, made importable: its messages_pb2 does `import config_pb2`."""
    import aws_kinesis_agg

    sys.path.insert(0, os.path.dirname(aws_kinesis_agg.__file__))
    from aws_kinesis_agg import aggregator, deaggregator

    yield aggregator, deaggregator
    sys.path.remove(os.path.dirname(aws_kinesis_agg.__file__))


def varint(value):
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def key(field, wire):
    return varint(field << 3 | wire)


def delimited(field, data):
    return key(field, 2) + varint(len(data)) + data


def wrap(body):
    """A payload with the magic and a digest that matches ``body``, whatever ``body`` holds."""
    return MAGIC + body + hashlib.md5(body).digest()


def good_record(index=0, data=b"x"):
    return delimited(3, key(1, 0) + varint(index) + delimited(3, data))


def test_decodes_what_the_reference_aggregator_writes(reference_agg):
    aggregator, _ = reference_agg
    agg = aggregator.RecordAggregator()
    inputs = [("user-1", b'{"a":1}'), ("user-2", b"\xff\xfe not utf-8"), ("user-1", b"")]
    for k, data in inputs:
        agg.add_user_record(k, data, None)
    k, _, payload = agg.clear_and_get().get_contents()
    assert is_aggregated(payload)
    assert deaggregate(payload, k) == [UserRecord(pk, d, i) for i, (pk, d) in enumerate(inputs)]


def test_reference_deaggregator_reads_what_we_write(reference_agg):
    _, deaggregator = reference_agg
    inputs = [("a", b"1"), ("b", b"22"), ("a", b"333")]
    wrapped = {"kinesis": {"data": base64.b64encode(aggregate(inputs)).decode(), "partitionKey": "x",
                           "sequenceNumber": "1", "approximateArrivalTimestamp": 1,
                           "kinesisSchemaVersion": "1.0"}}
    out = deaggregator.deaggregate_records([wrapped])
    assert [(r["kinesis"]["partitionKey"], base64.b64decode(r["kinesis"]["data"])) for r in out] == inputs


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(min_size=1, max_size=8), st.binary(max_size=40)), min_size=1, max_size=20))
def test_round_trip(inputs):
    assert deaggregate(aggregate(inputs), "outer") == [UserRecord(k, d, i) for i, (k, d) in enumerate(inputs)]


@pytest.mark.parametrize("payload", [b"", b"plain json {}", b"\xff\xfe\xfd", b"x" + MAGIC],
                         ids=["empty", "json", "not-utf8", "magic-not-first"])
def test_plain_payloads_are_one_record_unchanged(payload):
    assert deaggregate(payload, "pk") == [UserRecord("pk", payload, 0)]


def test_unknown_fields_and_tags_are_skipped():
    inner = key(1, 0) + varint(0) + key(2, 0) + varint(7) + delimited(3, b"d") + delimited(4, b"tag")
    body = delimited(1, b"k") + delimited(2, b"123") + delimited(3, inner) + key(9, 1) + b"8bytes!!" + key(9, 5) + b"4by"
    assert deaggregate(wrap(body + b"!"), "pk") == [UserRecord("k", b"d", 0)]


MALFORMED = {
    "magic-only": (MAGIC, "too short"),
    "magic-and-digest-only": (MAGIC + b"\x00" * 16, "too short"),
    "bad-digest": (MAGIC + b"\x0a\x01k" + b"\x00" * 16, "digest"),
    "field-longer-than-body": (wrap(b"\x1a\xff\x01"), "claims 255 bytes"),
    "key-index-outside-table": (wrap(delimited(1, b"k") + good_record(index=5)), "index 5 outside a table of 1"),
    "key-not-utf8": (wrap(delimited(1, b"\xff") + good_record()), "not UTF-8"),
    "record-without-data": (wrap(delimited(1, b"k") + delimited(3, key(1, 0) + varint(0))), "no data"),
    "truncated-varint": (wrap(delimited(1, b"k") + good_record() + b"\x80"), "truncated varint"),
    "group-wire-type": (wrap(delimited(1, b"k") + good_record() + key(5, 3)), "wire type 3"),
    "field-number-0": (wrap(delimited(1, b"k") + good_record() + key(0, 0) + b"\x00"), "field number 0"),
}


@pytest.mark.parametrize("payload, detail", MALFORMED.values(), ids=MALFORMED.keys())
def test_payloads_with_the_magic_that_are_not_aggregates_are_malformed(payload, detail):
    outcome = deaggregate(payload, "pk")
    assert isinstance(outcome, MalformedAggregate)
    assert detail in outcome.detail


@pytest.mark.parametrize(
    "body",
    [
        key(1, 0) + varint(2**62) + good_record(),                            # key table entry as a varint
        delimited(1, b"k") + key(3, 0) + varint(1),                           # records entry as a varint
        delimited(1, b"k") + delimited(3, key(1, 0) + varint(0) + key(3, 0) + varint(2**62)),  # data as a varint
        delimited(1, b"k") + delimited(3, delimited(1, b"0") + delimited(3, b"d")),            # index as bytes
        key(1, 5) + b"abcd" + good_record(),                                  # key table entry as fixed32
    ],
    ids=["key-varint", "record-varint", "data-varint", "index-bytes", "key-fixed32"],
)
def test_wrong_wire_types_in_a_valid_aggregate_are_malformed_not_raised(body):
    # Issue 13: these raised TypeError (or tried to allocate 2**62 bytes) and stalled the shard.
    outcome = deaggregate(wrap(body), "pk")
    assert isinstance(outcome, MalformedAggregate) and "wire type" in outcome.detail


@pytest.mark.parametrize("body", [delimited(1, b"k"), delimited(1, b"a") + delimited(2, b"1"), key(9, 0) + b"\x01"],
                         ids=["key-table-only", "key-tables-only", "unknown-field-only"])
def test_an_aggregate_without_records_is_malformed_not_empty(body):
    # Issue 13: an aggregate of zero records used to vanish (an empty list): no event, no reject.
    assert deaggregate(wrap(body), "pk") == MalformedAggregate("aggregate holds no records")


def peak_bytes(fn):
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = fn()
        return result, tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def field_number():
    return st.integers(0, 5)


LEAF = st.one_of(
    st.builds(lambda f, v: key(f, 0) + varint(v), field_number(), st.integers(0, 2**64)),
    st.builds(lambda f, b: delimited(f, b), field_number(), st.binary(max_size=12)),
    st.builds(lambda f, n, b: key(f, 2) + varint(n) + b, field_number(), st.integers(0, 2**40), st.binary(max_size=4)),
    st.builds(lambda f, w: key(f, w), field_number(), st.integers(0, 7)),
    st.binary(max_size=6),
)
FIELDS = st.lists(LEAF, max_size=6).map(b"".join)
BODY = st.lists(st.one_of(LEAF, FIELDS.map(lambda inner: delimited(3, inner)),
                          st.text(max_size=4).map(lambda k: delimited(1, k.encode())), st.just(good_record())),
                max_size=10).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(st.one_of(BODY, st.binary(max_size=64)))
@example(key(1, 0) + varint(2**26) + good_record())  # bytes(int) would allocate 64 MiB
@example(delimited(1, b"k") + delimited(3, key(1, 0) + varint(0) + key(3, 0) + varint(2**26)))
def test_deaggregate_returns_records_or_malformed_never_raises_and_stays_small(body):
    payload = wrap(body)
    outcome, peak = peak_bytes(lambda: deaggregate(payload, "pk"))
    if isinstance(outcome, MalformedAggregate):
        assert outcome.detail and not outcome.detail.startswith("undecodable")  # no decoder bug behind it
    else:
        assert outcome and [r.sub_sequence_number for r in outcome] == list(range(len(outcome)))
        assert all(isinstance(r.data, bytes) and isinstance(r.partition_key, str) for r in outcome)
    assert peak <= 64 * len(payload) + 64 * 1024
