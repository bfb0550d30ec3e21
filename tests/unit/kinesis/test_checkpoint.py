"""Checkpoint store contract (compare-and-set, leases, SHARD_END) on the in-memory store.

The same cases run against Redis in tests/integration/kinesis/test_consumer_checkpoint_redis.py,
which loads CONTRACT from this file.
"""

import pytest

from pistats.kinesis.checkpoint import NOT_OWNER, OK, STALE, MemoryCheckpointStore
from pistats.kinesis.config import KinesisConfig
from pistats.redact import redact_url
from pistats.kinesis.ledger import Position

P = Position
S = "shardId-000000000000"
BIG = 49680574275476335198516986152488964919401508045282344962


SHORT, LONG = 200, 60_000  # lease lengths (ms): SHORT expires within a test, LONG never does


class FakeClock:
    """The callers' clock, which the memory store compares leases on; ``advance`` moves it.
    (The Redis store uses the server's clock: its tests pass one that advances by waiting.)"""

    def __init__(self):
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms

    def advance(self, ms: int) -> None:
        self.ms += ms


def save(store, clock, position, owner="a", *, complete=True, ended=False, lease=LONG):
    return store.save(S, owner, position, complete, ended=ended, now_ms=clock(), lease_ms=lease)


def claim(store, clock, owner, lease=LONG):
    return store.claim(S, owner, now_ms=clock(), lease_ms=lease)


def case_empty_shard_has_no_checkpoint(store, clock):
    assert store.load(S) is None


def case_save_and_load(store, clock):
    before = clock()
    assert save(store, clock, P(BIG, 2), complete=False, lease=1000) == OK
    loaded = store.load(S)
    assert (loaded.position, loaded.complete, loaded.ended, loaded.owner) == (P(BIG, 2), False, False, "a")
    assert before + 1000 <= loaded.lease_until_ms <= clock() + 1000


def case_never_moves_backwards_compared_as_integers(store, clock):
    assert save(store, clock, P(10**56)) == OK
    assert save(store, clock, P(9 * 10**55)) == STALE  # larger as a string, smaller as an int
    assert save(store, clock, P(10**56, 0)) == OK  # same position again is idempotent
    assert save(store, clock, P(10**56 + 1)) == OK
    assert store.load(S).position == P(10**56 + 1)


def case_sub_sequence_numbers_order_within_a_sequence_number(store, clock):
    assert save(store, clock, P(BIG, 3)) == OK
    assert save(store, clock, P(BIG, 2)) == STALE
    assert save(store, clock, P(BIG, 4)) == OK


def case_a_pinned_start_precedes_every_sub_record_of_its_sequence_number(store, clock):
    assert save(store, clock, P(BIG, -1), complete=False) == OK
    assert store.load(S).position == P(BIG, -1)
    assert save(store, clock, P(BIG, 0)) == OK
    assert save(store, clock, P(BIG, -1), complete=False) == STALE


def case_nothing_after_a_position_is_stale(store, clock):
    assert save(store, clock, P(5)) == OK
    assert save(store, clock, None) == STALE


def case_another_owners_live_lease_blocks_writes_and_claims(store, clock):
    assert claim(store, clock, "a")
    assert not claim(store, clock, "b")
    assert save(store, clock, P(1), owner="b") == NOT_OWNER
    assert save(store, clock, P(1), owner="a") == OK
    assert store.load(S).owner == "a"


def case_an_expired_lease_can_be_taken_over(store, clock):
    assert save(store, clock, P(7), owner="a", lease=SHORT) == OK
    assert not claim(store, clock, "b")
    clock.advance(SHORT + 50)
    assert claim(store, clock, "b")
    assert save(store, clock, P(6), owner="b") == STALE  # still never backwards
    assert save(store, clock, P(8), owner="b") == OK
    assert save(store, clock, P(9), owner="a") == NOT_OWNER


def case_release_lets_another_owner_in_at_once(store, clock):
    assert claim(store, clock, "a")
    store.release(S, "b")  # not the owner: no effect
    assert not claim(store, clock, "b")
    store.release(S, "a")
    assert claim(store, clock, "b")


def case_shard_end_is_final(store, clock):
    assert save(store, clock, P(5)) == OK
    assert save(store, clock, P(9), ended=True) == OK
    loaded = store.load(S)
    assert loaded.ended and loaded.position == P(9)
    assert save(store, clock, P(10)) == STALE
    assert save(store, clock, P(10), ended=True) == STALE


def case_shard_closed_without_records_ends_with_no_position(store, clock):
    assert save(store, clock, None, ended=True) == OK
    loaded = store.load(S)
    assert (loaded.position, loaded.complete, loaded.ended, loaded.owner) == (None, True, True, "a")


CONTRACT = [value for name, value in sorted(globals().items()) if name.startswith("case_")]


@pytest.mark.parametrize("case", CONTRACT, ids=lambda c: c.__name__)
def test_memory_store_contract(case):
    clock = FakeClock()
    case(MemoryCheckpointStore(), clock)


def test_unavailable_memory_store_raises_connection_error():
    store = MemoryCheckpointStore()
    store.available = False
    with pytest.raises(ConnectionError):
        store.load(S)
    with pytest.raises(ConnectionError):
        save(store, FakeClock(), P(1))


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


def test_config_takes_a_cluster_url_and_refuses_what_is_no_redis_url():
    cluster = KinesisConfig(stream="s", redis_url="redis+cluster://:s3cret@10.0.0.1:7001,10.0.0.2:7002/?wait_replicas=1")
    assert "s3cret" not in repr(cluster)
    with pytest.raises(ValueError, match="not a Redis URL: 'http://:\\*\\*\\*@h:1'"):
        KinesisConfig(stream="s", redis_url="http://:s3cret@h:1")


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
