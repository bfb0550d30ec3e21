"""The subscriber registry on PostgreSQL: what the ingest writes, the push sender marks, operators read.

A request's registry events become one :class:`~pistats.registry.changes.Plan`, written by
:meth:`Registry.apply` as one transaction of three statements sent in one pipeline: one round
trip whatever the batch size. The statements, in this order (each sees the ones before, as
READ COMMITTED takes a snapshot per statement):

1. upsert the subscribers (row locks, in key order: a writer touching the same users waits
   for the other to commit, then reads what it wrote);
2. upsert the subscriptions, each taking its owner's ``unsubscribed_at`` from statement 1;
3. for the users who unsubscribed without a token, copy their ``unsubscribed_at`` onto every
   subscription they own (``status`` is a generated column and follows).

Each ``ON CONFLICT ... DO UPDATE ... WHERE`` compares the keys of :mod:`pistats.registry.rules`,
so a change older than the row's (by event time, then the tie-break) changes nothing.

Failures are :class:`~pistats.registry.errors.RegistryUnavailable` (the ingest answers 503 and
puts nothing).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import psycopg

from pistats.contract import Problem
from pistats.registry.changes import Plan, plan, registry_problems, token_digest
from pistats.registry.errors import RegistrySchemaError, RegistryUnavailable
from pistats.registry.migrations import LATEST_VERSION, schema_version
from pistats.registry.rules import STATUSES

log = logging.getLogger(__name__)

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


_RANK = "array_position(ARRAY[" + ", ".join(f"'{s}'" for s in STATUSES) + "], {0}.token_status)"


def _state_key(row: str) -> str:
    """rules.state_key in SQL, for the row alias ``row``."""
    return (f"({row}.token_status_at, {_RANK.format(row)}, "
            f"COALESCE({row}.last_error, '') COLLATE \"C\")")


def _owner_key(row: str) -> str:
    """rules.owner_key in SQL."""
    return (f"({row}.owner_changed_at IS NOT NULL, COALESCE({row}.owner_changed_at, '-infinity'), "
            f"{row}.user_id COLLATE \"C\", {row}.platform COLLATE \"C\")")


def _context_key(row: str) -> str:
    return (f"({row}.context_at, COALESCE({row}.locale, '') COLLATE \"C\", "
            f"COALESCE({row}.timezone, '') COLLATE \"C\")")


_CONTEXT_NEW = (f"(EXCLUDED.context_at IS NOT NULL AND (s.context_at IS NULL OR "
                f"{_context_key('EXCLUDED')} > {_context_key('s')}))")
_SUBSCRIBER_UPDATES = {
    "registered_at": "LEAST(s.registered_at, EXCLUDED.registered_at)",  # LEAST and GREATEST skip NULLs
    "first_seen_at": "LEAST(s.first_seen_at, EXCLUDED.first_seen_at)",
    "last_seen_at": "GREATEST(s.last_seen_at, EXCLUDED.last_seen_at)",
    "locale": f"CASE WHEN {_CONTEXT_NEW} THEN EXCLUDED.locale ELSE s.locale END",
    "timezone": f"CASE WHEN {_CONTEXT_NEW} THEN EXCLUDED.timezone ELSE s.timezone END",
    "context_at": f"CASE WHEN {_CONTEXT_NEW} THEN EXCLUDED.context_at ELSE s.context_at END",
    "unsubscribed_at": "GREATEST(s.unsubscribed_at, EXCLUDED.unsubscribed_at)",
}
_SUBSCRIBER_COLUMNS = ("client_id", "property_id", "user_id", "registered_at", "first_seen_at", "last_seen_at",
                       "locale", "timezone", "context_at", "unsubscribed_at")
_SUBSCRIBER_TYPES = ("text", "text", "text", "timestamptz", "timestamptz", "timestamptz",
                     "text", "text", "timestamptz", "timestamptz")

UPSERT_SUBSCRIBERS = f"""
INSERT INTO subscribers AS s ({", ".join(_SUBSCRIBER_COLUMNS)})
SELECT {", ".join(_SUBSCRIBER_COLUMNS)}
FROM unnest({", ".join(f"%s::{t}[]" for t in _SUBSCRIBER_TYPES)})
     WITH ORDINALITY AS c({", ".join(_SUBSCRIBER_COLUMNS)}, n)
ORDER BY n
ON CONFLICT (client_id, property_id, user_id) DO UPDATE SET
    {", ".join(f"{column} = {expression}" for column, expression in _SUBSCRIBER_UPDATES.items())},
    updated_at = now()
WHERE ({", ".join(_SUBSCRIBER_UPDATES.values())}) IS DISTINCT FROM ({", ".join(f"s.{c}" for c in _SUBSCRIBER_UPDATES)})
"""

_OWNER_NEW = f"{_owner_key('EXCLUDED')} > {_owner_key('p')}"
_STATE_NEW = f"{_state_key('EXCLUDED')} > {_state_key('p')}"
_OWNER_COLUMNS = ("user_id", "platform", "owner_changed_at", "owner_unsubscribed_at")
_STATE_COLUMNS = ("token_status", "token_status_at", "last_error")
_SUBSCRIPTION_COLUMNS = ("client_id", "property_id", "token_digest", "token", "user_id", "platform",
                         "owner_changed_at", "token_status", "token_status_at", "last_error")
_SUBSCRIPTION_TYPES = ("text", "text", "bytea", "text", "text", "text", "timestamptz", "text", "timestamptz", "text")

UPSERT_SUBSCRIPTIONS = f"""
INSERT INTO push_subscriptions AS p ({", ".join(_SUBSCRIPTION_COLUMNS)}, owner_unsubscribed_at)
SELECT {", ".join(f"c.{c}" for c in _SUBSCRIPTION_COLUMNS)}, s.unsubscribed_at
FROM unnest({", ".join(f"%s::{t}[]" for t in _SUBSCRIPTION_TYPES)})
     WITH ORDINALITY AS c({", ".join(_SUBSCRIPTION_COLUMNS)}, n)
