"""The pieces of ``pistats demo`` (see ``pistats.cli.demo``), the end-to-end benchmark and tests:
one isolated run of the real topology over a recording replayed into a fresh stream.

Each run uses its own stream, checkpoint namespace, session namespace and (by default) store, so
runs never see each other's state and the summary equals the recording's ``expected.json``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TextIO

from pistats.errors import ServiceError
from pistats.localenv.paths import project_root, state_dir
from pistats.redis_keys import delete_matching

DEFAULT_RECORDING = Path("tests") / "fixtures" / "sample_recording"
TOPOLOGY = "enrichment"


@dataclass(frozen=True)
class DemoRun:
    """Names that isolate one run from every other."""

    run_id: str
    stream: str
    app_name: str
    session_prefix: str
    store_url: str

    @classmethod
    def new(cls, store_url: str | None) -> "DemoRun":
        run_id = time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
        store = store_url or f"chdb://{state_dir() / 'demo' / run_id / 'chdb'}"
        return cls(
            run_id=run_id,
            stream=f"pistats-demo-{run_id}",
            app_name=f"pistats-demo-{run_id}",
            session_prefix=f"pistats:demo:{run_id}:sessions",
            store_url=store,
        )


def options_for(run: DemoRun, redis_url: str, kinesis_endpoint: str,
                extra_options: dict[str, object] | None = None) -> dict[str, object]:
    """The topology options of one run; ``extra_options`` add or override (benchmarks, tests)."""
    return {
        "pistats.kinesis.stream": run.stream,
        "pistats.kinesis.endpoint_url": kinesis_endpoint,
        "pistats.kinesis.app_name": run.app_name,
        "pistats.kinesis.redis_url": redis_url,
        "pistats.kinesis.checkpoint_interval_ms": 1000,
        # kinesis-local serves about 1,500 records/s per GetRecords: 10,000 would time out.
        "pistats.kinesis.get_records_limit": 1000,
        "pistats.redis.url": redis_url,
        "pistats.store.url": run.store_url,
        "pistats.enrich": "{sessions: {key_prefix: '%s'}}" % run.session_prefix,
        **(extra_options or {}),
    }


def sparse_command(action: str, env: str, options: dict[str, object]) -> list[str]:
    """The user's own command line (``sparse`` is the project's Storm 2 shim): ``sparse run -e
    local`` or ``sparse submit -e cluster`` of the enrichment topology with these options."""
    sparse = str(Path(sys.executable).parent / "sparse")
    command = [sparse, action, "-e", env, "-n", TOPOLOGY]
    if action == "run":
        command += ["-t", "0"]
    else:
        command += ["-f"]  # replace a topology of the same name
    for key, value in options.items():
        command += ["-o", f"{key}={value}"]
    return command


def storm_env() -> dict[str, str]:
    """The environment `sparse` and `storm` run in: the project's virtualenv first on PATH."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}", "LEIN_ROOT": "1"}


