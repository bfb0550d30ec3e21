"""What a store is, whatever its backend: the :class:`Store` interface and the errors it raises.

The schema, the sink and the report work against this interface; ``pistats.store.backends``
implements it for a ClickHouse server and for embedded chdb. This module imports neither, so the
backends can take their tables from ``pistats.store.schema`` while the schema's migrations take
a ``Store``, without the two importing each other.

Every failure of a backend (connection refused, timeout, server error) surfaces as
:class:`StoreError`, an infrastructure error: the sink retries it and finally fails the tuples.
An insert the engine refuses for its rows' data (``pistats.store.refusal``) raises
:class:`StoreRefused` instead, which the sink does not retry: it finds the refused rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from pistats.store.config import StoreURL
from pistats.store.features import ServerFeatures


class StoreError(Exception):
    """The store could not do what was asked (unreachable, timed out, refused). Never holds secrets."""


class StoreRefused(StoreError):
    """The engine refused an insert for the data it carries (``pistats.store.refusal.is_refusal``):
    sending the same rows again fails the same way. ``detail`` is the engine's message on one
    line, without the store's URL."""

    def __init__(self, message: str, detail: str, code: int | None):
        super().__init__(message)
        self.detail = detail
        self.code = code


# An insert whose rows are already encoded for the backend: call it with the batch's
# deduplication token to send it (again, on a retry). Encoding is CPU work in the caller's
# thread; sending is mostly waiting (the server, or chdb's engine, which releases the GIL), which
# is what lets the sink run it on a writer thread while it encodes the next batch.
SendInsert = Callable[[str | None], None]


class Store(Protocol):
    url: StoreURL
    database: str
    features: ServerFeatures

    @property
    def server_version(self) -> str: ...

    def ensure_database(self) -> None: ...

    def execute(self, sql: str) -> None: ...

    def query(self, sql: str) -> list[tuple]: ...

    def prepare_insert(self, table: str, rows: Sequence[tuple]) -> SendInsert: ...

    def insert_events(self, rows: Sequence[tuple], dedup_token: str | None) -> None: ...

    def close(self) -> None: ...
