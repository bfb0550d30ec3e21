"""Hostile ids and tokens: stored exactly as sent, or (NUL, which PostgreSQL text cannot hold)
refused by name before anything is written."""

from __future__ import annotations

import pytest

from pistats.contract import PROPERTY_ID_MAX, PUSH_TOKEN_MAX_BYTES, USER_ID_MAX, validate_event
from pistats.registry.store import InvalidMark
from tests.integration.registry.conftest import RECEIVED, delete_client

HOSTILE = [
    "o'brien", 'say "hi"', "back\\slash", "'; DROP TABLE subscribers; --", "%s %(x)s {0}", "a\nb\tc\r",
    "\x01\x1f\x7f", "\u202eevil\u202c", "😀" * USER_ID_MAX, "x" * USER_ID_MAX, "é" * USER_ID_MAX, " ", "ß",
]
TOKENS = ["t" * PUSH_TOKEN_MAX_BYTES, "😀" * (PUSH_TOKEN_MAX_BYTES // 4), "tok'en\"\\", "\u2028"]


def event(kind, user, token=None, property_id="site-1", n="1", second="00"):
    e = {"event_id": f"e-{n}", "type": kind, "property_id": property_id, "user_id": user,
         "timestamp": f"2026-11-26T11:00:{second}Z", "context": {"locale": user[:64], "timezone": user[-64:]}}
    if token is not None:
        e["push_token"] = token
    assert validate_event(e) == [], "the contract accepts it: the registry must store it"
    return e


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_ids_are_stored_exactly(registry, rows, client_id, value):
    property_id = value[:PROPERTY_ID_MAX]
    registry.write(client_id, [event("register", value, property_id=property_id),
                               event("subscribe", value, token=value, property_id=property_id, n="2")], RECEIVED)
    subscribers, subscriptions = rows()
    assert list(subscribers) == [(property_id, value)]
    assert subscribers[(property_id, value)]["locale"] == value[:64]
    assert subscriptions[(property_id, value)]["user_id"] == value
    (shown,) = registry.subscriber(client_id, value)[1]
    assert shown.user_id == value and shown.property_id == property_id


@pytest.mark.parametrize("token", TOKENS, ids=["4096-ascii", "4096-emoji", "quotes", "line-separator"])
def test_hostile_tokens_up_to_the_contract_limit_are_stored_exactly(registry, rows, client_id, token):
    registry.write(client_id, [event("subscribe", "u-1", token=token)], RECEIVED)
    registry.write(client_id, [event("unsubscribe", "u-1", token=token, n="2", second="01")], RECEIVED)
    ((_, stored),) = rows()[1].keys()
    assert stored == token
    assert rows()[1][("site-1", token)]["status"] == "unsubscribed"
    registry.mark_invalid([InvalidMark(client_id, "site-1", token, "gone", RECEIVED)])
    assert rows()[1][("site-1", token)]["status"] == "invalid"


def test_a_client_id_from_a_hostile_write_key_is_stored_exactly(registry, rows, unique_name, registry_url):
    client_id = f"{unique_name}'\"😀"
    try:
        registry.write(client_id, [event("subscribe", "u-1", token="t")], RECEIVED)
        assert list(rows(client_id)[1]) == [("site-1", "t")]
    finally:
        delete_client(registry_url, client_id)


@pytest.mark.parametrize("field", ["user_id", "property_id", "push_token"])
def test_nul_is_refused_before_anything_is_written(registry, rows, client_id, field):
    events = [event("register", "u-0", n="0"), {**event("subscribe", "u-1", token="t"), field: "a\x00b"}]
    with pytest.raises(ValueError, match="U\\+0000"):
        registry.write(client_id, events, RECEIVED)
    assert rows() == ({}, {})
