"""``pistats autoscale`` for real on the local two-host cluster (issue 19): a surge makes it
rebalance the topology and reshard the stream, the load falling back makes it scale down, and the
store equals expected.json.

The topology is submitted with ``-e cluster`` on 1 worker (2 enrich executors over 4 tasks, 2
spout tasks) to read a 2-shard stream that a putter fills while it runs: a base rate, a surge of
10x for a bounded time, the base again (``tests.support.surge``). The autoscaler runs as a process
(``pistats autoscale``, not a dry run) with its intervals, cool-downs and bands compressed for the
test, bounded to 2-4 enrich executors, 1-2 workers and 2-4 shards. The spout reads at most
``READ_LIMIT`` records per GetRecords (5 calls a second per shard), so the surge outruns it even
on 4 shards whatever the machine's speed, and the lag the autoscaler sees is real.

Checked: the autoscaler starts from the submitted shape although Redis remembers one applied to
an earlier run of the topology; it decided and applied a scale-up during the surge and a
scale-down after it, Storm shows each shape (executors, workers, hosts), the shards were doubled
and halved, each changed direction once (no flapping); an autoscaler started after the scale-up
carries on from the shape applied; then every record is committed and the de-duplicated store
equals expected.json, every event's session fields, the order-dependent ones included, equal to a
run in shard order: a rebalance moves tasks, not buckets, and a reshard keeps a user's records
parent first (docs/scaling.md).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pistats.demo.runner import storm_env
from pistats.generate.generator import GenerateConfig, generate
from pistats.kinesis.recording import Recording
from pistats.localenv.paths import project_root
from pistats.scaling.autoscaler import Shape, ShapeMemory, open_shards
from pistats.status.view import collect
from pistats.store.backends import open_store
from tests.support.pipeline import EVERYTHING, TIMEOUT_S, assert_summary
from tests.support.storm_hosts import HOSTS, assert_per_user_order, placement, two_host_cluster, wait_for, workers
from tests.support.surge import Phase, SurgePutter

pytestmark = [pytest.mark.integration, pytest.mark.storm]

TOPOLOGY = "enrichment"
BIN = Path(sys.executable).parent
# 5 GetRecords a second per shard of at most this many records: 80 records/s on 2 shards, 160 on
# 4, under the surge's 200 (the executors' bound, 4, cannot raise it: the lag stays real).
READ_LIMIT = 8
BASE_PER_S = 20
SURGE_PER_S = 200
PROFILE = [Phase(400, BASE_PER_S), Phase(4000, SURGE_PER_S), Phase(600, BASE_PER_S)]
EVENTS = sum(phase.records for phase in PROFILE)
INTERVAL_S = 3
# The policy compressed for the test (pistats.scaling.policy.AutoscaleConfig). A guessed capacity
# of 50 records/s per executor puts the surge at 4 executors' worth and the base at 20 % of 2;
# 50 records/s per shard puts the surge above a doubling and the base under a halving.
SETTINGS = {
    "min_executors": 2, "max_executors": 4, "executors_per_worker": 2, "min_workers": 1, "max_workers": 2,
    "min_shards": 2, "max_shards": 4, "records_per_executor_s": 50, "shard_records_per_s": 50,
    "lag_high_ms": 8000, "lag_low_ms": 4000, "drain_s": 60, "up_after": 2, "down_after": 3,
    "up_cooldown_s": 30, "down_cooldown_s": 40, "shard_up_cooldown_s": 30, "shard_down_cooldown_s": 40,
}


@pytest.fixture(scope="module")
def hosts():
    with two_host_cluster(BIN) as cluster:
        yield cluster


@pytest.fixture
def pipeline(pipelines, hosts, storm_kill, clickhouse_url, unique_name, redis_client):
    database = f"e2e_{unique_name}"
    made = pipelines(clickhouse_url.rsplit("/", 1)[0] + f"/{database}",
                     **{"pistats.kinesis.get_records_limit": READ_LIMIT})
    yield made
    storm_kill(TOPOLOGY)
    hosts.wait_until_both_alive()
    redis_client.delete(f"pistats:autoscale:{TOPOLOGY}")
    with open_store(made.run.store_url) as store:
        store.execute(f"DROP DATABASE IF EXISTS {database}")


def autoscale_command(pipeline, *more: str) -> tuple[list[str], dict[str, str]]:
    """``pistats autoscale`` of the test's topology, submitted with 2 enrich executors on 1 worker,
    with ``SETTINGS``; run with this checkout's pistats, as the test imports it (a clone's, not the
    installed one's)."""
    argv = [sys.executable, "-m", "pistats.cli.main", "autoscale", "--topology", TOPOLOGY,
            "--stream", pipeline.run.stream, "--app", pipeline.run.app_name,
            "--endpoint-url", pipeline.kinesis_endpoint, "--redis-url", pipeline.redis_url,
            "--executors", "2", "--workers", "1", "--storm", str(BIN / "storm"), "--interval", str(INTERVAL_S)]
    for name, value in SETTINGS.items():
        argv += ["--set", f"{name}={value}"]
    return argv + list(more), {**storm_env(), "PYTHONPATH": os.pathsep.join(sys.path)}


