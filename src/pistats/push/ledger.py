"""Campaigns and their sends in the registry (PostgreSQL): at most once per token per campaign.

A campaign run (pistats.push.campaign) records each send before its request and settles it
after, in the tables of registry migration 2 (see docs/registry.md, "Campaigns"):

1. :meth:`Ledger.claim` inserts a page of targets as ``pending`` sends, one
   ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` per page: only the targets newly claimed come
   back, so a token already claimed by this campaign, by this run, an earlier run or a run
   racing this one, is never sent again. The primary key (campaign_id, token_digest) decides.
2. The request goes to FCM; :meth:`Ledger.settle` then records its outcome (``sent``,
   ``failed``, ``invalid``, ``unknown``), one ``UPDATE`` per page, changing pending rows only.
3. A run that dies between 1 and 2 leaves pending rows: FCM may or may not have delivered them.
   The next run, holding the campaign (:meth:`Ledger.hold`), turns them ``unknown``
   (:meth:`Ledger.orphans_to_unknown`) and never sends them again: FCM has no idempotency key,
   and a duplicate push annoys more than a missing one. A run that stops before sending what it
   claimed gives those claims back (:meth:`Ledger.release`): they were certainly not sent.
4. Settled sends are copied to the analytics store's ``push_sends`` (:meth:`Ledger.unexported`,
   :meth:`Ledger.mark_exported`), and the campaign ends (:meth:`Ledger.finish`).

Tokens are secrets: ``campaign_sends`` knows a token by its SHA-256 only. The token text is read
from ``push_subscriptions`` by :meth:`Ledger.active_targets` alone, kept out of reprs
(:class:`Target`), and never sent back to the database. Failures are
:class:`~pistats.registry.errors.RegistryUnavailable` naming the error class and SQLSTATE,
never a value; ValueError for a statement a constraint refuses (an unknown campaign);
:class:`LedgerBusy` when another run holds the campaign.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone

import orjson
import psycopg

from pistats.errors import ServiceError
from pistats.registry.store import _failure

log = logging.getLogger(__name__)

CAMPAIGN_STATES = ("running", "done", "aborted")
# 'campaign': sent to a property's users by pistats push send; 'welcome': sent by the ingest to
# each token a subscribe activates (pistats.push.welcome), never run over the whole property.
CAMPAIGN_KINDS = ("campaign", "welcome")
FINISHED_STATES = ("done", "aborted")
SEND_STATES = ("pending", "sent", "failed", "invalid", "unknown")
SETTLED_STATES = ("sent", "failed", "invalid", "unknown")
# The first key of the campaigns' advisory locks (the two-int4 form: a namespace of its own,
# apart from the one-bigint lock of the migrations); the second is from the campaign id.
_LOCK_CLASS = 0x70757368  # "push"


class LedgerBusy(ServiceError):
    """Another run (this process or another) holds the campaign: two runs of one campaign at once
    would not send a token twice, but would race for the settling and the finish."""


@dataclass(frozen=True)
class CampaignSpec:
    """What a campaign is asked to do: the message, the segment expression (None or empty: every
    user) and the sending rate (per second)."""

    client_id: str
    property_id: str
    title: str
    body: str
    url: str | None
    segment: str | None
    rate: float


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    client_id: str
    property_id: str
    title: str
    body: str
    url: str | None
    segment: str | None
    rate: float
    created_at: datetime
    state: str  # running, done, aborted
    reason: str | None
    finished_at: datetime | None
    kind: str = "campaign"  # CAMPAIGN_KINDS


@dataclass(frozen=True)
class Target:
    """An active subscription to send to. The token is a secret: not in the repr."""

    token_digest: bytes
    token: str = field(repr=False)
    user_id: str
    platform: str


@dataclass(frozen=True)
class Settled:
    """The outcome of one send: ``state`` one of :data:`SETTLED_STATES`, ``at`` when it was known."""

    token_digest: bytes
    state: str
    error_code: str | None
    attempts: int
    at: datetime

    def __post_init__(self):
        if self.state not in SETTLED_STATES:
            raise ValueError(f"a send settles as one of {', '.join(SETTLED_STATES)}, not {self.state!r}")
        if len(self.token_digest) != 32:
            raise ValueError("token_digest must be a SHA-256 (32 bytes)")
        if self.attempts < 0:
            raise ValueError("attempts must be >= 0")
        _require_aware(self.at, "at")


@dataclass(frozen=True)
class SendRow:
    """A settled send as the analytics store takes it (``token_digest.hex()`` is its token_hash)."""

    campaign_id: str
    token_digest: bytes
    user_id: str
    platform: str
    state: str
    error_code: str | None
    attempts: int
    claimed_at: datetime
    settled_at: datetime


def new_campaign_id() -> str:
    """``c_`` and 20 hex digits (80 random bits)."""
    return "c_" + secrets.token_hex(10)


def lock_key(campaign_id: str) -> tuple[int, int]:
    """The campaign's advisory lock: (:data:`_LOCK_CLASS`, 31 bits of the id's SHA-256). Two
    campaigns sharing a key (one chance in 2**31) only wait for each other's runs: LedgerBusy."""
    digest = hashlib.sha256(campaign_id.encode("utf-8")).digest()
    return _LOCK_CLASS, int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _json(rows: list) -> str:
    return orjson.dumps(rows).decode()


