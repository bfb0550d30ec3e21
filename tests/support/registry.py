"""Two independent descriptions of what the registry must hold, for tests.

- :func:`expected` folds every change with the pure rules (pistats.registry.rules): the result
  the SQL must reach whatever the arrival order and batching.
- :func:`replay_in_time_order` is the issue's semantics written literally: take the events in
  event-time order (distinct times) and apply each one imperatively. It shares no code with
  the rules, so agreeing with it is evidence that the registers say what the issue says.

Both return ``(subscribers, subscriptions)``: dicts keyed by (property, user) and (property,
token) holding the fields other services read.
"""

from __future__ import annotations

from datetime import datetime

from pistats.contract import parse_timestamp
from pistats.registry.changes import platform_of, plan
from pistats.registry.rules import INVALID, TokenState, effective_status, newest, state_key


def subscriber_view(registered_at, first_seen_at, last_seen_at, locale, timezone, unsubscribed_at) -> dict:
    return {"registered_at": registered_at, "first_seen_at": first_seen_at, "last_seen_at": last_seen_at,
            "locale": locale, "timezone": timezone, "unsubscribed_at": unsubscribed_at}


def subscription_view(user_id, platform, status, status_changed_at, last_error) -> dict:
    return {"user_id": user_id, "platform": platform, "status": status, "status_changed_at": status_changed_at,
            "last_error": last_error}


def expected(client_id: str, events, received_at: datetime, marks=()) -> tuple[dict, dict]:
    """The registry after every event and invalid mark ``(property, token, error, at)``; marks
    of tokens no event names are ignored, as the store ignores marks of unknown tokens."""
    merged = plan(client_id, events, received_at)
    subscribers = {(s.property_id, s.user_id): s for s in merged.subscribers}
    subscriptions = {}
    for change in merged.subscriptions:
        state = change.state
        for property_id, token, error, at in marks:
            if (property_id, token) == (change.property_id, change.token):
                state = newest(state, TokenState(INVALID, at, error), state_key)
        owner_unsubscribed_at = subscribers[(change.property_id, change.owner.user_id)].unsubscribed_at
        status, changed_at = effective_status(state, owner_unsubscribed_at)
        subscriptions[(change.property_id, change.token)] = subscription_view(
            change.owner.user_id, change.owner.platform, status, changed_at, state.last_error)
    return (
        {key: subscriber_view(s.registered_at, s.first_seen_at, s.last_seen_at,
                              s.context.locale if s.context else None, s.context.timezone if s.context else None,
                              s.unsubscribed_at)
         for key, s in subscribers.items()},
        subscriptions,
    )


def replay_in_time_order(events, marks=()) -> tuple[dict, dict]:
    """The issue's rules applied one event at a time in event-time order (times must be distinct).

    register upserts the subscriber; subscribe (re)activates the token for its user, moving it
    from another; unsubscribe with a token unsubscribes it (a token not seen yet is remembered
    as unsubscribed, by the user who said so); without a token, every token the user owns; an
    invalid mark sets a known token invalid with its error.
    """
    steps = [(parse_timestamp(e["timestamp"]), "event", e) for e in events]
    steps += [(at, "mark", (property_id, token, error)) for property_id, token, error, at in marks]
    steps.sort(key=lambda step: step[0])
    assert len({step[0] for step in steps}) == len(steps), "replay_in_time_order needs distinct times"
    subscribers: dict = {}
    tokens: dict = {}  # (property, token) -> dict(user_id, platform, subscribed, status, at, last_error)
    for at, kind, item in steps:
        if kind == "mark":
            property_id, token, error = item
            if (property_id, token) in tokens:
                tokens[(property_id, token)].update(status=INVALID, at=at, last_error=error)
            continue
        event = item
        if event["type"] not in ("register", "subscribe", "unsubscribe"):
            continue
        key = (event["property_id"], event["user_id"])
        row = subscribers.setdefault(key, subscriber_view(None, at, at, None, None, None))
        row["first_seen_at"], row["last_seen_at"] = min(row["first_seen_at"], at), max(row["last_seen_at"], at)
        context = event.get("context") or {}
        if context.get("locale") or context.get("timezone"):
            row["locale"], row["timezone"] = context.get("locale") or None, context.get("timezone") or None
        token = event.get("push_token")
        if event["type"] == "register" and row["registered_at"] is None:
            row["registered_at"] = at
        elif event["type"] == "subscribe":
            tokens[(event["property_id"], token)] = {"user_id": event["user_id"], "platform": platform_of(event),
                                                     "subscribed": True, "status": "active", "at": at,
                                                     "last_error": None}
        elif event["type"] == "unsubscribe" and token:
            known = tokens.get((event["property_id"], token))
            if known is None:
                tokens[(event["property_id"], token)] = {"user_id": event["user_id"], "platform": platform_of(event),
                                                         "subscribed": False, "status": "unsubscribed", "at": at,
                                                         "last_error": None}
            else:
                if not known["subscribed"] and (event["user_id"], platform_of(event)) > (known["user_id"],
                                                                                         known["platform"]):
                    known.update(user_id=event["user_id"], platform=platform_of(event))
                known.update(status="unsubscribed", at=at, last_error=None)
        elif event["type"] == "unsubscribe":
            row["unsubscribed_at"] = at
            for (property_id, _), known in tokens.items():
                if property_id == event["property_id"] and known["user_id"] == event["user_id"]:
                    # The token's own error stays: the registry keeps it until the token's own state changes.
                    known.update(status="unsubscribed", at=at)
    return subscribers, {key: subscription_view(t["user_id"], t["platform"], t["status"], t["at"], t["last_error"])
                         for key, t in tokens.items()}

