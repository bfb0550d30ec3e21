"""Typed configuration of the Kinesis consumer/spout, from config.json or topology options.

Topology options use the ``pistats.kinesis.`` prefix (``pistats.kinesis.stream`` ...).
Credentials never appear here: boto3 takes them from the standard AWS chain.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pistats.kinesis.ledger import RetryPolicy
from pistats.redact import redact_url
from pistats.redisconn import RedisTarget

PREFIX = "pistats.kinesis."
START_POSITIONS = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")
MAX_GET_RECORDS_LIMIT = 10_000


@dataclass(frozen=True)
class KinesisConfig:
    """Everything the consumer needs; validated on construction.

    ``start_timestamp`` (ISO 8601 with offset, or epoch milliseconds) is required for
    ``AT_TIMESTAMP``. ``max_uncommitted`` bounds the records a task holds between fetch and
    checkpoint (queued + in flight + acked behind an unacked one).
    """

    stream: str
    region: str = "us-east-1"
    endpoint_url: str | None = None
    app_name: str = "pistats"
    start_position: str = "TRIM_HORIZON"
    start_timestamp: str | int | None = None
    max_uncommitted: int = 10_000
    checkpoint_interval_ms: int = 5_000
    retries: int = 5
    retry_base_delay_ms: int = 100
    retry_max_delay_ms: int = 30_000
    redis_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    get_records_limit: int = MAX_GET_RECORDS_LIMIT
    idle_poll_ms: int = 1_000
    list_shards_interval_ms: int = 10_000
    list_shards_page_size: int = 1_000
    lease_ms: int = 30_000
    # Records taken per next_tuple call, emitted as one tuple per bucket of users of at most
    # batch_records records (see microbatch.py). Under load a tuple holds about emit_batch /
    # buckets records, and each tuple costs the bolts a fixed share (Redis round trips, codec
    # calls, the JVM's tuple): tuples of about 250 records cost the bolts 3-11 % less CPU per
    # record than tuples of about 60 (benchmarks/tuple_size.py). So buckets is twice the enrich
    # bolt's tasks, not more: enough for the fields grouping to give every task its share.
    # config.json sets it per environment (tests/unit/test_topology_conf.py holds the rule).
    emit_batch: int = 1_000
    buckets: int = 4
    batch_records: int = 500
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 5.0
    # Chaos testing only (never in production): periodic Kinesis faults injected into this
    # spout's client, e.g. "GetRecords:ProvisionedThroughputExceededException@7"; see pistats/testing/faults.py.
    fault_plan: str = ""

    def __post_init__(self):
        if not self.stream:
            raise ValueError("pistats.kinesis.stream is required")
        if self.start_position not in START_POSITIONS:
            raise ValueError(f"start_position must be one of {START_POSITIONS}, not {self.start_position!r}")
        if self.start_position == "AT_TIMESTAMP":
            self.start_datetime()  # validates
        if not 1 <= self.get_records_limit <= MAX_GET_RECORDS_LIMIT:
            raise ValueError(f"get_records_limit must be in 1..{MAX_GET_RECORDS_LIMIT}")
        for name in ("max_uncommitted", "checkpoint_interval_ms", "idle_poll_ms", "list_shards_interval_ms",
                     "list_shards_page_size", "lease_ms", "emit_batch", "buckets", "batch_records"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.lease_ms <= self.checkpoint_interval_ms:
            raise ValueError("lease_ms must exceed checkpoint_interval_ms (checkpoints renew the lease)")
        self.retry_policy()  # validates
        RedisTarget.parse(self.redis_url)  # validates: a single Redis or a cluster URL, password hidden
        if self.fault_plan:
            from pistats.testing.faults import parse_fault_plan

            parse_fault_plan(self.fault_plan)  # validates

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        shown["redis_url"] = redact_url(self.redis_url)
        return "KinesisConfig(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(self.retries, self.retry_base_delay_ms, self.retry_max_delay_ms)

    def start_datetime(self) -> datetime | None:
        if self.start_timestamp is None:
            if self.start_position == "AT_TIMESTAMP":
                raise ValueError("start_timestamp is required for AT_TIMESTAMP")
            return None
        if isinstance(self.start_timestamp, (int, float)):
            return datetime.fromtimestamp(self.start_timestamp / 1000, tz=timezone.utc)
        parsed = datetime.fromisoformat(str(self.start_timestamp).replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            raise ValueError("start_timestamp needs a UTC offset")
        return parsed

    @classmethod
    def from_topology_conf(cls, conf: dict) -> "KinesisConfig":
        """Build from a Storm topology conf: only its ``pistats.kinesis.*`` keys are read."""
        own = {k: v for k, v in conf.items() if k.startswith(PREFIX)}
        if PREFIX + "stream" not in own:
            raise ValueError("pistats.kinesis.stream is required in the topology conf")
        return cls.from_dict(own)

    @classmethod
    def from_dict(cls, values: dict) -> "KinesisConfig":
        """Build from plain keys (``stream``) or prefixed keys (``pistats.kinesis.stream``; when any
        key is prefixed, only prefixed keys are read). Unknown settings are refused; numbers given
        as text are converted."""
        known = {f.name for f in dataclasses.fields(cls)}
        prefixed = {k[len(PREFIX):]: v for k, v in values.items() if k.startswith(PREFIX)}
        own = prefixed if prefixed else dict(values)
        unknown = sorted(set(own) - known)
        if unknown:
            raise ValueError(f"unknown Kinesis settings: {', '.join(unknown)}")
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        return cls(**{name: _coerce(name, value, types[name]) for name, value in own.items()})


def _coerce(name: str, value, kind: str):
    """Command-line topology options (``sparse run -o key=value``) may arrive as text."""
    if not isinstance(value, str):
        return value
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
    except ValueError:
        raise ValueError(f"{PREFIX}{name} must be a number, not {value!r}") from None
    if kind.endswith("| None") and value.strip().lower() in ("", "none", "null"):
        return None
    if kind == "str | int | None" and value.isdigit():
        return int(value)
    return value

