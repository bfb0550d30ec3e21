from datetime import datetime, timedelta, timezone

import pytest
import redis as redis_lib

from pistats.enrich.chain import connect_redis
from pistats.enrich.sessions import READ_SCRIPT, RedisSessionStore, SessionConfig, SessionEvent, session_id

T0 = 1_790_000_000_000
MIN = 60_000
NOW = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)


def ev(t, event_id, user="u1", client="c1"):
    return SessionEvent(client, user, event_id, T0 + t)


@pytest.fixture
def store(redis_client, key_prefix):
    return RedisSessionStore(redis_client, SessionConfig(key_prefix=key_prefix), now=lambda: NOW)


def test_batch_assigns_sessions_and_persists_state(store):
    fields = store.assign([ev(0, "a"), ev(MIN, "b"), ev(0, "x", user="u2"), ev(3 * 60 * MIN, "c")])
    assert [(f["session_index"], f["session_event_index"]) for f in fields] == [(1, 1), (1, 2), (1, 1), (2, 1)]
    assert fields[0]["session_id"] == session_id(ev(0, "a"))
    assert fields[0]["first_seen_at"] == datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=T0)
    later = store.assign([ev(3 * 60 * MIN + MIN, "d")])
    assert (later[0]["session_index"], later[0]["session_event_index"], later[0]["is_new_user"]) == (2, 2, False)


def test_replayed_batch_gets_identical_fields_and_is_not_counted(store):
    batch = [ev(0, "a"), ev(MIN, "b"), ev(2 * MIN, "c")]
    first = store.assign(batch)
    again = store.assign(batch)
    assert again == first
    assert store.replays == 3
    after = store.assign([ev(3 * MIN, "d")])
    assert after[0]["session_event_index"] == 4


def test_duplicate_event_id_within_and_across_batches(store):
    fields = store.assign([ev(0, "a"), ev(0, "a"), ev(MIN, "b")])
    assert fields[1] == fields[0] and fields[2]["session_event_index"] == 2
    assert store.assign([ev(0, "a")])[0]["is_new_user"] is True


def test_keys_carry_cleanup_ttls(store, redis_client):
    store.assign([ev(0, "a")])
    user = ("c1", "u1")
    state_ttl = redis_client.ttl(store.state_key(user))
    assert store.config.state_ttl_s - 5 <= state_ttl <= store.config.state_ttl_s
    bucket = int(NOW.timestamp() * 1000) // (store.config.memo_ttl_s * 1000)
    memo_ttl = redis_client.ttl(store.memo_key(bucket, user))
    assert store.config.memo_ttl_s < memo_ttl <= 2 * store.config.memo_ttl_s


def test_each_memo_key_holds_one_users_events(store, redis_client, key_prefix):
    # Not one hash for every user: its expiry would free the whole bucket's traffic at once, on
    # Redis's main thread. A user's hash holds only that user's events of one bucket.
    events = [ev(n * MIN, f"e{n}", user=f"u{u}") for u in range(50) for n in range(3)]
    store.assign(events)
    store.assign(events)  # replays write nothing
    memo_keys = sorted(redis_client.scan_iter(f"{key_prefix}:memo:*", count=1000))
    assert len(memo_keys) == 50
    assert {redis_client.hlen(key) for key in memo_keys} == {3}
    assert {redis_client.object("encoding", key) for key in memo_keys} == {b"listpack"}


def test_memo_from_the_previous_bucket_is_still_found(redis_client, key_prefix):
    config = SessionConfig(key_prefix=key_prefix, memo_ttl_s=3600)
    clock = [NOW]
    store = RedisSessionStore(redis_client, config, now=lambda: clock[0])
    first = store.assign([ev(0, "a")])
    clock[0] = NOW + timedelta(seconds=3600)
    assert store.assign([ev(0, "a")]) == first
    clock[0] = NOW + timedelta(seconds=3 * 3600)
    assert store.assign([ev(0, "a")])[0]["session_event_index"] == 2  # the memo has expired


def test_keys_of_distinct_users_never_collide(store):
    a = store.assign([ev(0, "e", client="a:b", user="c")])
    b = store.assign([ev(0, "e", client="a", user="b:c")])
    assert a[0]["is_new_user"] and b[0]["is_new_user"]
    assert store.state_key(("a:b", "c")) != store.state_key(("a", "b:c"))


