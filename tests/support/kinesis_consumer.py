"""What the consumer's integration tests share: fast settings, a client as the consumer's, and
waiting on streams, deliveries and conditions."""

from __future__ import annotations

import time

from pistats.kinesis.client import make_kinesis_client
from pistats.kinesis.config import KinesisConfig

# Short intervals, leases and retries, so a test sees checkpoints, takeovers and replays in seconds.
FAST = {"checkpoint_interval_ms": 200, "idle_poll_ms": 100, "list_shards_interval_ms": 500, "lease_ms": 2000,
        "retry_base_delay_ms": 50, "retry_max_delay_ms": 200}


def consumer_client(endpoint: str):
    """A client as the consumer's: botocore's retries off, the consumer's timeouts, GetRecords read by orjson."""
    defaults = KinesisConfig(stream="unused")
    return make_kinesis_client(endpoint, retries=False, connect_timeout_s=defaults.connect_timeout_s,
                               read_timeout_s=defaults.read_timeout_s, fast_get_records=True)


def wait_active(client, stream: str, timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        assert time.time() < deadline, f"{stream} not ACTIVE"
        time.sleep(0.05)


def collect(consumer, count, *, timeout=10.0, verdict=lambda d: "ack"):
    """Poll until ``count`` deliveries arrived; each is acked, failed or held per ``verdict``."""
    seen = []
    deadline = time.time() + timeout
    while len(seen) < count and time.time() < deadline:
        for delivery in consumer.poll(100):
            seen.append(delivery)
            outcome = verdict(delivery)
            if outcome == "ack":
                consumer.ack(delivery.message_id)
            elif outcome == "fail":
                consumer.fail(delivery.message_id)
        time.sleep(0.01)
    return seen


def wait_for(condition, timeout=10.0):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "condition not reached"
        time.sleep(0.05)
