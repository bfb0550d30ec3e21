"""Shared fixtures: the real local services, by URL.

Integration tests need Redis, ClickHouse, kinesis-local and PostgreSQL running on 127.0.0.1 (``make test``
and ``.ci/run`` start them through ``pistats services start``). A missing service is a test
failure, never a skip: a green run means the real services were exercised.
"""

from __future__ import annotations

import os
import uuid

import pytest

pytest.register_assert_rewrite("tests.support")

from pistats.localenv.services import Ports, port_open  # noqa: E402

PORTS = Ports.from_env()


def _require(port: int, name: str) -> None:
    if not port_open(port):
        pytest.fail(f"{name} is not listening on 127.0.0.1:{port}; run `pistats services start` first")


@pytest.fixture(scope="session")
def redis_url() -> str:
    _require(PORTS.redis, "Redis")
    return os.environ.get("PISTATS_TEST_REDIS_URL", f"redis://127.0.0.1:{PORTS.redis}/0")


@pytest.fixture(scope="session")
def clickhouse_url() -> str:
    _require(PORTS.clickhouse, "ClickHouse server")
    return f"clickhouse://default@127.0.0.1:{PORTS.clickhouse}/default"


@pytest.fixture(scope="session")
def registry_url() -> str:
    """The local PostgreSQL's registry database, migrated to the latest schema once per session.
    Tests keep apart by client id (``unique_name``), not by database."""
    import psycopg

    from pistats.registry.migrations import migrate

    _require(PORTS.postgres, "PostgreSQL")
    url = os.environ.get("PISTATS_TEST_REGISTRY_URL", f"postgresql://pistats@127.0.0.1:{PORTS.postgres}/pistats")
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
    return url


@pytest.fixture(scope="session")
def kinesis_endpoint() -> str:
    """kinesis-local (kinesis-mock): the faithful emulator."""
    _require(PORTS.kinesis, "kinesis-local")
    return f"http://127.0.0.1:{PORTS.kinesis}"


@pytest.fixture(scope="session")
def moto_endpoint():
    """A moto server for this test session: fast, less faithful than kinesis-local."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def _aws_test_credentials(monkeypatch):
    """Emulators accept any credentials; never let a test reach a real AWS account."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def unique_name() -> str:
    """A name no other test (or concurrent run) uses: for streams, key prefixes, databases."""
    return f"t{uuid.uuid4().hex[:12]}"
