"""The consumer's GetRecords parser gives what botocore's own JSON parser gives, for every answer
it reads itself, and leaves everything else (errors, other operations, unreadable bodies) to
botocore; through a client, errors still arrive as botocore's ClientError with their codes."""

import base64
import json
from datetime import datetime, timezone

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from botocore.parsers import JSONParser

from pistats.kinesis.client import make_kinesis_client
from pistats.kinesis.get_records import GetRecordsParser, GetRecordsParserFactory

MODEL = boto3.session.Session().client("kinesis", region_name="us-east-1").meta.service_model
GET_RECORDS = MODEL.operation_model("GetRecords").output_shape
LIST_SHARDS = MODEL.operation_model("ListShards").output_shape
HEADERS = {"x-amzn-requestid": "req-1", "content-type": "application/x-amz-json-1.1"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def answer(body, status=200):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return {"body": raw, "headers": dict(HEADERS), "status_code": status}


def both(response, shape=GET_RECORDS):
    return GetRecordsParser().parse(dict(response), shape), JSONParser().parse(dict(response), shape)


def assert_same_outcome_as_botocore(response):
    """The direct parser gives what botocore's gives for ``response``, or raises what it raises."""
    try:
        generic = JSONParser().parse(dict(response), GET_RECORDS)
    except Exception as error:  # botocore's own outcome, whatever it is, is the expected one
        with pytest.raises(type(error)):
            GetRecordsParser().parse(dict(response), GET_RECORDS)
    else:
        assert GetRecordsParser().parse(dict(response), GET_RECORDS) == generic


PAGE = {
    "Records": [
        {"SequenceNumber": "49680574275476335198516986152487755993581893416107638786",
         "ApproximateArrivalTimestamp": 1764392400.123, "Data": b64(b'{"v":1,"client_id":"c1"}'),
         "PartitionKey": "c1:user1"},
        {"SequenceNumber": "2", "ApproximateArrivalTimestamp": 1764392401, "Data": b64(bytes(range(256))),
         "PartitionKey": "k\u00e9", "EncryptionType": "NONE"},
        {"SequenceNumber": "3", "Data": "", "PartitionKey": "no arrival time"},
        {"SequenceNumber": "4", "ApproximateArrivalTimestamp": "2026-11-29T05:00:00.5Z",
         "Data": b64(b"\xf3\x89\x9a\xc2kpl"), "PartitionKey": "text time"},
    ],
    "NextShardIterator": "AAAA-next",
    "MillisBehindLatest": 1500,
}
SHARD_END = {"Records": [], "MillisBehindLatest": 0, "ChildShards": [
    {"ShardId": "shardId-000000000002", "ParentShards": ["shardId-000000000000"],
     "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "170141183460469231731687303715884105727"}}]}


@pytest.mark.parametrize("page", [PAGE, SHARD_END, {"Records": [], "NextShardIterator": "x", "MillisBehindLatest": 0}],
                         ids=["records", "shard-end", "empty"])
def test_a_page_parses_as_botocore_parses_it(page):
    fast, generic = both(answer(page))
    assert fast == generic
    assert fast["ResponseMetadata"]["RequestId"] == "req-1"


def test_records_carry_bytes_and_aware_utc_arrival_times():
    fast, _ = both(answer(PAGE))
    first, second, third, fourth = fast["Records"]
    assert first["Data"] == b'{"v":1,"client_id":"c1"}' and second["Data"] == bytes(range(256))
    assert first["ApproximateArrivalTimestamp"] == datetime(2025, 11, 29, 5, 0, 0, 123000, tzinfo=timezone.utc)
    assert int(first["ApproximateArrivalTimestamp"].timestamp() * 1000) == 1764392400123
    assert "ApproximateArrivalTimestamp" not in third
    assert fourth["ApproximateArrivalTimestamp"] == datetime(2026, 11, 29, 5, 0, 0, 500000, tzinfo=timezone.utc)


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b'{"Records": {"a": 1}}', b'{"Records": [{"Data": 5}]}'],
                         ids=["empty", "not-json", "not-an-object", "records-not-a-list", "data-not-text"])
def test_what_the_direct_path_cannot_read_goes_to_botocore(body):
    assert_same_outcome_as_botocore(answer(body))


@pytest.mark.parametrize("data", ["eyJ2Ijox\nfQ==", "eyJ2I!joxfQ==", "eyJ2IjoxfQ", "eyJ2IjoxfQ=", "e", "",
                                  "eyJ2IjoxfQ==eyJ2IjoxfQ==", "YQ==YQ==", "-_-_", "YR==", "YWJj\u00e9"],
                         ids=["newline", "stray-character", "no-padding", "short-padding", "one-character", "empty",
                              "padding-inside", "padding-between", "url-safe-alphabet", "stray-bits", "non-ascii"])
def test_record_data_decodes_as_leniently_as_botocore_decodes_it(data):
    """The SIMD decoder keeps botocore's (the standard library's) leniency: characters outside the
    alphabet are skipped; what it refuses, both refuse (the page then goes to botocore)."""
    assert_same_outcome_as_botocore(
        answer({"Records": [{"SequenceNumber": "1", "Data": data, "PartitionKey": "k"}], "MillisBehindLatest": 0}))


@pytest.mark.parametrize("code, status", [("ExpiredIteratorException", 400),
                                          ("ProvisionedThroughputExceededException", 400),
                                          ("ResourceNotFoundException", 400), ("InternalFailure", 500)])
def test_error_answers_parse_as_botocore_parses_them(code, status):
    fast, generic = both(answer({"__type": code, "message": "no"}, status))
    assert fast == generic and fast["Error"]["Code"] == code


def test_other_operations_parse_as_botocore_parses_them():
    listing = {"Shards": [{"ShardId": "shardId-000000000000", "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "9"},
                           "SequenceNumberRange": {"StartingSequenceNumber": "1"}}]}
    fast, generic = both(answer(listing), LIST_SHARDS)
    assert fast == generic


def test_the_factory_gives_the_direct_parser_for_json_only():
    factory = GetRecordsParserFactory()
    assert type(factory.create_parser("json")) is GetRecordsParser
    assert not isinstance(factory.create_parser("rest-json"), GetRecordsParser)


class _Raw:
    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **_):
        yield self._body


def client_answering(status, body):
    """A consumer's client whose HTTP answers are ``(status, body)``, nothing sent anywhere."""
    client = make_kinesis_client("http://127.0.0.1:1", "us-east-1", retries=False, fast_get_records=True)
    raw = json.dumps(body).encode()
    client.meta.events.register(
        "before-send.kinesis.*",
        lambda request, **_: AWSResponse(request.url, status, dict(HEADERS), _Raw(raw)))
    return client


def test_a_client_gets_records_through_the_direct_path():
    records = client_answering(200, PAGE).get_records(ShardIterator="AAAA", Limit=10)["Records"]
    assert [r["Data"][:5] for r in records] == [b'{"v":', bytes(range(5)), b"", b"\xf3\x89\x9a\xc2k"]


@pytest.mark.parametrize("code", ["ExpiredIteratorException", "ProvisionedThroughputExceededException"])
def test_a_client_still_raises_botocores_client_error(code):
    with pytest.raises(ClientError) as raised:
        client_answering(400, {"__type": code, "message": "no"}).get_records(ShardIterator="AAAA")
    assert raised.value.response["Error"]["Code"] == code


def test_the_direct_path_needs_its_own_session():
    with pytest.raises(ValueError, match="session"):
        make_kinesis_client("http://127.0.0.1:1", fast_get_records=True, session=boto3.session.Session())
