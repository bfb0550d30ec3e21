"""Kinesis integration fixtures."""

import pytest
import redis


@pytest.fixture
def redis_client(redis_url, unique_name):
    """A Redis client; the test's checkpoints (app or stream named ``unique_name``) go afterwards."""
    client = redis.Redis.from_url(redis_url)
    yield client
    for key in client.scan_iter(f"pistats:ckpt:{unique_name}*"):
        client.delete(key)
    client.close()
