"""The checkpoint store contract against a real Redis (Lua compare-and-set)."""

import importlib.util
from pathlib import Path

import pytest

from pistats.kinesis.checkpoint import OK, RedisCheckpointStore
from pistats.kinesis.ledger import Position

_spec = importlib.util.spec_from_file_location(
    "checkpoint_contract", Path(__file__).resolve().parents[2] / "unit" / "kinesis" / "test_checkpoint.py")
contract = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(contract)

pytestmark = pytest.mark.integration


@pytest.fixture
def store(redis_client, unique_name):
    return RedisCheckpointStore(redis_client, app_name=unique_name, stream="events")


@pytest.mark.parametrize("case", contract.CONTRACT, ids=lambda c: c.__name__)
def test_redis_store_contract(case, store):
    case(store)


def test_keys_are_namespaced_by_app_and_stream(redis_client, unique_name, store):
    other_app = RedisCheckpointStore(redis_client, app_name=unique_name + "b", stream="events")
    try:
        assert store.save("shardId-1", "a", Position(5), True, ended=False, now_ms=0, lease_ms=10) == OK
        assert store.key("shardId-1") == f"pistats:ckpt:{unique_name}:events:shardId-1"
        assert redis_client.hget(store.key("shardId-1"), "seq") == b"5"
        assert other_app.load("shardId-1") is None
    finally:
        redis_client.delete(other_app.key("shardId-1"))
