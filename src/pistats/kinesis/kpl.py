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

The payload is untrusted: decoding never raises and never allocates more than a small multiple
of the payload's size (every length is checked against what remains before anything is sliced).
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


@dataclass(frozen=True, slots=True)
class MalformedAggregate:
    """A payload that starts with the KPL magic but is not a usable aggregate; ``detail`` says why.

    Readers hand such a record on as it came (sub-sequence number 0, raw bytes); the enrich
    parser turns a payload still starting with :data:`MAGIC` into a ``bad_kpl`` reject, so the
    record ends in the dead-letter table with its bytes, and its shard moves on.
    """

    detail: str


def is_aggregated(data: bytes) -> bool:
    """True for a payload with the magic, a protobuf body and a matching MD5 (the body may
    still be malformed: :func:`deaggregate` says)."""
    if len(data) <= len(MAGIC) + _DIGEST or not data.startswith(MAGIC):
        return False
    body = data[len(MAGIC) : -_DIGEST]
    return hashlib.md5(body).digest() == data[-_DIGEST:]


def deaggregate(data: bytes, partition_key: str) -> list[UserRecord] | MalformedAggregate:
    """A record's user records, in order; never raises.

    A payload without the magic is a plain record: one user record, ``partition_key``, sub-sequence
    number 0. A payload with the magic must be a well-formed aggregate of at least one record
    (digest, protobuf, partition key index inside the table): otherwise the result is a
    :class:`MalformedAggregate`, never an empty list, so every Kinesis record yields something.
    """
    if not data.startswith(MAGIC):
        return [UserRecord(partition_key, data, 0)]
    if len(data) <= len(MAGIC) + _DIGEST:
        return MalformedAggregate(f"{len(data)} bytes: too short for an aggregate")
    if not is_aggregated(data):
        return MalformedAggregate("MD5 digest does not match the body")
    try:
        return _decode_aggregate(memoryview(data)[len(MAGIC) : -_DIGEST])
    except _Malformed as error:
        return MalformedAggregate(str(error))
    except Exception as error:  # a decoder bug must not stall a shard: the raw bytes are kept
        return MalformedAggregate(f"undecodable ({type(error).__name__}: {error})")


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


class _Malformed(ValueError):
    pass


_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


def _decode_aggregate(body: memoryview) -> list[UserRecord]:
    keys: list[str] = []
    raw: list[tuple[int, bytes]] = []
    for field, wire, value in _fields(body):
        if field == 1:
            try:
                keys.append(str(_length_delimited("partition key", wire, value), "utf-8"))
            except UnicodeDecodeError:
                raise _Malformed(f"partition key {len(keys)} is not UTF-8") from None
        elif field == 3:
            raw.append(_record(len(raw), _length_delimited(f"record {len(raw)}", wire, value)))
    if not raw:
        raise _Malformed("aggregate holds no records")
    out = []
    for i, (key_index, data) in enumerate(raw):
        if key_index >= len(keys):
            raise _Malformed(f"record {i}: partition key index {key_index} outside a table of {len(keys)}")
        out.append(UserRecord(keys[key_index], data, i))
    return out


def _record(number: int, buf: memoryview) -> tuple[int, bytes]:
    key_index, data = None, None
    for field, wire, value in _fields(buf):
        if field == 1:
            if wire != _VARINT:
                raise _Malformed(f"record {number}: partition key index has wire type {wire}")
            key_index = value
        elif field == 3:
            data = bytes(_length_delimited(f"record {number} data", wire, value))
    if key_index is None or data is None:
        raise _Malformed(f"record {number}: no partition key index or no data")
    return key_index, data


def _length_delimited(what: str, wire: int, value) -> memoryview:
    if wire != _LENGTH_DELIMITED:
        raise _Malformed(f"{what} has wire type {wire}, not length-delimited")
    return value


def _fields(buf: memoryview):
    """Yield ``(field_number, wire_type, value)``: an int for a varint, a slice of ``buf`` for a
    length-delimited field, None for fixed-size ones (not used by the format)."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise _Malformed("field number 0")
        if wire == _VARINT:
            value, pos = _read_varint(buf, pos)
        elif wire == _LENGTH_DELIMITED:
            length, pos = _read_varint(buf, pos)
            if length > end - pos:
                raise _Malformed(f"field {field} claims {length} bytes, {end - pos} remain")
            value, pos = buf[pos : pos + length], pos + length
        elif wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
            if size > end - pos:
                raise _Malformed(f"field {field} truncated")
            value, pos = None, pos + size
        else:
            raise _Malformed(f"field {field} has unsupported wire type {wire}")
        yield field, wire, value


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise _Malformed("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Malformed("varint longer than 10 bytes")


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
