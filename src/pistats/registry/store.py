"""The subscriber registry on PostgreSQL: what the ingest writes, the push sender marks, operators read.

A request's registry events become one :class:`~pistats.registry.changes.Plan`, written by
:meth:`Registry.apply` as one call of the ``registry_write`` function (migrations.py) inside one
transaction, the whole pipeline sent at once: one round trip whatever the batch size. The
function runs three statements, each seeing the ones before (READ COMMITTED takes a snapshot
per statement):

1. upsert the subscribers (row locks, in key order: a writer touching the same users waits
   for the other to commit, then reads what it wrote);
2. upsert the subscriptions, each taking its owner's ``unsubscribed_at`` from statement 1;
3. for the users who unsubscribed without a token, copy their ``unsubscribed_at`` onto every
   subscription they own (``status`` is a generated column and follows).

Each ``ON CONFLICT ... DO UPDATE ... WHERE`` compares the keys of :mod:`pistats.registry.rules`,
so a change older than the row's (by event time, then the tie-break) changes nothing. Rows are
sent as binary arrays, one per column: the server reads each element's bytes as they are (JSON
cost it a fifth of its time in lexing and timestamp parsing), and :mod:`pistats.registry.arrays`
writes them (text arrays, which psycopg escapes element by element, cost ten times as much, and
its binary list dumper three times as much).

Failures are :class:`~pistats.registry.errors.RegistryUnavailable` (the ingest answers 503 and
puts nothing).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import orjson
import psycopg
from psycopg.generators import fetch_many, send
from psycopg.pq import ExecStatus

from pistats.contract import Problem
from pistats.registry.arrays import (
    BYTEA_ARRAY_OID,
    TEXT_ARRAY_OID,
    TEXT_OID,
    TIMESTAMPTZ_ARRAY_OID,
    TIMESTAMPTZ_OID,
    bytea_array,
    text_array,
    timestamptz_array,
)
from pistats.registry.changes import Plan, plan, registry_problems, token_digest
from pistats.registry.errors import RegistrySchemaError, RegistryUnavailable
from pistats.registry.migrations import LATEST_VERSION, schema_version

log = logging.getLogger(__name__)

FATAL_ERROR, PIPELINE_SYNC = ExecStatus.FATAL_ERROR, ExecStatus.PIPELINE_SYNC

LAST_ERROR_MAX = 1000


def _failure(error: BaseException, where: str) -> RegistryUnavailable:
    """The error class and SQLSTATE; a message only from errors without one (the client's own,
    such as a refused connection), as a server message can quote a row."""
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate:
        detail = f" (SQLSTATE {sqlstate})"
    else:
        first_line = (str(error).splitlines() or [""])[0]
        detail = f": {first_line}" if first_line else ""
    return RegistryUnavailable(f"{where}: {type(error).__name__}{detail}")


def _json(rows: list) -> str:
    return orjson.dumps(rows).decode()


# registry_write's rows, one binary array per column, written by pistats.registry.arrays (the
# server reads each element's bytes as they are; psycopg's own list dumper cost three times as much
# on the client); _WRITE_TYPES names each array's type. The subscriptions' arrays are NULL when a
# plan has none. The last parameter is the welcome window's start (text; NULL: welcomes off).
_WRITE = ("SELECT * FROM registry_write($1, " + ", ".join(f"${n}" for n in range(2, 21)) + ")").encode()
_SET_TIMEOUT = b"SELECT set_config('statement_timeout', $1, true)"
_NO_SUBSCRIPTIONS = (None,) * 9


def _columns(changes: Plan, encoding: str = "utf-8") -> tuple:
    """registry_write's 18 arrays, encoded (text in the connection's ``encoding``): the
    subscribers' 9 columns, then the subscriptions' 9."""
    def texts(values: list) -> bytes:
        return text_array(values, encoding)

    subscribers = changes.subscribers
    contexts = [s.context for s in subscribers]
    columns = (
        texts([s.property_id for s in subscribers]), texts([s.user_id for s in subscribers]),
        timestamptz_array([s.registered_at for s in subscribers]),
        timestamptz_array([s.first_seen_at for s in subscribers]),
        timestamptz_array([s.last_seen_at for s in subscribers]),
        texts([c.locale if c else None for c in contexts]), texts([c.timezone if c else None for c in contexts]),
        timestamptz_array([c.at if c else None for c in contexts]),
        timestamptz_array([s.unsubscribed_at for s in subscribers]),
    )
    subscriptions = changes.subscriptions
    if not subscriptions:
        return columns + _NO_SUBSCRIPTIONS
    owners = [s.owner for s in subscriptions]
    states = [s.state for s in subscriptions]
    return columns + (
        texts([s.property_id for s in subscriptions]), bytea_array([s.digest for s in subscriptions]),
        texts([s.token for s in subscriptions]),
        texts([o.user_id for o in owners]), texts([o.platform for o in owners]),
        timestamptz_array([o.at for o in owners]), texts([s.status for s in states]),
        timestamptz_array([s.at for s in states]), texts([s.last_error for s in states]),
    )


# The parameter types of registry_write after its client id: the arrays _columns returns (NULL
# arrays, when a plan has no subscriptions, keep their type), then the welcome window's start.
_WRITE_TYPES = ([TEXT_ARRAY_OID, TEXT_ARRAY_OID] + [TIMESTAMPTZ_ARRAY_OID] * 3 + [TEXT_ARRAY_OID, TEXT_ARRAY_OID]
                + [TIMESTAMPTZ_ARRAY_OID] * 2 + [TEXT_ARRAY_OID, BYTEA_ARRAY_OID, TEXT_ARRAY_OID, TEXT_ARRAY_OID,
                                                  TEXT_ARRAY_OID, TIMESTAMPTZ_ARRAY_OID, TEXT_ARRAY_OID,
                                                  TIMESTAMPTZ_ARRAY_OID, TEXT_ARRAY_OID, TIMESTAMPTZ_OID])
_WRITE_FORMATS = [0] + [1] * 18 + [0]  # the client id and the window's start as text, the arrays binary


def _exchange(pgconn, queries: int):
    """psycopg's wait protocol: send what the pipeline holds, then read each query's results and
    the Sync's. Returns one result per query (its error, or PIPELINE_ABORTED after an earlier
    error, or its rows)."""
    yield from send(pgconn)
    results = []
    for _ in range(queries):
        results.append((yield from fetch_many(pgconn))[-1])
    sync = yield from fetch_many(pgconn)
    if [r.status for r in sync] != [PIPELINE_SYNC]:
        raise psycopg.OperationalError("registry write: the pipeline did not end with its Sync")
    return results


@dataclass(frozen=True)
class Written:
    """What :meth:`Registry.write` wrote: the request's ``plan``; ``activated``, the subscriptions
    the write made ``active`` that were not active before (a new token, or one a newer subscribe
    brought back from unsubscribed or invalid); ``welcome_owed``, the subscriptions of its
    subscribes that are active and owed their property's welcome (asked for with
    ``welcome_since``): the property has a welcome campaign with no send to the token yet, and
    the write activated it or it was activated at or after ``welcome_since`` (a retry whose first
    attempt activated the token but failed before its welcome was claimed). Both as
    (property_id, token_digest) pairs. A replay, or a subscribe refreshing an active token,
    activates nothing. Two writers racing on one token may both report it: the welcome's ledger
    claims at most once per token anyway."""

    plan: Plan
    activated: tuple[tuple[str, bytes], ...] = ()
    welcome_owed: tuple[tuple[str, bytes], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.plan)


@dataclass(frozen=True)
class InvalidMark:
    """The push sender's report that a token no longer works: ``at`` is when it found out,
    ``error`` what the push service said (not the token: a copy of it in the text is masked)."""

    client_id: str
    property_id: str
    token: str
    error: str
    at: datetime


@dataclass(frozen=True)
class SubscriberRow:
    client_id: str
    property_id: str
    user_id: str
    registered_at: datetime | None
    first_seen_at: datetime
    last_seen_at: datetime
    locale: str | None
    timezone: str | None
    unsubscribed_at: datetime | None


@dataclass(frozen=True)
class SubscriptionRow:
    """A push subscription as shown to operators: the token only as ``token_hash``."""

    client_id: str
    property_id: str
    user_id: str
    token_hash: str
    platform: str
    status: str
    status_changed_at: datetime
    created_at: datetime
    updated_at: datetime
    last_error: str | None


def token_hash(token: str) -> str:
    """How a token is shown: the first 12 hex digits of its SHA-256."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:12]


