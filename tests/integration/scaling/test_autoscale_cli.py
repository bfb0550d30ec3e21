"""``pistats autoscale`` against kinesis-local and Redis, without Storm: --dry-run decisions and
one-line usage errors (the real rebalance runs in the cluster tests)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pistats.kinesis.admin import create_stream, delete_stream
from pistats.kinesis.client import make_kinesis_client


@pytest.fixture
def stream(kinesis_endpoint, unique_name):
    client = make_kinesis_client(kinesis_endpoint, "us-east-1")
    create_stream(client, unique_name, 1)
    yield client, unique_name
    delete_stream(client, unique_name)


def autoscale(kinesis_endpoint, redis_url, *args):
    argv = [sys.executable, "-m", "pistats.cli.main", "autoscale", "--endpoint-url", kinesis_endpoint,
            "--redis-url", redis_url, "--storm", "/nonexistent/storm", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def test_a_dry_run_prints_one_decision_per_observation_and_changes_nothing(stream, kinesis_endpoint, redis_url):
    client, name = stream
    client.put_records(StreamName=name, Records=[{"Data": b"{}", "PartitionKey": str(i)} for i in range(30)])
    done = autoscale(kinesis_endpoint, redis_url, "--topology", name, "--stream", name, "--app", name,
                     "--executors", "2", "--workers", "1", "--interval", "1", "--steps", "2", "--dry-run")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == 2
    assert lines[-1]["backlog_records"] == 30 and lines[-1]["shards"] == 1
    assert all(line["dry_run"] and not line["applied"] for line in lines)
    assert (lines[-1]["decision"]["executors"], lines[-1]["decision"]["workers"]) == (2, 1)


def test_each_observation_counts_at_most_count_up_to_records_per_shard(stream, kinesis_endpoint, redis_url):
    # The probe reads what it counts, from the reads the spout needs: it stops at --count-up-to.
    client, name = stream
    client.put_records(StreamName=name, Records=[{"Data": b"{}", "PartitionKey": str(i)} for i in range(30)])
    done = autoscale(kinesis_endpoint, redis_url, "--topology", name, "--stream", name, "--app", name,
                     "--executors", "2", "--workers", "1", "--steps", "1", "--count-up-to", "10", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["backlog_records"] == 10


@pytest.mark.parametrize("args, message", [
    (["--set", "max_executors"], "--set takes NAME=VALUE, got 'max_executors'"),
    (["--set", "bogus=1"], "unknown autoscale settings: bogus"),
    (["--set", "min_executors=9", "--set", "max_executors=4"], "min_executors must be <= max_executors"),
    (["--count-up-to", "0"], "--count-up-to must be in 1..10000"),
])
def test_bad_settings_are_one_line_usage_errors(kinesis_endpoint, redis_url, args, message):
    done = autoscale(kinesis_endpoint, redis_url, "--topology", "t", "--stream", "s", "--executors", "1",
                     "--workers", "1", *args)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"pistats autoscale: {message}"]
