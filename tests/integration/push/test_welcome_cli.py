"""``pistats registry property`` and the welcome campaign's way to the store: ``pistats push
export`` then ``pistats push stats``, as users run them (processes), against PostgreSQL, the
ClickHouse server and the local FCM."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pistats.push.fcm import FcmConfig
from pistats.push.fcm_sync import SyncFcmSender
from pistats.push.ledger import Ledger
from pistats.push.welcome import WelcomeConfig, Welcomer
from pistats.registry.config import RegistryConfig
from pistats.registry.store import Registry
from pistats.store.backends import open_store
from pistats.store.schema import migrate
from pistats.testing.fcm import LocalFcm
from tests.support import stores

pytestmark = pytest.mark.integration

PISTATS = str(Path(sys.executable).parent / "pistats")
server_store_url = stores.server_store_url
NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture
def env(registry_url, server_store_url):
    store = open_store(server_store_url, env={})
    migrate(store)
    store.close()
    return {**os.environ, "PISTATS_REGISTRY_URL": registry_url, "PISTATS_STORE_URL": server_store_url}


def run(env, *args):
    return subprocess.run([PISTATS, *args], env=env, capture_output=True, text=True, timeout=120)


def test_the_property_command_sets_shows_replaces_and_clears_a_welcome(env, client_id):
    where = ["--client", client_id, "--property", "web"]
    shown = run(env, "registry", "property", *where, "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["welcome"] is None
    first = run(env, "registry", "property", *where, "--welcome-title", "Welcome", "--welcome-body", "Thanks",
                "--welcome-url", "https://shop.example/hi", "--json")
    assert first.returncode == 0, first.stderr
    first = json.loads(first.stdout)
    assert first["change"] == "set" and first["welcome"]["title"] == "Welcome"
    again = json.loads(run(env, "registry", "property", *where, "--welcome-title", "Welcome", "--welcome-body",
                           "Thanks", "--welcome-url", "https://shop.example/hi", "--json").stdout)
    assert again["change"] == "unchanged" and again["welcome"]["campaign_id"] == first["welcome"]["campaign_id"]
    second = json.loads(run(env, "registry", "property", *where, "--welcome-title", "Hello", "--welcome-body",
                            "New", "--json").stdout)
    assert second["change"] == "set" and second["welcome"]["campaign_id"] != first["welcome"]["campaign_id"]
    text = run(env, "registry", "property", *where)
    assert text.stdout.startswith(f"property web of client {client_id}: welcome notification "
                                  f"{second['welcome']['campaign_id']}") and "  title  Hello\n" in text.stdout
    cleared = run(env, "registry", "property", *where, "--clear")
    assert cleared.stdout == f"property web of client {client_id}: no welcome notification (cleared)\n"
    ledger = Ledger.from_config(RegistryConfig(env["PISTATS_REGISTRY_URL"]))
    try:
        assert ledger.welcome(client_id, "web") is None
        assert {ledger.get(c["welcome"]["campaign_id"]).state for c in (first, second)} == {"done"}
        assert ledger.get(first["welcome"]["campaign_id"]).kind == "welcome"
    finally:
        ledger.close()


@pytest.mark.parametrize("args, message", [
    (["--welcome-title", "t"], "a welcome needs both --welcome-title and --welcome-body"),
    (["--clear", "--welcome-body", "b"], "--clear goes without --welcome-title, --welcome-body and --welcome-url"),
    (["--welcome-title", "t", "--welcome-body", "b", "--welcome-url", "http://x.example"],
     "welcome: url must be an https:// URL with a host (FCM requires HTTPS links)"),
    (["--welcome-title", "t", "--welcome-body", "b" * 5000], "welcome: the message is"),
])
def test_usage_errors_in_one_line(env, client_id, args, message):
    result = run(env, "registry", "property", "--client", client_id, "--property", "web", *args)
    assert result.returncode == 2 and result.stderr.startswith(f"pistats registry: {message}"), result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_welcome_sends_reach_the_store_by_push_export_then_show_in_push_stats(env, client_id, tmp_path):
    registry = Registry.for_lambda(RegistryConfig(env["PISTATS_REGISTRY_URL"]))
    with LocalFcm(script={"default": "ok", "prefixes": {"dead-": "unregistered"}}) as fcm:
        sender = SyncFcmSender(FcmConfig(fcm.url, fcm.write_credentials(tmp_path / "sa.json"), timeout_s=2.0))
        welcome = Welcomer(ledger=Ledger(registry.connections), registry=registry, sender=sender,
                           config=WelcomeConfig(cache_s=0))
        try:
            set_ = run(env, "registry", "property", "--client", client_id, "--property", "web", "--welcome-title",
                       "Hi", "--welcome-body", "Welcome", "--json")
            campaign_id = json.loads(set_.stdout)["welcome"]["campaign_id"]
            tokens = [f"{client_id}-a", f"{client_id}-b", f"dead-{client_id}"]
            events = [{"event_id": f"e{n}", "type": "subscribe", "property_id": "web", "user_id": f"u{n}",
                       "push_token": token, "timestamp": (NOW - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z")}
                      for n, token in enumerate(tokens)]
            outcome = welcome.after_write(client_id, registry.write(client_id, events, NOW,
                                                                    welcome_since=welcome.welcome_since(NOW)))
            assert (outcome.sent, outcome.invalid) == (2, 1)
        finally:
            welcome.close()
            registry.close()

    resumed = run(env, "push", "resume", campaign_id, "--fcm-credentials", str(tmp_path / "sa.json"))
    assert resumed.returncode == 1 and "is the welcome notification of" in resumed.stderr, resumed.stderr

    exported = run(env, "push", "export", "--client", client_id, "--json")
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout) == {"exported": 3, "campaigns": {campaign_id: 3}}
    again = run(env, "push", "export", "--client", client_id, "--json")
    assert json.loads(again.stdout) == {"exported": 0, "campaigns": {}}

    stats = run(env, "push", "stats", campaign_id, "--json")
    assert stats.returncode == 0, stats.stderr
    figures = json.loads(stats.stdout)
    assert (figures["campaign_id"], figures["property_id"], figures["targeted"], figures["sent"],
            figures["invalidated"]) == (campaign_id, "web", 3, 2, 1)
    store = open_store(env["PISTATS_STORE_URL"], env={})
    try:
        hashes = {row[0] for row in store.query(
            f"SELECT token_hash FROM {store.database}.push_sends FINAL WHERE campaign_id = '{campaign_id}'")}
    finally:
        store.close()
    assert hashes == {hashlib.sha256(t.encode()).hexdigest() for t in tokens}
