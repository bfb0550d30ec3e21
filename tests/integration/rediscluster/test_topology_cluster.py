"""The real topology (`sparse run -e local`) on a Redis Cluster, with a master failing over
mid-run: the store equals expected.json and every event has the session a fault-free run gives
it (tests/integration/e2e/test_faults.py's comparison).

The cluster is this module's own; the URL asks for one replica's acknowledgement
(``wait_replicas=1``), so the killed master's node is started again once its replica took over,
as a replacement replica (writes to those slots are not confirmed without one).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.support.pipeline import PACED, TIMEOUT_S, assert_summary, load, make_recording, wait_for_fraction
from tests.support.redis_cluster import start_cluster

pytestmark = [pytest.mark.integration, pytest.mark.storm]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster-topology"))
    yield cluster
    cluster.stop()


def test_a_master_fails_over_while_the_topology_runs(pipelines, tmp_path, cluster):
    recording = make_recording(tmp_path)
    pipeline = pipelines(redis_url=cluster.url + "?wait_replicas=1", **PACED)
    # The sessions wait out the failover and the replacement replica's first sync (about 10 s on
    # a loaded machine, the default budget) rather than fail a batch, whose replay could come
    # after its users' later batches (README's limitation on sessions): docs/scaling.md.
    pipeline.extra_options["pistats.enrich"] = "{sessions: {key_prefix: '%s', outage_budget_s: 30}}" % (
        pipeline.run.session_prefix)
    load(pipeline, recording)
    topology = pipeline.start_local()
    try:
        wait_for_fraction(pipeline, topology, 0.3)
        assert pipeline.committed()[0] < pipeline.layout.total  # the failover starts mid-run
        victim = cluster.masters()[0]
        replica = [port for port in cluster.replicas() if cluster.master_of(port) == victim][0]
        os.kill(cluster.node_pid(victim), signal.SIGKILL)
        deadline = time.monotonic() + 60
        while replica not in cluster.masters():
            assert time.monotonic() < deadline, "the replica was not promoted"
            time.sleep(0.1)
        cluster.start_node(victim)
        cluster.wait_healthy()
        topology.check_alive()
        pipeline.wait_until_committed(topology, TIMEOUT_S)
    finally:
        topology.stop()
    assert_summary(pipeline, recording)
