"""Write keys in the real Redis, and the `pistats keys` and `pistats ingest-server` commands."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from pistats.cli.main import main as pistats
from pistats.ingest.keys import WriteKeyStore, key_digest

PISTATS = str(Path(sys.executable).with_name("pistats"))


def all_redis_bytes(redis_client, prefix: str) -> bytes:
    """Every key name and value under the prefix, concatenated."""
    blob = b""
    for name in redis_client.scan_iter(match=f"{prefix}:*"):
        blob += name
        for field, value in redis_client.hgetall(name).items():
            blob += field + value
    return blob


def test_create_resolve_and_only_the_digest_is_stored(key_store, redis_client, key_prefix):
    key, info = key_store.create("acme")
    assert key.startswith("pk_") and len(key) == 35
    lookup = key_store.resolve(key)
    assert (lookup.status, lookup.client_id, lookup.key_id) == ("ok", "acme", info.key_id)
    stored = all_redis_bytes(redis_client, key_prefix)
    assert key.encode() not in stored
    assert key_digest(key).encode() in stored


def test_unknown_and_missing_keys(key_store):
    key_store.create("acme")
    assert key_store.resolve("pk_" + "A" * 32).status == "unknown"
    assert key_store.resolve("").status == "unknown"
    assert key_store.resolve(None).status == "unknown"


def test_disable_takes_effect_after_the_cache_lifetime(redis_client, key_prefix):
    clock = [100.0]
    cached = WriteKeyStore(redis_client, key_prefix, cache_seconds=5, clock=lambda: clock[0])
    admin = WriteKeyStore(redis_client, key_prefix, cache_seconds=0)
    key, info = admin.create("acme")
    assert cached.resolve(key).status == "ok"
    admin.set_enabled(info.key_id, False)
    clock[0] += 4.9
    assert cached.resolve(key).status == "ok"  # still cached
    clock[0] += 0.2
    assert cached.resolve(key).status == "disabled"


def test_list_and_disable(key_store):
    _, first = key_store.create("beta")
    _, second = key_store.create("acme")
    assert [(i.client_id, i.enabled) for i in key_store.list()] == [("acme", True), ("beta", True)]
    assert key_store.set_enabled(first.key_id, False).enabled is False
    assert key_store.set_enabled("000000000000", False) is None
    assert {i.key_id: i.enabled for i in key_store.list()} == {first.key_id: False, second.key_id: True}


@pytest.mark.parametrize("client_id", ["", "a b", "a:b", "x" * 129])
def test_invalid_client_ids(key_store, client_id):
    with pytest.raises(ValueError):
        key_store.create(client_id)


def test_keys_cli(redis_url, key_prefix, key_store, capsys):
    common = ["keys", "--redis-url", redis_url, "--key-prefix", key_prefix]
    assert pistats(common + ["create", "acme"]) == 0
    created = capsys.readouterr()
    key = created.out.strip()
    assert key.startswith("pk_") and key not in created.err
    assert key_store.resolve(key).status == "ok"

    assert pistats(common + ["list"]) == 0
    listing = capsys.readouterr().out
    assert key not in listing
    key_id = key_store.resolve(key).key_id
    assert f"{key_id}  acme" in listing and "yes" in listing

    assert pistats(common + ["disable", key_id]) == 0
    assert capsys.readouterr().out == f"disabled write key {key_id} of client acme\n"
    assert key_store.resolve(key).status == "disabled"

    assert pistats(common + ["disable", "nope"]) == 1
    assert "no write key with id 'nope'" in capsys.readouterr().err
    assert pistats(common + ["create", "a b"]) == 2


def test_keys_cli_without_redis(capsys):
    assert pistats(["keys", "--redis-url", "redis://:secret@127.0.0.1:1/0", "list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pistats keys: Redis unavailable at redis://:***@127.0.0.1:1/0")
    assert "secret" not in err and "Traceback" not in err


def test_ingest_server_command(ingest_stream, kinesis_endpoint, redis_url, key_prefix, write_key, stream_records):
    server = subprocess.Popen(
        [PISTATS, "ingest-server", "--port", "0", "--stream", ingest_stream, "--endpoint-url", kinesis_endpoint,
         "--redis-url", redis_url, "--key-prefix", key_prefix],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        banner = server.stderr.readline()
        assert "listening on http://127.0.0.1:" in banner, banner
        url = banner.split("listening on ")[1].split()[0]
        event = {"event_id": "cli-1", "type": "register", "property_id": "p", "user_id": "u",
                 "timestamp": "2026-11-26T10:00:00Z"}
        request = urllib.request.Request(url, data=json.dumps(event).encode(), method="POST",
                                         headers={"Content-Type": "application/json", "X-Pistats-Key": write_key})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["accepted"] == 1
        assert [r["event"]["event_id"] for _, r in stream_records()] == ["cli-1"]
    finally:
        server.terminate()
        server.wait(timeout=10)
        server.stderr.close()


def test_ingest_server_refuses_a_missing_stream(kinesis_endpoint, redis_url):
    result = subprocess.run(
        [PISTATS, "ingest-server", "--port", "0", "--stream", "pistats-no-such-stream",
         "--endpoint-url", kinesis_endpoint, "--redis-url", redis_url],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("pistats ingest-server: Kinesis stream 'pistats-no-such-stream' not usable")
    assert "Traceback" not in result.stderr


def test_ingest_server_requires_a_stream(monkeypatch, capsys):
    monkeypatch.delenv("PISTATS_INGEST_STREAM", raising=False)
    assert pistats(["ingest-server", "--port", "0"]) == 2
    assert "stream name is required" in capsys.readouterr().err


def test_bad_redis_urls_are_usage_errors(capsys):
    assert pistats(["ingest-server", "--stream", "s", "--redis-url", "http://:pw@h:1"]) == 2
    assert "must start with redis://" in capsys.readouterr().err
    assert pistats(["keys", "--redis-url", "http://:pw@h:1", "list"]) == 2
    err = capsys.readouterr().err
    assert err == "pistats keys: not a Redis URL: 'http://:***@h:1'\n"
