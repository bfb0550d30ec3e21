"""The topology on two workers over two supervisors standing in for two hosts (127.0.0.2 and
127.0.0.3, ``pistats services start storm --supervisors 2``), so tuples cross workers over Storm's
Netty transport.

Each test reads a 4-shard recording into a ClickHouse server database with `sparse submit -e
cluster` and compares the de-duplicated store with expected.json, and every event's session fields,
the order-dependent ones included, with a run in shard order (``assert_per_user_order``):

- a normal run on 2 workers, one per host;
- one supervisor and its workers SIGKILLed mid-run: Nimbus reassigns their executors to the other
  host (the cluster's timeouts: ``pistats.localenv.services.STORM_TIMEOUTS``); nothing is lost or
  doubled, but sessions are compared as counts that may only grow, not event by event (the
  batches that die with the host are replayed after later ones: README, Limitations);
- ``storm rebalance -w 5 -n 2 -e enrich=4`` mid-run, from 1 worker to 2 and from 2 enrich executors
  to 4: the enrich bolt has 4 tasks in the cluster environment, and the fields grouping maps a
  bucket to a task by the number of tasks, which a rebalance does not change.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pistats.generate.generator import load_expected
from pistats.store.backends import open_store
from tests.support.pipeline import EVERYTHING, PACED, TIMEOUT_S, assert_summary, load, make_recording
from tests.support.storm_hosts import HOSTS, assert_per_user_order, placement, two_host_cluster, wait_for, workers

pytestmark = [pytest.mark.integration, pytest.mark.storm]

TOPOLOGY = "enrichment"
BIN = Path(sys.executable).parent
# A killed spout's shards are taken over once its leases lapse; a killed worker's tuples replay
# once they time out: both shorter than their production values, so the test ends sooner.
FAST_RECOVERY = {"pistats.kinesis.lease_ms": 10000, "topology.message.timeout.secs": 45}


@pytest.fixture(scope="module")
def hosts():
    with two_host_cluster(BIN) as cluster:
        yield cluster


@pytest.fixture
def cluster_pipeline(pipelines, hosts, storm_kill, clickhouse_url, unique_name):
    database = f"e2e_{unique_name}"
    made = []

    def make(**options):
        made.append(pipelines(clickhouse_url.rsplit("/", 1)[0] + f"/{database}", **PACED, **options))
        return made[0]

    yield make
    storm_kill(TOPOLOGY)
    hosts.wait_until_both_alive()
    for pipeline in made:
        with open_store(pipeline.run.store_url) as store:
            store.execute(f"DROP DATABASE IF EXISTS {database}")


def by_component(executors, component):
    return [executor for executor in executors if executor.component == component]


def test_two_workers_on_two_hosts(cluster_pipeline, hosts, tmp_path):
    pipeline = cluster_pipeline()
    recording = make_recording(tmp_path, events=2000, shards=4, seed=31)
    load(pipeline, recording)
    pipeline.submit(**{"topology.workers": 2})
    wait_for(lambda: len(workers(placement(TOPOLOGY))) == 2, "2 workers scheduled", 120)
    executors = placement(TOPOLOGY)
    assert {host for host, _ in workers(executors)} == set(HOSTS)  # one worker per host
    enrich = by_component(executors, "enrich")
    assert len(enrich) == 2
    assert sum(last - first + 1 for first, last in (e.tasks for e in enrich)) == 4
    # Enrich executors on both hosts, one sink: events cross from one worker to the other.
    assert {e.host for e in enrich} == set(HOSTS)
    assert len(by_component(executors, "sink")) == 1
    pipeline.wait_until_committed(None, TIMEOUT_S)
    # One Python process per task, two per executor.
    assert hosts.python_processes("bolts.enrich.EnrichBolt") == {host: 2 for host in HOSTS}
    assert_summary(pipeline, recording, EVERYTHING)
    assert_per_user_order(pipeline, recording)


def test_one_host_killed_mid_run(cluster_pipeline, hosts, tmp_path):
    pipeline = cluster_pipeline(**FAST_RECOVERY)
    recording = make_recording(tmp_path, events=3000, shards=4, seed=37)
    load(pipeline, recording)
    pipeline.submit(**{"topology.workers": 2})
    wait_for(lambda: len(workers(placement(TOPOLOGY))) == 2, "2 workers scheduled", 120)
    wait_for(lambda: pipeline.committed()[0] >= 0.25 * pipeline.layout.total, "25% committed", TIMEOUT_S)
    # The host running the sink: every batch in flight there is lost with it.
    victim = by_component(placement(TOPOLOGY), "sink")[0].host
    survivor = next(host for host in HOSTS if host != victim)
    assert pipeline.committed()[0] < pipeline.layout.total  # the kill lands mid-run
    hosts.kill(victim)
    try:
        wait_for(lambda: {host for host, _ in workers(placement(TOPOLOGY))} == {survivor},
                 f"Nimbus to move every executor to {survivor}", 180)
        pipeline.wait_until_committed(None, TIMEOUT_S)
    finally:
        hosts.restart(victim)
    # Nothing lost, nothing doubled: every count but the sessions equals expected.json. The batches
    # in flight on the dead host are replayed after the message timeout, after later batches of
    # the same users were sessionised on the surviving host: an event then late by more than its
    # user's last two sessions opens a session of its own (README, Limitations), so sessions may
    # only grow (the bound, 5 % of the records, is far above the 2 extra sessions seen in a run).
    assert_summary(pipeline, recording, tuple(key for key in EVERYTHING if key != "sessions"), same_sessions=False)
    stored, expected = pipeline.summary()["sessions"], load_expected(recording)["sessions"]
    assert expected <= stored <= expected + int(0.05 * pipeline.layout.total), (stored, expected)


def test_rebalance_to_two_workers_and_four_enrich_executors_mid_run(cluster_pipeline, tmp_path):
    pipeline = cluster_pipeline()
    recording = make_recording(tmp_path, events=3000, shards=4, seed=41)
    load(pipeline, recording)
    pipeline.submit(**{"topology.workers": 1})
    wait_for(lambda: len(workers(placement(TOPOLOGY))) == 1, "1 worker scheduled", 120)
    before = placement(TOPOLOGY)
    assert len(by_component(before, "enrich")) == 2
    wait_for(lambda: pipeline.committed()[0] >= 0.25 * pipeline.layout.total, "25% committed", TIMEOUT_S)
    assert pipeline.committed()[0] < pipeline.layout.total  # the rebalance lands mid-run
    result = subprocess.run([str(BIN / "storm"), "rebalance", TOPOLOGY, "-w", "5", "-n", "2", "-e", "enrich=4"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr

    def rebalanced() -> bool:
        now = placement(TOPOLOGY)
        return len(workers(now)) == 2 and len(by_component(now, "enrich")) == 4

    wait_for(rebalanced, "2 workers and 4 enrich executors", 180)
    after = placement(TOPOLOGY)
    assert {host for host, _ in workers(after)} == set(HOSTS)
    assert sorted(e.tasks for e in by_component(after, "enrich")) == [(t, t) for t in range(*_task_range(before))]
    pipeline.wait_until_committed(None, TIMEOUT_S)
    assert_summary(pipeline, recording, EVERYTHING)
    assert_per_user_order(pipeline, recording)


def _task_range(executors) -> tuple[int, int]:
    """The enrich bolt's task ids, first to last + 1: the same before and after a rebalance."""
    enrich = by_component(executors, "enrich")
    return min(e.tasks[0] for e in enrich), max(e.tasks[1] for e in enrich) + 1
