"""Multi-key reads and deletes on a Redis Cluster: SCAN visits every master, DEL and GET go per
slot (pistats.redis_keys, pistats.redisconn.get_values, what pistats status reads)."""

import pytest

from pistats.redis_keys import delete_matching
from pistats.redisconn import get_values, key_slot
from pistats.status.publish import StatusPublisher
from pistats.status.view import read_published

pytestmark = pytest.mark.integration


def test_deletes_every_matching_key_on_every_master_and_nothing_else(cluster_client, cluster_prefix, redis_cluster):
    keys = [f"{cluster_prefix}:run:{n}" for n in range(2500)]  # more than one chunk, every slot range
    for start in range(0, len(keys), 500):
        pipe = cluster_client.pipeline(transaction=False)
        for key in keys[start:start + 500]:
            pipe.set(key, 1)
        pipe.execute()
    cluster_client.set(f"{cluster_prefix}:other", 1)
    assert {cluster_client.get_node_from_key(key).port for key in keys} == set(redis_cluster.masters())
    assert delete_matching(cluster_client, f"{cluster_prefix}:run:*") == 2500
    assert list(cluster_client.scan_iter(match=f"{cluster_prefix}:run:*")) == []
    assert cluster_client.get(f"{cluster_prefix}:other") == b"1"


def test_values_of_keys_in_many_slots_come_back_in_order(cluster_client, cluster_prefix):
    keys = [f"{cluster_prefix}:v:{n}" for n in range(50)]
    assert len({key_slot(key) for key in keys}) > 1
    for n, key in enumerate(keys):
        if n % 3:
            cluster_client.set(key, n)
    assert get_values(cluster_client, keys) == [None if n % 3 == 0 else str(n).encode() for n in range(50)]


def test_what_the_tasks_publish_is_read_back(cluster_client, unique_name):
    publishers = [StatusPublisher(cluster_client, unique_name, "events", component, task)
                  for component, task in [("spout", 1), ("spout", 2), ("sink", 3), ("enrich", 4)]]
    try:
        for publisher in publishers:
            publisher.publish({"s": {"read": 1}}, {"s": {"in_flight": 0}})
        documents = read_published(cluster_client, unique_name, "events")
        assert sorted((d["component"], d["task"]) for d in documents) == [
            ("enrich", 4), ("sink", 3), ("spout", 1), ("spout", 2)]
    finally:
        delete_matching(cluster_client, f"pistats:status:{unique_name}:*")
