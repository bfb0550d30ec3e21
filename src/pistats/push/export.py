"""Copying settled sends from the ledger to the analytics store's ``push_sends``.

A campaign run exports its own outcomes as they settle (pistats.push.campaign); what a store
outage or a crash left behind, and every welcome notification (the ingest never talks to the
store: it settles welcomes in the ledger only), is copied by :func:`export_settled`, which
``pistats push export`` and ``pistats push stats`` run. Idempotent: a send is marked exported
after the store took it, and writing it twice replaces the same row (``push_sends`` is a
ReplacingMergeTree keyed by client, campaign and token hash).
"""

from __future__ import annotations

from datetime import datetime, timezone

from pistats.push.ledger import Campaign, Ledger, SendRow
from pistats.push.results import PushSend, write_push_sends


def push_sends_of(campaign: Campaign, rows: list[SendRow]) -> list[PushSend]:
    """The store's rows of a campaign's settled sends (the token only as its SHA-256 hex)."""
    return [PushSend(campaign_id=campaign.campaign_id, client_id=campaign.client_id,
                     property_id=campaign.property_id, user_id=row.user_id, token_hash=row.token_digest.hex(),
                     platform=row.platform, status=row.state, error_code=row.error_code or "",
                     attempts=row.attempts, settled_at=row.settled_at) for row in rows]


def export_settled(ledger: Ledger, store, client_id: str | None = None, *, page: int = 1000,
                   now: datetime | None = None) -> dict[str, int]:
    """Copy every campaign's settled, unexported sends (of ``client_id``, or every client's) to
    ``store``, ``page`` at a time; returns ``campaign_id -> sends copied`` (campaigns with none
    left out). Welcome sends left pending by a request that died are settled ``unknown`` first
    (:meth:`Ledger.welcome_orphans_to_unknown`). StoreError when the store fails: what was copied
    before stays marked, the rest is copied by the next call. RegistryUnavailable likewise."""
    from pistats.push.welcome import ORPHAN_AFTER

    now = now or datetime.now(timezone.utc)
    ledger.welcome_orphans_to_unknown(now - ORPHAN_AFTER, client_id)
    copied: dict[str, int] = {}
    for campaign in ledger.with_unexported(client_id):
        while True:
            rows = ledger.unexported(campaign.campaign_id, page)
            if not rows:
                break
            write_push_sends(store, push_sends_of(campaign, rows))
            ledger.mark_exported(campaign.campaign_id, [row.token_digest for row in rows])
            copied[campaign.campaign_id] = copied.get(campaign.campaign_id, 0) + len(rows)
            if len(rows) < page:
                break
    return copied
