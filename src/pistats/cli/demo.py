"""``pistats demo``: a recording through the real topology on a local Storm, then the report.

1. start what is not running (Redis, kinesis-local); the store defaults to a fresh chdb folder;
2. replay the recording into a fresh Kinesis stream;
3. run the enrichment topology exactly as ``sparse run -e local -n enrichment`` does (real Storm
   2.8 LocalCluster) until every record is committed by the spout's checkpoints;
4. stop the topology, then read the store back: the report and the summary.

The pieces are in :mod:`pistats.demo.runner`.

``pistats demo --full`` runs the whole system instead (:mod:`pistats.demo.full`): generated SDK
traffic through the gateway with the registry on, the topology, the report, a push campaign
through the local FCM, the clicks back through the gateway and the topology, the campaign's
stats; it ends with one JSON line of what was measured and what the traffic's oracle expects.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pistats.cli._support import progress_bar
from pistats.demo.runner import DEFAULT_RECORDING, DemoRun, Pipeline, print_json, render_summary
from pistats.localenv import services as local_services
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
    full = parser.add_argument_group(
        "the whole system (--full)",
        "SDK traffic through the gateway (registry on), the topology, the report, a campaign through the "
        "local FCM, the clicks back through the gateway and the topology, the campaign's stats; ends with "
        "one JSON line (see docs/push.md)")
    full.add_argument("--full", action="store_true", help="run the whole system instead of a recording")
    full.add_argument("--users", type=int, default=300, help="generated users (default 300)")
    full.add_argument("--seed", type=int, default=1, help="traffic seed (default 1)")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.full:
        return main_full(args)
    recording = args.recording or project_root() / DEFAULT_RECORDING
    summary = run_demo(recording, args.store, keep_running=args.keep_running, timeout_s=args.timeout,
                       progress=not args.no_progress)
    print(render_summary(summary))
    if args.json:
        print_json(summary, sys.stdout)
    return 0


def run_demo(path: Path, store_url: str | None, *, keep_running: bool, timeout_s: float,
             progress: bool) -> dict[str, Any]:
    """Run the demo, print the report; returns the summary (see :mod:`pistats.demo.summary`)."""
    from pistats.kinesis.recording import Recording
    from pistats.store.backends import open_store
    from pistats.store.report import ReportScope, build_report, render_text

    started = time.monotonic()
    recording = Recording.open(path)
    counts = recording.validate()
    ports = local_services.Ports.from_env()
    for name in ("redis", "kinesis"):
        if local_services.services(ports)[name].start():
            print(f"started {name} on 127.0.0.1", file=sys.stderr)
    pipeline = Pipeline(DemoRun.new(store_url), f"redis://127.0.0.1:{ports.redis}/0", f"http://127.0.0.1:{ports.kinesis}")
    pipeline.create_stream(recording)
    print(f"replaying {path} into stream {pipeline.run.stream}", file=sys.stderr)
    with progress_bar(progress, total=sum(counts.values()), unit="rec", desc="replay") as bar:
        pipeline.replay(recording, counts, progress=bar.update)
    records_in = pipeline.read_layout().total

    print(f"running the topology on a local Storm (logs: {pipeline.logs})", file=sys.stderr)
    topology = pipeline.start_local()
    try:
        with progress_bar(progress, total=records_in, unit="rec", desc="committed") as bar:

            def show(committed: int) -> None:
                bar.update(committed - bar.n)
                bar.set_postfix(lag=records_in - committed)

            processing_s = pipeline.wait_until_committed(topology, timeout_s, show)
        if keep_running:
            print("all records committed; the topology keeps running (Ctrl-C to stop and report)", file=sys.stderr)
            try:
                while True:
                    topology.check_alive()
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
    finally:
        topology.stop()
        pipeline.delete_stream()
        pipeline.delete_redis_state()

    with open_store(pipeline.run.store_url) as store:
        print(render_text(build_report(store, ReportScope())))
    summary = pipeline.summary()
    summary.update(
        stream=pipeline.run.stream,
        store=pipeline.run.store_url,
        elapsed_s=round(time.monotonic() - started, 1),
        processing_s=round(processing_s, 1),
        events_per_s=round(records_in / processing_s, 1) if processing_s else None,
    )
    return summary


class _TerminalListener:
    """Stages on stderr, the report and the stats on stdout, counters as tqdm bars."""

    def __init__(self, progress: bool):
        self.progress = progress

    def stage(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def show(self, text: str) -> None:
        print(text, flush=True)

    @contextmanager
    def counter(self, name: str, total: int) -> Iterator[Callable[[int], None]]:
        with progress_bar(self.progress, total=total, desc=name) as bar:
            yield lambda done: bar.update(done - bar.n)


def main_full(args: argparse.Namespace) -> int:
    from pistats.cli._support import UserError
    from pistats.demo.full import COMPARED, FullDemoSettings, run_full_demo
    from pistats.generate.sdk import SdkTrafficConfig

    if args.recording is not None or args.keep_running:
        raise UserError("--full runs generated traffic to its end: no --recording, no --keep-running", exit_code=2)
    settings = FullDemoSettings(traffic=SdkTrafficConfig(users=args.users, seed=args.seed),
                                store_url=args.store, timeout_s=args.timeout)
    summary = run_full_demo(settings, _TerminalListener(not args.no_progress))
    expected = summary["expected"]
    print("\nThe whole system")
    for figure in COMPARED:
        mark = "" if summary[figure] == expected[figure] else f"  (MISMATCH: expected {expected[figure]})"
        print(f"  {figure:<15}{summary[figure]}{mark}")
    print(f"  elapsed        {summary['elapsed_s']} s (traffic {summary['traffic_s']} s, topology "
          f"{summary['topology_s']} + {summary['clicks_topology_s']} s, campaign {summary['campaign_s']} s)")
    print_json(summary, sys.stdout)
    return 0 if summary["matches"] else 1
