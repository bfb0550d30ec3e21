"""Checkpoint store contract (compare-and-set, leases, SHARD_END) on the in-memory store.

The same cases run against Redis in tests/integration/kinesis/test_consumer_checkpoint_redis.py,
which loads CONTRACT from this file.
"""

import pytest

from pistats.kinesis.checkpoint import NOT_OWNER, OK, STALE, Checkpoint, MemoryCheckpointStore
from pistats.kinesis.config import KinesisConfig
from pistats.redact import redact_url
from pistats.kinesis.ledger import Position

P = Position
S = "shardId-000000000000"
BIG = 49680574275476335198516986152488964919401508045282344962


def save(store, position, owner="a", *, complete=True, ended=False, now=0, lease=1000):
    return store.save(S, owner, position, complete, ended=ended, now_ms=now, lease_ms=lease)


def case_empty_shard_has_no_checkpoint(store):
    assert store.load(S) is None


def case_save_and_load(store):
    assert save(store, P(BIG, 2), complete=False, now=100) == OK
    assert store.load(S) == Checkpoint(P(BIG, 2), complete=False, ended=False, owner="a", lease_until_ms=1100)


def case_never_moves_backwards_compared_as_integers(store):
    assert save(store, P(10**56)) == OK
    assert save(store, P(9 * 10**55)) == STALE  # larger as a string, smaller as an int
    assert save(store, P(10**56, 0)) == OK  # same position again is idempotent
    assert save(store, P(10**56 + 1)) == OK
    assert store.load(S).position == P(10**56 + 1)


def case_sub_sequence_numbers_order_within_a_sequence_number(store):
    assert save(store, P(BIG, 3)) == OK
    assert save(store, P(BIG, 2)) == STALE
    assert save(store, P(BIG, 4)) == OK


def case_a_pinned_start_precedes_every_sub_record_of_its_sequence_number(store):
    assert save(store, P(BIG, -1), complete=False) == OK
    assert store.load(S).position == P(BIG, -1)
    assert save(store, P(BIG, 0)) == OK
    assert save(store, P(BIG, -1), complete=False) == STALE


def case_nothing_after_a_position_is_stale(store):
    assert save(store, P(5)) == OK
    assert save(store, None) == STALE


def case_another_owners_live_lease_blocks_writes_and_claims(store):
    assert store.claim(S, "a", now_ms=0, lease_ms=1000)
    assert not store.claim(S, "b", now_ms=999, lease_ms=1000)
    assert save(store, P(1), owner="b", now=500) == NOT_OWNER
    assert save(store, P(1), owner="a", now=500) == OK
    assert store.load(S).owner == "a"


def case_an_expired_lease_can_be_taken_over(store):
    assert save(store, P(7), owner="a", now=0, lease=1000) == OK
    assert store.claim(S, "b", now_ms=1001, lease_ms=1000)
    assert save(store, P(6), owner="b", now=1002) == STALE  # still never backwards
    assert save(store, P(8), owner="b", now=1002) == OK
    assert save(store, P(9), owner="a", now=1003) == NOT_OWNER


def case_release_lets_another_owner_in_at_once(store):
    assert store.claim(S, "a", now_ms=0, lease_ms=10_000)
    store.release(S, "b")  # not the owner: no effect
    assert not store.claim(S, "b", now_ms=1, lease_ms=1000)
    store.release(S, "a")
    assert store.claim(S, "b", now_ms=2, lease_ms=1000)


def case_shard_end_is_final(store):
    assert save(store, P(5)) == OK
    assert save(store, P(9), ended=True) == OK
    loaded = store.load(S)
    assert loaded.ended and loaded.position == P(9)
    assert save(store, P(10)) == STALE
    assert save(store, P(10), ended=True) == STALE


def case_shard_closed_without_records_ends_with_no_position(store):
    assert save(store, None, ended=True) == OK
    assert store.load(S) == Checkpoint(None, True, True, "a", 1000)


CONTRACT = [value for name, value in sorted(globals().items()) if name.startswith("case_")]


@pytest.mark.parametrize("case", CONTRACT, ids=lambda c: c.__name__)
def test_memory_store_contract(case):
    case(MemoryCheckpointStore())


def test_unavailable_memory_store_raises_connection_error():
    store = MemoryCheckpointStore()
    store.available = False
    with pytest.raises(ConnectionError):
        store.load(S)
    with pytest.raises(ConnectionError):
        save(store, P(1))


# --- config (kept here: it is the checkpoint's and spout's settings) --------------------------


def test_config_from_topology_keys_with_defaults():
    config = KinesisConfig.from_dict({"pistats.kinesis.stream": "events", "pistats.kinesis.max_uncommitted": 50,
                                      "topology.max.spout.pending": 1000})
    assert config.stream == "events" and config.max_uncommitted == 50
    assert config.start_position == "TRIM_HORIZON"
    assert config.retry_policy().max_retries == 5


def test_config_refuses_unknown_keys_and_bad_values():
    with pytest.raises(ValueError, match="unknown"):
        KinesisConfig.from_dict({"pistats.kinesis.stream": "s", "pistats.kinesis.strem": "x"})
    with pytest.raises(ValueError):
        KinesisConfig(stream="")
    with pytest.raises(ValueError):
        KinesisConfig(stream="s", start_position="EARLIEST")
    with pytest.raises(ValueError):
        KinesisConfig(stream="s", start_position="AT_TIMESTAMP")
    with pytest.raises(ValueError):
        KinesisConfig(stream="s", get_records_limit=10_001)
    with pytest.raises(ValueError):
        KinesisConfig(stream="s", max_uncommitted=0)
    with pytest.raises(ValueError):
        KinesisConfig(stream="s", retries=-1)


def test_config_at_timestamp_accepts_iso_and_epoch_ms():
    iso = KinesisConfig(stream="s", start_position="AT_TIMESTAMP", start_timestamp="2026-11-26T05:00:00Z")
    ms = KinesisConfig(stream="s", start_position="AT_TIMESTAMP", start_timestamp=1795669200000)
    assert iso.start_datetime() == ms.start_datetime()
    with pytest.raises(ValueError):
        KinesisConfig(stream="s", start_position="AT_TIMESTAMP", start_timestamp="2026-11-26T05:00:00")


def test_config_repr_hides_the_redis_password():
    config = KinesisConfig(stream="s", redis_url="redis://user:s3cret@host:6379/0")
    assert "s3cret" not in repr(config)
    assert "redis://user:***@host:6379/0" in repr(config)
    assert redact_url("redis://host:6379/0") == "redis://host:6379/0"


def test_config_accepts_numbers_as_text_from_command_line_options():
    config = KinesisConfig.from_topology_conf({"pistats.kinesis.stream": "s", "pistats.kinesis.max_uncommitted": "500",
                                               "pistats.kinesis.read_timeout_s": "2.5",
                                               "pistats.kinesis.endpoint_url": "null",
                                               "pistats.kinesis.start_position": "AT_TIMESTAMP",
                                               "pistats.kinesis.start_timestamp": "1795669200000"})
    assert (config.max_uncommitted, config.read_timeout_s, config.endpoint_url) == (500, 2.5, None)
    assert config.start_datetime().isoformat() == "2026-11-26T05:00:00+00:00"
    with pytest.raises(ValueError, match="must be a number"):
        KinesisConfig.from_dict({"stream": "s", "retries": "many"})
    with pytest.raises(ValueError, match="stream is required"):
        KinesisConfig.from_topology_conf({"topology.name": "t"})
