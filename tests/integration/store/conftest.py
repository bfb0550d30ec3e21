"""Stores for integration tests: the real ClickHouse server (a fresh database per test) and chdb,
from tests/support/stores.py (shared with the push tests)."""

import sys
from pathlib import Path

from tests.support import stores

sys.path.insert(0, str(Path(__file__).parent))

server_store_url, chdb_store_url, store_url, store = (
    stores.server_store_url, stores.chdb_store_url, stores.store_url, stores.store)
