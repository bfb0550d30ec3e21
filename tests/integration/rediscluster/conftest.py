"""A local Redis Cluster (three masters, a replica each) for this package's tests, and clients of it.

The cluster is the tests' own, on free ports (tests/support/redis_cluster.py); it is stopped at
the end of the session. Tests keep apart by key prefix, as on the single Redis.
"""

from __future__ import annotations

import pytest

from pistats.redis_keys import delete_matching
from pistats.redisconn import connect
from tests.support.redis_cluster import start_cluster



@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def cluster_url(redis_cluster) -> str:
    return redis_cluster.url


@pytest.fixture
def cluster_client(cluster_url):
    client = connect(cluster_url)
    yield client
    client.close()


@pytest.fixture
def cluster_prefix(cluster_client, unique_name):
    """A key namespace of this test on the cluster; every key under it is deleted afterwards."""
    prefix = f"pistats-test:{unique_name}"
    yield prefix
    delete_matching(cluster_client, f"{prefix}:*")
