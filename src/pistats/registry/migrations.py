"""The registry's tables and their versioned migrations, shipped in the package as SQL text.

Why a ``schema_migrations`` table and not alembic: PostgreSQL runs DDL inside transactions, so
:func:`migrate` applies each migration and records its version in one transaction, under a
transaction-scoped advisory lock (two ``pistats registry init`` at once: the second waits, then
finds nothing to do). That is all alembic would give here, for two tables, at the price of
SQLAlchemy in the Lambda bundle and a second description of the tables. Migrations are append
only: a change to the schema is a new entry in :data:`MIGRATIONS`, never an edit of an old one.

The tables are a contract other services read (the push sender, operators): see
docs/registry.md. Columns beyond the contract's are the registers behind ``status``
(:mod:`pistats.registry.rules`).
"""

from __future__ import annotations

from dataclasses import dataclass

MIGRATIONS_TABLE = "schema_migrations"
# Any constant will do: it names this schema's migration lock among advisory locks.
_LOCK_ID = 0x70697374  # "pist"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


_SUBSCRIBERS_AND_SUBSCRIPTIONS = """
CREATE TABLE subscribers (
    client_id        text COLLATE "C" NOT NULL,
    property_id      text COLLATE "C" NOT NULL,
    user_id          text COLLATE "C" NOT NULL,
    registered_at    timestamptz,           -- event time of the first register (NULL: none yet)
    first_seen_at    timestamptz NOT NULL,  -- event times of the user's registry events
    last_seen_at     timestamptz NOT NULL,
    locale           text,
    timezone         text,
    context_at       timestamptz,           -- event time of the event locale and timezone come from
    unsubscribed_at  timestamptz,           -- event time of the newest unsubscribe without a token
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, property_id, user_id)
);

CREATE TABLE push_subscriptions (
    client_id              text COLLATE "C" NOT NULL,
    property_id            text COLLATE "C" NOT NULL,
    token_digest           bytea NOT NULL CHECK (octet_length(token_digest) = 32),  -- sha256(token)
    token                  text NOT NULL,
    user_id                text COLLATE "C" NOT NULL,
    platform               text NOT NULL CHECK (platform IN ('web', 'android', 'ios', 'unknown')),
    -- The registers behind status (pistats.registry.rules):
    owner_changed_at       timestamptz,     -- event time of the subscribe that made user_id the owner
    token_status           text NOT NULL CHECK (token_status IN ('active', 'unsubscribed', 'invalid')),
    token_status_at        timestamptz NOT NULL,
    owner_unsubscribed_at  timestamptz,     -- the owner's subscribers.unsubscribed_at
    status                 text NOT NULL GENERATED ALWAYS AS (
        CASE WHEN owner_unsubscribed_at >= token_status_at THEN 'unsubscribed' ELSE token_status END
    ) STORED,
    status_changed_at      timestamptz NOT NULL GENERATED ALWAYS AS (
        CASE WHEN owner_unsubscribed_at >= token_status_at THEN owner_unsubscribed_at ELSE token_status_at END
    ) STORED,
    last_error             text,            -- the push sender's error, while the token's own state is invalid
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    -- Unique by (client_id, property_id, token): a token of up to 4 KiB does not fit a btree
    -- entry (at most 2,704 bytes), its SHA-256 does.
    PRIMARY KEY (client_id, property_id, token_digest),
    CHECK (last_error IS NULL OR token_status = 'invalid')
);

-- A user's subscriptions (unsubscribe-all, registry show). The push sender pages through a
-- property's tokens on the primary key, in digest order.
CREATE INDEX push_subscriptions_by_user ON push_subscriptions (client_id, property_id, user_id);
"""

