"""The Kinesis spout driven as Storm's ShellSpout drives it: a `streamparse_run` child process
speaking multilang JSON over stdin/stdout (handshake, activate, next, ack, fail; each answered
with sync). The stream is a recorded shard map (ReplaySource) and checkpoints live in memory, so
this needs no service; tests/integration/kinesis/test_spout_kinesis_local.py runs the real wiring.

`MultilangSpout` is also used by the integration test and benchmarks/spout_emit.py.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from spouts.kinesis import KinesisSpout

ROOT = Path(__file__).resolve().parents[3]
VENV_BIN = Path(sys.executable).parent


class MultilangSpout:
    """A spout subprocess and the Storm side of the multilang protocol."""

    def __init__(self, target: str, conf: dict, *, task_id: int = 1, tasks: int = 1, pythonpath=(), env=None):
        path = os.pathsep.join([str(ROOT / "src"), *map(str, pythonpath)])
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "streamparse_run"), target], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            cwd=ROOT, env={**os.environ, **(env or {}), "PYTHONPATH": path})
        self._pid_dir = tempfile.mkdtemp(prefix="spout-pids-")
        components = {str(t): "kinesis" for t in range(1, tasks + 1)}
        self.send({"conf": conf, "context": {"taskid": task_id, "componentid": "kinesis",
                                             "task->component": {**components, str(tasks + 1): "__acker"}},
                   "pidDir": self._pid_dir})
        self.pid = self.read()["pid"]

    def send(self, message: dict) -> None:
        self.proc.stdin.write(json.dumps(message).encode() + b"\nend\n")
        self.proc.stdin.flush()

    def read(self) -> dict:
        lines = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise EOFError(f"spout exited with {self.proc.wait()}")
            if line == b"end\n":
                return json.loads(b"".join(lines))
            lines.append(line)

    def command(self, name: str, **fields) -> list[dict]:
        """Send one command; return the emits it caused (logs skipped) once the spout syncs."""
        self.send({"command": name, **fields})
        emits = []
        while True:
            message = self.read()
            if message.get("command") == "sync":
                return emits
            if message.get("command") == "emit":
                emits.append(message)

    def next_until(self, count: int, max_calls: int = 500) -> list[dict]:
        """Call next until ``count`` emits arrived (the spout fetches in the background)."""
        emits: list[dict] = []
        for _ in range(max_calls):
            emits += self.command("next")
            if len(emits) >= count:
                return emits
            time.sleep(0.01)  # Storm's ShellSpout idles between empty nexts too
        return emits

    def close(self) -> None:
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


# --- a spout over a recorded stream, for the child process ---------------------------------------

T0 = datetime(2026, 11, 26, 5, 0, tzinfo=timezone.utc)
BASE = 49680574275476335198516986152487755993581893416107638786
BAD = [b"\xff\xfe not utf-8", b"{not json"]


def recorded_consumer(config, task_index, task_count):
    """Two open shards of `test.records` records each; every third payload is bad bytes."""
    from pistats.kinesis.checkpoint import MemoryCheckpointStore
    from pistats.kinesis.consumer import Consumer
    from pistats.kinesis.recording import RecordedRecord, ShardInfo
    from pistats.kinesis.replay_source import ReplaySource

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


def test_emits_records_as_tuples_with_ids_and_acks_them(spout_process):
    spout = spout_process(records=3)
    assert spout.command("activate") == []
    emits = spout.next_until(6)
    assert len(emits) == 6
    first = next(e for e in emits if e["tuple"][0] == "shardId-000000000000" and e["tuple"][2] == 0
                 and e["tuple"][1] == str(BASE))
    shard_id, seq, subseq, key, arrival_ms, data_b64 = first["tuple"]
    assert first["id"] == f"{shard_id}|{seq}|{subseq}"
    assert (key, arrival_ms) == ("user0", int(T0.timestamp() * 1000))
    assert json.loads(base64.b64decode(data_b64)) == {"n": 0, "i": 0}
    assert "stream" not in first or first["stream"] in (None, "default")
    # bad bytes are emitted as they are: rejecting them is the parse bolt's job
    assert base64.b64decode(next(e for e in emits if e["tuple"][1] == str(BASE + 2))["tuple"][5]) == BAD[0]
    for e in emits:
        assert spout.command("ack", id=e["id"]) == []
    assert spout.command("next") == []


def test_next_emits_a_small_batch_per_call(spout_process):
    spout = spout_process(records=10)
    emits = spout.next_until(1)
    assert 1 <= len(emits) <= 4


def test_fail_replays_then_dead_letters_on_the_rejects_stream(spout_process):
    spout = spout_process(records=1)
    emits = spout.next_until(2)
    victim = emits[0]
    assert spout.command("fail", id=victim["id"]) == []
    replayed = spout.next_until(1)
    assert [e["id"] for e in replayed] == [victim["id"]]
    assert replayed[0]["tuple"] == victim["tuple"]
    spout.command("fail", id=victim["id"])  # retries=1: this failure dead-letters it
    dead = spout.next_until(1)
    assert dead[0]["stream"] == "rejects"
    assert dead[0]["id"] == victim["id"] + "|dead"
    (reject,) = dead[0]["tuple"]
    shard_id, seq, subseq = victim["id"].split("|")
    assert reject["reason"] == "max_retries" and reject["stage"] == "spout"
    assert (reject["kinesis_shard"], reject["kinesis_seq"], reject["kinesis_subseq"]) == (shard_id, seq, int(subseq))
    assert reject["raw_b64"] == victim["tuple"][5]
    assert set(reject) == {"reason", "stage", "field", "detail", "raw_b64", "kinesis_shard", "kinesis_seq",
                           "kinesis_subseq", "client_id", "rejected_at"}
    assert datetime.fromisoformat(reject["rejected_at"].replace("Z", "+00:00")).tzinfo is not None
    assert spout.command("ack", id=dead[0]["id"]) == []


def test_two_tasks_read_disjoint_shards():
    spouts = [MultilangSpout("test_spout_multilang.RecordedKinesisSpout", conf(), task_id=t, tasks=2,
                             pythonpath=[Path(__file__).parent], env={"TEST_RECORDS": "2"}) for t in (1, 2)]
    try:
        shards = [{e["tuple"][0] for e in s.next_until(2)} for s in spouts]
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
    assert len(spout.next_until(4)) == 4
    spout.proc.send_signal(signal.SIGTERM)
    assert spout.proc.wait(5) == 128 + signal.SIGTERM


def test_storm_going_away_ends_the_spout(spout_process):
    spout = spout_process(records=1)
    spout.next_until(2)
    spout.proc.stdin.close()
    assert spout.proc.wait(5) == 2
