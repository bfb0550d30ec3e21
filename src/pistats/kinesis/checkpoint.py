"""Checkpoint stores: per-shard committed position, owner lease and SHARD_END marker.

Every write is a compare-and-set: a checkpoint never moves backwards, never moves once the
shard is marked ended, and never overwrites a live lease held by another owner. The Redis store
does this in one Lua script per call; :class:`MemoryCheckpointStore` has the same semantics for
unit tests and benchmarks (both run the same contract tests).

Leases are set and compared on one clock: the Redis server's (``TIME``), so tasks whose clocks
disagree can never both hold a shard. The ``now_ms`` the callers pass is used only by the
in-memory store, whose callers share a process and so a clock.

Keys: ``pistats:ckpt:<app>:<stream>:<shard>`` (a hash holding the checkpoint and the lease), so
topologies with different application names read the same stream independently. Every script
touches that one key, so a Redis Cluster runs it on the shard's master as it is.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from pistats.kinesis.ledger import Position
from pistats.redisconn import DEFAULT_WAIT_TIMEOUT_MS, Script, run_on_node

OK = "ok"
STALE = "stale"          # the write would move the checkpoint backwards or past SHARD_END
NOT_OWNER = "not_owner"  # another owner holds a live lease


@dataclass(frozen=True)
class Checkpoint:
    """A shard's committed state.

    ``position`` is None when nothing was committed yet (possible with ``ended`` for a shard
    closed without records). ``complete`` says the position ends its KPL aggregate, so reading
    may resume AFTER_SEQUENCE_NUMBER; otherwise it resumes AT_SEQUENCE_NUMBER and skips the
    sub-records at or below the position.
    """

    position: Position | None
    complete: bool = True
    ended: bool = False
    owner: str = ""
    lease_until_ms: int = 0


class CheckpointStore(Protocol):
    """``now_ms`` is the caller's clock: a store with a clock of its own (Redis) ignores it."""

    def load(self, shard_id: str) -> Checkpoint | None: ...

    def claim(self, shard_id: str, owner: str, now_ms: int, lease_ms: int) -> bool: ...

    def save(self, shard_id: str, owner: str, position: Position | None, complete: bool, *,
             ended: bool, now_ms: int, lease_ms: int) -> str: ...

    def release(self, shard_id: str, owner: str) -> None: ...


def _newer_or_equal(new: Position | None, old: Position | None) -> bool:
    if new is None:
        return old is None
    return old is None or new >= old


class MemoryCheckpointStore:
    """In-process store with the Redis store's compare-and-set semantics."""

    def __init__(self):
        self._data: dict[str, Checkpoint] = {}
        self._lock = threading.Lock()
        self.available = True  # fault injection: False makes every call raise ConnectionError

    def _check(self):
        if not self.available:
            raise ConnectionError("checkpoint store unavailable")

    def load(self, shard_id: str) -> Checkpoint | None:
        self._check()
        return self._data.get(shard_id)

    def claim(self, shard_id: str, owner: str, now_ms: int, lease_ms: int) -> bool:
        self._check()
        with self._lock:
            current = self._data.get(shard_id) or Checkpoint(None)
            if current.owner not in ("", owner) and current.lease_until_ms > now_ms:
                return False
            self._data[shard_id] = Checkpoint(current.position, current.complete, current.ended, owner,
                                              now_ms + lease_ms)
            return True

    def save(self, shard_id, owner, position, complete, *, ended, now_ms, lease_ms) -> str:
        self._check()
        with self._lock:
            current = self._data.get(shard_id) or Checkpoint(None)
            if current.owner not in ("", owner) and current.lease_until_ms > now_ms:
                return NOT_OWNER
            if current.ended or not _newer_or_equal(position, current.position):
                return STALE
            self._data[shard_id] = Checkpoint(position, complete, ended, owner, now_ms + lease_ms)
            return OK

    def release(self, shard_id: str, owner: str) -> None:
        self._check()
        with self._lock:
            current = self._data.get(shard_id)
            if current is not None and current.owner == owner:
                self._data[shard_id] = Checkpoint(current.position, current.complete, current.ended, "", 0)


# Sequence numbers exceed Lua's doubles: compare them as decimal strings, by length first.
# Leases use the server's clock (TIME); replicate_commands lets Redis < 5 write after reading it.
_LUA_COMMON = """
if redis.replicate_commands then redis.replicate_commands() end
local function server_now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function seq_cmp(a, b)
  a = string.gsub(a, '^0+', '') ; b = string.gsub(b, '^0+', '')
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end
local function lease_blocks(key, owner, now)
  local current = redis.call('HGET', key, 'owner')
  local lease = tonumber(redis.call('HGET', key, 'lease_until') or '0')
  return current and current ~= '' and current ~= owner and lease > now
end
"""