class AutoscaleProcess:
    """``pistats autoscale`` as a process; its JSON lines read back from its output file."""

    def __init__(self, pipeline, out: Path):
        argv, env = autoscale_command(pipeline)
        self.out, self.err = out, out.with_suffix(".err")
        with open(self.out, "wb") as stdout, open(self.err, "wb") as stderr:
            self.process = subprocess.Popen(argv, cwd=project_root(), env=env, stdin=subprocess.DEVNULL,
                                            stdout=stdout, stderr=stderr)

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]

    def applied(self) -> list[dict]:
        return [line for line in self.lines() if line["applied"]]

    def check_alive(self) -> None:
        assert self.process.poll() is None, f"pistats autoscale exited: {self.err.read_text()[-2000:]}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)

    def story(self) -> str:
        """Every observation, one line each, seconds counted from the first."""
        lines = self.lines()
        keep = ("lag_ms", "backlog_records", "incoming_per_s", "finished_per_s", "executors", "workers", "shards")
        return "\n".join(json.dumps({"t": round(line["at"] - lines[0]["at"], 1), **{k: line[k] for k in keep},
                                     "decision": line["decision"], "applied": line["applied"],
                                     "errors": line["errors"]})
                         for line in lines)


def by_component(executors, component):
    return [executor for executor in executors if executor.component == component]


def shape_in_storm() -> tuple[int, int]:
    now = placement(TOPOLOGY)
    return len(by_component(now, "enrich")), len(workers(now))


def steps(lines: list[dict], dimension: str) -> list[int]:
    """+1 for each applied step up of ``dimension`` (executors or shards), -1 for each step down."""
    moves = [line["decision"][dimension] - line[dimension] for line in lines if line["applied"]]
    return [(move > 0) - (move < 0) for move in moves if move]


def test_a_surge_makes_the_autoscaler_rebalance_and_reshard_with_nothing_lost(pipeline, hosts, tmp_path):
    started = time.monotonic()
    recording = tmp_path / "recording"
    generate(GenerateConfig(events=EVENTS, shards=2, seed=43, bad_fraction=0.03, duplicate_fraction=0.03), recording)
    pipeline.create_stream(Recording.open(recording))
    # A shape an autoscaler applied to an earlier run of the topology: this run starts from its own.
    ShapeMemory(pipeline.redis, TOPOLOGY).save(Shape(4, 2))
    pipeline.submit(**{"topology.workers": 1})
    wait_for(lambda: shape_in_storm() == (2, 1), "2 enrich executors on 1 worker", 180)

    def view():
        return collect(pipeline.client, pipeline.redis, pipeline.run.app_name, pipeline.run.stream)

    # The load starts once the spout tasks run: a backlog waiting for the workers to start would
    # look like a surge to the autoscaler.
    wait_for(lambda: view().spout_tasks == 2, "both spout tasks publishing", 180)
    running_at = time.monotonic()
    putter = SurgePutter(pipeline.client, pipeline.run.stream, recording, PROFILE)
    putter.start()
    scaler = AutoscaleProcess(pipeline, tmp_path / "autoscale.jsonl")
    try:
        def shaped(executors: int, workers_: int, shards: int):
            def check() -> bool:
                scaler.check_alive()
                applied = scaler.applied()
                return (any(line["decision"]["executors"] == executors for line in applied)
                        and any(line["decision"]["shards"] == shards for line in applied)
                        and shape_in_storm() == (executors, workers_)
                        and open_shards(pipeline.client, pipeline.run.stream) == shards)
            return check

        wait_for(shaped(4, 2, 4), "a scale-up to 4 enrich executors on 2 workers and 4 shards", 180)
        up_at = time.monotonic()
        assert {host for host, _ in workers(placement(TOPOLOGY))} == set(HOSTS)
        # An autoscaler started now (a restart) carries on from the shape applied to this run.
        argv, env = autoscale_command(pipeline, "--dry-run", "--steps", "1")
        restarted = subprocess.run(argv, cwd=project_root(), env=env, capture_output=True, text=True, timeout=120)
        assert restarted.returncode == 0, restarted.stderr
        assert [(line["executors"], line["workers"]) for line in map(json.loads, restarted.stdout.splitlines())] \
            == [(4, 2)]
        wait_for(shaped(2, 1, 2), "a scale-down to 2 enrich executors on 1 worker and 2 shards", 240)
        down_at = time.monotonic()
        log = putter.join(120)
    finally:
        scaler.stop()
        print(scaler.story())
    print(f"running after {running_at - started:.0f} s; from there, scaled up after {up_at - running_at:.0f} s, "
          f"down after {down_at - running_at:.0f} s; put per phase {log.put_per_phase} "
          f"in {log.seconds_per_phase} s, "
          f"refused and put again {log.entries_retried}")

    lines = scaler.lines()
    assert (lines[0]["executors"], lines[0]["workers"]) == (2, 1), "started from the earlier run's shape"
    assert not any(line["errors"] for line in lines), scaler.story()
    executor_ups = [line for line in lines if line["applied"] and line["decision"]["executors"] > line["executors"]]
    # The executors went up on the lag: above the high band for two observations in a row.
    assert executor_ups and executor_ups[0]["lag_ms"] > SETTINGS["lag_high_ms"], scaler.story()
    # No flapping: each dimension went up, then down, and changed direction once.
    assert steps(lines, "executors") == [1, -1], scaler.story()
    assert steps(lines, "shards") == [1, -1], scaler.story()

    pipeline.read_layout()
    assert pipeline.layout.total == EVENTS
    pipeline.wait_until_committed(None, TIMEOUT_S)
    assert_summary(pipeline, recording, EVERYTHING)
    assert_per_user_order(pipeline, recording)
    print(f"the whole test took {time.monotonic() - started:.0f} s")
