"""``pistats generate --out DIR --events N``: a realistic recording plus its expected.json."""

from __future__ import annotations

import argparse
import json

from pistats.cli._support import UserError, progress_bar
from pistats.generate import GenerateConfig, generate


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="write a recording of realistic ingest records and the expected pipeline results",
        description=(
            "Generate N Kinesis records as the Lambda ingest would write them (clients, properties, "
            "users with multi-session histories, real-world user agents, IPv4/IPv6 from many countries, "
            "malformed records, client retries) as a kinesis-shards-jsonl/1 recording, with expected.json "
            "(events stored, rejects per reason, duplicates, users, sessions, per-country and per-device-type "
            "counts). The same arguments always give the same bytes."
        ),
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="recording directory to create")
    parser.add_argument("--events", required=True, type=int, metavar="N", help="records to write (bad and duplicates included)")
    parser.add_argument("--shards", type=int, default=2, metavar="S", help="initial shards (default 2)")
    parser.add_argument("--clients", type=int, default=5, metavar="C", help="clients, Zipf-skewed (default 5)")
    parser.add_argument("--seed", type=int, default=1, metavar="K", help="random seed (default 1)")
    parser.add_argument("--reshard-at", type=float, metavar="FRACTION",
                        help="split every shard in two after this fraction of the records")
    parser.add_argument("--bad-fraction", type=float, default=0.03, metavar="F", help="malformed records (default 0.03)")
    parser.add_argument("--duplicate-fraction", type=float, default=0.02, metavar="F",
                        help="client retries, same event_id again (default 0.02)")
    parser.add_argument("--skewed-months", type=int, default=0, metavar="M",
                        help="add M events of one client whose device clocks date them in M different months")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    config = GenerateConfig(
        events=args.events,
        shards=args.shards,
        clients=args.clients,
        seed=args.seed,
        reshard_at=args.reshard_at,
        bad_fraction=args.bad_fraction,
        duplicate_fraction=args.duplicate_fraction,
        skewed_months=args.skewed_months,
    )
    try:
        with progress_bar(not args.no_progress, total=config.events, unit="rec", desc="generate") as bar:
            result = generate(config, args.out, overwrite=args.force, progress=bar.update)
    except FileExistsError:
        raise UserError(f"{args.out}: already exists (pass --force to replace it)", exit_code=2) from None
    expected = result.expected
    print(f"recording: {result.path} ({result.records} records)")
    print(
        f"expected: {expected['events_stored']} events, {sum(expected['rejected'].values())} rejected "
        f"{json.dumps(expected['rejected'])}, {expected['duplicates_dropped']} duplicates, "
        f"{expected['users']} users, {expected['sessions']} sessions"
    )
    return 0
