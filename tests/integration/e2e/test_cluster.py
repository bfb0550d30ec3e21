"""The same topology submitted to the single-node Storm cluster, with Python processes killed.

`sparse submit -e cluster` (spout parallelism 2, enrich bolt 2 executors of 4 tasks) reads a 4-shard stream into a
ClickHouse server database. Mid-run an enrich bolt subprocess and then a spout subprocess are
killed with SIGKILL; Storm's supervisor restarts the worker, the spout tasks take their shards
back from the checkpoints, and the de-duplicated table equals expected.json exactly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from pistats.store.backends import open_store

from tests.support.pipeline import EVERYTHING, TIMEOUT_S, assert_summary, load, make_recording

pytestmark = [pytest.mark.integration, pytest.mark.storm]


def python_component_pids(component_class: str) -> list[int]:
    found = subprocess.run(["pgrep", "-f", f"streamparse_run.*{component_class}"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def wait_for(condition, what: str, timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_cluster_run_survives_kill_9_of_bolt_and_spout_subprocesses(pipelines, storm_cluster, storm_kill, tmp_path,
                                                                      clickhouse_url, unique_name):
    database = f"e2e_{unique_name}"
    # Slower than PACED (10 records a call, 200 records/s over 4 shards) and checkpoints every
    # second, so the second kill, at 50 % committed, still lands before the end: with PACED a
    # quick machine committed the second half within one 5 s checkpoint.
    pipeline = pipelines(clickhouse_url.rsplit("/", 1)[0] + f"/{database}",
                         **{"pistats.kinesis.get_records_limit": 10, "pistats.kinesis.checkpoint_interval_ms": 1000})
    recording = make_recording(tmp_path, events=4000, shards=4, seed=13)
    load(pipeline, recording)
    pipeline.submit(**{"topology.workers": 1})
    try:
        wait_for(lambda: pipeline.committed()[0] >= 0.25 * pipeline.layout.total, "25% committed")
        enrich = python_component_pids("bolts.enrich.EnrichBolt")
        assert len(enrich) == 4  # 2 executors of 4 tasks in the cluster environment: a process per task
        first_spouts = set(python_component_pids("spouts.kinesis.KinesisSpout"))
        assert pipeline.committed()[0] < pipeline.layout.total  # the kills land mid-run
        os.kill(enrich[0], signal.SIGKILL)
        # Storm halts the worker for a dead subprocess; the supervisor starts a new one.
        wait_for(lambda: len(set(python_component_pids("spouts.kinesis.KinesisSpout")) - first_spouts) == 2,
                 "the restarted worker's spouts")

        wait_for(lambda: pipeline.committed()[0] >= 0.5 * pipeline.layout.total, "50% committed after the restart")
        spouts = python_component_pids("spouts.kinesis.KinesisSpout")
        assert len(spouts) == 2
        assert pipeline.committed()[0] < pipeline.layout.total
        os.kill(spouts[0], signal.SIGKILL)

        pipeline.wait_until_committed(None, TIMEOUT_S)
    finally:
        storm_kill("enrichment")
    try:
        assert_summary(pipeline, recording, EVERYTHING)
    finally:
        with open_store(pipeline.run.store_url) as store:
            store.execute(f"DROP DATABASE IF EXISTS {database}")