_LUA_SAVE = _LUA_COMMON + """
local key, owner, seq, subseq = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
local complete, ended, lease, now = ARGV[4], ARGV[5], tonumber(ARGV[6]), server_now_ms()
if lease_blocks(key, owner, now) then return 'not_owner' end
if redis.call('HGET', key, 'ended') == '1' then return 'stale' end
local old_seq = redis.call('HGET', key, 'seq')
if old_seq and old_seq ~= '' then
  if seq == '' then return 'stale' end
  local c = seq_cmp(seq, old_seq)
  if c < 0 or (c == 0 and subseq < tonumber(redis.call('HGET', key, 'subseq'))) then return 'stale' end
end
redis.call('HSET', key, 'seq', seq, 'subseq', subseq, 'complete', complete, 'ended', ended,
           'owner', owner, 'lease_until', now + lease)
return 'ok'
"""

_LUA_CLAIM = _LUA_COMMON + """
local key, owner, lease, now = KEYS[1], ARGV[1], tonumber(ARGV[2]), server_now_ms()
if lease_blocks(key, owner, now) then return 0 end
redis.call('HSET', key, 'owner', owner, 'lease_until', now + lease)
return 1
"""

_LUA_RELEASE = """
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'owner', '', 'lease_until', 0)
end
return 1
"""


class RedisCheckpointStore:
    """Checkpoints in Redis hashes, written only through compare-and-set Lua scripts.

    The redis client is injected (``redis.Redis`` or ``RedisCluster``); connection errors
    propagate so the consumer can keep its in-flight state and retry. Leases are on the server's
    clock: the ``now_ms`` arguments are ignored, and ``lease_until_ms`` is server time.

    ``wait_replicas`` (the URL's): a claim, save or release returns only once that many replicas
    acknowledged it (``WAIT``), and raises ``pistats.redisconn.ReplicasBehind`` otherwise (the
    consumer retries it as any Redis error), so a failover cannot take back a checkpoint or a
    lease the consumer acted on.
    """

    def __init__(self, redis_client, app_name: str, stream: str, *, wait_replicas: int = 0,
                 wait_timeout_ms: int = DEFAULT_WAIT_TIMEOUT_MS):
        self._redis = redis_client
        self._prefix = f"pistats:ckpt:{app_name}:{stream}:"
        self._wait_replicas = wait_replicas
        self._wait_timeout_ms = wait_timeout_ms
        self._save = self._script(_LUA_SAVE)
        self._claim = self._script(_LUA_CLAIM)
        self._release = self._script(_LUA_RELEASE)

    def _script(self, body: str):
        """``run(keys=..., args=...)`` of a one-key script: redis-py's Script, or with replicas to
        wait for, the script and WAIT on one connection to the key's master."""
        if not self._wait_replicas:
            return self._redis.register_script(body)
        script = Script.of(body)

        def run(keys, args):
            return run_on_node(self._redis, keys[0], [(script, keys, args)], wait_replicas=self._wait_replicas,
                               wait_timeout_ms=self._wait_timeout_ms)[0]

        return run

    def key(self, shard_id: str) -> str:
        return self._prefix + shard_id

    def load(self, shard_id: str) -> Checkpoint | None:
        raw = self._redis.hgetall(self.key(shard_id))
        if not raw:
            return None
        fields = {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
                  for k, v in raw.items()}
        seq = fields.get("seq", "")
        position = Position(int(seq), int(fields.get("subseq", "0"))) if seq else None
        return Checkpoint(position, fields.get("complete", "1") == "1", fields.get("ended") == "1",
                          fields.get("owner", ""), int(fields.get("lease_until", "0")))

    def claim(self, shard_id: str, owner: str, now_ms: int, lease_ms: int) -> bool:
        return bool(self._claim(keys=[self.key(shard_id)], args=[owner, lease_ms]))

    def save(self, shard_id, owner, position, complete, *, ended, now_ms, lease_ms) -> str:
        seq, subseq = (str(position.seq), position.subseq) if position is not None else ("", 0)
        result = self._save(keys=[self.key(shard_id)],
                            args=[owner, seq, subseq, int(complete), int(ended), lease_ms])
        return result.decode() if isinstance(result, bytes) else result

    def release(self, shard_id: str, owner: str) -> None:
        self._release(keys=[self.key(shard_id)], args=[owner])
