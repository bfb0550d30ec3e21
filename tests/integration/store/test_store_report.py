"""The report against both backends: figures equal those computed in Python from the stored events."""

import json
import statistics
from collections import Counter
from datetime import date, datetime, timedelta, timezone

import pytest
from tests.support.samples import make_event, make_reject

from pistats.cli.main import main as pistats
from pistats.store.config import SinkConfig
from pistats.store.report import ReportScope, build_report
from pistats.store.rows import event_row
from pistats.store.schema import migrate
from pistats.store.sink import Sink

START = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)
TYPES = ("register", "subscribe", "unsubscribe", "page_view", "notification_click")
COUNTRIES = ("DE", "FR", "US", "")
DEVICES = ("desktop", "mobile", "tablet", "bot")


def sample_events():
    """Two clients, users with sessions over four days, varied audiences."""
    events = []
    for index in range(120):
        user = index % 9
        session = index % 13
        when = START + timedelta(days=session % 4, minutes=index % 50)
        device = DEVICES[user % 4]
        events.append(make_event(
            index,
            client_id="client-a" if user < 6 else "client-b",
            user_id=f"user-{user}",
            event_type=TYPES[index % 5],
            event_time=when.isoformat(),
            session_id=f"session-{session}",
            is_new_user=index < 9,
            geo_country=COUNTRIES[user % 4],
            geo_city=f"city-{user % 3}",
            device_type=device,
            is_bot=device == "bot",
            ua_browser=("Firefox", "Chrome")[index % 2],
            ua_os=("Linux", "Android", "iOS")[user % 3],
        ))
    return events


def expected(events, client=None, since=None):
    kept = [e for e in events if (client is None or e["client_id"] == client)
            and (since is None or datetime.fromisoformat(e["event_time"]).date() >= since)]
    users = {(e["client_id"], e["user_id"]) for e in kept}
    new = {(e["client_id"], e["user_id"]) for e in kept if e["is_new_user"]}
    sessions = {}
    for e in kept:
        sessions.setdefault((e["client_id"], e["session_id"]), []).append(datetime.fromisoformat(e["event_time"]))
    durations = sorted(int((max(t) - min(t)).total_seconds()) for t in sessions.values())
    sizes = sorted(len(t) for t in sessions.values())
    per_day = Counter((datetime.fromisoformat(e["event_time"]).date().isoformat(), e["event_type"]) for e in kept)
    countries = Counter(e["geo_country"] for e in kept)
    return {
        "events": len(kept), "users": len(users), "new": len(new), "sessions": len(sessions),
        "bots": sum(e["is_bot"] for e in kept),
        "median_duration": statistics.median_high(durations), "median_size": statistics.median_high(sizes),
        "registrations": {day: n for (day, kind), n in per_day.items() if kind == "register"},
        "countries": countries,
    }


@pytest.fixture
def filled_store(store):
    migrate(store)
    events = sample_events()
    sink = Sink(store, SinkConfig(max_rows=50))
    for index, event in enumerate(events):
        sink.add_event(index, event)
    for index in range(3):
        sink.add_reject(f"r{index}", make_reject(index, reason="bad_json" if index else "too_large"))
    sink.flush_all()
    # A batch stored twice without a token (what a retry does on 18.16): FINAL must hide it.
    store.insert_events([event_row(event, 1000)[0] for event in events[:30]], None)
    return store, events


@pytest.mark.parametrize("client, since", [(None, None), ("client-a", date(2026, 11, 21))])
def test_report_matches_the_events(filled_store, client, since):
    store, events = filled_store
    report = build_report(store, ReportScope(client_id=client, since=since))
    want = expected(events, client, since)
    totals = report["totals"]
    assert totals["events"] == want["events"]
    assert totals["active_users"] == want["users"]
    assert totals["new_users"] == want["new"] and totals["returning_users"] == want["users"] - want["new"]
    assert totals["sessions"] == want["sessions"]
    assert totals["bot_events"] == want["bots"]
    assert totals["median_session_seconds"] == want["median_duration"]
    assert totals["median_events_per_session"] == want["median_size"]
    assert {d["day"]: d["registrations"] for d in report["per_day"] if d["registrations"]} == want["registrations"]
    assert sum(d["events"] for d in report["per_day"]) == want["events"]
    assert {row["value"]: row["events"] for row in report["top"]["countries"]} == dict(want["countries"])
    rejects = {row["reason"]: row["count"] for row in report["rejects_by_reason"]}
    assert rejects == ({"bad_json": 2, "too_large": 1} if client is None else {})


def test_cli_report_json_table_and_plot(filled_store, store_url, tmp_path, capsys):
    store, events = filled_store
    store.close()  # chdb: one process, one owner of the data path
    plot = tmp_path / "registrations.png"
    assert pistats(["report", "--store", store_url, "--json", "--plot", str(plot)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["totals"]["events"] == len(events)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pistats(["report", "--store", store_url, "--client", "client-b"]) == 0
    text = capsys.readouterr().out
    header = next(line for line in text.splitlines() if line.startswith("day "))
    separator = text.splitlines()[text.splitlines().index(header) + 1]
    assert [len(part) for part in separator.split("  ")] == [10, 13, 13, 15, 12, 8, 6]
    assert "Rejects by reason" in text and "Top device types" in text


def test_cli_store_init_twice_and_bad_arguments(store_url, capsys):
    assert pistats(["store", "init", "--store", store_url]) == 0
    assert "migrations applied: 1, 2, 3, 4, 5" in capsys.readouterr().out
    assert pistats(["store", "init", "--store", store_url]) == 0
    assert "already up to date" in capsys.readouterr().out
    assert pistats(["store", "info", "--store", store_url]) == 0
    info = {line[:18].strip(): line[18:].strip() for line in capsys.readouterr().out.splitlines()}
    assert info["schema versions"] == "1, 2, 3, 4, 5" and info["pending"] == "none"
    assert pistats(["report", "--store", store_url, "--since", "last week"]) == 2
    assert "--since" in capsys.readouterr().err


def test_chdb_path_held_by_another_process_is_a_one_line_error(chdb_store_url, capsys):
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, pistats.store.backends as b; s = b.open_store(sys.argv[1], env={}); "
         "print('open', flush=True); sys.stdin.read()", chdb_store_url],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        assert pistats(["report", "--store", chdb_store_url]) == 1
        assert "one process per data path" in capsys.readouterr().err
    finally:
        holder.communicate(input="", timeout=20)
