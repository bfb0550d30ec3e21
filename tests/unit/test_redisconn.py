"""Redis URLs and clients (pistats.redisconn): the URL picks a single Redis or a cluster."""

import pytest
import redis as redis_lib

from pistats.redisconn import REDIS_ERRORS, RedisTarget, connect, is_cluster, key_slot, plan_by_node


def test_a_single_redis_url_goes_to_redis_py_as_it_is():
    target = RedisTarget.parse("redis://:s3cret@10.0.0.5:6380/2?health_check_interval=10")
    assert (target.cluster, target.wait_replicas) == (False, 0)
    assert target.url == "redis://:s3cret@10.0.0.5:6380/2?health_check_interval=10"
    client = connect(target)  # a single Redis connects on first use
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == ("10.0.0.5", 6380, 2, "s3cret")
    assert kwargs["health_check_interval"] == 10 and not is_cluster(client)


def test_wait_replicas_is_taken_out_of_the_url():
    target = RedisTarget.parse("redis://127.0.0.1:6379/0?wait_replicas=1&socket_keepalive=true")
    assert target.wait_replicas == 1
    assert target.url == "redis://127.0.0.1:6379/0?socket_keepalive=true"
    assert RedisTarget.parse("unix:///run/redis.sock?db=1").url == "unix:///run/redis.sock?db=1"


def test_a_cluster_url_lists_its_startup_nodes():
    target = RedisTarget.parse("rediss+cluster://app:p%40ss@10.0.0.1:7001,10.0.0.2:7002,[::1]:7003/?wait_replicas=1")
    assert target.cluster and target.tls
    assert target.nodes == (("10.0.0.1", 7001), ("10.0.0.2", 7002), ("::1", 7003))
    assert (target.username, target.password, target.wait_replicas) == ("app", "p@ss", 1)
    assert RedisTarget.parse("redis+cluster://127.0.0.1:7001").nodes == (("127.0.0.1", 7001),)


def test_the_password_never_shows():
    target = RedisTarget.parse("redis+cluster://:s3cret@10.0.0.1:7001,10.0.0.2:7002/")
    assert "s3cret" not in repr(target)
    assert target.shown == "redis+cluster://:***@10.0.0.1:7001,10.0.0.2:7002/"
    assert "s3cret" not in repr(RedisTarget.parse("redis://:s3cret@h:1/0"))


@pytest.mark.parametrize(("url", "problem"), [
    ("http://:s3cret@h:1", "not a Redis URL: 'http://:***@h:1'"),
    ("redis+cluster://:s3cret@10.0.0.1/", "cluster nodes are host:port separated by commas, not '10.0.0.1' in "
                                           "'redis+cluster://:***@10.0.0.1/'"),
    ("redis+cluster://10.0.0.1:7001/3", "a Redis Cluster has database 0 only, not '3'"),
    ("redis+cluster://10.0.0.1:7001/?socket_timeout=1", "a cluster URL takes no option but wait_replicas"),
    ("redis://h:1/0?wait_replicas=one", "wait_replicas must be a whole number, not 'one'"),
    ("redis://h:1/0?wait_replicas=-1", "wait_replicas must be >= 0"),
    ("", "a Redis URL is required"),
])
def test_bad_urls_name_the_problem(url, problem):
    with pytest.raises(ValueError) as raised:
        RedisTarget.parse(url)
    assert problem in str(raised.value) and "s3cret" not in str(raised.value)


def test_an_unreachable_cluster_raises_a_redis_error_at_connect():
    with pytest.raises(REDIS_ERRORS):
        connect("redis+cluster://127.0.0.1:1/", connect_timeout_s=0.2)


def test_hash_tags_pick_the_slot():
    assert key_slot("pistats:sessions:u:{1:c:1:u:}") == key_slot("pistats:sessions:memo:7:{1:c:1:u:}")
    assert key_slot("{user1000}.following") == key_slot("{user1000}.followers") == key_slot("user1000")
    assert key_slot("123456789") == 12739  # the CRC16 test vector of the Redis Cluster specification


def test_a_single_redis_is_one_node_with_one_group():
    items = ["a", "b", "c"]
    assert plan_by_node(redis_lib.Redis(), items, lambda item: item) == [("a", [items])]
    assert plan_by_node(redis_lib.Redis(), [], lambda item: item) == []
