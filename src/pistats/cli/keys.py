"""``pistats keys create|list|disable``: manage client write keys (stored hashed in Redis)."""

from __future__ import annotations

import argparse
import os
import sys

from pistats.cli._support import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "keys",
        help="create, list or disable client write keys",
        description=(
            "Write keys authenticate SDK requests (X-Pistats-Key). Redis stores only a digest of each "
            "key: `create` prints the new key once, on stdout; afterwards keys are known by their id."
        ),
    )
    parser.add_argument("--redis-url", default=os.environ.get("PISTATS_REDIS_URL", "redis://127.0.0.1:6379/0"),
                        help="Redis URL (PISTATS_REDIS_URL; default redis://127.0.0.1:6379/0)")
    parser.add_argument("--key-prefix", default=os.environ.get("PISTATS_INGEST_KEY_PREFIX", "pistats"),
                        help="prefix of the ingest's Redis keys (PISTATS_INGEST_KEY_PREFIX; default pistats)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    create = actions.add_parser("create", help="create an enabled key for a client and print it once")
    create.add_argument("client_id", metavar="CLIENT_ID")
    actions.add_parser("list", help="list keys (id, client, enabled, created) without the keys themselves")
    disable = actions.add_parser("disable", help="disable a key by its id (requests get 403 within seconds)")
    disable.add_argument("key_id", metavar="KEY_ID")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from pistats.ingest.keys import WriteKeyStore
    from pistats.redact import redact_url
    from pistats.redisconn import REDIS_ERRORS, RedisTarget, connect

    try:
        target = RedisTarget.parse(args.redis_url)
        connection = connect(target, connect_timeout_s=2, socket_timeout_s=5)
    except ValueError as error:
        raise UserError(str(error), exit_code=2) from None
    except (*REDIS_ERRORS, OSError) as error:
        raise UserError(f"Redis unavailable at {redact_url(args.redis_url)}: {error}") from None
    try:
        store = WriteKeyStore(connection, args.key_prefix, cache_seconds=0, wait_replicas=target.wait_replicas)
        if args.action == "create":
            try:
                key, info = store.create(args.client_id)
            except ValueError as error:
                raise UserError(str(error), exit_code=2) from None
            print(key)
            print(f"created write key {info.key_id} for client {info.client_id}; "
                  "the key is shown only this once", file=sys.stderr)
        elif args.action == "list":
            infos = store.list()
            print(f"{'KEY_ID':<14}{'CLIENT_ID':<24}{'ENABLED':<9}CREATED")
            for info in infos:
                print(f"{info.key_id:<14}{info.client_id:<24}{'yes' if info.enabled else 'no':<9}{info.created_at}")
        else:
            info = store.set_enabled(args.key_id, False)
            if info is None:
                raise UserError(f"no write key with id {args.key_id!r} (see `pistats keys list`)")
            print(f"disabled write key {info.key_id} of client {info.client_id}")
    except (*REDIS_ERRORS, OSError) as error:
        raise UserError(f"Redis unavailable at {redact_url(args.redis_url)}: {error}") from None
    return 0
