"""``pistats services start|status|stop redis-cluster`` on ports and a state folder of the
test's own: created on the first start, rejoined from its nodes.conf on the next."""

from __future__ import annotations

import pytest

from pistats.cli.main import main as pistats
from pistats.localenv.redis_cluster import LocalRedisCluster, cluster_url
from pistats.localenv.services import port_open
from pistats.redisconn import connect
from tests.support.redis_cluster import free_first_port

pytestmark = pytest.mark.integration


def services(capsys, *args) -> str:
    assert pistats(["services", *args]) == 0
    return capsys.readouterr().out


def test_start_status_stop_and_start_again(tmp_path, monkeypatch, capsys):
    first = free_first_port()
    monkeypatch.setenv("PISTATS_STATE_DIR", str(tmp_path / ".pistats"))
    monkeypatch.setenv("PISTATS_REDIS_CLUSTER_PORT", str(first))
    try:
        out = services(capsys, "start", "redis-cluster")
        assert out.startswith("redis-cluster") and "started" in out and f"127.0.0.1:{first}-{first + 5}" in out
        assert "running" in services(capsys, "status", "redis-cluster")
        client = connect(cluster_url(first))
        client.set("pistats-test:kept", "1")
        nodes = LocalRedisCluster(tmp_path / ".pistats" / "redis-cluster", first)
        assert len(nodes.masters()) == 3 and len(nodes.replicas()) == 3
        client.close()
        assert "stopped" in services(capsys, "stop", "redis-cluster")
        assert not any(port_open(port) for port in range(first, first + 6))
        assert "started" in services(capsys, "start", "redis-cluster")  # the nodes rejoin, the data is kept
        client = connect(cluster_url(first))
        assert client.get("pistats-test:kept") == b"1"
        client.close()
    finally:
        services(capsys, "stop", "redis-cluster")
    assert sorted(path.name for path in (tmp_path / ".pistats" / "redis-cluster").iterdir()) == [
        str(port) for port in range(first, first + 6)]
