"""benchmarks/compare.py's pure parts: the ratios, the targets, the JSON line's shape, and the
rates and CPU per record of the 10 %..90 % span (storm_bench.Drain for the topology legs,
compare.span_figures for the in-process leg). The legs themselves need Storm and are run by hand
(``make bench``)."""

import json
import sys
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parents[3] / "benchmarks"))

import compare  # noqa: E402
import storm_bench  # noqa: E402
from compare import Leg  # noqa: E402

ISSUE_KEYS = ["inprocess_eps", "topology_eps", "classic_eps", "topology_vs_inprocess", "topology_vs_classic",
              "pipeline_cpu_us_per_record", "inprocess_cpu_us_per_record", "cpu_overhead_vs_inprocess", "rss_mib"]


def legs():
    inprocess = Leg("in process", 30000, 10000.0, {"python (chain + sink)": 130.0, "redis": 14.0})
    topology = Leg("topology", 30000, 4300.0,
                   {"EnrichBolt": 117.0, "KinesisSpout": 75.0, "StoreSinkBolt": 63.0, "JVM (Storm)": 60.0,
                    "redis": 14.0, storm_bench.EMULATOR: 90.0},
                   {"EnrichBolt": 120.0, "KinesisSpout": 90.0, "StoreSinkBolt": 450.0, "JVM (Storm)": 330.5})
    classic = Leg("classic", 3000, 500.0, {"JVM (Storm)": 1900.0})
    return inprocess, topology, classic


def test_the_json_line_has_exactly_the_issues_keys():
    figures = compare.summary(*legs())
    assert list(figures) == ISSUE_KEYS == list(compare.SUMMARY_KEYS)
    assert json.loads(json.dumps(figures)) == figures


def test_ratios_and_cpu_sums():
    figures = compare.summary(*legs())
    assert figures["inprocess_eps"] == 10000 and figures["topology_eps"] == 4300 and figures["classic_eps"] == 500
    assert figures["topology_vs_inprocess"] == 0.43
    assert figures["topology_vs_classic"] == 8.6
    # The pipeline: spout, bolts, JVM and Redis; the emulator is not in it.
    assert figures["pipeline_cpu_us_per_record"] == 329.0
    assert figures["inprocess_cpu_us_per_record"] == 144.0
    assert figures["cpu_overhead_vs_inprocess"] == round(329 / 144, 3)
    assert figures["rss_mib"] == 990.5


def test_targets():
    figures = compare.summary(*legs())
    assert compare.verdicts(figures) == {"topology_vs_inprocess": False, "cpu_overhead_vs_inprocess": False,
                                         "topology_vs_classic": True}
    figures.update(topology_vs_inprocess=1.0, cpu_overhead_vs_inprocess=1.5, topology_vs_classic=8.0)
    assert compare.verdicts(figures) == {"topology_vs_inprocess": True, "cpu_overhead_vs_inprocess": True,
                                         "topology_vs_classic": False}


def test_a_leg_without_a_rate_gives_nulls_not_a_crash():
    inprocess, topology, _ = legs()
    classic = Leg("classic", 1000, None, note="too few records")
    figures = compare.summary(inprocess, Leg("topology", 4000, None), classic)
    assert list(figures) == ISSUE_KEYS
    assert figures["topology_eps"] is None and figures["topology_vs_inprocess"] is None
    assert figures["pipeline_cpu_us_per_record"] is None and figures["cpu_overhead_vs_inprocess"] is None
    assert figures["rss_mib"] is None
    assert compare.verdicts(figures) == dict.fromkeys(compare.TARGETS)
    assert compare.summary(inprocess, topology, classic)["topology_vs_classic"] is None
    assert "-" in compare.table([inprocess, topology, classic])


def test_the_in_process_span_leaves_out_start_up_and_the_last_flush():
    # [records so far, wall s, process CPU s, Redis CPU s] after each batch of 500 of 5,000.
    marks = [[0, 0.0, 0.0, 10.0]] + [[500 * n, 1.0 + 0.1 * n, 2.0 + 0.05 * n, 10.0 + 0.01 * n] for n in range(1, 11)]
    marks.append([5000, 9.0, 9.0, 11.0])  # the final flush
    eps, process_us, redis_us = compare.span_figures(marks, 5000)
    assert eps == pytest.approx(5000)  # 4,000 records (500 -> 4,500) in 0.8 s
    assert process_us == pytest.approx(100)
    assert redis_us == pytest.approx(20)
    marks = [[mark[0], *mark[1:3], None] for mark in marks]
    assert compare.span_figures(marks, 5000)[2] is None


