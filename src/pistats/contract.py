"""The event contract (v1): what the SDKs send and what the ingest puts into Kinesis.

One module, shared by the ingest (which builds records) and the topology's parser (which
decodes them), so both sides agree by construction. See docs/contract.md.

- An *event* is one JSON object sent by an SDK; :func:`validate_event` lists its problems.
- A *record* is what the ingest writes to Kinesis for an accepted event:
  ``{"v": 1, "client_id", "received_at", "ip", "user_agent", "event", "clock_skew"}``,
  built by :func:`build_record`, serialised by :func:`encode_record`, put with
  :func:`partition_key`, and read back by :func:`decode_record`.

Bad data is a value (a list of :class:`Problem`, or a :class:`ContractError` carrying a reason
code from :data:`REJECT_REASONS`), never an unexpected exception.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

RECORD_VERSION = 1
MAX_RECORD_BYTES = 64 * 1024
# Kinesis's limit, counted in UTF-16 code units as Java counts a String's length (kinesis-local
# agrees: 128 characters outside the BMP pass, 129 do not).
PARTITION_KEY_MAX = 256
EVENT_TYPES = ("register", "subscribe", "unsubscribe", "page_view", "notification_click")
REJECT_REASONS = ("bad_encoding", "bad_json", "unsupported_version", "schema", "too_large", "bad_kpl")

# Request limits of POST /v1/events (the ingest enforces them; they are part of the contract).
MAX_BODY_BYTES = 512 * 1024
MAX_BATCH_EVENTS = 100

# Clock sanity: an event time outside [now - PAST, now + FUTURE] is kept but flagged.
CLOCK_SKEW_FUTURE = timedelta(hours=24)
CLOCK_SKEW_PAST = timedelta(days=30)

EVENT_ID_MAX = 64
PROPERTY_ID_MAX = 128
USER_ID_MAX = 128
CLIENT_ID_MAX = 128
NOTIFICATION_ID_MAX = 128
PUSH_TOKEN_MAX_BYTES = 4096
PROPERTIES_MAX_KEYS = 50
PROPERTY_KEY_MAX = 128
PROPERTY_VALUE_MAX = 1024
# Unknown context keys are kept as they come, within this nesting depth.
CONTEXT_MAX_DEPTH = 5

# Problems are echoed to the client, so hostile input must not amplify: validation lists at
# most MAX_EVENT_PROBLEMS problems per event (and stops looking), and a problem's field path
# is cut to FIELD_PATH_MAX bytes of JSON (see :func:`cut_field`).
MAX_EVENT_PROBLEMS = 10
FIELD_PATH_MAX = 100

REQUIRED_FIELDS = ("event_id", "type", "property_id", "user_id", "timestamp")
OPTIONAL_FIELDS = ("push_token", "notification_id", "context", "properties")
EVENT_FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS
RECORD_FIELDS = ("v", "client_id", "received_at", "ip", "user_agent", "event", "clock_skew")
# Record fields a reader derives when absent: the first description of the record had no
# clock_skew, and it follows from timestamp and received_at (see record_clock_skew).
DERIVED_RECORD_FIELDS = ("clock_skew",)
_EVENT_FIELD_SET = frozenset(EVENT_FIELDS)
_RECORD_FIELD_SET = frozenset(RECORD_FIELDS)

# Known context keys and their limits (characters); other context keys are kept unchecked
# apart from being plain, finite JSON.
_CONTEXT_TEXT_LIMITS = {
    "page_url": 4096,
    "referrer": 4096,
    "locale": 64,
    "timezone": 64,
    "user_agent": 2048,
}
_SDK_TEXT_MAX = 64
_SCREEN_DIMENSION_MAX = 100_000

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,  # \d would otherwise match any Unicode digit
)


@dataclass(frozen=True)
class Problem:
    """One validation problem: ``field`` is a dotted path inside the event ('' for the event itself)."""

    field: str
    problem: str

    def as_dict(self) -> dict:
        return {"field": self.field, "problem": self.problem}


class ContractError(Exception):
    """A record that is not a valid v1 record: ``reason`` is one of :data:`REJECT_REASONS`.

    ``field`` names the offending record field (dotted, e.g. ``event.timestamp``) for
    ``schema`` errors and is None otherwise; ``detail`` is a one-line explanation.
    """

    def __init__(self, reason: str, detail: str, field: str | None = None):
        if reason not in REJECT_REASONS:
            raise ValueError(f"unknown reject reason {reason!r}")
        self.reason = reason
        self.field = field
        self.detail = detail
        where = f" {field}" if field else ""
        super().__init__(f"{reason}{where}: {detail}")


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 date-time into an aware UTC datetime.

    Accepts ``T``/``t``, ``Z``/``z`` or a ``±HH:MM`` offset and any number of fraction digits
    (truncated to microseconds). Raises ValueError for anything else, including leap seconds
    and dates that leave the datetime range once converted to UTC.
    """
    if not isinstance(text, str):
        raise ValueError("not a string")
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"not RFC 3339: {text[:40]!r}")
    if text[-1] == "Z" and text[10] == "T":
        # The usual shape (the SDKs and the ingest write it): datetime.fromisoformat is C, and
        # once the pattern matched it reads a Z time exactly as the general path below does.
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass  # e.g. hour 24 or second 60: the general path says why
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        if zulu:
            tz = timezone.utc
        else:
            if int(off_h) > 23 or int(off_m) > 59:
                raise ValueError("offset out of range")
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            tz = timezone(-offset if sign == "-" else offset)
        local = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tz)
        return local.astimezone(timezone.utc)
    except (ValueError, OverflowError) as error:
        raise ValueError(f"not RFC 3339: {error}") from None


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, e.g. ``2026-11-26T05:36:35.123Z`` (aware input only)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def is_text(value: object) -> bool:
    """A str that encodes to UTF-8 (json.loads lets lone surrogates such as "\\ud800" through)."""
    if type(value) is not str:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_ascii_text(value: object, min_len: int, max_len: int) -> bool:
    """ASCII text of an allowed length: the usual case, valid without the finer checks."""
    return type(value) is str and min_len <= len(value) <= max_len and value.isascii()


