"""ShardReader alone, over a recorded shard (ReplaySource) with a fake clock: what one step reads,
and where a renewed iterator points."""

import hashlib
from datetime import datetime, timedelta, timezone

from pistats.kinesis.kpl import MAGIC, aggregate
from pistats.kinesis.ledger import Position
from pistats.kinesis.recording import RecordedRecord, ShardInfo
from pistats.kinesis.shard_reader import UNREADABLE_RESPONSE, ShardReader, StartPosition
from pistats.testing.replay_source import ReplaySource

T0 = datetime(2026, 11, 26, 5, 0, tzinfo=timezone.utc)
SHARD = "shardId-000000000000"
# A valid digest over a protobuf whose records entry is a varint, not a message (TypeError before issue 13).
WRONG_WIRE_TYPE = MAGIC + b"\x0a\x01k\x18\x01" + hashlib.md5(b"\x0a\x01k\x18\x01").digest()


class Clock:
    def __init__(self):
        self.ms = int(T0.timestamp() * 1000)

    def __call__(self):
        return self.ms

    def seconds(self):
        return self.ms / 1000


def shard(data, arrivals=None):
    arrivals = arrivals or [T0 - timedelta(minutes=1)] * len(data)
    return [(ShardInfo(SHARD, 0, 2**128 - 1, "1000"),
             [RecordedRecord(str(1000 + 10 * i), arrivals[i], "pk", d) for i, d in enumerate(data)], None)]


def reader(client, clock, kind="TRIM_HORIZON"):
    return ShardReader(client, "events", SHARD, StartPosition(kind), now_ms=clock)


def seen(fetch):
    return [(r.seq, r.subseq, r.data) for r in fetch.records]


def test_a_malformed_aggregate_is_handed_on_raw_and_the_shard_moves_on():
    # Issue 13: deaggregate raised TypeError out of step(); the same page was retried forever.
    clock = Clock()
    client = ReplaySource(shard([b"a", WRONG_WIRE_TYPE, aggregate([("k", b"b"), ("k", b"c")]), b"d"]),
                          stream="events", now=clock.seconds)
    fetch = reader(client, clock).step(100)
    assert fetch.error is None
    assert seen(fetch) == [(1000, 0, b"a"), (1010, 0, WRONG_WIRE_TYPE), (1020, 0, b"b"), (1020, 1, b"c"), (1030, 0, b"d")]
    assert [r.last_in_aggregate for r in fetch.records] == [True, True, False, True, True]


def test_a_malformed_aggregate_is_not_skipped_when_resuming_inside_it():
    clock = Clock()
    client = ReplaySource(shard([WRONG_WIRE_TYPE, b"a"]), stream="events", now=clock.seconds)
    start = StartPosition("AT_SEQUENCE_NUMBER", seq=1000, skip_through=Position(1000, 0))
    fetch = ShardReader(client, "events", SHARD, start, now_ms=clock).step(100)
    assert seen(fetch) == [(1000, 0, WRONG_WIRE_TYPE), (1010, 0, b"a")]


class CorruptFirstPage:
    """Serves the shard, but the first GetRecords answer has a record that cannot be read."""

    def __init__(self, client):
        self._client, self.corrupted = client, False

    def get_records(self, **kwargs):
        response = self._client.get_records(**kwargs)
        if not self.corrupted and len(response["Records"]) > 1:
            self.corrupted = True
            response["Records"][1] = {**response["Records"][1], "SequenceNumber": "not a number"}
        return response

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_an_unreadable_page_is_retried_whole_and_its_records_are_not_skipped_after_expiry():
    clock = Clock()
    client = CorruptFirstPage(ReplaySource(shard([b"a", b"b", b"c"]), stream="events", now=clock.seconds))
    shard_reader = reader(client, clock)
    first = shard_reader.step(100)
    assert (first.records, first.error) == ([], UNREADABLE_RESPONSE)
    clock.ms += 301_000  # the iterator expires before the retry: it is renewed where the page began
    renewals = []
    for _ in range(3):
        fetch = shard_reader.step(100)
        renewals.append(fetch.error)
        if fetch.records:
            break
        clock.ms = fetch.next_call_ms
    assert "ExpiredIteratorException" in renewals
    assert seen(fetch) == [(1000, 0, b"a"), (1010, 0, b"b"), (1020, 0, b"c")]


def test_latest_renewed_before_the_first_record_reads_what_arrived_meanwhile():
    # Issue 13: the renewal asked for LATEST again and skipped what was put while the task was
    # paused (at max_uncommitted) for over 5 minutes. ReplaySource's LATEST is the end of the
    # recording: the records dated after the first iterator stand for those put meanwhile.
    clock = Clock()
    arrivals = [T0 - timedelta(minutes=10), T0 + timedelta(seconds=5), T0 + timedelta(minutes=2)]
    client = ReplaySource(shard([b"before", b"during-1", b"during-2"], arrivals), stream="events", now=clock.seconds)
    shard_reader = reader(client, clock, "LATEST")
    assert shard_reader.step(100).records == []
    clock.ms += 6 * 60_000  # paused: the iterator expires
    records = []
    for _ in range(4):
        fetch = shard_reader.step(100)
        records += fetch.records
        clock.ms = max(clock.ms, fetch.next_call_ms)
    assert [r.data for r in records] == [b"during-1", b"during-2"]
