"""``pistats record --stream NAME --out DIR``: capture every shard of a stream into a recording."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone

from botocore.exceptions import BotoCoreError

from pistats.cli._support import UserError, progress_bar
from pistats.kinesis import admin
from pistats.contract import parse_timestamp
from pistats.kinesis.client import make_kinesis_client
from pistats.kinesis.recording import RecordingWriter
from pistats.kinesis.stream_replay import StreamCapture


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "record",
        help="capture every shard of a Kinesis stream (closed and open) into a recording",
        description=(
            "Read every shard of the stream and write a kinesis-shards-jsonl/1 recording. Closed shards "
            "are read to their end; open shards until they have been idle (at the tip) for --until-idle "
            "seconds. The recording appears at --out only once complete."
        ),
    )
    parser.add_argument("--stream", required=True, metavar="NAME")
    parser.add_argument("--out", required=True, metavar="DIR", help="recording directory to create")
    parser.add_argument("--endpoint-url", metavar="URL", help="Kinesis endpoint (e.g. http://127.0.0.1:4567)")
    parser.add_argument("--region", metavar="REGION")
    parser.add_argument("--from", dest="start", choices=["trim_horizon", "latest", "timestamp"], default="trim_horizon")
    parser.add_argument("--timestamp", metavar="RFC3339", help="start time for --from timestamp")
    parser.add_argument("--until-idle", type=float, default=2.0, metavar="SECONDS",
                        help="stop reading an open shard after this long at its tip (default 2)")
    parser.add_argument("--max-records", type=int, metavar="N", help="stop after N records")
    parser.add_argument("--gzip", action="store_true", help="write shards/<ShardId>.jsonl.gz")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    timestamp = None
    if args.timestamp is not None:
        try:
            timestamp = parse_timestamp(args.timestamp)
        except ValueError:
            raise UserError(f"--timestamp {args.timestamp!r} is not RFC 3339 with an offset", exit_code=2) from None
    client = make_kinesis_client(args.endpoint_url, args.region)
    capture = StreamCapture(client, args.stream, start=args.start, timestamp=timestamp,
                            until_idle=args.until_idle, max_records=args.max_records)
    admin.require_stream(client, args.stream)
    captured_at = datetime.now(timezone.utc)
    try:
        with RecordingWriter(args.out, stream=args.stream, captured_at=captured_at, compress=args.gzip,
                             overwrite=args.force) as writer:
            with progress_bar(not args.no_progress, unit="rec", desc="record") as bar:
                report = capture.capture(writer, progress=bar.update)
            writer.commit()
    except FileExistsError:
        raise UserError(f"{args.out}: already exists (pass --force to replace it)", exit_code=2) from None
    except BotoCoreError as error:
        raise UserError(f"Kinesis: {error}") from None
    print(f"records: {report.records}")
    print(f"shards: {report.shards} ({report.closed_shards} closed)")
    print(f"recording: {args.out}")
    return 0
