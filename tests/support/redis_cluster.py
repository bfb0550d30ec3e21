"""A Redis Cluster of a test's own (``pistats.localenv.redis_cluster``): six nodes on free ports,
data in a temporary folder."""

from __future__ import annotations

import random
import socket
from pathlib import Path

from pistats.localenv.redis_cluster import BUS_PORT_OFFSET, NODES, LocalRedisCluster


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_first_port() -> int:
    """A first port whose six node ports and their bus ports (+10000) are all free."""
    for _ in range(200):
        first = random.randrange(20_000, 55_000 - NODES)
        if all(_free(port) and _free(port + BUS_PORT_OFFSET) for port in range(first, first + NODES)):
            return first
    raise RuntimeError("no six free ports (and bus ports) found for a Redis Cluster")


def start_cluster(home: Path) -> LocalRedisCluster:
    cluster = LocalRedisCluster(home, free_first_port())
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster
