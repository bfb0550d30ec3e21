"""KPL record aggregation: the format, decoded (and encoded, for tests and benchmarks).

An aggregated Kinesis record is ``F3 89 9A C2`` + a protobuf ``AggregatedRecord`` + the MD5 of
that protobuf. The PyPI package ``aws-kinesis-agg`` 1.2.3 does not import here (its generated
``messages_pb2`` does ``import config_pb2`` as a top-level module), so this is a small decoder
of the three messages involved, written against the published ``messages.proto``:

    AggregatedRecord { repeated string partition_key_table = 1;
                       repeated string explicit_hash_key_table = 2;
                       repeated Record records = 3; }
    Record { required uint64 partition_key_index = 1; optional uint64 explicit_hash_key_index = 2;
             required bytes data = 3; repeated Tag tags = 4; }
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

MAGIC = b"\xf3\x89\x9a\xc2"
_DIGEST = 16


@dataclass(frozen=True, slots=True)
class UserRecord:
    """One sub-record of an aggregate; ``sub_sequence_number`` is its index in the aggregate."""

    partition_key: str
    data: bytes
    sub_sequence_number: int


def is_aggregated(data: bytes) -> bool:
    """True for a well-formed aggregate: magic, a protobuf body and a matching MD5."""
    if len(data) <= len(MAGIC) + _DIGEST or not data.startswith(MAGIC):
        return False
    body = data[len(MAGIC) : -_DIGEST]
    return hashlib.md5(body).digest() == data[-_DIGEST:]


def deaggregate(data: bytes, partition_key: str) -> list[UserRecord]:
    """Split a record's payload into its user records.

    A payload that is not a well-formed aggregate (no magic, bad digest, broken protobuf) is
    returned unchanged as a single record with sub-sequence number 0: the spout emits bad bytes
    as they are and lets the parser reject them, as the KPL's own de-aggregator does.
    """
    if not is_aggregated(data):
        return [UserRecord(partition_key, data, 0)]
    try:
        return _decode_aggregate(data[len(MAGIC) : -_DIGEST])
    except (ValueError, IndexError, UnicodeDecodeError):
        return [UserRecord(partition_key, data, 0)]


def aggregate(records: list[tuple[str, bytes]]) -> bytes:
    """Encode ``(partition_key, data)`` pairs as one KPL aggregate (for tests and benchmarks)."""
    keys: list[str] = []
    index: dict[str, int] = {}
    body = bytearray()
    for key in (k for k, _ in records):
        if key not in index:
            index[key] = len(keys)
            keys.append(key)
            body += _field_bytes(1, key.encode())
    for key, data in records:
        inner = _tag(1, 0) + _varint(index[key]) + _field_bytes(3, data)
        body += _field_bytes(3, inner)
    payload = bytes(body)
    return MAGIC + payload + hashlib.md5(payload).digest()


def _decode_aggregate(body: bytes) -> list[UserRecord]:
    keys: list[str] = []
    raw: list[tuple[int, bytes]] = []
    for field, value in _fields(body):
        if field == 1:
            keys.append(bytes(value).decode("utf-8"))
        elif field == 3:
            key_index, data = None, None
            for inner_field, inner_value in _fields(value):
                if inner_field == 1:
                    key_index = inner_value
                elif inner_field == 3:
                    data = bytes(inner_value)
            if key_index is None or data is None:
                raise ValueError("record without partition key index or data")
            raw.append((key_index, data))
    return [UserRecord(keys[k], data, i) for i, (k, data) in enumerate(raw)]


def _fields(buf: bytes):
    """Yield ``(field_number, value)``: ints for varints, memoryviews for length-delimited."""
    view = memoryview(buf)
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _read_varint(view, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(view, pos)
        elif wire == 2:
            length, pos = _read_varint(view, pos)
            if pos + length > end:
                raise ValueError("truncated field")
            value, pos = view[pos : pos + length], pos + length
        elif wire == 1:
            value, pos = None, pos + 8
        elif wire == 5:
            value, pos = None, pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > end:
            raise ValueError("truncated field")
        yield field, value


def _read_varint(view, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = view[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _tag(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _field_bytes(field: int, data: bytes) -> bytes:
    return _tag(field, 2) + _varint(len(data)) + data
