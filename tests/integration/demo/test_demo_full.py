"""`pistats demo --full` as users run it: SDK traffic through the gateway (nginx, gunicorn, the
registry on) into kinesis-local, real Storm into chdb, a campaign through the local FCM, the clicks
back through the gateway and Storm. Its last line must hold exactly what the generated traffic and
the FCM script say a correct system produces, and nothing it started may be left behind.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import pytest

from pistats.demo.full import COMPARED
from pistats.generate.sdk import SdkTrafficConfig, expected_outcome, sdk_traffic
from pistats.kinesis.client import make_kinesis_client
from pistats.localenv.paths import project_root, state_dir
from tests.integration.registry.conftest import delete_client

pytestmark = [pytest.mark.integration, pytest.mark.storm]

BIN = Path(sys.executable).parent
USERS, SEED = 200, 7


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that contain ``text``."""
    found = []
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            line = path.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in line:
            found.append(line)
    return found


def processes_holding(folder: Path) -> list[int]:
    """Live processes with a file under ``folder`` open (a log, the chdb store)."""
    holders = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            targets = [os.readlink(fd) for fd in fd_dir.iterdir()]
        except OSError:
            continue
        if any(target.startswith(f"{folder}/") for target in targets):
            holders.append(int(fd_dir.parent.name))
    return holders


def assert_nothing_left(run_id: str, redis_client, kinesis_endpoint: str) -> None:
    """No Storm, gateway or FCM process of the run, no file of its folder held open, no Redis
    key and no stream of it."""
    assert processes_mentioning(run_id) == []
    assert processes_holding(state_dir() / "demo" / run_id) == []
    assert not list(redis_client.scan_iter(match=f"*{run_id}*", count=1000))
    kinesis = make_kinesis_client(kinesis_endpoint, "us-east-1")
    stream = f"pistats-demo-{run_id}"
    if stream in kinesis.list_streams(Limit=10000)["StreamNames"]:  # kinesis-local takes a moment
        status = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
        assert status["StreamStatus"] == "DELETING"


def test_the_whole_system_ends_with_what_the_traffic_predicts(redis_client, registry_url, kinesis_endpoint):
    result = subprocess.run(
        [str(BIN / "pistats"), "demo", "--full", "--no-progress", "--users", str(USERS), "--seed", str(SEED),
         "--timeout", "600"],
        cwd=project_root(), capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, f"pistats demo --full failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    try:
        # The oracle, computed here from the traffic the seed generates (times shift with the
        # clock; no figure depends on them).
        traffic = sdk_traffic(SdkTrafficConfig(users=USERS, seed=SEED), summary["client_id"], datetime.now(timezone.utc))
        expected = expected_outcome(traffic, property_id=traffic.campaign_property, min_sessions=2)
        assert {figure: summary[figure] for figure in COMPARED} == expected
        assert summary["matches"] is True and summary["expected"] == expected
        assert summary["property_id"] == traffic.campaign_property
        # The seed exercises every path: sends, tokens gone, clicks, duplicates.
        assert min(expected["sent"], expected["invalidated"], expected["clicked"], expected["duplicates"]) > 0
        assert (summary["failed"], summary["unknown"]) == (0, 0)
        assert summary["ctr"] == round(expected["clicked"] / expected["sent"], 4)
        assert "Campaigns" in result.stdout and summary["campaign_id"] in result.stdout

        # FCM's answers reached the registry: the targeted tokens it said are gone are invalid.
        with psycopg.connect(registry_url) as conn:
            statuses = dict(conn.execute("SELECT status, count(*) FROM push_subscriptions WHERE client_id = %s "
                                         "GROUP BY status", (summary["client_id"],)).fetchall())
        assert statuses.get("invalid", 0) == expected["invalidated"]
        assert statuses.get("active", 0) == expected["subscriptions"] - expected["invalidated"]

        assert_nothing_left(summary["stream"].removeprefix("pistats-demo-"), redis_client, kinesis_endpoint)
    finally:
        delete_client(registry_url, summary["client_id"])


def test_a_run_that_fails_midway_leaves_nothing_running(redis_client, registry_url, kinesis_endpoint):
    # One second for the topology to commit everything: it cannot (Storm alone takes longer to
    # start), so the run fails with the gateway up and the topology starting.
    result = subprocess.run(
        [str(BIN / "pistats"), "demo", "--full", "--no-progress", "--users", "40", "--timeout", "1"],
        cwd=project_root(), capture_output=True, text=True, timeout=600,
    )
    client_id = re.search(r"client (demo-\S+):", result.stderr).group(1)
    try:
        assert result.returncode == 1, result.stderr[-3000:]
        assert re.search(r"^pistats demo: \d+ of \d+ records committed after 1 s", result.stderr.splitlines()[-1])
        assert "Traceback" not in result.stderr and result.stdout == ""
        assert_nothing_left(client_id.removeprefix("demo-"), redis_client, kinesis_endpoint)
    finally:
        delete_client(registry_url, client_id)