# The writes, as functions: one call per request, and PL/pgSQL keeps each statement's plan for the
# session (no per-call planning, no protocol-level prepared statements, which pin RDS Proxy
# connections). Each statement sees the ones before it (READ COMMITTED takes a snapshot per
# statement in a VOLATILE function), see pistats.registry.store. Keys compared as
# pistats.registry.rules orders them: state (at, rank, error), owner (subscribed?, at, user, platform).
_WRITE_FUNCTIONS = """
CREATE FUNCTION registry_status_rank(status text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN array_position(ARRAY['active', 'invalid', 'unsubscribed'], status);

CREATE FUNCTION registry_apply(p_client_id text, p_subscribers json, p_subscriptions json, p_unsubscribed json)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- 1. Subscribers: every register, subscribe and unsubscribe. Row locks in key order.
    INSERT INTO subscribers AS s (client_id, property_id, user_id, registered_at, first_seen_at, last_seen_at,
                                  locale, timezone, context_at, unsubscribed_at)
    SELECT p_client_id, c.property_id, c.user_id, c.registered_at, c.first_seen_at, c.last_seen_at,
           c.locale, c.timezone, c.context_at, c.unsubscribed_at
    FROM ROWS FROM (json_to_recordset(p_subscribers) AS (
             property_id text, user_id text, registered_at timestamptz, first_seen_at timestamptz,
             last_seen_at timestamptz, locale text, timezone text, context_at timestamptz,
             unsubscribed_at timestamptz)) WITH ORDINALITY AS c
    ORDER BY c.ordinality
    ON CONFLICT (client_id, property_id, user_id) DO UPDATE SET
        (registered_at, first_seen_at, last_seen_at, unsubscribed_at, locale, timezone, context_at) = (
            SELECT LEAST(s.registered_at, EXCLUDED.registered_at),  -- LEAST and GREATEST skip NULLs
                   LEAST(s.first_seen_at, EXCLUDED.first_seen_at),
                   GREATEST(s.last_seen_at, EXCLUDED.last_seen_at),
                   GREATEST(s.unsubscribed_at, EXCLUDED.unsubscribed_at),
                   CASE WHEN newer THEN EXCLUDED.locale ELSE s.locale END,
                   CASE WHEN newer THEN EXCLUDED.timezone ELSE s.timezone END,
                   CASE WHEN newer THEN EXCLUDED.context_at ELSE s.context_at END
            FROM (SELECT EXCLUDED.context_at IS NOT NULL AND (s.context_at IS NULL OR
                         (EXCLUDED.context_at, COALESCE(EXCLUDED.locale, '') COLLATE "C",
                          COALESCE(EXCLUDED.timezone, '') COLLATE "C")
                         > (s.context_at, COALESCE(s.locale, '') COLLATE "C", COALESCE(s.timezone, '') COLLATE "C"))
                  AS newer) context),
        updated_at = now()
    WHERE EXCLUDED.registered_at < s.registered_at OR (s.registered_at IS NULL AND EXCLUDED.registered_at IS NOT NULL)
       OR EXCLUDED.first_seen_at < s.first_seen_at OR EXCLUDED.last_seen_at > s.last_seen_at
       OR EXCLUDED.unsubscribed_at > s.unsubscribed_at
       OR (s.unsubscribed_at IS NULL AND EXCLUDED.unsubscribed_at IS NOT NULL)
       OR (EXCLUDED.context_at IS NOT NULL AND (s.context_at IS NULL OR
           (EXCLUDED.context_at, COALESCE(EXCLUDED.locale, '') COLLATE "C", COALESCE(EXCLUDED.timezone, '') COLLATE "C")
           > (s.context_at, COALESCE(s.locale, '') COLLATE "C", COALESCE(s.timezone, '') COLLATE "C")));

    -- 2. Subscriptions: each subscribe, each unsubscribe with a token; a new owner brings its
    --    unsubscribe-all time, read after statement 1 (a primary key lookup per row).
    IF p_subscriptions IS NOT NULL THEN
        INSERT INTO push_subscriptions AS p (client_id, property_id, token_digest, token, user_id, platform,
                                             owner_changed_at, token_status, token_status_at, last_error,
                                             owner_unsubscribed_at)
        SELECT p_client_id, c.property_id, decode(c.token_digest, 'hex'), c.token, c.user_id, c.platform,
               c.owner_changed_at, c.token_status, c.token_status_at, c.last_error,
               (SELECT s.unsubscribed_at FROM subscribers s
                WHERE s.client_id = p_client_id AND s.property_id = c.property_id AND s.user_id = c.user_id)
        FROM ROWS FROM (json_to_recordset(p_subscriptions) AS (
                 property_id text, token_digest text, token text, user_id text, platform text,
                 owner_changed_at timestamptz, token_status text, token_status_at timestamptz,
                 last_error text)) WITH ORDINALITY AS c
        ORDER BY c.ordinality
        ON CONFLICT (client_id, property_id, token_digest) DO UPDATE SET
            (user_id, platform, owner_changed_at, owner_unsubscribed_at, token_status, token_status_at, last_error) = (
                SELECT CASE WHEN owner_newer THEN EXCLUDED.user_id ELSE p.user_id END,
                       CASE WHEN owner_newer THEN EXCLUDED.platform ELSE p.platform END,
                       CASE WHEN owner_newer THEN EXCLUDED.owner_changed_at ELSE p.owner_changed_at END,
                       CASE WHEN owner_newer THEN EXCLUDED.owner_unsubscribed_at ELSE p.owner_unsubscribed_at END,
                       CASE WHEN state_newer THEN EXCLUDED.token_status ELSE p.token_status END,
                       CASE WHEN state_newer THEN EXCLUDED.token_status_at ELSE p.token_status_at END,
                       CASE WHEN state_newer THEN EXCLUDED.last_error ELSE p.last_error END
                FROM (SELECT
                        (EXCLUDED.owner_changed_at IS NOT NULL, COALESCE(EXCLUDED.owner_changed_at, '-infinity'),
                         EXCLUDED.user_id COLLATE "C", EXCLUDED.platform COLLATE "C")
                        > (p.owner_changed_at IS NOT NULL, COALESCE(p.owner_changed_at, '-infinity'),
                           p.user_id COLLATE "C", p.platform COLLATE "C") AS owner_newer,
                        (EXCLUDED.token_status_at, registry_status_rank(EXCLUDED.token_status),
                         COALESCE(EXCLUDED.last_error, '') COLLATE "C")
                        > (p.token_status_at, registry_status_rank(p.token_status),
                           COALESCE(p.last_error, '') COLLATE "C") AS state_newer) newer),
            updated_at = now()
        WHERE (EXCLUDED.owner_changed_at IS NOT NULL, COALESCE(EXCLUDED.owner_changed_at, '-infinity'),
               EXCLUDED.user_id COLLATE "C", EXCLUDED.platform COLLATE "C")
              > (p.owner_changed_at IS NOT NULL, COALESCE(p.owner_changed_at, '-infinity'),
                 p.user_id COLLATE "C", p.platform COLLATE "C")
           OR (EXCLUDED.token_status_at, registry_status_rank(EXCLUDED.token_status),
               COALESCE(EXCLUDED.last_error, '') COLLATE "C")
              > (p.token_status_at, registry_status_rank(p.token_status), COALESCE(p.last_error, '') COLLATE "C");
    END IF;

    -- 3. Users who unsubscribed without a token: their time onto every subscription they own
    --    (status, a generated column, follows).
    IF p_unsubscribed IS NOT NULL THEN
        UPDATE push_subscriptions p SET owner_unsubscribed_at = s.unsubscribed_at, updated_at = now()
        FROM json_to_recordset(p_unsubscribed) AS u(property_id text, user_id text),
             LATERAL (SELECT unsubscribed_at FROM subscribers s
                      WHERE s.client_id = p_client_id AND s.property_id = u.property_id AND s.user_id = u.user_id) s
        WHERE p.client_id = p_client_id AND p.property_id = u.property_id AND p.user_id = u.user_id
          AND p.owner_unsubscribed_at IS DISTINCT FROM s.unsubscribed_at;
    END IF;
END $$;

-- The push sender's invalid marks: applied where newer than the token's own state (rules.applies).
CREATE FUNCTION registry_mark_invalid(p_marks json) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    changed integer;
BEGIN
    UPDATE push_subscriptions p
    SET token_status = 'invalid', token_status_at = c.at, last_error = c.error, updated_at = now()
    FROM json_to_recordset(p_marks) AS c(client_id text, property_id text, token_digest text, at timestamptz,
                                         error text)
    WHERE p.client_id = c.client_id AND p.property_id = c.property_id
      AND p.token_digest = decode(c.token_digest, 'hex')
      AND (c.at, registry_status_rank('invalid'), c.error COLLATE "C")
          > (p.token_status_at, registry_status_rank(p.token_status), COALESCE(p.last_error, '') COLLATE "C");
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed;
END $$;
"""