def test_the_topology_span():
    drain = storm_bench.Drain(total=1000, started=0.0)
    drain.samples = [(1.0, 0), (2.0, 50), (3.0, 100), (4.0, 500), (5.0, 900), (6.0, 1000)]
    drain.marks = {"start": storm_bench.Mark(3.0, 100, {"EnrichBolt": 1.0, "redis": 5.0}),
                   "end": storm_bench.Mark(5.0, 900, {"EnrichBolt": 1.4, "redis": 5.08, "JVM (Storm)": 0.2})}
    drain.rss = [{"EnrichBolt": 10, "JVM (Storm)": 100}, {"EnrichBolt": 20, "JVM (Storm)": 95}]
    assert drain.first_commit() == 2.0
    assert drain.sustained() == pytest.approx(400)  # 800 records in 2 s
    assert drain.span_fractions() == (0.1, 0.9)
    assert drain.cpu_us_per_record() == pytest.approx({"EnrichBolt": 500, "redis": 100, "JVM (Storm)": 250})
    assert drain.peak_rss() == {"EnrichBolt": 20, "JVM (Storm)": 95}
    assert not drain.read_before_span()
    drain.marks["end"] = drain.marks["start"]
    assert drain.sustained() is None


def test_the_span_ends_when_the_source_is_read_out_first():
    drain = storm_bench.Drain(total=1000, started=0.0)
    drain.marks = {"start": storm_bench.Mark(3.0, 100, {"KinesisSpout": 1.0}),
                   "read": storm_bench.Mark(4.0, 600, {"KinesisSpout": 1.25}),
                   "end": storm_bench.Mark(5.0, 900, {"KinesisSpout": 1.3})}
    assert drain.span_fractions() == (0.1, 0.6)
    assert drain.sustained() == pytest.approx(500)  # 500 records in 1 s
    assert drain.cpu_us_per_record() == pytest.approx({"KinesisSpout": 500})
    # Read out after the end or before the start: the 10 %..90 % span, and the latter is said.
    drain.marks["read"] = storm_bench.Mark(5.5, 950, {"KinesisSpout": 1.31})
    assert drain.span_fractions() == (0.1, 0.9) and not drain.read_before_span()
    drain.marks["read"] = storm_bench.Mark(2.0, 40, {"KinesisSpout": 0.9})
    assert drain.span_fractions() == (0.1, 0.9) and drain.read_before_span()


class _Pipeline:
    """What ``drain`` asks of a pipeline: the layout's total and checkpoint polling."""

    def __init__(self, progress):
        self.layout = type("Layout", (), {"total": 1000})()
        self._progress = progress

    def wait_until_committed(self, topology, timeout_s, sample, poll_s):
        for committed in self._progress:
            sample(committed)


def test_drain_marks_the_first_checkpoint_after_the_source_is_read_out(monkeypatch):
    monkeypatch.setattr(storm_bench, "process_cpu", lambda *args: {"KinesisSpout": 1.0})
    monkeypatch.setattr(storm_bench.os, "getsid", lambda pid: 1)
    topology = type("Topology", (), {"process": type("Process", (), {"pid": 1})()})()
    served = iter([1000, 1000, 1400, 2000, 2000, 2000, 2000, 2000])  # 1,000 served before: not the topology's
    progress = [0, 100, 300, 300, 550, 900, 1000]  # read out at 300: the mark is at 550
    measured = storm_bench.drain(_Pipeline(progress), topology, None, served=lambda: next(served))
    assert {name: mark.committed for name, mark in measured.marks.items()} == {"start": 100, "read": 550, "end": 900}
    assert measured.span_fractions() == (0.1, 0.55)


def test_moto_records_served_are_counted(monkeypatch):
    from moto.kinesis.models import KinesisBackend

    served = storm_bench.RecordsServed()
    backend = lambda self, *args, **kwargs: ("next", ["r1", "r2", "r3"], 0)  # noqa: E731
    monkeypatch.setattr(KinesisBackend, "get_records", backend)
    with storm_bench.counting_records_served(served):
        assert KinesisBackend.get_records(None, None, "iterator", None)[1] == ["r1", "r2", "r3"]
        KinesisBackend.get_records(None, None, "iterator", None)
    assert served() == 6
    assert KinesisBackend.get_records is backend  # restored on leaving


