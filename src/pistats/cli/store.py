"""``pistats store init|info [--store URL]``: create or migrate the store's schema, show its state."""

from __future__ import annotations

import argparse
import os

from pistats.cli._support import UserError
from pistats.store.backends import StoreError, open_store
from pistats.store.config import store_url_from
from pistats.store.schema import MIGRATIONS, applied_versions, migrate


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "store",
        help="create/migrate the ClickHouse schema (init) or show the store's version and migrations (info)",
        description=(
            "STORE is clickhouse://user[:pass]@host:9000/db, clickhouses://... (TLS) or chdb:///path/to/dir; "
            "default: $PISTATS_STORE_URL, else chdb://./.pistats/chdb. Without a password in the URL, "
            "$PISTATS_CLICKHOUSE_PASSWORD is used. init is idempotent."
        ),
    )
    parser.add_argument("action", choices=["init", "info"])
    parser.add_argument("--store", metavar="URL", help="store URL (see above)")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    url = store_url_from(args.store, os.environ)
    try:
        store = open_store(url)
        try:
            if args.action == "init":
                applied = migrate(store)
                done = ", ".join(str(version) for version in applied) or "none (already up to date)"
                print(f"{store.url.redacted}: ClickHouse {store.server_version}; migrations applied: {done}")
            else:
                versions = applied_versions(store) if _has_migrations(store) else set()
                pending = [migration.version for migration in MIGRATIONS if migration.version not in versions]
                print(f"store             {store.url.redacted}")
                print(f"server version    {store.server_version}")
                print(f"schema versions   {', '.join(map(str, sorted(versions))) or 'none'}")
                print(f"pending           {', '.join(map(str, pending)) or 'none'}")
        finally:
            store.close()
    except StoreError as error:
        raise UserError(f"store unavailable: {error}") from None
    return 0


def _has_migrations(store) -> bool:
    rows = store.query(
        f"SELECT count() FROM system.tables WHERE database = '{store.database}' AND name = 'schema_migrations'"
    )
    return bool(rows and rows[0][0])