# The push sender's ledger (pistats.push.ledger): a campaign and, per token, its send. A send is
# claimed (inserted pending) before its request and settled after; the primary key makes the
# claim at most once per token per campaign. Tokens stay in push_subscriptions: a send knows its
# token by digest only.
_CAMPAIGNS = """
CREATE TABLE campaigns (
    campaign_id  text COLLATE "C" PRIMARY KEY,
    client_id    text COLLATE "C" NOT NULL,
    property_id  text COLLATE "C" NOT NULL,
    title        text NOT NULL,
    body         text NOT NULL,
    url          text,
    segment      text,                   -- the segment expression as given (NULL: every user)
    rate         double precision NOT NULL CHECK (rate > 0),  -- sends per second asked for
    created_at   timestamptz NOT NULL,   -- the segment's reference time: a resume selects the same users
    state        text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done', 'aborted')),
    reason       text,                   -- why it was aborted
    finished_at  timestamptz,
    CHECK ((state = 'running') = (finished_at IS NULL))
);
CREATE INDEX campaigns_by_property ON campaigns (client_id, property_id, created_at);

CREATE TABLE campaign_sends (
    campaign_id   text COLLATE "C" NOT NULL REFERENCES campaigns ON DELETE CASCADE,
    token_digest  bytea NOT NULL CHECK (octet_length(token_digest) = 32),  -- sha256(token)
    user_id       text COLLATE "C" NOT NULL,
    platform      text NOT NULL,
    state         text NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'sent', 'failed', 'invalid', 'unknown')),
    error_code    text,
    attempts      integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    claimed_at    timestamptz NOT NULL,
    settled_at    timestamptz,
    exported      boolean NOT NULL DEFAULT false,  -- copied to the analytics store's push_sends
    PRIMARY KEY (campaign_id, token_digest),
    CHECK ((state = 'pending') = (settled_at IS NULL)),
    CHECK (NOT exported OR state <> 'pending')
);
-- What a resume turns unknown, and what is still to be copied to the analytics store.
CREATE INDEX campaign_sends_pending ON campaign_sends (campaign_id) WHERE state = 'pending';
CREATE INDEX campaign_sends_unexported ON campaign_sends (campaign_id, token_digest)
    WHERE NOT exported AND state <> 'pending';
"""


