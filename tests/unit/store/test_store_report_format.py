from datetime import date

from pistats.store.report import ReportScope, format_table, render_text


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
    }
    text = render_text(report)
    for title in ("Per day", "Totals", "Top countries", "Top cities", "Top device types", "Top browsers",
                  "Top oses", "Rejects by reason"):
        assert f"\n{title}\n" in text
    lines = text.splitlines()
    events_line = next(line for line in lines if line.startswith("events "))
    median_line = next(line for line in lines if line.startswith("median_session_seconds"))
    assert median_line.split() == ["median_session_seconds", "-"]
    assert len(median_line) == len(events_line)  # right-aligned like the numbers
