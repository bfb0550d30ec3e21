"""``pistats autoscale``: rebalance the enrich bolt and workers, and reshard the stream, with the load."""

from __future__ import annotations

import argparse
import sys
import time

import orjson

from pistats.cli._support import UserError
from pistats.cli.status import add_topology_arguments, connect_topology_redis, redis_url_of
from pistats.kinesis.client import make_kinesis_client
from pistats.redact import redact_url
from pistats.scaling.autoscaler import (
    ARRIVALS_WINDOW_S,
    PROBE_RECORDS,
    Autoscaler,
    ShapeMemory,
    ShardResizer,
    Shape,
    StormRebalancer,
    open_shards,
)
from pistats.scaling.policy import AutoscaleConfig
from pistats.status.view import MAX_COUNT_UP_TO, collect


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "autoscale",
        help="rebalance the topology and reshard its stream with the load (storm rebalance, UpdateShardCount)",
        description=(
            "Every --interval seconds: reads what pistats status reads, decides with hysteresis and cool-downs "
            "(docs/scaling.md) and applies the decision unless --dry-run. Bounds and bands: --set NAME=VALUE "
            "(e.g. --set max_executors=8), names as in pistats.scaling.policy.AutoscaleConfig."
        ),
    )
    parser.add_argument("--topology", required=True, metavar="NAME", help="the running topology (e.g. enrichment)")
    add_topology_arguments(parser)
    parser.add_argument("--bolt", default="enrich", metavar="NAME", help="the bolt whose executors scale (default enrich)")
    parser.add_argument("--executors", type=int, required=True, metavar="N", help="the bolt's executors as submitted")
    parser.add_argument("--workers", type=int, required=True, metavar="N", help="the topology's workers as submitted")
    parser.add_argument("--storm", default="storm", metavar="PATH", help="the storm command (default: storm on PATH)")
    parser.add_argument("--interval", type=float, default=10.0, metavar="SECONDS", help="seconds between observations (default 10)")
    parser.add_argument("--count-up-to", type=int, default=PROBE_RECORDS, metavar="N",
                        help=f"records behind a checkpoint counted per shard and observation, at most (one GetRecords "
                             f"each; default {PROBE_RECORDS}); a larger backlog counts as this many. The write rate is "
                             "read at each open shard's tip, up to as many records")
    parser.add_argument("--steps", type=int, metavar="N", help="stop after N observations (default: run until interrupted)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="an autoscale setting")
    parser.add_argument("--dry-run", action="store_true", help="print decisions, change nothing")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from pistats.redisconn import REDIS_ERRORS

    settings = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--set takes NAME=VALUE, got {item!r}", exit_code=2)
        settings[name.strip()] = value.strip()
    try:
        config = AutoscaleConfig.from_dict(settings)
        submitted = Shape(args.executors, args.workers)
        if min(submitted.executors, submitted.workers) < 1:
            raise ValueError("--executors and --workers must be >= 1")
    except ValueError as error:
        raise UserError(str(error), exit_code=2) from None
    if args.interval < 1:
        raise UserError("--interval must be at least 1 second", exit_code=2)
    if not 1 <= args.count_up_to <= MAX_COUNT_UP_TO:
        raise UserError(f"--count-up-to must be in 1..{MAX_COUNT_UP_TO}", exit_code=2)
    redis_url = redis_url_of(args)
    connection = connect_topology_redis(redis_url)
    kinesis = make_kinesis_client(args.endpoint_url, args.region)
    rebalancer = StormRebalancer(args.storm, args.topology, args.bolt)
    uptime_s = rebalancer.uptime_s()
    autoscaler = Autoscaler(
        config,
        view=lambda: collect(kinesis, connection, args.app, args.stream, count_up_to=args.count_up_to,
                             arrivals_window_s=min(args.interval, ARRIVALS_WINDOW_S)),
        shards=lambda: open_shards(kinesis, args.stream),
        rebalancer=rebalancer,
        resizer=ShardResizer(kinesis, args.stream),
        memory=ShapeMemory(connection, args.topology),
        submitted=submitted,
        topology_started_at=None if uptime_s is None else time.time() - uptime_s,
        dry_run=args.dry_run,
    )
    steps = 0
    try:
        while args.steps is None or steps < args.steps:
            # Observations --interval apart, start to start, however long a probe or a rebalance took.
            next_at = time.monotonic() + args.interval
            try:
                step = autoscaler.step()
            except REDIS_ERRORS as error:
                raise UserError(f"Redis at {redact_url(redis_url)} unavailable: {error}") from None
            except Exception as error:  # botocore: the stream or the endpoint
                code = getattr(error, "response", {}).get("Error", {}).get("Code")
                raise UserError(f"Kinesis: {code or type(error).__name__} for stream {args.stream!r}") from None
            seen = step.observation
            line = {"at": time.time(), "incoming_per_s": round(seen.incoming_per_s, 1),
                    "finished_per_s": round(seen.stored_per_s, 1), "backlog_records": seen.backlog_records,
                    "lag_ms": seen.lag_ms, "executors": seen.executors, "workers": seen.workers, "shards": seen.shards,
                    "decision": {"executors": step.decision.executors, "workers": step.decision.workers,
                                 "shards": step.decision.shards, "reasons": list(step.decision.reasons)},
                    "applied": step.applied, "dry_run": args.dry_run, "errors": list(step.errors)}
            sys.stdout.write(orjson.dumps(line).decode() + "\n")
            sys.stdout.flush()
            steps += 1
            if args.steps is None or steps < args.steps:
                time.sleep(max(0.0, next_at - time.monotonic()))
    except KeyboardInterrupt:
        return 0
    return 0
