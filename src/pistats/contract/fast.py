"""The fast path of record validation: "valid" for a record of the usual shape, in one pass.

:func:`plainly_valid_record` returns True only for a record the rule
(``pistats.contract.validation.record_problems``) finds no problem in, and False for anything it
does not look at closely: ASCII text only, the known context keys only (``sdk`` and ``screen``
with their known keys only). False means "look closer", never "invalid"; ``validate_record``
then asks the rule.

Held to the rule by the property tests ``test_fast_path_never_passes_a_record_the_full_check_faults``
(records with odd values at every place the contract limits) and
``test_both_paths_accept_a_usual_record_with_or_without_clock_skew`` in tests/unit/test_contract.py.
A check added to the rule that this path does not repeat makes the first fail; make this path
decline such a record rather than decide it.
"""

from __future__ import annotations

import math

from pistats.contract.schema import (
    CLIENT_ID_MAX, CONTEXT_TEXT_LIMITS, EVENT_FIELD_SET, EVENT_ID_MAX, EVENT_TYPE_SET, NOTIFICATION_ID_MAX,
    PROPERTIES_MAX_KEYS, PROPERTY_ID_MAX, PROPERTY_KEY_MAX, PROPERTY_VALUE_MAX, PUSH_TOKEN_MAX_BYTES,
    RECORD_FIELD_SET, RECORD_FIELDS, SCREEN_DIMENSION_MAX, SCREEN_KEYS, SDK_KEYS, SDK_TEXT_MAX, USER_ID_MAX,
    is_ascii_text,
)
from pistats.contract.timestamps import parse_timestamp

_SDK_KEYS = frozenset(SDK_KEYS)
_SCREEN_KEYS = frozenset(SCREEN_KEYS)
# CPython compiles a method call on an imported name as an attribute load and a call (it takes
# such names for modules), without the faster LOAD_METHOD: on this hot path that cost 5-10%, so
# the methods it calls on imported limits are bound once here.
_only_record_fields = RECORD_FIELD_SET.issuperset
_only_event_fields = EVENT_FIELD_SET.issuperset
_context_text_limit = CONTEXT_TEXT_LIMITS.get


def plainly_valid_record(obj: dict) -> bool:
    """True for a valid record of the usual shape, decided in one pass with few calls: ASCII
    text, the known context keys only. False means "look closer", not "invalid": then
    ``record_problems`` decides. Nearly every record takes this path, where listing problems
    field by field cost three times as much.
    """
    if not (len(obj) == len(RECORD_FIELDS) or len(obj) == len(RECORD_FIELDS) - 1 and "clock_skew" not in obj) \
            or not _only_record_fields(obj):
        return False
    client_id, ip, user_agent, event = obj["client_id"], obj["ip"], obj["user_agent"], obj["event"]
    if not (is_ascii_text(client_id, 1, CLIENT_ID_MAX) and type(ip) is str and type(user_agent) is str
            and ip.isascii() and user_agent.isascii() and type(obj.get("clock_skew", False)) is bool
            and type(event) is dict and _only_event_fields(event)):
        return False
    get = event.get
    event_type, push_token, notification_id = get("type"), get("push_token"), get("notification_id")
    if not (is_ascii_text(get("event_id"), 1, EVENT_ID_MAX) and is_ascii_text(get("property_id"), 1, PROPERTY_ID_MAX)
            and is_ascii_text(get("user_id"), 1, USER_ID_MAX)
            and type(event_type) is str and event_type in EVENT_TYPE_SET):
        return False
    if push_token is None:
        if event_type == "subscribe":
            return False
    elif not is_ascii_text(push_token, 1, PUSH_TOKEN_MAX_BYTES):  # ASCII: characters are bytes
        return False
    if notification_id is None:
        if event_type == "notification_click":
            return False
    elif not is_ascii_text(notification_id, 1, NOTIFICATION_ID_MAX):
        return False
    context = get("context")
    if context is not None:
        if type(context) is not dict:
            return False
        for key, value in context.items():
            if value is None:
                continue
            limit = _context_text_limit(key)
            if limit is not None:
                if not is_ascii_text(value, 0, limit):
                    return False
            elif type(value) is not dict:
                return False
            elif key == "sdk" and _SDK_KEYS.issuperset(value):
                for text in value.values():
                    if text is not None and not is_ascii_text(text, 1, SDK_TEXT_MAX):
                        return False
            elif key == "screen" and _SCREEN_KEYS.issuperset(value):
                # Most SDKs send the screen: declining it sent four records in five to the rule.
                for dimension in value.values():
                    if dimension is not None and (type(dimension) is not int
                                                  or not 0 <= dimension <= SCREEN_DIMENSION_MAX):
                        return False
            else:
                return False
    properties = get("properties")
    if properties is not None:
        if type(properties) is not dict or len(properties) > PROPERTIES_MAX_KEYS:
            return False
        for key, value in properties.items():
            kind = type(value)
            if not is_ascii_text(key, 1, PROPERTY_KEY_MAX):
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
