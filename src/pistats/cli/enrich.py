"""``pistats enrich``: run parse, geo, device, bots and sessions over a recording or JSON lines.

The same chain the bolts run, in one process: one JSON line per enriched event on stdout, one
per reject on ``--rejects`` (default stderr), and with ``--json-summary`` a last JSON line on
stderr with the counts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from contextlib import ExitStack
from pathlib import Path

from tqdm import tqdm

from pistats.cli._support import UserError
from pistats.enrich.chain import REDIS_URL_ENV, Chain, EnrichConfig, connect_redis
from pistats.enrich.geo import GeoConfig
from pistats.enrich.run import records_from_lines, records_from_recording, run_chain, write_json_line
from pistats.enrich.sessions import SessionConfig
from pistats.errors import DataError
from pistats.redact import redact_url
from pistats.redis_keys import delete_matching
from pistats.redisconn import REDIS_ERRORS, RedisTarget


# The session scripts unpack a batch's keys onto Lua's stack, which holds about 8,000 values.
MAX_BATCH = 5000


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "enrich",
        help="enrich a recording or JSON lines of Kinesis records (the topology's chain, in one process)",
        description=(
            "Run parse, geo, device, bots and sessions over Kinesis records in shard order. "
            "Writes one JSON line per event to stdout and one per reject to --rejects (default stderr). "
            "--input lines are v1 record payloads, spout tuple objects or recording shard lines."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--recording", metavar="DIR", help="a kinesis-shards-jsonl/1 recording")
    source.add_argument("--input", metavar="FILE", help="JSON lines ('-' for stdin)")
    source.add_argument("stdin", nargs="?", choices=["-"], help="read JSON lines from stdin")
    parser.add_argument("--redis-url", help=f"Redis for sessions (default ${REDIS_URL_ENV}; none: no sessions)")
    parser.add_argument("--session-prefix", metavar="PREFIX",
                        help="Redis key prefix for session state, kept after the run "
                             "(default: a fresh prefix, deleted at the end)")
    parser.add_argument("--geoip-db", metavar="PATH", help="GeoIP2/GeoLite2 City database (default: shipped 2018 GeoLite2)")
    parser.add_argument("--asn-db", metavar="PATH", help="GeoIP2/GeoLite2 ASN database")
    parser.add_argument("--ip-mode", choices=["anonymised", "full", "none"], default="anonymised")
    parser.add_argument("--rejects", metavar="FILE", help="write rejects here (default stderr)")
    parser.add_argument("--json-summary", action="store_true", help="print counts as JSON on stderr at the end")
    parser.add_argument("--batch-size", type=int, default=500, help=f"records per batch: two Redis round trips each (default 500, at most {MAX_BATCH})")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if not 1 <= args.batch_size <= MAX_BATCH:
        raise UserError(f"--batch-size must be between 1 and {MAX_BATCH}", exit_code=2)
    redis_url = args.redis_url or os.environ.get(REDIS_URL_ENV)
    prefix = args.session_prefix or f"pistats:enrich-run:{uuid.uuid4().hex[:12]}"
    try:
        config = EnrichConfig(
            geo=GeoConfig(city_db=args.geoip_db, asn_db=args.asn_db, ip_mode=args.ip_mode),
            sessions=SessionConfig(key_prefix=prefix),
        )
        redis, wait_replicas = None, 0
        if redis_url:
            target = RedisTarget.parse(redis_url)
            redis, wait_replicas = connect_redis(target), target.wait_replicas
            redis.ping()
        chain = Chain.build(config, redis=redis, wait_replicas=wait_replicas)
    except ValueError as error:
        raise UserError(str(error), exit_code=2) from None
    except REDIS_ERRORS as error:
        raise UserError(f"cannot reach Redis at {redact_url(redis_url)}: {error}") from None
    if redis is None:
        print("pistats enrich: no Redis URL: session fields stay empty", file=sys.stderr)

    with ExitStack() as stack:
        if args.recording:
            records = records_from_recording(args.recording)
        elif args.input and args.input != "-":
            path = Path(args.input)
            if not path.is_file():
                raise DataError("no such file", str(path))
            records = records_from_lines(stack.enter_context(path.open("rb")), str(path))
        else:
            records = records_from_lines(sys.stdin.buffer, "stdin")
        try:
            rejects_out = stack.enter_context(open(args.rejects, "w", encoding="utf-8")) if args.rejects else sys.stderr
        except OSError as error:
            raise UserError(f"cannot write --rejects: {error}", exit_code=2) from None
        bar = stack.enter_context(tqdm(unit=" records", file=sys.stderr, disable=None, leave=False))
        try:
            totals = run_chain(chain, records, write_json_line(sys.stdout), write_json_line(rejects_out),
                               batch_size=args.batch_size, progress=bar.update)
        except REDIS_ERRORS as error:
            raise UserError(f"Redis failed during the run: {error}") from None
        except BrokenPipeError:
            # The reader went away (`pistats enrich ... | head`): not an error of ours. Point
            # stdout at /dev/null so the interpreter's final flush does not complain.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        finally:
            if redis is not None and not args.session_prefix:
                _delete_prefix(redis, prefix)
    sys.stdout.flush()
    if args.json_summary:
        print(json.dumps(totals.as_dict(chain), separators=(",", ":")), file=sys.stderr)
    return 0


def _delete_prefix(redis, prefix: str) -> None:
    """Delete this run's session keys (``prefix`` is generated: no glob characters in it)."""
    try:
        delete_matching(redis, f"{prefix}:*")
    except REDIS_ERRORS:  # best effort: the keys carry TTLs anyway
        pass
