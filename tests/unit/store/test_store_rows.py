import math
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.samples import make_event, make_reject

from pistats.store.rows import (
    EVENT_COLUMN_NAMES,
    REJECT_COLUMN_NAMES,
    RowError,
    dedup_token,
    epoch_ms,
    event_key,
    event_row,
    event_rows_columnar,
    event_rows_from_columns,
    from_epoch_ms,
    EVENT_COLUMNS,
    reject_for_event,
    reject_for_refused_row,
    reject_key,
    reject_row,
)
from pistats.store.rows.fast_row import cached_text_epoch_ms, event_row_fast, text_epoch_ms
from pistats.store.rows.rule import event_row_by_field

LIMIT = 1000
NOW = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)


def as_dict(row):
    return dict(zip(EVENT_COLUMN_NAMES, row))


def test_event_row_converts_text_times_and_defaults():
    row, size = event_row(make_event(3), LIMIT)
    values = as_dict(row)
    assert from_epoch_ms(values["event_time"]) == datetime(2026, 11, 25, 10, 0, 0, 250000, tzinfo=timezone.utc)
    assert from_epoch_ms(values["first_seen_at"]) == datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)
    assert values["push_token"] == "" and values["notification_id"] == ""
    assert values["is_new_user"] == 0 and values["clock_skew"] == 0
    assert values["geo_lat"] == 52.5 and values["session_event_index"] == 3
    assert size > len("Mozilla/5.0")


def test_datetime_objects_are_accepted_and_normalised_to_utc():
    from datetime import timedelta

    local = datetime(2026, 11, 25, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    values = as_dict(event_row(make_event(event_time=local), LIMIT)[0])
    assert from_epoch_ms(values["event_time"]) == datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)


def test_absent_times_default_to_the_event_time():
    values = as_dict(event_row(make_event(received_at=None, processed_at=None, first_seen_at=None), LIMIT)[0])
    assert values["received_at"] == values["processed_at"] == values["first_seen_at"] == values["event_time"]


@pytest.mark.parametrize("coordinate", [math.nan, math.inf, -math.inf, 91.0])
def test_bad_latitude_becomes_null_with_a_note(coordinate):
    values = as_dict(event_row(make_event(geo_lat=coordinate), LIMIT)[0])
    assert values["geo_lat"] is None
    assert values["enrich_errors"] == ["store:bad_coordinate:geo_lat"]


def test_long_strings_are_truncated_with_a_note():
    values = as_dict(event_row(make_event(user_agent="x" * 5000, enrich_errors=["geo:miss"]), LIMIT)[0])
    assert values["user_agent"] == "x" * LIMIT
    assert values["enrich_errors"] == ["geo:miss", "store:truncated:user_agent"]


def test_nul_bytes_are_kept():
    values = as_dict(event_row(make_event(user_agent="a\x00b", page_url="\x00"), LIMIT)[0])
    assert values["user_agent"] == "a\x00b" and values["page_url"] == "\x00"


def test_lone_surrogates_are_replaced_with_a_note():
    values = as_dict(event_row(make_event(referrer="bad\ud800"), LIMIT)[0])
    assert values["referrer"] == "bad?"
    assert values["enrich_errors"] == ["store:bad_unicode:referrer"]


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"event_id": None}, "event_id"),
        ({"client_id": ""}, "client_id"),
        ({"event_time": "yesterday"}, "event_time"),
        ({"event_time": "2026-11-25T10:00:00"}, "event_time"),
        ({"event_time": "1900-01-01T00:00:00Z"}, "event_time"),
        ({"session_index": -1}, "session_index"),
        ({"geo_asn": "3320"}, "geo_asn"),
        ({"is_bot": "yes"}, "is_bot"),
        ({"user_agent": {"nested": 1}}, "user_agent"),
        ({"enrich_errors": "oops"}, "enrich_errors"),
    ],
)
def test_unstorable_events_raise_row_error_naming_the_field(overrides, field):
    with pytest.raises(RowError) as caught:
        event_row(make_event(**overrides), LIMIT)
    assert caught.value.field == field


def test_non_mapping_event_is_a_row_error():
    with pytest.raises(RowError):
        event_row(["not", "a", "dict"], LIMIT)


