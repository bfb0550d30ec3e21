"""The v1 event contract: validation, record building and decoding."""

from __future__ import annotations

import base64
import json
import tracemalloc
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pistats import contract
from tests.support import hostile
from pistats.contract import (
    MAX_RECORD_BYTES,
    REJECT_REASONS,
    ContractError,
    Problem,
    build_record,
    decode_record,
    encode_record,
    parse_timestamp,
    partition_key,
    validate_event,
    validate_record,
)
from pistats.contract.fast import plainly_valid_record
from pistats.contract.schema import SCREEN_DIMENSION_MAX
from pistats.contract.validation import record_problems

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)


def event(**overrides) -> dict:
    base = {
        "event_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "type": "page_view",
        "property_id": "site-1",
        "user_id": "u-42",
        "timestamp": "2026-11-26T11:59:58.250Z",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def fields(problems: list[Problem]) -> list[str]:
    return [p.field for p in problems]


# --- validate_event -------------------------------------------------------------------------


def test_minimal_event_is_valid():
    assert validate_event(event()) == []


def test_full_event_is_valid():
    full = event(
        type="subscribe",
        push_token="fcm:" + "x" * 200,
        notification_id="n-7",
        context={
            "page_url": "https://example.com/a?b=c",
            "referrer": "",
            "locale": "fr-FR",
            "timezone": "Europe/Paris",
            "screen": {"width": 1920, "height": 1080, "density": 2.0},
            "sdk": {"name": "pistats-js", "version": "1.2.3"},
            "user_agent": "MyApp/1.0",
            "campaign": {"source": ["mail", 3, None, True]},
        },
        properties={"plan": "pro", "seats": 3, "ratio": 0.5, "trial": False},
    )
    assert validate_event(full) == []


def test_optional_fields_may_be_null():
    assert validate_event(event(push_token=None, notification_id=None, context=None, properties=None)) == []


@pytest.mark.parametrize("value", [None, [], "x", 3, 1.5, True, [{"event_id": "a"}]])
def test_non_object_event(value):
    assert validate_event(value) == [Problem("", "event is not a JSON object")]


@pytest.mark.parametrize("name", contract.REQUIRED_FIELDS)
def test_each_required_field(name):
    assert validate_event(event(**{name: ...})) == [Problem(name, "required")]
    assert validate_event(event(**{name: None})) == [Problem(name, "required")]


def test_unknown_top_level_field_is_rejected_but_unknown_context_key_is_kept():
    assert validate_event(event(userid="u-1")) == [Problem("userid", "unknown field")]
    assert validate_event(event(context={"experiment": "b"})) == []


@pytest.mark.parametrize(
    "overrides, field, problem",
    [
        ({"event_id": ""}, "event_id", "empty"),
        ({"event_id": "e" * 65}, "event_id", "longer than 64 characters"),
        ({"event_id": 12}, "event_id", "not a string"),
        ({"type": "click"}, "type", "not one of " + ", ".join(contract.EVENT_TYPES)),
        ({"type": ["page_view"]}, "type", "not one of " + ", ".join(contract.EVENT_TYPES)),
        ({"property_id": ""}, "property_id", "empty"),
        ({"user_id": "u" * 129}, "user_id", "longer than 128 characters"),
        ({"user_id": "\ud800"}, "user_id", "invalid unicode (lone surrogate)"),
        ({"timestamp": "2026-11-26 12:00:00"}, "timestamp", "not RFC 3339"),
        ({"timestamp": 1764158400}, "timestamp", "not a string"),
        ({"type": "subscribe"}, "push_token", "required for subscribe"),
        ({"type": "subscribe", "push_token": ""}, "push_token", "empty"),
        ({"push_token": "é" * 2049}, "push_token", "longer than 4096 bytes"),
        ({"type": "notification_click"}, "notification_id", "required for notification_click"),
        ({"context": "https://x"}, "context", "not an object"),
        ({"context": {"page_url": 7}}, "context.page_url", "not a string"),
        ({"context": {"locale": "x" * 65}}, "context.locale", "longer than 64 characters"),
        ({"context": {"sdk": "js"}}, "context.sdk", "not an object"),
        ({"context": {"sdk": {"name": ""}}}, "context.sdk.name", "empty"),
        ({"context": {"screen": {"width": -1}}}, "context.screen.width", "not an integer in 0..100000"),
        ({"context": {"screen": {"height": 1.5}}}, "context.screen.height", "not an integer in 0..100000"),
        ({"context": {"x": float("nan")}}, "context.x", "not a finite number"),
        ({"context": {"x": [[[[[[1]]]]]]}}, "context.x[0][0][0][0]", "nested deeper than 5 levels"),
        ({"properties": [1]}, "properties", "not an object"),
        ({"properties": {"a": {"b": 1}}}, "properties.a", "not a string, number or boolean"),
        ({"properties": {"a": None}}, "properties.a", "not a string, number or boolean"),
        ({"properties": {"a": float("inf")}}, "properties.a", "not a finite number"),
        ({"properties": {"a": "v" * 1025}}, "properties.a", "longer than 1024 characters"),
        ({"properties": {"": 1}}, "properties", "key not a 1-128 character string"),
        ({"properties": {str(i): i for i in range(51)}}, "properties", "more than 50 keys"),
    ],
)
def test_each_field_problem(overrides, field, problem):
    assert validate_event(event(**overrides)) == [Problem(field, problem)]


def test_all_problems_are_listed():
    problems = validate_event({"type": "subscribe", "user_id": "", "extra": 1})
    assert sorted(fields(problems)) == sorted(
        ["extra", "event_id", "property_id", "timestamp", "user_id", "push_token"]
    )


# --- hostile input: problems and their fields are bounded ------------------------------------


def _json_bytes(text: str) -> int:
    """Bytes of ``text`` inside a UTF-8 JSON string (what the ingest's response spends on it)."""
    return len(json.dumps(text, ensure_ascii=False).encode()) - 2


def _events_of(body: bytes) -> list:
    document = json.loads(body)
    return document["batch"] if "batch" in document else [document]


def _validation_peak(value) -> tuple[list[Problem], int]:
    """``validate_event(value)`` and the most memory it held at once (bytes)."""
    tracemalloc.start()
    try:
        problems = validate_event(value)
        return problems, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name", sorted(hostile.CASES))
def test_a_hostile_event_lists_few_problems_in_little_memory(name):
    for value in _events_of(hostile.CASES[name]()):
        problems, peak = _validation_peak(value)
        assert 1 <= len(problems) <= contract.MAX_EVENT_PROBLEMS + 1
        assert max(_json_bytes(p.field) for p in problems) <= contract.FIELD_PATH_MAX
        assert peak <= 64 * 1024  # problems and paths, never a copy of a long key per item


def test_problems_past_the_cap_are_counted_in_one_more():
    problems = validate_event(event(**{f"x{n}": 1 for n in range(contract.MAX_EVENT_PROBLEMS + 5)}))
    assert fields(problems) == [f"x{n}" for n in range(contract.MAX_EVENT_PROBLEMS)] + [""]
    assert problems[-1].problem == "more than 10 problems; the first 10 are listed"


def test_a_valid_event_with_a_long_key_over_a_long_list_validates_in_little_memory():
    # Paths are built only for problems: a long key is not copied for each item below it.
    value = event(context={"k" * 200_000: [0, [1, {"a": "b"}]] * 20_000})
    problems, peak = _validation_peak(value)
    assert problems == [] and peak <= 64 * 1024


@pytest.mark.parametrize(
    "text, expected",
    [
        ("context.sdk.name", "context.sdk.name"),
        ("k" * 100, "k" * 100),
        ("k" * 101, "k" * 97 + "..."),
        ("é" * 50, "é" * 50),  # 2 bytes each
        ("😀" * 30, "😀" * 24 + "..."),  # 4 bytes each
        ("\x01" * 20, "\x01" * 16 + "..."),  # \u0001, 6 bytes each
        ('"' * 60, '"' * 48 + "..."),  # \", 2 bytes each
    ],
)
def test_cut_field(text, expected):
    assert contract.cut_field(text) == expected
    assert _json_bytes(contract.cut_field(text * 1000)) <= contract.FIELD_PATH_MAX


# --- timestamps ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-11-26T12:00:00Z", datetime(2026, 11, 26, 12, tzinfo=timezone.utc)),
        ("2026-11-26t12:00:00z", datetime(2026, 11, 26, 12, tzinfo=timezone.utc)),
        ("2026-11-26T13:30:00+01:30", datetime(2026, 11, 26, 12, tzinfo=timezone.utc)),
        ("2026-11-26T07:00:00-05:00", datetime(2026, 11, 26, 12, tzinfo=timezone.utc)),
        ("2026-11-26T12:00:00.1234567Z", datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=timezone.utc)),
        ("2026-11-26T12:00:00.5+00:00", datetime(2026, 11, 26, 12, 0, 0, 500000, tzinfo=timezone.utc)),
    ],
)
def test_parse_timestamp(text, expected):
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.tzinfo == timezone.utc


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-26",
        "2026-11-26T12:00:00",
        "2026-11-26 12:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-11-26T24:00:00Z",
        "2026-11-26T23:59:60Z",
        "2026-11-26T12:00:00+24:00",
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "2026-11-26T12:00:00Z ",
        "２０２６-11-26T12:00:00Z",
    ],
)
def test_parse_timestamp_rejects(text):
    with pytest.raises(ValueError):
        parse_timestamp(text)


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
       st.sampled_from(["", ".5", ".123", ".123456", ".1234567", ".000000000"]))
