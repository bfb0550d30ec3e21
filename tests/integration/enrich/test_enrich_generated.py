"""``pistats enrich`` over a generated, resharded recording agrees with its expected.json."""

import collections
import json

from pistats.cli.main import main


def test_enrich_matches_expected_counts(tmp_path, capsys, redis_url, redis_client):
    recording = tmp_path / "rec"
    assert main(["generate", "--out", str(recording), "--events", "3000", "--reshard-at", "0.5",
                 "--seed", "11", "--no-progress"]) == 0
    capsys.readouterr()
    rejects_path = tmp_path / "rejects.jsonl"
    assert main(["enrich", "--recording", str(recording), "--redis-url", redis_url,
                 "--rejects", str(rejects_path), "--json-summary"]) == 0
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines()]
    rejects = [json.loads(line) for line in rejects_path.read_text().splitlines()]
    expected = json.loads((recording / "expected.json").read_text())

    first = {}
    copies = collections.defaultdict(list)
    for event in events:
        first.setdefault((event["client_id"], event["event_id"]), event)
        copies[(event["client_id"], event["event_id"])].append(event)
    stored = list(first.values())
    assert len(events) + len(rejects) == expected["records_in"]
    assert len(stored) == expected["events_stored"]
    assert len(events) - len(stored) == expected["duplicates_dropped"]
    assert dict(collections.Counter(r["reason"] for r in rejects)) == expected["rejected"]
    assert len({(e["client_id"], e["user_id"]) for e in stored}) == expected["users"]
    assert len({e["session_id"] for e in stored}) == expected["sessions"]
    assert dict(collections.Counter(e["geo_country"] for e in stored)) == expected["by_country"]
    assert dict(collections.Counter(e["device_type"] for e in stored)) == expected["by_device_type"]

    session_keys = ("session_id", "session_index", "session_event_index", "is_new_user", "first_seen_at")
    assert all(len({tuple(e[k] for k in session_keys) for e in same}) == 1 for same in copies.values())
    summary = json.loads(err.splitlines()[-1])
    assert summary["sessions"] == expected["sessions"] and summary["session_replays"] == expected["duplicates_dropped"]
