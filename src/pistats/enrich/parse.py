"""Parse: a Kinesis record becomes the base of an enriched event, or a reject.

Every input gives exactly one of the two, whatever its bytes (a property test holds us to it):
the record's data is decoded and validated by ``pistats.contract.decode_record``, and a
``ContractError`` becomes a reject carrying its reason code, the field, the raw payload (base64)
and the record's provenance, for the dead-letter table. A payload that still starts with the KPL
magic is an aggregate the spout could not split (it hands those on as they came): ``bad_kpl``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Sequence

from pistats import contract
from pistats.enrich.device import DEVICE_KEYS
from pistats.enrich.event import EMPTY_GEO
from pistats.kinesis import kpl
from pistats.wire import compact_json, unpack


def _compact_json(value: Any) -> str:
    """Compact JSON text of a validated context or properties object (no lone surrogates, no NaN:
    the contract refuses them)."""
    return compact_json(value).decode("utf-8", "surrogatepass")

_DEVICE_DEFAULTS = dict(zip(DEVICE_KEYS, ("", "", "", "", "", "", "", "other", False, False)))
_SESSION_DEFAULTS = {
    "session_id": None, "session_index": None, "session_event_index": None,
    "is_new_user": None, "first_seen_at": None,
}
# The later stages' fields, in event order, merged into each event in one update.
_LATER_DEFAULTS = {**EMPTY_GEO, **_DEVICE_DEFAULTS, **_SESSION_DEFAULTS}


@dataclass(frozen=True)
class RawRecord:
    """One Kinesis user record as the enrichment chain takes it, before parsing: its provenance
    as it travels and is stored (the sequence number as decimal text; ``arrival_ms`` None where
    the source does not say) and ``data``, the raw payload.

    Not the consumer's record (``pistats.kinesis.ledger``), which holds its position as
    integers (to order and checkpoint it) and whether it ends its KPL aggregate.
    """

    shard_id: str
    sequence_number: str
    sub_sequence_number: int
    partition_key: str
    arrival_ms: int | None
    data: bytes


@dataclass(frozen=True)
class UndecodableTuple:
    """A spout tuple whose data is neither text nor ``[base64]``: rejected ``bad_encoding``,
    ``data_b64`` holding what came as text (as it came, or its JSON)."""

    record: RawRecord
    data_b64: str


def record_from_tuple(values: Sequence[Any]) -> RawRecord | UndecodableTuple:
    """The record carried by a spout tuple's values (in the order of
    ``pistats.kinesis.spout_tuples.RECORD_TUPLE_FIELDS``, as ``tuple_values`` writes them): the
    data as text (its UTF-8 bytes) or as ``[base64]`` (``pistats.kinesis.spout_tuples.wire_data``)."""
    shard_id, sequence_number, sub_sequence_number, partition_key, arrival_ms, data = values
    provenance = (str(shard_id), str(sequence_number), int(sub_sequence_number or 0), str(partition_key), arrival_ms)
    if type(data) is str:
        try:
            return RawRecord(*provenance, data.encode("utf-8"))
        except UnicodeEncodeError:  # lone surrogates: not text any bytes decode to
            return UndecodableTuple(RawRecord(*provenance, b""), data.encode("utf-8", "backslashreplace").decode())
    return _record_from_base64(provenance, data[0] if type(data) is list and len(data) == 1 else data)


def _record_from_base64(provenance: tuple, data_b64: Any) -> RawRecord | UndecodableTuple:
    """The record of ``provenance`` whose data came as a tuple's ``[base64]``."""
    try:
        return RawRecord(*provenance, base64.b64decode(data_b64, validate=True))
    except (binascii.Error, ValueError, TypeError):
        text = data_b64 if isinstance(data_b64, str) else compact_json(data_b64).decode("utf-8", "backslashreplace")
        return UndecodableTuple(RawRecord(*provenance, b""), text)


def records_from_batch(packed: str) -> list[RawRecord | UndecodableTuple]:
    """The records of one spout batch tuple: ``RECORD_TUPLE_FIELDS`` lists, packed
    (``pistats.wire``; ``pistats.kinesis.spout_tuples``)."""
    return [record_from_tuple(values) for values in unpack(packed)]


