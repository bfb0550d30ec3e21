"""pistats generate: deterministic, realistic, and its expected.json agrees with its data."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta

import pytest

from pistats.cli.main import main as pistats
from pistats.contract import ContractError, decode_record, parse_timestamp
from pistats.errors import ConfigError
from pistats.generate import GenerateConfig, generate, load_expected
from pistats.generate.expected import CountryLookup, count_sessions, device_type, expected_counts
from pistats.generate.generator import Generator
from pistats.kinesis.recording import Recording
from pistats.kinesis.stream_replay import hash_key_for

CONFIG = GenerateConfig(events=700, shards=2, clients=4, seed=11, reshard_at=0.5, bad_fraction=0.06, duplicate_fraction=0.04)


@pytest.fixture(scope="module")
def countries():
    lookup = CountryLookup()
    yield lookup
    lookup.close()


@pytest.fixture(scope="module")
def items(countries):
    return Generator(CONFIG, countries).items()


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "rec"
    generate(CONFIG, path)
    return Recording.open(path)


def _all_records(recording):
    return [(shard.shard_id, record) for shard in recording.shards for record in recording.records(shard.shard_id)]


def test_same_seed_same_bytes_other_seed_other_data(tmp_path, recording):
    generate(CONFIG, tmp_path / "again")
    for name in ["manifest.json", "expected.json", *(f"shards/{s.shard_id}.jsonl" for s in recording.shards)]:
        assert (tmp_path / "again" / name).read_bytes() == (recording.path / name).read_bytes()
    other = GenerateConfig(**{**CONFIG.__dict__, "seed": 12})
    generate(other, tmp_path / "other")
    assert (tmp_path / "other" / "expected.json").read_bytes() != (recording.path / "expected.json").read_bytes()


def test_labels_are_what_the_contract_decides(items):
    seen = set()
    for item in items:
        try:
            record = decode_record(item.data)
        except ContractError as error:
            assert item.label.split("/")[0] == error.reason
            continue
        identity = (record["client_id"], record["event"]["event_id"])
        assert item.label == ("duplicate" if identity in seen else "valid")
        seen.add(identity)
    kinds = {item.label for item in items}
    assert {"valid", "duplicate", "bad_encoding/invalid_utf8", "bad_json/truncated_json", "too_large/oversized"} <= kinds
    assert len(items) == CONFIG.events
    assert sum(item.label == "duplicate" for item in items) == round(CONFIG.events * CONFIG.duplicate_fraction)
    assert sum("/" in item.label for item in items) == round(CONFIG.events * CONFIG.bad_fraction)


def test_visits_follow_the_session_friendly_rules(items):
    by_user = defaultdict(list)
    for item in items:
        if item.label != "valid":
            continue
        record = decode_record(item.data)
        if record["clock_skew"]:
            continue
        event_time = parse_timestamp(record["event"]["timestamp"])
        received = parse_timestamp(record["received_at"])
        assert timedelta(0) < received - event_time <= timedelta(seconds=60)
        by_user[item.key].append((item.arrival, event_time))
    multi_visit = 0
    for events in by_user.values():
        times = sorted(t for _, t in events)
        visit_start = times[0]
        visits = 1
        for before, after in zip(times, times[1:]):
            gap = after - before
            assert gap <= timedelta(minutes=5) or gap >= timedelta(hours=2)
            if gap >= timedelta(hours=2):
                visits += 1
                visit_start = after
            assert after - visit_start < timedelta(hours=2)
        multi_visit += visits > 1
        # In arrival order, event time goes backwards by at most the 60 s jitter.
        latest = None
        for _, event_time in sorted(events):
            if latest is not None:
                assert latest - event_time <= timedelta(seconds=60)
            latest = max(latest or event_time, event_time)
    assert multi_visit >= len(by_user) // 5


def test_reshard_closes_parents_and_children_follow(recording):
    shards = {s.shard_id: s for s in recording.shards}
    assert len(shards) == 6
    parents = [s for s in shards.values() if not s.parents]
    children = [s for s in shards.values() if s.parents]
    assert all(p.closed for p in parents) and not any(c.closed for c in children)
    for parent in parents:
        end = recording.read_shard(parent.shard_id).end
        assert end is not None
        assert sorted(c["ShardId"] for c in end.child_shards) == sorted(c.shard_id for c in children if c.parent_shard_id == parent.shard_id)
    last_parent_arrival = {}
    records = _all_records(recording)
    for shard_id, record in records:
        assert shards[shard_id].contains(hash_key_for(record.partition_key))
        assert len(record.sequence_number) == 56
        if not shards[shard_id].parents:
            last_parent_arrival[record.partition_key] = record.arrival
    for shard_id, record in records:
        if shards[shard_id].parents and record.partition_key in last_parent_arrival:
            assert record.arrival >= last_parent_arrival[record.partition_key]
    parent_count = sum(1 for shard_id, _ in records if not shards[shard_id].parents)
    assert parent_count == CONFIG.events // 2


def test_expected_json_is_the_data_by_definition(recording, countries):
    expected = load_expected(recording.path)
    assert expected == expected_counts((r.data for _, r in _all_records(recording)), countries)
    assert expected["records_in"] == CONFIG.events
    assert expected["events_stored"] + sum(expected["rejected"].values()) + expected["duplicates_dropped"] == CONFIG.events
    assert set(expected["rejected"]) == {"bad_encoding", "bad_json", "unsupported_version", "schema", "too_large"}
    assert sum(expected["by_country"].values()) == expected["events_stored"]
    assert sum(expected["by_device_type"].values()) == expected["events_stored"]
    assert set(expected["by_device_type"]) == {"desktop", "mobile", "tablet", "bot", "other"}
    assert "" in expected["by_country"] and len(expected["by_country"]) >= 15
    assert expected["users"] < expected["sessions"] < expected["events_stored"]


def test_traffic_mix_is_realistic(items):
    records = [decode_record(i.data) for i in items if i.label == "valid"]
    ips = [r["ip"] for r in records]
    assert any(":" in ip for ip in ips) and any(ip.startswith(("10.", "192.168.", "172.")) or ip.startswith(("fc", "fd", "fe80")) for ip in ips)
    agents = {r["user_agent"] for r in records}
    assert "" in agents
    assert any("Instagram" in a or "FBAN" in a for a in agents)
    clients = defaultdict(int)
    for r in records:
        clients[r["client_id"]] += 1
    sizes = sorted(clients.values(), reverse=True)
    assert sizes[0] > 2 * sizes[-1]
    assert {r["event"]["type"] for r in records} >= {"register", "subscribe", "page_view", "notification_click"}
    assert any(r["clock_skew"] for r in records)


def test_count_sessions_rule():
    start = parse_timestamp("2026-11-01T00:00:00Z")
    minutes = lambda *values: [start + timedelta(minutes=v) for v in values]  # noqa: E731
    assert count_sessions([]) == 0
    assert count_sessions(minutes(0, 30, 60)) == 1
    assert count_sessions(minutes(0, 31)) == 2
    assert count_sessions(minutes(45, 0, 20)) == 1
    assert count_sessions(minutes(*range(0, 24 * 60 + 1, 20))) == 2


def test_device_type_definition():
    assert device_type("") == "other"
    assert device_type("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)") == "bot"
    assert device_type("Mozilla/5.0 (iPad; CPU OS 16_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1") == "tablet"


def test_country_lookup_definition(countries):
    assert countries("10.1.2.3") == "" and countries("::1") == "" and countries("not an ip") == ""
    assert countries("2001:db8::1") == ""
    assert countries("81.2.69.160") == "GB"


def test_cli_generate_and_usage_errors(tmp_path, capsys):
    assert pistats(["generate", "--out", str(tmp_path / "r"), "--events", "60", "--seed", "5", "--no-progress"]) == 0
    assert "recording:" in capsys.readouterr().out
    assert json.loads((tmp_path / "r" / "expected.json").read_text())["records_in"] == 60
    plain = Recording.open(tmp_path / "r")
    assert len(plain.shards) == 2 and not any(s.closed or s.parents for s in plain.shards)
    assert sum(plain.validate().values()) == 60
    assert pistats(["generate", "--out", str(tmp_path / "r"), "--events", "60", "--no-progress"]) == 2
    assert pistats(["generate", "--out", str(tmp_path / "s"), "--events", "60", "--reshard-at", "1.5"]) == 2
    assert "--reshard-at must be a fraction" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_skewed_months_date_one_clients_events_in_that_many_months(countries):
    config = GenerateConfig(events=400, shards=2, clients=3, seed=4, skewed_months=150)
    items = Generator(config, countries).items()
    plain = Generator(GenerateConfig(**{**config.__dict__, "skewed_months": 0}), countries).items()
    assert len(items) == len(plain) == 400
    months_by_client = defaultdict(set)
    for item in items:
        if item.label != "valid":
            continue
        record = decode_record(item.data)
        if record["clock_skew"]:
            moment = parse_timestamp(record["event"]["timestamp"])
            months_by_client[record["client_id"]].add((moment.year, moment.month))
    assert max(len(months) for months in months_by_client.values()) >= 150


def test_skewed_months_needs_room_in_the_recording(countries):
    with pytest.raises(ConfigError, match="skewed_months"):
        Generator(GenerateConfig(events=100, skewed_months=150), countries).items()
