"""``pistats registry init|info|show|property``: the subscriber registry on PostgreSQL, for operators."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import nullcontext

from pistats.cli._support import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    from pistats.registry.config import local_url

    parser = subparsers.add_parser(
        "registry",
        help="create or upgrade the subscriber registry's tables, show its version or a user",
        description=(
            "The subscriber registry: users and their push subscriptions in PostgreSQL, written by the "
            "ingest when PISTATS_REGISTRY_URL is set (see docs/registry.md). Push tokens are never printed: "
            "a subscription shows the first 12 hex digits of its token's SHA-256."
        ),
    )
    parser.add_argument("--registry-url", dest="url", default=None,
                        help="postgresql://user@host:port/db (PISTATS_REGISTRY_URL; default the local "
                             f"{local_url()}); the password from the URL or PGPASSWORD")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    actions.add_parser("init", help="apply the migrations this version ships (idempotent)")
    actions.add_parser("info", help="print the schema version and row counts")
    show = actions.add_parser("show", help="print a user and their push subscriptions")
    show.add_argument("--client", required=True, help="client id (the write key's)")
    show.add_argument("--user", required=True, help="user id")
    show.add_argument("--property", help="only this property (default: every property of the user)")
    show.add_argument("--json", action="store_true", help="one JSON object on stdout")
    prop = actions.add_parser(
        "property", help="show or set a property's welcome notification",
        description="A property's settings. --welcome-title and --welcome-body set the welcome notification the "
                    "ingest sends to each token a subscribe activates (a new text is a new welcome campaign, "
                    "with stats of its own); --clear removes it; without either, the current setting is printed. "
                    "The ingest sends it only with FCM configured (PISTATS_FCM_CREDENTIALS); containers see a "
                    "change within a minute. See docs/push.md.")
    prop.add_argument("--client", required=True, help="client id (the write key's)")
    prop.add_argument("--property", required=True, help="property id")
    prop.add_argument("--welcome-title", help="the welcome's title")
    prop.add_argument("--welcome-body", help="the welcome's body")
    prop.add_argument("--welcome-url", help="the https page a click opens (webpush.fcm_options.link)")
    prop.add_argument("--clear", action="store_true", help="send no welcome any more")
    prop.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import os

    import psycopg

    from pistats.registry.config import RegistryConfig, local_url
    from pistats.registry.migrations import LATEST_VERSION, migrate, schema_version

    if args.action == "property":
        _check_property_args(args)
    config = RegistryConfig.from_env(url=args.url) or RegistryConfig(local_url(os.environ))
    where = config.redacted_url
    try:
        with psycopg.connect(config.url, **config.connect_kwargs()) as conn:
            if args.action == "init":
                applied = migrate(conn)
                version = schema_version(conn)
                done = f"applied migration(s) {', '.join(map(str, applied))}" if applied else "already up to date"
                print(f"registry at {where}: schema version {version} ({done})")
            elif args.action == "info":
                _info(conn, where, schema_version(conn), LATEST_VERSION)
            elif args.action == "property":
                _property(conn, args, schema_version(conn), LATEST_VERSION)
            else:
                _show(conn, args)
    except psycopg.Error as error:
        # The class and SQLSTATE only: a server message can quote a row, and rows hold tokens.
        sqlstate = getattr(error, "sqlstate", None)
        detail = f"SQLSTATE {sqlstate}" if sqlstate else (str(error).splitlines() or [""])[0]
        raise UserError(f"registry at {where}: {type(error).__name__}" + (f": {detail}" if detail else "")) from None
    return 0


def _info(conn, where: str, version: int, latest: int) -> None:
    state = "up to date" if version == latest else f"run `pistats registry init` to reach {latest}"
    print(f"registry at {where}: schema version {version} of {latest} ({state})")
    if version == 0:
        return
    (subscribers,) = conn.execute("SELECT count(*) FROM subscribers").fetchone()
    print(f"  subscribers          {subscribers}")
    for status, count in conn.execute(
            "SELECT status, count(*) FROM push_subscriptions GROUP BY status ORDER BY status"):
        print(f"  subscriptions {status:<13}{count}")


def _when(moment) -> str | None:
    return moment.isoformat() if moment is not None else None


class _OneConnection:
    """Lends the command's connection to a Registry."""

    def __init__(self, conn):
        self._conn = conn

    def connection(self):
        return nullcontext(self._conn)


