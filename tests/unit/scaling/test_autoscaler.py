"""The autoscaler's loop with its parts faked (pistats.scaling.autoscaler)."""

from __future__ import annotations

import subprocess

from pistats.scaling.autoscaler import (
    Autoscaler,
    Observer,
    Remembered,
    ShapeMemory,
    ShardResizer,
    Shape,
    StormRebalancer,
    listed_uptime_s,
    starting_shape,
)
from pistats.scaling.policy import AutoscaleConfig
from pistats.status.view import ShardStatus, StatusView


def view(behind, finished_per_s, behind_ms=0, *, exact=True, arrived_per_s=None):
    shard = ShardStatus("shardId-0", "open", "1", "t", behind, exact, behind_ms, finished_per_s=finished_per_s,
                        arrived_per_s=arrived_per_s)
    return StatusView("app", "s", 0.0, [shard], [], 1)


class FakeRedis:
    def __init__(self):
        self.values = {}

    def get(self, key):
        return self.values.get(key)

    def set(self, key, value):
        self.values[key] = value


class Recorder:
    def __init__(self, error=None):
        self.calls, self.error = [], error

    def apply(self, value):
        self.calls.append(value)
        return self.error


def test_incoming_is_finished_plus_the_backlogs_growth():
    observer = Observer()
    first = observer.observe(view(1_000, 500.0), 0.0, Shape(2, 1), 2)
    assert first.incoming_per_s == 500.0  # nothing to compare with yet
    second = observer.observe(view(6_000, 500.0), 10.0, Shape(2, 1), 2)
    assert second.incoming_per_s == 1_000.0 and second.backlog_records == 6_000


def test_incoming_is_the_rate_written_at_the_tips_when_they_were_probed():
    observer = Observer()
    observer.observe(view(900, 500.0, arrived_per_s=1_000.0), 0.0, Shape(2, 1), 2)
    # 1,000 is the probe's limit: the backlog stops growing as counted although 700/s more arrive
    # than are finished. Growth would say 500; the tips say 1,200.
    capped = observer.observe(view(1_000, 500.0, exact=False, arrived_per_s=1_200.0), 10.0, Shape(2, 1), 2)
    assert capped.incoming_per_s == 1_200.0
    # Draining after a pause: the published finished rate trails the drain. Growth would say 0.
    draining = observer.observe(view(200, 100.0, arrived_per_s=300.0), 20.0, Shape(2, 1), 2)
    assert draining.incoming_per_s == 300.0


def test_without_the_tips_incoming_is_finished_plus_growth_between_exact_counts():
    observer = Observer()
    observer.observe(view(1_000, 500.0, exact=False), 0.0, Shape(2, 1), 2)
    assert observer.observe(view(1_000, 300.0, exact=False), 10.0, Shape(2, 1), 2).incoming_per_s == 300.0
    assert observer.observe(view(800, 500.0), 20.0, Shape(2, 1), 2).incoming_per_s == 500.0  # one exact count
    assert observer.observe(view(700, 500.0), 30.0, Shape(2, 1), 2).incoming_per_s == 490.0


def test_arrivals_count_only_when_every_open_shard_was_probed():
    shards = [ShardStatus("shardId-0", "open", "1", "t", 10, False, 5, arrived_per_s=100.0),
              ShardStatus("shardId-1", "closed", "1", "t", 10, False, 5),
              ShardStatus("shardId-2", "done", "1", "t", None, False, None)]
    assert StatusView("app", "s", 0.0, shards, [], 1).arrived_per_s == 100.0
    assert not StatusView("app", "s", 0.0, shards, [], 1).behind_exact
    unprobed = shards + [ShardStatus("shardId-3", "open", "", "", 10, True, 5)]
    assert StatusView("app", "s", 0.0, unprobed, [], 1).arrived_per_s is None
    finished = [shards[2], ShardStatus("shardId-3", "open", "", "", 0, True, 0)]
    assert StatusView("app", "s", 0.0, finished, [], 1).behind_exact


def make(views, *, dry_run=False, rebalance_error=None, memory=None, started_at=None):
    config = AutoscaleConfig(records_per_executor_s=100, up_after=2, up_cooldown_s=0)
    clock = iter(range(0, 10_000, 10))
    feed = iter(views)
    rebalancer, resizer = Recorder(rebalance_error), Recorder()
    memory = memory or ShapeMemory(FakeRedis(), "enrichment")
    scaler = Autoscaler(config, view=lambda: next(feed), shards=lambda: 4, rebalancer=rebalancer, resizer=resizer,
                        memory=memory, submitted=Shape(2, 1), topology_started_at=started_at, dry_run=dry_run,
                        now=lambda: float(next(clock)))
    return scaler, rebalancer, resizer, memory


