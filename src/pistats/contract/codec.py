"""Records in and out of Kinesis: build a record for a valid event, encode it, key it, decode it.

The ingest uses :func:`build_record`, :func:`encode_record` and :func:`partition_key`; the
topology's parser uses :func:`decode_record`, which validates through
``pistats.contract.validation.validate_record``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from pistats.contract.schema import MAX_RECORD_BYTES, PARTITION_KEY_MAX, RECORD_VERSION, ContractError
from pistats.contract.timestamps import format_timestamp, is_clock_skewed, parse_timestamp, record_clock_skew
from pistats.contract.validation import validate_record


def build_record(
    *,
    client_id: str,
    event: dict,
    received_at: datetime,
    ip: str | None,
    user_agent: str | None,
    now: datetime,
) -> dict:
    """The v1 record for one *valid* event (validate it first; ValueError on a bad timestamp).

    ``user_agent`` is the HTTP User-Agent; a non-empty ``context.user_agent`` in the event wins
    (apps whose HTTP client is not the browser). ``ip`` and ``user_agent`` become '' when unknown.
    ``clock_skew`` compares the event's ``timestamp`` with ``now``.
    """
    context = event.get("context")
    if type(context) is dict and type(context.get("user_agent")) is str and context["user_agent"]:
        user_agent = context["user_agent"]
    return {
        "v": RECORD_VERSION,
        "client_id": client_id,
        "received_at": format_timestamp(received_at),
        "ip": ip or "",
        "user_agent": user_agent or "",
        "event": event,
        "clock_skew": is_clock_skewed(parse_timestamp(event["timestamp"]), now),
    }


def encode_record(record: dict) -> bytes:
    """Compact UTF-8 JSON (non-ASCII kept as UTF-8, NaN refused): the Kinesis record data."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def partition_key(client_id: str, user_id: str) -> str:
    """``<client_id>:<user_id>``: one user's events stay in order within one shard.

    Kinesis refuses a key longer than PARTITION_KEY_MAX, and with it the whole PutRecords call.
    A longer key (ids near their 128-character limits, or characters outside the BMP, which
    count twice) becomes the hex BLAKE2b-128 digest of it instead: still one key per (client,
    user), so ordering and the topology's bucketing by key hold, and without ':' it never equals
    a plain key. Keys that fit are unchanged.
    """
    key = f"{client_id}:{user_id}"
    if len(key) <= PARTITION_KEY_MAX // 2 or len(key.encode("utf-16-le", "surrogatepass")) <= 2 * PARTITION_KEY_MAX:
        return key
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


# json.loads with any option builds a new decoder per call; one decoder serves every record.
_strict_json = json.JSONDecoder(parse_constant=_reject_constant).decode


def decode_record(data: bytes) -> dict:
    """Decode and validate one Kinesis record's data into the v1 record dict.

    Raises :class:`ContractError` with reason ``too_large`` (more than MAX_RECORD_BYTES),
    ``bad_encoding`` (not UTF-8), ``bad_json`` (not strict JSON: NaN/Infinity refused),
    ``unsupported_version`` (``v`` missing or not 1) or ``schema`` (first problem's field, all
    problems in the detail). Nothing else escapes for any input bytes. A record without
    ``clock_skew`` gets it from :func:`record_clock_skew`, so every returned record has all of
    RECORD_FIELDS.
    """
    if len(data) > MAX_RECORD_BYTES:
        raise ContractError("too_large", f"{len(data)} bytes > {MAX_RECORD_BYTES}")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as error:
        raise ContractError("bad_encoding", f"not UTF-8 at byte {error.start}") from None
    try:
        obj = _strict_json(text)
    except (ValueError, RecursionError) as error:
        raise ContractError("bad_json", str(error)[:200]) from None
    if type(obj) is not dict:
        raise ContractError("schema", "record is not a JSON object")
    version = obj.get("v")
    if type(version) is not int or version != RECORD_VERSION:
        shown = "missing" if "v" not in obj else f"v={json.dumps(version)[:20]}"
        raise ContractError("unsupported_version", f"{shown}; this reader understands v={RECORD_VERSION}")
    problems = validate_record(obj)
    if problems:
        detail = "; ".join(f"{p.field}: {p.problem}" if p.field else p.problem for p in problems)
        raise ContractError("schema", detail[:500], field=problems[0].field or None)
    if "clock_skew" not in obj:
        obj["clock_skew"] = record_clock_skew(obj)
    return obj