# Migration 3: the same three statements as registry_apply, with the rows sent as arrays, one per
# column, in binary (psycopg writes each element's bytes; the server neither lexes JSON nor
# parses timestamps: JSON lexing and timestamptz_in were a fifth of the server's CPU per batch),
# and generic plans: PL/pgSQL re-planned the subscriptions upsert on every call (a custom plan
# looked cheaper than the generic one), another tenth.
# Settings made on the function hold only while it runs: nothing a session keeps.
# registry_apply stays for code of migration 1 still running during a deployment.
_WRITE_WITH_ARRAYS = """
CREATE OR REPLACE FUNCTION registry_write(
    p_client_id text,
    s_property_id text[], s_user_id text[], s_registered_at timestamptz[], s_first_seen_at timestamptz[],
    s_last_seen_at timestamptz[], s_locale text[], s_timezone text[], s_context_at timestamptz[],
    s_unsubscribed_at timestamptz[],
    t_property_id text[], t_token_digest bytea[], t_token text[], t_user_id text[], t_platform text[],
    t_owner_changed_at timestamptz[], t_token_status text[], t_token_status_at timestamptz[], t_last_error text[])
RETURNS void LANGUAGE plpgsql
-- Every row these statements read is found by key. A generic plan is made once per connection,
-- from the statistics of that moment: made while the tables look empty (a new registry), it
-- would scan subscribers once per subscription for the connection's life (measured: 56 ms a
-- batch instead of 4 after 20,000 rows). Sequential and bitmap scans off: index scans only.
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_bitmapscan = off
AS $$
BEGIN
    -- 1. Subscribers (s_*: one element per subscriber, in key order). Row locks in key order.
    INSERT INTO subscribers AS s (client_id, property_id, user_id, registered_at, first_seen_at, last_seen_at,
                                  locale, timezone, context_at, unsubscribed_at)
    SELECT p_client_id, c.property_id, c.user_id, c.registered_at, c.first_seen_at, c.last_seen_at,
           c.locale, c.timezone, c.context_at, c.unsubscribed_at
    FROM unnest(s_property_id, s_user_id, s_registered_at, s_first_seen_at, s_last_seen_at, s_locale, s_timezone,
                s_context_at, s_unsubscribed_at) WITH ORDINALITY
         AS c(property_id, user_id, registered_at, first_seen_at, last_seen_at, locale, timezone, context_at,
              unsubscribed_at, ordinality)
    ORDER BY c.ordinality
    ON CONFLICT (client_id, property_id, user_id) DO UPDATE SET
        (registered_at, first_seen_at, last_seen_at, unsubscribed_at, locale, timezone, context_at) = (
            SELECT LEAST(s.registered_at, EXCLUDED.registered_at),
                   LEAST(s.first_seen_at, EXCLUDED.first_seen_at),
                   GREATEST(s.last_seen_at, EXCLUDED.last_seen_at),
                   GREATEST(s.unsubscribed_at, EXCLUDED.unsubscribed_at),
                   CASE WHEN newer THEN EXCLUDED.locale ELSE s.locale END,
                   CASE WHEN newer THEN EXCLUDED.timezone ELSE s.timezone END,
                   CASE WHEN newer THEN EXCLUDED.context_at ELSE s.context_at END
            FROM (SELECT EXCLUDED.context_at IS NOT NULL AND (s.context_at IS NULL OR
                         (EXCLUDED.context_at, COALESCE(EXCLUDED.locale, '') COLLATE "C",
                          COALESCE(EXCLUDED.timezone, '') COLLATE "C")
                         > (s.context_at, COALESCE(s.locale, '') COLLATE "C", COALESCE(s.timezone, '') COLLATE "C"))
                  AS newer) context),
        updated_at = now()
    WHERE EXCLUDED.registered_at < s.registered_at OR (s.registered_at IS NULL AND EXCLUDED.registered_at IS NOT NULL)
       OR EXCLUDED.first_seen_at < s.first_seen_at OR EXCLUDED.last_seen_at > s.last_seen_at
       OR EXCLUDED.unsubscribed_at > s.unsubscribed_at
       OR (s.unsubscribed_at IS NULL AND EXCLUDED.unsubscribed_at IS NOT NULL)
       OR (EXCLUDED.context_at IS NOT NULL AND (s.context_at IS NULL OR
           (EXCLUDED.context_at, COALESCE(EXCLUDED.locale, '') COLLATE "C", COALESCE(EXCLUDED.timezone, '') COLLATE "C")
           > (s.context_at, COALESCE(s.locale, '') COLLATE "C", COALESCE(s.timezone, '') COLLATE "C")));

    -- 2. Subscriptions (t_*, NULL when none), each taking its owner's unsubscribe-all time
    --    from statement 1.
    IF t_token IS NOT NULL THEN
        INSERT INTO push_subscriptions AS p (client_id, property_id, token_digest, token, user_id, platform,
                                             owner_changed_at, token_status, token_status_at, last_error,
                                             owner_unsubscribed_at)
        SELECT p_client_id, c.property_id, c.token_digest, c.token, c.user_id, c.platform,
               c.owner_changed_at, c.token_status, c.token_status_at, c.last_error,
               (SELECT s.unsubscribed_at FROM subscribers s
                WHERE s.client_id = p_client_id AND s.property_id = c.property_id AND s.user_id = c.user_id)
        FROM unnest(t_property_id, t_token_digest, t_token, t_user_id, t_platform, t_owner_changed_at, t_token_status,
                    t_token_status_at, t_last_error) WITH ORDINALITY
             AS c(property_id, token_digest, token, user_id, platform, owner_changed_at, token_status, token_status_at,
                  last_error, ordinality)
        ORDER BY c.ordinality
        ON CONFLICT (client_id, property_id, token_digest) DO UPDATE SET
            (user_id, platform, owner_changed_at, owner_unsubscribed_at, token_status, token_status_at, last_error) = (
                SELECT CASE WHEN owner_newer THEN EXCLUDED.user_id ELSE p.user_id END,
                       CASE WHEN owner_newer THEN EXCLUDED.platform ELSE p.platform END,
                       CASE WHEN owner_newer THEN EXCLUDED.owner_changed_at ELSE p.owner_changed_at END,
                       CASE WHEN owner_newer THEN EXCLUDED.owner_unsubscribed_at ELSE p.owner_unsubscribed_at END,
                       CASE WHEN state_newer THEN EXCLUDED.token_status ELSE p.token_status END,
                       CASE WHEN state_newer THEN EXCLUDED.token_status_at ELSE p.token_status_at END,
                       CASE WHEN state_newer THEN EXCLUDED.last_error ELSE p.last_error END
                FROM (SELECT
                        (EXCLUDED.owner_changed_at IS NOT NULL, COALESCE(EXCLUDED.owner_changed_at, '-infinity'),
                         EXCLUDED.user_id COLLATE "C", EXCLUDED.platform COLLATE "C")
                        > (p.owner_changed_at IS NOT NULL, COALESCE(p.owner_changed_at, '-infinity'),
                           p.user_id COLLATE "C", p.platform COLLATE "C") AS owner_newer,
                        (EXCLUDED.token_status_at, registry_status_rank(EXCLUDED.token_status),
                         COALESCE(EXCLUDED.last_error, '') COLLATE "C")
                        > (p.token_status_at, registry_status_rank(p.token_status),
                           COALESCE(p.last_error, '') COLLATE "C") AS state_newer) newer),
            updated_at = now()
        WHERE (EXCLUDED.owner_changed_at IS NOT NULL, COALESCE(EXCLUDED.owner_changed_at, '-infinity'),
               EXCLUDED.user_id COLLATE "C", EXCLUDED.platform COLLATE "C")
              > (p.owner_changed_at IS NOT NULL, COALESCE(p.owner_changed_at, '-infinity'),
                 p.user_id COLLATE "C", p.platform COLLATE "C")
           OR (EXCLUDED.token_status_at, registry_status_rank(EXCLUDED.token_status),
               COALESCE(EXCLUDED.last_error, '') COLLATE "C")
              > (p.token_status_at, registry_status_rank(p.token_status), COALESCE(p.last_error, '') COLLATE "C");
    END IF;

    -- 3. Subscribers with an unsubscribe-all in this call: their time onto every subscription
    --    they own.
    IF array_remove(s_unsubscribed_at, NULL) <> '{}' THEN
        UPDATE push_subscriptions p SET owner_unsubscribed_at = s.unsubscribed_at, updated_at = now()
        FROM unnest(s_property_id, s_user_id, s_unsubscribed_at) AS u(property_id, user_id, unsubscribed_at),
             LATERAL (SELECT unsubscribed_at FROM subscribers s
                      WHERE s.client_id = p_client_id AND s.property_id = u.property_id AND s.user_id = u.user_id) s
        WHERE u.unsubscribed_at IS NOT NULL
          AND p.client_id = p_client_id AND p.property_id = u.property_id AND p.user_id = u.user_id
          AND p.owner_unsubscribed_at IS DISTINCT FROM s.unsubscribed_at;
    END IF;
END $$;
"""

