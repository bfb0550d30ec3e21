"""Ingest integration fixtures: a fresh kinesis-local stream and a private Redis key prefix."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import urllib.error
import urllib.request

import boto3
import pytest

from pistats.contract import decode_record
from pistats.ingest.config import IngestConfig
from pistats.ingest.keys import WriteKeyStore
from pistats.ingest.service import build_service
from pistats.ingest.wsgi import make_ingest_server


@pytest.fixture
def kinesis_client(kinesis_endpoint):
    return boto3.client("kinesis", endpoint_url=kinesis_endpoint, region_name="us-east-1")


@pytest.fixture
def ingest_stream(kinesis_client, unique_name):
    """A two-shard stream of its own, deleted afterwards."""
    kinesis_client.create_stream(StreamName=unique_name, ShardCount=2)
    deadline = time.monotonic() + 30
    while kinesis_client.describe_stream_summary(StreamName=unique_name)["StreamDescriptionSummary"][
        "StreamStatus"
    ] != "ACTIVE":
        assert time.monotonic() < deadline, f"stream {unique_name} not ACTIVE after 30 s"
        time.sleep(0.05)
    yield unique_name
    kinesis_client.delete_stream(StreamName=unique_name, EnforceConsumerDeletion=True)


@pytest.fixture
def ingest_config(ingest_stream, kinesis_endpoint, redis_url, key_prefix):
    return IngestConfig(
        stream=ingest_stream,
        endpoint_url=kinesis_endpoint,
        redis_url=redis_url,
        key_prefix=key_prefix,
        key_cache_s=0,
        backoff_base_ms=5,
        backoff_max_ms=20,
    )


@pytest.fixture
def make_service(ingest_config, kinesis_client, redis_client):
    """``make_service(kinesis_client=None, **config_overrides)``: a service on the real services."""

    def make(kinesis_client_override=None, **overrides):
        config = dataclasses.replace(ingest_config, **overrides)
        redis = None if "redis_url" in overrides else redis_client
        return build_service(config, kinesis_client=kinesis_client_override or kinesis_client, redis=redis)

    return make


@pytest.fixture
def key_store(redis_client, key_prefix):
    return WriteKeyStore(redis_client, key_prefix, cache_seconds=0)


@pytest.fixture
def write_key(key_store):
    """A fresh enabled write key of client ``acme``."""
    key, _ = key_store.create("acme")
    return key


def read_stream(client, stream: str) -> list[tuple[str, dict]]:
    """Every record of the stream as (partition key, decoded record), shard by shard."""
    found = []
    for shard in client.list_shards(StreamName=stream)["Shards"]:
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = client.get_records(ShardIterator=iterator, Limit=1000)
            found += [(r["PartitionKey"], decode_record(r["Data"])) for r in response["Records"]]
            if not response["Records"] and response.get("MillisBehindLatest", 0) == 0:
                break
            iterator = response.get("NextShardIterator")
    return found


@pytest.fixture
def stream_records(kinesis_client, ingest_stream):
    return lambda: read_stream(kinesis_client, ingest_stream)


class HttpClient:
    def __init__(self, base_url: str):
        self.base_url = base_url

    def post(self, body, key=None, content_type="application/json", method="POST", path="/v1/events", headers=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data if method != "GET" else None, method=method)
        if content_type:
            request.add_header("Content-Type", content_type)
        if key is not None:
            request.add_header("X-Pistats-Key", key)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw, status, response_headers = response.read(), response.status, response.headers
        except urllib.error.HTTPError as error:
            raw, status, response_headers = error.read(), error.code, error.headers
        return status, (json.loads(raw) if raw else None), response_headers


@pytest.fixture
def http_server(make_service):
    """``http_server(service)`` serves it on a free 127.0.0.1 port; returns an HttpClient."""
    servers = []

    def start(service=None):
        server = make_ingest_server(service or make_service(), "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return HttpClient(f"http://127.0.0.1:{server.server_port}")

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
