"""The analytics a piStats client asks for, computed in ClickHouse (server or chdb).

Every query reads ``events FINAL`` / ``events_rejected FINAL``, so a row stored twice (a retried
batch on a server without deduplication tokens, a replay) is counted once. Medians are
``quantileExact(0.5)``: exact, and the upper of the two middle values for an even count.

The campaigns section is ``pistats.push.results.campaign_stats`` of the campaigns with a send
settled in scope (``since`` bounds the sends, not the clicks: a click comes after its send); it
is None for a store whose schema predates ``push_sends`` (version 5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

from pistats.push.results import campaign_stats, has_push_sends, render_campaigns
from pistats.store.backends import Store
from pistats.store.schema import EVENTS, REJECTS, quote

EVENT_TYPES_PER_DAY = (("registrations", "register"), ("subscriptions", "subscribe"), ("unsubscriptions", "unsubscribe"))
# (key in the report, column, table heading)
TOP_DIMENSIONS = (
    ("countries", "geo_country", "country"),
    ("cities", "geo_city", "city"),
    ("device_types", "device_type", "device type"),
    ("browsers", "ua_browser", "browser"),
    ("oses", "ua_os", "os"),
)


@dataclass(frozen=True)
class ReportScope:
    """Which events a report covers: one client (or all) from a day on (or all time)."""

    client_id: str | None = None
    since: date | None = None
    top: int = 10

    def where(self, time_column: str) -> str:
        conditions = ["1 = 1"]
        if self.client_id is not None:
            conditions.append(f"client_id = {quote(self.client_id)}")
        if self.since is not None:
            conditions.append(f"{time_column} >= toDateTime('{self.since.isoformat()} 00:00:00', 'UTC')")
        return " AND ".join(conditions)


def build_report(store: Store, scope: ReportScope) -> dict:
    """All report figures as one JSON-ready dict."""
    events = f"{store.database}.{EVENTS} FINAL"
    where = scope.where("event_time")
    per_day = [
        {
            "day": str(row[0]),
            **{name: int(value) for (name, _), value in zip(EVENT_TYPES_PER_DAY, row[1:4])},
            "active_users": int(row[4]),
            "sessions": int(row[5]),
            "events": int(row[6]),
        }
        for row in store.query(
            "SELECT toString(toDate(event_time)) AS day, "
            + ", ".join(f"countIf(event_type = {quote(kind)})" for _, kind in EVENT_TYPES_PER_DAY)
            + ", uniqExact(client_id, user_id), uniqExactIf(client_id, session_id, session_id != ''), count() "
            f"FROM {events} WHERE {where} GROUP BY day ORDER BY day"
        )
    ]
    (totals_row,) = store.query(
        "SELECT count(), uniqExact(client_id, user_id), uniqExactIf(client_id, user_id, is_new_user = 1), "
        "uniqExactIf(client_id, session_id, session_id != ''), countIf(is_bot = 1), "
        f"uniqExactIf(client_id, user_id, is_bot = 1) FROM {events} WHERE {where}"
    )
    event_count, users, new_users, sessions, bot_events, bot_users = (int(value) for value in totals_row)
    # Counted, not derived as users - new_users: a user is returning when none of their events
    # in scope is flagged new.
    (returning_row,) = store.query(
        f"SELECT count() FROM (SELECT client_id, user_id FROM {events} WHERE {where} "
        "GROUP BY client_id, user_id HAVING max(is_new_user) = 0)"
    )
    (session_row,) = store.query(
        "SELECT quantileExact(0.5)(duration), quantileExact(0.5)(events) FROM ("
        "SELECT client_id, session_id, toUnixTimestamp(max(event_time)) - toUnixTimestamp(min(event_time)) AS duration, "
        f"count() AS events FROM {events} WHERE {where} AND session_id != '' GROUP BY client_id, session_id)"
    )
    totals = {
        "events": event_count,
        "active_users": users,
        "new_users": new_users,
        "returning_users": int(returning_row[0]),
        "sessions": sessions,
        "bot_events": bot_events,
        "bot_users": bot_users,
        "bot_event_share": round(bot_events / event_count, 4) if event_count else 0.0,
        "median_session_seconds": _number(session_row[0]) if sessions else None,
        "median_events_per_session": _number(session_row[1]) if sessions else None,
    }
    top = {
        name: [
            {"value": str(row[0]), "users": int(row[1]), "events": int(row[2])}
            for row in store.query(
                f"SELECT {column} AS value, uniqExact(client_id, user_id) AS users, count() AS events "
                f"FROM {events} WHERE {where} GROUP BY value ORDER BY users DESC, events DESC, value LIMIT {int(scope.top)}"
            )
        ]
        for name, column, _ in TOP_DIMENSIONS
    }
    registrations_by_device = [
        {"day": str(row[0]), "device_type": str(row[1]), "registrations": int(row[2])}
        for row in store.query(
            f"SELECT toString(toDate(event_time)) AS day, device_type, count() FROM {events} "
            f"WHERE {where} AND event_type = 'register' GROUP BY day, device_type ORDER BY day, device_type"
        )
    ]
    rejects = [
        {"reason": str(row[0]), "count": int(row[1])}
        for row in store.query(
            f"SELECT reason, count() AS rejected FROM {store.database}.{REJECTS} FINAL "
            f"WHERE {scope.where('rejected_at')} GROUP BY reason ORDER BY rejected DESC, reason"
        )
    ]
    return {
        "store": store.url.redacted,
        "server_version": store.server_version,
        "client_id": scope.client_id,
        "since": scope.since.isoformat() if scope.since else None,
        "per_day": per_day,
        "totals": totals,
        "top": top,
        "registrations_by_device_type": registrations_by_device,
        "rejects_by_reason": rejects,
        "campaigns": campaign_stats(store, scope.client_id, since=scope.since) if has_push_sends(store) else None,
    }


def _number(value) -> float | int | None:
    value = float(value)
    if math.isnan(value):
        return None
    return int(value) if value.is_integer() else round(value, 3)


def format_table(headers: list[str], rows: list[list]) -> str:
    """Columns aligned: text left, numbers right (None, shown as "-", counts as a number)."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(header)] + [len(row[index]) for row in cells]) for index, header in enumerate(headers)]
    numeric = [
        any(row[index] is not None for row in rows)
        and all(row[index] is None or isinstance(row[index], (int, float)) for row in rows)
        for index in range(len(headers))
    ]

    def line(values):
        return "  ".join(
            value.rjust(width) if right else value.ljust(width) for value, width, right in zip(values, widths, numeric)
        ).rstrip()

    return "\n".join([line(headers), line(["-" * width for width in widths]), *(line(row) for row in cells)])


