"""Running the whole chain over files: what ``pistats enrich`` does, as library code.

Inputs are turned into ``RawRecord`` objects in shard order, enriched in batches (so session
state goes to Redis in pipelined round trips), and handed to callbacks as wire dicts.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, IO, Iterable, Iterator

from pistats.enrich.chain import Chain
from pistats.enrich.event import to_wire
from pistats.enrich.parse import RawRecord, UndecodableTuple, record_from_tuple
from pistats.errors import DataError
from pistats.kinesis import kpl
from pistats.kinesis.recording import Recording, iter_manifest_order


def _arrival_ms(recorded) -> int:
    return int(recorded.arrival.timestamp() * 1000)


def _user_records(data: bytes, partition_key: str) -> list[kpl.UserRecord]:
    """A Kinesis record's user records as the spout emits them: a malformed KPL aggregate stays
    one record (sub-sequence 0, its bytes), which the parser rejects as ``bad_kpl``."""
    outcome = kpl.deaggregate(data, partition_key)
    if isinstance(outcome, kpl.MalformedAggregate):
        return [kpl.UserRecord(partition_key, data, 0)]
    return outcome


def records_from_recording(path: str | Path) -> Iterator[RawRecord]:
    """Every user record of a recording: shards parents first, records in sequence order,
    KPL aggregates split into their sub-records (as the spout does)."""
    recording = Recording.open(path)
    for shard in iter_manifest_order(recording):
        for recorded in recording.records(shard.shard_id):
            for user_record in _user_records(recorded.data, recorded.partition_key):
                yield RawRecord(
                    shard.shard_id, recorded.sequence_number, user_record.sub_sequence_number,
                    user_record.partition_key, _arrival_ms(recorded), user_record.data,
                )


def records_from_lines(lines: Iterable[bytes], source: str) -> Iterator[RawRecord | UndecodableTuple]:
    """Records from JSON lines. A line is one of:

    - a spout tuple object (``shard_id`` ... ``arrival_ms``: the keys of
      ``pistats.kinesis.spout_tuples.RECORD_TUPLE_FIELDS``, with the data as ``data_b64``);
    - a recording shard line (``SequenceNumber``, ``PartitionKey``, ``Data`` base64);
    - anything else: the record payload itself (the v1 record JSON as the ingest writes it),
      with provenance ``shard = source``, ``sequence number = line number``.
    Blank lines are skipped.
    """
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped:
            continue
        obj = None
        if stripped.startswith(b"{") and (b'"data_b64"' in stripped or b'"SequenceNumber"' in stripped):
            try:
                obj = json.loads(stripped)
            except ValueError:
                obj = None
        if isinstance(obj, dict) and "data_b64" in obj:
            try:
                yield record_from_tuple([obj.get("shard_id", source), obj.get("sequence_number", str(number)),
                                         obj.get("sub_sequence_number", 0), obj.get("partition_key", ""),
                                         obj.get("arrival_ms"), [obj["data_b64"]]])  # a tuple's base64 form
            except (TypeError, ValueError) as error:
                raise DataError(f"bad tuple line: {error}", source, number) from None
        elif isinstance(obj, dict) and "SequenceNumber" in obj and "Data" in obj:
            try:
                data = base64.b64decode(obj["Data"], validate=True)
            except (binascii.Error, ValueError, TypeError):
                yield UndecodableTuple(RawRecord(source, str(obj["SequenceNumber"]), 0,
                                                     str(obj.get("PartitionKey", "")), None, b""), str(obj["Data"]))
                continue
            for user_record in _user_records(data, str(obj.get("PartitionKey", ""))):
                yield RawRecord(source, str(obj["SequenceNumber"]), user_record.sub_sequence_number,
                                    user_record.partition_key, None, user_record.data)
        else:
            yield RawRecord(source, str(number), 0, "", None, stripped)


@dataclass
class RunTotals:
    """What ``pistats enrich --json-summary`` reports (besides the chain's own summary)."""

    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    sessions: set[str] = field(default_factory=set)
    users: set[tuple[str, str]] = field(default_factory=set)

    def as_dict(self, chain: Chain) -> dict[str, Any]:
        summary = chain.summary()
        summary["rejects_by_reason"] = dict(sorted(self.rejects_by_reason.items()))
        summary["sessions"] = len(self.sessions) if chain.sessions is not None else None
        summary["users"] = len(self.users)
        return summary


def run_chain(
    chain: Chain,
    records: Iterable[RawRecord | UndecodableTuple],
    on_event: Callable[[dict[str, Any]], None],
    on_reject: Callable[[dict[str, Any]], None],
    batch_size: int = 500,
    progress: Callable[[int], None] | None = None,
) -> RunTotals:
    """Enrich ``records`` in batches of ``batch_size``, in input order; callbacks get wire dicts.

    A batch's events are handed over only after its sessions were assigned, so an exception
    (Redis down) never leaves half-enriched output behind.
    """
    totals = RunTotals()
    batch: list[RawRecord | UndecodableTuple] = []

    def flush() -> None:
        events, rejects = chain.run(batch)
        for reject in rejects:
            totals.rejects_by_reason[reject["reason"]] = totals.rejects_by_reason.get(reject["reason"], 0) + 1
            on_reject(to_wire(reject))
        for event in events:
            if event["session_id"] is not None:
                totals.sessions.add(event["session_id"])
            totals.users.add((event["client_id"], event["user_id"]))
            on_event(to_wire(event))
        if progress is not None:
            progress(len(batch))
        batch.clear()

    for record in records:
        batch.append(record)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return totals


def write_json_line(handle: IO[str]) -> Callable[[dict[str, Any]], None]:
    def write(row: dict[str, Any]) -> None:
        handle.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
        handle.write("\n")

    return write