def test_z_times_read_as_the_same_time_with_a_zero_offset(moment, fraction):
    # A "Z" time takes a faster path than an offset time; both must give the same datetime.
    text = moment.strftime("%Y-%m-%dT%H:%M:%S").rjust(19, "0") + fraction
    zulu = parse_timestamp(text + "Z")
    assert zulu == parse_timestamp(text + "+00:00") and zulu.tzinfo == timezone.utc


# --- records --------------------------------------------------------------------------------


def test_build_record_shape():
    received = datetime(2026, 11, 26, 12, 0, 0, 987654, tzinfo=timezone.utc)
    record = build_record(
        client_id="c-1", event=event(), received_at=received, ip="203.0.113.9", user_agent="Mozilla/5.0", now=NOW
    )
    assert record == {
        "v": 1,
        "client_id": "c-1",
        "received_at": "2026-11-26T12:00:00.987Z",
        "ip": "203.0.113.9",
        "user_agent": "Mozilla/5.0",
        "event": event(),
        "clock_skew": False,
    }


def test_context_user_agent_wins_and_unknowns_become_empty():
    record = build_record(
        client_id="c-1",
        event=event(context={"user_agent": "MyApp/2.0 (iOS 18)"}),
        received_at=NOW,
        ip=None,
        user_agent="okhttp/4",
        now=NOW,
    )
    assert record["user_agent"] == "MyApp/2.0 (iOS 18)"
    assert record["ip"] == ""
    assert build_record(client_id="c", event=event(), received_at=NOW, ip=None, user_agent=None, now=NOW)[
        "user_agent"
    ] == ""


