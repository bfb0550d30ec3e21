"""The rule: every problem of an event or a record, field by field.

:func:`validate_event` checks an event as an SDK sent it and :func:`record_problems` a decoded
v1 record, each listing every problem as a :class:`~pistats.contract.schema.Problem` and never
raising. :func:`validate_record` asks the fast path (``pistats.contract.fast``) first: it says
"valid" for nearly every record at a third of the cost, and this rule decides every other one.
"""

from __future__ import annotations

import math

from pistats.contract.fast import plainly_valid_record
from pistats.contract.schema import (
    CLIENT_ID_MAX,
    CONTEXT_MAX_DEPTH,
    CONTEXT_TEXT_LIMITS,
    DERIVED_RECORD_FIELDS,
    EVENT_FIELD_SET,
    EVENT_ID_MAX,
    EVENT_TYPES,
    FIELD_PATH_MAX,
    MAX_EVENT_PROBLEMS,
    NOTIFICATION_ID_MAX,
    PROPERTIES_MAX_KEYS,
    PROPERTY_ID_MAX,
    PROPERTY_KEY_MAX,
    PROPERTY_VALUE_MAX,
    PUSH_TOKEN_MAX_BYTES,
    RECORD_FIELD_SET,
    RECORD_FIELDS,
    REQUIRED_FIELDS,
    SCREEN_DIMENSION_MAX,
    SCREEN_KEYS,
    SDK_KEYS,
    SDK_TEXT_MAX,
    USER_ID_MAX,
    Problem,
    is_ascii_text,
    is_text,
)
from pistats.contract.timestamps import parse_timestamp


def _check_text(value: object, field: str, problems: list[Problem], *, min_len=1, max_len: int) -> None:
    """``field`` is short (a property key at most): it is cut only when a problem echoes it."""
    if is_ascii_text(value, min_len, max_len):
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
    _check_text(value, field, problems, max_len=SDK_TEXT_MAX)


def _check_screen_dimension(value: object, field: str, problems: list[Problem]) -> None:
    if type(value) is not int or not 0 <= value <= SCREEN_DIMENSION_MAX:
        problems.append(Problem(field, f"not an integer in 0..{SCREEN_DIMENSION_MAX}"))


# CPython compiles a method call on an imported name as an attribute load and a call (it takes
# such names for modules), without the faster LOAD_METHOD: on this hot path that cost 5-10%, so
# the methods it calls on imported limits are bound once here.
_context_text_limit = CONTEXT_TEXT_LIMITS.get
_SDK_TEXT_KEYS = dict.fromkeys(SDK_KEYS, _check_sdk_text)
_SCREEN_KEYS = dict.fromkeys(SCREEN_KEYS, _check_screen_dimension)


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
        limit = _context_text_limit(key)
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
        if key not in EVENT_FIELD_SET:
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


def record_problems(obj: object) -> list[Problem]:
    """``validate_record``, field by field."""
    if type(obj) is not dict:
        return [Problem("", "record is not a JSON object")]
    problems: list[Problem] = []
    for key in obj:
        if key not in RECORD_FIELD_SET:
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


def validate_record(obj: object) -> list[Problem]:
    """Problems of a decoded v1 record (fields dotted from the record: ``event.timestamp``).

    The version is not checked here (see ``decode_record``). A field of DERIVED_RECORD_FIELDS
    may be absent (``decode_record`` derives it); unknown fields are problems. The fast path
    answers for a record of the usual shape, :func:`record_problems` for every other.
    """
    if type(obj) is dict and plainly_valid_record(obj):
        return []
    return record_problems(obj)
