"""The topology against the same work in one process and against one record per tuple, side by side.

    .venv/bin/python benchmarks/compare.py [--events 90000] [--classic-events 3000] [--rounds 3] [--shards 4]
                                           [--store URL] [--stock-moto] [-o KEY=VALUE ...]

Absolute rates drift with the shared machine; the ratios of legs run one after another in one
process tree, on the same recording, do not (issue 18), as long as the machine keeps its speed
while they run. It does not always: a topology leg of the same code took 212-290 µs of CPU per
record between legs minutes apart, every process slower alike. So a run is made of rounds: each
topology leg runs between two in-process legs, and a round's ratios take that leg against the
mean of the two (a drift during the round weighs on both sides alike). The figures of the JSON
line are the medians of the rounds' (three by default), so one slow spell of the machine moves
one round, not the verdict. The table prints every leg and every round. The legs:

1. in process: the records of the recording, read into memory first, through the enrich bolt's
   chain with Redis sessions (``pistats enrich``'s chain, batches of 500) and straight into the
   sink's ``Sink`` (the rows handed over as ``PackedRows``, nothing serialised), in a child
   process pinned to one core; its rate and CPU time (chdb's threads included) plus Redis's
   between 10 % and 90 % of the records, as for the topology (the whole run's are printed too).
2. topology: the recording pre-loaded into a fresh stream in moto (served from this process, its
   GetRecords answers written by ``moto_direct``: moto's own bytes for a third of its CPU; moto's
   serializer with ``--stock-moto``), the shipped topology on local Storm with acking (``sparse
   run``); the sustained rate between 10 % and 90 % of the records committed (stored and acked
   end to end), or only up to the first checkpoint after moto served its last record when that
   comes first (the spout reads up to ``max_uncommitted`` records ahead; a span without reading
   would leave its cost out), and each process's CPU per record over the same span: spout,
   enrich, sink, the JVM and Redis, and moto apart.
3. classic: the same with one record per tuple (``-o pistats.kinesis.batch_records=1``), on a
   smaller recording (``--classic-events``) from the same generator.

Order: in process 1, topology 1, in process 2, topology 2, ..., in process N+1, classic. The
recording goes into moto once; each topology leg reads it from the start as an application of
its own.

90,000 events rather than the 30,000 issue 18 first named: a topology leg holds up to
``max_uncommitted`` (10,000) records in flight and commits them in steps of the sink's
5,000-row inserts, so on 30,000 records a third of them are in flight at once and the span's CPU
per record depends on where those steps fall (its verdicts swung both ways between runs minutes
apart); on 90,000 the topology runs in its steady state (docs/performance.md).

Each leg has its own chdb store (or all use ``--store``), session keys and checkpoints; each
starts with empty session state. Prints a table, then one JSON line of the ratios (see
``summary`` and ``median_summary``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from pistats.demo.runner import DemoRun, Pipeline
from storm_bench import (EMULATOR, REDIS, SPAN, Sources, cpu_seconds, drain, machine_ticks, make_recording, preload,
                         stolen_share)

INPROCESS_BATCH = 500  # pistats enrich's default --batch-size
CLASSIC = {"pistats.kinesis.batch_records": 1}
# Its rate is bound by round trips, not by CPU: 3,000 records say as much as more would.
CLASSIC_EVENTS_MAX = 3000
# A leg's rate is read from its checkpoints, taken between 10% and 90% of the records: a span of
# 4-7 s here, which checkpoints every second (the demo's) blur by up to a second at each end.
# Every 250 ms they blur it a quarter as much, for four small Redis writes per shard a second.
MEASURING = {"pistats.kinesis.checkpoint_interval_ms": 250}
SUMMARY_KEYS = ("inprocess_eps", "topology_eps", "classic_eps", "topology_vs_inprocess", "topology_vs_classic",
                "pipeline_cpu_us_per_record", "inprocess_cpu_us_per_record", "cpu_overhead_vs_inprocess", "rss_mib")
# How summary rounds each figure: rates to events, ratios to thousandths, the rest to tenths.
DIGITS = {key: 0 if key.endswith("_eps") else 3 if "_vs_" in key else 1 for key in SUMMARY_KEYS}
TARGETS = {"topology_vs_inprocess": (">=", 1.0), "cpu_overhead_vs_inprocess": ("<=", 1.5),
           "topology_vs_classic": (">", 8.0)}


@dataclass
class Leg:
    """One leg's figures: records, sustained events/s, CPU microseconds per record by process
    (``EMULATOR`` is not part of the pipeline), resident MiB by process (topology legs)."""

    name: str
    records: int
    eps: float | None
    cpu_us: dict[str, float] = field(default_factory=dict)
    rss_mib: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def pipeline_cpu_us(self) -> float:
        return sum(us for name, us in self.cpu_us.items() if name != EMULATOR)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def cpu_spread(before: Leg, after: Leg) -> float | None:
    """How far apart two legs of the same records were: the later one's CPU per record over the
    earlier one's (None if either has no CPU figures)."""
    return ratio(after.pipeline_cpu_us(), before.pipeline_cpu_us()) if before.cpu_us and after.cpu_us else None