def test_a_replayed_refused_row_gives_the_same_reject_key():
    """A replay re-enriches the event with another processed_at; its store_refused reject must
    collapse with the first one (the key holds the payload), not add a second reject."""
    first = event_row(make_event(3, processed_at="2026-11-26T06:00:00Z"), LIMIT)[0]
    replay = event_row(make_event(3, processed_at="2026-11-26T07:30:00Z"), LIMIT)[0]
    assert first != replay
    rejects = [reject_row(reject_for_refused_row(EVENT_COLUMNS, row, "Code: 469. violated", 1, NOW), 10 * LIMIT, NOW)[0]
               for row in (first, replay)]
    assert reject_key(rejects[0]) == reject_key(rejects[1])
    assert as_dict(first)["kinesis_seq"] in reject_key(rejects[0])


def test_reject_for_event_keeps_provenance_and_payload():
    event = make_event(7, event_time="never")
    reject = reject_for_event(event, RowError("event_time", "not RFC 3339"), NOW)
    assert (reject["reason"], reject["stage"], reject["field"]) == ("schema", "sink", "event_time")
    assert reject["kinesis_seq"] == event["kinesis_seq"] and reject["client_id"] == "client-a"
    row = dict(zip(REJECT_COLUMN_NAMES, reject_row(reject, LIMIT, NOW)[0]))
    assert from_epoch_ms(row["rejected_at"]) == NOW and row["raw_b64"]


def test_reject_row_with_bad_time_uses_now():
    row = dict(zip(REJECT_COLUMN_NAMES, reject_row(make_reject(rejected_at="bad"), LIMIT, NOW)[0]))
    assert from_epoch_ms(row["rejected_at"]) == NOW and row["field"] == "" and row["reason"] == "bad_json"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])  # no timing: machines are shared
@given(st.dictionaries(st.sampled_from(REJECT_COLUMN_NAMES + ("extra",)), json_values) | json_values)
def test_reject_row_never_raises(reject):
    row, size = reject_row(reject, LIMIT, NOW)
    assert len(row) == len(REJECT_COLUMN_NAMES) and size >= 0


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])  # no timing: machines are shared
@given(st.dictionaries(st.sampled_from(EVENT_COLUMN_NAMES), json_values))
def test_event_row_either_converts_or_raises_row_error(overrides):
    try:
        row, _ = event_row(make_event(**overrides), LIMIT)
    except RowError:
        return
    assert len(row) == len(EVENT_COLUMN_NAMES)


def test_dedup_token_is_deterministic_and_content_sensitive():
    rows = [event_row(make_event(i), LIMIT)[0] for i in range(3)]
    keys = [event_key(row) for row in rows]
    assert dedup_token("events", keys) == dedup_token("events", list(keys))
    assert dedup_token("events", keys) != dedup_token("events", keys[:2])
    assert dedup_token("events", keys) != dedup_token("events_rejected", keys)
    reject = reject_row(make_reject(), LIMIT, NOW)[0]
    assert reject_key(reject) != reject_key(reject_row(make_reject(1), LIMIT, NOW)[0])


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])  # no timing: machines are shared
@given(st.dictionaries(st.sampled_from(EVENT_COLUMN_NAMES), json_values))
def test_fast_and_field_by_field_paths_agree(overrides):
    event = make_event(**overrides)
    fast = event_row_fast(event, LIMIT)
    if fast is None:
        return
    assert fast[0] == event_row_by_field(event, LIMIT)[0]


@pytest.mark.parametrize("index", range(5))
def test_fast_path_takes_the_common_event(index):
    event = make_event(index)
    fast = event_row_fast(event, LIMIT)
    assert fast is not None and fast[0] == event_row_by_field(event, LIMIT)[0]