@pytest.mark.parametrize(
    "offset, skewed",
    [
        (timedelta(hours=24), False),
        (timedelta(hours=24, seconds=1), True),
        (-timedelta(days=30), False),
        (-timedelta(days=30, seconds=1), True),
        (timedelta(0), False),
    ],
)
def test_clock_skew_is_flagged_not_rewritten(offset, skewed):
    stamp = contract.format_timestamp(NOW + offset)
    record = build_record(
        client_id="c", event=event(timestamp=stamp), received_at=NOW, ip="", user_agent="", now=NOW
    )
    assert record["clock_skew"] is skewed
    assert record["event"]["timestamp"] == stamp


@pytest.mark.parametrize(
    "offset",
    [timedelta(0), timedelta(hours=24), timedelta(hours=24, milliseconds=1), -timedelta(days=30),
     -timedelta(days=30, milliseconds=1), timedelta(days=400), -timedelta(days=400)],
)
def test_a_record_without_clock_skew_gets_the_ingests_value(offset):
    # The first description of the record had no clock_skew; it follows from timestamp and received_at.
    record = build_record(client_id="c", event=event(timestamp=contract.format_timestamp(NOW + offset)),
                          received_at=NOW, ip="", user_agent="", now=NOW)
    older = {k: v for k, v in record.items() if k != "clock_skew"}
    assert plainly_valid_record(older) and record_problems(older) == []
    assert decode_record(encode_record(older)) == record
    assert list(decode_record(encode_record(older))) == list(contract.RECORD_FIELDS)


def test_a_record_without_clock_skew_still_refuses_unknown_fields():
    record = {k: v for k, v in good_record().items() if k != "clock_skew"}
    error = reject(encode_record({**record, "skew": False}))
    assert (error.reason, error.field) == ("schema", "skew")


def test_encode_is_compact_utf8_and_round_trips():
    record = build_record(
        client_id="c-1", event=event(user_id="zoë"), received_at=NOW, ip="", user_agent="", now=NOW
    )
    data = encode_record(record)
    assert "zoë".encode() in data
    assert b", " not in data and b": " not in data
    assert decode_record(data) == record