def mean_leg(name: str, before: Leg, after: Leg) -> Leg:
    """The in-process figures the ratios take: the mean of its two legs (the same records each).
    The rate is their harmonic mean (the records over the two legs' time), the CPU per record of
    each process their arithmetic mean; the note says how far apart the two were."""
    eps = None if not before.eps or not after.eps else 2 / (1 / before.eps + 1 / after.eps)
    cpu_us = {name_: (before.cpu_us[name_] + after.cpu_us[name_]) / 2
              for name_ in before.cpu_us if name_ in after.cpu_us}
    spread = cpu_spread(before, after)
    note = "mean of the two" + ("" if spread is None else f"; CPU per record after/before {spread:.2f}")
    return Leg(name, before.records, eps, cpu_us, note=note)


def summary(inprocess: Leg, topology: Leg, classic: Leg) -> dict[str, float | None]:
    """The JSON line: the three rates, the topology's over the other two, the pipeline's CPU per
    record (spout, bolts, JVM, Redis; not the emulator) over the in-process leg's (its process
    and Redis), and the topology's resident memory."""
    pipeline_us, inprocess_us = topology.pipeline_cpu_us(), inprocess.pipeline_cpu_us()
    rounded = lambda value, digits=0: None if value is None else round(value, digits)  # noqa: E731
    return {
        "inprocess_eps": rounded(inprocess.eps),
        "topology_eps": rounded(topology.eps),
        "classic_eps": rounded(classic.eps),
        "topology_vs_inprocess": ratio(topology.eps, inprocess.eps),
        "topology_vs_classic": ratio(topology.eps, classic.eps),
        "pipeline_cpu_us_per_record": rounded(pipeline_us, 1) if topology.cpu_us else None,
        "inprocess_cpu_us_per_record": rounded(inprocess_us, 1) if inprocess.cpu_us else None,
        "cpu_overhead_vs_inprocess": ratio(pipeline_us if topology.cpu_us else None, inprocess_us),
        "rss_mib": rounded(sum(topology.rss_mib.values()), 1) if topology.rss_mib else None,
    }


def median_summary(rounds: list[dict[str, float | None]]) -> dict[str, float | None]:
    """The JSON line of a run of several rounds: each figure the median of the rounds' figures.
    A ratio is the median of the rounds' ratios, each from legs run side by side, not a ratio of
    medians. A figure some round could not measure is None."""
    def median(key: str) -> float | None:
        values = [figures[key] for figures in rounds]
        return None if any(value is None for value in values) else round(statistics.median(values), DIGITS[key])
    return {key: median(key) for key in SUMMARY_KEYS}


def verdicts(figures: dict[str, float | None]) -> dict[str, bool | None]:
    """Each target of issue 18: met, not met, or None when the run could not measure it."""
    checks = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b}
    return {key: None if figures[key] is None else checks[op](figures[key], bound)
            for key, (op, bound) in TARGETS.items()}


def table(legs: list[Leg]) -> str:
    lines = [f"{'leg':<12} {'records':>8} {'events/s':>9}  {'CPU us/record':>13}  by process (us/record; RSS MiB)"]
    for leg in legs:
        parts = []
        for name, us in sorted(leg.cpu_us.items(), key=lambda item: -item[1]):
            rss = f"; {leg.rss_mib[name]:.0f} MiB" if name in leg.rss_mib else ""
            parts.append(f"{name} {us:.0f}{rss}" + (" (not counted)" if name == EMULATOR else ""))
        eps = "-" if leg.eps is None else f"{leg.eps:,.0f}"
        lines.append(f"{leg.name:<12} {leg.records:>8} {eps:>9}  {leg.pipeline_cpu_us():>13.0f}  "
                     + ", ".join(parts) + (f"  [{leg.note}]" if leg.note else ""))
    return "\n".join(lines)