def test_classic_is_one_record_per_tuple_through_a_spout_option():
    from pistats.kinesis.config import KinesisConfig

    options = {"pistats.kinesis.stream": "s", **{key: str(value) for key, value in compare.CLASSIC.items()}}
    assert KinesisConfig.from_topology_conf(options).batch_records == 1
    assert compare.parse_args([]).events == 90000 and compare.parse_args([]).classic_events == 3000
    assert compare.parse_args(["--events", "30000"]).classic_events == 3000
    assert compare.parse_args(["--events", "5000"]).classic_events == 1000
    assert compare.parse_args(["--events", "800"]).classic_events == 800


def test_the_in_process_figures_are_the_mean_of_its_legs_before_and_after_the_topology():
    before = Leg("in process 1", 90000, 6000.0, {"python (chain + sink)": 150.0, "redis": 10.0})
    after = Leg("in process 2", 90000, 4000.0, {"python (chain + sink)": 180.0, "redis": 12.0})
    mean = compare.mean_leg("in process", before, after)
    # The same records at each rate: the records over the two legs' time.
    assert mean.eps == pytest.approx(4800.0)
    assert mean.cpu_us == {"python (chain + sink)": 165.0, "redis": 11.0}
    assert "after/before 1.20" in mean.note
    assert compare.summary(mean, *legs()[1:])["inprocess_cpu_us_per_record"] == 176.0
    assert compare.mean_leg("in process", Leg("a", 1, None), after).eps is None


def test_a_run_of_rounds_reports_the_median_of_each_figure():
    inprocess, topology, classic = legs()
    slow = Leg("topology 2", 30000, 3000.0, {name: us * 1.5 for name, us in topology.cpu_us.items()},
               topology.rss_mib)
    fast = Leg("topology 3", 30000, 5000.0, {name: us * 0.9 for name, us in topology.cpu_us.items()},
               topology.rss_mib)
    rounds = [compare.summary(inprocess, leg, classic) for leg in (topology, slow, fast)]
    figures = compare.median_summary(rounds)
    assert list(figures) == ISSUE_KEYS
    # One slow round moves its own figures, not the medians.
    assert figures["topology_eps"] == 4300 and figures["topology_vs_inprocess"] == 0.43
    assert figures["cpu_overhead_vs_inprocess"] == round(329 / 144, 3)
    assert figures["pipeline_cpu_us_per_record"] == 329.0
    # Each ratio is the median of the rounds' ratios, not a ratio of medians.
    in_between = Leg("in process", 30000, 20000.0, {"python (chain + sink)": 300.0})
    rounds[1] = compare.summary(in_between, slow, classic)
    figures = compare.median_summary(rounds)
    assert figures["topology_vs_inprocess"] == 0.43 and figures["inprocess_eps"] == 10000
    assert figures["cpu_overhead_vs_inprocess"] == round(0.9 * 329 / 144, 3)
    # A figure one round could not measure is not reported as measured.
    rounds[2] = compare.summary(inprocess, Leg("topology 3", 30000, None), classic)
    assert compare.median_summary(rounds)["topology_eps"] is None
    assert compare.median_summary(rounds)["inprocess_eps"] == 10000


def test_the_round_table_shows_every_round_and_the_median():
    inprocess, topology, classic = legs()
    rounds = [compare.summary(inprocess, topology, classic)] * 2
    before = Leg("in process 1", 30000, 10000.0, {"python (chain + sink)": 100.0})
    after = Leg("in process 2", 30000, 10000.0, {"python (chain + sink)": 120.0})
    text = compare.round_table(rounds, [before, after, after])
    lines = text.splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["1", "2", "median"]
    assert lines[1].split()[-1] == "1.2" and lines[2].split()[-1] == "1"
    assert "0.43" in lines[3]


def test_rounds_must_be_at_least_one():
    assert compare.parse_args([]).rounds == 3
    with pytest.raises(SystemExit):
        compare.parse_args(["--rounds", "0"])


def test_stolen_time_is_read_from_proc_stat():
    line = "cpu  100 5 50 800 10 0 5 30 0 0"
    assert storm_bench.machine_ticks(line) == (1000, 30)
    assert storm_bench.machine_ticks("cpu  1 2 3") is None  # a kernel without steal
    assert storm_bench.stolen_share((1000, 30), (3000, 130)) == pytest.approx(0.05)
    assert storm_bench.stolen_share(None, (3000, 130)) is None
    assert storm_bench.stolen_share((1000, 30), (1000, 30)) is None


def test_a_legs_note_says_how_much_time_was_stolen_while_it_ran(monkeypatch):
    monkeypatch.setattr(compare, "machine_ticks", lambda: (3000, 230))
    leg = Leg("topology 1", 1000, 500.0, note="start-up 20 s")
    compare.note_stolen_time(leg, since=(1000, 30))
    assert leg.note == "start-up 20 s; stolen 10.0% of the cores' time"
