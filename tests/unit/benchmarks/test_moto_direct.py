"""benchmarks/moto_direct.py: moto's GetRecords answers written directly are byte for byte the
answers moto's own serializer writes, over its real server, for the same iterators; errors and
other operations are moto's own, and leaving the block restores moto."""

import json
import logging
import sys
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest

sys.path.append(str(Path(__file__).resolve().parents[3] / "benchmarks"))

from moto_direct import serving_get_records_directly  # noqa: E402

AUTH = ("AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host, "
        "Signature=00")


@pytest.fixture(scope="module")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def kinesis(moto_endpoint):
    client = boto3.client("kinesis", endpoint_url=moto_endpoint, region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
    client.create_stream(StreamName="direct", ShardCount=2)
    odd = [b"", b"\x00\xff\xfe", '{"name": "\u00e9\u2028\U0001f600"}'.encode(), b"x" * 3000]
    client.put_records(StreamName="direct", Records=[
        {"Data": data, "PartitionKey": key}
        for data, key in zip(odd * 30, ['p"q', "\\back", "\u00e9mile", "\U0001f600", "plain"] * 24)])
    return client


def call(endpoint: str, target: str, payload: dict) -> tuple[int, bytes]:
    request = urllib.request.Request(endpoint, data=json.dumps(payload).encode(), headers={
        "X-Amz-Target": f"Kinesis_20131202.{target}", "Content-Type": "application/x-amz-json-1.1",
        "Authorization": AUTH})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def iterators(kinesis, shard_type="TRIM_HORIZON") -> list[str]:
    shards = kinesis.list_shards(StreamName="direct")["Shards"]
    return [kinesis.get_shard_iterator(StreamName="direct", ShardId=s["ShardId"], ShardIteratorType=shard_type)
            ["ShardIterator"] for s in shards]


@pytest.mark.parametrize("limit", [1, 7, 10_000])
def test_answers_are_moto_own_bytes(moto_endpoint, kinesis, limit, monkeypatch):
    from moto.kinesis.models import Record

    def not_used(record):
        raise AssertionError("the records went through moto's serializer")

    for iterator in iterators(kinesis):
        stock = call(moto_endpoint, "GetRecords", {"ShardIterator": iterator, "Limit": limit})
        with serving_get_records_directly(), monkeypatch.context() as patched:
            patched.setattr(Record, "to_json", not_used)
            direct = call(moto_endpoint, "GetRecords", {"ShardIterator": iterator, "Limit": limit})
        assert stock[0] == 200 and json.loads(stock[1])["Records"]
        assert direct == stock


def test_an_empty_answer_and_the_boto_reading_are_moto_own(moto_endpoint, kinesis):
    for iterator in iterators(kinesis, "LATEST"):
        stock = call(moto_endpoint, "GetRecords", {"ShardIterator": iterator})
        with serving_get_records_directly():
            direct = call(moto_endpoint, "GetRecords", {"ShardIterator": iterator})
        assert direct == stock and json.loads(stock[1])["Records"] == []
    iterator = iterators(kinesis)[0]
    stock = kinesis.get_records(ShardIterator=iterator)
    with serving_get_records_directly():
        direct = kinesis.get_records(ShardIterator=iterator)
    for answer in (stock, direct):
        answer.pop("ResponseMetadata")
    assert direct == stock and len(stock["Records"]) > 50


def test_errors_are_moto_own_and_moto_is_restored(moto_endpoint, kinesis):
    from moto.kinesis.responses import KinesisResponse

    before = KinesisResponse.get_records
    bad = {"ShardIterator": "bm90IGFuIGl0ZXJhdG9y"}
    stock = call(moto_endpoint, "GetRecords", bad)
    with serving_get_records_directly():
        assert KinesisResponse.get_records is not before
        direct = call(moto_endpoint, "GetRecords", bad)
    assert stock[0] >= 400 and direct == stock
    assert KinesisResponse.get_records is before


def test_a_json_answer_skips_moto_request_id_expression(moto_endpoint, kinesis, monkeypatch):
    import re

    import moto.core.responses

    searched = []

    class Recording:
        def __getattr__(self, name):
            return getattr(re, name)

        @staticmethod
        def sub(pattern, replacement, text, *args, **kwargs):
            searched.append(len(text))
            return re.sub(pattern, replacement, text, *args, **kwargs)

    monkeypatch.setattr(moto.core.responses, "re", Recording())
    iterator = iterators(kinesis)[0]
    stock = call(moto_endpoint, "GetRecords", {"ShardIterator": iterator})
    assert searched and max(searched) == len(stock[1].decode())
    searched.clear()
    with serving_get_records_directly():
        direct = call(moto_endpoint, "GetRecords", {"ShardIterator": iterator})
    assert direct == stock and max(searched, default=0) == 0


def test_a_body_with_an_xml_request_id_still_gets_moto_own_rewriting(kinesis):
    """moto fills the request id into any ``<RequestId>`` element of a body, even inside a
    partition key of a JSON answer; the shortcut skips only bodies without one, so this stays."""
    from moto.kinesis.responses import KinesisResponse

    kinesis.create_stream(StreamName="request-id", ShardCount=1)
    kinesis.put_record(StreamName="request-id", Data=b"x", PartitionKey="<RequestId>x</RequestId>")
    shard = kinesis.list_shards(StreamName="request-id")["Shards"][0]["ShardId"]

    def first_key() -> tuple[str, str]:
        iterator = kinesis.get_shard_iterator(StreamName="request-id", ShardId=shard,
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        answer = kinesis.get_records(ShardIterator=iterator)
        return answer["Records"][0]["PartitionKey"], answer["ResponseMetadata"]["RequestId"]

    stock_key, stock_id = first_key()
    with serving_get_records_directly():
        direct_key, direct_id = first_key()
    assert stock_key == f"<RequestId>{stock_id}</RequestId>"
    assert direct_key == f"<RequestId>{direct_id}</RequestId>" and direct_id != stock_id
    assert "_enrich_response" not in vars(KinesisResponse)
