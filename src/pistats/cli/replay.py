"""``pistats replay DIR --stream NAME``: put a recording into a Kinesis stream, shard by shard."""

from __future__ import annotations

import argparse
import sys

from botocore.exceptions import BotoCoreError

from pistats.cli._support import UserError, progress_bar
from pistats.kinesis import admin
from pistats.kinesis.client import make_kinesis_client
from pistats.kinesis.recording import Recording
from pistats.kinesis.stream_replay import StreamReplayer


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="put a recording (kinesis-shards-jsonl/1) into a Kinesis stream, keeping its shards",
        description=(
            "Put every record of a recording into a stream. Each record goes to the live shard with the "
            "same hash key range as its recorded shard (ExplicitHashKey); a recording with resharding "
            "reshards the stream the same way (SplitShard/MergeShards) before the children's first "
            "records. PutRecords batches hold at most 500 records / 5 MiB; failed entries are retried "
            "alone. Exit status 1 if any record could not be put."
        ),
    )
    parser.add_argument("recording", metavar="DIR", help="recording directory")
    parser.add_argument("--stream", required=True, metavar="NAME", help="target stream")
    parser.add_argument("--endpoint-url", metavar="URL", help="Kinesis endpoint (e.g. http://127.0.0.1:4567 for kinesis-local)")
    parser.add_argument("--region", metavar="REGION", help="AWS region (default: from the AWS configuration, else us-east-1)")
    parser.add_argument("--create", action="store_true", help="create the stream with the recording's initial shards first")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, metavar="X", help="replay at X times the recorded pace (arrival gaps / X)")
    pace.add_argument("--as-fast-as-possible", action="store_true", help="no pacing (the default)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    client = make_kinesis_client(args.endpoint_url, args.region)
    replayer = StreamReplayer(client, args.stream, speed=args.speed)
    recording = Recording.open(args.recording)
    # Read it all before touching the stream: a damaged recording must not half-replay.
    counts = recording.validate()
    try:
        if args.create:
            roots = [s for s in recording.shards if not any(p in {x.shard_id for x in recording.shards} for p in s.parents)]
            admin.create_stream(client, args.stream, max(1, len(roots)))
        else:
            admin.require_stream(client, args.stream)
        with progress_bar(not args.no_progress, total=sum(counts.values()), unit="rec", desc="replay") as bar:
            report = replayer.replay(recording, counts, progress=bar.update)
    except admin.StreamExists as error:
        raise UserError(f"{error} (drop --create to replay into it)", exit_code=2) from None
    except admin.StreamMissing as error:
        raise UserError(f"{error} (pass --create to create it)") from None
    except BotoCoreError as error:
        raise UserError(f"Kinesis: {error}") from None
    for warning in report.warnings:
        print(f"pistats replay: warning: {warning}", file=sys.stderr)
    for reshard in report.reshards:
        print(f"reshard: {reshard}")
    print(f"records put: {report.records_put}")
    print(f"failures: {len(report.failures)}")
    if report.retried_entries:
        print(f"entries retried: {report.retried_entries}")
    if report.misrouted:
        print(f"records on another shard than recorded: {report.misrouted}")
    for failure in report.failures[:10]:
        print(f"  failed {failure.shard_id} {failure.sequence_number}: {failure.code} {failure.message}", file=sys.stderr)
    return 1 if report.failures else 0
