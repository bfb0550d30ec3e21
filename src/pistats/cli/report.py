"""``pistats report``: registrations, users, sessions, audiences, rejects and push campaigns from the store."""

from __future__ import annotations

import argparse
import json
import os
from datetime import date

from pistats.cli._support import UserError
from pistats.store.backends import StoreError, open_store
from pistats.store.config import store_url_from
from pistats.store.report import ReportScope, build_report, plot_registrations, render_text


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="analytics from the store: per-day registrations, users, sessions, top audiences, rejects, push campaigns",
        description=(
            "Counts are de-duplicated (FINAL). Push campaigns: sends by status, clicking users, click-through "
            "rate (clicked users / sent), clicks by device type and country; --since keeps campaigns with a send "
            "settled from that day on. With a chdb store, run it when the topology has stopped: "
            "chdb allows one process per data path."
        ),
    )
    parser.add_argument("--store", metavar="URL", help="store URL (default $PISTATS_STORE_URL, else chdb://./.pistats/chdb)")
    parser.add_argument("--client", metavar="ID", help="only this client's events")
    parser.add_argument("--since", metavar="DATE", help="only events from this day on (YYYY-MM-DD, UTC)")
    parser.add_argument("--top", type=int, default=10, metavar="N", help="rows in the top-N tables (default 10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--plot", metavar="FILE", help="also write a PNG chart of registrations per day by device type")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    since = None
    if args.since:
        try:
            since = date.fromisoformat(args.since)
        except ValueError:
            raise UserError(f"--since must be a date YYYY-MM-DD, got {args.since!r}", exit_code=2) from None
    if args.top < 1:
        raise UserError("--top must be >= 1", exit_code=2)
    scope = ReportScope(client_id=args.client, since=since, top=args.top)
    try:
        store = open_store(store_url_from(args.store, os.environ))
        try:
            report = build_report(store, scope)
        finally:
            store.close()
    except StoreError as error:
        raise UserError(f"store unavailable or not initialised (pistats store init): {error}") from None
    if args.plot:
        try:
            plot_registrations(report, args.plot)
        except OSError as error:
            raise UserError(f"cannot write plot {args.plot}: {error.strerror}") from None
    print(json.dumps(report, indent=2) if args.json else render_text(report), end="\n" if args.json else "")
    return 0
