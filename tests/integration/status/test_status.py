"""``pistats status`` against kinesis-local and Redis: checkpoints, the records behind them, and
what tasks publish (pistats.status.view, pistats.cli.status)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from pistats.kinesis.admin import create_stream, delete_stream, list_all_shards
from pistats.kinesis.checkpoint import RedisCheckpointStore
from pistats.kinesis.client import make_kinesis_client
from pistats.kinesis.consumer import ShardMetrics
from pistats.kinesis.ledger import Position
from pistats.redis_keys import delete_matching
from pistats.status.publish import StatusPublisher, status_prefix
from pistats.status.tasks import sink_figures, spout_figures
from pistats.status.view import collect, render_text
from pistats.store.sink import SinkStats


@pytest.fixture
def stream(kinesis_endpoint, unique_name, redis_client):
    client = make_kinesis_client(kinesis_endpoint, "us-east-1")
    create_stream(client, unique_name, 2)
    yield client, unique_name
    delete_stream(client, unique_name)
    delete_matching(redis_client, f"pistats:ckpt:{unique_name}:*")
    delete_matching(redis_client, status_prefix(unique_name, unique_name) + "*")


def put(client, stream, shard_id, count):
    """Put ``count`` records onto one shard (explicit hash key inside its range); their sequence numbers."""
    shard = next(s for s in list_all_shards(client, stream) if s["ShardId"] == shard_id)
    hash_key = shard["HashKeyRange"]["StartingHashKey"]
    return [client.put_record(StreamName=stream, Data=b"{}", PartitionKey="p", ExplicitHashKey=hash_key)["SequenceNumber"]
            for _ in range(count)]


def test_behind_is_counted_from_each_checkpoint_and_published_figures_are_shown(stream, redis_client):
    client, name = stream
    first, second = [s["ShardId"] for s in list_all_shards(client, name)]
    sequences = put(client, name, first, 12)
    put(client, name, second, 5)
    checkpoints = RedisCheckpointStore(redis_client, name, name)
    assert checkpoints.save(first, "task-0", Position(int(sequences[8]), 0), True, ended=False, now_ms=0,
                            lease_ms=30_000) == "ok"
    spout = StatusPublisher(redis_client, name, name, "spout", 0)
    for _ in range(2):  # the second document carries what the first publish cost
        spout.publish(*spout_figures({first: ShardMetrics(read=12, acked=9, failed=1, in_flight=3,
                                                          millis_behind_latest=0)}))
    stats = SinkStats(rows_inserted=9, batches_inserted=2)
    sink = StatusPublisher(redis_client, name, name, "sink", 1)
    sink.publish(*sink_figures(stats, pending_rows=4, inserts_in_flight=1))
    time.sleep(1.2)

    view = collect(client, redis_client, name, name)

    by_id = {s.shard_id: s for s in view.shards}
    assert (by_id[first].behind_records, by_id[first].behind_exact) == (3, True)  # records 9, 10, 11
    assert by_id[first].checkpoint == sequences[8] and by_id[first].owner == "task-0"
    assert (by_id[second].behind_records, by_id[second].behind_exact) == (5, True)  # no checkpoint: all of it
    assert by_id[second].behind_ms >= 1000
    assert (by_id[first].in_flight, by_id[first].failed) == (3, 1)
    assert by_id[second].in_flight is None  # nobody publishes for it
    assert view.behind_records == 8
    assert [(s.task, s.rows_stored, s.pending_rows, s.inserts_in_flight) for s in view.sinks] == [(1, 9, 4, 1)]
    assert view.spout_tasks == 1 and view.problems == []
    assert 0 < view.publishing_cpu_share < 1
    text = render_text(view)
    assert f"stream {name} (app {name}): behind 8 records" in text and first in text


def test_a_count_that_reaches_its_limit_says_at_least(stream, redis_client):
    client, name = stream
    first = list_all_shards(client, name)[0]["ShardId"]
    put(client, name, first, 6)
    view = collect(client, redis_client, name, name, count_up_to=4)
    shard = next(s for s in view.shards if s.shard_id == first)
    assert (shard.behind_records, shard.behind_exact) == (4, False)
    assert "4+" in render_text(view)
    assert view.problems == ["no task has published figures: is the topology running with this app name and stream?"]


def test_the_write_rate_is_read_at_the_tips_past_any_count_limit(stream, redis_client):
    client, name = stream
    first, second = [s["ShardId"] for s in list_all_shards(client, name)]
    older = put(client, name, first, 8)
    time.sleep(2.0)
    recent_from = time.time()
    put(client, name, first, 5)
    now = time.time()
    window_s = now - recent_from + 0.3  # the 5 recent records, not the 8 written 2 s before them

    counted = collect(client, redis_client, name, name, count_up_to=1_000, wall=lambda: now)
    assert counted.behind_exact and counted.arrived_per_s is None  # not asked for: not probed

    capped = collect(client, redis_client, name, name, count_up_to=10, arrivals_window_s=window_s, wall=lambda: now)
    by_id = {s.shard_id: s for s in capped.shards}
    assert [p for p in capped.problems if "failed" in p] == []
    assert not capped.behind_exact
    assert by_id[first].arrived_per_s == pytest.approx(5 / window_s)
    assert by_id[second].arrived_per_s == 0.0
    assert capped.arrived_per_s == pytest.approx(5 / window_s)

    # A page that stops at its limit measures up to its last record, not over the whole window.
    full = collect(client, redis_client, name, name, count_up_to=3, arrivals_window_s=window_s, wall=lambda: now)
    recent = client.get_shard_iterator(StreamName=name, ShardId=first, ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                                       StartingSequenceNumber=older[-1])["ShardIterator"]
    third = client.get_records(ShardIterator=recent, Limit=3)["Records"][2]
    span_s = third["ApproximateArrivalTimestamp"].timestamp() - (now - window_s)
    assert {s.shard_id: s for s in full.shards}[first].arrived_per_s == pytest.approx(3 / max(span_s, 0.1))


def test_the_command_prints_one_json_object_and_refuses_a_missing_stream(stream, kinesis_endpoint, redis_url):
    client, name = stream
    put(client, name, list_all_shards(client, name)[0]["ShardId"], 2)
    base = [sys.executable, "-m", "pistats.cli.main", "status", "--endpoint-url", kinesis_endpoint,
            "--redis-url", redis_url, "--app", name]
    done = subprocess.run(base + ["--stream", name, "--json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["behind_records"] == 2 and len(document["shards"]) == 2
    missing = subprocess.run(base + ["--stream", name + "-missing"], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [f"pistats status: stream {name + '-missing'!r} not found"]
