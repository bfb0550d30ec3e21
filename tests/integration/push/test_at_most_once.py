"""At most once under network errors: a campaign run in-process against the real ledger and
registry (PostgreSQL), the ClickHouse server's store, and the local FCM, reached directly or through a TCP proxy
that is down (connections refused) or brought up mid-campaign.

- An answer slower than the client's timeout: FCM got the request (its call log shows it, once);
  the send is settled ``unknown`` and never sent again, by this run or a resume.
- Connections refused: the sends are tried again and go once FCM is reachable; if it never is,
  they end ``failed`` within the retry budget, and FCM saw none of them.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from pistats.push.campaign import CampaignRunner, CampaignSettings
from pistats.push.fcm import FcmClient, FcmConfig
from pistats.push.ledger import CampaignSpec, Ledger
from pistats.push.pacing import RetryPolicy
from pistats.registry.config import RegistryConfig
from pistats.registry.store import Registry
from pistats.store.backends import open_store
from pistats.store.schema import migrate
from pistats.testing.fcm import LocalFcm
from pistats.testing.proxy import TcpProxy
from tests.support import stores
from tests.support.push_tokens import sha, token_of

pytestmark = pytest.mark.integration

server_store_url = stores.server_store_url

NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture
def parts(registry_url, server_store_url):
    """(ledger, registry, store) of one test."""
    config = RegistryConfig(registry_url)
    ledger, registry = Ledger.from_config(config), Registry.for_lambda(config)
    store = open_store(server_store_url, env={})
    migrate(store)
    yield ledger, registry, store
    store.close()
    registry.close()
    ledger.close()


def subscribe(registry: Registry, client_id: str, tokens: list[str]) -> None:
    at = (NOW - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    registry.write(client_id, [{"event_id": f"e{n}", "type": "subscribe", "property_id": "site",
                                "user_id": f"user-{n}", "push_token": token, "timestamp": at}
                               for n, token in enumerate(tokens)], NOW)


def run_campaign(parts, client_id, fcm_config, retry=RetryPolicy(), campaign_id=None, wrap=lambda fcm: fcm):
    """Runs the campaign ``campaign_id``, or a new one to every active token of the property, with
    the FCM client ``wrap`` returns."""
    ledger, registry, store = parts
    if campaign_id is None:
        campaign_id = ledger.create(CampaignSpec(client_id, "site", "Hello", "We missed you", None, None, 100.0),
                                    NOW).campaign_id

    async def go():
        async with FcmClient(fcm_config) as fcm:
            runner = CampaignRunner(ledger=ledger, registry=registry, store=store, fcm=wrap(fcm),
                                    now=lambda: datetime.now(timezone.utc), clock=time.monotonic,
                                    settings=CampaignSettings(concurrency=4, retry=retry), random=lambda: 1.0)
            return await runner.run(ledger.get(campaign_id))

    return asyncio.run(go())


def sends(registry_url: str, campaign_id: str) -> dict[str, tuple[str, str | None, int]]:
    """``sha256 hex -> (state, error_code, attempts)`` of the campaign's sends in the ledger."""
    with psycopg.connect(registry_url) as conn:
        rows = conn.execute("SELECT token_digest, state, error_code, attempts FROM campaign_sends "
                            "WHERE campaign_id = %s", (campaign_id,)).fetchall()
    return {bytes(digest).hex(): (state, code, attempts) for digest, state, code, attempts in rows}