def test_a_lagging_topology_is_rebalanced_and_the_shape_remembered():
    lagging = [view(50_000, 200.0, 60_000), view(60_000, 200.0, 70_000)]
    scaler, rebalancer, resizer, memory = make(lagging)
    assert scaler.step().applied is False
    step = scaler.step()
    assert step.applied and rebalancer.calls == [Shape(step.decision.executors, step.decision.workers)]
    assert step.decision.executors > 2
    assert memory.load().shape == scaler.shape == rebalancer.calls[0]
    assert resizer.calls == []


def test_a_dry_run_decides_and_changes_nothing():
    scaler, rebalancer, resizer, memory = make([view(50_000, 200.0, 60_000), view(60_000, 200.0, 70_000)], dry_run=True)
    scaler.step()
    step = scaler.step()
    assert step.decision.executors > 2 and not step.applied
    assert rebalancer.calls == [] and memory.load() is None and scaler.shape == Shape(2, 1)


def test_a_refused_rebalance_keeps_the_shape_and_says_why():
    scaler, rebalancer, _, memory = make([view(50_000, 200.0, 60_000), view(60_000, 200.0, 70_000)],
                                         rebalance_error="Topology enrichment is not alive")
    scaler.step()
    step = scaler.step()
    assert not step.applied and step.errors == ("rebalance: Topology enrichment is not alive",)
    assert scaler.shape == Shape(2, 1) and memory.load() is None


def test_a_restarted_autoscaler_starts_from_the_remembered_shape():
    memory = ShapeMemory(FakeRedis(), "enrichment", wall=lambda: 1_000.0)
    memory.save(Shape(6, 2))
    scaler, *_ = make([], memory=memory, started_at=900.0)
    assert scaler.shape == Shape(6, 2)


def test_a_shape_remembered_from_an_earlier_run_of_the_topology_is_ignored():
    # Applied at 1,000 s; the topology was submitted again at 2,000 s with its own shape.
    memory = ShapeMemory(FakeRedis(), "enrichment", wall=lambda: 1_000.0)
    memory.save(Shape(6, 2))
    scaler, *_ = make([], memory=memory, started_at=2_000.0)
    assert scaler.shape == Shape(2, 1)


def test_the_starting_shape():
    submitted, applied = Shape(2, 1), Shape(4, 2)
    assert starting_shape(None, submitted, 100.0) == submitted
    assert starting_shape(Remembered(applied, 150.0), submitted, 100.0) == applied
    assert starting_shape(Remembered(applied, 50.0), submitted, 100.0) == submitted
    # Storm could not say when the topology started: the remembered shape stands.
    assert starting_shape(Remembered(applied, 50.0), submitted, None) == applied
    # Saved by an autoscaler older than the saved_at field: from before any known start.
    assert starting_shape(Remembered(applied, 0.0), submitted, 100.0) == submitted


def test_storm_list_gives_the_topologys_uptime():
    listing = ("Topology_name                  Status     Num_tasks Num_workers Uptime_secs\n" + "-" * 75 + "\n"
               "enrichment-old                 ACTIVE            12           1        9000\n"
               "enrichment                     REBALANCING        12           2          42\n")
    assert listed_uptime_s(listing, "enrichment") == 42
    assert listed_uptime_s(listing, "other") is None

    def run(argv):
        assert list(argv) == ["storm", "list"]
        return subprocess.CompletedProcess(argv, 0, listing, "")

    assert StormRebalancer("storm", "enrichment", "enrich", run=run).uptime_s() == 42
    refused = StormRebalancer("storm", "enrichment", "enrich",
                              run=lambda argv: subprocess.CompletedProcess(argv, 1, "", "Nimbus unreachable"))
    assert refused.uptime_s() is None
    assert StormRebalancer("/nonexistent/storm", "enrichment", "enrich").uptime_s() is None


def test_the_rebalance_command_names_workers_and_executors():
    seen = []

    def run(argv):
        seen.append(list(argv))
        return subprocess.CompletedProcess(argv, 1, "", "noise\nTopology x is not alive\n")

    error = StormRebalancer("storm", "x", "enrich", wait_s=3, run=run).apply(Shape(4, 2))
    assert seen == [["storm", "rebalance", "x", "-w", "3", "-n", "2", "-e", "enrich=4"]]
    assert error == "Topology x is not alive"


def test_update_shard_count_errors_are_values():
    class Kinesis:
        def update_shard_count(self, **kwargs):
            self.kwargs = kwargs
            raise RuntimeError("LimitExceeded")

    kinesis = Kinesis()
    assert ShardResizer(kinesis, "s").apply(8) == "RuntimeError"
    assert kinesis.kwargs == {"StreamName": "s", "TargetShardCount": 8, "ScalingType": "UNIFORM_SCALING"}
