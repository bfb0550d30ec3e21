"""The consumer's GetRecords parser (``fast_get_records=True``) against both emulators: every
page reads as botocore's own parser reads it, and a bad iterator fails with the same code."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from pistats.kinesis.client import make_kinesis_client

pytestmark = pytest.mark.integration

ITEMS = [("user-1", b'{"v":1,"client_id":"c1"}'), ("user-2", bytes(range(256))), ("user-\u00e9", b""),
         ("user-1", b"\xf3\x89\x9a\xc2 not a real aggregate")]


@pytest.fixture(params=["kinesis-local", "moto"])
def endpoint(request):
    return request.getfixturevalue("kinesis_endpoint" if request.param == "kinesis-local" else "moto_endpoint")


def test_pages_and_errors_read_as_botocore_reads_them(endpoint, unique_name):
    generic = make_kinesis_client(endpoint, retries=False)
    fast = make_kinesis_client(endpoint, retries=False, fast_get_records=True)
    stream = f"{unique_name}-gr"
    generic.create_stream(StreamName=stream, ShardCount=1)
    try:
        deadline = time.time() + 10
        while generic.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
            assert time.time() < deadline
            time.sleep(0.05)
        # ("" is refused by PutRecords: the empty payload travels as one space)
        put = generic.put_records(StreamName=stream, Records=[{"PartitionKey": k, "Data": d or b" "} for k, d in ITEMS])
        assert put["FailedRecordCount"] == 0
        shard = generic.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
        iterator = generic.get_shard_iterator(StreamName=stream, ShardId=shard,
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        ours, theirs = fast.get_records(ShardIterator=iterator, Limit=10), generic.get_records(ShardIterator=iterator, Limit=10)
        assert [r["Data"] for r in ours["Records"]] == [d or b" " for _, d in ITEMS]
        for key in ("Records", "MillisBehindLatest", "ChildShards"):
            assert ours.get(key) == theirs.get(key), key
        assert all(r["ApproximateArrivalTimestamp"].utcoffset().total_seconds() == 0 for r in ours["Records"])
        assert ours["NextShardIterator"]
        with pytest.raises(ClientError) as fast_error:
            fast.get_records(ShardIterator="not-an-iterator-" + iterator[16:])
        with pytest.raises(ClientError) as generic_error:
            generic.get_records(ShardIterator="not-an-iterator-" + iterator[16:])
        assert fast_error.value.response["Error"]["Code"] == generic_error.value.response["Error"]["Code"]
    finally:
        generic.delete_stream(StreamName=stream, EnforceConsumerDeletion=True)