def _cell(value) -> str:
    if value is None:
        return "-"
    if value == "":
        return "(unknown)"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_text(report: dict) -> str:
    """The report as aligned tables for a terminal."""
    scope = f"client {report['client_id']}" if report["client_id"] else "all clients"
    since = f" since {report['since']}" if report["since"] else ""
    parts = [f"pistats report: {scope}{since} ({report['store']}, ClickHouse {report['server_version']})"]
    columns = ["day", "registrations", "subscriptions", "unsubscriptions", "active_users", "sessions", "events"]
    parts.append("Per day\n" + format_table(columns, [[day[name] for name in columns] for day in report["per_day"]]))
    totals = report["totals"]
    parts.append("Totals\n" + format_table(["figure", "value"], [[name, value] for name, value in totals.items()]))
    for name, _, heading in TOP_DIMENSIONS:
        rows = [[row["value"], row["users"], row["events"]] for row in report["top"][name]]
        parts.append(f"Top {name.replace('_', ' ')}\n" + format_table([heading, "users", "events"], rows))
    parts.append("Rejects by reason\n" + format_table(
        ["reason", "count"], [[row["reason"], row["count"]] for row in report["rejects_by_reason"]]))
    if report["campaigns"] is None:
        parts.append("Campaigns\nnone: the store's schema predates push_sends (run `pistats store init`)")
    else:
        parts.append(render_campaigns(report["campaigns"]).rstrip("\n"))
    return "\n\n".join(parts) + "\n"


def plot_registrations(report: dict, path: str) -> None:
    """A PNG: registrations per day, stacked by device type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["registrations_by_device_type"]
    days = sorted({row["day"] for row in rows})
    device_types = sorted({row["device_type"] for row in rows})
    counts = {(row["day"], row["device_type"]): row["registrations"] for row in rows}
    figure, axes = plt.subplots(figsize=(max(6, len(days) * 0.6), 4))
    bottoms = [0] * len(days)
    for device_type in device_types:
        heights = [counts.get((day, device_type), 0) for day in days]
        axes.bar(days, heights, bottom=bottoms, label=device_type or "(unknown)")
        bottoms = [bottom + height for bottom, height in zip(bottoms, heights)]
    axes.set_title("Registrations per day by device type")
    axes.set_ylabel("registrations")
    if device_types:
        axes.legend()
    axes.tick_params(axis="x", labelrotation=45)
    figure.tight_layout()
    figure.savefig(path, format="png")
    plt.close(figure)
