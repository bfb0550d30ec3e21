"""Secrets never reach reprs, logs or messages (pistats.redact)."""

import pytest

from pistats.redact import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("clickhouse://writer:p@ss@ch.internal:9000/pistats", "clickhouse://writer:***@ch.internal:9000/pistats"),
        ("clickhouse://writer@ch.internal:9000/pistats", "clickhouse://writer@ch.internal:9000/pistats"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("clickhouse://u:pw@[::1:9000/db", "clickhouse://u:***@[::1:9000/db"),  # unparsable: by pattern
    ],
)
def test_passwords_are_hidden_and_nothing_else_changes(url, shown):
    assert redact_url(url) == shown
