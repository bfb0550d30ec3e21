"""Deleting a run's keys from Redis by pattern: SCAN, then DEL in chunks (never KEYS, which
blocks the server while it walks the whole keyspace)."""

from __future__ import annotations

_CHUNK = 1000


def delete_matching(client, pattern: str) -> int:
    """Delete every key matching ``pattern`` (a SCAN ``MATCH`` glob); returns how many there were."""
    keys = list(client.scan_iter(match=pattern, count=_CHUNK))
    for start in range(0, len(keys), _CHUNK):
        client.delete(*keys[start:start + _CHUNK])
    return len(keys)
