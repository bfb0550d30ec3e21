"""Client write keys: which client a request belongs to, and whether it may write.

Redis holds only a SHA-256 digest of each key, never the key. Layout (``P`` = key prefix):

- ``P:writekey:<digest>`` hash: ``client_id``, ``enabled`` (``1``/``0``), ``key_id``, ``created_at``
- ``P:writekey-ids`` hash: ``key_id`` -> digest, so keys can be listed and disabled by id

A ``key_id`` (the first 12 hex digits of the digest) identifies a key in listings and logs
without revealing it. The two hashes may live on different Redis Cluster nodes, so a new key is
written index first, record second, without a transaction: a failure between the two leaves an
index entry without a record, which listings skip, and no key was handed out. Keys are random (192 bits), so a fast digest is enough; a stored digest is
compared with the computed one in constant time. Lookups are cached in-process for a few seconds,
so disabling a key takes effect within that delay.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from pistats.redisconn import run_on_node

KEY_PREFIX = "pk_"
CACHE_MAX_ENTRIES = 10_000


def generate_key() -> str:
    """A new write key: ``pk_`` and 32 URL-safe characters (192 random bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(24)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def key_id_of(digest: str) -> str:
    return digest[:12]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class KeyLookup:
    """Outcome of resolving a presented key: ``status`` is ``ok``, ``unknown`` or ``disabled``."""

    status: str
    client_id: str | None = None
    key_id: str | None = None


@dataclass(frozen=True)
class WriteKeyInfo:
    key_id: str
    client_id: str
    enabled: bool
    created_at: str


UNKNOWN = KeyLookup("unknown")


class WriteKeyStore:
    """Write keys in Redis, with a small in-process cache of lookups.

    ``redis`` is a redis-py client, single or cluster (bytes or decoded responses); ``clock`` a
    monotonic seconds callable (injected for tests). Redis errors propagate: the caller answers
    503. ``wait_replicas`` (the URL's): creating, enabling or disabling a key returns only once
    that many replicas hold the change (``WAIT``), so a failover cannot bring back a disabled
    key or lose one just handed out.
    """

    def __init__(
        self,
        redis,
        prefix: str = "pistats",
        cache_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        wait_replicas: int = 0,
    ):
        self._redis = redis
        self._wait_replicas = wait_replicas
        self._prefix = prefix
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._now = now
        self._cache: dict[str, tuple[float, KeyLookup]] = {}

    def _record_key(self, digest: str) -> str:
        return f"{self._prefix}:writekey:{digest}"

    @property
    def _index_key(self) -> str:
        return f"{self._prefix}:writekey-ids"

    def ping(self) -> None:
        self._redis.ping()

    def resolve(self, key: str | None) -> KeyLookup:
        """The client of a presented key (None or '' is ``unknown``)."""
        if not key:
            return UNKNOWN
        digest = key_digest(key)
        moment = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > moment:
            return cached[1]
        lookup = self._load(digest)
        if self._cache_seconds > 0:
            if len(self._cache) >= CACHE_MAX_ENTRIES:
                self._cache.clear()
            self._cache[digest] = (moment + self._cache_seconds, lookup)
        return lookup

    def _load(self, digest: str) -> KeyLookup:
        fields = {_text(k): _text(v) for k, v in self._redis.hgetall(self._record_key(digest)).items()}
        stored = fields.get("digest", "")
        # The Redis lookup is by digest already; comparing the stored digest in constant time
        # keeps a timing side channel out even if the layout changes to a non-exact lookup.
        if not fields or not hmac.compare_digest(stored.encode(), digest.encode()):
            return UNKNOWN
        status = "ok" if fields.get("enabled") == "1" else "disabled"
        return KeyLookup(status, fields.get("client_id"), key_id_of(digest))

    def create(self, client_id: str) -> tuple[str, WriteKeyInfo]:
        """Create an enabled key for ``client_id``; returns the key (shown once) and its info."""
        if not client_id or len(client_id) > 128 or any(c.isspace() or c == ":" for c in client_id):
            raise ValueError("client_id must be 1-128 characters without spaces or ':'")
        key = generate_key()
        digest = key_digest(key)
        info = WriteKeyInfo(
            key_id=key_id_of(digest),
            client_id=client_id,
            enabled=True,
            created_at=self._now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        self._write(self._index_key, "HSET", self._index_key, info.key_id, digest)
        self._write(self._record_key(digest), "HSET", self._record_key(digest), "digest", digest,
                    "client_id", client_id, "enabled", "1", "key_id", info.key_id, "created_at", info.created_at)
        return key, info

    def _write(self, key: str, *command) -> None:
        """One write command on ``key``, followed by WAIT on its connection when asked."""
        if self._wait_replicas:
            run_on_node(self._redis, key, [], commands=[command], wait_replicas=self._wait_replicas)
        else:
            self._redis.execute_command(*command)

    def list(self) -> list[WriteKeyInfo]:
        """Every key's info (never the key), ordered by client then creation time."""
        infos = []
        for digest in self._redis.hgetall(self._index_key).values():
            fields = {_text(k): _text(v) for k, v in self._redis.hgetall(self._record_key(_text(digest))).items()}
            if fields:
                infos.append(
                    WriteKeyInfo(fields["key_id"], fields["client_id"], fields["enabled"] == "1", fields["created_at"])
                )
        return sorted(infos, key=lambda i: (i.client_id, i.created_at, i.key_id))

    def set_enabled(self, key_id: str, enabled: bool) -> WriteKeyInfo | None:
        """Enable or disable a key by id; None if there is no such key."""
        digest = self._redis.hget(self._index_key, key_id)
        if digest is None:
            return None
        record_key = self._record_key(_text(digest))
        if not self._redis.exists(record_key):
            return None
        self._write(record_key, "HSET", record_key, "enabled", "1" if enabled else "0")
        self._cache.pop(_text(digest), None)
        fields = {_text(k): _text(v) for k, v in self._redis.hgetall(record_key).items()}
        return WriteKeyInfo(fields["key_id"], fields["client_id"], fields["enabled"] == "1", fields["created_at"])
