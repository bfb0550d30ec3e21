"""Foundation proof: a Python spout and a Python bolt run on real Apache Storm 2.8.

Both tests type the literal commands users type (`sparse run`, `sparse submit`) and assert
every tuple the spout emitted reached Redis through the bolt.
"""

from __future__ import annotations

import time

import pytest
import redis

pytestmark = [pytest.mark.integration, pytest.mark.storm]

COUNT = 500


def smoke_options(redis_url: str, key: str) -> list[str]:
    return [
        "-o", f"pistats.smoke.count={COUNT}",
        "-o", f"pistats.smoke.redis_url={redis_url}",
        "-o", f"pistats.smoke.redis_key={key}",
    ]


def expected_words() -> set[bytes]:
    return {f"smoke-{n}".encode() for n in range(COUNT)}


def test_sparse_run_processes_every_tuple_in_local_mode(sparse_run, redis_url, unique_name):
    client = redis.Redis.from_url(redis_url)
    key = f"{unique_name}:smoke-run"
    topology = sparse_run("-e", "local", "-n", "smoke", "-t", "300", *smoke_options(redis_url, key))
    try:
        topology.wait_until(lambda: client.scard(key) >= COUNT, timeout=240, what=f"{COUNT} words in Redis")
        assert client.smembers(key) == expected_words()
        log = topology.log_path.read_text()
        assert "storm local --local-ttl 300" in log  # Storm 2 local mode, not Flux --local
    finally:
        topology.stop()
        client.delete(key)


def test_sparse_submit_runs_on_the_single_node_cluster(storm_cluster, sparse_cli, storm_kill, redis_url, unique_name):
    client = redis.Redis.from_url(redis_url)
    key = f"{unique_name}:smoke-submit"
    result = sparse_cli("submit", "-e", "cluster", "-n", "smoke", "-f", *smoke_options(redis_url, key))
    assert "Submitting smoke topology to nimbus...done" in result.stdout
    try:
        deadline = time.monotonic() + 180
        while client.scard(key) < COUNT and time.monotonic() < deadline:
            time.sleep(1)
        assert client.smembers(key) == expected_words()
    finally:
        storm_kill("smoke")
        client.delete(key)
