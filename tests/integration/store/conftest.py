"""Stores for integration tests: the real ClickHouse server (a fresh database per test) and chdb."""

import sys
from pathlib import Path

import pytest

from pistats.store.backends import open_store

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def server_store_url(clickhouse_url, unique_name):
    """A URL of the real server naming a database only this test uses; dropped afterwards."""
    url = clickhouse_url.rsplit("/", 1)[0] + f"/{unique_name}"
    yield url
    store = open_store(url, env={})
    store.execute(f"DROP DATABASE IF EXISTS {unique_name}")
    store.close()


@pytest.fixture
def chdb_store_url(tmp_path):
    return f"chdb://{tmp_path}/chdb"


@pytest.fixture(params=["server", "chdb"])
def store_url(request):
    return request.getfixturevalue(f"{request.param}_store_url")


@pytest.fixture
def store(store_url):
    """An opened store with no schema yet."""
    opened = open_store(store_url, env={})
    yield opened
    opened.close()
