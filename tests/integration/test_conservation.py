"""Conservation: every record ends as exactly one stored event or one stored reject.

Random streams (hypothesis) mix valid records, every reject reason, KPL aggregates (good,
malformed, empty), client retries and clock-skewed events spread over more than 100 months. They
go through the topology's library path in one process (pistats.testing.topology: the consumer,
the chain with sessions in the real Redis, the sink into a real chdb) while random faults hit it:
lease loss and fencing, expired iterators, throttling, the store refusing rows (a CHECK
constraint in the real engine), a store outage,
a Redis outage, a checkpoint-store outage and a crash of the whole topology. Invariants:

- at the end, the store holds one event per distinct (client_id, event_id) of the valid records
  and one reject, with the contract's reason, per other record; nothing else;
- whenever a checkpoint is written, every record at or below it is already in the store.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest
import redis as redis_lib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pistats.contract import ContractError, build_record, decode_record, encode_record, partition_key
from pistats.enrich.chain import Chain, EnrichConfig, connect_redis
from pistats.kinesis import kpl
from pistats.kinesis.checkpoint import OK, MemoryCheckpointStore
from pistats.kinesis.config import KinesisConfig
from pistats.kinesis.ledger import Position
from pistats.kinesis.recording import RecordedRecord, ShardEnd, ShardInfo
from pistats.localenv.services import Ports
from pistats.redis_keys import delete_matching
from pistats.store.backends import StoreError, open_store
from pistats.store.config import SinkConfig
from pistats.store.schema import migrate
from pistats.store.sink import Sink
from pistats.testing.clock import ManualClock
from pistats.testing.faults import FaultyCheckpointStore, FaultyKinesis
from pistats.testing.proxy import TcpProxy
from pistats.testing.replay_source import ReplaySource
from pistats.testing.topology import InProcessTopology

pytestmark = pytest.mark.integration

RECEIVED = datetime(2026, 11, 20, 12, tzinfo=timezone.utc)
SHARDS = ("shardId-000000000000", "shardId-000000000001")
CLIENTS = ("cl_a", "cl_b")
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
STEP_MS = 100
MAX_STEPS = 4000


# --- the stream -------------------------------------------------------------------------------

@dataclass
class Expected:
    """What one Kinesis user record must become: an event identity or a reject reason."""

    shard_id: str
    position: Position
    event: tuple[str, str] | None = None
    reject: str | None = None


@dataclass
class Stream:
    shards: dict[str, list[RecordedRecord]] = field(default_factory=lambda: {s: [] for s in SHARDS})
    expected: list[Expected] = field(default_factory=list)
    valid: list[tuple[str, bytes]] = field(default_factory=list)   # (partition key, payload), for retries
    events: int = 0

    def valid_payload(self, client: int, user: int | str, months_back: int) -> tuple[str, bytes]:
        self.events += 1
        client_id, user_id = CLIENTS[client], user if isinstance(user, str) else f"u{user}"
        moment = RECEIVED - timedelta(days=31 * months_back, seconds=self.events)
        event = {"event_id": f"e{self.events}", "type": "page_view", "property_id": "prop_1",
                 "user_id": user_id, "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        record = build_record(client_id=client_id, event=event, received_at=RECEIVED, ip="81.2.69.142",
                              user_agent=USER_AGENT, now=RECEIVED)
        payload = (partition_key(client_id, user_id), encode_record(record))
        self.valid.append(payload)
        return payload

    def put(self, key: str, data: bytes, subs: list[bytes] | None = None, reason: str | None = None) -> None:
        """One Kinesis record; ``subs`` are the user records of a good aggregate."""
        shard_id = SHARDS[int(hashlib.md5(key.encode()).hexdigest(), 16) % len(SHARDS)]
        records = self.shards[shard_id]
        seq = 49_000_000_000_000_000_000 + len(records) + 1
        records.append(RecordedRecord(str(seq), RECEIVED, key, data))
        if reason is not None:
            self.expected.append(Expected(shard_id, Position(seq, 0), reject=reason))
            return
        for index, payload in enumerate(subs if subs is not None else [data]):
            try:
                record = decode_record(payload)
            except ContractError as error:
                self.expected.append(Expected(shard_id, Position(seq, index), reject=error.reason))
            else:
                identity = (record["client_id"], record["event"]["event_id"])
                self.expected.append(Expected(shard_id, Position(seq, index), event=identity))


KINDS = ("valid", "skewed", "retry", "bad_encoding", "bad_json", "unsupported_version", "schema",
         "too_large", "kpl_good", "kpl_bad", "kpl_empty", "refused")
# The store's events table gets a CHECK constraint refusing these users' rows (a real refusal by
# the engine, which the sink must turn into a store_refused reject while storing the rest).
REFUSED_USER = "refused-by-store"


def build_stream(draws: list[tuple[str, int, int, int]]) -> Stream:
    stream = Stream()
    for kind, client, user, number in draws:
        if kind in ("valid", "skewed"):
            stream.put(*stream.valid_payload(client, user, months_back=number if kind == "skewed" else 0))
        elif kind == "retry" and stream.valid:
            stream.put(*stream.valid[number % len(stream.valid)])
        elif kind == "kpl_good":
            subs = [stream.valid_payload(client, (user + i) % 4, 0) for i in range(1 + number % 3)]
            stream.put(subs[0][0], kpl.aggregate(subs), [data for _, data in subs])
        elif kind == "kpl_bad":
            # A valid digest over a body whose field 3 has the wrong wire type (a varint).
            body = bytes([0x18, 0x05])
            stream.put(f"agg{number}", kpl.MAGIC + body + hashlib.md5(body).digest(), reason="bad_kpl")
        elif kind == "kpl_empty":
            stream.put(f"agg{number}", kpl.aggregate([]), reason="bad_kpl")
        elif kind == "refused":
            stream.put(*stream.valid_payload(client, f"{REFUSED_USER}-{user}", 0), reason="store_refused")
            stream.valid.pop()
        else:
            stream.put(f"bad{number}", bad_payload(kind, stream.valid_payload(client, user, 0)[1]))
            stream.valid.pop()
    return stream


def bad_payload(kind: str, valid: bytes) -> bytes:
    import json

    record = json.loads(valid)
    if kind == "bad_encoding":
        return valid.replace(b'"v":1', b'"v":1,"x":"\xff"', 1)
    if kind == "bad_json":
        return valid[: len(valid) // 2]
    if kind == "unsupported_version":
        record["v"] = 2
    elif kind == "schema":
        del record["ip"]
    elif kind == "too_large":
        record["event"]["properties"] = {"pad": "x" * 70_000}
    return json.dumps(record).encode()


draws = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(0, 1), st.integers(0, 5), st.integers(1, 150)),
    min_size=8, max_size=60,
)


# --- faults -----------------------------------------------------------------------------------

FAULTS = ("expire_iterators", "throttle", "fence", "store_down", "redis_down", "checkpoints_down", "crash")
faults = st.lists(st.tuples(st.integers(0, 15), st.sampled_from(FAULTS)), max_size=5)


class OutageStore:
    """A real store whose inserts can be made to fail as when the server is unreachable."""

    def __init__(self, store):
        self.store = store
        self.database = store.database
        self.features = store.features
        self.down = False

    def prepare_insert(self, table, rows):
        send = self.store.prepare_insert(table, rows)

        def maybe_send(token):
            if self.down:
                raise StoreError("injected: connection refused")
            send(token)

        return maybe_send


class AuditedCheckpoints:
    """Checks, at every checkpoint written, that the records it passes are in the store."""

    def __init__(self, inner, audit):
        self._inner = inner
        self._audit = audit

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def save(self, shard_id, owner, position, complete, **kwargs):
        result = self._inner.save(shard_id, owner, position, complete, **kwargs)
        if result == OK and position is not None:
            self._audit(shard_id, position)
        return result


# --- the run ----------------------------------------------------------------------------------

def stored(store) -> tuple[set, dict]:
    events = set(store.query(f"SELECT client_id, event_id FROM {store.database}.events FINAL"))
    rejects: dict[tuple[str, int, int], list[str]] = {}
    for shard, seq, subseq, reason in store.query(
            f"SELECT kinesis_shard, kinesis_seq, kinesis_subseq, reason FROM {store.database}.events_rejected FINAL"):
        rejects.setdefault((shard, int(seq), int(subseq)), []).append(reason)
    return events, rejects


def missing(expected: list[Expected], store) -> list[Expected]:
    events, rejects = stored(store)
    return [e for e in expected
            if (e.event is not None and e.event not in events)
            or (e.reject is not None and (e.shard_id, *e.position) not in rejects)]


@pytest.fixture(scope="module")
def redis_proxy():
    proxy = TcpProxy(Ports.from_env().redis)
    yield proxy
    proxy.close()


# CI runs a bounded search; PISTATS_CONSERVATION_EXAMPLES=500 searches longer.
@settings(max_examples=int(os.environ.get("PISTATS_CONSERVATION_EXAMPLES", "15")), deadline=None, suppress_health_check=list(HealthCheck))
@given(draws=draws, faults=faults)
def test_every_record_is_one_stored_event_or_one_stored_reject(draws, faults, redis_proxy, tmp_path_factory):
    stream = build_stream(draws)
    run_id = uuid.uuid4().hex[:10]
    store = open_store(f"chdb://{tmp_path_factory.mktemp('chdb')}?database=conservation")
    # The bolt's own client (a few quick reconnects), through a proxy the test can take down.
    connection = connect_redis(f"redis://127.0.0.1:{redis_proxy.port}/0", socket_connect_timeout=0.5,
                               socket_timeout=0.5)
    prefix = f"pistats-test:conservation:{run_id}"
    try:
        store.ensure_database()
        migrate(store)
        store.execute(f"ALTER TABLE {store.database}.events ADD CONSTRAINT refused "
                      f"CHECK NOT startsWith(user_id, '{REFUSED_USER}')")
        early_checkpoints = run(stream, faults, store, connection, prefix, redis_proxy)
        assert early_checkpoints == [], "checkpoints passed records not in the store"
        events, rejects = stored(store)
        assert missing(stream.expected, store) == []
        expected_events = {e.event for e in stream.expected if e.event is not None}
        assert events == expected_events
        expected_rejects = {(e.shard_id, *e.position): [e.reject] for e in stream.expected if e.reject is not None}
        assert rejects == expected_rejects
        count = store.query(f"SELECT count() FROM {store.database}.events FINAL")[0][0]
        assert count == len(expected_events)
    finally:
        redis_proxy.up()
        store.close()
        delete_matching(redis_lib.Redis(port=Ports.from_env().redis), f"{prefix}:*")


def run(stream: Stream, faults, store, connection, prefix: str, redis_proxy) -> list:
    """Runs the stream through the faults until every shard is checkpointed at SHARD_END; returns
    the checkpoints that passed records not (yet) in the store."""
    violations: list = []
    clock = ManualClock()
    source = FaultyKinesis(ReplaySource(
        ((ShardInfo(shard_id, 0, 0, "0"), records, ShardEnd()) for shard_id, records in stream.shards.items()),
        stream="conservation", now=clock.seconds))
    # Small reads and a small budget stretch a run over tens of steps, so faults land mid-stream.
    config = KinesisConfig(stream="conservation", app_name=prefix, max_uncommitted=30, get_records_limit=4,
                           checkpoint_interval_ms=500, lease_ms=3000, retries=1000, retry_base_delay_ms=100,
                           retry_max_delay_ms=1000, buckets=4, batch_records=8, emit_batch=20,
                           idle_poll_ms=200, list_shards_interval_ms=1000)
    memory = MemoryCheckpointStore()

    def audit(shard_id: str, position: Position) -> None:
        passed = [e for e in stream.expected if e.shard_id == shard_id and e.position <= position]
        violations.extend((shard_id, position, e) for e in missing(passed, store))

    checkpoints = FaultyCheckpointStore(AuditedCheckpoints(memory, audit))
    outage = OutageStore(store)
    enrich = EnrichConfig.from_dict({"sessions": {"key_prefix": prefix, "outage_budget_s": 0}})
    owners = (f"task{n}" for n in itertools.count())

    def topology() -> InProcessTopology:
        chain = Chain.build(enrich, redis=connection, now=clock.wall)
        sink = Sink(outage, SinkConfig(max_rows=60, max_age_s=0.3, retry_budget_s=0.5, backoff_initial_s=0.1,
                                       inserts_in_flight=0), now=clock.seconds, sleep=clock.sleep,
                    wall_clock=clock.wall)
        return InProcessTopology(config, source, checkpoints, chain, sink, clock, next(owners))

    current = topology()
    schedule = sorted(faults)
    recover_at: dict[str, int] = {}
    for step in range(MAX_STEPS):
        while schedule and schedule[0][0] == step:
            fault = schedule.pop(0)[1]
            if fault == "crash":
                current = topology()  # the old one vanishes: no flush, no checkpoint, leases left to expire
            elif fault == "expire_iterators":
                source.expire_iterators()
            elif fault == "throttle":
                source.inject("GetRecords", "ProvisionedThroughputExceededException", times=3)
            elif fault == "fence":
                for shard_id in SHARDS:  # another task takes the lease; it dies before reading
                    memory.claim(shard_id, "thief", clock.ms() + config.lease_ms + 1, config.lease_ms)
            elif fault == "store_down":
                outage.down, recover_at["store"] = True, step + 15
            elif fault == "redis_down":
                redis_proxy.down()
                recover_at["redis"] = step + 4
            elif fault == "checkpoints_down":
                checkpoints.down()
                recover_at["checkpoints"] = step + 10
        for name, at in list(recover_at.items()):
            if at <= step:
                {"store": lambda: setattr(outage, "down", False), "redis": redis_proxy.up,
                 "checkpoints": checkpoints.up}[name]()
                del recover_at[name]
        clock.advance(STEP_MS)
        current.step()
        if all((memory.load(s) or None) is not None and memory.load(s).ended for s in SHARDS):
            return violations
    raise AssertionError(f"not every shard reached SHARD_END in {MAX_STEPS} steps: "
                         f"{[memory.load(s) for s in SHARDS]}")


def test_the_stream_builder_expects_each_reject_reason():
    stream = build_stream([(kind, 0, 1, 3) for kind in KINDS])
    reasons = {e.reject for e in stream.expected if e.reject}
    assert reasons == {"bad_encoding", "bad_json", "unsupported_version", "schema", "too_large", "bad_kpl",
                       "store_refused"}