# --- leg 1: in process ------------------------------------------------------------------

def inprocess_child(recording: str, store_url: str, redis_url: str, redis_pid: int | None) -> dict:
    """The in-process leg, run in a child process of its own (no moto threads, no Storm): the
    enrich bolt's chain and the sink bolt's sink, built from topology options as the bolts build
    them, fed the recording's records (read into memory first) in batches of ``INPROCESS_BATCH``.
    Returns the counts and a mark after every batch: [records so far, wall seconds, CPU seconds
    of this process (every thread, chdb's included), CPU seconds of Redis or None]."""
    import redis

    from pistats.enrich.chain import Chain
    from pistats.enrich.event import to_wire
    from pistats.enrich.run import records_from_recording
    from pistats.heap import settle_after_startup
    from pistats.redis_keys import delete_matching
    from pistats.store.sink import sink_from_topology_conf
    from pistats.wire import PackedRows

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    prefix = f"pistats:compare:{os.getpid()}-{time.time_ns()}"
    conf = {"pistats.store.url": store_url, "pistats.redis.url": redis_url,
            "pistats.enrich": {"sessions": {"key_prefix": prefix}}}
    chain = Chain.from_topology_conf(conf, {}, sessions=True)
    sink = sink_from_topology_conf(conf, {})
    records = list(records_from_recording(recording))
    # As each topology component does once started (pistats.heap); this also freezes the
    # prepared records, which are the benchmark's, not the pipeline's.
    settle_after_startup()

    def packed(rows: list[dict]) -> PackedRows | list[dict]:
        """The rows as the sink gets them from a tuple (``pack_rows``' shape), without the
        serialising a hop needs."""
        wire = [to_wire(row) for row in rows]
        fields = tuple(wire[0])
        if all(tuple(row) == fields for row in wire):
            return PackedRows(list(fields), [list(row.values()) for row in wire])
        return wire

    def mark(done: int) -> list:
        return [done, time.perf_counter(), time.process_time(), cpu_seconds(redis_pid) if redis_pid else None]

    failed = 0
    marks = [mark(0)]
    try:
        for number, start in enumerate(range(0, len(records), INPROCESS_BATCH)):
            batch = records[start:start + INPROCESS_BATCH]
            events, rejects = chain.run(batch)
            if events:
                failed += len(sink.add_events(("events", number), packed(events)).failed)
            if rejects:
                failed += len(sink.add_rejects(("rejects", number), [to_wire(row) for row in rejects]).failed)
            marks.append(mark(start + len(batch)))
        failed += len(sink.flush_all().failed)
        marks.append(mark(len(records)))
    finally:
        delete_matching(redis.Redis.from_url(redis_url), f"{prefix}:*")
        sink.store.close()
    return {"records": len(records), "rows": sink.stats.rows_inserted, "failed_tuples": failed, "marks": marks}


def span_figures(marks: list[list], total: int) -> tuple[float, float, float | None]:
    """(records/s, CPU us per record of the process, of Redis or None) between the first marks
    at or past the fractions of ``SPAN`` of ``total``, as the topology legs are measured: start-up
    (lazy imports, the first cache misses, the first insert) and the last flush are left out."""
    low, high = (next(mark for mark in marks if mark[0] >= fraction * total) for fraction in SPAN)
    records = high[0] - low[0]
    if records <= 0 or high[1] <= low[1]:
        raise ValueError("too few records to measure a rate")
    redis = None if low[3] is None or high[3] is None else (high[3] - low[3]) * 1e6 / records
    return records / (high[1] - low[1]), (high[2] - low[2]) * 1e6 / records, redis