def _show(conn, args: argparse.Namespace) -> None:
    from pistats.registry.store import Registry

    subscribers, subscriptions = Registry(_OneConnection(conn)).subscriber(args.client, args.user, args.property)
    if not subscribers and not subscriptions:
        where = f" on property {args.property!r}" if args.property else ""
        raise UserError(f"no subscriber {args.user!r} of client {args.client!r}{where} in the registry")
    if args.json:
        print(json.dumps({
            "client_id": args.client,
            "user_id": args.user,
            "subscribers": [{"property_id": s.property_id, "registered_at": _when(s.registered_at),
                             "first_seen_at": _when(s.first_seen_at), "last_seen_at": _when(s.last_seen_at),
                             "locale": s.locale, "timezone": s.timezone,
                             "unsubscribed_at": _when(s.unsubscribed_at)} for s in subscribers],
            "subscriptions": [{"property_id": s.property_id, "token_hash": s.token_hash, "platform": s.platform,
                               "status": s.status, "status_changed_at": _when(s.status_changed_at),
                               "created_at": _when(s.created_at), "updated_at": _when(s.updated_at),
                               "last_error": s.last_error} for s in subscriptions],
        }, ensure_ascii=False, indent=2))
        return
    out = sys.stdout
    for s in subscribers:
        print(f"subscriber {args.user} of client {args.client}, property {s.property_id}", file=out)
        print(f"  registered   {_when(s.registered_at) or '-'}", file=out)
        print(f"  seen         {_when(s.first_seen_at)} .. {_when(s.last_seen_at)}", file=out)
        print(f"  locale       {s.locale or '-'}   timezone {s.timezone or '-'}", file=out)
        if s.unsubscribed_at is not None:
            print(f"  unsubscribed from everything at {_when(s.unsubscribed_at)}", file=out)
        mine = [p for p in subscriptions if p.property_id == s.property_id]
        print(f"  push subscriptions: {len(mine)}", file=out)
        for p in mine:
            error = f"  last error: {p.last_error}" if p.last_error else ""
            print(f"    token {p.token_hash}  {p.platform:<8}{p.status:<13}since {_when(p.status_changed_at)}{error}",
                  file=out)


def _check_property_args(args: argparse.Namespace) -> None:
    """Usage errors (exit 2) before anything is read: a welcome needs a title and a body, --clear
    goes alone, and the message must be one FCM takes."""
    from pistats.push.message import Content, content_problems

    setting = args.welcome_title is not None or args.welcome_body is not None or args.welcome_url is not None
    if args.clear and setting:
        raise UserError("--clear goes without --welcome-title, --welcome-body and --welcome-url", exit_code=2)
    if setting and (args.welcome_title is None or args.welcome_body is None):
        raise UserError("a welcome needs both --welcome-title and --welcome-body", exit_code=2)
    if setting:
        placeholder = "c_00000000000000000000"
        problems = content_problems(Content(args.welcome_title, args.welcome_body, args.welcome_url, placeholder,
                                            placeholder))
        if problems:
            raise UserError(f"welcome: {problems[0]}", exit_code=2)


def _property(conn, args: argparse.Namespace, version: int, latest: int) -> None:
    from datetime import datetime, timezone

    from pistats.push.ledger import Ledger

    if version < latest:
        raise UserError(f"registry schema version {version}, this code needs {latest}: run `pistats registry init`")
    ledger = Ledger(_OneConnection(conn))
    current = ledger.welcome(args.client, args.property)
    now = datetime.now(timezone.utc)
    change = "unchanged"
    if args.clear:
        if ledger.clear_welcome(args.client, args.property, now):
            change = "cleared"
        current = None
    elif args.welcome_title is not None:
        wanted = (args.welcome_title, args.welcome_body, args.welcome_url)
        if current is None or (current.title, current.body, current.url) != wanted:
            current = ledger.set_welcome(args.client, args.property, *wanted, now)
            change = "set"
    welcome = None if current is None else {
        "campaign_id": current.campaign_id, "title": current.title, "body": current.body, "url": current.url,
        "since": _when(current.created_at)}
    if args.json:
        print(json.dumps({"client_id": args.client, "property_id": args.property, "change": change,
                          "welcome": welcome}, ensure_ascii=False))
        return
    where = f"property {args.property} of client {args.client}"
    if welcome is None:
        print(f"{where}: no welcome notification" + (" (cleared)" if change == "cleared" else ""))
        return
    print(f"{where}: welcome notification {welcome['campaign_id']} ({change}), since {welcome['since']}")
    print(f"  title  {welcome['title']}")
    print(f"  body   {welcome['body']}")
    if welcome["url"]:
        print(f"  url    {welcome['url']}")