_CAMPAIGN_COLUMNS = ("campaign_id, client_id, property_id, title, body, url, segment, rate, created_at, state, "
                     "reason, finished_at, kind")
_CAMPAIGN_COLUMNS_OF_C = ", ".join("c." + name.strip() for name in _CAMPAIGN_COLUMNS.split(","))

# A property's new welcome campaign, its setting pointed at it and the one it replaces finished, in
# one statement (the foreign key is checked at its end, when the campaign is there). Every part
# reads the statement's snapshot: `previous` is the setting before this statement (a FOR UPDATE
# there would miss the row the statement itself updates).
_SET_WELCOME = f"""
WITH created AS (
    INSERT INTO campaigns (campaign_id, client_id, property_id, title, body, url, segment, rate, created_at, kind)
    VALUES (%(id)s, %(client)s, %(property)s, %(title)s, %(body)s, %(url)s, NULL, 1, %(now)s, 'welcome')
    RETURNING {_CAMPAIGN_COLUMNS}
), previous AS (
    SELECT welcome_campaign_id FROM property_settings
    WHERE client_id = %(client)s AND property_id = %(property)s
), setting AS (
    INSERT INTO property_settings (client_id, property_id, welcome_campaign_id, updated_at)
    VALUES (%(client)s, %(property)s, %(id)s, %(now)s)
    ON CONFLICT (client_id, property_id) DO UPDATE
    SET welcome_campaign_id = EXCLUDED.welcome_campaign_id, updated_at = EXCLUDED.updated_at
), finished AS (
    UPDATE campaigns SET state = 'done', finished_at = %(now)s
    WHERE campaign_id IN (SELECT welcome_campaign_id FROM previous) AND state = 'running'
)
SELECT {_CAMPAIGN_COLUMNS} FROM created
"""

_CLEAR_WELCOME = """
WITH previous AS (
    SELECT welcome_campaign_id FROM property_settings
    WHERE client_id = %(client)s AND property_id = %(property)s AND welcome_campaign_id IS NOT NULL
), cleared AS (
    UPDATE property_settings SET welcome_campaign_id = NULL, updated_at = %(now)s
    WHERE client_id = %(client)s AND property_id = %(property)s AND welcome_campaign_id IS NOT NULL
    RETURNING 1
), finished AS (
    UPDATE campaigns SET state = 'done', finished_at = %(now)s
    WHERE campaign_id IN (SELECT welcome_campaign_id FROM previous) AND state = 'running'
)
SELECT count(*) FROM cleared
"""

_CLAIM = """
INSERT INTO campaign_sends (campaign_id, token_digest, user_id, platform, claimed_at)
SELECT %s, decode(c.d, 'hex'), c.u, c.p, %s
FROM ROWS FROM (json_to_recordset(%s::json) AS (d text, u text, p text)) WITH ORDINALITY AS c
ORDER BY c.ordinality
ON CONFLICT (campaign_id, token_digest) DO NOTHING
RETURNING token_digest
"""

_SETTLE = """
UPDATE campaign_sends s
SET state = c.state, error_code = c.error_code, attempts = c.attempts, settled_at = c.at
FROM json_to_recordset(%s::json) AS c(d text, state text, error_code text, attempts integer, at timestamptz)
WHERE s.campaign_id = %s AND s.token_digest = decode(c.d, 'hex') AND s.state = 'pending'
"""


