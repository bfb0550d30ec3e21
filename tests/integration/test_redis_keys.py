"""Deleting keys by pattern against the real Redis."""

from pistats.redis_keys import delete_matching


def test_deletes_every_matching_key_across_chunks_and_nothing_else(redis_client, key_prefix):
    redis_client.mset({f"{key_prefix}:run:{n}": n for n in range(2500)})  # more than one chunk
    redis_client.set(f"{key_prefix}:other", 1)
    assert delete_matching(redis_client, f"{key_prefix}:run:*") == 2500
    assert list(redis_client.scan_iter(match=f"{key_prefix}:run:*")) == []
    assert redis_client.get(f"{key_prefix}:other") == b"1"
    assert delete_matching(redis_client, f"{key_prefix}:run:*") == 0
