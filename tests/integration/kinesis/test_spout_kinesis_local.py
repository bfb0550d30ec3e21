"""The real KinesisSpout (`streamparse_run spouts.kinesis.KinesisSpout`) over multilang, reading
kinesis-local and checkpointing in Redis; its worker going away, a restart, and a SIGTERM."""

from __future__ import annotations

import signal
import time

import pytest

from pistats.kinesis.client import make_kinesis_client
from tests.support.multilang_spout import MultilangSpout, records_of

pytestmark = pytest.mark.integration
SHARD = "shardId-000000000000"


@pytest.fixture
def stream(kinesis_endpoint, unique_name):
    client = make_kinesis_client(kinesis_endpoint)
    client.create_stream(StreamName=unique_name, ShardCount=1)
    while client.describe_stream_summary(StreamName=unique_name)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        time.sleep(0.05)
    yield client, unique_name
    client.delete_stream(StreamName=unique_name, EnforceConsumerDeletion=True)


def spout_conf(stream, endpoint, redis_url, app):
    return {"topology.name": "t", "topology.debug": False, "topology.max.spout.pending": 1000,
            "pistats.kinesis.stream": stream, "pistats.kinesis.region": "us-east-1",
            "pistats.kinesis.endpoint_url": endpoint, "pistats.kinesis.app_name": app,
            "pistats.kinesis.redis_url": redis_url, "pistats.kinesis.start_position": "TRIM_HORIZON",
            "pistats.kinesis.checkpoint_interval_ms": 200, "pistats.kinesis.lease_ms": 1500,
            "pistats.kinesis.idle_poll_ms": 100, "pistats.kinesis.max_uncommitted": 100}


def test_spout_emits_acks_checkpoints_and_resumes_after_a_kill(stream, kinesis_endpoint, redis_url, redis_client,
                                                               unique_name):
    client, name = stream
    response = client.put_records(StreamName=name, Records=[
        {"PartitionKey": f"user{i}", "Data": f"r{i}".encode()} for i in range(4)])
    seqs = [r["SequenceNumber"] for r in response["Records"]]
    conf = spout_conf(name, kinesis_endpoint, redis_url, unique_name)
    key = f"pistats:ckpt:{unique_name}:{name}:{SHARD}"

    spout = MultilangSpout("spouts.kinesis.KinesisSpout", {**conf, "pistats.kinesis.buckets": 1,
                                                                      "pistats.kinesis.batch_records": 1})
    try:
        assert spout.command("activate") == []
        emits = spout.next_until(4)  # one record per batch tuple here, to ack and fail them one by one
        records = records_of(emits)
        assert [r[1] for r in records] == seqs
        assert [r[5] for r in records] == ["r0", "r1", "r2", "r3"]  # UTF-8 travels as text
        for e in emits[:2]:
            spout.command("ack", id=e["id"])
        spout.command("fail", id=emits[2]["id"])
        replay = spout.next_until(1)
        assert records_of(replay) == [records[2]]
        spout.command("ack", id=replay[0]["id"])
        deadline = time.time() + 5
        while redis_client.hget(key, "seq") != seqs[2].encode():
            assert time.time() < deadline, "checkpoint not written"
            spout.command("next")
            time.sleep(0.05)
    finally:
        spout.close()  # Storm's worker goes away: stdin ends, r3 is still in flight
    assert spout.proc.returncode == 2
    assert redis_client.hget(key, "owner") == b""  # lease released: no wait for its expiry
    assert redis_client.hget(key, "seq") == seqs[2].encode()

    client.put_records(StreamName=name, Records=[{"PartitionKey": "user9", "Data": b"r4"}])
    again = MultilangSpout("spouts.kinesis.KinesisSpout", conf)
    try:
        emits = again.next_until(2)
        assert [r[5] for r in records_of(emits)] == ["r3", "r4"]
        for e in emits:
            again.command("ack", id=e["id"])
        again.proc.send_signal(signal.SIGTERM)  # Storm kills the task: a last checkpoint, then exit
        assert again.proc.wait(10) == 128 + signal.SIGTERM
    finally:
        again.close()
    assert redis_client.hget(key, "owner") == b""
    assert int(redis_client.hget(key, "seq")) > int(seqs[3])  # r4's sequence number
