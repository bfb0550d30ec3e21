"""Idempotency marks: drop client retries of events already put into Kinesis.

A mark is a Redis key ``<prefix>:seen:<client_id>:<event_id>`` set with ``SET NX EX ttl``
*after* the event's put succeeded, so a failed put never turns the client's retry into a silent
drop. Two identical requests racing each other may both be put (the topology deduplicates by
``(client_id, event_id)`` as well); the marks only spare Kinesis the common case of an SDK
retrying after a lost response.
"""

from __future__ import annotations

from collections.abc import Sequence


class IdempotencyMarks:
    def __init__(self, redis, prefix: str = "pistats", ttl_seconds: int = 24 * 3600):
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_seconds

    def _key(self, client_id: str, event_id: str) -> str:
        return f"{self._prefix}:seen:{client_id}:{event_id}"

    def seen(self, client_id: str, event_ids: Sequence[str]) -> set[str]:
        """The event ids among ``event_ids`` that carry a mark (one round trip)."""
        if not event_ids:
            return set()
        pipe = self._redis.pipeline(transaction=False)
        for event_id in event_ids:
            pipe.exists(self._key(client_id, event_id))
        return {event_id for event_id, found in zip(event_ids, pipe.execute()) if found}

    def mark(self, client_id: str, event_ids: Sequence[str]) -> int:
        """Mark events as put; returns how many marks were new (one round trip)."""
        if not event_ids:
            return 0
        pipe = self._redis.pipeline(transaction=False)
        for event_id in event_ids:
            pipe.set(self._key(client_id, event_id), b"1", nx=True, ex=self._ttl)
        return sum(1 for created in pipe.execute() if created)
