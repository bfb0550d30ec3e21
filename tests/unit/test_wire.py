import base64
import threading
import zlib
from datetime import datetime, timedelta, timezone

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from pistats.wire import (
    MAX_UNPACKED_BYTES, PackedColumns, PackedRows, WireError, format_time, pack, pack_columns, pack_rows, unpack,
    unpack_batch, unpack_packed_rows, unpack_rows,
)


def packed_bytes(data: bytes) -> str:
    """``data`` as ``pack`` frames its JSON."""
    return base64.b64encode(zstandard.ZstdCompressor(level=1).compress(data)).decode()


def test_round_trip_keeps_every_json_value():
    rows = [{"event_id": "é\u2028\ud800", "n": 1, "x": 1.5, "ok": True, "none": None}, ["a", 2], "text"]
    assert unpack(pack(rows)) == rows


def test_packed_text_needs_no_json_escaping_and_is_smaller():
    rows = [{"client_id": "c1", "user_id": f"u{n}", "geo_country": "SE", "device_type": "mobile"} for n in range(100)]
    packed = pack(rows)
    assert packed.isascii() and '"' not in packed and "\\" not in packed
    assert len(packed) < len(str(rows)) / 3


@pytest.mark.parametrize("text", [
    "not base64!",
    base64.b64encode(b"not compressed").decode(),
    base64.b64encode(zlib.compress(b'["deflated"]')).decode(),  # the earlier wire form
    packed_bytes(b"{not json"),
    packed_bytes(b'{"a": 1}'),  # JSON, but not a list
    packed_bytes(b"\xff\xfe"),
    packed_bytes(b'["a"]')[:-8],  # cut short
    base64.b64encode(zstandard.ZstdCompressor(write_content_size=False).compress(b'["a"]')).decode(),
])
def test_anything_else_is_a_wire_error(text):
    with pytest.raises(WireError):
        unpack(text)


def test_a_frame_claiming_more_than_the_bound_is_refused_before_any_allocation():
    for claimed in (MAX_UNPACKED_BYTES + 1, 2**40):
        # A few bytes that state a size the decompressor would allocate at once.
        writer = zstandard.ZstdCompressor(level=1).compressobj(size=claimed)
        frame = writer.compress(b"[]") + writer.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
        assert zstandard.frame_content_size(frame) == claimed and len(frame) < 64
        with pytest.raises(WireError, match="over"):
            unpack(base64.b64encode(frame).decode())


def test_threads_pack_and_unpack_at_once():
    failures = []

    def work(number: int) -> None:
        for n in range(200):
            rows = [{"thread": number, "n": n, "text": "x" * (n % 50)}] * (n % 7 + 1)
            if unpack_rows(pack_rows(rows)) != rows:
                failures.append((number, n))

    threads = [threading.Thread(target=work, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_rows_travel_as_one_header_and_value_lists():
    rows = [{"event_id": "a", "n": 1, "t": "2026-11-26T05:00:00.000000Z"}, {"event_id": "b", "n": 2, "t": None}]
    packed = pack_rows(rows)
    assert unpack(packed) == [["event_id", "n", "t"], [["a", 1, "2026-11-26T05:00:00.000000Z"], ["b", 2, None]]]
    assert unpack_rows(packed) == rows


def test_rows_of_other_shapes_arrive_whole():
    rows = [{"a": 1, "b": 2}, {"b": 3, "a": 4}, {"c": 5}]  # another key order, another key
    assert unpack_rows(pack_rows(rows)) == [{"a": 1, "b": 2, "c": None}, {"a": 4, "b": 3, "c": None},
                                            {"a": None, "b": None, "c": 5}]
    assert unpack_rows(pack_rows([])) == []


@pytest.mark.parametrize("value", [[], [["a"]], [["a"], [[1, 2]]], [[1], [[1]]], [["a"], [{"a": 1}]], ["a", []]])
def test_anything_but_fields_and_rows_is_a_wire_error(value):
    with pytest.raises(WireError):
        unpack_rows(pack(value))


def test_values_json_cannot_write_arrive_as_written_or_as_none():
    rows = [{"text": "lone \ud800 surrogate", "big": 2 ** 70, "small": -(2 ** 63)}]
    assert unpack_rows(pack_rows(rows)) == rows  # written by the standard library instead
    assert unpack_rows(pack_rows([{"lat": float("nan"), "lon": float("inf")}])) == [{"lat": None, "lon": None}]


def test_json_only_the_standard_library_reads_still_unpacks():
    # orjson reads packed batches; what it refuses falls back to the standard library's reading.
    for data, expected in ((b'[1.5, 18446744073709551616, "x"]', [1.5, 2 ** 64, "x"]), (b"[Infinity]", [float("inf")])):
        assert unpack(packed_bytes(data)) == expected


def test_columns_travel_as_a_tag_one_header_and_one_list_per_field():
    packed = pack_columns(["event_id", "n"], [["a", "b"], [1, None]])
    assert unpack(packed) == ["columns", ["event_id", "n"], [["a", "b"], [1, None]]]
    batch = unpack_batch(packed)
    assert batch == PackedColumns(["event_id", "n"], [["a", "b"], [1, None]]) and len(batch) == 2
    assert unpack_rows(packed) == [{"event_id": "a", "n": 1}, {"event_id": "b", "n": None}]
    assert unpack_rows(pack_columns([], [])) == [] and len(unpack_batch(pack_columns(["a"], [[]]))) == 0
    assert isinstance(unpack_batch(pack_rows([{"a": 1}])), PackedRows)
    with pytest.raises(WireError):  # a consumer of rows only is told, not handed columns
        unpack_packed_rows(packed)


@pytest.mark.parametrize("value", [
    ["columns", ["a", "b"], [[1, 2], [3]]],  # ragged
    ["columns", ["a", "b"], [[1, 2]]],  # a column short
    ["columns", ["a"], [[1], [2]]],  # a column more
    ["columns", ["a"], [1]],  # not a list of lists
    ["columns", [1], [[1]]],  # a field name not text
    ["columns", ["a"]],
    ["columns", "a", [[1]]],
    ["rows", ["a"], [[1]]],
])
def test_anything_but_tag_fields_and_columns_is_a_wire_error(value):
    with pytest.raises(WireError):
        unpack_batch(pack(value))


@settings(max_examples=500, deadline=None)
@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2105, 12, 30), allow_imaginary=False,
                    timezones=st.sampled_from([timezone.utc, timezone(timedelta(0), "UTC"),
                                               timezone(timedelta(hours=-9, minutes=-30))])))
def test_a_time_is_written_in_utc_with_microseconds_whatever_its_zone(value):
    """UTC times take the short path (their isoformat's "+00:00" becomes "Z"), others the
    conversion; strftime of the instant in UTC is the independent reading of both."""
    assert format_time(value) == value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
