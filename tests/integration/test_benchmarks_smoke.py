"""The benchmark scripts still run: each with a small input, against the real local services.

Only that they finish and print their figures is checked, never a timing (the figures are the
README's, measured by hand). A script that rots fails here instead of on the next measuring day.
The end-to-end and HTTP ingest scripts are left out: they take minutes, and the e2e and ingest
tests drive the same paths.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run_script(name: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(BENCHMARKS / name), *args], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def test_store_insert(clickhouse_url, redis_url):
    server = clickhouse_url.rsplit("/", 1)[0]
    output = run_script("store_insert.py", "--rows", "2000", "--batch", "500", "--bolt-tuples", "500",
                        "--realistic", "600", "--redis-url", redis_url, "--server", server)
    for line in ("insert path, one batch at a time", "next batch encoded while one is sent",
                 "into a Null table", "whole sink path", "sink bolt via multilang", "generated and enriched events"):
        assert output.count(line) >= 1, line
    assert output.count("rows/s") >= 9


def test_enrich_chain(redis_url):
    output = run_script("enrich_chain.py", "--events", "2000", "--users", "200", "--distinct-uas", "50",
                        "--bolt-events", "100", "--redis-url", redis_url)
    for label in ("no sessions, warm caches", "redis sessions, new events", "redis sessions, replays"):
        assert label in output


@pytest.mark.parametrize("name, args, expected", [
    ("ingest_validate.py", ("--events", "1000", "--repeat", "1"), "events/s"),
    ("generate_throughput.py", ("--events", "500",), "records/s"),
    ("spout_emit.py", ("--records", "2000"), "records/s"),
])
def test_in_process_benchmarks(name, args, expected):
    assert expected in run_script(name, *args)


def test_wire_codec():
    figures = json.loads(run_script("wire_codec.py", "--events", "600", "--batch", "50").splitlines()[-1])
    assert set(figures) == {"spout -> enrich", "enrich -> sink"}
    for hop in figures.values():
        assert set(hop) == {"deflate-1", "zstd-1", "zstd_vs_deflate"}
        assert all(value > 0 for value in hop["zstd-1"].values())


def test_tuple_size(redis_url):
    figures = json.loads(run_script("tuple_size.py", "--events", "600", "--rounds", "1", "--redis-url",
                                    redis_url).splitlines()[-1])
    assert set(figures) == {"16_buckets", "4_buckets", "second_vs_first"}
    assert figures["4_buckets"]["records_per_tuple"] > figures["16_buckets"]["records_per_tuple"]
    assert all(size["cpu_us_per_record"] > 0 for size in (figures["16_buckets"], figures["4_buckets"]))


def test_multilang_serializer():
    figures = json.loads(run_script("multilang_serializer.py", "--events", "600", "--batch", "50",
                                    "--rounds", "2").splitlines()[-1])
    assert set(figures) == {"spout -> enrich", "enrich -> sink"}
    for hop in figures.values():
        assert set(hop["us_per_record"]) == {"storm write", "storm read", "fast write", "fast read"}
        assert all(value > 0 for value in hop["us_per_record"].values())
        assert hop["bytes_per_tuple"] > 1000


def test_registry(registry_url):
    output = run_script("registry.py", "--events", "400", "--repeat", "1", "--registry-url", registry_url)
    *table, last = output.strip().splitlines()
    assert "\n".join(table).count("ev/s") == 6
    figures = json.loads(last)
    assert [r["batch"] for r in figures["results"]] == [1, 100] and figures["threads"] == 1
    assert set(figures["target"]) == {"batch", "ratio", "events_per_s", "met"}


def test_gateway(redis_url):
    output = run_script("gateway.py", "--seconds", "1", "--connections", "4", "--redis-url", redis_url)
    assert output.count("events/s") == 8 and output.count("PutRecords/s") == 2
    ratios = json.loads(output.strip().splitlines()[-1])["gateway_over_ingest_server"]
    assert set(ratios) == {"batch_1", "batch_50", "resent_batch_1", "resent_batch_50"}


def test_push(registry_url):
    output = run_script("push.py", "--tokens", "300", "--runs", "1", "--concurrency", "10",
                        "--registry-url", registry_url)
    assert "sends/s" in output
    last = json.loads(output.strip().splitlines()[-1])
    assert set(last) == {"tokens", "concurrency", "rate", "runs", "best_sends_per_s", "target_sends_per_s",
                         "meets_target"}
    (run,) = last["runs"]
    assert run["sent"] == 300
    assert set(run) == {"sent", "seconds", "sends_per_s", "sender_cpu_us_per_send", "server_cpu_us_per_send"}


def test_sessions_cluster(redis_url):
    output = run_script("sessions_cluster.py", "--users", "50", "--events-per-user", "4", "--batch", "50",
                        "--repeat", "1", "--redis-url", redis_url)
    for label in ("single Redis", "cluster ", "cluster, wait_replicas=1"):
        assert label in output
    assert output.count("µs/event client CPU") == 3
