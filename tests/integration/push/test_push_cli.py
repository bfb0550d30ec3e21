"""``pistats push`` as users run it: a process against the real registry (PostgreSQL), the real
ClickHouse server and the local FCM v1 server, including a sender killed with SIGKILL and resumed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from pistats.registry.config import RegistryConfig
from pistats.registry.store import Registry
from pistats.store.backends import open_store
from pistats.store.schema import migrate
from pistats.testing.fcm import LocalFcm
from tests.support import stores
from tests.support.push_tokens import sha, token_of

pytestmark = pytest.mark.integration

server_store_url = stores.server_store_url
NOW = datetime.now(timezone.utc).replace(microsecond=0)


def subscribe(registry_url: str, client_id: str, tokens: list[str], property_id: str = "site") -> None:
    registry = Registry.for_lambda(RegistryConfig(registry_url))
    try:
        for start in range(0, len(tokens), 100):
            registry.write(client_id, [
                {"event_id": f"e{start + i}", "type": "subscribe", "property_id": property_id,
                 "user_id": f"user-{start + i}", "push_token": token,
                 "timestamp": (NOW - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                 "context": {"sdk": {"name": "pistats-js", "version": "2.0.0"}}}
                for i, token in enumerate(tokens[start:start + 100])], NOW)
    finally:
        registry.close()


@pytest.fixture
def store_url(server_store_url):
    store = open_store(server_store_url, env={})
    migrate(store)
    store.close()
    return server_store_url


@pytest.fixture
def env(registry_url, store_url, tmp_path):
    def make(fcm: LocalFcm) -> dict:
        return {**os.environ, "PISTATS_REGISTRY_URL": registry_url, "PISTATS_STORE_URL": store_url,
                "PISTATS_FCM_ENDPOINT": fcm.url,
                "PISTATS_FCM_CREDENTIALS": fcm.write_credentials(tmp_path / "service-account.json")}
    return make


def pistats(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pistats.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def subscription_states(registry_url: str, client_id: str) -> dict[str, tuple[str, str | None]]:
    with psycopg.connect(registry_url) as conn:
        rows = conn.execute("SELECT token, status, last_error FROM push_subscriptions WHERE client_id = %s",
                            (client_id,)).fetchall()
    return {token: (status, error) for token, status, error in rows}


def test_a_campaign_sends_once_to_each_active_token_and_cleans_the_registry(registry_url, client_id, env, tmp_path):
    good = [token_of(n) for n in range(120)]
    dead = [token_of(n, "dead") for n in range(15)]
    busy = [token_of(n, "busy") for n in range(5)]
    subscribe(registry_url, client_id, good + dead + busy)
    script = {"default": "ok", "prefixes": {"dead-": "unregistered", "busy-": "quota:1:0.2"}}
    with LocalFcm(script=script) as fcm:
        done = pistats(env(fcm), "push", "send", "--client", client_id, "--property", "site", "--title", "Hello",
                       "--body", "We missed you", "--url", "https://example.com/back", "--json")
        calls = fcm.calls()
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert {k: result[k] for k in ("targeted", "sent", "failed", "invalidated", "unknown")} == \
        {"targeted": 140, "sent": 125, "failed": 0, "invalidated": 15, "unknown": 0}
    delivered = Counter(call["token_sha256"] for call in calls if call["status"] == 200)
    assert set(delivered) == {sha(t) for t in good + busy} and set(delivered.values()) == {1}
    assert Counter(call["token_sha256"] for call in calls)[sha(busy[0])] == 2  # the 429, then the send
    states = subscription_states(registry_url, client_id)
    assert {states[t][0] for t in dead} == {"invalid"} and all("UNREGISTERED" in states[t][1] for t in dead)
    assert {states[t][0] for t in good + busy} == {"active"}
    for secret in good + dead:
        assert secret not in done.stdout + done.stderr

    stats = pistats(env(fcm), "push", "stats", result["campaign_id"], "--json")
    assert stats.returncode == 0, stats.stderr
    figures = json.loads(stats.stdout)
    assert (figures["targeted"], figures["sent"], figures["invalidated"], figures["clicked"]) == (140, 125, 15, 0)


def test_a_sender_killed_mid_campaign_resumes_without_any_token_receiving_it_twice(
        registry_url, client_id, env, tmp_path):
    tokens = [token_of(n) for n in range(600)]
    subscribe(registry_url, client_id, tokens)
    calls_file = tmp_path / "calls.jsonl"
    with LocalFcm(script={"default": "slow:20"}, calls_out=str(calls_file)) as fcm:
        environment = env(fcm)
        sender = subprocess.Popen(
            [sys.executable, "-m", "pistats.cli.main", "push", "send", "--client", client_id, "--property", "site",
             "--title", "Flash sale", "--body", "Today only", "--rate", "150", "--concurrency", "20", "--json"],
            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not calls_file.exists() or
                                               calls_file.read_text().count("\n") < 150):
            time.sleep(0.05)
        sender.send_signal(signal.SIGKILL)
        _, stderr = sender.communicate(timeout=30)
        assert sender.returncode == -signal.SIGKILL
        campaign_id = stderr.split("campaign ", 1)[1].split(":", 1)[0]
        killed_at = calls_file.read_text().count("\n")
        assert killed_at < len(tokens)  # killed mid-campaign, not after it

        resumed = pistats(environment, "push", "resume", campaign_id, "--json")
        assert resumed.returncode == 0, resumed.stderr
    calls = [json.loads(line) for line in calls_file.read_text().splitlines()]
    delivered = Counter(call["token_sha256"] for call in calls if call["status"] == 200)
    assert max(delivered.values()) == 1  # no token received it twice
    result = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert result["targeted"] == len(tokens)
    assert result["sent"] + result["unknown"] == len(tokens)
    # Every token is accounted for: delivered and known as sent, or unknown (claimed by the dead
    # run: delivered or not, it is never sent again). Unknown at most: the claims in flight or
    # queued (2 x concurrency) and the outcomes not yet settled (a settle interval at the rate,
    # with a settle's own time: one second at 150/s).
    assert 0 < result["unknown"] <= 2 * 20 + 150
    assert len(delivered) >= result["sent"]
    assert len(delivered) <= result["sent"] + result["unknown"]


def test_an_unknown_segment_term_is_a_usage_error_naming_it(registry_url, client_id, env):
    with LocalFcm() as fcm:
        done = pistats(env(fcm), "push", "send", "--client", client_id, "--property", "site", "--title", "T",
                       "--body", "B", "--segment", "country=DE,shoe_size=44")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "shoe_size" in done.stderr and "Traceback" not in done.stderr


def test_refused_credentials_abort_the_campaign_keep_every_token_and_a_resume_sends_them(registry_url, client_id, env):
    tokens = [token_of(n) for n in range(30)]
    subscribe(registry_url, client_id, tokens)
    with LocalFcm(script={"default": "ok"}) as fcm:
        environment = env(fcm)
        fcm.revoke(future=True)  # every access token refused: 401 after the one refresh
        done = pistats(environment, "push", "send", "--client", client_id, "--property", "site", "--title", "T",
                       "--body", "B", "--json")
        assert done.returncode == 1
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["state"] == "aborted" and "UNAUTHENTICATED" in result["reason"]
        assert result["sent"] == 0 and result["targeted"] == 0
        assert {status for status, _ in subscription_states(registry_url, client_id).values()} == {"active"}

        fcm.restore()  # credentials fixed: the resume sends them all
        resumed = pistats(environment, "push", "resume", result["campaign_id"], "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["sent"] == 30


def test_a_dry_run_counts_and_sends_nothing(registry_url, client_id, env):
    subscribe(registry_url, client_id, [token_of(n) for n in range(12)])
    with LocalFcm() as fcm:
        done = pistats(env(fcm), "push", "send", "--client", client_id, "--property", "site", "--title", "T",
                       "--body", "B", "--dry-run", "--json")
        assert fcm.calls() == []
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"dry_run": True, "users": None, "tokens": 12}


def test_a_store_without_push_sends_is_refused_before_anything_is_sent(registry_url, client_id, env,
                                                                       server_store_url):
    subscribe(registry_url, client_id, [token_of(n) for n in range(3)])
    with LocalFcm() as fcm:
        environment = {**env(fcm), "PISTATS_STORE_URL": server_store_url + "_uninitialised"}
        done = pistats(environment, "push", "send", "--client", client_id, "--property", "site", "--title", "T",
                       "--body", "B")
        assert fcm.calls() == []
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "pistats store init" in done.stderr
