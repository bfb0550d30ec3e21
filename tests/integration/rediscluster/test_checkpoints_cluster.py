"""Checkpoints and leases on a Redis Cluster: the store's contract (with and without waiting for
replicas), and two consumers on kinesis-local where the second takes a shard over once the
first one's lease lapsed, from its checkpoint, and the first is fenced off."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

from pistats.kinesis.checkpoint import RedisCheckpointStore
from pistats.kinesis.config import KinesisConfig
from pistats.kinesis.consumer import Consumer
from pistats.kinesis.ledger import Position
from pistats.testing.faults import FaultyCheckpointStore
from tests.support.kinesis_consumer import FAST, collect, consumer_client, wait_active, wait_for

pytestmark = pytest.mark.integration

_spec = importlib.util.spec_from_file_location(
    "checkpoint_contract", Path(__file__).resolve().parents[2] / "unit" / "kinesis" / "test_checkpoint.py")
contract = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(contract)

@pytest.fixture
def app(cluster_client, unique_name):
    """The test's application name; its checkpoints are deleted afterwards."""
    yield unique_name
    keys = list(cluster_client.scan_iter(match=f"pistats:ckpt:{unique_name}:*"))
    if keys:
        cluster_client.delete(*keys)


class ServerClock:
    """The clock leases are compared on: the server's (of the shard's master)."""

    def __init__(self, client, key: str):
        self._client, self._node = client, client.get_node_from_key(key)

    def __call__(self) -> int:
        seconds, micros = self._client.time(target_nodes=self._node)
        return seconds * 1000 + micros // 1000

    def advance(self, ms: int) -> None:
        time.sleep(ms / 1000)


@pytest.mark.parametrize("wait_replicas", [0, 1])
@pytest.mark.parametrize("case", contract.CONTRACT, ids=lambda c: c.__name__)
def test_the_store_contract_on_a_cluster(case, wait_replicas, cluster_client, app):
    store = RedisCheckpointStore(cluster_client, app, "events", wait_replicas=wait_replicas)
    case(store, ServerClock(cluster_client, store.key("shardId-000000000000")))


def test_shards_of_one_stream_spread_over_the_masters(cluster_client, app, redis_cluster):
    store = RedisCheckpointStore(cluster_client, app, "events", wait_replicas=1)
    for n in range(12):
        assert store.claim(f"shardId-{n:012d}", "task-0", now_ms=0, lease_ms=30_000)
    nodes = {cluster_client.get_node_from_key(store.key(f"shardId-{n:012d}")).port for n in range(12)}
    assert nodes == set(redis_cluster.masters())


@pytest.fixture
def kinesis(kinesis_endpoint):
    return consumer_client(kinesis_endpoint)


@pytest.fixture
def stream(kinesis, unique_name):
    kinesis.create_stream(StreamName=unique_name, ShardCount=2)
    wait_active(kinesis, unique_name, timeout=30)
    yield unique_name
    kinesis.delete_stream(StreamName=unique_name, EnforceConsumerDeletion=True)


def test_a_second_consumer_takes_over_after_the_first_ones_lease_lapsed(
        kinesis, stream, kinesis_endpoint, cluster_url, app):
    from pistats.redisconn import connect

    config = KinesisConfig(stream=stream, endpoint_url=kinesis_endpoint, app_name=app,
                           redis_url=cluster_url + "?wait_replicas=1", **FAST)
    records = [(f"user{n}", f"r{n}".encode()) for n in range(20)]
    response = kinesis.put_records(StreamName=stream, Records=[{"PartitionKey": k, "Data": d} for k, d in records])
    assert response["FailedRecordCount"] == 0
    by_shard: dict[str, list[int]] = {}
    for entry in response["Records"]:
        by_shard.setdefault(entry["ShardId"], []).append(int(entry["SequenceNumber"]))
    assert len(by_shard) == 2

    first_store = FaultyCheckpointStore(RedisCheckpointStore(connect(cluster_url), app, stream, wait_replicas=1))
    first = Consumer(config, kinesis, first_store, owner="first")
    first.start()
    second = None
    try:
        # The first consumer acks the first three records of each shard and holds the rest.
        held = {shard: set(seqs[3:]) for shard, seqs in by_shard.items()}
        seen = collect(first, 20, verdict=lambda d: "hold" if d.record.seq in held[d.record.shard_id] else "ack")
        assert sorted(d.record.data for d in seen) == sorted(d for _, d in records)
        reader = RedisCheckpointStore(connect(cluster_url), app, stream)
        for shard, seqs in by_shard.items():
            wait_for(lambda: getattr(reader.load(shard), "position", None) == Position(seqs[2]), timeout=15.0)

        first_store.down()  # cut off from Redis: it can neither renew its leases nor release them
        second = Consumer(config, kinesis, RedisCheckpointStore(connect(cluster_url), app, stream, wait_replicas=1),
                          owner="second")
        second.start()
        assert collect(second, 1, timeout=1.0) == []  # the first one's leases are still live
        taken_over = collect(second, 14, timeout=20.0)
        # Exactly the records the first consumer never acked, in shard order, none of the acked ones.
        assert {(d.record.shard_id, d.record.seq) for d in taken_over} == {
            (shard, seq) for shard, seqs in held.items() for seq in seqs}
        for shard in by_shard:
            numbers = [d.record.seq for d in taken_over if d.record.shard_id == shard]
            assert numbers == sorted(numbers)
        wait_for(lambda: all(reader.load(shard).position == Position(seqs[-1]) and reader.load(shard).owner
                             == "second" for shard, seqs in by_shard.items()), timeout=15.0)

        first_store.up()  # back: its writes meet the second one's leases, and it lets the shards go
        wait_for(lambda: all(state != "reading" for state in first.shard_states().values()), timeout=15.0)
        for shard, seqs in by_shard.items():
            assert (reader.load(shard).position, reader.load(shard).owner) == (Position(seqs[-1]), "second")
    finally:
        first.close()
        if second is not None:
            second.close()
