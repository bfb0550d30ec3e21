"""``pistats status``: per shard, how far a running topology is behind the stream's tip and how fast
it reads and stores; per sink task, rows stored, failed batches and insert latency."""

from __future__ import annotations

import argparse
import os
import sys
import time

from pistats.cli._support import UserError
from pistats.kinesis.client import make_kinesis_client
from pistats.redact import redact_url
from pistats.status.view import DEFAULT_COUNT_UP_TO, MAX_COUNT_UP_TO, collect, json_line, render_text

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def add_topology_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags naming a running topology's stream, application and Redis (status, autoscale)."""
    parser.add_argument("--stream", required=True, metavar="NAME", help="the stream the topology reads (pistats.kinesis.stream)")
    parser.add_argument("--app", default="pistats", metavar="NAME", help="the topology's application name (pistats.kinesis.app_name; default pistats)")
    parser.add_argument("--endpoint-url", metavar="URL", help="Kinesis endpoint (e.g. http://127.0.0.1:4567 for kinesis-local)")
    parser.add_argument("--region", metavar="REGION", help="AWS region (default: from the AWS configuration, else us-east-1)")
    parser.add_argument("--redis-url", metavar="URL", help=f"the topology's Redis (default $PISTATS_REDIS_URL, else {DEFAULT_REDIS_URL})")


def redis_url_of(args: argparse.Namespace) -> str:
    return args.redis_url or os.environ.get("PISTATS_REDIS_URL") or DEFAULT_REDIS_URL


def connect_topology_redis(redis_url: str):
    """A client of the topology's Redis (single or cluster); a bad URL or no answer is one line."""
    from pistats.redisconn import REDIS_ERRORS, connect

    try:
        return connect(redis_url, connect_timeout_s=2, socket_timeout_s=5)
    except ValueError as error:
        raise UserError(str(error), exit_code=2) from None
    except REDIS_ERRORS as error:
        raise UserError(f"Redis at {redact_url(redis_url)} unavailable: {error}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "status",
        help="how far a running topology is behind its stream, and how fast it reads and stores",
        description=(
            "Reads the checkpoints and what the spout and sink tasks publish in Redis, and probes each shard "
            "from its checkpoint with one GetRecords call (up to --count-up-to records; '+' marks a count that "
            "stopped there). Works for local and cluster runs alike: the topology's Redis and stream are enough."
        ),
    )
    add_topology_arguments(parser)
    parser.add_argument("--count-up-to", type=int, default=DEFAULT_COUNT_UP_TO, metavar="N",
                        help=f"records counted per shard behind its checkpoint (1..{MAX_COUNT_UP_TO}, default {DEFAULT_COUNT_UP_TO})")
    parser.add_argument("--json", action="store_true", help="one JSON object per view")
    parser.add_argument("--watch", type=float, metavar="SECONDS", nargs="?", const=5.0,
                        help="show the view again every SECONDS (default 5) until interrupted")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from pistats.redisconn import REDIS_ERRORS

    if not 1 <= args.count_up_to <= MAX_COUNT_UP_TO:
        raise UserError(f"--count-up-to must be in 1..{MAX_COUNT_UP_TO}", exit_code=2)
    if args.watch is not None and args.watch < 0.5:
        raise UserError("--watch must be at least 0.5 seconds", exit_code=2)
    redis_url = redis_url_of(args)
    connection = connect_topology_redis(redis_url)
    kinesis = make_kinesis_client(args.endpoint_url, args.region)
    try:
        while True:
            try:
                view = collect(kinesis, connection, args.app, args.stream, count_up_to=args.count_up_to)
            except REDIS_ERRORS as error:
                raise UserError(f"Redis at {redact_url(redis_url)} unavailable: {error}") from None
            except Exception as error:  # botocore's errors name the stream and the call
                code = getattr(error, "response", {}).get("Error", {}).get("Code")
                if code == "ResourceNotFoundException":
                    raise UserError(f"stream {args.stream!r} not found") from None
                raise UserError(f"Kinesis unavailable: {code or type(error).__name__}") from None
            if args.json:
                sys.stdout.write(json_line(view).decode() + "\n")
            else:
                sys.stdout.write(render_text(view))
            sys.stdout.flush()
            if args.watch is None:
                return 0
            time.sleep(args.watch)
            if not args.json:
                sys.stdout.write("\n")
    except KeyboardInterrupt:
        return 0
