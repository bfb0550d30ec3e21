"""Hostile request bodies for the ingest: the worst cases for the size of the answer.

Each builder returns the raw body (bytes, at most ``MAX_BODY_BYTES``). The cases: long keys,
nesting down to the depth limit with a long key at every level, many events each with many
problems, long non-ASCII field names, many unknown fields, long event ids.
"""

from __future__ import annotations

import json

from pistats.contract import CONTEXT_MAX_DEPTH, EVENT_ID_MAX, MAX_BATCH_EVENTS, MAX_BODY_BYTES, PROPERTIES_MAX_KEYS

VALID = {"event_id": "e-1", "type": "page_view", "property_id": "site-1", "user_id": "u-1",
         "timestamp": "2026-11-26T12:00:00Z"}
HEAD = json.dumps(VALID, separators=(",", ":"))[:-1]  # '{"event_id":...' without its closing brace
BAD = "1e999"  # parses as an infinite float: one problem for 6 bytes of body


def _bad_list(count: int) -> str:
    return "[" + ",".join([BAD] * count) + "]"


def _fill(size: int, overhead: int) -> int:
    """How many ``1e999,`` fit in ``size`` bytes after ``overhead``."""
    return max(1, (size - overhead) // (len(BAD) + 1))


def the_issue_case() -> bytes:
    """Issue 13: one 38 KB event, a 20,000-character context key holding 3,000 infinities."""
    return f'{HEAD},"context":{{"{"k" * 20_000}":{_bad_list(3000)}}}}}'.encode()


def long_key_at_the_limit(key_share: float = 0.5) -> bytes:
    """One event filling the body: a long key, then infinities in the rest."""
    key = "k" * int(MAX_BODY_BYTES * key_share)
    overhead = len(HEAD) + len(key) + 40
    return f'{HEAD},"context":{{"{key}":{_bad_list(_fill(MAX_BODY_BYTES, overhead))}}}}}'.encode()


def deep_long_keys() -> bytes:
    """Nesting down to the limit and past it, a 50,000-character key at every level, each level
    also holding infinities."""
    key_len = 50_000
    levels = CONTEXT_MAX_DEPTH + 2
    count = _fill(MAX_BODY_BYTES - levels * (key_len + 20), len(HEAD) + 40) // (levels + 1)
    inner = _bad_list(count)
    for level in reversed(range(levels)):
        inner = f'{{"{chr(ord("a") + level) * key_len}":{inner},"x":{_bad_list(count)}}}'
    return f'{HEAD},"context":{inner}}}'.encode()


def many_events_many_problems() -> bytes:
    """A full batch; each event has long unknown fields, long keys and infinities."""
    share = (MAX_BODY_BYTES - 20) // MAX_BATCH_EVENTS
    unknown = ",".join(f'"{n}{"u" * 400}":1' for n in range(5))
    overhead = len(unknown) + 1000 + 40
    event = f'{{{unknown},"context":{{"{"k" * 1000}":{_bad_list(_fill(share, overhead))}}}}}'
    return ('{"batch":[' + ",".join([event] * MAX_BATCH_EVENTS) + "]}").encode()


def non_ascii_names() -> bytes:
    """A full batch, each event with long astral and control-character keys (the costliest
    characters in JSON) holding infinities, and 50 such property keys with bad values."""
    share = (MAX_BODY_BYTES - 20) // MAX_BATCH_EVENTS
    key = "😀" * 300
    control = "\\u0001" * 100
    props = ",".join(f'"{n}{"😀" * 127}":[1]' for n in range(PROPERTIES_MAX_KEYS // 10))
    head = f'{HEAD},"properties":{{{props}}},"context":{{"{control}":{_bad_list(3)},'
    overhead = len(head.encode()) + len(key.encode()) + 60
    event = f'{head}"{key}":{_bad_list(_fill(share, overhead))}}}}}'
    return ('{"batch":[' + ",".join([event] * MAX_BATCH_EVENTS) + "]}").encode()


def _short_fields(size: int, limit: int) -> str:
    """``"0":0,"1":0,...``: as many short fields as keep ``size`` (the body so far) below ``limit``."""
    fields = []
    n = 0
    while size < limit:
        fields.append(f'"{n}":0')
        size += len(fields[-1]) + 1
        n += 1
    return ",".join(fields)


def many_unknown_fields() -> bytes:
    """One event of nothing but short unknown top-level fields."""
    return ("{" + _short_fields(2, MAX_BODY_BYTES - 20) + "}").encode()


def many_fields_next_to_batch() -> bytes:
    return ('{"batch":[{}],' + _short_fields(20, MAX_BODY_BYTES - 40) + "}").encode()


def long_event_ids() -> bytes:
    """A full batch of invalid events whose ids are the longest valid ones, in astral characters
    (4 bytes each, 12 if escaped), and one event with a huge invalid id."""
    events = [{"event_id": "😀" * EVENT_ID_MAX} for _ in range(MAX_BATCH_EVENTS - 1)]
    body = json.dumps({"batch": events}, ensure_ascii=False)
    huge = "x" * (MAX_BODY_BYTES - len(body.encode()) - 40)
    return json.dumps({"batch": events + [{"event_id": huge}]}, ensure_ascii=False).encode()


def minimal_events() -> bytes:
    """A full batch of empty events: five problems each for three bytes."""
    return ('{"batch":[' + ",".join(["{}"] * MAX_BATCH_EVENTS) + "]}").encode()


def problems_at_the_cut() -> bytes:
    """A full batch of small events, each with more problems than are listed, every field just
    under the cut."""
    event = f'{{"context":{{"{"k" * 88}":{_bad_list(11)}}}}}'
    return ('{"batch":[' + ",".join([event] * MAX_BATCH_EVENTS) + "]}").encode()


def small_event_many_problems() -> bytes:
    """One small event with as many problems per byte as it gets: unknown one-character fields."""
    return ("{" + ",".join(f'"{chr(ord("a") + n)}":0' for n in range(26)) + "}").encode()


CASES = {
    "the_issue_case": the_issue_case,
    "long_key_at_the_limit": long_key_at_the_limit,
    "deep_long_keys": deep_long_keys,
    "many_events_many_problems": many_events_many_problems,
    "non_ascii_names": non_ascii_names,
    "many_unknown_fields": many_unknown_fields,
    "many_fields_next_to_batch": many_fields_next_to_batch,
    "long_event_ids": long_event_ids,
    "minimal_events": minimal_events,
    "problems_at_the_cut": problems_at_the_cut,
    "small_event_many_problems": small_event_many_problems,
}
