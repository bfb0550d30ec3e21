"""Store fixtures and fast event rows for integration tests outside tests/integration/store (whose conftest has the
same ones): the real ClickHouse server (a database of the test's own, dropped afterwards) and
chdb, each test run on both.

A test module takes them by name::

    from tests.support import stores

    server_store_url, chdb_store_url, store_url, store = (
        stores.server_store_url, stores.chdb_store_url, stores.store_url, stores.store)
"""

import pytest

from pistats.store.backends import open_store
from pistats.store.rows import event_row
from pistats.store.rows.columns import EVENT_INDEX
from tests.support.samples import make_event


@pytest.fixture
def server_store_url(clickhouse_url, unique_name):
    url = clickhouse_url.rsplit("/", 1)[0] + f"/{unique_name}"
    yield url
    store = open_store(url, env={})
    store.execute(f"DROP DATABASE IF EXISTS {unique_name}")
    store.close()


@pytest.fixture
def chdb_store_url(tmp_path):
    return f"chdb://{tmp_path}/chdb"


@pytest.fixture(params=["server", "chdb"])
def store_url(request):
    return request.getfixturevalue(f"{request.param}_store_url")


@pytest.fixture
def store(store_url):
    """An opened store with no schema yet."""
    opened = open_store(store_url, env={})
    yield opened
    opened.close()


def event_row_template(**fields) -> tuple:
    """A stored ``events`` row of a sample event (``tests.support.samples.make_event``) with these fields."""
    return event_row(make_event(0, **fields), 1000)[0]


def with_fields(template: tuple, **fields) -> tuple:
    """The row with these columns changed (times as epoch milliseconds, as rows hold them):
    rows by the hundred thousand without converting an event each."""
    row = list(template)
    for name, value in fields.items():
        row[EVENT_INDEX[name]] = value
    return tuple(row)
