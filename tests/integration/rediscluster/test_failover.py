"""A master of the cluster SIGKILLed while sessions, checkpoints and write keys are written with
``wait_replicas=1``: its replica takes over, the killed node comes back as the new master's
replica, every write that returned is still there, and the workload ends exactly as a run on a
single Redis without a fault.

"No loss" here means: a write the store returned (fields handed out, a checkpoint or lease
confirmed, a key created) was acknowledged by the master's replica (WAIT), so the failover to
that replica keeps it. A write that failed may or may not have landed; the caller repeats it (as
Storm replays a failed tuple) and gets the same answer. docs/scaling.md says what a failover
costs without ``wait_replicas``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from datetime import datetime, timezone

import pytest
import redis as redis_lib

from pistats.enrich.chain import connect_redis
from pistats.enrich.sessions import RedisSessionStore, SessionConfig, SessionConflict, SessionEvent
from pistats.ingest.keys import WriteKeyStore
from pistats.kinesis.checkpoint import OK, RedisCheckpointStore
from pistats.kinesis.ledger import Position
from pistats.redis_keys import delete_matching
from pistats.redisconn import REDIS_ERRORS, connect
from tests.support.redis_cluster import start_cluster

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)
T0 = 1_790_000_000_000
MIN = 60_000
USERS, EVENTS_PER_USER, BATCH = 300, 20, 100


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A cluster of this module's own: the test kills one of its masters."""
    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster-failover"))
    yield cluster
    cluster.stop()


def batches() -> list[list[SessionEvent]]:
    """Every user's events in time order, interleaved, with gaps that open new sessions."""
    events = [SessionEvent("acme", f"user-{u}", f"e-{u}-{n}", T0 + n * 7 * MIN + (40 * MIN if n % 6 == 5 else 0))
              for n in range(EVENTS_PER_USER) for u in range(USERS)]
    return [events[start:start + BATCH] for start in range(0, len(events), BATCH)]


def sessionise_all(store, work, *, pause_s=0.0, progress=None, errors=None) -> list[dict]:
    """Assign every batch in order; a batch that raises is repeated (a replayed tuple)."""
    answers = []
    for index, batch in enumerate(work):
        while True:
            try:
                answers += store.assign(batch)
                break
            except (*REDIS_ERRORS, SessionConflict) as error:
                if errors is not None:
                    errors.append(type(error).__name__)
                time.sleep(0.2)
        if progress is not None:
            progress(index + 1)
        time.sleep(pause_s)
    return answers


def test_a_master_killed_mid_run_loses_nothing_that_was_answered(cluster, redis_url):
    prefix = f"pistats-test:failover-{uuid.uuid4().hex[:10]}"
    work = batches()
    single = redis_lib.Redis.from_url(redis_url)
    try:
        reference = sessionise_all(RedisSessionStore(single, SessionConfig(key_prefix=prefix), now=lambda: NOW), work)
    finally:
        delete_matching(single, f"{prefix}:*")

    url = cluster.url + "?wait_replicas=1"
    client = connect_redis(url)
    store = RedisSessionStore(client, SessionConfig(key_prefix=prefix), now=lambda: NOW, wait_replicas=1)
    # The master holding the most users dies.
    masters = {}
    for u in range(USERS):
        port = client.get_node_from_key(store.state_key(("acme", f"user-{u}"))).port
        masters[port] = masters.get(port, 0) + 1
    victim = max(masters, key=masters.get)
    replica_of_victim = [port for port in cluster.replicas() if cluster.master_of(port) == victim]
    assert len(replica_of_victim) == 1

    checkpoints = RedisCheckpointStore(connect(url), "failover", prefix, wait_replicas=1)
    # Shards on every master, three of them on the one that dies.
    candidates = [f"shardId-{n:012d}" for n in range(200)]
    on_victim = [shard for shard in candidates if client.get_node_from_key(checkpoints.key(shard)).port == victim]
    shards = on_victim[:3] + [shard for shard in candidates if shard not in on_victim][:6]
    keys = WriteKeyStore(connect(url), prefix, cache_seconds=0, wait_replicas=1)
    created = [keys.create(f"client-{n}") for n in range(5)]

    done_batches, session_errors, confirmed, attempted = [0], [], {}, {}
    stop_saving = threading.Event()

    def save_checkpoints() -> None:
        """A consumer's checkpoints, one step further on every shard in turn, until told to stop."""
        position = 0
        while not stop_saving.is_set():
            position += 1
            for shard in shards:
                attempted[shard] = position
                try:
                    if checkpoints.save(shard, "task-0", Position(position), True, ended=False, now_ms=0,
                                        lease_ms=60_000) == OK:
                        confirmed[shard] = position
                except REDIS_ERRORS:
                    pass
            time.sleep(0.02)

    saver = threading.Thread(target=save_checkpoints, daemon=True)
    answers: list[dict] = []
    writer = threading.Thread(target=lambda: answers.extend(sessionise_all(
        store, work, pause_s=0.05, progress=lambda n: done_batches.__setitem__(0, n), errors=session_errors)),
        daemon=True)
    saver.start()
    writer.start()
    deadline = time.monotonic() + 60
    while done_batches[0] < len(work) // 3:
        assert time.monotonic() < deadline and writer.is_alive(), "the writer did not get a third of the way"
        time.sleep(0.02)
    killed_at = done_batches[0]
    os.kill(cluster.node_pid(victim), signal.SIGKILL)
    # Its replica takes over its slots; it has no replica of its own then, so writes there are
    # not confirmed (WAIT) until the killed node is back, as its replica, as an operator or
    # ElastiCache's node replacement would bring it.
    while replica_of_victim[0] not in cluster.masters():
        assert time.monotonic() < deadline + 60, "the replica was not promoted"
        time.sleep(0.1)
    assert victim not in cluster.masters()
    cluster.start_node(victim)
    cluster.wait_healthy()
    assert victim in cluster.replicas()

    writer.join(180)
    assert not writer.is_alive(), "the writer did not finish after the failover"
    stop_saving.set()
    saver.join(30)
    assert killed_at < len(work)
    assert store.outage_retries + len(session_errors) > 0, "the kill did not reach the writer"

    # Every answer equals the fault-free run's: nothing answered was lost, nothing counted twice.
    assert answers == reference
    # And all of it is readable from the new masters: a fresh store finds every event in the memo.
    fresh = RedisSessionStore(connect_redis(url), SessionConfig(key_prefix=prefix, state_cache_size=0),
                              now=lambda: NOW, wait_replicas=1)
    assert [fields for batch in work for fields in fresh.assign(batch)] == reference
    assert fresh.replays == USERS * EVENTS_PER_USER and fresh.conflicts == 0
    # Every confirmed checkpoint is there (a save that failed may have landed too).
    reader = RedisCheckpointStore(connect(cluster.url), "failover", prefix)
    for shard in shards:
        assert confirmed[shard] <= reader.load(shard).position.seq <= attempted[shard]
    assert {client.get_node_from_key(checkpoints.key(shard)).port for shard in on_victim[:3]} == {replica_of_victim[0]}
    # Every key created before the kill still resolves.
    assert [keys.resolve(key).status for key, _ in created] == ["ok"] * len(created)
