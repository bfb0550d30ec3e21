"""A recording put into a live stream at a rate that follows a profile (a base, a surge, the base
again), for tests that need the load to change while the topology runs.

A phase is a number of records at a rate, so the recording's size fixes what is put whatever the
machine's speed; a phase the stream cannot take at its rate (an emulator on a loaded machine)
lasts longer, and the log says how long each took.

The records go in arrival order (so each user's records, which share a shard, keep their order),
each to the hash key its partition key gives within its recorded shard's range, so the live shard
(or, after a reshard, its child) is the one Kinesis would pick. Every PutRecords call holds the
records due since the last one (a tick of ``tick_s``): the rate holds on average over a tick.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from botocore.exceptions import ClientError

from pistats.kinesis.recording import RecordedRecord, Recording
from pistats.kinesis.stream_replay import PUT_RECORDS_MAX_ENTRIES, explicit_hash_key


@dataclass(frozen=True)
class Phase:
    records: int
    records_per_s: float

    @property
    def seconds(self) -> float:
        return self.records / self.records_per_s


@dataclass
class PutLog:
    """What the putter did: records put and seconds taken per phase, and how many PutRecords
    entries had to be put again (an entry the stream refused once)."""

    put_per_phase: list[int] = field(default_factory=list)
    seconds_per_phase: list[float] = field(default_factory=list)
    entries_retried: int = 0
    error: BaseException | None = None


def records_in_arrival_order(recording: Recording) -> Iterator[dict]:
    """PutRecords entries of a recording without reshards, in arrival order (ties: shard order)."""
    def entries(index: int, shard) -> Iterator[tuple]:
        for record in recording.records(shard.shard_id):
            yield record.arrival, index, _entry(record, shard.starting_hash_key, shard.ending_hash_key)

    shards = list(recording.shards)
    assert not any(shard.parent_shard_id for shard in shards), "a recording without reshards"
    for _, _, entry in heapq.merge(*(entries(i, shard) for i, shard in enumerate(shards)),
                                   key=lambda item: (item[0], item[1])):
        yield entry


def _entry(record: RecordedRecord, low: int, high: int) -> dict:
    return {"Data": record.data, "PartitionKey": record.partition_key,
            "ExplicitHashKey": explicit_hash_key(record, low, high)}


class SurgePutter:
    """Puts ``recording_dir``'s records into ``stream`` following ``phases``, which must add up to
    the recording. ``start`` runs it on a thread; ``join`` waits and re-raises what stopped it."""

    def __init__(self, client, stream: str, recording_dir: Path, phases: list[Phase], tick_s: float = 0.25):
        self._client, self._stream, self._tick = client, stream, tick_s
        self._entries = records_in_arrival_order(Recording.open(recording_dir))
        self._phases = phases
        self.log = PutLog()
        self._thread = threading.Thread(target=self._run, name="surge-putter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> PutLog:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the putter did not finish within {timeout:.0f} s"
        if self.log.error is not None:
            raise self.log.error
        return self.log

    def _run(self) -> None:
        try:
            for phase in self._phases:
                self._put_phase(phase)
            left = sum(1 for _ in self._entries)
            assert left == 0, f"the phases put {sum(self.log.put_per_phase)} records, {left} were left"
        except BaseException as error:  # noqa: BLE001 - handed to join()
            self.log.error = error

    def _put_phase(self, phase: Phase) -> None:
        started = time.monotonic()
        self.log.put_per_phase.append(0)
        put = 0
        while put < phase.records:
            elapsed = time.monotonic() - started
            # The records due by the end of this tick, in PutRecords calls of at most 500.
            due = min(phase.records, int(phase.records_per_s * (elapsed + self._tick))) - put
            batch = [entry for _, entry in zip(range(max(0, due)), self._entries)]
            assert len(batch) == max(0, due), "the recording ended before the phases did"
            for first in range(0, len(batch), PUT_RECORDS_MAX_ENTRIES):
                self._put(batch[first:first + PUT_RECORDS_MAX_ENTRIES])
            put += len(batch)
            self.log.put_per_phase[-1] = put
            time.sleep(max(0.0, started + elapsed + self._tick - time.monotonic()))
        self.log.seconds_per_phase.append(round(time.monotonic() - started, 1))

    def _put(self, entries: list[dict]) -> None:
        """Every entry stored, or an error: a refused call is sent again whole (nothing of it was
        stored), refused entries again alone (counted: they may land after later records of their
        shard, which the per-user order check would show)."""
        pending, attempt = entries, 0
        while pending:
            try:
                answer = self._client.put_records(StreamName=self._stream, Records=pending)
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                if code not in {"ProvisionedThroughputExceededException", "LimitExceededException",
                                "ResourceInUseException", "InternalFailure", "ServiceUnavailable"} or attempt >= 20:
                    raise
            else:
                refused = [entry for entry, result in zip(pending, answer["Records"]) if result.get("ErrorCode")]
                self.log.entries_retried += len(refused)
                pending = refused
                if not pending:
                    return
                if attempt >= 20:
                    raise AssertionError(f"{len(pending)} records refused 20 times by {self._stream}")
            attempt += 1
            time.sleep(min(2.0, 0.05 * 2 ** attempt))
