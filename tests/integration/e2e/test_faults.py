"""Nothing lost, nothing doubled: the real topology on a local Storm, with faults mid-run.

Each test puts a generated recording (malformed records and client retries included) into
kinesis-local, runs `sparse run -e local -n enrichment`, injects one fault once about a third of
the records are committed, waits until the spout's checkpoints pass every record, and compares
the store, read back de-duplicated, with the recording's expected.json.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from pistats.generate.generator import GenerateConfig, generate
from pistats.kinesis import admin
from pistats.kinesis.recording import Recording
from pistats.localenv.paths import project_root
from pistats.localenv.services import Ports
from pistats.testing.proxy import TcpProxy
from tests.support.pipeline import PACED, TIMEOUT_S, assert_summary, load, make_recording, wait_for_fraction
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.storm]

def test_whole_topology_killed_and_started_again_resumes_from_checkpoints(pipelines, tmp_path):
    recording = make_recording(tmp_path)
    pipeline = pipelines(**PACED)
    load(pipeline, recording)
    first = pipeline.start_local("first")
    try:
        wait_for_fraction(pipeline, first, 0.3)
        os.killpg(first.process.pid, signal.SIGKILL)  # no shutdown, no flush, no checkpoint write
        first.process.wait()
        committed_at_kill = pipeline.committed()[0]
        assert committed_at_kill < pipeline.layout.total
    finally:
        first.stop()
    second = pipeline.start_local("second")
    try:
        pipeline.wait_until_committed(second, TIMEOUT_S)
    finally:
        second.stop()
    assert_summary(pipeline, recording)


def test_clickhouse_unavailable_for_20_seconds(pipelines, tmp_path, clickhouse_url, unique_name):
    proxy = TcpProxy(Ports.from_env().clickhouse)
    store = f"clickhouse://default@127.0.0.1:{proxy.port}/e2e_{unique_name}"
    pipeline = pipelines(store, **PACED)
    recording = make_recording(tmp_path)
    load(pipeline, recording)
    topology = pipeline.start_local()
    try:
        wait_for_fraction(pipeline, topology, 0.3)
        proxy.down()
        stalled_at = pipeline.committed()[0]
        assert stalled_at < pipeline.layout.total  # the outage starts mid-run
        time.sleep(20)
        topology.check_alive()  # the topology rides it out: nothing crashes
        assert pipeline.committed()[0] - stalled_at <= 2000  # at most what was already in flight
        proxy.up()
        pipeline.wait_until_committed(topology, TIMEOUT_S)
    finally:
        topology.stop()
        proxy.up()  # the store is read back through it
    try:
        assert_summary(pipeline, recording)
    finally:
        from pistats.store.backends import open_store

        with open_store(store) as cleanup:
            cleanup.execute(f"DROP DATABASE IF EXISTS e2e_{unique_name}")
        proxy.close()


@pytest.mark.parametrize("persistent", [True, False], ids=["persistence-on", "persistence-off"])
def test_redis_restarted_mid_run(pipelines, tmp_path, persistent):
    redis_server = RedisServer(tmp_path / "redis", persistent=persistent)
    redis_server.start()
    try:
        pipeline = pipelines(redis_url=redis_server.url, **PACED)
        recording = make_recording(tmp_path)
        load(pipeline, recording)
        topology = pipeline.start_local()
        try:
            wait_for_fraction(pipeline, topology, 0.3)
            assert pipeline.committed()[0] < pipeline.layout.total  # the restart lands mid-run
            redis_server.restart(pause_s=3)
            pipeline.wait_until_committed(topology, TIMEOUT_S)
        finally:
            topology.stop()
        if persistent:
            assert_summary(pipeline, recording)
        else:
            # Without persistence the checkpoints and session state are gone: the spout starts the
            # stream again and session numbering may restart, but no event is lost or doubled.
            assert_summary(pipeline, recording, keys=("records_in", "events_stored", "rejected",
                                                      "duplicates_dropped", "users", "by_country",
                                                      "by_device_type"), same_sessions=False)
    finally:
        redis_server.stop()


def merge_two_adjacent_open_shards(pipeline) -> None:
    open_shards = sorted(
        (shard for shard in admin.list_all_shards(pipeline.client, pipeline.run.stream)
         if "EndingSequenceNumber" not in shard["SequenceNumberRange"]),
        key=lambda shard: int(shard["HashKeyRange"]["StartingHashKey"]),
    )
    for left, right in zip(open_shards, open_shards[1:]):
        if int(left["HashKeyRange"]["EndingHashKey"]) + 1 == int(right["HashKeyRange"]["StartingHashKey"]):
            pipeline.client.merge_shards(StreamName=pipeline.run.stream, ShardToMerge=left["ShardId"],
                                         AdjacentShardToMerge=right["ShardId"])
            admin.wait_active(pipeline.client, pipeline.run.stream)
            return
    raise AssertionError(f"no adjacent open shards in {open_shards}")


def test_split_then_merge_while_the_topology_reads(pipelines, tmp_path):
    """The stream is split while the topology is already reading it (the replay reshards it the
    way the recording was resharded, halfway through), then two of the children are merged; the
    spout reads children after parents and finishes every closed shard."""
    recording_dir = make_recording(tmp_path, events=1500, shards=2, reshard_at=0.5, seed=9)
    recording = Recording.open(recording_dir)
    pipeline = pipelines()
    pipeline.create_stream(recording)
    topology = pipeline.start_local()
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while pipeline.checkpoints.load("shardId-000000000000") is None:  # the spout holds its lease
            topology.check_alive()
            assert time.monotonic() < deadline, f"the spout never claimed a shard (logs: {pipeline.logs})"
            time.sleep(0.3)
        replay = threading.Thread(target=pipeline.replay, args=(recording,))
        replay.start()
        replay.join(TIMEOUT_S)
        assert not replay.is_alive()
        merge_two_adjacent_open_shards(pipeline)
        pipeline.read_layout()
        assert sum(1 for shard in pipeline.layout.shards if shard.closed) == 4  # 2 split + 2 merged
        pipeline.wait_until_committed(topology, TIMEOUT_S)
    finally:
        topology.stop()
    assert_summary(pipeline, recording_dir)


def test_kinesis_throttling_and_expired_iterators(pipelines, tmp_path):
    """The spout's own client throttles every 4th GetRecords and expires the iterator of every
    7th (the chaos option `pistats.kinesis.fault_plan`, applied inside the real spout process)."""
    plan = "GetRecords:ProvisionedThroughputExceededException@4,GetRecords:ExpiredIteratorException@7"
    recording = make_recording(tmp_path, seed=21)
    pipeline = pipelines(**{"pistats.kinesis.fault_plan": plan, "pistats.kinesis.get_records_limit": 100})
    load(pipeline, recording)
    started = time.time()
    topology = pipeline.start_local()
    try:
        pipeline.wait_until_committed(topology, TIMEOUT_S)
    finally:
        topology.stop()
    spout_logs = [log for log in (project_root() / ".pistats" / "storm-logs").glob("pystorm_enrichment_kinesis_*.log")
                  if log.stat().st_mtime >= started]
    assert any(f"chaos: injecting Kinesis faults {plan}" in log.read_text() for log in spout_logs)
    assert_summary(pipeline, recording)


@pytest.mark.parametrize("backend", ["chdb", "clickhouse-server"])
def test_one_client_dating_its_events_in_150_months(pipelines, tmp_path, unique_name, backend):
    """A client's clock-skewed events span 150 calendar months (one partition each in a store
    partitioned by event month): every one is stored, none is taken for a duplicate."""
    store = None if backend == "chdb" else f"clickhouse://default@127.0.0.1:{Ports.from_env().clickhouse}/e2e_{unique_name}"
    recording_dir = tmp_path / "recording"
    generate(GenerateConfig(events=1500, shards=2, seed=13, bad_fraction=0.03, duplicate_fraction=0.03,
                            skewed_months=150), recording_dir)
    pipeline = pipelines(store)
    load(pipeline, recording_dir)
    topology = pipeline.start_local()
    try:
        pipeline.wait_until_committed(topology, TIMEOUT_S)
    finally:
        topology.stop()
    try:
        assert_summary(pipeline, recording_dir)
    finally:
        if store is not None:
            from pistats.store.backends import open_store

            with open_store(store) as cleanup:
                cleanup.execute(f"DROP DATABASE IF EXISTS e2e_{unique_name}")
