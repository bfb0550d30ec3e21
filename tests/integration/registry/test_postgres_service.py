"""``pistats services start|stop postgres`` on a port and a state folder of the test's own: the
cluster made (as the postgres user when root), the registry's role and database there, a fast stop.

pytest's temporary folders are private to root (0700): as root this also takes the path where the
postgres user cannot reach the state folder and the data lives under /var/lib/pistats."""

from __future__ import annotations

import os
import shutil
import socket

import psycopg

from pistats.localenv.services import Ports, port_open, postgres_service
from pistats.registry.migrations import LATEST_VERSION, migrate, schema_version


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_start_initialise_connect_stop(tmp_path, monkeypatch):
    monkeypatch.setenv("PISTATS_STATE_DIR", str(tmp_path / ".pistats"))
    port = free_port()
    service = postgres_service(Ports(postgres=port))
    assert service.start() is True
    data = tmp_path / ".pistats" / "postgres" / "data"
    try:
        assert service.start() is False  # already running: left alone
        if os.geteuid() == 0:
            assert data.resolve().owner() == "postgres"
        with psycopg.connect(f"postgresql://pistats@127.0.0.1:{port}/pistats", autocommit=True) as conn:
            assert conn.execute("SELECT current_user, current_database()").fetchone() == ("pistats", "pistats")
            migrate(conn)
            assert schema_version(conn) == LATEST_VERSION
        assert service.version().startswith("15.")
    finally:
        assert service.stop() is True
    assert not port_open(port)
    assert service.start() is True  # a second start reuses the cluster
    service.stop()
    if not data.resolve().is_relative_to(tmp_path):
        shutil.rmtree(data.resolve())