def inprocess_leg(recording: Path, store_url: str, redis_url: str, redis_pid: int | None,
                  name: str = "in process") -> Leg:
    done = subprocess.run([sys.executable, __file__, "--inprocess-child",
                           json.dumps([str(recording), store_url, redis_url, redis_pid])],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the in-process leg failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    records = result["records"]
    if result["failed_tuples"] or result["rows"] != records:
        raise SystemExit(f"the in-process leg stored {result['rows']} rows of {records} records "
                         f"({result['failed_tuples']} batches failed)")
    eps, process_us, redis_us = span_figures(result["marks"], records)
    cpu_us = {"python (chain + sink)": process_us}
    if redis_us is not None:
        cpu_us[REDIS] = redis_us
    first, last = result["marks"][0], result["marks"][-1]
    whole = records / (last[1] - first[1])
    return Leg(name, records, eps, cpu_us,
               note=f"one core; whole run {whole:,.0f} events/s, {(last[2] - first[2]) * 1e6 / records:.0f} us/record")


# --- legs 2 and 3: the topology on local Storm ------------------------------------------

class TopologyLegs:
    """Topology legs over one stream: the recording is put into moto once (about 70 s for 90,000
    records), and each leg reads it from the start under an application name, session keys and
    (by default) a chdb folder of its own, so no leg sees another's checkpoints or state. Use as
    a context manager; the stream goes on leaving."""

    def __init__(self, sources: Sources, recording, store: str | None, options: dict):
        self.sources, self.store, self.options = sources, store, options
        self.first = DemoRun.new(store)
        pipeline = Pipeline(self.first, sources.redis_url, sources.endpoint, options)
        self.loaded_s = preload(pipeline, recording)
        self.records = pipeline.layout.total
        self._stream_owner = pipeline

    def __enter__(self) -> "TopologyLegs":
        return self

    def __exit__(self, *exc) -> None:
        self._stream_owner.delete_stream()

    def describe(self, name: str) -> str:
        return (f"{name}: {self.records} records into moto in {self.loaded_s:.1f} s; sparse run "
                f"{' '.join(f'-o {key}={value}' for key, value in self.options.items()) or '(shipped options)'}")

    def run(self, name: str) -> Leg:
        run = dataclasses.replace(DemoRun.new(self.store), stream=self.first.stream)
        pipeline = Pipeline(run, self.sources.redis_url, self.sources.endpoint, self.options)
        pipeline.read_layout()
        return topology_leg(name, pipeline, self.sources, self.store)


def topology_leg(name: str, pipeline: Pipeline, sources: Sources, store: str | None) -> Leg:
    """One run of the topology over the pipeline's stream, read from its start."""
    run = pipeline.run
    started = time.monotonic()
    topology = pipeline.start_local(name)
    try:
        measured = drain(pipeline, topology, sources.redis_pid, served=sources.served)
    finally:
        topology.stop()
        pipeline.delete_redis_state()
    rate = measured.sustained()
    cpu_us = measured.cpu_us_per_record() if rate is not None else {}
    rss = {process: size / 2**20 for process, size in measured.peak_rss().items()}
    if store is None:  # this leg's own chdb folder (its log stays beside it)
        shutil.rmtree(run.store_url.removeprefix("chdb://").split("?")[0], ignore_errors=True)
    if rate is None:
        note = "too few records to measure a rate: raise --events"
    else:
        low, high = measured.span_fractions()
        note = f"start-up {measured.first_commit() - started:.0f} s, {low:.0%}..{high:.0%} in {measured.span_seconds():.1f} s"
        if measured.read_before_span():
            note += "; the source was read out before the span: its reading is not in these figures"
    return Leg(name, measured.total, rate, cpu_us, rss, note)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=90_000, help="records of the in-process and topology legs")
    parser.add_argument("--classic-events", type=int, default=None,
                        help="records of the classic leg (default: a tenth of --events, at least 1,000 and at "
                             "most 3,000)")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3,
                        help="topology legs, each between two in-process legs; the figures are the rounds' medians")
    parser.add_argument("--store", default=None, help="store URL (default: a fresh chdb folder per leg)")
    parser.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a topology option for the topology and classic legs (repeatable), to try a lever")
    parser.add_argument("--stock-moto", action="store_true",
                        help="moto writes GetRecords answers with its own serializer (about three times the "
                             "emulator's CPU per record; see benchmarks/moto_direct.py)")
    parser.add_argument("--inprocess-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        args.options = dict(option.split("=", 1) for option in args.option)
    except ValueError:
        parser.error("--option takes KEY=VALUE")
    if args.rounds < 1:
        parser.error("--rounds takes a number of at least 1")
    if args.classic_events is None:
        args.classic_events = min(args.events, CLASSIC_EVENTS_MAX, max(1000, args.events // 10))
    return args


def main() -> int:
    args = parse_args()
    if args.inprocess_child:
        print(json.dumps(inprocess_child(*json.loads(args.inprocess_child))))
        return 0
    probe = time.perf_counter()
    sum(range(3 * 10**7))
    probe = time.perf_counter() - probe
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, load {os.getloadavg()[0]:.1f}, CPU probe {probe:.2f} s")
    print(f"settings: events={args.events} classic-events={args.classic_events} rounds={args.rounds} "
          f"shards={args.shards} "
          f"store={(args.store or 'chdb, one fresh folder per leg').split('?')[0]} "
          f"moto={'stock' if args.stock_moto else 'GetRecords written directly'}", flush=True)
    with Sources("moto", stock_moto=args.stock_moto) as sources, tempfile.TemporaryDirectory() as tmp:
        if sources.redis_pid is None:
            print("warning: no pid file of the services' redis-server: Redis's CPU is not counted")
        recording = make_recording(Path(tmp) / "recording", args.events, args.shards)
        classic_recording = make_recording(Path(tmp) / "classic", args.classic_events, args.shards)

        def run_inprocess(name: str) -> Leg:
            run = DemoRun.new(args.store)
            began = machine_ticks()
            leg = inprocess_leg(Path(tmp) / "recording", run.store_url, sources.redis_url, sources.redis_pid, name)
            note_stolen_time(leg, began)
            if args.store is None:
                shutil.rmtree(run.store_url.removeprefix("chdb://").split("?")[0], ignore_errors=True)
            print(f"{name}: {leg.records} records, {leg.eps:,.0f} events/s", flush=True)
            return leg

        options = {**MEASURING, **args.options}
        inprocess_legs, topology_legs = [run_inprocess("in process 1")], []
        with TopologyLegs(sources, recording, args.store, options) as legs:
            print(legs.describe("topology"), flush=True)
            for number in range(1, args.rounds + 1):
                began = machine_ticks()
                topology_legs.append(legs.run(f"topology {number}"))
                note_stolen_time(topology_legs[-1], began)
                print(f"topology {number}: {topology_legs[-1].eps or 0:,.0f} events/s", flush=True)
                inprocess_legs.append(run_inprocess(f"in process {number + 1}"))
        with TopologyLegs(sources, classic_recording, args.store, {**options, **CLASSIC}) as legs:
            print(legs.describe("classic"), flush=True)
            classic = legs.run("classic")
    rounds = [summary(mean_leg(f"in process {number}", before, after), topology, classic)
              for number, (before, after, topology)
              in enumerate(zip(inprocess_legs, inprocess_legs[1:], topology_legs), start=1)]
    figures = median_summary(rounds)
    run_order = [leg for pair in zip(inprocess_legs, topology_legs) for leg in pair] + [inprocess_legs[-1], classic]
    print()
    print(table(run_order))
    print()
    print(round_table(rounds, inprocess_legs))
    print("targets (issue 18): " + ", ".join(
        f"{key} {op} {bound:g}: {'-' if met is None else ('met' if met else 'NOT met')}"
        for (key, (op, bound)), met in zip(TARGETS.items(), verdicts(figures).values())))
    print(json.dumps(figures))
    return 0


def note_stolen_time(leg: Leg, since: tuple[int, int] | None) -> None:
    """Adds to the leg's note how much of the machine's CPU time the hypervisor gave other guests
    between ``since`` (``machine_ticks`` as the leg began) and now: a round whose legs lost time so
    is one the machine decided, not the code."""
    share = stolen_share(since, machine_ticks())
    if share is not None:
        leg.note += ("; " if leg.note else "") + f"stolen {share:.1%} of the cores' time"


def round_table(rounds: list[dict[str, float | None]], inprocess_legs: list[Leg]) -> str:
    """Each round's ratios (its topology leg against the mean of the in-process legs just before
    and after it), how far apart those two in-process legs were, and the medians."""
    keys = ("topology_vs_inprocess", "cpu_overhead_vs_inprocess", "topology_vs_classic",
            "pipeline_cpu_us_per_record", "inprocess_cpu_us_per_record")
    show = lambda value: "-" if value is None else f"{value:g}"  # noqa: E731
    lines = ["round   " + "  ".join(keys) + "  in-process CPU after/before"]
    for number, (figures, before, after) in enumerate(zip(rounds, inprocess_legs, inprocess_legs[1:]), start=1):
        spread = cpu_spread(before, after)
        lines.append(f"{number:<7} " + "  ".join(f"{show(figures[key]):>{len(key)}}" for key in keys)
                     + f"  {show(spread):>28}")
    median = median_summary(rounds)
    lines.append(f"{'median':<7} " + "  ".join(f"{show(median[key]):>{len(key)}}" for key in keys))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