def _check_text(value: object, field: str, problems: list[Problem], *, min_len=1, max_len: int) -> None:
    """``field`` is short (a property key at most): it is cut only when a problem echoes it."""
    if _is_ascii_text(value, min_len, max_len):
        return
    if type(value) is not str:
        problem = "not a string"
    elif not is_text(value):
        problem = "invalid unicode (lone surrogate)"
    elif len(value) < min_len:
        problem = "empty"
    elif len(value) > max_len:
        problem = f"longer than {max_len} characters"
    else:
        return
    problems.append(Problem(cut_field(field), problem))


def _json_size(char: str) -> int:
    """Bytes of one character in UTF-8 JSON text."""
    if " " <= char:
        if char <= "~":
            return 2 if char in '"\\' else 1
        return len(char.encode("utf-8", "surrogatepass"))
    return 2 if char in "\b\f\n\r\t" else 6  # \n, or \u0001


def cut_field(text: str) -> str:
    """A field name or path as echoed to a client: at most FIELD_PATH_MAX bytes once written in
    UTF-8 JSON (escapes included), a cut marked by a trailing '...'.

    Costs O(FIELD_PATH_MAX) whatever the length of ``text``.
    """
    if len(text) <= FIELD_PATH_MAX and text.isascii() and text.isprintable() and '"' not in text \
            and "\\" not in text:
        return text
    size, cut = 0, 0
    for end, char in enumerate(text[:FIELD_PATH_MAX + 1]):
        size += _json_size(char)
        if size <= FIELD_PATH_MAX - 3:
            cut = end + 1  # the longest prefix that leaves room for the marker
        elif size > FIELD_PATH_MAX:
            return text[:cut] + "..."
    return text


def _path_field(path: tuple) -> str:
    """The dotted field of a path of keys (str) and list positions (int), cut by ``cut_field``.

    Paths stay tuples while the walk goes down and become text only for a problem, so a long key
    is neither copied per item below it nor repeated per problem.
    """
    parts: list[str] = []
    size = 0
    for segment in path:
        part = f"[{segment}]" if type(segment) is int else ("." if parts else "") + segment[:FIELD_PATH_MAX + 1]
        parts.append(part)
        size += len(part)
        if size > FIELD_PATH_MAX:
            break
    return cut_field("".join(parts))