def test_partition_key():
    assert partition_key("c-1", "u:7") == "c-1:u:7"


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@pytest.mark.parametrize(
    "client_id, user_id, plain",
    [
        ("c" * 128, "u" * 127, True),  # 256: the longest plain key
        ("c" * 128, "u" * 128, False),  # 257, both ids at their limits
        ("c-1", "😀" * 126, True),  # 4 + 252 UTF-16 code units
        ("c-1", "😀" * 127, False),  # 4 + 254
        ("c" * 128, "é" * 127, True),  # a BMP character counts once
    ],
)
def test_a_partition_key_too_long_for_kinesis_becomes_a_digest(client_id, user_id, plain):
    key = partition_key(client_id, user_id)
    assert 1 <= _utf16_length(key) <= contract.PARTITION_KEY_MAX
    assert key == partition_key(client_id, user_id)  # one key per user, in every process
    if plain:
        assert key == f"{client_id}:{user_id}"
    else:
        assert ":" not in key and len(key) == 32
        assert partition_key(client_id, user_id[:-1] + "v") != key


# --- decode_record reason codes -------------------------------------------------------------


def good_record(**overrides) -> dict:
    record = build_record(client_id="c-1", event=event(), received_at=NOW, ip="", user_agent="", now=NOW)
    record.update(overrides)
    return {k: v for k, v in record.items() if v is not ...}


def reject(data: bytes) -> ContractError:
    with pytest.raises(ContractError) as caught:
        decode_record(data)
    assert caught.value.reason in REJECT_REASONS
    return caught.value


def test_decode_too_large():
    data = encode_record(good_record(user_agent="x" * MAX_RECORD_BYTES))
    assert reject(data).reason == "too_large"


def test_decode_bad_encoding():
    assert reject(b'{"v": 1, "client_id": "\xff"}').reason == "bad_encoding"
    assert reject('{"v":1}'.encode("utf-16")).reason == "bad_encoding"


@pytest.mark.parametrize("data", [b"", b"{", b"nope", b'{"v": NaN}', b'{"v": 1} x', b"[" * 50_000])
def test_decode_bad_json(data):
    assert reject(data).reason == "bad_json"


@pytest.mark.parametrize("version", [..., 2, 0, "1", 1.0, True, None])
def test_decode_unsupported_version(version):
    error = reject(json.dumps(good_record(v=version)).encode())
    assert error.reason == "unsupported_version"
    assert error.field is None


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"client_id": ""}, "client_id"),
        ({"client_id": ...}, "client_id"),
        ({"received_at": "yesterday"}, "received_at"),
        ({"ip": None}, "ip"),
        ({"user_agent": 5}, "user_agent"),
        ({"clock_skew": "no"}, "clock_skew"),
        ({"extra": 1}, "extra"),
        ({"event": []}, "event"),
        ({"event": event(timestamp="soon")}, "event.timestamp"),
        ({"event": event(colour="red")}, "event.colour"),
    ],
)
def test_decode_schema_names_the_field(overrides, field):
    error = reject(json.dumps(good_record(**overrides)).encode())
    assert (error.reason, error.field) == ("schema", field)
    assert field in error.detail


def test_decode_schema_for_non_object():
    error = reject(b"[1, 2]")
    assert (error.reason, error.field) == ("schema", None)


def test_contract_error_rejects_unknown_reason():
    with pytest.raises(ValueError):
        ContractError("oops", "detail")


# --- property-based: no input ever escapes as an exception -------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
# Valid events, and valid events with one field replaced by random JSON, reach the deep
# branches (context, properties, type-specific rules) and the record round trip.
def texts(min_size=1, max_size=20):
    return st.text(st.characters(exclude_categories=["Cs"]), min_size=min_size, max_size=max_size)


