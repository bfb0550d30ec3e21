"""pistats.redisconn.run_on_node against the single Redis: scripts and commands on one
connection, an unknown script loaded, error replies raised, and WAIT refusing to confirm a
write no replica acknowledged (the local Redis has none)."""

from datetime import datetime, timezone

import pytest
import redis as redis_lib

from tests.support.clock import Clock

from pistats.enrich.sessions import RedisSessionStore, SessionConfig, SessionEvent
from pistats.redisconn import ReplicasBehind, Script, run_on_node

pytestmark = pytest.mark.integration

COUNTER = Script.of("return redis.call('INCRBY', KEYS[1], ARGV[1])")


def test_scripts_then_commands_in_order_on_one_connection(redis_client, key_prefix):
    key = f"{key_prefix}:n"
    redis_client.script_flush()  # as after a restart: the script is loaded, the round sent again
    replies = run_on_node(redis_client, key, [(COUNTER, [key], [2]), (COUNTER, [key], [3])],
                          commands=[("GET", key), ("CLIENT", "ID")])
    assert replies[:3] == [2, 5, b"5"]
    assert redis_client.get(key) == b"5"  # the failed round ran nothing: no doubled increment


def test_an_error_reply_is_raised(redis_client, key_prefix):
    key = f"{key_prefix}:h"
    redis_client.hset(key, "f", "v")
    with pytest.raises(redis_lib.ResponseError, match="WRONGTYPE"):
        run_on_node(redis_client, key, [(COUNTER, [key], [1])])


def test_a_write_no_replica_acknowledged_is_not_confirmed(redis_client, key_prefix):
    key = f"{key_prefix}:w"
    with pytest.raises(ReplicasBehind, match="0 of 1 replicas acknowledged a write within 100 ms"):
        run_on_node(redis_client, key, [(COUNTER, [key], [1])], wait_replicas=1, wait_timeout_ms=100)
    assert redis_client.get(key) == b"1"  # it landed on the master: only unconfirmed


def test_sessions_asking_for_a_replica_get_no_answer_from_a_lone_redis(redis_client, key_prefix):
    # The budget runs on a clock only the backoff's sleeps advance, so a loaded machine (each
    # WAIT takes its 50 ms of real time) cannot use the budget up before the first retry.
    clock = Clock()
    store = RedisSessionStore(redis_client, SessionConfig(key_prefix=key_prefix, outage_budget_s=0.5),
                              now=lambda: datetime(2026, 11, 26, tzinfo=timezone.utc),
                              monotonic=clock, sleep=clock.sleep, wait_replicas=1, wait_timeout_ms=50)
    with pytest.raises(ReplicasBehind):
        store.assign([SessionEvent("c", "u", "e1", 1_790_000_000_000)])
    assert store.outage_retries > 0
