"""Two runs of one campaign at once: racing claimers each get a disjoint share and together every
token once; the hold refuses a second run, and a run killed with SIGKILL frees it."""

from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import psycopg
import pytest

from pistats.push.ledger import CampaignSpec, Ledger, LedgerBusy, Target, lock_key
from pistats.registry.config import RegistryConfig

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def target(n: int) -> Target:
    token = f"fcm-token-{n}"
    return Target(hashlib.sha256(token.encode()).digest(), token, f"u-{n}", "web")


@pytest.fixture
def client_id(unique_name, registry_url):
    yield unique_name
    with psycopg.connect(registry_url, autocommit=True) as conn:
        conn.execute("DELETE FROM campaigns WHERE client_id = %s", (unique_name,))


@pytest.fixture
def make_ledger(registry_url):
    made = []

    def make():
        ledger = Ledger.from_config(RegistryConfig(registry_url))
        made.append(ledger)
        return ledger

    yield make
    for ledger in made:
        ledger.close()


@pytest.fixture
def campaign_id(make_ledger, client_id):
    return make_ledger().create(CampaignSpec(client_id, "site-1", "T", "B", None, None, 500.0), T0).campaign_id


def test_two_claimers_racing_claim_each_token_exactly_once(make_ledger, campaign_id):
    targets = [target(n) for n in range(2000)]
    ledgers = [make_ledger(), make_ledger()]
    barrier = threading.Barrier(2)
    claimed: list[list[Target]] = [[], []]
    errors = []

    def run(i):
        # Each walks the same targets in its own order and page sizes, starting together.
        order = targets[:]
        random.Random(i).shuffle(order)
        size = 100 + 37 * i
        try:
            barrier.wait()
            for start in range(0, len(order), size):
                claimed[i] += ledgers[i].claim(campaign_id, order[start:start + size])
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    first, second = ({t.token_digest for t in c} for c in claimed)
    assert len(first) == len(claimed[0]) and len(second) == len(claimed[1])
    assert first.isdisjoint(second)
    assert first | second == {t.token_digest for t in targets}
    assert first and second  # both took part
    assert ledgers[0].counts(campaign_id)["targeted"] == 2000


def test_a_second_hold_is_busy_until_the_first_ends(make_ledger, campaign_id):
    first, second = make_ledger(), make_ledger()
    with first.hold(campaign_id) as hold:
        hold.check()
        with pytest.raises(LedgerBusy, match="another run"):
            with second.hold(campaign_id):
                pass
        with pytest.raises(LedgerBusy):  # the same Ledger's second hold too: its own session
            with first.hold(campaign_id):
                pass
        with second.hold("c_another_campaign_00"):  # other campaigns are free
            pass
    with second.hold(campaign_id):
        pass


def test_a_hold_whose_connection_breaks_says_so(make_ledger, campaign_id, registry_url):
    ledger = make_ledger()
    with ledger.hold(campaign_id) as hold:
        with psycopg.connect(registry_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                          "AND classid = %s AND objid = %s AND objsubid = 2", lock_key(campaign_id))
        with pytest.raises(LedgerBusy, match="lost"):
            hold.check()
        with make_ledger().hold(campaign_id):  # another run may take it now
            pass


HOLDER = """
import sys, time
from pistats.push.ledger import Ledger
from pistats.registry.config import RegistryConfig
ledger = Ledger.from_config(RegistryConfig(sys.argv[1]))
with ledger.hold(sys.argv[2]):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_holder_killed_with_sigkill_frees_the_campaign(make_ledger, campaign_id, registry_url):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, registry_url, campaign_id],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        ledger = make_ledger()
        with pytest.raises(LedgerBusy):
            with ledger.hold(campaign_id):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        # The server notices the closed socket at once; allow it a moment.
        deadline = time.monotonic() + 10
        while True:
            try:
                with ledger.hold(campaign_id):
                    break
            except LedgerBusy:
                assert time.monotonic() < deadline, "the killed holder's lock was not released"
                time.sleep(0.05)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
