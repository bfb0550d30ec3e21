"""Fixtures shared by integration tests: Redis key namespaces and the single-node Storm cluster."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis as redis_lib

from pistats.localenv import services as local_services
from pistats.localenv.services import Ports, prepare_storm_cluster
from pistats.redis_keys import delete_matching


@pytest.fixture
def redis_client(redis_url):
    client = redis_lib.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def key_prefix(redis_client, unique_name):
    """A Redis key namespace of this test only; every key under it is deleted afterwards."""
    prefix = f"pistats-test:{unique_name}"
    yield prefix
    delete_matching(redis_client, f"{prefix}:*")


@pytest.fixture(scope="session")
def storm_cluster():
    """ZooKeeper, Nimbus and a Supervisor on 127.0.0.1 for this session.

    Each one this session starts is stopped at its end (the supervisor and its workers first);
    one that was already running is used and left running: it is someone else's.
    """
    ports = Ports.from_env()
    table = local_services.services(ports)
    bin_dir = Path(sys.executable).parent
    started = []
    try:
        # The daemons, and the workers the supervisor starts, find `storm` and
        # `streamparse_run` on PATH: the project's virtualenv first.
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
            for name in local_services.SERVICE_GROUPS["storm"]:
                if table[name].start():
                    started.append(name)
        prepare_storm_cluster(ports)  # worker virtualenv links for every topology
        yield
    finally:
        for name in reversed(started):
            table[name].stop()


@pytest.fixture
def storm_kill():
    """Kills a topology on the single-node cluster (``storm kill NAME -w 1``) and waits until it is gone."""
    bin_dir = Path(sys.executable).parent

    def kill(name: str) -> None:
        subprocess.run([str(bin_dir / "storm"), "kill", name, "-w", "1"], capture_output=True)
        for _ in range(120):
            listing = subprocess.run([str(bin_dir / "storm"), "list"], capture_output=True, text=True).stdout
            if not any(line.split()[:1] == [name] for line in listing.splitlines()):
                return
            time.sleep(0.5)
        raise AssertionError(f"topology {name} still listed 60 s after storm kill")

    return kill


@pytest.fixture
def pipelines():
    """Makes end-to-end pipelines (``tests.support.pipeline.pipeline_for``) and deletes their
    streams after the test: kinesis-local counts every shard of every stream against a limit."""
    from tests.support.pipeline import pipeline_for

    made = []

    def make(*args, **kwargs):
        made.append(pipeline_for(*args, **kwargs))
        return made[-1]

    yield make
    for pipeline in made:
        pipeline.delete_stream()
        try:
            pipeline.delete_redis_state()
        except redis_lib.ConnectionError:
            pass  # the test's own Redis server, stopped by the test, and its keys with it