def wait_for_calls(fcm: LocalFcm, count: int, timeout_s: float = 60.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while len(fcm.calls()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return fcm.calls()


def test_an_answer_slower_than_the_timeout_is_unknown_and_fcm_got_it_exactly_once(parts, client_id, registry_url,
                                                                                  tmp_path):
    _, registry, _ = parts
    fast, slow = [token_of(n) for n in range(5)], token_of(0, "slow")
    subscribe(registry, client_id, fast + [slow])
    # The slow token's answer comes after 10 s, the client waits 3 s (a margin a loaded machine's
    # fast answers do not eat): the request reached FCM, which delivers it (200) after the client
    # gave up.
    with LocalFcm(script={"default": "ok", "prefixes": {"slow-": "slow:10000"}}) as fcm:
        config = FcmConfig(fcm.url, fcm.write_credentials(tmp_path / "sa.json"), timeout_s=3.0)
        result = run_campaign(parts, client_id, config)
        calls = wait_for_calls(fcm, 6)
        time.sleep(0.5)  # nothing more arrives
        assert Counter(call["token_sha256"] for call in fcm.calls()) == Counter({sha(t): 1 for t in fast + [slow]})
        assert [c["status"] for c in calls if c["token_sha256"] == sha(slow)] == [200]

        assert (result.state, result.targeted, result.sent, result.unknown, result.failed) == ("done", 6, 5, 1, 0)
        assert sends(registry_url, result.campaign_id)[sha(slow)] == ("unknown", "TIMEOUT", 1)

        with psycopg.connect(registry_url) as conn:  # the campaign run once more, as a resume would
            conn.execute("UPDATE campaigns SET state = 'running', reason = NULL, finished_at = NULL "
                         "WHERE campaign_id = %s", (result.campaign_id,))
        again = run_campaign(parts, client_id, config, campaign_id=result.campaign_id)
        time.sleep(0.5)
        assert len(fcm.calls()) == 6 and (again.sent, again.unknown) == (5, 1)


class UpAfterRefusals:
    """The FCM client, bringing ``proxy`` up once ``refusals`` sends were refused a connection."""

    def __init__(self, fcm: FcmClient, proxy: TcpProxy, refusals: int):
        self._fcm, self._proxy, self._left = fcm, proxy, refusals

    async def send(self, message):
        result = await self._fcm.send(message)
        if (result.kind, result.code) == ("retry", "NETWORK") and "ConnectError" in result.detail:
            self._left -= 1
            if self._left == 0:
                self._proxy.up()
        return result


def test_refused_connections_are_tried_again_and_sent_once_fcm_is_reachable(parts, client_id, registry_url,
                                                                           tmp_path):
    _, registry, _ = parts
    tokens = [token_of(n) for n in range(4)]  # as many as the sends in flight: each is refused first
    subscribe(registry, client_id, tokens)
    with LocalFcm() as fcm:
        proxy = TcpProxy(int(fcm.url.rsplit(":", 1)[1]))
        proxy.down()  # FCM's address refuses connections; the token endpoint (direct) answers
        try:
            config = FcmConfig(f"http://127.0.0.1:{proxy.port}", fcm.write_credentials(tmp_path / "sa.json"))
            result = run_campaign(parts, client_id, config, RetryPolicy(max_attempts=6, base_s=0.2),
                                  wrap=lambda client: UpAfterRefusals(client, proxy, len(tokens)))
        finally:
            proxy.close()
        calls = fcm.calls()
    assert (result.state, result.targeted, result.sent, result.failed, result.unknown) == ("done", 4, 4, 0, 0)
    assert Counter(call["token_sha256"] for call in calls) == Counter({sha(t): 1 for t in tokens})
    attempts = [attempts for _, _, attempts in sends(registry_url, result.campaign_id).values()]
    assert min(attempts) >= 2  # refused, then sent


def test_refused_connections_throughout_fail_within_the_budget_and_reach_nobody(parts, client_id, registry_url,
                                                                               tmp_path):
    _, registry, _ = parts
    tokens = [token_of(n) for n in range(3)]
    subscribe(registry, client_id, tokens)
    with LocalFcm() as fcm:
        proxy = TcpProxy(int(fcm.url.rsplit(":", 1)[1]))
        proxy.down()
        try:
            config = FcmConfig(f"http://127.0.0.1:{proxy.port}", fcm.write_credentials(tmp_path / "sa.json"))
            result = run_campaign(parts, client_id, config, RetryPolicy(max_attempts=3, base_s=0.1, budget_s=5))
        finally:
            proxy.close()
        calls = fcm.calls()
    assert (result.state, result.targeted, result.sent, result.failed, result.unknown) == ("done", 3, 0, 3, 0)
    assert set(sends(registry_url, result.campaign_id).values()) == {("failed", "NETWORK", 3)}
    assert calls == []