EDGE_CASES = [
    {"geo_lat": None, "geo_lon": None, "geo_accuracy_km": None, "geo_asn": None},
    {"geo_accuracy_km": 0, "geo_asn": 2**32 - 1, "session_index": 0, "kinesis_subseq": 2**32 - 1},
    {"geo_lat": -90, "geo_lon": 180},
    {"geo_lat": math.nan},
    {"geo_lon": -math.inf},
    {"user_agent": "x" * (LIMIT + 1)},
    {"user_agent": "x" * LIMIT},
    {"referrer": "bad\ud800", "page_url": "https://example.com/\u00e9"},
    {"geo_city": "M\u00fcnchen", "geo_org": "\u5317\u4eac", "enrich_errors": ["geo:caf\u00e9"]},
    {"context_json": "a\x00b", "ip": "\x00"},
    {"enrich_errors": []},
    {"enrich_errors": ["geo:miss", "ua:unknown"]},
    {"enrich_errors": ["e" * (LIMIT + 1)]},
    {"enrich_errors": ["caf\u00e9"]},
    {"push_token": None, "notification_id": None, "user_agent": None, "geo_org": None},
    {"push_token": "", "notification_id": ""},
    {"received_at": None, "processed_at": None, "first_seen_at": None},
    {"event_time": "2026-11-25T12:00:00.123456+02:00", "received_at": "2026-11-25 10:00:01+00:00"},
    {"event_time": datetime(2026, 11, 25, 10, 0, 0, 250000, tzinfo=timezone.utc)},
    {"is_touch": True, "is_bot": 1, "clock_skew": 0},
    {"session_index": True},
    {"geo_asn": -1},
    {"kinesis_subseq": 2**32},
    {"geo_lat": "52.5"},
]


@pytest.mark.parametrize("overrides", EDGE_CASES)
def test_fast_path_stores_what_the_field_by_field_path_stores(overrides):
    """The fast path either declines or builds the very row the field-by-field path builds."""
    event = make_event(4, **overrides)
    fast = event_row_fast(event, LIMIT)
    try:
        checked_row, _ = event_row_by_field(event, LIMIT)
    except RowError as error:
        assert fast is None
        with pytest.raises(RowError, match=error.field):
            event_row(event, LIMIT)
        return
    assert fast is None or fast[0] == checked_row
    assert event_row(event, LIMIT)[0] == checked_row


@pytest.mark.parametrize("overrides", [{}, {"enrich_errors": ["geo:miss"]}, {"geo_lat": None, "geo_asn": None}])
def test_fast_path_takes_nulls_and_empty_errors(overrides):
    assert event_row_fast(make_event(1, **overrides), LIMIT) is not None


def test_absent_texts_are_stored_as_empty_text():
    with_none, _ = event_row_fast(make_event(2, push_token=None, user_agent=None), LIMIT)
    with_empty, _ = event_row_fast(make_event(2, push_token="", user_agent=""), LIMIT)
    assert with_none == with_empty and with_none[EVENT_COLUMN_NAMES.index("user_agent")] == ""


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-25T10:00:00.250Z",
        "2026-11-25T12:00:00.999999+02:00",
        "2026-11-25T10:00:00.0004-00:30",
        "2026-11-25 10:00:00+00:00",
        "2026-11-25T15:30:00.123456+05:30",
        "1970-01-02T00:00:00Z",
        "2105-12-30T23:59:59.999Z",
        "1970-01-01T23:59:59.999Z",
        "2105-12-31T00:00:00Z",
        "2026-11-25T10:00:00",
        "yesterday",
        "0001-01-01T00:00:00+01:00",  # before year 1 once in UTC
        "9999-12-31T23:59:59-01:00",  # after year 9999 once in UTC
        "",
    ],
)
def test_cached_text_times_equal_a_fresh_parse(text):
    try:
        expected = epoch_ms(text, "event_time")
    except RowError:
        expected = None
    assert text_epoch_ms(text) == expected
    assert cached_text_epoch_ms(text) == expected
    assert cached_text_epoch_ms(text) == expected  # the cached answer
    event = make_event(5, event_time=text or None, received_at=text, first_seen_at=text, processed_at=text)
    fast = event_row_fast(event, LIMIT)
    if expected is None:
        assert fast is None
        with pytest.raises(RowError):
            event_row(event, LIMIT)
    else:
        times = [fast[0][EVENT_COLUMN_NAMES.index(name)]
                 for name in ("event_time", "received_at", "first_seen_at", "processed_at")]
        assert times == [expected] * 4 and fast[0] == event_row_by_field(event, LIMIT)[0]


# The column-by-column path over a packed micro-batch (what the sink bolt receives).


def packed(events):
    """The sink's view of a tuple: ``pack_rows`` then ``unpack_packed_rows``, as header and rows."""
    from pistats.wire import pack_rows, unpack_packed_rows

    batch = unpack_packed_rows(pack_rows(events))
    return batch.fields, batch.values


