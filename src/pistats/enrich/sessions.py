"""Sessions: which visit of a user each event belongs to, kept per user in Redis.

The rule lives in one pure function, ``assign_session(state, event, gap, max_len)``; the batch
logic with its per-event memo in ``assign_batch``; ``RedisSessionStore`` only moves state in and
out of Redis. A batch costs two round trips: one Lua script reads the users' states and memo
entries (skipped for users whose state the store cached), another writes them back with a
per-user compare-and-set.

The rule (times are event times, in milliseconds):

- An event joins a session S = [start, last] when ``start - gap < t < last + gap`` and the session
  including it stays shorter than ``max_len``. A gap of exactly ``gap`` starts a new session.
- The current session is tried first, then the previous one (so an event late by less than the
  gap stays in its session, even across a session boundary).
- An event later than every known session opens the next session; an event older than both,
  that fits neither, opens a session of its own (counted, but it does not become current).
- ``session_id`` is a hash of client, user, and the first event's id and time, so replaying the
  same events in the same order from empty state reproduces every id.
- An event whose ``event_id`` is in the user's memo gets the memo's fields and changes nothing:
  a replayed tuple or a client's duplicate is never counted twice. It is still emitted:
  de-duplication of stored rows is the sink's job.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

from redis import exceptions as redis_errors

from pistats.redisconn import DEFAULT_WAIT_TIMEOUT_MS, OUTAGE_ERRORS, Script, is_cluster, plan_by_node, run_on_node
from pistats.retry import retry_within
from pistats.wire import compact_json

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MS = timedelta(milliseconds=1)


# The value types below are named tuples, not frozen dataclasses: they are as immutable, and
# several are built per event, where a frozen dataclass costs three times as much to make.


class SessionEvent(NamedTuple):
    """What sessionisation needs from an event; ``time_ms`` is the event time."""

    client_id: str
    user_id: str
    event_id: str
    time_ms: int

    @property
    def user(self) -> tuple[str, str]:
        return (self.client_id, self.user_id)


class Session(NamedTuple):
    id: str
    index: int
    start_ms: int
    last_ms: int
    events: int

    def fits(self, t: int, gap_ms: int, max_len_ms: int) -> bool:
        """Whether an event at ``t`` belongs here (see the module docstring)."""
        start, last = self.start_ms, self.last_ms
        if not (start - gap_ms < t < last + gap_ms):
            return False
        return (t if t > last else last) - (t if t < start else start) < max_len_ms

    def including(self, t: int) -> Session:
        start, last = self.start_ms, self.last_ms
        return Session(self.id, self.index, t if t < start else start, t if t > last else last, self.events + 1)


def _session_json(session: Session | None) -> str:
    if session is None:
        return "null"
    return f'["{session.id}",{session.index},{session.start_ms},{session.last_ms},{session.events}]'


class UserState(NamedTuple):
    """One user's sessionisation state. ``version`` counts writes (for compare-and-set)."""

    first_seen_ms: int
    sessions: int
    current: Session
    previous: Session | None = None
    version: int = 0

    def to_json(self, version: int | None = None) -> str:
        """Compact JSON, ``ver`` first (the write script reads it there); ``version`` overrides
        ``self.version`` (the store writes the next one).

        Formatted by hand: every value is an int or a hex id, and this runs once per user per batch.
        """
        return (
            f'{{"ver":{self.version if version is None else version},"first":{self.first_seen_ms},'
            f'"n":{self.sessions},"cur":{_session_json(self.current)},"prev":{_session_json(self.previous)}}}'
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> UserState:
        data = json.loads(text)
        prev = data.get("prev")
        return cls(
            first_seen_ms=data["first"],
            sessions=data["n"],
            current=Session(*data["cur"]),
            previous=Session(*prev) if prev else None,
            version=data["ver"],
        )


def session_id(event: SessionEvent) -> str:
    """Deterministic id of the session that ``event`` opens."""
    key = "\x1f".join((event.client_id, event.user_id, event.event_id, str(event.time_ms)))
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def assign_session(
    state: UserState | None, event: SessionEvent, gap_ms: int, max_len_ms: int
) -> tuple[UserState, dict[str, Any]]:
    """The user's next state and the event's session fields (``first_seen_at`` in ms here).

    Pure: the memo (replays) is handled by ``assign_batch``; here every call counts the event.
    """
    t = event.time_ms
    if state is None:
        session = Session(session_id(event), 1, t, t, 1)
        fields = _fields(session, is_new_user=True, first_seen_ms=t)
        return UserState(first_seen_ms=t, sessions=1, current=session), fields

    first_seen = t if t < state.first_seen_ms else state.first_seen_ms
    current, previous, sessions = state.current, state.previous, state.sessions
    if current.fits(t, gap_ms, max_len_ms):
        current = joined = current.including(t)
    elif previous is not None and previous.fits(t, gap_ms, max_len_ms):
        previous = joined = previous.including(t)
    else:
        sessions += 1
        joined = Session(session_id(event), sessions, t, t, 1)
        if t > current.last_ms:
            previous, current = current, joined
        elif previous is None or t > previous.last_ms:
            previous = joined
    new_state = UserState(first_seen, sessions, current, previous, state.version)
    return new_state, _fields(joined, is_new_user=False, first_seen_ms=first_seen)


def _fields(session: Session, *, is_new_user: bool, first_seen_ms: int) -> dict[str, Any]:
    return {
        "session_id": session.id,
        "session_index": session.index,
        "session_event_index": session.events,
        "is_new_user": is_new_user,
        "first_seen_at": first_seen_ms,
    }


@dataclass
class BatchResult:
    """``fields[i]`` for ``events[i]``; per user the state to write, the new memo entries and
    the number of events answered from the memo (``replays`` in all)."""

    fields: list[dict[str, Any]]
    states: dict[tuple[str, str], UserState]
    memo: dict[tuple[str, str], dict[str, dict[str, Any]]]
    replays_by_user: dict[tuple[str, str], int]

    @property
    def replays(self) -> int:
        return sum(self.replays_by_user.values())


def assign_batch(
    events: Sequence[SessionEvent],
    states: Mapping[tuple[str, str], UserState | None],
    memo: Mapping[tuple[str, str], Mapping[str, dict[str, Any]]],
    gap_ms: int,
    max_len_ms: int,
) -> BatchResult:
    """Assign ``events`` in order, starting from ``states`` and the known ``memo`` entries.

    Only users whose state changed appear in ``BatchResult.states`` (with ``version`` unchanged:
    the store bumps it when it writes). An event id seen before (in ``memo`` or earlier in the
    batch) gets the remembered fields and leaves the state alone.
    """
    current: dict[tuple[str, str], UserState | None] = dict(states)
    new_memo: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    changed: dict[tuple[str, str], UserState] = {}
    out: list[dict[str, Any]] = []
    replays: dict[tuple[str, str], int] = {}
    for event in events:
        user, event_id = event.user, event.event_id
        seen = new_memo.get(user)
        remembered = seen.get(event_id) if seen else None
        if remembered is None and memo:
            remembered = memo.get(user, {}).get(event_id)
        if remembered is not None:
            out.append(remembered)
            replays[user] = replays.get(user, 0) + 1
            continue
        state, fields = assign_session(current.get(user), event, gap_ms, max_len_ms)
        current[user] = changed[user] = state
        if seen is None:
            new_memo[user] = {event_id: fields}
        else:
            seen[event_id] = fields
        out.append(fields)
    return BatchResult(out, changed, new_memo, replays)


@dataclass(frozen=True)
class SessionConfig:
    """Session rule and Redis layout.

    ``key_prefix`` namespaces every key (tests use a unique one). ``state_ttl_s`` only cleans up
    users silent that long (they come back as new users); ``memo_ttl_s`` is how long a replayed
    event id is at least still recognised (memo buckets rotate every ``memo_ttl_s``; a user's
    memo hash of a bucket expires ``2 * memo_ttl_s`` after its last write). ``state_cache_size``: users whose state this
    process keeps after writing it (LRU; 0 disables), so their next event costs one round trip.
    """

    gap_s: int = 30 * 60
    max_length_s: int = 24 * 60 * 60
    key_prefix: str = "pistats:sessions"
    state_ttl_s: int = 400 * 24 * 60 * 60
    memo_ttl_s: int = 2 * 24 * 60 * 60
    max_retries: int = 5
    state_cache_size: int = 100_000
    # How long a batch waits out a Redis outage (connection refused or lost, timeout, loading
    # after a restart) before its error reaches the caller, who fails the tuple. Waiting keeps
    # each user's events in order through a restart; a replay would come after later events.
    outage_budget_s: float = 10.0
    # The chain assigns a batch's sessions this many records at a time, overlapping each chunk's
    # write to Redis with the parsing of the next (0: the whole batch at once, no overlap).
    chunk_events: int = 100

    def __post_init__(self) -> None:
        if not isinstance(self.state_cache_size, int) or self.state_cache_size < 0:
            raise ValueError(f"sessions.state_cache_size must be an integer >= 0, not {self.state_cache_size!r}")
        if not isinstance(self.chunk_events, int) or self.chunk_events < 0:
            raise ValueError(f"sessions.chunk_events must be an integer >= 0, not {self.chunk_events!r}")
        for name in ("gap_s", "max_length_s", "state_ttl_s", "memo_ttl_s", "max_retries"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"sessions.{name} must be a positive integer, not {value!r}")
        if self.max_length_s <= self.gap_s:
            raise ValueError("sessions.max_length_s must be longer than sessions.gap_s")
        if self.state_ttl_s <= self.gap_s:
            raise ValueError("sessions.state_ttl_s must be longer than sessions.gap_s")
        if not self.key_prefix:
            raise ValueError("sessions.key_prefix must not be empty")
        if "{" in self.key_prefix or "}" in self.key_prefix:
            raise ValueError("sessions.key_prefix must not contain { or } (the keys' hash tags are the users)")
        if not isinstance(self.outage_budget_s, (int, float)) or self.outage_budget_s < 0:
            raise ValueError(f"sessions.outage_budget_s must be a number >= 0, not {self.outage_budget_s!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionConfig:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown sessions settings: {', '.join(sorted(unknown))}")
        return cls(**data)


# Both scripts take the whole batch as one JSON argument and build the key names themselves
# (state key = prefix .. ":u:" .. user tag): redis-py packs each argument in Python, and a
# thousand small arguments per batch cost more than the whole Lua run. Only one key is declared
# in KEYS, for Redis Cluster, which needs a declared key to check that a script runs on the
# node serving it: there each call carries the users of one hash slot (the user tag is the hash
# tag: a user's state and memo keys share a slot), and a single Redis takes the whole batch in
# one call.
#
# The memo is one small hash per user and bucket, ``<memo prefix of the bucket><user tag>``: of
# event id -> fields. A hash of every user's entries would grow with the whole traffic of a
# bucket, and its expiry, freed in one piece on Redis's main thread, would stall Redis for
# as long; a user's hash holds that user's events of one bucket and stays a compact listpack.
#
# READ_SCRIPT: ARGV[1] = JSON [state key prefix, [user tags], memo prefix now, memo prefix before,
# [[event ids of user 1], ...]]. Returns JSON [states, memo], ``memo`` the remembered fields of
# each event id in request order (the current bucket's, else the previous one's), a missing value
# as false: one string is parsed in C, where a nested reply of a thousand items is parsed in
# Python. ``unpack`` is limited by Lua's C stack (about 8,000 values), hence the slices of 4,000.
READ_SCRIPT = """
local request = cjson.decode(ARGV[1])
local prefix, tags, memo_now, memo_before, ids = request[1], request[2], request[3], request[4], request[5]
local keys = {}
for i, tag in ipairs(tags) do keys[i] = prefix .. tag end
local states, found = {}, {}
for first = 1, #keys, 4000 do
  local part = redis.call('MGET', unpack(keys, first, math.min(first + 3999, #keys)))
  for j = 1, #part do states[first + j - 1] = part[j] end
end
for i, tag in ipairs(tags) do
  local wanted = ids[i]
  for first = 1, #wanted, 4000 do
    local last = math.min(first + 3999, #wanted)
    local now = redis.call('HMGET', memo_now .. tag, unpack(wanted, first, last))
    local before = redis.call('HMGET', memo_before .. tag, unpack(wanted, first, last))
    for j = 1, last - first + 1 do found[#found + 1] = now[j] or before[j] end
  end
end
return cjson.encode({states, found})
"""

# WRITE_SCRIPT: ARGV[1] = JSON [state key prefix, memo prefix now, memo prefix before, state TTL,
# memo TTL, [[user tag, expected version, new state JSON, [event id, fields, ...], cached], ...]].
# A user is skipped, state and memo alike, and its position (1-based) returned for a retry when
# its state changed since it was read (version differs) or, for a user whose state came from the
# local cache (``cached``), one of its events is already in the memo: the cache does not know
# about replays. A user read in this batch needs no memo check: its memo entries were read with
# its state, and any later memo write for it came with a state write, which the version shows.
# Every other user is written. States are read with one MGET per 4,000 users.
WRITE_SCRIPT = """
local request = cjson.decode(ARGV[1])
local prefix, memo_now, memo_before = request[1], request[2], request[3]
local state_ttl, memo_ttl, users = request[4], request[5], request[6]
local keys, replayed = {}, {}
for i, user in ipairs(users) do
  keys[i] = prefix .. user[1]
  if user[5] then
    local entries, ids = user[4], {}
    for f = 1, #entries, 2 do ids[#ids + 1] = entries[f] end
    for first = 1, #ids, 4000 do
      local last = math.min(first + 3999, #ids)
      local now = redis.call('HMGET', memo_now .. user[1], unpack(ids, first, last))
      local before = redis.call('HMGET', memo_before .. user[1], unpack(ids, first, last))
      for j = 1, last - first + 1 do
        if now[j] or before[j] then replayed[i] = true end
      end
    end
  end
end
local currents = {}
for first = 1, #keys, 4000 do
  local part = redis.call('MGET', unpack(keys, first, math.min(first + 3999, #keys)))
  for j = 1, #part do currents[first + j - 1] = part[j] end
end
local conflicts = {}
for i, user in ipairs(users) do
  local current = currents[i]
  local version = 0
  if current then
    version = tonumber(string.match(current, '^{"ver":(%d+)')) or cjson.decode(current)['ver']
  end
  if version == user[2] and not replayed[i] then
    redis.call('SET', keys[i], user[3], 'EX', state_ttl)
    local entries, memo = user[4], memo_now .. user[1]
    for first = 1, #entries, 4000 do
      redis.call('HSET', memo, unpack(entries, first, math.min(first + 3999, #entries)))
    end
    if #entries > 0 then redis.call('EXPIRE', memo, memo_ttl) end
  else
    conflicts[#conflicts + 1] = i
  end
end
return conflicts
"""


class _Attempt(NamedTuple):
    """A prepared read-assign-write round: the assignment, the states to cache once written
    (versions bumped), the read states it left alone, and the write script's request (None
    when nothing changed or when it goes per hash slot)."""

    result: BatchResult
    writes: list[tuple[tuple[str, str], UserState]]
    unchanged: list[tuple[tuple[str, str], UserState]]
    request: bytes | None
    # The request's parts, for one call per hash slot: its settings, and one entry per user.
    head: list[Any]
    payload: list[list[Any]]


class SessionConflict(RuntimeError):
    """Another writer kept changing the same users; raised after ``max_retries`` attempts."""


class RedisSessionStore:
    """Sessionises batches of events against per-user state in Redis.

    Layout: ``<prefix>:u:{<user>}`` holds a user's state (JSON, with a version for compare-and-set);
    ``<prefix>:memo:<bucket>:{<user>}`` is a hash of the user's ``<event_id>`` -> fields, one per
    ``memo_ttl_s`` of processing time, read for the current and previous bucket. A batch is one
    read script (an MGET, two HMGETs per user) and one write script (a compare-and-set per user). Users whose state
    this store wrote last are kept in a local LRU cache and not read again: for them the write
    script's version and memo checks stand in for the read, so under Storm's fields grouping
    (one task owns a user) most events cost one round trip.

    ``redis`` is a ``redis.Redis`` or ``redis.cluster.RedisCluster`` client (injected,
    ``pistats.redisconn.connect``); ``now`` returns the current time (only the memo buckets
    depend on it). A Redis outage is retried with backoff for ``outage_budget_s`` (``monotonic``
    and ``sleep`` injected), then its error propagates: the caller fails the tuples. A user's
    state and memo entries are written together, so a retry finds what was written in the memo
    and gets the same fields.

    ``{<user>}`` is the keys' hash tag: on a cluster a batch costs one read and one write round
    trip per master holding its users, each a script call per hash slot; a single Redis takes
    each in one call, and overlaps the write with the caller's work (``begin``).

    ``wait_replicas`` (the URL's ``wait_replicas``): a write counts, and its fields are returned,
    only once that many replicas acknowledged it (``WAIT`` on the write's connection), so a
    failover to a replica keeps every answer given. Fewer acknowledgements within
    ``wait_timeout_ms`` are an outage (retried within the budget); an answer the retry finds in
    the memo is returned only after a write of ours on that node was acknowledged in turn.
    """

    def __init__(self, redis: Any, config: SessionConfig, now: Callable[[], datetime],
                 monotonic: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 wait_replicas: int = 0, wait_timeout_ms: int = DEFAULT_WAIT_TIMEOUT_MS) -> None:
        self.redis = redis
        self.config = config
        self.now = now
        self._monotonic = monotonic
        self._sleep = sleep
        self.wait_replicas = wait_replicas
        self._wait_timeout_ms = wait_timeout_ms
        self.outage_retries = 0
        # A single Redis without replicas to wait for runs the scripts through redis-py's
        # Script objects (what the fault-injecting wrappers of the tests stand in for); a
        # cluster, or a wait for replicas, through run_on_node: one connection per node.
        self._per_node = is_cluster(redis) or wait_replicas > 0
        self._read = redis.register_script(READ_SCRIPT)
        self._write = redis.register_script(WRITE_SCRIPT)
        self._read_script = Script.of(READ_SCRIPT)
        self._write_script = Script.of(WRITE_SCRIPT)
        self._cache: OrderedDict[tuple[str, str], UserState] = OrderedDict()
        self.replays = 0
        self.conflicts = 0
        self.reads = 0

    @staticmethod
    def user_tag(user: tuple[str, str]) -> str:
        """The user's part of its keys, and their Redis Cluster hash tag: a user's state and memo
        keys share a slot. Length-prefixed so ("a:b", "c") and ("a", "b:c") never share a key.
        An id holding ``}`` ends the hash tag early: such users may share a slot, never a key."""
        client_id, user_id = user
        return f"{{{len(client_id)}:{client_id}:{len(user_id)}:{user_id}:}}"

    @property
    def state_prefix(self) -> str:
        return f"{self.config.key_prefix}:u:"

    def state_key(self, user: tuple[str, str]) -> str:
        return self.state_prefix + self.user_tag(user)

    def memo_prefix(self, bucket: int) -> str:
        return f"{self.config.key_prefix}:memo:{bucket}:"

    def memo_key(self, bucket: int, user: tuple[str, str]) -> str:
        """The hash of ``user``'s memo entries of ``bucket``."""
        return self.memo_prefix(bucket) + self.user_tag(user)

    def assign(self, events: Sequence[SessionEvent]) -> list[dict[str, Any]]:
        """Session fields for each event, in order, with ``first_seen_at`` as a datetime."""
        if not events:
            return []
        return self._within_budget(events)

    def _within_budget(self, events: Sequence[SessionEvent],
                       first: tuple[list[dict[str, Any]], set[tuple[str, str]]] | None = None) -> list[dict[str, Any]]:
        """``_assign`` with a Redis outage waited out for ``outage_budget_s``."""

        def waiting(error: BaseException, attempt: int, wait: float) -> None:
            self.outage_retries += 1
            log.warning("sessions: Redis unavailable (%s), retrying in %.2f s", error, wait)

        # A retry starts again from ``first``: its kept answers are final (settled, cached, counted).
        return retry_within(lambda: self._assign(events, first), retry_on=OUTAGE_ERRORS,
                            budget_s=self.config.outage_budget_s, initial_delay_s=0.05, max_delay_s=1.0,
                            monotonic=self._monotonic, sleep=self._sleep, on_retry=waiting)

    def begin(self, events: Sequence[SessionEvent]) -> Callable[[], list[dict[str, Any]]]:
        """Start ``assign(events)``; the returned function finishes it and returns its result.

        The state reads (for users not in the cache) and the assignment happen here; the write
        script is sent and its reply read by the returned function, so the caller can work while
        Redis runs it (``Chain.run`` parses the next chunk). Whatever goes wrong on the way (an
        outage, an unloaded script, a conflict) is finished by ``assign``: with the outage budget,
        the version checks and the memo, a write that may or may not have landed is safe to redo.
        """
        if not events:
            return lambda: []
        pool = getattr(self.redis, "connection_pool", None)
        if pool is None or self._per_node:  # a wrapper without a pool, a cluster, a wait: no overlap
            return lambda: self.assign(events)
        try:
            attempt = self._prepare(events)
        except OUTAGE_ERRORS:
            return lambda: self.assign(events)
        if not attempt.payload:
            return lambda: self._within_budget(events, self._settle(attempt, []))
        try:
            connection = pool.get_connection()  # connects, if it was not
        except OUTAGE_ERRORS:
            return lambda: self.assign(events)
        try:
            connection.send_command("EVALSHA", self._write.sha, 0, attempt.request)
        except BaseException as error:
            pool.release(connection)
            if isinstance(error, OUTAGE_ERRORS):
                return lambda: self.assign(events)
            raise

        def finish() -> list[dict[str, Any]]:
            try:
                positions = connection.read_response()
            except (*OUTAGE_ERRORS, redis_errors.NoScriptError):
                positions = None  # not run (no script loaded), or not known whether it ran
            finally:
                pool.release(connection)
            if positions is None:
                return self.assign(events)  # decides anew
            # Conflicted users, if any, are assigned again, an outage then waited out as in assign.
            return self._within_budget(events, self._settle(attempt, positions))

        return finish

    def _assign(self, events: Sequence[SessionEvent],
                first: tuple[list[dict[str, Any]], set[tuple[str, str]]] | None = None) -> list[dict[str, Any]]:
        """``first``: the outcome of an attempt already made for all of ``events``."""
        pending = list(range(len(events)))
        results: list[dict[str, Any] | None] = [None] * len(events)
        for _attempt in range(self.config.max_retries):
            if first is not None:
                (fields, conflicted), first = first, None
            else:
                fields, conflicted = self._attempt([events[i] for i in pending])
            for i, assigned in zip(pending, fields):
                if not conflicted or events[i].user not in conflicted:
                    results[i] = self._public(assigned)
            pending = [i for i in pending if results[i] is None]
            if not pending:
                return results  # type: ignore[return-value]
            self.conflicts += len(conflicted)
        raise SessionConflict(
            f"{len(pending)} events still conflicting after {self.config.max_retries} attempts"
        )

    def _attempt(self, events: Sequence[SessionEvent]) -> tuple[list[dict[str, Any]], set[tuple[str, str]]]:
        """One read-assign-write round: (fields per event, users whose write conflicted)."""
        attempt = self._prepare(events)
        if not attempt.payload:
            positions: Sequence[int] = []
        elif self._per_node:
            positions = self._write_per_node(attempt.head, attempt.payload)
        else:
            positions = self._write(args=[attempt.request])
        return self._settle(attempt, positions)

    def _prepare(self, events: Sequence[SessionEvent]) -> _Attempt:
        """Read what the cache lacks, assign, and build the write script's request."""
        bucket = int((self.now() - EPOCH) / MS) // (self.config.memo_ttl_s * 1000)
        users = list(dict.fromkeys(event.user for event in events))
        tags = {user: self.user_tag(user) for user in users}
        states: dict[tuple[str, str], UserState | None] = {}
        memo: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        unknown = []
        for user in users:
            cached = self._cache.get(user)
            if cached is None:
                unknown.append(user)
            else:
                states[user] = cached
        read = set(unknown)
        if unknown:
            self._read_users(unknown, tags, [e for e in events if e.user in read], bucket, states, memo)
        result = assign_batch(events, states, memo, self.config.gap_s * 1000, self.config.max_length_s * 1000)
        writes: list[tuple[tuple[str, str], UserState]] = []
        payload = []
        for user, state in result.states.items():
            before = states[user]
            expected = before.version if before is not None else 0
            entries: list[str] = []
            for event_id, fields in result.memo[user].items():
                entries.append(event_id)
                entries.append(encode_memo(fields))
            payload.append([tags[user], expected, state.to_json(version=expected + 1), entries, user not in read])
            writes.append((user, state._replace(version=expected + 1)))
        head = [self.state_prefix, self.memo_prefix(bucket), self.memo_prefix(bucket - 1),
                self.config.state_ttl_s, 2 * self.config.memo_ttl_s]
        request = compact_json([*head, payload]) if payload and not self._per_node else None
        unchanged = [(user, states[user]) for user in unknown if user not in result.states and states[user] is not None]
        return _Attempt(result, writes, unchanged, request, head, payload)

    def _settle(self, attempt: _Attempt, conflict_positions: Sequence[int]
                ) -> tuple[list[dict[str, Any]], set[tuple[str, str]]]:
        """Cache what was written (and what was read and left alone); forget the conflicted."""
        conflicted = {attempt.writes[i - 1][0] for i in conflict_positions}
        for user, written in attempt.writes:
            if user in conflicted:
                self._cache.pop(user, None)
            else:
                self._remember(user, written)
        for user, state in attempt.unchanged:
            self._remember(user, state)
        # Only kept answers count: a conflicted user's events are assigned (and counted) again.
        self.replays += sum(n for user, n in attempt.result.replays_by_user.items() if user not in conflicted)
        return attempt.result.fields, conflicted

    def _read_users(self, users, tags, events, bucket, states, memo) -> None:
        """Read ``users``' states and their ``events``' memo entries into ``states`` and ``memo``."""
        self.reads += 1
        ids: dict[tuple[str, str], dict[str, None]] = {user: {} for user in users}
        for event in events:
            ids[event.user][event.event_id] = None

        def request(group) -> bytes:
            return compact_json([self.state_prefix, [tags[user] for user in group], self.memo_prefix(bucket),
                                 self.memo_prefix(bucket - 1), [list(ids[user]) for user in group]])

        if not self._per_node:
            self._take_read(users, ids, self._read(args=[request(users)]), states, memo)
            return
        for key, groups in plan_by_node(self.redis, users, self.state_key):
            replies = run_on_node(self.redis, key, [
                (self._read_script, [self.state_key(group[0])], [request(group)]) for group in groups])
            remembered = [self._take_read(group, ids, reply, states, memo) for group, reply in zip(groups, replies)]
            replayed = [group[0] for group, found in zip(groups, remembered) if found]
            if replayed and self.wait_replicas:
                # An answer from the memo may come from a write whose replicas had not acknowledged
                # it (its WAIT fell short): a write of ours on the node, then WAIT, proves they
                # hold everything before it (replication is one ordered stream).
                state_key = self.state_key(replayed[0])
                run_on_node(self.redis, state_key, [], commands=[("PEXPIRE", state_key, self.config.state_ttl_s * 1000)],
                            wait_replicas=self.wait_replicas, wait_timeout_ms=self._wait_timeout_ms)

    @staticmethod
    def _take_read(users, ids, reply, states, memo) -> bool:
        """Put a read script's reply for ``users`` into ``states`` and ``memo``; whether it found
        memo entries."""
        # cjson writes an empty Lua table as {}: read it as "nothing found".
        raw_states, found = (part or [] for part in json.loads(reply))
        for user, raw in zip(users, raw_states):
            states[user] = UserState.from_json(raw) if raw else None
        if not any(found):
            return False
        asked = ((user, event_id) for user in users for event_id in ids[user])
        for (user, event_id), raw in zip(asked, found):
            if raw:
                memo.setdefault(user, {})[event_id] = decode_memo(raw)
        return True

    def _write_per_node(self, head: list[Any], users: list[list[Any]]) -> list[int]:
        """The write script's conflicts (1-based positions in ``users``) with one call per hash
        slot and one round trip per node, each followed by WAIT when asked."""
        positions = list(range(1, len(users) + 1))
        conflicts: list[int] = []
        for key, groups in plan_by_node(self.redis, positions, lambda n: self.state_prefix + users[n - 1][0]):
            calls = [(self._write_script, [self.state_prefix + users[group[0] - 1][0]],
                      [compact_json([*head, [users[n - 1] for n in group]])]) for group in groups]
            replies = run_on_node(self.redis, key, calls, wait_replicas=self.wait_replicas,
                                  wait_timeout_ms=self._wait_timeout_ms)
            for group, reply in zip(groups, replies):
                conflicts += [group[local - 1] for local in reply]
        return sorted(conflicts)

    def _remember(self, user: tuple[str, str], state: UserState) -> None:
        if not self.config.state_cache_size:
            return
        self._cache[user] = state
        self._cache.move_to_end(user)
        if len(self._cache) > self.config.state_cache_size:
            self._cache.popitem(last=False)

    @staticmethod
    def _public(fields: dict[str, Any]) -> dict[str, Any]:
        out = dict(fields)
        out["first_seen_at"] = EPOCH + fields["first_seen_at"] * MS
        return out


def encode_memo(fields: Mapping[str, Any]) -> str:
    """A memo entry: ``[session_id, session_index, session_event_index, is_new_user, first_seen_ms]``."""
    return (
        f'["{fields["session_id"]}",{fields["session_index"]},{fields["session_event_index"]},'
        f'{"true" if fields["is_new_user"] else "false"},{fields["first_seen_at"]}]'
    )


def decode_memo(raw: bytes | str) -> dict[str, Any]:
    session, index, event_index, is_new_user, first_seen_ms = json.loads(raw)
    return {"session_id": session, "session_index": index, "session_event_index": event_index,
            "is_new_user": is_new_user, "first_seen_at": first_seen_ms}


def to_session_event(event: Mapping[str, Any]) -> SessionEvent:
    """The sessionisation view of an enriched event (``event_time`` an aware datetime)."""
    return SessionEvent(
        client_id=event["client_id"],
        user_id=event["user_id"],
        event_id=event["event_id"],
        time_ms=(event["event_time"] - EPOCH) // MS,
    )


class SessionEnrichment:
    """``begin_batch(events)()`` -> the session fields of each enriched event, via the store
    (``RedisSessionStore.begin``: the caller may work between the two calls)."""

    name = "sessions"

    def __init__(self, store: RedisSessionStore) -> None:
        self.store = store

    def begin_batch(self, events: Iterable[Mapping[str, Any]]) -> Callable[[], list[dict[str, Any]]]:
        return self.store.begin([to_session_event(event) for event in events])
