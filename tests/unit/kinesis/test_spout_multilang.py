"""The Kinesis spout driven as Storm's ShellSpout drives it: a `streamparse_run` child process
speaking multilang JSON over stdin/stdout (handshake, activate, next, ack, fail; each answered
with sync). The stream is a recorded shard map (ReplaySource) and checkpoints live in memory, so
this needs no service; tests/integration/kinesis/test_spout_kinesis_local.py runs the real wiring.

The driver, `tests.support.multilang_spout.MultilangSpout`, is shared with the integration test
and benchmarks/spout_emit.py.
"""

from __future__ import annotations

import base64
import json
import os
import signal
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pistats.enrich.parse import record_from_tuple
from pistats.kinesis.microbatch import bucket_of
from spouts.kinesis import KinesisSpout
from tests.support.multilang_spout import MultilangSpout, records_of, rows_of

# --- a spout over a recorded stream, for the child process ---------------------------------------

T0 = datetime(2026, 11, 26, 5, 0, tzinfo=timezone.utc)
BASE = 49680574275476335198516986152487755993581893416107638786
BAD = [b"\xff\xfe not utf-8", b"{not json"]


def recorded_consumer(config, task_index, task_count):
    """Two open shards of `test.records` records each; every third payload is bad bytes."""
    from pistats.kinesis.checkpoint import MemoryCheckpointStore
    from pistats.kinesis.consumer import Consumer
    from pistats.kinesis.recording import RecordedRecord, ShardInfo
    from pistats.testing.replay_source import ReplaySource

    count = int(os.environ["TEST_RECORDS"])
    half = 2**127
    shards = []
    for n, (lo, hi) in enumerate([(0, half - 1), (half, 2**128 - 1)]):
        recs = [RecordedRecord(str(BASE + n * 10**9 + i), T0 + timedelta(milliseconds=i), f"user{i}",
                               BAD[i % 2] if i % 3 == 2 else json.dumps({"n": n, "i": i}).encode())
                for i in range(count)]
        shards.append((ShardInfo(f"shardId-{n:012d}", lo, hi, str(BASE + n * 10**9)), recs, None))
    return Consumer(config, ReplaySource(shards, stream=config.stream), MemoryCheckpointStore(),
                    task_index=task_index, task_count=task_count)


class RecordedKinesisSpout(KinesisSpout):
    consumer_factory = staticmethod(recorded_consumer)


def conf(**extra):
    values = {"pistats.kinesis.stream": "events", "pistats.kinesis.emit_batch": 4,
              "pistats.kinesis.retries": 1, "pistats.kinesis.retry_base_delay_ms": 10,
              "pistats.kinesis.retry_max_delay_ms": 20, "pistats.kinesis.idle_poll_ms": 50,
              "topology.name": "test", "topology.debug": False}
    values.update({f"pistats.kinesis.{k}": v for k, v in extra.items()})
    return values


@pytest.fixture
def spout_process():
    started = []

    def start(records=3, **kw):
        spout = MultilangSpout("test_spout_multilang.RecordedKinesisSpout", conf(**kw),
                               pythonpath=[Path(__file__).parent], env={"TEST_RECORDS": str(records)})
        started.append(spout)
        return spout

    yield start
    for spout in started:
        spout.close()


def test_emits_records_in_per_user_bucket_batches_and_acks_them(spout_process):
    spout = spout_process(records=3, buckets=4)
    assert spout.command("activate") == []
    emits = spout.next_until(6)
    records = records_of(emits)
    assert len(records) == 6
    for emit in emits:
        assert "stream" not in emit or emit["stream"] in (None, "default")
        bucket = emit["tuple"][0]
        assert {bucket_of(record[3], 4) for record in rows_of(emit)} == {bucket}
    assert len({emit["id"] for emit in emits}) == len(emits)
    first = next(r for r in records if r[0] == "shardId-000000000000" and r[1] == str(BASE))
    shard_id, seq, subseq, key, arrival_ms, data = first
    assert (subseq, key, arrival_ms) == (0, "user0", int(T0.timestamp() * 1000))
    assert json.loads(data) == {"n": 0, "i": 0}  # UTF-8 travels as text
    # bad bytes are emitted as they are (not UTF-8: as [base64]): rejecting them is the parse bolt's job
    [bad_b64] = next(r for r in records if r[1] == str(BASE + 2))[5]
    assert base64.b64decode(bad_b64) == BAD[0]
    # within a shard, records keep their order (per bucket, and so per user)
    for emit in emits:
        by_shard = {}
        for record in rows_of(emit):
            by_shard.setdefault(record[0], []).append(int(record[1]))
        assert all(seqs == sorted(seqs) for seqs in by_shard.values())
    for e in emits:
        assert spout.command("ack", id=e["id"]) == []
    assert spout.command("next") == []


