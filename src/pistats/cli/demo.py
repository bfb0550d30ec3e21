"""``pistats demo``: the main job (see pistats.demo.runner)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pistats.demo.runner import DEFAULT_RECORDING, DemoOptions, print_json, render_summary, run_demo
from pistats.localenv.paths import project_root


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="replay a recording through the real Storm topology and print the report",
        description=(
            "Starts Redis and kinesis-local if needed, replays the recording into a fresh Kinesis "
            "stream, runs the enrichment topology on a local Storm 2.8 (the `sparse run` path) "
            "until every record is committed, then prints the report and a summary."
        ),
    )
    parser.add_argument("--recording", type=Path, default=None,
                        help=f"a kinesis-shards-jsonl/1 recording (default: {DEFAULT_RECORDING})")
    parser.add_argument("--store", default=None,
                        help="store URL (default: a fresh chdb folder under .pistats/demo/); give an empty database")
    parser.add_argument("--json", action="store_true", help="end with the summary as one JSON line")
    parser.add_argument("--keep-running", action="store_true",
                        help="keep the topology running after the recording is committed (Ctrl-C stops)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for every record")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    recording = args.recording or project_root() / DEFAULT_RECORDING
    summary = run_demo(DemoOptions(
        recording=recording, store_url=args.store, keep_running=args.keep_running,
        timeout_s=args.timeout, progress=not args.no_progress,
    ))
    print(render_summary(summary))
    if args.json:
        print_json(summary, sys.stdout)
    return 0