# Migration 4: welcome notifications (pistats.push.welcome). A campaign has a kind: 'campaign' (sent
# to a property's users by pistats push send) or 'welcome' (sent by the ingest to each token a
# subscribe activates, never to the whole property); property_settings names each property's
# current welcome campaign (a new text is a new campaign, so its stats are its own).
# registry_write now also returns the subscriptions it made active that were not active before,
# in the same round trip: the return type changes, hence DROP and CREATE (one transaction: no
# moment without the function). Code of migration 3 still calling it during a deployment keeps
# working: `SELECT registry_write(...)` of a set-returning function returns those rows, unread.
# The three statements and their settings are migration 3's; the subscriptions' upsert gains
# RETURNING, and only rows it made active (usually inserted ones) cost a lookup of their old version.
_WELCOME = """
ALTER TABLE campaigns ADD COLUMN kind text NOT NULL DEFAULT 'campaign' CHECK (kind IN ('campaign', 'welcome'));

CREATE TABLE property_settings (
    client_id            text COLLATE "C" NOT NULL,
    property_id          text COLLATE "C" NOT NULL,
    welcome_campaign_id  text COLLATE "C" REFERENCES campaigns,  -- a campaign of kind 'welcome'; NULL: none
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, property_id)
);

DROP FUNCTION registry_write(text, text[], text[], timestamptz[], timestamptz[], timestamptz[], text[], text[],
                             timestamptz[], timestamptz[], text[], bytea[], text[], text[], text[], timestamptz[],
                             text[], timestamptz[], text[]);

CREATE FUNCTION registry_write(
    p_client_id text,
    s_property_id text[], s_user_id text[], s_registered_at timestamptz[], s_first_seen_at timestamptz[],
    s_last_seen_at timestamptz[], s_locale text[], s_timezone text[], s_context_at timestamptz[],
    s_unsubscribed_at timestamptz[],
    t_property_id text[], t_token_digest bytea[], t_token text[], t_user_id text[], t_platform text[],
    t_owner_changed_at timestamptz[], t_token_status text[], t_token_status_at timestamptz[], t_last_error text[])
RETURNS TABLE (changed_property_id text, changed_token_digest bytea, activated boolean) LANGUAGE plpgsql
-- Every row these statements read is found by key. A generic plan is made once per connection,
-- from the statistics of that moment: made while the tables look empty (a new registry), it
-- would scan subscribers once per subscription for the connection's life (measured: 56 ms a
-- batch instead of 4 after 20,000 rows). Sequential and bitmap scans off: index scans only.
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_bitmapscan = off
AS $$
BEGIN
    -- 1. Subscribers (s_*: one element per subscriber, in key order). Row locks in key order.
    INSERT INTO subscribers AS s (client_id, property_id, user_id, registered_at, first_seen_at, last_seen_at,
                                  locale, timezone, context_at, unsubscribed_at)
    SELECT p_client_id, c.property_id, c.user_id, c.registered_at, c.first_seen_at, c.last_seen_at,
           c.locale, c.timezone, c.context_at, c.unsubscribed_at
    FROM unnest(s_property_id, s_user_id, s_registered_at, s_first_seen_at, s_last_seen_at, s_locale, s_timezone,
                s_context_at, s_unsubscribed_at) WITH ORDINALITY
         AS c(property_id, user_id, registered_at, first_seen_at, last_seen_at, locale, timezone, context_at,
              unsubscribed_at, ordinality)
    ORDER BY c.ordinality
    ON CONFLICT (client_id, property_id, user_id) DO UPDATE SET
        (registered_at, first_seen_at, last_seen_at, unsubscribed_at, locale, timezone, context_at) = (
            SELECT LEAST(s.registered_at, EXCLUDED.registered_at),
                   LEAST(s.first_seen_at, EXCLUDED.first_seen_at),
                   GREATEST(s.last_seen_at, EXCLUDED.last_seen_at),
                   GREATEST(s.unsubscribed_at, EXCLUDED.unsubscribed_at),
                   CASE WHEN newer THEN EXCLUDED.locale ELSE s.locale END,
                   CASE WHEN newer THEN EXCLUDED.timezone ELSE s.timezone END,
                   CASE WHEN newer THEN EXCLUDED.context_at ELSE s.context_at END
            FROM (SELECT EXCLUDED.context_at IS NOT NULL AND (s.context_at IS NULL OR
                         (EXCLUDED.context_at, COALESCE(EXCLUDED.locale, '') COLLATE "C",
                          COALESCE(EXCLUDED.timezone, '') COLLATE "C")
                         > (s.context_at, COALESCE(s.locale, '') COLLATE "C", COALESCE(s.timezone, '') COLLATE "C"))
                  AS newer) context),
        updated_at = now()
    WHERE EXCLUDED.registered_at < s.registered_at OR (s.registered_at IS NULL AND EXCLUDED.registered_at IS NOT NULL)
       OR EXCLUDED.first_seen_at < s.first_seen_at OR EXCLUDED.last_seen_at > s.last_seen_at
       OR EXCLUDED.unsubscribed_at > s.unsubscribed_at
       OR (s.unsubscribed_at IS NULL AND EXCLUDED.unsubscribed_at IS NOT NULL)
       OR (EXCLUDED.context_at IS NOT NULL AND (s.context_at IS NULL OR
           (EXCLUDED.context_at, COALESCE(EXCLUDED.locale, '') COLLATE "C", COALESCE(EXCLUDED.timezone, '') COLLATE "C")
           > (s.context_at, COALESCE(s.locale, '') COLLATE "C", COALESCE(s.timezone, '') COLLATE "C")));

    -- 2. Subscriptions (t_*, NULL when none), each taking its owner's unsubscribe-all time
    --    from statement 1.
    --    Each row it changed comes back, `activated` when it made the subscription active and it
    --    was not (inserted: no row in the statement's snapshot; updated: its old version there).
    --    A row a conflict did not update does not come back.
    IF t_token IS NOT NULL THEN
        RETURN QUERY
        INSERT INTO push_subscriptions AS p (client_id, property_id, token_digest, token, user_id, platform,
                                             owner_changed_at, token_status, token_status_at, last_error,
                                             owner_unsubscribed_at)
        SELECT p_client_id, c.property_id, c.token_digest, c.token, c.user_id, c.platform,
               c.owner_changed_at, c.token_status, c.token_status_at, c.last_error,
               (SELECT s.unsubscribed_at FROM subscribers s
                WHERE s.client_id = p_client_id AND s.property_id = c.property_id AND s.user_id = c.user_id)
        FROM unnest(t_property_id, t_token_digest, t_token, t_user_id, t_platform, t_owner_changed_at, t_token_status,
                    t_token_status_at, t_last_error) WITH ORDINALITY
             AS c(property_id, token_digest, token, user_id, platform, owner_changed_at, token_status, token_status_at,
                  last_error, ordinality)
        ORDER BY c.ordinality
        ON CONFLICT (client_id, property_id, token_digest) DO UPDATE SET
            (user_id, platform, owner_changed_at, owner_unsubscribed_at, token_status, token_status_at, last_error) = (
                SELECT CASE WHEN owner_newer THEN EXCLUDED.user_id ELSE p.user_id END,
                       CASE WHEN owner_newer THEN EXCLUDED.platform ELSE p.platform END,
                       CASE WHEN owner_newer THEN EXCLUDED.owner_changed_at ELSE p.owner_changed_at END,
                       CASE WHEN owner_newer THEN EXCLUDED.owner_unsubscribed_at ELSE p.owner_unsubscribed_at END,
                       CASE WHEN state_newer THEN EXCLUDED.token_status ELSE p.token_status END,
                       CASE WHEN state_newer THEN EXCLUDED.token_status_at ELSE p.token_status_at END,
                       CASE WHEN state_newer THEN EXCLUDED.last_error ELSE p.last_error END
                FROM (SELECT
                        (EXCLUDED.owner_changed_at IS NOT NULL, COALESCE(EXCLUDED.owner_changed_at, '-infinity'),
                         EXCLUDED.user_id COLLATE "C", EXCLUDED.platform COLLATE "C")
                        > (p.owner_changed_at IS NOT NULL, COALESCE(p.owner_changed_at, '-infinity'),
                           p.user_id COLLATE "C", p.platform COLLATE "C") AS owner_newer,
                        (EXCLUDED.token_status_at, registry_status_rank(EXCLUDED.token_status),
                         COALESCE(EXCLUDED.last_error, '') COLLATE "C")
                        > (p.token_status_at, registry_status_rank(p.token_status),
                           COALESCE(p.last_error, '') COLLATE "C") AS state_newer) newer),
            updated_at = now()
        WHERE (EXCLUDED.owner_changed_at IS NOT NULL, COALESCE(EXCLUDED.owner_changed_at, '-infinity'),
               EXCLUDED.user_id COLLATE "C", EXCLUDED.platform COLLATE "C")
              > (p.owner_changed_at IS NOT NULL, COALESCE(p.owner_changed_at, '-infinity'),
                 p.user_id COLLATE "C", p.platform COLLATE "C")
           OR (EXCLUDED.token_status_at, registry_status_rank(EXCLUDED.token_status),
               COALESCE(EXCLUDED.last_error, '') COLLATE "C")
              > (p.token_status_at, registry_status_rank(p.token_status), COALESCE(p.last_error, '') COLLATE "C")
        RETURNING p.property_id, p.token_digest,
                  p.status = 'active' AND (p.xmax = 0 OR (SELECT o.status FROM push_subscriptions o
                                                          WHERE o.client_id = p_client_id
                                                            AND o.property_id = p.property_id
                                                            AND o.token_digest = p.token_digest) <> 'active');
    END IF;

    -- 3. Subscribers with an unsubscribe-all in this call: their time onto every subscription
    --    they own.
    --    The rows it changes come back again, no longer activated (an unsubscribe-all only ever
    --    makes a subscription unsubscribed): the last row of a key counts.
    IF array_remove(s_unsubscribed_at, NULL) <> '{}' THEN
        RETURN QUERY
        UPDATE push_subscriptions p SET owner_unsubscribed_at = s.unsubscribed_at, updated_at = now()
        FROM unnest(s_property_id, s_user_id, s_unsubscribed_at) AS u(property_id, user_id, unsubscribed_at),
             LATERAL (SELECT unsubscribed_at FROM subscribers s
                      WHERE s.client_id = p_client_id AND s.property_id = u.property_id AND s.user_id = u.user_id) s
        WHERE u.unsubscribed_at IS NOT NULL
          AND p.client_id = p_client_id AND p.property_id = u.property_id AND p.user_id = u.user_id
          AND p.owner_unsubscribed_at IS DISTINCT FROM s.unsubscribed_at
        RETURNING p.property_id, p.token_digest, p.status = 'active';
    END IF;
END $$;
"""