def _time(text: str) -> datetime:
    """A validated RFC 3339 time as aware UTC. ``datetime.fromisoformat`` (C, and it truncates
    extra fraction digits as the contract does) serves the usual forms; the contract's parser
    the rest (lowercase ``t``/``z``)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return contract.parse_timestamp(text)
    if value.tzinfo is None:
        return contract.parse_timestamp(text)
    return value.astimezone(timezone.utc)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _client_id_of(data: bytes) -> str:
    """Best effort client_id of a rejected record ('' when the payload does not say)."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return ""
    client_id = obj.get("client_id") if isinstance(obj, dict) else None
    return client_id if isinstance(client_id, str) and len(client_id) <= contract.CLIENT_ID_MAX else ""


def _kpl_detail(record: RawRecord) -> str:
    outcome = kpl.deaggregate(record.data, record.partition_key)
    if isinstance(outcome, kpl.MalformedAggregate):
        return f"malformed KPL aggregate: {outcome.detail}"
    return f"a KPL aggregate of {len(outcome)} records where one record was expected (not de-aggregated)"


class Parser:
    """``parse(record)`` -> ``("event", event)`` or ``("reject", reject)``; ``now`` is injected.

    The event has every key of ``EVENT_FIELDS``: the record's fields and provenance are set, the
    later stages' fields hold their empty defaults. ``ip`` is the IP as received: the geo stage
    anonymises it, so nothing may store an event that has not been through it.
    """

    name = "parse"

    def __init__(self, now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.now = now

    def parse(self, record: RawRecord | UndecodableTuple) -> tuple[str, dict[str, Any]]:
        if isinstance(record, UndecodableTuple):
            return "reject", self._reject(record.record, "bad_encoding", None,
                                          "tuple data is neither text nor base64", record.data_b64)
        if record.data.startswith(kpl.MAGIC):
            return "reject", self._reject(record, "bad_kpl", None, _kpl_detail(record),
                                          base64.b64encode(record.data).decode("ascii"))
        try:
            decoded = contract.decode_record(record.data)
        except contract.ContractError as error:
            raw_b64 = base64.b64encode(record.data).decode("ascii")
            client_id = "" if error.reason in ("too_large", "bad_encoding", "bad_json") else _client_id_of(record.data)
            return "reject", self._reject(record, error.reason, error.field, error.detail, raw_b64, client_id)
        return "event", self._event(record, decoded)

    def _reject(self, record: RawRecord, reason: str, field: str | None, detail: str,
                raw_b64: str, client_id: str = "") -> dict[str, Any]:
        return {
            "reason": reason, "stage": self.name, "field": field, "detail": detail, "raw_b64": raw_b64,
            "kinesis_shard": record.shard_id, "kinesis_seq": record.sequence_number,
            "kinesis_subseq": record.sub_sequence_number, "client_id": client_id,
            "rejected_at": self.now(),
        }

    def _event(self, record: RawRecord, decoded: Mapping[str, Any]) -> dict[str, Any]:
        event = decoded["event"]
        context = event.get("context") or {}
        sdk = context.get("sdk") if isinstance(context.get("sdk"), dict) else {}
        enriched = {
            "client_id": decoded["client_id"],
            "property_id": event["property_id"],
            "event_id": event["event_id"],
            "event_type": event["type"],
            "user_id": event["user_id"],
            "event_time": _time(event["timestamp"]),
            "received_at": _time(decoded["received_at"]),
            "ip": decoded["ip"],
            "user_agent": decoded["user_agent"],
            "push_token": event.get("push_token"),
            "notification_id": event.get("notification_id"),
            "page_url": _text(context.get("page_url")),
            "referrer": _text(context.get("referrer")),
            "locale": _text(context.get("locale")),
            "sdk_name": _text(sdk.get("name")),
            "sdk_version": _text(sdk.get("version")),
            "context_json": _compact_json(context) if context else "{}",
            "properties_json": _compact_json(event["properties"]) if event.get("properties") else "{}",
            "clock_skew": decoded["clock_skew"],
        }
        enriched.update(_LATER_DEFAULTS)
        enriched["enrich_errors"] = []
        enriched["kinesis_shard"] = record.shard_id
        enriched["kinesis_seq"] = record.sequence_number
        enriched["kinesis_subseq"] = record.sub_sequence_number
        enriched["processed_at"] = self.now()
        return enriched
