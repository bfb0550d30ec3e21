"""Where the registry's connections come from: one per Lambda container, or a pool.

Both hand out a psycopg connection through ``connection()`` (a context manager) and are built
from a :class:`~pistats.registry.config.RegistryConfig`; :class:`~pistats.registry.store.Registry`
takes either through its constructor.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from psycopg import pq

from pistats.registry.config import RegistryConfig


class SingleConnection:
    """One connection, opened on first use (not at import or construction) and kept for every
    later use; dropped when a use leaves it broken or mid-transaction, so the next use
    reconnects. For a Lambda container, which runs one invocation at a time: RDS Proxy in front
    multiplexes these connections, and nothing here pins them (no prepared statements, no
    session settings)."""

    def __init__(self, config: RegistryConfig, connect: Callable[..., psycopg.Connection] = psycopg.connect):
        self._config = config
        self._connect = connect
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect(self._config.url, **self._config.connect_kwargs())
            conn = self._conn
            try:
                yield conn
            finally:
                if conn.closed or conn.info.transaction_status != pq.TransactionStatus.IDLE:
                    self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def close(self) -> None:
        with self._lock:
            self._drop()


class PooledConnections:
    """A psycopg_pool pool, for the threaded ``pistats ingest-server``. Opened without waiting:
    the server starts even if PostgreSQL is slow to come up (``Registry.check`` says if it is
    not there). A connection returned broken is discarded by the pool and replaced."""

    def __init__(self, config: RegistryConfig):
        from psycopg_pool import ConnectionPool

        self._pool = ConnectionPool(
            config.url,
            kwargs=config.connect_kwargs(),
            min_size=config.pool_min,
            max_size=config.pool_max,
            timeout=config.pool_timeout_s,
            open=False,
            name="pistats-registry",
        )
        self._pool.open(wait=False)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with self._pool.connection() as conn:
            yield conn

    def close(self) -> None:
        self._pool.close()