# Migration 5: a welcome is owed until it is claimed (pistats.push.welcome). With migration 4 the
# write reported only the subscriptions it activated: if the request's put then failed (503), the
# SDK's retry found the token active already and the welcome was lost. Now:
# - push_subscriptions.activated_at: event time of the change that last made the subscription
#   active (its status_changed_at then), set by registry_write; NULL for rows activated before
#   this migration (they are owed nothing on a later subscribe unless activated again);
# - registry_write gains p_welcome_since and returns, for each subscribe of the call whose
#   subscription is active afterwards, `activated` (this call made it active, as in migration 4)
#   and `welcome_owed`: its property has a welcome campaign with no send to this token, and this
#   call activated it or it was activated at or after p_welcome_since (NULL: welcomes off, no
#   owed rows and no lookups for them). The ledger's claim (ON CONFLICT DO NOTHING) still decides
#   at most once; this is what lets a retry find the welcome still owed, in the same round trip.
# A new signature, so a new function beside migration 4's (code of migration 4 still calling it
# during a deployment keeps working; its activations get no activated_at).
_WELCOME_OWED = """
ALTER TABLE push_subscriptions ADD COLUMN IF NOT EXISTS activated_at timestamptz;

CREATE OR REPLACE FUNCTION registry_write(
    p_client_id text,
    s_property_id text[], s_user_id text[], s_registered_at timestamptz[], s_first_seen_at timestamptz[],
    s_last_seen_at timestamptz[], s_locale text[], s_timezone text[], s_context_at timestamptz[],
    s_unsubscribed_at timestamptz[],
    t_property_id text[], t_token_digest bytea[], t_token text[], t_user_id text[], t_platform text[],
    t_owner_changed_at timestamptz[], t_token_status text[], t_token_status_at timestamptz[], t_last_error text[],
    p_welcome_since timestamptz)
RETURNS TABLE (changed_property_id text, changed_token_digest bytea, activated boolean, welcome_owed boolean)
LANGUAGE plpgsql
-- As migration 4's: generic plans, index scans only (every row is found by key).
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_bitmapscan = off
AS $$
DECLARE
    a_property_id text[];   -- the subscriptions statement 2 made active that were not
    a_token_digest bytea[];
BEGIN
    -- 1. Subscribers (s_*: one element per subscriber, in key order). Row locks in key order.
    INSERT INTO subscribers AS s (client_id, property_id, user_id, registered_at, first_seen_at, last_seen_at,
                                  locale, timezone, context_at, unsubscribed_at)
    SELECT p_client_id, c.property_id, c.user_id, c.registered_at, c.first_seen_at, c.last_seen_at,
           c.locale, c.timezone, c.context_at, c.unsubscribed_at
    FROM unnest(s_property_id, s_user_id, s_registered_at, s_first_seen_at, s_last_seen_at, s_locale, s_timezone,
                s_context_at, s_unsubscribed_at) WITH ORDINALITY
         AS c(property_id, user_id, registered_at, first_seen_at, last_seen_at, locale, timezone, context_at,
              unsubscribed_at, ordinality)
    ORDER BY c.ordinality
    ON CONFLICT (client_id, property_id, user_id) DO UPDATE SET
        (registered_at, first_seen_at, last_seen_at, unsubscribed_at, locale, timezone, context_at) = (
            SELECT LEAST(s.registered_at, EXCLUDED.registered_at),
                   LEAST(s.first_seen_at, EXCLUDED.first_seen_at),
                   GREATEST(s.last_seen_at, EXCLUDED.last_seen_at),
                   GREATEST(s.unsubscribed_at, EXCLUDED.unsubscribed_at),
                   CASE WHEN newer THEN EXCLUDED.locale ELSE s.locale END,
                   CASE WHEN newer THEN EXCLUDED.timezone ELSE s.timezone END,
                   CASE WHEN newer THEN EXCLUDED.context_at ELSE s.context_at END
            FROM (SELECT EXCLUDED.context_at IS NOT NULL AND (s.context_at IS NULL OR
                         (EXCLUDED.context_at, COALESCE(EXCLUDED.locale, '') COLLATE "C",
                          COALESCE(EXCLUDED.timezone, '') COLLATE "C")
                         > (s.context_at, COALESCE(s.locale, '') COLLATE "C", COALESCE(s.timezone, '') COLLATE "C"))
                  AS newer) context),
        updated_at = now()
    WHERE EXCLUDED.registered_at < s.registered_at OR (s.registered_at IS NULL AND EXCLUDED.registered_at IS NOT NULL)
       OR EXCLUDED.first_seen_at < s.first_seen_at OR EXCLUDED.last_seen_at > s.last_seen_at
       OR EXCLUDED.unsubscribed_at > s.unsubscribed_at
       OR (s.unsubscribed_at IS NULL AND EXCLUDED.unsubscribed_at IS NOT NULL)
       OR (EXCLUDED.context_at IS NOT NULL AND (s.context_at IS NULL OR
           (EXCLUDED.context_at, COALESCE(EXCLUDED.locale, '') COLLATE "C", COALESCE(EXCLUDED.timezone, '') COLLATE "C")
           > (s.context_at, COALESCE(s.locale, '') COLLATE "C", COALESCE(s.timezone, '') COLLATE "C")));

    -- 2. Subscriptions (t_*, NULL when none), each taking its owner's unsubscribe-all time
    --    from statement 1; then the ones it made active that were not (inserted: no row in the
    --    statement's snapshot; updated: its old version there) get their activated_at.
    IF t_token IS NOT NULL THEN
        WITH changed AS (
            INSERT INTO push_subscriptions AS p (client_id, property_id, token_digest, token, user_id, platform,
                                                 owner_changed_at, token_status, token_status_at, last_error,
                                                 owner_unsubscribed_at)
            SELECT p_client_id, c.property_id, c.token_digest, c.token, c.user_id, c.platform,
                   c.owner_changed_at, c.token_status, c.token_status_at, c.last_error,
                   (SELECT s.unsubscribed_at FROM subscribers s
                    WHERE s.client_id = p_client_id AND s.property_id = c.property_id AND s.user_id = c.user_id)
            FROM unnest(t_property_id, t_token_digest, t_token, t_user_id, t_platform, t_owner_changed_at, t_token_status,
                        t_token_status_at, t_last_error) WITH ORDINALITY
                 AS c(property_id, token_digest, token, user_id, platform, owner_changed_at, token_status, token_status_at,
                      last_error, ordinality)
            ORDER BY c.ordinality
            ON CONFLICT (client_id, property_id, token_digest) DO UPDATE SET
                (user_id, platform, owner_changed_at, owner_unsubscribed_at, token_status, token_status_at, last_error) = (
                    SELECT CASE WHEN owner_newer THEN EXCLUDED.user_id ELSE p.user_id END,
                           CASE WHEN owner_newer THEN EXCLUDED.platform ELSE p.platform END,
                           CASE WHEN owner_newer THEN EXCLUDED.owner_changed_at ELSE p.owner_changed_at END,
                           CASE WHEN owner_newer THEN EXCLUDED.owner_unsubscribed_at ELSE p.owner_unsubscribed_at END,
                           CASE WHEN state_newer THEN EXCLUDED.token_status ELSE p.token_status END,
                           CASE WHEN state_newer THEN EXCLUDED.token_status_at ELSE p.token_status_at END,
                           CASE WHEN state_newer THEN EXCLUDED.last_error ELSE p.last_error END
                    FROM (SELECT
                            (EXCLUDED.owner_changed_at IS NOT NULL, COALESCE(EXCLUDED.owner_changed_at, '-infinity'),
                             EXCLUDED.user_id COLLATE "C", EXCLUDED.platform COLLATE "C")
                            > (p.owner_changed_at IS NOT NULL, COALESCE(p.owner_changed_at, '-infinity'),
                               p.user_id COLLATE "C", p.platform COLLATE "C") AS owner_newer,
                            (EXCLUDED.token_status_at, registry_status_rank(EXCLUDED.token_status),
                             COALESCE(EXCLUDED.last_error, '') COLLATE "C")
                            > (p.token_status_at, registry_status_rank(p.token_status),
                               COALESCE(p.last_error, '') COLLATE "C") AS state_newer) newer),
                updated_at = now()
            WHERE (EXCLUDED.owner_changed_at IS NOT NULL, COALESCE(EXCLUDED.owner_changed_at, '-infinity'),
                   EXCLUDED.user_id COLLATE "C", EXCLUDED.platform COLLATE "C")
                  > (p.owner_changed_at IS NOT NULL, COALESCE(p.owner_changed_at, '-infinity'),
                     p.user_id COLLATE "C", p.platform COLLATE "C")
               OR (EXCLUDED.token_status_at, registry_status_rank(EXCLUDED.token_status),
                   COALESCE(EXCLUDED.last_error, '') COLLATE "C")
                  > (p.token_status_at, registry_status_rank(p.token_status), COALESCE(p.last_error, '') COLLATE "C")
            RETURNING p.property_id, p.token_digest,
                      p.status = 'active' AND (p.xmax = 0 OR (SELECT o.status FROM push_subscriptions o
                                                              WHERE o.client_id = p_client_id
                                                                AND o.property_id = p.property_id
                                                                AND o.token_digest = p.token_digest) <> 'active')
                      AS activated)
        SELECT array_agg(changed.property_id), array_agg(changed.token_digest) INTO a_property_id, a_token_digest
        FROM changed WHERE changed.activated;

        IF a_property_id IS NOT NULL THEN
            UPDATE push_subscriptions p SET activated_at = p.status_changed_at
            FROM unnest(a_property_id, a_token_digest) AS a(property_id, token_digest)
            WHERE p.client_id = p_client_id AND p.property_id = a.property_id AND p.token_digest = a.token_digest;
        END IF;
    END IF;

    -- 3. Subscribers with an unsubscribe-all in this call: their time onto every subscription
    --    they own.
    IF array_remove(s_unsubscribed_at, NULL) <> '{}' THEN
        UPDATE push_subscriptions p SET owner_unsubscribed_at = s.unsubscribed_at, updated_at = now()
        FROM unnest(s_property_id, s_user_id, s_unsubscribed_at) AS u(property_id, user_id, unsubscribed_at),
             LATERAL (SELECT unsubscribed_at FROM subscribers s
                      WHERE s.client_id = p_client_id AND s.property_id = u.property_id AND s.user_id = u.user_id) s
        WHERE u.unsubscribed_at IS NOT NULL
          AND p.client_id = p_client_id AND p.property_id = u.property_id AND p.user_id = u.user_id
          AND p.owner_unsubscribed_at IS DISTINCT FROM s.unsubscribed_at;
    END IF;

    -- 4. What comes back, read after statement 3 (an unsubscribe-all may have undone an
    --    activation): without welcomes, the activated subscriptions still active; with them,
    --    every subscribe's subscription that is active and activated or owed a welcome.
    IF t_token IS NULL THEN
        RETURN;
    END IF;
    IF p_welcome_since IS NULL THEN
        RETURN QUERY
        SELECT p.property_id, p.token_digest, true, false
        FROM unnest(a_property_id, a_token_digest) AS a(property_id, token_digest)
        JOIN push_subscriptions p
          ON p.client_id = p_client_id AND p.property_id = a.property_id AND p.token_digest = a.token_digest
        WHERE p.status = 'active';
        RETURN;
    END IF;
    RETURN QUERY
    SELECT r.property_id, r.token_digest, r.activated, r.owed
    FROM (SELECT p.property_id, p.token_digest, (p.property_id, p.token_digest) IN (
                     SELECT * FROM unnest(a_property_id, a_token_digest)) AS activated,
                 p.activated_at >= p_welcome_since AS recent
          FROM unnest(t_property_id, t_token_digest, t_token_status) AS t(property_id, token_digest, token_status)
          JOIN push_subscriptions p
            ON p.client_id = p_client_id AND p.property_id = t.property_id AND p.token_digest = t.token_digest
          WHERE t.token_status = 'active' AND p.status = 'active') a,
         LATERAL (SELECT a.property_id, a.token_digest, a.activated,
                         (a.activated OR COALESCE(a.recent, false))
                         AND EXISTS (SELECT 1 FROM property_settings ps
                                     WHERE ps.client_id = p_client_id AND ps.property_id = a.property_id
                                       AND ps.welcome_campaign_id IS NOT NULL
                                       AND NOT EXISTS (SELECT 1 FROM campaign_sends cs
                                                       WHERE cs.campaign_id = ps.welcome_campaign_id
                                                         AND cs.token_digest = a.token_digest)) AS owed) r
    WHERE r.activated OR r.owed;
END $$;
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "subscribers and push_subscriptions, and the functions writing them",
              _SUBSCRIBERS_AND_SUBSCRIPTIONS + _WRITE_FUNCTIONS),
    Migration(2, "campaigns and campaign_sends, the push sender's ledger", _CAMPAIGNS),
    Migration(3, "registry_write: rows as binary arrays, generic plans", _WRITE_WITH_ARRAYS),
    Migration(4, "welcome notifications: campaigns.kind, property_settings; registry_write returns activations",
              _WELCOME),
    Migration(5, "welcomes owed until claimed: push_subscriptions.activated_at; registry_write reports them",
              _WELCOME_OWED),
)

LATEST_VERSION = MIGRATIONS[-1].version


def _create_migrations_table() -> str:
    return (f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())")


def applied_versions(conn) -> list[int]:
    """Versions recorded in ``schema_migrations`` ([] when the table does not exist)."""
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (MIGRATIONS_TABLE,)).fetchone()[0]
    if not exists:
        return []
    return [row[0] for row in conn.execute(f"SELECT version FROM {MIGRATIONS_TABLE} ORDER BY version")]


def schema_version(conn) -> int:
    """The newest applied migration, 0 for an empty database."""
    versions = applied_versions(conn)
    return versions[-1] if versions else 0


def migrate(conn) -> list[int]:
    """Bring the registry schema to :data:`LATEST_VERSION`; returns the versions applied now.

    Idempotent and safe to run concurrently. ``conn`` is a psycopg connection; each migration
    commits with its record, so a failure leaves the schema at the last complete version.
    """
    applied = []
    for migration in MIGRATIONS:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            conn.execute(_create_migrations_table())
            done = conn.execute(f"SELECT 1 FROM {MIGRATIONS_TABLE} WHERE version = %s",
                                (migration.version,)).fetchone()
            if done:
                continue
            conn.execute(migration.sql)
            conn.execute(f"INSERT INTO {MIGRATIONS_TABLE} (version, name) VALUES (%s, %s)",
                         (migration.version, migration.name))
            applied.append(migration.version)
    return applied
