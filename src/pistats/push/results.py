"""What each campaign achieved: its sends in the store's ``push_sends`` and the clicks they earned.

A campaign's sends are exported to ``push_sends`` (one row per token, keyed by client, campaign
and token hash) as they settle; exporting the same send again replaces it (ReplacingMergeTree,
read ``FINAL``), so a resumed campaign or a retried export changes no count. The token never
reaches the store: only its sha256 hex (:func:`token_hash`).

:func:`campaign_stats` reads, per campaign:

- ``targeted``: its sends (tokens) in ``push_sends``, whatever their status; ``sent``,
  ``failed``, ``invalidated`` (FCM said the token is gone) and ``unknown`` (the outcome of a send
  lost in a crash) split them by status;
- ``clicked``: distinct users with a ``notification_click`` event of the campaign's client whose
  ``notification_id`` is the campaign id (events read ``FINAL``, as the report reads them);
- ``ctr``: ``clicked / sent`` rounded to 4 places, None when nothing was sent. ``sent`` counts
  tokens, so a user with two devices who clicks once counts once against two sends;
- ``clicks_by_device_type`` and ``clicks_by_country``: distinct clicking users per
  ``device_type`` / ``geo_country`` of their click events ("" where unknown), most first; a user
  who clicked from two device types counts in both.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from pistats.store.base import Store
from pistats.store.rows import epoch_ms
from pistats.store.schema import EVENTS, PUSH_SENDS, quote

STATUSES = ("sent", "failed", "invalid", "unknown")
# The figure each status is counted as in campaign_stats.
STATUS_FIGURES = {"sent": "sent", "failed": "failed", "invalid": "invalidated", "unknown": "unknown"}
_HASH = re.compile(r"^[0-9a-f]{64}$")


def token_hash(token: str) -> str:
    """The sha256 hex of a token: how ``push_sends`` names it (64 characters)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class PushSend:
    """One settled send of a campaign to one token. ``token_hash`` is :func:`token_hash` of the
    token (``token_digest.hex()`` of the ledger's digest); ``error_code`` is FCM's, or "".
    Raises ValueError for a status outside ``STATUSES`` or a token_hash that is not 64 lowercase
    hex characters (which also keeps a token itself out of the store)."""

    campaign_id: str
    client_id: str
    property_id: str
    user_id: str
    token_hash: str
    platform: str
    status: str
    error_code: str
    attempts: int
    settled_at: datetime

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"push send status must be one of {', '.join(STATUSES)}, not {self.status!r}")
        if not isinstance(self.token_hash, str) or not _HASH.match(self.token_hash):
            raise ValueError("push send token_hash must be a sha256 hex digest (64 lowercase hex characters)")
        if not 0 <= self.attempts < 2**32:
            raise ValueError(f"push send attempts out of range: {self.attempts}")

    def row(self) -> tuple:
        """The row of ``push_sends`` (``PUSH_SEND_COLUMNS`` order)."""
        return (self.campaign_id, self.client_id, self.property_id, self.user_id, self.token_hash, self.platform,
                self.status, self.error_code or "", self.attempts, epoch_ms(self.settled_at, "settled_at"))


def write_push_sends(store: Store, sends: Sequence[PushSend]) -> None:
    """Store the sends in one insert; returns once they are stored. Raises StoreError when the
    store fails or refuses them (then none or all of them may be stored: writing them again is
    harmless). A ``settled_at`` outside the store's range raises ``RowError`` (a ValueError)."""
    if not sends:
        return
    store.prepare_insert(PUSH_SENDS, [send.row() for send in sends])(None)


def has_push_sends(store: Store) -> bool:
    """Whether the store has ``push_sends`` (schema version 5 and later)."""
    rows = store.query(f"SELECT count() FROM system.tables WHERE database = {quote(store.database)} "
                       f"AND name = {quote(PUSH_SENDS)}")
    return bool(int(rows[0][0]))