def by_columns(events):
    """The same batch as the enrich bolt emits it (``to_wire_batch``: packed by column), through
    ``event_rows_from_columns``."""
    from pistats.enrich.event import to_wire_batch
    from pistats.wire import unpack_batch

    batch = unpack_batch(to_wire_batch(events))
    return event_rows_from_columns(batch.fields, batch.columns, LIMIT)


def rows_one_by_one(fields, values):
    """The row path over the same unpacked batch (packing already turned NaN into None)."""
    return [event_row(dict(zip(fields, row)), LIMIT) for row in values]


def test_columnar_rows_and_sizes_equal_the_row_path():
    events = [make_event(index) for index in range(20)]
    events[3] = make_event(3, push_token=None, user_agent="", geo_lat=None, geo_asn=None)
    events[7] = make_event(7, enrich_errors=["geo:miss"], received_at=None, geo_lat=10)
    rows, sizes = event_rows_columnar(*packed(events), LIMIT)
    expected = rows_one_by_one(*packed(events))
    assert rows == [row for row, _ in expected]
    assert sizes == [size for _, size in expected]
    assert by_columns(events) == (rows, sizes)


@pytest.mark.parametrize("overrides", EDGE_CASES)
def test_columnar_path_declines_or_equals_the_row_path_for_every_edge_case(overrides):
    events = [make_event(0), make_event(4, **overrides), make_event(5)]
    if any(isinstance(value, datetime) for value in overrides.values()):
        return  # not JSON: datetimes travel as RFC 3339 text
    converted = event_rows_columnar(*packed(events), LIMIT)
    assert by_columns(events) == converted
    try:
        expected = rows_one_by_one(*packed(events))
    except RowError:
        assert converted is None
        return
    assert converted is None or converted == ([row for row, _ in expected], [size for _, size in expected])


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])  # no timing: machines are shared
@given(st.dictionaries(st.sampled_from(EVENT_COLUMN_NAMES), json_values))
def test_columnar_and_row_paths_agree(overrides):
    events = [make_event(1), make_event(2, **overrides)]
    converted = event_rows_columnar(*packed(events), LIMIT)
    assert by_columns(events) == converted
    if converted is None:
        return
    assert converted == tuple(map(list, zip(*rows_one_by_one(*packed(events)))))


def test_columnar_path_takes_the_common_batch_and_declines_odd_shapes():
    events = [make_event(index) for index in range(5)]
    fields, values = packed(events)
    assert event_rows_columnar(fields, values, LIMIT) is not None
    assert event_rows_columnar(fields, [], LIMIT) == ([], [])
    without_user = [name for name in fields if name != "user_id"]
    assert event_rows_columnar(without_user, [row[:-1] for row in values], LIMIT) is None
    assert event_rows_columnar(fields + ["user_id"], [row + ["u"] for row in values], LIMIT) is None  # duplicate
    assert event_rows_columnar(fields, [values[0], values[1][:-1]], LIMIT) is None  # ragged
    columns = [list(column) for column in zip(*values)]
    assert event_rows_from_columns(fields, columns, LIMIT) == event_rows_columnar(fields, values, LIMIT)
    assert event_rows_from_columns(fields, [[] for _ in fields], LIMIT) == ([], [])
    assert event_rows_from_columns(without_user, columns[:-1], LIMIT) is None
    assert event_rows_from_columns(fields + ["user_id"], columns + [["u"] * 5], LIMIT) is None  # duplicate
    assert event_rows_from_columns(fields, columns[:-1] + [columns[-1][:-1]], LIMIT) is None  # ragged
    assert event_rows_from_columns(fields, columns[:-1], LIMIT) is None  # a column short


def test_text_beyond_ascii_takes_the_fast_paths():
    """City names, organisations and URLs are often not ASCII; only lone surrogates need a repair."""
    events = [make_event(index, geo_city="S\u00e3o Paulo", page_url="https://example.com/\u00fc") for index in range(3)]
    assert event_row_fast(events[0], LIMIT) is not None
    converted = event_rows_columnar(*packed(events), LIMIT)
    assert converted is not None
    assert converted[0] == [row for row, _ in rows_one_by_one(*packed(events))]
    with_surrogate = events + [make_event(9, geo_city="bad\udc80")]
    assert event_rows_columnar(*packed(with_surrogate), LIMIT) is None
