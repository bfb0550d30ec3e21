"""The figures a spout task and a sink task publish for ``pistats status``.

The adapters call ``publish_*`` on every ``next_tuple`` / tick; it returns at once unless the
interval has passed (one clock read), so the cost is one Redis write per task per interval.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from pistats.status.publish import DEFAULT_INTERVAL_S, StatusPublisher

SPOUT, SINK = "spout", "sink"
SPOUT_COUNTERS = ("read", "emitted", "acked", "failed", "dead_lettered", "throttled", "read_errors",
                  "checkpoint_errors")
SPOUT_GAUGES = ("in_flight", "uncommitted", "millis_behind_latest", "last_checkpoint")


def task_publisher(conf: Mapping, component: str, task: int, redis_client=None,
                   interval_s: float = DEFAULT_INTERVAL_S) -> StatusPublisher | None:
    """A publisher for one task of the topology whose conf this is (its stream, app name and
    Redis); None when the conf names no stream (a bolt run without the spout, as in tests)."""
    from pistats.kinesis.config import PREFIX, KinesisConfig

    if PREFIX + "stream" not in conf:
        return None
    kinesis = KinesisConfig.from_topology_conf(conf)
    if redis_client is None:
        from pistats.redisconn import connect

        redis_client = connect(kinesis.redis_url, connect_timeout_s=2, socket_timeout_s=2)
    return StatusPublisher(redis_client, kinesis.app_name, kinesis.stream, component, task, interval_s=interval_s)


def spout_figures(metrics: Mapping[str, object]) -> tuple[dict, dict]:
    """Per shard: cumulative counters and the gauges as they stand (``ShardMetrics`` values)."""
    counters, gauges = {}, {}
    for shard_id, shard in metrics.items():
        values = dataclasses.asdict(shard)
        counters[shard_id] = {name: values[name] for name in SPOUT_COUNTERS}
        gauges[shard_id] = {name: values[name] for name in SPOUT_GAUGES}
    return counters, gauges


def publish_spout(publisher: StatusPublisher | None, consumer) -> None:
    if publisher is not None and publisher.due():
        publisher.publish(*spout_figures(consumer.metrics()))


def sink_figures(stats, pending_rows: int, inserts_in_flight: int) -> tuple[dict, dict]:
    """The sink's cumulative counters (``SinkStats``) and its pending and in-flight work."""
    values = dataclasses.asdict(stats)
    insert_ms_max = values.pop("insert_ms_max", None)
    counters = {"sink": values}
    gauges = {"pending_rows": pending_rows, "inserts_in_flight": inserts_in_flight, "insert_ms_max": insert_ms_max}
    return counters, gauges


def publish_sink(publisher: StatusPublisher | None, sink) -> None:
    """The sink's figures (``pistats.store.sink.Sink``); the longest insert is per interval."""
    if publisher is not None and publisher.due():
        counters, gauges = sink_figures(sink.stats, sink.pending_rows, sink.inserts_in_flight)
        sink.stats.insert_ms_max = 0.0
        publisher.publish(counters, gauges)
