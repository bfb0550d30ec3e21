"""From validated events to the registry changes of one request, pure.

:func:`plan` folds the registry events of a request (``register``, ``subscribe``,
``unsubscribe``; page views and clicks write nothing) into at most one change per subscriber
and one per token, merged by the rules of :mod:`pistats.registry.rules`. Merging first is what
lets a batch of 100 events be written by one statement per table: a statement may not touch a
row twice, and merging registers is the same as applying them one by one.

PostgreSQL ``text`` cannot hold U+0000 (NUL), which the event contract allows in ids, tokens and
context strings: :func:`registry_problems` refuses such an event (it becomes ``invalid`` with a
problem naming the field) rather than storing something else than was sent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from pistats.contract import CLOCK_SKEW_FUTURE, Problem, parse_timestamp
from pistats.registry.rules import (
    ACTIVE,
    UNSUBSCRIBED,
    Context,
    Owner,
    TokenState,
    context_key,
    earliest,
    latest,
    newest,
    owner_key,
    state_key,
)

REGISTRY_EVENT_TYPES = frozenset({"register", "subscribe", "unsubscribe"})

_NUL_PROBLEM = "contains U+0000 (NUL), which the subscriber registry cannot store"


def registry_problems(client_id: str, event: dict) -> list[Problem]:
    """Why a *valid* event cannot be written to the registry ([] if it can or need not be)."""
    if event.get("type") not in REGISTRY_EVENT_TYPES:
        return []
    problems = []
    if "\x00" in client_id:
        problems.append(Problem("", "the write key's client id " + _NUL_PROBLEM))
    for name in ("property_id", "user_id", "push_token"):
        value = event.get(name)
        if type(value) is str and "\x00" in value:
            problems.append(Problem(name, _NUL_PROBLEM))
    context = event.get("context")
    if type(context) is dict:
        for key in ("locale", "timezone"):
            value = context.get(key)
            if type(value) is str and "\x00" in value:
                problems.append(Problem(f"context.{key}", _NUL_PROBLEM))
    return problems


def platform_of(event: dict) -> str:
    """``web``, ``android``, ``ios`` or ``unknown``, from ``context.sdk.name`` (pistats-js,
    pistats-android, pistats-ios, or a name that says as much)."""
    context = event.get("context")
    sdk = context.get("sdk") if type(context) is dict else None
    name = sdk.get("name") if type(sdk) is dict else None
    if type(name) is not str:
        return "unknown"
    name = name.lower()
    if "android" in name:
        return "android"
    if "ios" in name or "iphone" in name or "swift" in name:
        return "ios"
    if "js" in name or "web" in name or "browser" in name:
        return "web"
    return "unknown"


_fromisoformat = datetime.fromisoformat


def event_time(event: dict, received_at: datetime) -> datetime:
    """The event's own time, but no later than the contract's clock-skew bound after receipt:
    a device clock years ahead could otherwise pin a subscription against every later change.

    The event is valid, so parse_timestamp accepted its timestamp already: the usual shape
    (``...T...Z``) is read by datetime.fromisoformat without parse_timestamp's pattern check,
    which is what parse_timestamp itself returns for it (a third of plan()'s time went to
    matching the pattern again)."""
    return _event_time(event, received_at + CLOCK_SKEW_FUTURE)


def _event_time(event: dict, latest_allowed: datetime) -> datetime:
    """event_time, with the bound computed once per request by the caller."""
    text = event["timestamp"]
    moment = None
    if text[-1] == "Z" and text[10] == "T":
        try:
            moment = _fromisoformat(text)
        except ValueError:
            pass
    if moment is None:
        moment = parse_timestamp(text)
    return moment if moment <= latest_allowed else latest_allowed


def token_digest(token: str) -> bytes:
    """SHA-256 of the token's UTF-8: the key tokens are unique by (a 4 KiB token does not fit a
    btree entry) and what is shown instead of a token."""
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True)
class SubscriberChange:
    client_id: str
    property_id: str
    user_id: str
    first_seen_at: datetime
    last_seen_at: datetime
    registered_at: datetime | None = None
    context: Context | None = None
    unsubscribed_at: datetime | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.client_id, self.property_id, self.user_id)


@dataclass(frozen=True)
class SubscriptionChange:
    client_id: str
    property_id: str
    token: str
    owner: Owner
    state: TokenState
    digest: bytes = field(default=b"", repr=False)  # token_digest(token), filled in by plan()

    @property
    def key(self) -> tuple[str, str, bytes]:
        return (self.client_id, self.property_id, self.digest or token_digest(self.token))


@dataclass(frozen=True)
class Plan:
    """One request's registry changes, each list sorted by its key (rows are locked in that
    order, so two writers never wait on each other in a cycle)."""

    subscribers: tuple[SubscriberChange, ...]
    subscriptions: tuple[SubscriptionChange, ...]

    @property
    def unsubscribed_users(self) -> tuple[SubscriberChange, ...]:
        """Subscribers with an unsubscribe-all in this plan."""
        return tuple(s for s in self.subscribers if s.unsubscribed_at is not None)

    def __bool__(self) -> bool:
        return bool(self.subscribers)


def plan(client_id: str, events, received_at: datetime) -> Plan:
    """The merged changes of ``events`` (valid events of one client, any types, any order).

    Each subscriber and token is a list of registers while the events are folded in (the
    ingest's hot path: building a frozen change per event and merging them cost twice as much).
    """
    # key -> [first_seen_at, last_seen_at, registered_at, context, unsubscribed_at]
    subscribers: dict[tuple, list] = {}
    # key -> [token, owner, state]
    subscriptions: dict[tuple, list] = {}
    latest_allowed = received_at + CLOCK_SKEW_FUTURE
    for event in events:
        kind = event.get("type")
        if kind not in REGISTRY_EVENT_TYPES:
            continue
        at = _event_time(event, latest_allowed)
        property_id, user_id = event["property_id"], event["user_id"]
        context = event.get("context")
        if type(context) is dict:
            locale, timezone = context.get("locale") or None, context.get("timezone") or None
            context = Context(at, locale, timezone) if locale or timezone else None
        else:
            context = None
        token = event.get("push_token")
        unsubscribe_all = kind == "unsubscribe" and not token
        key = (client_id, property_id, user_id)
        row = subscribers.get(key)
        if row is None:
            subscribers[key] = [at, at, at if kind == "register" else None, context, at if unsubscribe_all else None]
        else:
            if at < row[0]:
                row[0] = at
            if at > row[1]:
                row[1] = at
            if kind == "register":
                row[2] = earliest(row[2], at)
            if context is not None:
                row[3] = newest(row[3], context, context_key)
            if unsubscribe_all:
                row[4] = latest(row[4], at)
        if kind == "register" or unsubscribe_all:
            continue
        if kind == "subscribe":
            owner, state = Owner(user_id, platform_of(event), at), TokenState(ACTIVE, at)
        else:
            owner, state = Owner(user_id, platform_of(event), None), TokenState(UNSUBSCRIBED, at)
        key = (client_id, property_id, token_digest(token))
        row = subscriptions.get(key)
        if row is None:
            subscriptions[key] = [token, owner, state]
        else:
            row[1] = newest(row[1], owner, owner_key)
            row[2] = newest(row[2], state, state_key)
    return Plan(
        tuple(SubscriberChange(*key, first, last, registered, context, unsubscribed)
              for key, (first, last, registered, context, unsubscribed) in sorted(subscribers.items())),
        tuple(SubscriptionChange(key[0], key[1], token, owner, state, key[2])
              for key, (token, owner, state) in sorted(subscriptions.items())),
    )


def changes_of(client_id: str, event: dict, received_at: datetime) -> tuple[SubscriberChange | None,
                                                                          SubscriptionChange | None]:
    """The registry changes of one valid event (None, None for page views and clicks)."""
    changes = plan(client_id, [event], received_at)
    return (changes.subscribers[0] if changes.subscribers else None,
            changes.subscriptions[0] if changes.subscriptions else None)