class Hold:
    """A campaign held by this process (:meth:`Ledger.hold`)."""

    def __init__(self, campaign_id: str, conn: psycopg.Connection, redacted_url: str):
        self.campaign_id = campaign_id
        self._conn = conn
        self._redacted_url = redacted_url

    def check(self) -> None:
        """LedgerBusy if the lock was lost (its connection broke: PostgreSQL restarted, a proxy
        dropped it); another run may then take the campaign. One round trip."""
        classid, objid = lock_key(self.campaign_id)
        try:
            held = self._conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
                "AND classid = %s AND objid = %s AND objsubid = 2 AND granted)", (classid, objid)).fetchone()[0]
        except (psycopg.Error, OSError) as error:
            raise LedgerBusy(f"campaign {self.campaign_id}: its hold was lost "
                             f"({_failure(error, self._redacted_url)})") from None
        if not held:
            raise LedgerBusy(f"campaign {self.campaign_id}: its hold was lost")


class Ledger:
    """Campaigns and sends through ``connections`` (a registry SingleConnection or
    PooledConnections); ``connect()`` opens the dedicated connection of :meth:`hold`; ``clock``
    gives claim, orphan and finish times; ``statement_timeout_ms`` bounds each statement (0: the
    server's default). Thread-safe as far as ``connections`` is.
    """

    def __init__(self, connections, *, connect: Callable[[], psycopg.Connection] | None = None,
                 clock: Callable[[], datetime] = _utc_now, statement_timeout_ms: int = 5000,
                 redacted_url: str = "registry", attempts: int = 3):
        self._connections = connections
        self._connect = connect
        self._clock = clock
        self._timeout = str(statement_timeout_ms) if statement_timeout_ms else None
        self._attempts = attempts
        self.redacted_url = redacted_url

    @classmethod
    def from_config(cls, config, *, pooled: bool = False, clock: Callable[[], datetime] = _utc_now) -> "Ledger":
        """A Ledger on the registry of ``config`` (a RegistryConfig): one connection, or a pool."""
        from pistats.registry.connections import PooledConnections, SingleConnection

        connections = PooledConnections(config) if pooled else SingleConnection(config)
        return cls(connections, connect=lambda: psycopg.connect(config.url, **config.connect_kwargs()),
                   clock=clock, statement_timeout_ms=config.statement_timeout_ms,
                   redacted_url=config.redacted_url)

    def close(self) -> None:
        self._connections.close()

    # --- statements ----------------------------------------------------------------------

    def _run(self, sql: str, params: Sequence, *, fetch: bool = True, rowcount: bool = False):
        """One statement in its own transaction with the statement timeout, sent as one pipeline
        (one round trip). Returns its rows, or its row count. A deadlock or serialization failure
        (the statement rolled back whole) is retried; a constraint refusing the statement is a
        ValueError; other failures are RegistryUnavailable."""
        for attempt in range(1, self._attempts + 1):
            try:
                with self._connections.connection() as conn:
                    return self._once(conn, sql, params, fetch, rowcount)
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as error:
                if attempt == self._attempts:
                    raise _failure(error, self.redacted_url) from None
                log.info("ledger statement retried after %s", type(error).__name__)
            except psycopg.errors.IntegrityError as error:
                # The caller's mistake (a campaign that does not exist, a value a CHECK refuses),
                # not the registry's: retrying will not help. Named without the row.
                raise ValueError(f"ledger: {type(error).__name__} (SQLSTATE {error.sqlstate})") from None
            except (psycopg.Error, OSError) as error:
                raise _failure(error, self.redacted_url) from None

    def _once(self, conn: psycopg.Connection, sql: str, params: Sequence, fetch: bool, rowcount: bool):
        try:
            with conn.pipeline():
                conn.execute("BEGIN")
                if self._timeout:
                    conn.execute("SELECT set_config('statement_timeout', %s, true)", (self._timeout,))
                cursor = conn.execute(sql, params)
                conn.execute("COMMIT")
        except BaseException:
            # A failed statement leaves the transaction open and aborted: end it, or drop the
            # connection if that fails too.
            if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                try:
                    conn.execute("ROLLBACK")
                except psycopg.Error:
                    conn.close()
            raise
        if rowcount:
            return cursor.rowcount
        return cursor.fetchall() if fetch else None

    # --- campaigns -----------------------------------------------------------------------

    def create(self, spec: CampaignSpec, created_at: datetime) -> Campaign:
        """A new running campaign with a fresh id, storing ``spec`` and ``created_at``, the
        segment's reference time ("active within 7 days" of it): a resume reads it back and
        selects the same users."""
        campaign = self.preview(spec, created_at)
        (row,) = self._run(
            f"INSERT INTO campaigns (campaign_id, client_id, property_id, title, body, url, segment, rate, created_at) "
            f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_CAMPAIGN_COLUMNS}",
            (new_campaign_id(), spec.client_id, spec.property_id, spec.title, spec.body, spec.url, spec.segment,
             campaign.rate, created_at))
        return Campaign(*row)

    @staticmethod
    def preview(spec: CampaignSpec, created_at: datetime) -> Campaign:
        """The campaign :meth:`create` would store, without storing it (a dry run counts its
        targets): its ``campaign_id`` is empty. No statement."""
        _require_aware(created_at, "created_at")
        if not spec.rate > 0:
            raise ValueError("rate must be > 0")
        return Campaign("", spec.client_id, spec.property_id, spec.title, spec.body, spec.url, spec.segment,
                        float(spec.rate), created_at, "running", None, None)

    def get(self, campaign_id: str) -> Campaign | None:
        rows = self._run(f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns WHERE campaign_id = %s", (campaign_id,))
        return Campaign(*rows[0]) if rows else None

    def finish(self, campaign_id: str, state: str, reason: str | None = None) -> bool:
        """End a running campaign as ``done`` or ``aborted`` (with ``reason``) at the clock's time;
        False when it was not running (finished already, or unknown): finishing twice is a no-op."""
        if state not in FINISHED_STATES:
            raise ValueError(f"a campaign finishes as one of {', '.join(FINISHED_STATES)}, not {state!r}")
        return self._run(
            "UPDATE campaigns SET state = %s, reason = %s, finished_at = %s "
            "WHERE campaign_id = %s AND state = 'running'",
            (state, reason, self._clock(), campaign_id), rowcount=True) == 1

    def reopen(self, campaign_id: str) -> bool:
        """Make an aborted campaign running again (its cause fixed: credentials, the message);
        False when it was not aborted. Its settled sends stay settled: a resume sends only
        what was never claimed, or released."""
        return self._run(
            "UPDATE campaigns SET state = 'running', reason = NULL, finished_at = NULL "
            "WHERE campaign_id = %s AND state = 'aborted'", (campaign_id,), rowcount=True) == 1

    @contextmanager
    def hold(self, campaign_id: str) -> Iterator[Hold]:
        """Hold the campaign for this run: a session-level advisory lock on a connection of its
        own, kept for the block and released at its end, or by PostgreSQL when this process dies
        (its connection closes). LedgerBusy at once if another run holds it. Through RDS Proxy
        this connection is pinned to its backend, as the lock needs."""
        if self._connect is None:
            raise ValueError("Ledger.hold needs `connect` (a dedicated connection); see Ledger.from_config")
        classid, objid = lock_key(campaign_id)
        try:
            conn = self._connect()
        except (psycopg.Error, OSError) as error:
            raise _failure(error, self.redacted_url) from None
        try:
            try:
                held = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (classid, objid)).fetchone()[0]
            except (psycopg.Error, OSError) as error:
                raise _failure(error, self.redacted_url) from None
            if not held:
                raise LedgerBusy(f"campaign {campaign_id} is being sent by another run")
            yield Hold(campaign_id, conn, self.redacted_url)
        finally:
            conn.close()  # ends the session, and with it the lock

    # --- sends ---------------------------------------------------------------------------

    def claim(self, campaign_id: str, targets: Iterable[Target]) -> list[Target]:
        """Record ``targets`` as pending sends of the campaign, now; returns those newly claimed
        (in the order given, each digest once). A target this campaign claimed before, in any
        run, does not come back: send only what is returned. One statement."""
        unique: dict[bytes, Target] = {}
        for target in targets:
            if len(target.token_digest) != 32:
                raise ValueError("token_digest must be a SHA-256 (32 bytes)")
            unique.setdefault(target.token_digest, target)
        if not unique:
            return []
        # Digest order: two runs claiming overlapping pages take the row locks in the same order.
        rows = [{"d": d.hex(), "u": t.user_id, "p": t.platform} for d, t in sorted(unique.items())]
        claimed = {row[0] for row in self._run(_CLAIM, (campaign_id, self._clock(), _json(rows)))}
        return [t for d, t in unique.items() if d in claimed]

    def release(self, campaign_id: str, digests: Iterable[bytes]) -> int:
        """Give back claims whose request was never sent (the run stopped first): their pending
        sends are deleted, so a later run may claim them. Only for requests certainly not sent:
        one that may have reached FCM stays pending (a resume makes it unknown). Settled sends are
        left. Returns how many were released. One statement."""
        digests = sorted(set(digests))
        if not digests:
            return 0
        return self._run(
            "DELETE FROM campaign_sends WHERE campaign_id = %s AND token_digest = ANY(%s) AND state = 'pending'",
            (campaign_id, digests), rowcount=True)

    def settle(self, campaign_id: str, settled: Iterable[Settled]) -> int:
        """Record outcomes; only pending sends change (settling twice, or a send never claimed,
        changes nothing; the first of two outcomes given for one digest counts). Returns how many
        changed. One statement."""
        unique: dict[bytes, Settled] = {}
        for outcome in settled:
            unique.setdefault(outcome.token_digest, outcome)
        if not unique:
            return 0
        rows = [{"d": d.hex(), "state": s.state, "error_code": s.error_code, "attempts": s.attempts,
                 "at": s.at} for d, s in sorted(unique.items())]
        return self._run(_SETTLE, (_json(rows), campaign_id), rowcount=True)

    def orphans_to_unknown(self, campaign_id: str) -> int:
        """Turn the campaign's pending sends ``unknown`` at the clock's time; returns how many.
        Call it holding the campaign, before claiming: pending sends then belong to a run that
        died between its request and its settling, so FCM may have delivered them. They are
        never sent again."""
        return self._run(
            "UPDATE campaign_sends SET state = 'unknown', settled_at = %s "
            "WHERE campaign_id = %s AND state = 'pending'", (self._clock(), campaign_id), rowcount=True)

    def welcome_orphans_to_unknown(self, claimed_before: datetime, client_id: str | None = None) -> int:
        """Turn ``unknown`` the pending sends of welcome campaigns (of ``client_id``, or every
        client's) claimed before ``claimed_before``; returns how many. A welcome is claimed and
        settled within one request: one still pending long after was left by a request that died
        in between (FCM may have delivered it). Nothing resumes a welcome, so this is how such a
        send is settled (``pistats push export`` calls it). One statement."""
        _require_aware(claimed_before, "claimed_before")
        client = "AND c.client_id = %s " if client_id is not None else ""
        return self._run(
            "UPDATE campaign_sends s SET state = 'unknown', settled_at = %s FROM campaigns c "
            f"WHERE c.campaign_id = s.campaign_id AND c.kind = 'welcome' {client}"
            "AND s.state = 'pending' AND s.claimed_at < %s",
            (self._clock(), *((client_id,) if client_id is not None else ()), claimed_before), rowcount=True)

    def unexported(self, campaign_id: str, limit: int = 1000) -> list[SendRow]:
        """Up to ``limit`` settled sends not yet copied to the analytics store, by digest.
        :meth:`mark_exported` takes them out of the next call."""
        return [SendRow(*row) for row in self._run(
            "SELECT campaign_id, token_digest, user_id, platform, state, error_code, attempts, claimed_at, settled_at "
            "FROM campaign_sends WHERE campaign_id = %s AND NOT exported AND state <> 'pending' "
            "ORDER BY token_digest LIMIT %s", (campaign_id, limit))]

    def mark_exported(self, campaign_id: str, digests: Iterable[bytes]) -> int:
        """Mark settled sends as copied to the analytics store; returns how many changed
        (pending or unknown digests, and ones marked before, are left). One statement."""
        digests = sorted(set(digests))
        if not digests:
            return 0
        return self._run(
            "UPDATE campaign_sends SET exported = true WHERE campaign_id = %s AND token_digest = ANY(%s) "
            "AND NOT exported AND state <> 'pending'", (campaign_id, digests), rowcount=True)

    def counts(self, campaign_id: str) -> dict[str, int]:
        """``targeted`` (every claimed send) and the sends in each state."""
        (row,) = self._run(
            "SELECT count(*), count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'sent'), "
            "count(*) FILTER (WHERE state = 'failed'), count(*) FILTER (WHERE state = 'invalid'), "
            "count(*) FILTER (WHERE state = 'unknown') FROM campaign_sends WHERE campaign_id = %s", (campaign_id,))
        return dict(zip(("targeted",) + SEND_STATES, row))

    def with_unexported(self, client_id: str | None = None) -> list[Campaign]:
        """The campaigns (of ``client_id``, or every client's) holding settled sends not yet
        copied to the analytics store, oldest first; one statement (the partial index of
        unexported sends answers each campaign's question)."""
        where = "WHERE c.client_id = %s AND " if client_id is not None else "WHERE "
        return [Campaign(*row) for row in self._run(
            f"SELECT {_CAMPAIGN_COLUMNS_OF_C} FROM campaigns c {where}EXISTS (SELECT 1 FROM campaign_sends s "
            "WHERE s.campaign_id = c.campaign_id AND NOT s.exported AND s.state <> 'pending') "
            "ORDER BY c.created_at, c.campaign_id", (client_id,) if client_id is not None else ())]

    # --- welcome notifications -----------------------------------------------------------

    def welcome(self, client_id: str, property_id: str) -> Campaign | None:
        """The property's current welcome campaign, None when it has none."""
        return self.welcomes(client_id, [property_id]).get(property_id)

    def welcomes(self, client_id: str, property_ids: Iterable[str]) -> dict[str, Campaign]:
        """``property_id -> welcome campaign`` for those of ``property_ids`` that have one; one
        statement."""
        property_ids = sorted(set(property_ids))
        if not property_ids:
            return {}
        rows = self._run(
            f"SELECT {_CAMPAIGN_COLUMNS_OF_C} FROM property_settings s JOIN campaigns c "
            "ON c.campaign_id = s.welcome_campaign_id WHERE s.client_id = %s AND s.property_id = ANY(%s)",
            (client_id, property_ids))
        return {campaign.property_id: campaign for campaign in (Campaign(*row) for row in rows)}

    def set_welcome(self, client_id: str, property_id: str, title: str, body: str, url: str | None,
                    now: datetime) -> Campaign:
        """Make a new welcome campaign (kind ``welcome``, running) the property's, finishing the
        one it replaces (``done``); one statement. A new text is a new campaign: its sends and
        clicks are counted apart from the old text's, and a token welcomed by the old text may be
        welcomed again by the new one (the ledger's key is per campaign). The caller checks the
        message (:func:`pistats.push.message.content_problems`)."""
        _require_aware(now, "now")
        (row,) = self._run(_SET_WELCOME, {"id": new_campaign_id(), "client": client_id, "property": property_id,
                                          "title": title, "body": body, "url": url, "now": now})
        return Campaign(*row)

    def clear_welcome(self, client_id: str, property_id: str, now: datetime) -> bool:
        """The property sends no welcome any more (its welcome campaign finishes ``done``, its
        sends stay); False when it had none. One statement."""
        _require_aware(now, "now")
        (row,) = self._run(_CLEAR_WELCOME, {"client": client_id, "property": property_id, "now": now})
        return row[0] == 1

    # --- targets -------------------------------------------------------------------------

    def active_targets(self, client_id: str, property_id: str, *, user_ids: Sequence[str] | None = None,
                       after: bytes = b"", limit: int = 1000) -> list[Target]:
        """A page of the property's active subscriptions, of ``user_ids`` only when given, by
        token digest: pass the last digest as ``after`` for the next page (a short page is the
        last). The one place a token's text is read. With ``user_ids`` (a segment's page of
        users, ``= ANY``) PostgreSQL picks the by-user index for a few users and the primary
        key with a filter for many (about 60 ms a page of 1,000 with a tenth of 200,000 tokens'
        owners)."""
        if user_ids is not None and not user_ids:
            return []
        sql = ("SELECT token_digest, token, user_id, platform FROM push_subscriptions "
               "WHERE client_id = %s AND property_id = %s AND status = 'active' AND token_digest > %s")
        params: list = [client_id, property_id, after]
        if user_ids is not None:
            sql += " AND user_id = ANY(%s)"
            params.append(list(user_ids))
        sql += " ORDER BY token_digest LIMIT %s"
        params.append(limit)
        return [Target(*row) for row in self._run(sql, params)]
