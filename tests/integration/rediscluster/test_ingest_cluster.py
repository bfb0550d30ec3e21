"""The ingest on a Redis Cluster: write keys made, listed and disabled with ``pistats keys``,
resolved by ``IngestService``, and idempotency marks answering a client's retry ``duplicate``."""

from __future__ import annotations

import json
import time

import pytest

from pistats.cli.main import main as pistats
from pistats.ingest.api import IngestRequest
from pistats.ingest.config import IngestConfig
from pistats.ingest.keys import key_digest
from pistats.ingest.service import build_service
from pistats.redisconn import key_slot

pytestmark = pytest.mark.integration


@pytest.fixture
def kinesis_client(kinesis_endpoint):
    import boto3

    return boto3.client("kinesis", endpoint_url=kinesis_endpoint, region_name="us-east-1")


@pytest.fixture
def stream(kinesis_client, unique_name):
    kinesis_client.create_stream(StreamName=unique_name, ShardCount=1)
    deadline = time.monotonic() + 30
    while kinesis_client.describe_stream_summary(StreamName=unique_name)["StreamDescriptionSummary"][
            "StreamStatus"] != "ACTIVE":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    yield unique_name
    kinesis_client.delete_stream(StreamName=unique_name, EnforceConsumerDeletion=True)


def records_in(kinesis_client, stream: str) -> int:
    shard = kinesis_client.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = kinesis_client.get_shard_iterator(StreamName=stream, ShardId=shard,
                                                 ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    return len(kinesis_client.get_records(ShardIterator=iterator, Limit=1000)["Records"])


def post(service, events, key):
    request = IngestRequest.build("POST", "/v1/events", {"Content-Type": "application/json", "X-Pistats-Key": key},
                                  json.dumps({"batch": events}).encode(), "203.0.113.77")
    response = service.handle(request)
    return response.status, response.body


def keys_command(capsys, *args) -> tuple[int, str, str]:
    status = pistats(["keys", *args])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("wait", ["", "?wait_replicas=1"])
def test_write_keys_and_idempotency_marks(stream, kinesis_endpoint, kinesis_client, cluster_url, cluster_client,
                                          cluster_prefix, capsys, wait):
    url = cluster_url + wait
    status, out, err = keys_command(capsys, "--redis-url", url, "--key-prefix", cluster_prefix, "create", "acme")
    assert status == 0, err
    key = out.strip()
    key_id = key_digest(key)[:12]
    # The record and the index are on slots of their own, written without a transaction.
    record, index = f"{cluster_prefix}:writekey:{key_digest(key)}", f"{cluster_prefix}:writekey-ids"
    assert cluster_client.hget(index, key_id).decode() == key_digest(key)
    assert cluster_client.hget(record, "client_id") == b"acme"
    assert key_slot(record) != key_slot(index)

    service = build_service(IngestConfig(stream=stream, endpoint_url=kinesis_endpoint, redis_url=url,
                                         key_prefix=cluster_prefix, key_cache_s=0))
    events = [{"event_id": f"evt-{n}", "type": "page_view", "property_id": "site-1", "user_id": f"u-{n % 7}",
               "timestamp": "2026-11-26T11:00:00Z"} for n in range(40)]
    status, body = post(service, events, key)
    assert (status, body["accepted"]) == (200, 40)
    status, body = post(service, events, key)  # the SDK's retry: every mark found, on whichever master
    assert status == 200 and body["accepted"] == 0 and body["duplicates"] == 40
    assert records_in(kinesis_client, stream) == 40

    status, out, _ = keys_command(capsys, "--redis-url", url, "--key-prefix", cluster_prefix, "list")
    assert status == 0 and key_id in out and "acme" in out
    assert keys_command(capsys, "--redis-url", url, "--key-prefix", cluster_prefix, "disable", key_id)[0] == 0
    assert post(service, [{**events[0], "event_id": "evt-new"}], key)[0] == 403


def test_an_unreachable_cluster_is_one_line(capsys):
    status, _, err = keys_command(capsys, "--redis-url", "redis+cluster://:s3cret@127.0.0.1:1/", "list")
    assert status == 1
    assert err.startswith("pistats keys: Redis unavailable at redis+cluster://:***@127.0.0.1:1/")
    assert "s3cret" not in err and "Traceback" not in err and len(err.splitlines()) == 1