def _check_plain_json(value: object, path: tuple, depth: int, problems: list[Problem]) -> None:
    """Values kept as they come must still re-encode as strict JSON and stay shallow.

    ``path`` is the value's place (see ``_path_field``). The walk stops once the event has more
    than MAX_EVENT_PROBLEMS problems.
    """
    if value is None or type(value) in (bool, int, str):
        if type(value) is str and not is_text(value):
            problems.append(Problem(_path_field(path), "invalid unicode (lone surrogate)"))
    elif type(value) is float:
        if not math.isfinite(value):
            problems.append(Problem(_path_field(path), "not a finite number"))
    elif depth >= CONTEXT_MAX_DEPTH:
        problems.append(Problem(_path_field(path), f"nested deeper than {CONTEXT_MAX_DEPTH} levels"))
    elif type(value) is list:
        for position, item in enumerate(value):
            if len(problems) > MAX_EVENT_PROBLEMS:
                return
            _check_plain_json(item, path + (position,), depth + 1, problems)
    elif type(value) is dict:
        for key, item in value.items():
            if len(problems) > MAX_EVENT_PROBLEMS:
                return
            if not is_text(key):
                problems.append(Problem(_path_field(path), "key with invalid unicode"))
                continue
            _check_plain_json(item, path + (key,), depth + 1, problems)
    else:
        problems.append(Problem(_path_field(path), "not a JSON value"))


def _check_sdk_text(value: object, field: str, problems: list[Problem]) -> None:
    _check_text(value, field, problems, max_len=_SDK_TEXT_MAX)


def _check_screen_dimension(value: object, field: str, problems: list[Problem]) -> None:
    if type(value) is not int or not 0 <= value <= _SCREEN_DIMENSION_MAX:
        problems.append(Problem(field, f"not an integer in 0..{_SCREEN_DIMENSION_MAX}"))


_SDK_TEXT_KEYS = {"name": _check_sdk_text, "version": _check_sdk_text}
_SCREEN_KEYS = {"width": _check_screen_dimension, "height": _check_screen_dimension}


def _check_known_keys(value: dict, name: str, checks: dict, problems: list[Problem]) -> None:
    """A context object (``context.<name>``) with some known keys (each null or passing its
    check); other keys are kept as plain JSON, one level down."""
    for key, item in value.items():
        if len(problems) > MAX_EVENT_PROBLEMS:
            return
        check = checks.get(key)
        if check is not None:
            if item is not None:
                check(item, f"context.{name}.{key}", problems)
        elif not is_text(key):
            problems.append(Problem(f"context.{name}", "key with invalid unicode"))
        else:
            _check_plain_json(item, ("context", name, key), 2, problems)


def _check_context(context: object, problems: list[Problem]) -> None:
    if type(context) is not dict:
        problems.append(Problem("context", "not an object"))
        return
    for key, value in context.items():
        if len(problems) > MAX_EVENT_PROBLEMS:
            return
        if not is_text(key):
            problems.append(Problem("context", "key with invalid unicode"))
            continue
        if value is None:
            continue
        limit = _CONTEXT_TEXT_LIMITS.get(key)
        if limit is not None:
            _check_text(value, f"context.{key}", problems, min_len=0, max_len=limit)
        elif key == "sdk" or key == "screen":
            if type(value) is not dict:
                problems.append(Problem(f"context.{key}", "not an object"))
                continue
            _check_known_keys(value, key, _SDK_TEXT_KEYS if key == "sdk" else _SCREEN_KEYS, problems)
        else:
            _check_plain_json(value, ("context", key), 1, problems)


def _check_properties(properties: object, problems: list[Problem]) -> None:
    if type(properties) is not dict:
        problems.append(Problem("properties", "not an object"))
        return
    if len(properties) > PROPERTIES_MAX_KEYS:
        problems.append(Problem("properties", f"more than {PROPERTIES_MAX_KEYS} keys"))
        return
    for key, value in properties.items():
        if not is_text(key) or not 1 <= len(key) <= PROPERTY_KEY_MAX:
            problems.append(Problem("properties", f"key not a 1-{PROPERTY_KEY_MAX} character string"))
            continue
        field = f"properties.{key}"  # cut when a problem echoes it
        kind = type(value)
        if kind is str:
            _check_text(value, field, problems, min_len=0, max_len=PROPERTY_VALUE_MAX)
        elif kind is float:
            if not math.isfinite(value):
                problems.append(Problem(cut_field(field), "not a finite number"))
        elif kind not in (int, bool):
            problems.append(Problem(cut_field(field), "not a string, number or boolean"))