rfc3339_times = st.builds(
    lambda moment, minutes: moment.replace(tzinfo=timezone(timedelta(minutes=minutes))).isoformat(),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)),
    st.integers(min_value=-23 * 60, max_value=23 * 60),
)
valid_events = st.fixed_dictionaries(
    {
        "event_id": texts(max_size=64),
        "type": st.sampled_from(["register", "unsubscribe", "page_view"]),
        "property_id": texts(),
        "user_id": texts(max_size=128),
        "timestamp": rfc3339_times,
    },
    optional={
        "push_token": texts(max_size=50),
        "notification_id": texts(),
        "context": st.fixed_dictionaries(
            {},
            optional={
                "page_url": texts(0, 50),
                "locale": texts(0, 10),
                "sdk": st.fixed_dictionaries({"name": texts(), "version": texts()}),
                "screen": st.fixed_dictionaries({"width": st.integers(0, 5000), "height": st.integers(0, 5000)}),
                "user_agent": texts(0, 50),
                "other": json_values,
            },
        ),
        "properties": st.dictionaries(
            texts(max_size=10),
            st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | texts(0, 20),
            max_size=8,
        ),
    },
)
near_events = valid_events | st.builds(
    lambda base, key, value: {**base, key: value},
    valid_events,
    st.sampled_from(contract.EVENT_FIELDS + ("typo",)) | texts(),
    json_values,
)


def _check_outcome(value) -> None:
    problems = validate_event(value)
    assert isinstance(problems, list)
    assert all(isinstance(p, Problem) and isinstance(p.field, str) for p in problems)
    if not problems:
        record = build_record(client_id="c", event=value, received_at=NOW, ip="", user_agent="", now=NOW)
        data = encode_record(record)
        if len(data) <= MAX_RECORD_BYTES:
            assert decode_record(data) == json.loads(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_random_json_never_raises(value):
    _check_outcome(value)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_events)
def test_near_valid_events_never_raise_and_valid_ones_round_trip(value):
    _check_outcome(value)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_decode_random_bytes_raises_only_contract_errors(data):
    try:
        record = decode_record(data)
    except ContractError as error:
        assert error.reason in REJECT_REASONS
    else:
        assert record["v"] == 1


def test_base64_round_trip_as_the_spout_emits_it():
    data = encode_record(good_record())
    assert decode_record(base64.b64decode(base64.b64encode(data)))["client_id"] == "c-1"


# --- the plain-record fast path ------------------------------------------------------------------

def _ascii(min_size=0, max_size=12):
    return st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=min_size, max_size=max_size)


def _upto(limit):
    """Valid ASCII text, often exactly at ``limit`` characters."""
    return st.sampled_from([1, limit]).map(lambda n: "x" * n) | _ascii(1)


# Valid records of the usual shape, then the same with one field of the record, the event, its
# context, sdk or properties made odd: past a limit, non-ASCII, a wrong type, an unknown key.
_plain_sdk = st.fixed_dictionaries({}, optional={"name": _upto(64), "version": _upto(64)})
_dimension = st.none() | st.sampled_from([0, SCREEN_DIMENSION_MAX]) | st.integers(0, SCREEN_DIMENSION_MAX)
_plain_screen = st.fixed_dictionaries({}, optional={"width": _dimension, "height": _dimension})
_plain_context = st.fixed_dictionaries({}, optional={
    "page_url": _upto(4096), "referrer": st.none() | _upto(4096), "locale": _upto(64), "sdk": _plain_sdk,
    "screen": st.none() | _plain_screen})
_plain_properties = st.dictionaries(_upto(contract.PROPERTY_KEY_MAX),
                                    _upto(contract.PROPERTY_VALUE_MAX) | st.integers() | st.booleans()
                                    | st.floats(allow_nan=False, allow_infinity=False), max_size=4)
