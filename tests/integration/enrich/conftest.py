import pytest
import redis as redis_lib


@pytest.fixture
def redis_client(redis_url):
    client = redis_lib.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def key_prefix(redis_client, unique_name):
    """A Redis key namespace of this test only; its keys are deleted afterwards."""
    prefix = f"pistats-test:{unique_name}"
    yield prefix
    keys = list(redis_client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        redis_client.delete(*keys)
