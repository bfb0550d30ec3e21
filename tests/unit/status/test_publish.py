"""Publishing a task's figures (pistats.status.publish, pistats.status.tasks)."""

from __future__ import annotations

import orjson
import pytest

from pistats.kinesis.consumer import ShardMetrics
from pistats.status.publish import StatusPublisher, rates, status_key
from pistats.status.tasks import publish_spout, spout_figures
from tests.support.clock import Clock


class FakeRedis:
    def __init__(self, failing=False):
        self.values, self.ttls, self.failing = {}, {}, failing

    def set(self, key, value, px):
        if self.failing:
            raise ConnectionError("down")
        self.values[key], self.ttls[key] = value, px


def test_rates_are_per_second_changes_of_counters_in_both_snapshots():
    assert rates({"read": 150, "new": 3}, {"read": 100}, 10.0) == {"read": 5.0}
    assert rates({"read": 150}, None, 10.0) == {}


def test_a_publish_writes_one_expiring_document_with_rates_from_the_previous_one():
    clock, redis = Clock(100.0), FakeRedis()
    publisher = StatusPublisher(redis, "app", "stream", "spout", 3, interval_s=5, now=clock, wall=lambda: 1e9)
    assert publisher.due()
    publisher.publish({"shard-0": {"read": 100}}, {"shard-0": {"in_flight": 7}})
    assert not publisher.due()
    clock.now += 5
    assert publisher.due()
    publisher.publish({"shard-0": {"read": 600}}, {"shard-0": {"in_flight": 2}})
    key = status_key("app", "stream", "spout", 3)
    document = orjson.loads(redis.values[key])
    assert redis.ttls[key] == 15_000
    assert document["counters"] == {"shard-0": {"read": 600}}
    assert document["per_s"] == {"shard-0": {"read": 100.0}}
    assert document["gauges"] == {"shard-0": {"in_flight": 2}}
    assert (document["component"], document["task"], document["published_at"]) == ("spout", 3, 1e9)
    assert publisher.publishes == 2


def test_a_redis_failure_is_skipped_not_raised(caplog):
    clock = Clock(100.0)
    publisher = StatusPublisher(FakeRedis(failing=True), "a", "s", "sink", 0, interval_s=1, now=clock)
    assert publisher.publish({}, {}) is False
    clock.now += 1
    assert publisher.publish({}, {}) is False
    assert len([r for r in caplog.records if "status not published" in r.message]) == 1


def test_the_interval_must_be_positive():
    with pytest.raises(ValueError):
        StatusPublisher(FakeRedis(), "a", "s", "spout", 0, interval_s=0)


def test_the_spout_publishes_its_shards_counters_and_gauges_only_when_due():
    class Consumer:
        calls = 0

        def metrics(self):
            Consumer.calls += 1
            return {"shardId-0": ShardMetrics(read=10, acked=8, in_flight=2, millis_behind_latest=1500)}

    clock, redis = Clock(100.0), FakeRedis()
    publisher = StatusPublisher(redis, "a", "s", "spout", 0, interval_s=5, now=clock)
    publish_spout(publisher, Consumer())
    publish_spout(publisher, Consumer())
    assert Consumer.calls == 1
    document = orjson.loads(redis.values[publisher.key])
    assert document["counters"]["shardId-0"]["read"] == 10
    assert document["gauges"]["shardId-0"]["millis_behind_latest"] == 1500


def test_spout_figures_split_counters_from_gauges():
    counters, gauges = spout_figures({"s": ShardMetrics(read=5, failed=1, uncommitted=4, last_checkpoint="12")})
    assert counters["s"]["read"] == 5 and counters["s"]["failed"] == 1 and "uncommitted" not in counters["s"]
    assert gauges["s"] == {"in_flight": 0, "uncommitted": 4, "millis_behind_latest": None, "last_checkpoint": "12"}


def test_a_topology_without_a_stream_publishes_nothing():
    from pistats.status.tasks import publish_sink, task_publisher

    publisher = task_publisher({"topology.name": "t"}, "sink", 7)
    assert publisher is None
    publish_sink(publisher, object())  # no figures asked for, nothing raised


def test_the_sink_publishes_its_stats_and_resets_the_longest_insert():
    from pistats.status.tasks import publish_sink
    from pistats.store.sink import SinkStats

    class Sink:
        stats = SinkStats(rows_inserted=40, batches_inserted=2, insert_ms_total=30.0, insert_ms_max=20.0)
        pending_rows, inserts_in_flight = 5, 1

    redis = FakeRedis()
    publisher = StatusPublisher(redis, "a", "s", "sink", 4, now=Clock(100.0))
    publish_sink(publisher, Sink)
    document = orjson.loads(redis.values[publisher.key])
    assert document["counters"]["sink"]["rows_inserted"] == 40 and "insert_ms_max" not in document["counters"]["sink"]
    assert document["gauges"] == {"pending_rows": 5, "inserts_in_flight": 1, "insert_ms_max": 20.0}
    assert Sink.stats.insert_ms_max == 0.0
