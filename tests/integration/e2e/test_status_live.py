"""``pistats status`` on a running topology (real Storm in local mode, kinesis-local, Redis, chdb):
the view shows the topology behind and reading while it works, nothing behind once every record is
committed, the sink's rows, and what publishing cost the tasks (issue 19: under 1 %)."""

from __future__ import annotations

import time

import pytest

from pistats.status.view import collect
from tests.support.pipeline import TIMEOUT_S, load, make_recording

pytestmark = [pytest.mark.integration, pytest.mark.storm]


def test_status_follows_a_running_topology(pipelines, tmp_path):
    # Long enough for several of the tasks' 5 s publishes while records remain (3,000 records at
    # 10 a call over 2 shards, at most 100 records/s): at PACED a quick machine was done before
    # the spout had published a rate.
    recording = make_recording(tmp_path, events=3000)
    pipeline = pipelines(**{"pistats.kinesis.get_records_limit": 10, "pistats.kinesis.checkpoint_interval_ms": 1000})
    load(pipeline, recording)
    app, stream = pipeline.run.app_name, pipeline.run.stream

    def view():
        return collect(pipeline.client, pipeline.redis, app, stream)

    topology = pipeline.start_local("status")
    while_running = []
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while pipeline.committed()[0] < pipeline.layout.total:
            topology.check_alive()
            assert time.monotonic() < deadline, f"never finished (logs: {pipeline.logs})"
            while_running.append(view())
            time.sleep(1.0)
        # The tasks publish every 5 s: wait for a view taken wholly after the last commit.
        time.sleep(6.0)
        final = view()
    finally:
        topology.stop()

    working = [v for v in while_running if v.behind_records > 0 and any(s.read_per_s for s in v.shards)]
    assert working, "no view showed the topology behind and reading while it ran"
    assert all(s.in_flight is not None for s in working[-1].shards if s.state == "open")
    open_shards = [s for s in final.shards if s.state != "done"]
    assert open_shards and all((s.behind_records, s.behind_exact, s.behind_ms) == (0, True, 0) for s in open_shards)
    assert final.spout_tasks == 1 and len(final.sinks) == 1
    summary = pipeline.summary()
    # Every record became one stored row (an event, a duplicate collapsed later, or a reject);
    # a batch replayed after a timeout would store its rows twice, never fewer.
    assert final.sinks[0].rows_stored >= summary["events_stored"] + sum(summary["rejected"].values())
    assert final.sinks[0].batches_failed == 0 and final.sinks[0].insert_ms_mean is not None
    assert final.problems == []
    assert final.publishing_cpu_share is not None and final.publishing_cpu_share < 0.01