class LocalTopology:
    """``sparse run`` in its own process group, its output kept in a log file."""

    def __init__(self, command: list[str], log_path: Path):
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self.process = subprocess.Popen(
            command, cwd=project_root(), env=storm_env(), stdin=subprocess.DEVNULL,
            stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise ServiceError(f"the topology exited with code {self.process.returncode} (log: {self.log_path})\n{tail}")

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stops the whole process group (the JVM and every Python component) and waits until
        none is left: the sink's subprocess must be gone before anyone reopens a chdb store."""
        group = self.process.pid
        try:
            os.killpg(group, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        killed = False
        while True:
            self.process.poll()
            if not live_group_members(group):
                return
            if time.monotonic() > deadline:
                if killed:
                    raise ServiceError(f"processes of the topology (group {group}) survived SIGKILL")
                os.killpg(group, signal.SIGKILL)
                killed, deadline = True, time.monotonic() + timeout_s
            time.sleep(0.1)


def live_group_members(group: int) -> list[int]:
    """Processes of a process group that still run (zombies, waiting to be reaped, do not)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp == group and state != "Z":
            members.append(int(stat.parent.name))
    return members


class Pipeline:
    """One isolated run of the topology over one stream: the pieces the demo, the end-to-end
    benchmark and the fault-injection tests share.

    ``prepare`` puts a recording into a fresh stream; ``start_local``/``submit`` run the
    topology (``sparse run`` / ``sparse submit``, as a user would); ``committed`` reads progress
    from the spout's checkpoints; ``summary`` reads the store back.
    """

    def __init__(self, run: DemoRun, redis_url: str, kinesis_endpoint: str,
                 extra_options: dict[str, object] | None = None):
        from pistats.kinesis.checkpoint import RedisCheckpointStore
        from pistats.kinesis.client import make_kinesis_client
        from pistats.redisconn import connect

        # Emulators accept any credentials; real ones, if configured, are left alone.
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            os.environ.setdefault(name, "pistats-local-emulator")
        self.run = run
        self.redis_url = redis_url
        self.kinesis_endpoint = kinesis_endpoint
        self.extra_options = dict(extra_options or {})
        self.client = make_kinesis_client(kinesis_endpoint, "us-east-1")
        self.redis = connect(redis_url, connect_timeout_s=None, socket_timeout_s=None)
        self.checkpoints = RedisCheckpointStore(self.redis, run.app_name, run.stream)
        self.layout = None
        self.logs = state_dir() / "demo" / run.run_id

    def create_stream(self, recording) -> None:
        from pistats.kinesis import admin

        recorded = {shard.shard_id for shard in recording.shards}
        roots = [shard for shard in recording.shards if not any(parent in recorded for parent in shard.parents)]
        admin.create_stream(self.client, self.run.stream, max(1, len(roots)))

    def replay(self, recording, counts: dict[str, int] | None = None,
               progress: Callable[[int], None] | None = None) -> None:
        """Puts the recording into this run's stream (``counts`` and ``progress`` as for
        :meth:`pistats.kinesis.stream_replay.StreamReplayer.replay`)."""
        from pistats.kinesis.stream_replay import StreamReplayer

        report = StreamReplayer(self.client, self.run.stream).replay(recording, counts, progress=progress)
        if report.failures:
            raise ServiceError(f"{len(report.failures)} records could not be put into {self.run.stream}")

    def delete_stream(self) -> None:
        """Removes this run's stream (kinesis-local counts every shard against a limit)."""
        from pistats.kinesis import admin

        admin.delete_stream(self.client, self.run.stream)

    def delete_redis_state(self) -> None:
        """Removes this run's session state, checkpoints and status figures from Redis: every key
        is the run's own (``session_prefix``, its app and stream), and a local Redis would
        otherwise keep some 20,000 keys per run for the state TTL."""
        from pistats.status.publish import status_prefix

        for pattern in (f"{self.run.session_prefix}:*", f"pistats:ckpt:{self.run.app_name}:{self.run.stream}:*",
                        status_prefix(self.run.app_name, self.run.stream) + "*"):
            delete_matching(self.redis, pattern)

    def read_layout(self):
        """Every shard's records, once the stream holds everything it will hold."""
        from pistats.demo.progress import read_stream_layout

        self.layout = read_stream_layout(self.client, self.run.stream)
        return self.layout

    def committed(self) -> tuple[int, bool]:
        return self.layout.committed(self.checkpoints.load)

    def sparse_options(self) -> dict[str, object]:
        return options_for(self.run, self.redis_url, self.kinesis_endpoint, self.extra_options)

    def start_local(self, name: str = "topology") -> "LocalTopology":
        return LocalTopology(sparse_command("run", "local", self.sparse_options()), self.logs / f"{name}.log")

    def submit(self, **storm_options: object) -> None:
        """``sparse submit -e cluster`` of this run to the local single-node cluster."""
        options = {**self.sparse_options(), **storm_options}
        self.logs.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            sparse_command("submit", "cluster", options), cwd=project_root(), env=storm_env(),
            capture_output=True, text=True, timeout=600,
        )
        (self.logs / "submit.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise ServiceError(f"sparse submit failed (log: {self.logs / 'submit.log'})")

    def wait_until_committed(self, topology, timeout_s: float, on_progress=None, poll_s: float = 0.5) -> float:
        """Blocks until every record is committed, looking every ``poll_s``; returns the seconds it took."""
        started = time.monotonic()
        deadline = started + timeout_s
        while True:
            if topology is not None:
                topology.check_alive()
            committed, done = self.committed()
            if on_progress is not None:
                on_progress(committed)
            if done:
                return time.monotonic() - started
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"{committed} of {self.layout.total} records committed after {timeout_s:.0f} s (logs: {self.logs})"
                )
            time.sleep(poll_s)

    def summary(self, records_in: int | None = None) -> dict[str, Any]:
        from pistats.demo.summary import summarise
        from pistats.store.backends import open_store

        with open_store(self.run.store_url) as store:
            return summarise(store, self.layout.total if records_in is None else records_in)


def render_summary(summary: dict[str, Any]) -> str:
    from pistats.demo.summary import records_accounted

    rejected = ", ".join(f"{reason} {count}" for reason, count in summary["rejected"].items()) or "none"
    accounted = records_accounted(summary)
    lines = [
        "",
        "Summary",
        f"  records in          {summary['records_in']}",
        f"  events stored       {summary['events_stored']} (distinct event_id)",
        f"  rejected            {sum(summary['rejected'].values())} ({rejected})",
        f"  duplicates dropped  {summary['duplicates_dropped']}",
        f"  accounted for       {accounted} of {summary['records_in']} records"
        + ("" if accounted == summary["records_in"] else " (MISMATCH: the store does not account for every record)"),
        f"  users / sessions    {summary['users']} / {summary['sessions']}",
        f"  elapsed             {summary['elapsed_s']} s (topology {summary['processing_s']} s, "
        f"{summary['events_per_s']} records/s end to end)",
    ]
    return "\n".join(lines)


def print_json(summary: dict[str, Any], out: TextIO) -> None:
    out.write(json.dumps(summary, sort_keys=True) + "\n")