def test_next_takes_at_most_emit_batch_records_per_call(spout_process):
    spout = spout_process(records=10)
    emits = spout.next_until(1)
    assert 1 <= len(records_of(emits)) <= 4


def test_batches_hold_at_most_batch_records(spout_process):
    spout = spout_process(records=10, buckets=1, batch_records=3, emit_batch=20)
    emits = spout.next_until(20)
    assert len(records_of(emits)) == 20
    assert max(len(rows_of(emit)) for emit in emits) == 3


def test_fail_replays_the_batch_then_dead_letters_on_the_rejects_stream(spout_process):
    spout = spout_process(records=1, buckets=1)
    emits = spout.next_until(2)
    victim = emits[0]
    victim_records = rows_of(victim)
    assert spout.command("fail", id=victim["id"]) == []
    replayed = spout.next_until(len(victim_records))
    assert records_of(replayed) == victim_records  # the same records, under a new tuple id
    assert replayed[0]["id"] != victim["id"]
    for emit in replayed:
        spout.command("fail", id=emit["id"])  # retries=1: this failure dead-letters them
    dead = spout.next_until(len(victim_records))
    assert {emit["stream"] for emit in dead} == {"rejects"}
    rejects = [reject for emit in dead for reject in rows_of(emit)]
    assert len(rejects) == len(victim_records)
    for reject, record in zip(rejects, victim_records):
        assert reject["reason"] == "max_retries" and reject["stage"] == "spout"
        assert (reject["kinesis_shard"], reject["kinesis_seq"], reject["kinesis_subseq"]) == tuple(record[:3])
        assert base64.b64decode(reject["raw_b64"]) == record_from_tuple(record).data
        assert set(reject) == {"reason", "stage", "field", "detail", "raw_b64", "kinesis_shard", "kinesis_seq",
                               "kinesis_subseq", "client_id", "rejected_at"}
        assert datetime.fromisoformat(reject["rejected_at"].replace("Z", "+00:00")).tzinfo is not None
    for emit in dead:
        assert spout.command("ack", id=emit["id"]) == []


def test_two_tasks_read_disjoint_shards():
    spouts = [MultilangSpout("test_spout_multilang.RecordedKinesisSpout", conf(), task_id=t, tasks=2,
                             pythonpath=[Path(__file__).parent], env={"TEST_RECORDS": "2"}) for t in (1, 2)]
    try:
        shards = [{record[0] for record in records_of(s.next_until(2))} for s in spouts]
        assert shards == [{"shardId-000000000000"}, {"shardId-000000000001"}]
    finally:
        for s in spouts:
            s.close()


def test_missing_stream_setting_fails_initialisation():
    spout = MultilangSpout("test_spout_multilang.RecordedKinesisSpout", {"topology.name": "t"},
                           pythonpath=[Path(__file__).parent], env={"TEST_RECORDS": "1"})
    try:
        with pytest.raises(EOFError):
            spout.command("next")
    finally:
        spout.close()


def test_sigterm_stops_the_spout_promptly_while_it_waits_for_storm(spout_process):
    spout = spout_process(records=2)
    assert len(records_of(spout.next_until(4))) == 4
    spout.proc.send_signal(signal.SIGTERM)
    assert spout.proc.wait(5) == 128 + signal.SIGTERM


def test_storm_going_away_ends_the_spout(spout_process):
    spout = spout_process(records=1)
    spout.next_until(2)
    spout.proc.stdin.close()
    assert spout.proc.wait(5) == 2