LEFT JOIN subscribers s ON s.client_id = c.client_id AND s.property_id = c.property_id AND s.user_id = c.user_id
ORDER BY c.n
ON CONFLICT (client_id, property_id, token_digest) DO UPDATE SET
    {", ".join(f"{c} = CASE WHEN {_OWNER_NEW} THEN EXCLUDED.{c} ELSE p.{c} END" for c in _OWNER_COLUMNS)},
    {", ".join(f"{c} = CASE WHEN {_STATE_NEW} THEN EXCLUDED.{c} ELSE p.{c} END" for c in _STATE_COLUMNS)},
    updated_at = now()
WHERE {_OWNER_NEW} OR {_STATE_NEW}
"""

SWEEP_UNSUBSCRIBED = """
UPDATE push_subscriptions p SET owner_unsubscribed_at = s.unsubscribed_at, updated_at = now()
FROM unnest(%s::text[], %s::text[], %s::text[]) AS u(client_id, property_id, user_id)
JOIN subscribers s ON s.client_id = u.client_id AND s.property_id = u.property_id AND s.user_id = u.user_id
WHERE p.client_id = s.client_id AND p.property_id = s.property_id AND p.user_id = s.user_id
  AND p.owner_unsubscribed_at IS DISTINCT FROM s.unsubscribed_at
"""

MARK_INVALID = f"""
UPDATE push_subscriptions p
SET token_status = 'invalid', token_status_at = c.token_status_at, last_error = c.last_error, updated_at = now()
FROM unnest(%s::text[], %s::text[], %s::bytea[], %s::timestamptz[], %s::text[])
     AS c(client_id, property_id, token_digest, token_status_at, last_error)
WHERE p.client_id = c.client_id AND p.property_id = c.property_id AND p.token_digest = c.token_digest
  AND (c.token_status_at, {STATUSES.index("invalid") + 1}, c.last_error COLLATE "C") > {_state_key('p')}
"""


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

    def write(self, client_id: str, events: Iterable[dict], received_at: datetime) -> Plan:
        """Write the registry events among ``events`` (valid, checked by :meth:`problems`:
        ValueError for one that was not); returns the plan written. Nothing is sent when none
        of them is a registry event."""
        events = list(events)
        for event in events:
            if problems := registry_problems(client_id, event):
                raise ValueError(f"event {event.get('event_id')!r} cannot be stored: {problems[0].field} "
                                 f"{problems[0].problem}")
        changes = plan(client_id, events, received_at)
        if changes:
            self.apply(changes)
        return changes

    def apply(self, changes: Plan) -> None:
        """Write one plan in one transaction and one round trip; RegistryUnavailable on failure
        (a deadlock between writers is retried here first: it resolves by itself)."""
        for attempt in range(1, self._attempts + 1):
            try:
                with self._connections.connection() as conn:
                    self._apply(conn, changes)
                return
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as error:
                if attempt == self._attempts:
                    raise _failure(error, self.redacted_url) from None
                log.info("registry write retried after %s", type(error).__name__)
            except (psycopg.Error, OSError) as error:
                raise _failure(error, self.redacted_url) from None

    def _apply(self, conn: psycopg.Connection, changes: Plan) -> None:
        subscribers, subscriptions = changes.subscribers, changes.subscriptions
        unsubscribed = changes.unsubscribed_users
        try:
            with conn.pipeline():
                conn.execute("BEGIN")
                if self._timeout:
                    conn.execute("SELECT set_config('statement_timeout', %s, true)", (self._timeout,))
                conn.execute(UPSERT_SUBSCRIBERS, [
                    [s.client_id for s in subscribers],
                    [s.property_id for s in subscribers],
                    [s.user_id for s in subscribers],
                    [s.registered_at for s in subscribers],
                    [s.first_seen_at for s in subscribers],
                    [s.last_seen_at for s in subscribers],
                    [s.context.locale if s.context else None for s in subscribers],
                    [s.context.timezone if s.context else None for s in subscribers],
                    [s.context.at if s.context else None for s in subscribers],
                    [s.unsubscribed_at for s in subscribers],
                ])
                if subscriptions:
                    conn.execute(UPSERT_SUBSCRIPTIONS, [
                        [s.client_id for s in subscriptions],
                        [s.property_id for s in subscriptions],
                        [token_digest(s.token) for s in subscriptions],
                        [s.token for s in subscriptions],
                        [s.owner.user_id for s in subscriptions],
                        [s.owner.platform for s in subscriptions],
                        [s.owner.at for s in subscriptions],
                        [s.state.status for s in subscriptions],
                        [s.state.at for s in subscriptions],
                        [s.state.last_error for s in subscriptions],
                    ])
                if unsubscribed:
                    conn.execute(SWEEP_UNSUBSCRIBED, [
                        [s.client_id for s in unsubscribed],
                        [s.property_id for s in unsubscribed],
                        [s.user_id for s in unsubscribed],
                    ])
                conn.execute("COMMIT")
        except BaseException:
            # A failed statement leaves the transaction open and aborted (the COMMIT behind it
            # was skipped): end it, or drop the connection if that fails too.
            if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                try:
                    conn.execute("ROLLBACK")
                except psycopg.Error:
                    conn.close()
            raise

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
                    cursor = conn.execute(MARK_INVALID, [
                        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
                        [merged[k][0] for k in keys], [merged[k][1] for k in keys],
                    ])
                    return cursor.rowcount
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
