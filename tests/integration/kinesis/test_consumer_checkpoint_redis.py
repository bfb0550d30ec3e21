"""The checkpoint store contract against a real Redis (Lua compare-and-set, leases on its clock)."""

import importlib.util
import time
from pathlib import Path

import pytest

from pistats.kinesis.checkpoint import NOT_OWNER, OK, RedisCheckpointStore
from pistats.kinesis.ledger import Position

_spec = importlib.util.spec_from_file_location(
    "checkpoint_contract", Path(__file__).resolve().parents[2] / "unit" / "kinesis" / "test_checkpoint.py")
contract = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(contract)

pytestmark = pytest.mark.integration


@pytest.fixture
def store(redis_client, unique_name):
    return RedisCheckpointStore(redis_client, app_name=unique_name, stream="events")


class ServerClock:
    """The Redis server's clock, which the store compares leases on; advancing it means waiting."""

    def __init__(self, redis_client):
        self._redis = redis_client

    def __call__(self) -> int:
        seconds, micros = self._redis.time()
        return seconds * 1000 + micros // 1000

    def advance(self, ms: int) -> None:
        time.sleep(ms / 1000)


@pytest.mark.parametrize("case", contract.CONTRACT, ids=lambda c: c.__name__)
def test_redis_store_contract(case, store, redis_client):
    case(store, ServerClock(redis_client))


def test_leases_are_set_and_compared_on_the_server_clock_not_the_callers(store, redis_client):
    """Issue 13: a task whose clock lagged wrote leases already expired for the others, and a
    task whose clock ran ahead took leases still live: two owners of one shard."""
    clock, shard, lease = ServerClock(redis_client), "shardId-000000000007", 30_000
    now = clock()
    behind, ahead = now - 10 * 60_000, now + 10 * 60_000
    assert store.claim(shard, "lagging", now_ms=behind, lease_ms=lease)
    assert now + lease <= store.load(shard).lease_until_ms <= clock() + lease
    assert not store.claim(shard, "on-time", now_ms=now, lease_ms=lease)
    assert not store.claim(shard, "ahead", now_ms=ahead, lease_ms=lease)
    assert store.save(shard, "ahead", Position(1), True, ended=False, now_ms=ahead, lease_ms=lease) == NOT_OWNER
    assert store.save(shard, "lagging", Position(1), True, ended=False, now_ms=behind, lease_ms=lease) == OK
    assert store.load(shard).owner == "lagging"


def test_keys_are_namespaced_by_app_and_stream(redis_client, unique_name, store):
    other_app = RedisCheckpointStore(redis_client, app_name=unique_name + "b", stream="events")
    try:
        assert store.save("shardId-1", "a", Position(5), True, ended=False, now_ms=0, lease_ms=10) == OK
        assert store.key("shardId-1") == f"pistats:ckpt:{unique_name}:events:shardId-1"
        assert redis_client.hget(store.key("shardId-1"), "seq") == b"5"
        assert other_app.load("shardId-1") is None
    finally:
        redis_client.delete(other_app.key("shardId-1"))
