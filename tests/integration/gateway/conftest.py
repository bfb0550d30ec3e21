"""Gateway fixtures: nginx and the ingest's gunicorn started by `pistats services start gateway`.

Each gateway is this test's own: a state folder of its own (short: the gunicorn socket's path
must fit in 108 bytes), a free port, a moto stream and a Redis key prefix of its own. The
fixture stops what it started with `pistats services stop gateway` and removes the folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import boto3
import pytest

from pistats.ingest.keys import WriteKeyStore
from tests.support.gateway import Gateway, free_port


@pytest.fixture
def start_gateway(moto_endpoint, kinesis_endpoint, redis_url, key_prefix):
    """``start_gateway(faithful=False, **env)``: a running gateway with extra environment
    variables (e.g. ``PISTATS_GATEWAY_RATE="20"``); stopped, its stream deleted, after the test.
    It puts into moto (fast), or with ``faithful`` into kinesis-local: tests that count what was
    stored under concurrent puts use kinesis-local: moto's in-memory shards are not safe for
    concurrent writers (its server is threaded, its sequence numbers are not taken atomically),
    and an accepted record went missing there in the reload test on a loaded machine."""
    started: list[Gateway] = []

    def start(faithful: bool = False, **extra: str) -> Gateway:
        endpoint = kinesis_endpoint if faithful else moto_endpoint
        kinesis = boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1")
        stream = f"gw-{uuid.uuid4().hex[:10]}"
        kinesis.create_stream(StreamName=stream, ShardCount=2)
        deadline = time.monotonic() + 30
        while kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
            assert time.monotonic() < deadline, f"stream {stream} not ACTIVE after 30 s"
            time.sleep(0.05)
        state = Path(tempfile.mkdtemp(prefix="pgw-"))
        env = {
            **os.environ,
            "PISTATS_STATE_DIR": str(state),
            "PISTATS_GATEWAY_PORT": str(free_port()),
            "PISTATS_INGEST_STREAM": stream,
            "PISTATS_INGEST_ENDPOINT_URL": endpoint,
            "PISTATS_REDIS_URL": redis_url,
            "PISTATS_INGEST_KEY_PREFIX": key_prefix,
            "PISTATS_INGEST_KEY_CACHE_S": "0",
            "PISTATS_GATEWAY_WORKERS": "2",
            "PISTATS_GATEWAY_THREADS": "4",
            **extra,
        }
        env.pop("PISTATS_REGISTRY_URL", None)
        gateway = Gateway(int(env["PISTATS_GATEWAY_PORT"]), state, stream, kinesis, env)
        started.append(gateway)
        result = gateway.services("start")
        assert result.returncode == 0, result.stdout + result.stderr
        return gateway

    yield start
    for gateway in started:
        result = gateway.services("stop")
        assert result.returncode == 0, result.stderr
        gateway.kinesis.delete_stream(StreamName=gateway.stream)
        shutil.rmtree(gateway.state, ignore_errors=True)


@pytest.fixture
def write_keys(redis_client, key_prefix):
    """``write_keys(n)``: n fresh enabled keys of client ``acme``."""
    store = WriteKeyStore(redis_client, key_prefix, cache_seconds=0)
    return lambda n=1: [store.create("acme")[0] for _ in range(n)]
