"""The ledger's pure parts and its refusals before any statement: no database needed."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone

import pytest

from pistats.push.ledger import (
    SETTLED_STATES,
    Campaign,
    CampaignSpec,
    Ledger,
    Settled,
    Target,
    lock_key,
    new_campaign_id,
)

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
DIGEST = hashlib.sha256(b"tok").digest()


class NoConnections:
    """Connections that fail the test if used: these calls must not reach the database."""

    def connection(self):
        raise AssertionError("no statement expected")

    def close(self):
        pass


def test_campaign_ids_are_c_and_20_hex_digits_and_differ():
    ids = {new_campaign_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"c_[0-9a-f]{20}", i) for i in ids)


def test_lock_keys_are_stable_int4_pairs_in_their_own_namespace():
    classid, objid = lock_key("c_0123456789abcdef0123")
    assert lock_key("c_0123456789abcdef0123") == (classid, objid)
    assert 0 <= classid < 2**31 and 0 <= objid < 2**31
    assert lock_key("c_0123456789abcdef0124")[0] == classid
    assert len({lock_key(new_campaign_id())[1] for _ in range(1000)}) == 1000


def test_a_target_keeps_its_token_out_of_the_repr():
    target = Target(DIGEST, "fcm-secret-token", "u-1", "web")
    assert "fcm-secret-token" not in repr(target) and "u-1" in repr(target)


@pytest.mark.parametrize("state", SETTLED_STATES)
def test_settled_states(state):
    assert Settled(DIGEST, state, None, 1, T0).state == state


@pytest.mark.parametrize("bad, message", [
    ({"state": "pending"}, "settles as one of"),
    ({"state": "delivered"}, "settles as one of"),
    ({"token_digest": b"short"}, "32 bytes"),
    ({"attempts": -1}, "attempts"),
    ({"at": datetime(2026, 11, 26, 12, 0)}, "timezone-aware"),
])
def test_settled_refuses(bad, message):
    values = {"token_digest": DIGEST, "state": "sent", "error_code": None, "attempts": 1, "at": T0} | bad
    with pytest.raises(ValueError, match=message):
        Settled(**values)


def test_refusals_and_empty_batches_send_no_statement():
    ledger = Ledger(NoConnections())
    assert ledger.claim("c_x", []) == []
    assert ledger.settle("c_x", []) == 0
    assert ledger.mark_exported("c_x", []) == 0
    assert ledger.active_targets("acme", "site-1", user_ids=[]) == []
    with pytest.raises(ValueError, match="32 bytes"):
        ledger.claim("c_x", [Target(b"short", "t", "u", "web")])
    with pytest.raises(ValueError, match="finishes as one of"):
        ledger.finish("c_x", "running")
    assert ledger.release("c_x", []) == 0
    spec = CampaignSpec("acme", "site-1", "Title", "Body", None, None, 500)
    with pytest.raises(ValueError, match="created_at must be timezone-aware"):
        ledger.create(spec, datetime(2026, 11, 26))
    with pytest.raises(ValueError, match="rate"):
        ledger.create(CampaignSpec("acme", "site-1", "Title", "Body", None, None, 0), T0)


def test_a_preview_is_the_campaign_create_would_store_without_an_id():
    spec = CampaignSpec("acme", "site-1", "Title", "Body", "https://x.example", "country=DE", 500)
    assert Ledger(NoConnections()).preview(spec, T0) == Campaign(
        "", "acme", "site-1", "Title", "Body", "https://x.example", "country=DE", 500.0, T0, "running", None, None)


def test_hold_needs_a_dedicated_connection():
    with pytest.raises(ValueError, match="connect"):
        with Ledger(NoConnections()).hold("c_x"):
            pass