def _mask(error: str, token: str) -> str:
    text = error.replace(token, "<token>") if token else error
    return text.replace("\x00", "\ufffd")[:LAST_ERROR_MAX] or "unknown error"


class Registry:
    """Writes and reads the registry through ``connections`` (a SingleConnection or a
    PooledConnections); ``statement_timeout_ms`` bounds each write (0: the server's default).

    Thread-safe as far as ``connections`` is.
    """

    def __init__(self, connections, *, statement_timeout_ms: int = 5000, attempts: int = 3,
                 redacted_url: str = "registry"):
        self._connections = connections
        self.redacted_url = redacted_url  # for messages
        self._timeout = str(statement_timeout_ms) if statement_timeout_ms else None
        self._attempts = attempts

    @classmethod
    def for_lambda(cls, config) -> "Registry":
        from pistats.registry.connections import SingleConnection

        return cls(SingleConnection(config), statement_timeout_ms=config.statement_timeout_ms,
                   redacted_url=config.redacted_url)

    @classmethod
    def pooled(cls, config) -> "Registry":
        from pistats.registry.connections import PooledConnections

        return cls(PooledConnections(config), statement_timeout_ms=config.statement_timeout_ms,
                   redacted_url=config.redacted_url)

    def close(self) -> None:
        self._connections.close()

    # --- the ingest ----------------------------------------------------------------------

    @staticmethod
    def problems(client_id: str, event: dict) -> list[Problem]:
        """Why a valid event cannot be written here (see changes.registry_problems)."""
        return registry_problems(client_id, event)

    @property
    def connections(self):
        """The connections this registry writes through (the welcome's ledger shares them)."""
        return self._connections

    def write(self, client_id: str, events: Iterable[dict], received_at: datetime, *,
              checked: bool = False, welcome_since: datetime | None = None) -> Written:
        """Write the registry events among ``events`` (valid, checked by :meth:`problems`:
        ValueError for one that was not, unless ``checked`` says the caller asked
        :meth:`problems` of each already, as the ingest does); returns the plan written, the
        subscriptions it activated and, with ``welcome_since`` (the welcome window's start, an
        aware datetime; None: no welcomes), those owed a welcome (:class:`Written`, false when
        nothing was a registry event). Nothing is sent when none of them is a registry event."""
        events = list(events)
        if not checked:
            for event in events:
                if problems := registry_problems(client_id, event):
                    raise ValueError(f"event {event.get('event_id')!r} cannot be stored: {problems[0].field} "
                                     f"{problems[0].problem}")
        if welcome_since is not None and welcome_since.tzinfo is None:
            raise ValueError("welcome_since must be timezone-aware")
        changes = plan(client_id, events, received_at)
        if not changes:
            return Written(changes)
        activated, welcome_owed = self.apply(changes, welcome_since)
        return Written(changes, activated, welcome_owed)

    def apply(self, changes: Plan, welcome_since: datetime | None = None
              ) -> tuple[tuple[tuple[str, bytes], ...], tuple[tuple[str, bytes], ...]]:
        """Write one plan in one transaction and one round trip; returns the subscriptions it
        activated and those owed a welcome (see :class:`Written`). RegistryUnavailable on failure
        (a deadlock between writers is retried here first: it resolves by itself)."""
        for attempt in range(1, self._attempts + 1):
            try:
                with self._connections.connection() as conn:
                    return self._apply(conn, changes, welcome_since)
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as error:
                if attempt == self._attempts:
                    raise _failure(error, self.redacted_url) from None
                log.info("registry write retried after %s", type(error).__name__)
            except (psycopg.Error, OSError) as error:
                raise _failure(error, self.redacted_url) from None

    def _apply(self, conn: psycopg.Connection, changes: Plan, welcome_since: datetime | None):
        # One implicit transaction: both statements are queued in libpq's pipeline mode and sent
        # with one Sync, all at once (libpq writes its buffer out as it passes 8 KiB: two writes
        # for a batch of 100, where psycopg's own pipeline made five, flushing each message, and
        # the server, waiting for the next, could be woken once per packet; its Python machinery
        # cost as much CPU as the rest of the write). The Sync commits them, or rolls them all
        # back after a failure; set_config(..., true) holds for that transaction only and arms
        # the timeout of the call after it. Results come back in binary.
        pgconn = conn.pgconn
        queries = 0
        with conn.lock:
            try:
                pgconn.enter_pipeline_mode()
                if self._timeout:
                    pgconn.send_query_params(_SET_TIMEOUT, [self._timeout.encode()], [TEXT_OID])
                    queries += 1
                encoding = conn.info.encoding
                columns = _columns(changes, encoding)
                since = welcome_since.isoformat().encode("ascii") if welcome_since is not None else None
                pgconn.send_query_params(
                    _WRITE, [changes.subscribers[0].client_id.encode(encoding), *columns, since],
                    [TEXT_OID, *_WRITE_TYPES], _WRITE_FORMATS, result_format=1)
                queries += 1
                pgconn.pipeline_sync()
                results = conn.wait(_exchange(pgconn, queries))
                pgconn.exit_pipeline_mode()
            except BaseException:
                # Broken mid-exchange (the connection lost, an interrupt): what libpq holds is
                # unknown, so the connection goes; the server rolls back what was not committed.
                conn.close()
                raise
        for result in results:
            if result.status == FATAL_ERROR:
                raise psycopg.errors.error_from_result(result, encoding=encoding)
        # At most one row per subscription (see registry_write in migration 5): property_id
        # (text), token_digest (bytea), activated, welcome_owed (booleans).
        written = results[-1]
        activated, owed = [], []
        for row in range(written.ntuples):
            key = (written.get_value(row, 0).decode(encoding), written.get_value(row, 1))
            if written.get_value(row, 2) == b"\x01":
                activated.append(key)
            if written.get_value(row, 3) == b"\x01":
                owed.append(key)
        return tuple(activated), tuple(owed)

    # --- the push sender -----------------------------------------------------------------

    def mark_invalid(self, marks: Iterable[InvalidMark]) -> int:
        """Set each token ``invalid`` with its error, where the mark is newer than the token's
        own state (rules.applies); returns how many changed. A later ``subscribe`` of the same
        token makes it active again only if newer than the mark. Unknown tokens are ignored.
        One statement for all marks."""
        merged: dict[tuple, tuple[datetime, str]] = {}
        for mark in marks:
            key = (mark.client_id, mark.property_id, token_digest(mark.token))
            value = (mark.at, _mask(mark.error, mark.token))
            if key not in merged or value > merged[key]:  # the rules' order among invalid marks
                merged[key] = value
        if not merged:
            return 0
        keys = sorted(merged)
        try:
            with self._connections.connection() as conn:
                with conn.transaction():
                    cursor = conn.execute("SELECT registry_mark_invalid(%s::json)", (_json([
                        {"client_id": k[0], "property_id": k[1], "token_digest": k[2].hex(), "at": merged[k][0],
                         "error": merged[k][1]} for k in keys]),))
                    return cursor.fetchone()[0]
        except (psycopg.Error, OSError) as error:
            raise _failure(error, self.redacted_url) from None

    def active_subscriptions(self, client_id: str, property_id: str, *, after: bytes = b"",
                             limit: int = 1000) -> list[tuple[bytes, str, str, str]]:
        """A page of a property's active subscriptions as (token_digest, token, user_id,
        platform), by digest; pass the last digest as ``after`` for the next page."""
        try:
            with self._connections.connection() as conn:
                return conn.execute(
                    "SELECT token_digest, token, user_id, platform FROM push_subscriptions "
                    "WHERE client_id = %s AND property_id = %s AND status = 'active' AND token_digest > %s "
                    "ORDER BY token_digest LIMIT %s",
                    (client_id, property_id, after, limit),
                ).fetchall()
        except (psycopg.Error, OSError) as error:
            raise _failure(error, self.redacted_url) from None

    # --- operators -----------------------------------------------------------------------

    def check(self) -> int:
        """The schema version, after checking the registry answers and is up to date
        (RegistrySchemaError if it is not: run ``pistats registry init``)."""
        try:
            with self._connections.connection() as conn:
                version = schema_version(conn)
        except (psycopg.Error, OSError) as error:
            raise _failure(error, self.redacted_url) from None
        if version < LATEST_VERSION:
            raise RegistrySchemaError(f"{self.redacted_url}: schema version {version}, this code needs "
                                      f"{LATEST_VERSION}; run `pistats registry init`")
        return version

    def subscriber(self, client_id: str, user_id: str,
                   property_id: str | None = None) -> tuple[list[SubscriberRow], list[SubscriptionRow]]:
        """A user's subscriber rows (one per property, or only ``property_id``'s) and their
        subscriptions, oldest first. Tokens do not leave the database: only their hash."""
        where = "client_id = %s AND user_id = %s" + (" AND property_id = %s" if property_id is not None else "")
        params = (client_id, user_id) + ((property_id,) if property_id is not None else ())
        try:
            with self._connections.connection() as conn:
                subscribers = conn.execute(
                    "SELECT client_id, property_id, user_id, registered_at, first_seen_at, last_seen_at, locale, "
                    f"timezone, unsubscribed_at FROM subscribers WHERE {where} ORDER BY property_id", params,
                ).fetchall()
                subscriptions = conn.execute(
                    "SELECT client_id, property_id, user_id, left(encode(token_digest, 'hex'), 12), platform, status, "
                    "status_changed_at, created_at, "
                    f"updated_at, last_error FROM push_subscriptions WHERE {where} "
                    "ORDER BY property_id, created_at, token_digest", params,
                ).fetchall()
        except (psycopg.Error, OSError) as error:
            raise _failure(error, self.redacted_url) from None
        return (
            [SubscriberRow(*row) for row in subscribers],
            [SubscriptionRow(*row) for row in subscriptions],
        )