def test_conflict_on_one_user_does_not_hold_back_the_others(redis_client, key_prefix):
    config = SessionConfig(key_prefix=key_prefix)
    other = RedisSessionStore(redis_client, config, now=lambda: NOW)
    proxy = InterferingRedis(redis_client, lambda: other.assign([ev(0, "first", user="busy")]))
    store = RedisSessionStore(proxy, config, now=lambda: NOW)
    fields = store.assign([ev(MIN, "q", user="quiet"), ev(MIN, "b", user="busy")])
    assert store.conflicts == 1
    assert [(f["session_event_index"], f["is_new_user"]) for f in fields] == [(1, True), (2, False)]
    assert store.assign([ev(2 * MIN, "q2", user="quiet")])[0]["session_event_index"] == 2


class InterferingRedis:
    """Fault injection: right after the first read, another writer updates the same user."""

    def __init__(self, client, interfere):
        self.client, self.interfere, self.reads = client, interfere, 0

    def register_script(self, text):
        script = self.client.register_script(text)
        if text != READ_SCRIPT:
            return script

        def read_then_interfere(**kwargs):
            replies = script(**kwargs)
            self.reads += 1
            if self.reads == 1:
                self.interfere()
            return replies

        return read_then_interfere


def test_concurrent_writer_is_detected_and_retried(redis_client, key_prefix):
    config = SessionConfig(key_prefix=key_prefix)
    other = RedisSessionStore(redis_client, config, now=lambda: NOW)
    proxy = InterferingRedis(redis_client, lambda: other.assign([ev(0, "first")]))
    store = RedisSessionStore(proxy, config, now=lambda: NOW)
    fields = store.assign([ev(MIN, "second")])
    assert store.conflicts == 1
    assert (fields[0]["session_event_index"], fields[0]["is_new_user"]) == (2, False)
    assert fields[0]["session_id"] == session_id(ev(0, "first"))


def test_unreachable_redis_raises_once_the_outage_budget_is_spent(key_prefix):
    dead = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=None)
    clock, sleeps = [0.0], []

    def sleep(seconds):
        sleeps.append(seconds)
        clock[0] += seconds

    store = RedisSessionStore(dead, SessionConfig(key_prefix=key_prefix, outage_budget_s=2.0), now=lambda: NOW,
                              monotonic=lambda: clock[0], sleep=sleep)
    with pytest.raises(redis_lib.ConnectionError):
        store.assign([ev(0, "a")])
    assert sleeps == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8, 0.45])  # backoff, capped by what is left
    assert store.outage_retries == 6


class FlakyRedis:
    """Fault injection: the first ``failures`` script calls fail as a Redis restart does."""

    def __init__(self, client, failures, error):
        self.client, self.failures, self.error = client, failures, error

    def register_script(self, text):
        script = self.client.register_script(text)

        def flaky(**kwargs):
            if self.failures:
                self.failures -= 1
                raise self.error
            return script(**kwargs)

        return flaky


@pytest.mark.parametrize("error", [redis_lib.ConnectionError("Connection refused"),
                                   redis_lib.BusyLoadingError("Redis is loading the dataset in memory"),
                                   redis_lib.TimeoutError("Timeout reading from socket")])
def test_an_outage_within_the_budget_is_waited_out(redis_client, key_prefix, error):
    store = RedisSessionStore(FlakyRedis(redis_client, 3, error), SessionConfig(key_prefix=key_prefix), now=lambda: NOW,
                              sleep=lambda seconds: None)
    fields = store.assign([ev(0, "a"), ev(MIN, "b")])
    assert [f["session_event_index"] for f in fields] == [1, 2] and store.outage_retries == 3


def test_other_redis_errors_are_not_retried(redis_client, key_prefix):
    store = RedisSessionStore(FlakyRedis(redis_client, 1, redis_lib.ResponseError("WRONGTYPE")),
                              SessionConfig(key_prefix=key_prefix), now=lambda: NOW, sleep=lambda seconds: None)
    with pytest.raises(redis_lib.ResponseError):
        store.assign([ev(0, "a")])
    assert store.outage_retries == 0


def test_reconnects_after_the_connections_are_dropped(redis_url, redis_client, key_prefix, unique_name):
    # What a Redis restart looks like to the client (the shared server itself is not restarted).
    client = connect_redis(redis_url, client_name=unique_name)
    store = RedisSessionStore(client, SessionConfig(key_prefix=key_prefix), now=lambda: NOW)
    store.assign([ev(0, "a")])
    ours = [c["id"] for c in redis_client.client_list() if c.get("name") == unique_name]
    assert ours
    for client_id in ours:
        redis_client.client_kill_filter(_id=client_id)
    fields = store.assign([ev(MIN, "b")])
    assert fields[0]["session_event_index"] == 2
    client.close()