def validate_event(obj: object) -> list[Problem]:
    """List the problems of one event as the SDK sent it (already parsed from JSON).

    ``[]`` means valid. Never raises for any value ``json.loads`` can return (including NaN,
    lone surrogates and deep nesting): every defect becomes a :class:`Problem`. Optional fields
    may be absent or null; unknown top-level fields are problems, unknown context keys are kept.

    Bounded for hostile input: time and memory linear in the event's size, at most
    MAX_EVENT_PROBLEMS problems listed (then one more, field '', saying that more were left
    out) and every field cut by :func:`cut_field`.
    """
    if type(obj) is not dict:
        return [Problem("", "event is not a JSON object")]
    problems: list[Problem] = []
    for key in obj:
        if key not in _EVENT_FIELD_SET:
            if len(problems) > MAX_EVENT_PROBLEMS:
                break
            problems.append(Problem(cut_field(key) if is_text(key) else "?", "unknown field"))
    for key in REQUIRED_FIELDS:
        if obj.get(key) is None:
            problems.append(Problem(key, "required"))

    event_id = obj.get("event_id")
    if event_id is not None:
        _check_text(event_id, "event_id", problems, max_len=EVENT_ID_MAX)
    event_type = obj.get("type")
    if event_type is not None and (type(event_type) is not str or event_type not in EVENT_TYPES):
        problems.append(Problem("type", "not one of " + ", ".join(EVENT_TYPES)))
    property_id = obj.get("property_id")
    if property_id is not None:
        _check_text(property_id, "property_id", problems, max_len=PROPERTY_ID_MAX)
    user_id = obj.get("user_id")
    if user_id is not None:
        _check_text(user_id, "user_id", problems, max_len=USER_ID_MAX)
    timestamp = obj.get("timestamp")
    if timestamp is not None:
        if type(timestamp) is not str:
            problems.append(Problem("timestamp", "not a string"))
        else:
            try:
                parse_timestamp(timestamp)
            except ValueError:
                problems.append(Problem("timestamp", "not RFC 3339"))

    push_token = obj.get("push_token")
    if push_token is not None:
        if not is_text(push_token):
            problems.append(Problem("push_token", "not a string"))
        elif not push_token:
            problems.append(Problem("push_token", "empty"))
        elif len(push_token.encode("utf-8")) > PUSH_TOKEN_MAX_BYTES:
            problems.append(Problem("push_token", f"longer than {PUSH_TOKEN_MAX_BYTES} bytes"))
    elif event_type == "subscribe":
        problems.append(Problem("push_token", "required for subscribe"))
    notification_id = obj.get("notification_id")
    if notification_id is not None:
        _check_text(notification_id, "notification_id", problems, max_len=NOTIFICATION_ID_MAX)
    elif event_type == "notification_click":
        problems.append(Problem("notification_id", "required for notification_click"))

    if obj.get("context") is not None:
        _check_context(obj["context"], problems)
    if obj.get("properties") is not None:
        _check_properties(obj["properties"], problems)
    if len(problems) > MAX_EVENT_PROBLEMS:
        del problems[MAX_EVENT_PROBLEMS:]
        problems.append(_MORE_PROBLEMS)
    return problems


_MORE_PROBLEMS = Problem("", f"more than {MAX_EVENT_PROBLEMS} problems; the first {MAX_EVENT_PROBLEMS} are listed")


def is_clock_skewed(event_time: datetime, now: datetime) -> bool:
    """True when the client time is more than 24 h ahead of or 30 days behind ``now``."""
    return event_time > now + CLOCK_SKEW_FUTURE or event_time < now - CLOCK_SKEW_PAST


def record_clock_skew(record: dict) -> bool:
    """A valid record's ``clock_skew`` as the ingest sets it: its event's time against its
    ``received_at`` (the ingest's ``now``, written to the millisecond)."""
    return is_clock_skewed(parse_timestamp(record["event"]["timestamp"]), parse_timestamp(record["received_at"]))


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


def validate_record(obj: object) -> list[Problem]:
    """Problems of a decoded v1 record (fields dotted from the record: ``event.timestamp``).

    The version is not checked here (see :func:`decode_record`). A field of
    DERIVED_RECORD_FIELDS may be absent (``decode_record`` derives it); unknown fields are problems.
    """
    if type(obj) is dict and _plainly_valid_record(obj):
        return []
    return _record_problems(obj)


_EVENT_TYPE_SET = frozenset(EVENT_TYPES)
_SDK_KEY_SET = frozenset(_SDK_TEXT_KEYS)


