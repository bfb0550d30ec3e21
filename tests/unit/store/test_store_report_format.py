from datetime import date

from pistats.push.results import render_campaigns
from pistats.store.report import ReportScope, format_table, render_text

CAMPAIGN = {
    "campaign_id": "c_0123456789abcdef0123", "client_id": "client-a", "property_id": "prop-1",
    "first_settled_at": "2026-11-26T10:00:00Z", "last_settled_at": "2026-11-26T10:05:00Z",
    "targeted": 120, "sent": 100, "failed": 5, "invalidated": 12, "unknown": 3, "clicked": 7, "ctr": 0.07,
    "clicks_by_device_type": {"mobile": 5, "desktop": 2}, "clicks_by_country": {"DE": 6, "": 1},
}


def test_scope_quotes_the_client_and_bounds_the_day():
    where = ReportScope(client_id="o'brien\\", since=date(2026, 11, 1)).where("event_time")
    assert "client_id = 'o\\'brien\\\\'" in where
    assert "event_time >= toDateTime('2026-11-01 00:00:00', 'UTC')" in where
    assert ReportScope().where("rejected_at") == "1 = 1"


def test_table_aligns_text_left_and_numbers_right():
    table = format_table(["country", "users"], [["DE", 5], ["", 120], ["France", 7]])
    assert table.splitlines() == [
        "country    users",
        "---------  -----",
        "DE             5",
        "(unknown)    120",
        "France         7",
    ]


def test_render_text_has_every_section():
    report = {
        "store": "chdb:///x?database=pistats", "server_version": "26.9.2", "client_id": None, "since": None,
        "per_day": [{"day": "2026-11-25", "registrations": 1, "subscriptions": 0, "unsubscriptions": 0,
                     "active_users": 1, "sessions": 1, "events": 1}],
        "totals": {"events": 1, "median_session_seconds": None},
        "top": {name: [] for name in ("countries", "cities", "device_types", "browsers", "oses")},
        "registrations_by_device_type": [], "rejects_by_reason": [{"reason": "bad_json", "count": 2}],
        "campaigns": [CAMPAIGN],
    }
    text = render_text(report)
    for title in ("Per day", "Totals", "Top countries", "Top cities", "Top device types", "Top browsers",
                  "Top oses", "Rejects by reason", "Campaigns", "Campaign clicks by device type",
                  "Campaign clicks by country"):
        assert f"\n{title}\n" in text
    lines = text.splitlines()
    events_line = next(line for line in lines if line.startswith("events "))
    median_line = next(line for line in lines if line.startswith("median_session_seconds"))
    assert median_line.split() == ["median_session_seconds", "-"]
    assert len(median_line) == len(events_line)  # right-aligned like the numbers


def test_campaigns_table_and_clicks():
    idle = dict(CAMPAIGN, campaign_id="c_idle", targeted=2, sent=0, failed=2, invalidated=0, unknown=0, clicked=0,
                ctr=None, clicks_by_device_type={}, clicks_by_country={})
    text = render_campaigns([CAMPAIGN, idle])
    assert text.endswith("\n") and not text.endswith("\n\n")
    lines = text.splitlines()
    assert lines[0] == "Campaigns"
    assert lines[1].split() == ["campaign", "client", "property", "targeted", "sent", "failed", "invalidated",
                                "unknown", "clicked", "ctr"]
    assert lines[3].split()[3:] == ["120", "100", "5", "12", "3", "7", "0.07"]
    assert lines[4].split()[-1] == "-"  # nothing sent: no click-through rate
    assert len(lines[3]) == len(lines[4])  # figures right-aligned
    by_country = lines[lines.index("Campaign clicks by country") + 3:]
    assert [line.split() for line in by_country] == [["c_0123456789abcdef0123", "DE", "6"],
                                                     ["c_0123456789abcdef0123", "(unknown)", "1"]]


def test_a_store_before_push_sends_says_so():
    report = {
        "store": "chdb:///x", "server_version": "18.16.1", "client_id": None, "since": None, "per_day": [],
        "totals": {}, "top": {name: [] for name in ("countries", "cities", "device_types", "browsers", "oses")},
        "registrations_by_device_type": [], "rejects_by_reason": [], "campaigns": None,
    }
    assert "Campaigns\nnone: the store's schema predates push_sends (run `pistats store init`)" in render_text(report)