plain_events = st.fixed_dictionaries(
    {"event_id": _upto(contract.EVENT_ID_MAX), "type": st.sampled_from(["register", "page_view", "unsubscribe"]),
     "property_id": _upto(contract.PROPERTY_ID_MAX), "user_id": _upto(contract.USER_ID_MAX),
     "timestamp": st.sampled_from(["2026-11-26T05:00:00.123Z", "2026-11-26T05:00:00+01:00"])},
    optional={"notification_id": _upto(contract.NOTIFICATION_ID_MAX), "context": _plain_context,
              "properties": _plain_properties},
)
plain_records = st.fixed_dictionaries({
    "v": st.just(1), "client_id": _upto(contract.CLIENT_ID_MAX), "received_at": st.just("2026-11-26T05:00:00.000Z"),
    "ip": st.sampled_from(["203.0.113.9", ""]), "user_agent": _ascii(), "event": plain_events,
    "clock_skew": st.booleans(),
})
_odd_values = (
    st.none() | st.integers() | st.floats() | st.booleans() | st.lists(st.integers(), max_size=2)
    | st.dictionaries(_ascii(), st.integers() | st.floats(), max_size=2)
    | st.sampled_from(["", "é", "\ud800", "subscribe", "notification_click", "2026-11-26T24:00:00Z", "2026-11-26",
                      float("nan"), float("inf"), -1, SCREEN_DIMENSION_MAX + 1, 2**64, True, 390.0])
)
# Where a field can be made odd, and its length limit (None: no limit).
_ODD_PLACES = [
    ("record", "client_id", contract.CLIENT_ID_MAX), ("record", "received_at", None), ("record", "ip", None),
    ("record", "user_agent", None), ("record", "clock_skew", None), ("record", "event", None), ("record", "typo", None),
    ("event", "event_id", contract.EVENT_ID_MAX), ("event", "type", None), ("event", "property_id", contract.PROPERTY_ID_MAX),
    ("event", "user_id", contract.USER_ID_MAX), ("event", "timestamp", None),
    ("event", "push_token", contract.PUSH_TOKEN_MAX_BYTES), ("event", "notification_id", contract.NOTIFICATION_ID_MAX),
    ("event", "context", None), ("event", "properties", None), ("event", "typo", None),
    ("context", "page_url", 4096), ("context", "referrer", 4096), ("context", "locale", 64), ("context", "sdk", None),
    ("context", "screen", None), ("context", "other", None),
    ("sdk", "name", 64), ("sdk", "version", 64), ("sdk", "build", None),
    ("screen", "width", None), ("screen", "height", None), ("screen", "depth", None), ("screen", "\ud800", None),
    ("properties", "plan", contract.PROPERTY_VALUE_MAX), ("properties", "x" * (contract.PROPERTY_KEY_MAX + 1), None),
    ("properties", "", None), ("properties", "é", None),
]


def _odd_value(place):
    limit = place[2]
    past_limit = st.just("x" * (limit + 1)) if limit else st.nothing()
    return st.tuples(st.just(place), past_limit | _odd_values)


def _with_odd(record, place_and_value):
    (where, key, _limit), value = place_and_value
    record = json.loads(json.dumps(record))  # a deep copy
    target = {"record": record, "event": record["event"]}.get(where)
    if where in ("context", "properties"):
        target = record["event"].setdefault(where, {})
    elif where in ("sdk", "screen"):
        context = record["event"].setdefault("context", {})
        if type(context.get(where)) is not dict:
            context[where] = {}
        target = context[where]
    target[key] = value
    return record


def _maybe_without_clock_skew(record_and_drop):
    record, drop = record_and_drop
    return {k: v for k, v in record.items() if k != "clock_skew"} if drop else record


odd_records = st.tuples(plain_records | st.builds(
    _with_odd, plain_records, st.sampled_from(_ODD_PLACES).flatmap(_odd_value),
), st.booleans()).map(_maybe_without_clock_skew)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(odd_records)
def test_fast_path_never_passes_a_record_the_full_check_faults(record):
    if plainly_valid_record(record):
        assert record_problems(record) == []


@settings(max_examples=300, deadline=None)
@given(plain_records, st.booleans())
def test_both_paths_accept_a_usual_record_with_or_without_clock_skew(record, drop):
    record = _maybe_without_clock_skew((record, drop))
    assert plainly_valid_record(record) and record_problems(record) == []
    decoded = decode_record(json.dumps(record).encode())
    assert decoded["clock_skew"] == (record["clock_skew"] if not drop else contract.record_clock_skew(record))


def test_a_usual_record_takes_the_fast_path():
    event = {"event_id": "e-1", "type": "subscribe", "property_id": "site", "user_id": "u-1",
             "timestamp": "2026-11-26T05:00:00.123Z", "push_token": "tok",
             "context": {"page_url": "https://example.com/", "locale": "en-GB", "referrer": None,
                         "sdk": {"name": "pistats-js", "version": "1.0.0"},
                         "screen": {"width": 390, "height": None}},
             "properties": {"plan": "pro", "n": 3, "ratio": 0.5, "ok": True}}
    record = build_record(client_id="c-1", event=event, received_at=NOW, ip="203.0.113.9",
                          user_agent="Mozilla/5.0", now=NOW)
    assert plainly_valid_record(record) and validate_record(record) == []
    # Outside the usual shape the full check decides, with the same answer for a valid record...
    unusual = {**record, "event": {**event, "context": {**event["context"], "app": {"build": 390}}}}
    assert not plainly_valid_record(unusual) and validate_record(unusual) == []
    # ...and its problems for an invalid one.
    invalid = {**record, "event": {**event, "user_id": "x" * 129}}
    assert not plainly_valid_record(invalid)
    assert [p.field for p in validate_record(invalid)] == ["event.user_id"]
