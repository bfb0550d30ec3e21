"""PushSend rows and their insert, without a store: the row never holds the token."""

import hashlib
from datetime import datetime, timezone

import pytest

from pistats.push.results import PushSend, token_hash, write_push_sends
from pistats.store.rows import from_epoch_ms
from pistats.store.rows.columns import PUSH_SEND_COLUMNS
from pistats.store.schema import PUSH_SENDS, TABLE_COLUMNS

TOKEN = "fcm-token:APA91b" + "x" * 140
SETTLED = datetime(2026, 11, 26, 10, 0, 0, 250000, tzinfo=timezone.utc)


def send(**overrides):
    fields = dict(campaign_id="c_1", client_id="client-a", property_id="prop-1", user_id="user-1",
                  token_hash=token_hash(TOKEN), platform="web", status="sent", error_code="", attempts=1,
                  settled_at=SETTLED)
    fields.update(overrides)
    return PushSend(**fields)


def test_token_hash_is_sha256_hex():
    assert token_hash(TOKEN) == hashlib.sha256(TOKEN.encode()).hexdigest()
    assert len(token_hash(TOKEN)) == 64


def test_row_in_column_order_without_the_token():
    row = send(error_code=None, status="invalid").row()
    assert len(row) == len(PUSH_SEND_COLUMNS) and TABLE_COLUMNS[PUSH_SENDS] == PUSH_SEND_COLUMNS
    named = dict(zip((column.name for column in PUSH_SEND_COLUMNS), row))
    assert named["token_hash"] == token_hash(TOKEN) and named["status"] == "invalid" and named["error_code"] == ""
    assert from_epoch_ms(named["settled_at"]) == SETTLED.replace(microsecond=250000)
    assert not any(TOKEN in str(value) for value in row)


@pytest.mark.parametrize("overrides, says", [
    ({"status": "delivered"}, "status must be one of sent, failed, invalid, unknown"),
    ({"token_hash": TOKEN}, "sha256 hex"),
    ({"token_hash": token_hash(TOKEN).upper()}, "sha256 hex"),
    ({"token_hash": token_hash(TOKEN)[:63]}, "sha256 hex"),
    ({"attempts": -1}, "attempts"),
    ({"attempts": 2**32}, "attempts"),
])
def test_bad_sends_are_refused(overrides, says):
    with pytest.raises(ValueError, match=says):
        send(**overrides)


class RecordingStore:
    def __init__(self):
        self.inserts = []

    def prepare_insert(self, table, rows):
        def sending(token):
            self.inserts.append((table, list(rows), token))

        return sending


def test_write_is_one_insert_and_nothing_for_no_sends():
    store = RecordingStore()
    write_push_sends(store, [])
    assert store.inserts == []
    sends = [send(user_id=f"user-{index}", token_hash=token_hash(f"t{index}")) for index in range(3)]
    write_push_sends(store, sends)
    assert store.inserts == [(PUSH_SENDS, [one.row() for one in sends], None)]