def test_non_ascii_ids_use_the_same_keys_in_lua_and_python(store, redis_client):
    user = ("clïent", "üser-😀")
    event = SessionEvent(*user, "évent-😀", T0)
    first = store.assign([event])
    assert redis_client.exists(store.state_key(user)) == 1
    assert store.assign([event]) == first and store.replays == 1


def test_a_batch_of_five_thousand_users(store):
    events = [ev(0, f"e{n}", user=f"u{n}") for n in range(5000)]
    fields = store.assign(events)
    assert all(f["is_new_user"] and f["session_index"] == 1 for f in fields)
    assert store.assign(events) == fields and store.replays == 5000


def test_a_batch_of_ten_thousand_users_is_read_in_one_call(redis_client, key_prefix):
    # Lua's unpack is limited by its C stack (about 8,000 values): the read script slices.
    config = SessionConfig(key_prefix=key_prefix, state_cache_size=0)
    store = RedisSessionStore(redis_client, config, now=lambda: NOW)
    events = [ev(0, f"e{n}", user=f"u{n}") for n in range(10_000)]
    fields = store.assign(events)
    assert all(f["is_new_user"] and f["session_index"] == 1 for f in fields)
    assert store.assign(events) == fields  # no cache: every state and memo entry read back
    assert (store.reads, store.replays) == (2, 10_000)


def test_a_known_user_costs_one_round_trip(store):
    store.assign([ev(0, "a")])
    store.assign([ev(MIN, "b")])
    fields = store.assign([ev(2 * MIN, "c")])
    assert store.reads == 1 and fields[0]["session_event_index"] == 3


def test_a_stale_cache_is_caught_by_the_version_check(redis_client, key_prefix):
    config = SessionConfig(key_prefix=key_prefix)
    mine = RedisSessionStore(redis_client, config, now=lambda: NOW)
    theirs = RedisSessionStore(redis_client, config, now=lambda: NOW)
    mine.assign([ev(0, "a")])
    theirs.assign([ev(MIN, "b")])  # e.g. the user moved to another task during a rebalance
    fields = mine.assign([ev(2 * MIN, "c")])
    assert (mine.conflicts, mine.reads) == (1, 2)
    assert fields[0]["session_event_index"] == 3


def test_a_replay_for_a_cached_user_is_caught_by_the_memo_check(store):
    first = store.assign([ev(0, "a"), ev(MIN, "b")])
    assert store.assign([ev(MIN, "b")]) == [first[1]]
    assert store.replays == 1
    assert store.assign([ev(2 * MIN, "c")])[0]["session_event_index"] == 3


def test_without_the_cache_every_batch_reads(redis_client, key_prefix):
    store = RedisSessionStore(redis_client, SessionConfig(key_prefix=key_prefix, state_cache_size=0),
                              now=lambda: NOW)
    fields = [store.assign([ev(n * MIN, f"e{n}")])[0] for n in range(3)] + store.assign([ev(MIN, "e1")])
    assert [f["session_event_index"] for f in fields] == [1, 2, 3, 2]
    assert (store.reads, store.replays, store.conflicts) == (4, 1, 0)


class LostReplies:
    """Fault injection: the first ``count`` write scripts run, but their replies never arrive
    (the connection drops after Redis executed the script), as seen by ``RedisSessionStore.begin``."""

    def __init__(self, client, count):
        self.client, self.count = client, count
        self.connection_pool = self

    def register_script(self, text):
        return self.client.register_script(text)

    def get_connection(self):
        connection = self.client.connection_pool.get_connection()
        if self.count:
            self.count -= 1
            real_read = connection.read_response

            def read_then_lose(*args, **kwargs):
                real_read(*args, **kwargs)  # the script ran
                connection.disconnect()
                raise redis_lib.ConnectionError("Connection closed by server.")

            connection.read_response = read_then_lose
        return connection

    def release(self, connection):
        connection.__dict__.pop("read_response", None)
        self.client.connection_pool.release(connection)


def test_begin_then_finish_equals_assign(redis_client, key_prefix):
    batch = [ev(0, "a"), ev(MIN, "b"), ev(0, "x", user="u2"), ev(3 * 60 * MIN, "c"), ev(MIN, "b")]
    plain = RedisSessionStore(redis_client, SessionConfig(key_prefix=key_prefix + ":plain"), now=lambda: NOW)
    started = RedisSessionStore(redis_client, SessionConfig(key_prefix=key_prefix + ":begun"), now=lambda: NOW)
    expected = plain.assign(batch)
    assert started.begin(batch)() == expected
    assert started.begin(batch)() == plain.assign(batch)  # the replay, from the cache and the memo
    assert started.replays == plain.replays == 6