def _plainly_valid_record(obj: dict) -> bool:
    """True for a valid record of the usual shape, decided in one pass with few calls: ASCII
    text, the known context keys only. False means "look closer", not "invalid": then
    ``_record_problems`` decides. Nearly every record takes this path, where listing problems
    field by field cost three times as much. A property test holds it to ``_record_problems``.
    """
    if not (len(obj) == len(RECORD_FIELDS) or len(obj) == len(RECORD_FIELDS) - 1 and "clock_skew" not in obj) \
            or not _RECORD_FIELD_SET.issuperset(obj):
        return False
    client_id, ip, user_agent, event = obj["client_id"], obj["ip"], obj["user_agent"], obj["event"]
    if not (_is_ascii_text(client_id, 1, CLIENT_ID_MAX) and type(ip) is str and type(user_agent) is str
            and ip.isascii() and user_agent.isascii() and type(obj.get("clock_skew", False)) is bool
            and type(event) is dict and _EVENT_FIELD_SET.issuperset(event)):
        return False
    get = event.get
    event_type, push_token, notification_id = get("type"), get("push_token"), get("notification_id")
    if not (_is_ascii_text(get("event_id"), 1, EVENT_ID_MAX) and _is_ascii_text(get("property_id"), 1, PROPERTY_ID_MAX)
            and _is_ascii_text(get("user_id"), 1, USER_ID_MAX)
            and type(event_type) is str and event_type in _EVENT_TYPE_SET):
        return False
    if push_token is None:
        if event_type == "subscribe":
            return False
    elif not _is_ascii_text(push_token, 1, PUSH_TOKEN_MAX_BYTES):  # ASCII: characters are bytes
        return False
    if notification_id is None:
        if event_type == "notification_click":
            return False
    elif not _is_ascii_text(notification_id, 1, NOTIFICATION_ID_MAX):
        return False
    context = get("context")
    if context is not None:
        if type(context) is not dict:
            return False
        for key, value in context.items():
            if value is None:
                continue
            limit = _CONTEXT_TEXT_LIMITS.get(key)
            if limit is not None:
                if not _is_ascii_text(value, 0, limit):
                    return False
            elif key != "sdk" or type(value) is not dict or not _SDK_KEY_SET.issuperset(value):
                return False
            else:
                for text in value.values():
                    if text is not None and not _is_ascii_text(text, 1, _SDK_TEXT_MAX):
                        return False
    properties = get("properties")
    if properties is not None:
        if type(properties) is not dict or len(properties) > PROPERTIES_MAX_KEYS:
            return False
        for key, value in properties.items():
            kind = type(value)
            if not _is_ascii_text(key, 1, PROPERTY_KEY_MAX):
                return False
            if kind is str:
                if not (len(value) <= PROPERTY_VALUE_MAX and value.isascii()):
                    return False
            elif kind is float:
                if not math.isfinite(value):
                    return False
            elif kind is not int and kind is not bool:
                return False
    try:
        parse_timestamp(obj["received_at"])
        parse_timestamp(get("timestamp"))
    except ValueError:
        return False
    return True


def _record_problems(obj: object) -> list[Problem]:
    """``validate_record``, field by field."""
    if type(obj) is not dict:
        return [Problem("", "record is not a JSON object")]
    problems: list[Problem] = []
    for key in obj:
        if key not in _RECORD_FIELD_SET:
            problems.append(Problem(key if is_text(key) else "?", "unknown field"))
    for key in RECORD_FIELDS:
        if key not in obj and key not in DERIVED_RECORD_FIELDS:
            problems.append(Problem(key, "required"))
    if "client_id" in obj:
        _check_text(obj["client_id"], "client_id", problems, max_len=CLIENT_ID_MAX)
    if "received_at" in obj:
        try:
            parse_timestamp(obj["received_at"])
        except ValueError:
            problems.append(Problem("received_at", "not RFC 3339"))
    for key in ("ip", "user_agent"):
        if key in obj and not is_text(obj[key]):
            problems.append(Problem(key, "not a string"))
    if "clock_skew" in obj and type(obj["clock_skew"]) is not bool:
        problems.append(Problem("clock_skew", "not a boolean"))
    if "event" in obj:
        for problem in validate_event(obj["event"]):
            field = f"event.{problem.field}" if problem.field else "event"
            problems.append(Problem(field, problem.problem))
    return problems


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
