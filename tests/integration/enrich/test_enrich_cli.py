import base64
import json
from datetime import datetime, timedelta, timezone

import pytest

from pistats import contract
from pistats.cli.main import main
from pistats.kinesis import kpl
from pistats.kinesis.recording import RecordedRecord, RecordingWriter, ShardInfo

NOW = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.0.0 Safari/537.36")


def payload(event_id, user, minute, ip="81.2.69.160"):
    ev = {"event_id": event_id, "type": "page_view", "property_id": "p", "user_id": user,
          "timestamp": (NOW - timedelta(hours=5) + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    return contract.encode_record(contract.build_record(
        client_id="c1", event=ev, received_at=NOW, ip=ip, user_agent=CHROME, now=NOW))


@pytest.fixture
def recording(tmp_path):
    path = tmp_path / "rec"
    half = 2**127
    with RecordingWriter(path, stream="s", captured_at=NOW) as writer:
        writer.add_shard(ShardInfo("shardId-000000000000", 0, half - 1, "1"))
        writer.add_shard(ShardInfo("shardId-000000000001", half, 2**128 - 1, "1"))
        writer.write_many("shardId-000000000000", [
            RecordedRecord("10", NOW, "c1:u1", payload("a", "u1", 0)),
            RecordedRecord("11", NOW, "c1:u1", payload("b", "u1", 10)),
            RecordedRecord("12", NOW, "c1:u1", payload("c", "u1", 50)),  # 40 min gap: session 2
            RecordedRecord("13", NOW, "c1:u1", payload("a", "u1", 0)),   # duplicate of a
        ])
        writer.write_many("shardId-000000000001", [
            RecordedRecord("20", NOW, "c1:u2", kpl.aggregate([("c1:u2", payload("x", "u2", 1)),
                                                               ("c1:u2", payload("y", "u2", 2, ip="10.0.0.1"))])),
            RecordedRecord("21", NOW, "c1:u2", b"\xff\xfe"),
        ])
        writer.commit()
    return path


def run(capsys, *argv):
    code = main(["enrich", *argv])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err.splitlines()


def test_recording_with_sessions_and_summary(capsys, recording, redis_url, redis_client, tmp_path):
    rejects = tmp_path / "rejects.jsonl"
    code, events, err = run(capsys, "--recording", str(recording), "--redis-url", redis_url,
                            "--rejects", str(rejects), "--json-summary")
    assert code == 0
    assert [(e["kinesis_shard"][-1], e["kinesis_seq"], e["kinesis_subseq"], e["event_id"]) for e in events] == [
        ("0", "10", 0, "a"), ("0", "11", 0, "b"), ("0", "12", 0, "c"), ("0", "13", 0, "a"),
        ("1", "20", 0, "x"), ("1", "20", 1, "y")]
    assert [(e["session_index"], e["session_event_index"]) for e in events] == [(1, 1), (1, 2), (2, 1), (1, 1), (1, 1), (1, 2)]
    assert events[3]["session_id"] == events[0]["session_id"]
    assert (events[0]["geo_country"], events[0]["ip"], events[0]["device_type"]) == ("GB", "81.2.69.0", "desktop")
    assert events[5]["geo_country"] == ""
    reject_rows = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [(r["reason"], r["kinesis_seq"]) for r in reject_rows] == [("bad_encoding", "21")]
    summary = json.loads(err[-1])
    assert (summary["events"], summary["rejects"], summary["sessions"], summary["users"]) == (6, 1, 3, 2)
    assert summary["rejects_by_reason"] == {"bad_encoding": 1} and summary["session_replays"] == 1
    assert summary["ua_cache"]["hit_rate"] > 0.5
    assert list(redis_client.scan_iter(match="pistats:enrich-run:*", count=1000)) == []


def test_replaying_a_recording_into_kept_state_reproduces_fields(capsys, recording, redis_url, key_prefix):
    first = run(capsys, "--recording", str(recording), "--redis-url", redis_url, "--session-prefix", key_prefix)[1]
    again = run(capsys, "--recording", str(recording), "--redis-url", redis_url, "--session-prefix", key_prefix)[1]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "processed_at"} for r in rows]
    assert strip(again) == strip(first)


def test_input_lines_and_stdin(capsys, tmp_path, monkeypatch):
    import io

    lines = [payload("a", "u1", 0), b"", b"not json",
             json.dumps({"shard_id": "s9", "sequence_number": "5", "sub_sequence_number": 0, "partition_key": "k",
                         "arrival_ms": None, "data_b64": base64.b64encode(payload("b", "u1", 1)).decode()}).encode()]
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    code, events, err = run(capsys, "--input", str(path))
    assert code == 0 and [e["event_id"] for e in events] == ["a", "b"]
    assert events[0]["session_id"] is None and events[1]["kinesis_shard"] == "s9"
    assert json.loads(err[-1])["reason"] == "bad_json"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(path.read_bytes())))
    code, events, _ = run(capsys, "-")
    assert [e["event_id"] for e in events] == ["a", "b"] and events[0]["kinesis_shard"] == "stdin"


@pytest.mark.parametrize(
    "argv, code, message",
    [
        (["--input", "{tmp}/missing.jsonl"], 1, "missing.jsonl: no such file"),
        (["--input", "-", "--redis-url", "redis://127.0.0.1:1/0?socket_connect_timeout=0.2"], 1, "cannot reach Redis"),
        (["--recording", "{tmp}"], 1, "no manifest.json"),
        (["--input", "-", "--geoip-db", "{tmp}/none.mmdb"], 2, "cannot open GeoIP database"),
        (["--input", "-", "--batch-size", "0"], 2, "--batch-size"),
        (["--input", "-", "--batch-size", "5001"], 2, "--batch-size"),
    ],
)
def test_expected_errors_are_one_line(capsys, tmp_path, argv, code, message):
    assert main(["enrich", *[a.format(tmp=tmp_path) for a in argv]]) == code
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("pistats enrich: ") and message in last