def test_a_lost_reply_is_assigned_again_without_counting_twice(redis_client, key_prefix):
    config = SessionConfig(key_prefix=key_prefix)
    store = RedisSessionStore(LostReplies(redis_client, 1), config, now=lambda: NOW, sleep=lambda seconds: None)
    store.assign([ev(0, "a")])  # u1 is now in the cache
    fields = store.begin([ev(MIN, "b"), ev(0, "x", user="u2")])()
    assert [(f["session_event_index"], f["is_new_user"]) for f in fields] == [(2, False), (1, True)]
    # The script had run: the second try found u1's new version (a conflict) and both events in the memo.
    assert store.conflicts == 1 and store.replays == 2
    assert store.assign([ev(2 * MIN, "c")])[0]["session_event_index"] == 3


def test_an_unloaded_write_script_is_loaded_and_run(redis_client, key_prefix):
    store = RedisSessionStore(redis_client, SessionConfig(key_prefix=key_prefix), now=lambda: NOW)
    redis_client.script_flush()  # as after a Redis restart
    fields = store.begin([ev(0, "a"), ev(MIN, "b")])()
    assert [f["session_event_index"] for f in fields] == [1, 2]
    assert store.assign([ev(2 * MIN, "c")])[0]["session_event_index"] == 3


def test_a_concurrent_writer_between_begin_and_finish_is_detected(redis_client, key_prefix):
    config = SessionConfig(key_prefix=key_prefix)
    other = RedisSessionStore(redis_client, config, now=lambda: NOW)
    proxy = InterferingRedis(redis_client, lambda: other.assign([ev(0, "first")]))
    proxy.connection_pool = redis_client.connection_pool
    store = RedisSessionStore(proxy, config, now=lambda: NOW)
    fields = store.begin([ev(MIN, "second")])()
    assert store.conflicts == 1
    assert (fields[0]["session_event_index"], fields[0]["is_new_user"]) == (2, False)


def test_an_outage_while_a_conflict_is_retried_is_waited_out(redis_client, key_prefix):
    # begin's write conflicts (another writer came between its read and its write); the retry's
    # own write then meets a dropped connection, which is waited out within the outage budget.
    config = SessionConfig(key_prefix=key_prefix)
    other = RedisSessionStore(redis_client, config, now=lambda: NOW)
    proxy = InterferingRedis(redis_client, lambda: other.assign([ev(0, "first")]))
    proxy.connection_pool = redis_client.connection_pool
    real_register = proxy.register_script

    class FailingOnce:
        def __init__(self, script):
            self.script, self.sha, self.failed = script, script.sha, False

        def __call__(self, **kwargs):
            if not self.failed:
                self.failed = True
                raise redis_lib.ConnectionError("Connection reset by peer")
            return self.script(**kwargs)

    proxy.register_script = lambda text: real_register(text) if text == READ_SCRIPT else FailingOnce(real_register(text))
    store = RedisSessionStore(proxy, config, now=lambda: NOW, sleep=lambda seconds: None)
    fields = store.begin([ev(MIN, "second"), ev(MIN, "x", user="u2")])()
    assert store.conflicts >= 1 and store.outage_retries == 1
    assert [(f["session_event_index"], f["is_new_user"]) for f in fields] == [(2, False), (1, True)]
    assert fields[0]["session_id"] == session_id(ev(0, "first"))


def test_a_refused_connection_at_begin_is_left_to_assign(redis_client, key_prefix):
    class RefusingOnce:
        """Fault injection: the pool cannot connect once (Redis restarting)."""

        def __init__(self, client):
            self.client, self.refused = client, False
            self.connection_pool = self

        def register_script(self, text):
            return self.client.register_script(text)

        def get_connection(self):
            if not self.refused:
                self.refused = True
                raise redis_lib.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
            return self.client.connection_pool.get_connection()

        def release(self, connection):
            self.client.connection_pool.release(connection)

    config = SessionConfig(key_prefix=key_prefix)
    store = RedisSessionStore(RefusingOnce(redis_client), config, now=lambda: NOW, sleep=lambda seconds: None)
    fields = store.begin([ev(0, "a"), ev(MIN, "b")])()
    assert [f["session_event_index"] for f in fields] == [1, 2]
    assert store.begin([ev(2 * MIN, "c")])()[0]["session_event_index"] == 3  # the next one overlaps again
