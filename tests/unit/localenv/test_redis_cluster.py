"""The local Redis Cluster as `pistats services` knows it (no process started here)."""

from pathlib import Path

from pistats.localenv.redis_cluster import LocalRedisCluster, cluster_url, healthy
from pistats.localenv.services import Ports, resolve, service_groups, services
from pistats.redisconn import RedisTarget


def test_six_nodes_from_the_configured_port_on_loopback_in_cluster_mode():
    cluster = LocalRedisCluster(Path("/nowhere"), 7001)
    assert cluster.ports == [7001, 7002, 7003, 7004, 7005, 7006]
    command = " ".join(cluster.command(7003))
    assert "--bind 127.0.0.1 --port 7003" in command and "--cluster-enabled yes" in command
    assert "--dir /nowhere/7003" in command and "--appendonly yes" in command
    assert cluster.endpoint == "127.0.0.1:7001-7006"


def test_its_url_names_every_node_as_a_startup_node():
    target = RedisTarget.parse(cluster_url(7001))
    assert target.cluster and [port for _, port in target.nodes] == list(range(7001, 7007))


def test_a_service_and_a_group_of_its_own_and_part_of_all():
    assert Ports.from_env({"PISTATS_REDIS_CLUSTER_PORT": "7101"}).redis_cluster == 7101
    table = services(Ports(redis_cluster=7101), supervisors=1)
    assert table["redis-cluster"].ports[0] == 7101
    assert resolve(["redis-cluster"], 1, table) == ["redis-cluster"]
    assert "redis-cluster" in service_groups(1)["all"] and "redis-cluster" not in service_groups(1)["test"]


def test_healthy_means_every_slot_served_by_six_known_nodes():
    info = {"cluster_state": "ok", "cluster_slots_ok": "16384", "cluster_known_nodes": "6"}
    assert healthy(info)
    assert not healthy({**info, "cluster_state": "fail"})
    assert not healthy({**info, "cluster_slots_ok": "10923"})
    assert not healthy({**info, "cluster_known_nodes": "5"})
