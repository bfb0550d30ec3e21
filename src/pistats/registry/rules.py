"""The registry's rules, pure: which change wins, and what a push subscription's status is.

Every field the ingest writes is a *register* that keeps the greatest change it has seen in a
total order whose first key is the event time (see docs/registry.md). A change applies only if
it is greater than what the row holds, so the outcome depends on the set of changes, never on
the order they arrive in: a client's late retry of an old ``subscribe`` cannot resurrect a token
unsubscribed since, and two ingest workers racing on one row agree.

- A token's own state (``token_status``, ``token_status_at``, ``last_error``): set by
  ``subscribe`` (active), ``unsubscribe`` with that token (unsubscribed) and the push sender's
  invalid mark (invalid). Ordered by :func:`state_key`.
- A token's owner (``user_id``, ``platform``, ``owner_changed_at``): set by ``subscribe``; an
  ``unsubscribe`` of a token never seen before names a provisional owner with no time, which any
  subscribe replaces. Ordered by :func:`owner_key`.
- A subscriber's newest ``unsubscribe`` without a token (``subscribers.unsubscribed_at``): the
  greatest such event time. It unsubscribes the tokens the user owned at that time; as the
  user keeps owning a token from their latest subscribe of it on, that is every token they own
  now whose own state is not newer (:func:`effective_status`).

The SQL of :mod:`pistats.registry.store` mirrors these functions (``ON CONFLICT ... DO UPDATE ...
WHERE`` compares the same keys, a generated column computes :func:`effective_status`); a
property test holds the two together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

ACTIVE, INVALID, UNSUBSCRIBED = "active", "invalid", "unsubscribed"
# At one event time the later status in this tuple wins: an opt-out or a failure seen at the
# same instant as a subscribe is not overridden by it.
STATUSES = (ACTIVE, INVALID, UNSUBSCRIBED)
PLATFORMS = ("web", "android", "ios", "unknown")
_RANK = {status: rank for rank, status in enumerate(STATUSES)}


@dataclass(frozen=True)
class TokenState:
    """A token's own newest change: ``last_error`` only with ``invalid``."""

    status: str
    at: datetime
    last_error: str | None = None


@dataclass(frozen=True)
class Owner:
    """Who a token belongs to; ``at`` is None when it is known only from an unsubscribe."""

    user_id: str
    platform: str
    at: datetime | None


def state_key(state: TokenState) -> tuple:
    """Event time; then unsubscribed > invalid > active; then the error text (code point order,
    as SQL's ``COLLATE "C"``), so equal keys mean equal states."""
    return (state.at, _RANK[state.status], state.last_error or "")


def owner_key(owner: Owner) -> tuple:
    """A subscribe's time (any beats none); then user id, then platform, in code point order."""
    return (owner.at is not None, owner.at or datetime.min, owner.user_id, owner.platform)


def applies(current: TokenState | None, change: TokenState) -> bool:
    """Whether ``change`` replaces ``current``: it must be greater in :func:`state_key` order,
    i.e. not older by event time, with ties broken by status rank and then error text. An
    equal change is a replay and does not apply (nothing to write)."""
    return current is None or state_key(change) > state_key(current)


def owner_applies(current: Owner | None, change: Owner) -> bool:
    """Whether ``change`` takes the token over, in :func:`owner_key` order (equal: a replay)."""
    return current is None or owner_key(change) > owner_key(current)


def newest(a, b, key):
    """The greater of two register values under ``key``; None is the least."""
    if a is None:
        return b
    if b is None:
        return a
    return b if key(b) > key(a) else a


def effective_status(state: TokenState, owner_unsubscribed_at: datetime | None) -> tuple[str, datetime]:
    """(status, status_changed_at) of a subscription: its own state, unless its owner's newest
    unsubscribe-all is not older than that state (a tie goes to the unsubscribe, as in
    :data:`STATUSES`)."""
    if owner_unsubscribed_at is not None and owner_unsubscribed_at >= state.at:
        return UNSUBSCRIBED, owner_unsubscribed_at
    return state.status, state.at


@dataclass(frozen=True)
class Context:
    """``locale`` and ``timezone`` of the newest event carrying either (both as that event sent
    them; an empty string counts as absent)."""

    at: datetime
    locale: str | None
    timezone: str | None


def context_key(context: Context) -> tuple:
    return (context.at, context.locale or "", context.timezone or "")


def earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)