def campaign_stats(store: Store, client_id: str | None, campaign_id: str | None = None, *,
                   since: date | None = None) -> list[dict]:
    """Each campaign's figures (see the module docstring), of one client (or all: ``None``),
    of one campaign when ``campaign_id`` is given, of campaigns with a send settled from the
    day ``since`` on when given; ordered by their first settled send, then campaign id.

    Each dict: campaign_id, client_id, property_id, first_settled_at and last_settled_at (ISO
    text, UTC), targeted, sent, failed, invalidated, unknown, clicked, ctr,
    clicks_by_device_type and clicks_by_country (dicts value -> users). StoreError when the
    store fails (also when it has no ``push_sends``: see :func:`has_push_sends`).
    """
    database = store.database
    conditions = ["1 = 1"]
    if client_id is not None:
        conditions.append(f"client_id = {quote(client_id)}")
    if campaign_id is not None:
        conditions.append(f"campaign_id = {quote(campaign_id)}")
    where = " AND ".join(conditions)
    having = ""
    if since is not None:
        having = f" HAVING max(settled_at) >= toDateTime('{since.isoformat()} 00:00:00', 'UTC')"
    sends = f"{database}.{PUSH_SENDS} FINAL"
    rows = store.query(
        "SELECT client_id, campaign_id, any(property_id), toString(min(settled_at)), toString(max(settled_at)), "
        "count(), " + ", ".join(f"countIf(status = {quote(status)})" for status in STATUSES) + " "
        f"FROM {sends} WHERE {where} GROUP BY client_id, campaign_id{having} "
        "ORDER BY min(settled_at), campaign_id, client_id"
    )
    campaigns = {}
    for row in rows:
        campaign = {
            "campaign_id": str(row[1]),
            "client_id": str(row[0]),
            "property_id": str(row[2]),
            "first_settled_at": _iso(row[3]),
            "last_settled_at": _iso(row[4]),
            "targeted": int(row[5]),
            **{STATUS_FIGURES[status]: int(value) for status, value in zip(STATUSES, row[6:10])},
            "clicked": 0,
            "ctr": None,
            "clicks_by_device_type": {},
            "clicks_by_country": {},
        }
        campaigns[(campaign["client_id"], campaign["campaign_id"])] = campaign
    if not campaigns:
        return []
    # The clicks of the campaigns above, whatever the click's time (a click comes after the send).
    clicks = (
        f"FROM {database}.{EVENTS} FINAL WHERE event_type = 'notification_click' "
        f"AND (client_id, notification_id) IN (SELECT client_id, campaign_id FROM {database}.{PUSH_SENDS} "
        f"WHERE {where}) "
    )
    for row in store.query(f"SELECT client_id, notification_id, uniqExact(user_id) {clicks}"
                           "GROUP BY client_id, notification_id"):
        campaign = campaigns.get((str(row[0]), str(row[1])))
        if campaign is not None:
            campaign["clicked"] = int(row[2])
    for figure, column in (("clicks_by_device_type", "device_type"), ("clicks_by_country", "geo_country")):
        for row in store.query(
            f"SELECT client_id, notification_id, {column} AS value, uniqExact(user_id) AS users {clicks}"
            "GROUP BY client_id, notification_id, value ORDER BY users DESC, value"
        ):
            campaign = campaigns.get((str(row[0]), str(row[1])))
            if campaign is not None:
                campaign[figure][str(row[2])] = int(row[3])
    for campaign in campaigns.values():
        if campaign["sent"]:
            campaign["ctr"] = round(campaign["clicked"] / campaign["sent"], 4)
    return list(campaigns.values())


CAMPAIGN_FIGURES = ("targeted", "sent", "failed", "invalidated", "unknown", "clicked", "ctr")


def render_campaigns(campaigns: list[dict]) -> str:
    """Campaign stats (:func:`campaign_stats`) as aligned tables ending with a newline: the
    figures, then the clicking users by device type and by country (``pistats push stats`` and
    the report's section)."""
    # Imported here: pistats.store.report imports this module for its campaigns section.
    from pistats.store.report import format_table

    parts = ["Campaigns\n" + format_table(
        ["campaign", "client", "property", *CAMPAIGN_FIGURES],
        [[campaign["campaign_id"], campaign["client_id"], campaign["property_id"],
          *(campaign[figure] for figure in CAMPAIGN_FIGURES)] for campaign in campaigns])]
    for figure, heading in (("clicks_by_device_type", "device type"), ("clicks_by_country", "country")):
        rows = [[campaign["campaign_id"], value, users]
                for campaign in campaigns for value, users in campaign[figure].items()]
        parts.append(f"Campaign clicks by {heading}\n" + format_table(["campaign", heading, "users"], rows))
    return "\n\n".join(parts) + "\n"


def _iso(text: str) -> str:
    """``toString`` of a stored time (``2026-11-25 10:00:00[.250]``, UTC) as ISO 8601 with Z."""
    return str(text).replace(" ", "T") + "Z"
