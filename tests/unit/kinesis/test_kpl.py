"""KPL de-aggregation: our decoder against the reference aggregator, and bad bytes passed through."""

import base64
import hashlib
import os
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pistats.kinesis.kpl import MAGIC, UserRecord, aggregate, deaggregate, is_aggregated


@pytest.fixture(scope="module")
def reference_agg():
    """aws-kinesis-agg 1.2.3, made importable: its messages_pb2 does `import config_pb2`."""
    import aws_kinesis_agg

    sys.path.insert(0, os.path.dirname(aws_kinesis_agg.__file__))
    from aws_kinesis_agg import aggregator, deaggregator

    yield aggregator, deaggregator
    sys.path.remove(os.path.dirname(aws_kinesis_agg.__file__))


def test_decodes_what_the_reference_aggregator_writes(reference_agg):
    aggregator, _ = reference_agg
    agg = aggregator.RecordAggregator()
    inputs = [("user-1", b'{"a":1}'), ("user-2", b"\xff\xfe not utf-8"), ("user-1", b"")]
    for key, data in inputs:
        agg.add_user_record(key, data, None)
    key, _, payload = agg.clear_and_get().get_contents()
    assert is_aggregated(payload)
    assert deaggregate(payload, key) == [UserRecord(k, d, i) for i, (k, d) in enumerate(inputs)]


def test_reference_deaggregator_reads_what_we_write(reference_agg):
    _, deaggregator = reference_agg
    inputs = [("a", b"1"), ("b", b"22"), ("a", b"333")]
    wrapped = {"kinesis": {"data": base64.b64encode(aggregate(inputs)).decode(), "partitionKey": "x",
                           "sequenceNumber": "1", "approximateArrivalTimestamp": 1,
                           "kinesisSchemaVersion": "1.0"}}
    out = deaggregator.deaggregate_records([wrapped])
    assert [(r["kinesis"]["partitionKey"], base64.b64decode(r["kinesis"]["data"])) for r in out] == inputs


@given(st.lists(st.tuples(st.text(min_size=1, max_size=8), st.binary(max_size=40)), min_size=1, max_size=20))
def test_round_trip(inputs):
    assert deaggregate(aggregate(inputs), "outer") == [UserRecord(k, d, i) for i, (k, d) in enumerate(inputs)]


@pytest.mark.parametrize(
    "payload",
    [b"", b"plain json {}", MAGIC, MAGIC + b"\x00" * 16, b"\xff\xfe\xfd"],
)
def test_non_aggregates_pass_through_unchanged(payload):
    assert deaggregate(payload, "pk") == [UserRecord("pk", payload, 0)]


def test_bad_digest_passes_through():
    payload = bytearray(aggregate([("a", b"1")]))
    payload[-1] ^= 1
    assert deaggregate(bytes(payload), "pk") == [UserRecord("pk", bytes(payload), 0)]


def test_valid_digest_over_broken_protobuf_passes_through():
    body = b"\x1a\xff\x01"  # records field claiming 255 bytes that are not there
    payload = MAGIC + body + hashlib.md5(body).digest()
    assert deaggregate(payload, "pk") == [UserRecord("pk", payload, 0)]


def test_record_index_out_of_key_table_passes_through():
    inner = b"\x08\x05\x1a\x01x"  # partition_key_index 5, no key table
    body = b"\x1a" + bytes([len(inner)]) + inner
    payload = MAGIC + body + hashlib.md5(body).digest()
    assert deaggregate(payload, "pk") == [UserRecord("pk", payload, 0)]
