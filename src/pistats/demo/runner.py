"""``pistats demo``: a recording through the real topology on a local Storm, then the report.

1. start what is not running (Redis, kinesis-local); the store defaults to a fresh chdb folder;
2. replay the recording into a fresh Kinesis stream;
3. run the enrichment topology exactly as ``sparse run -e local -n enrichment`` does (real Storm
   2.8 LocalCluster) until every record is committed by the spout's checkpoints;
4. stop the topology, then read the store back: the report and the summary.

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
from typing import Any, TextIO

from pistats.errors import UserError
from pistats.localenv import services as local_services
from pistats.localenv.paths import project_root, state_dir

DEFAULT_RECORDING = Path("tests") / "fixtures" / "sample_recording"
TOPOLOGY = "enrichment"


@dataclass(frozen=True)
class DemoOptions:
    recording: Path
    store_url: str | None = None
    keep_running: bool = False
    timeout_s: float = 900.0
    progress: bool = True


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


def sparse_run_command(run: DemoRun, redis_url: str, kinesis_endpoint: str,
                       extra_options: dict[str, object] | None = None) -> list[str]:
    """The user's own command line for this run (``sparse`` is the project's Storm 2 shim);
    ``extra_options`` are further ``-o key=value`` topology options (benchmarks tune with them)."""
    sparse = str(Path(sys.executable).parent / "sparse")
    options = {
        "pistats.kinesis.stream": run.stream,
        "pistats.kinesis.endpoint_url": kinesis_endpoint,
        "pistats.kinesis.app_name": run.app_name,
        "pistats.kinesis.redis_url": redis_url,
        "pistats.kinesis.checkpoint_interval_ms": 1000,
        "pistats.redis.url": redis_url,
        "pistats.store.url": run.store_url,
        "pistats.enrich": "{sessions: {key_prefix: '%s'}}" % run.session_prefix,
        **(extra_options or {}),
    }
    command = [sparse, "run", "-e", "local", "-n", TOPOLOGY, "-t", "0"]
    for key, value in options.items():
        command += ["-o", f"{key}={value}"]
    return command


class LocalTopology:
    """``sparse run`` in its own process group, its output kept in a log file."""

    def __init__(self, command: list[str], log_path: Path):
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}", "LEIN_ROOT": "1"}
        self.process = subprocess.Popen(
            command, cwd=project_root(), env=env, stdin=subprocess.DEVNULL,
            stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise UserError(f"the topology exited with code {self.process.returncode} (log: {self.log_path})\n{tail}")

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def run_demo(options: DemoOptions, out: TextIO = sys.stdout) -> dict[str, Any]:
    """Run the demo; returns the summary (see :mod:`pistats.demo.summary`)."""
    import redis
    from tqdm import tqdm

    from pistats.demo.progress import read_stream_layout
    from pistats.demo.summary import summarise
    from pistats.kinesis import admin
    from pistats.kinesis.checkpoint import RedisCheckpointStore
    from pistats.kinesis.recording import Recording
    from pistats.kinesis.stream_replay import StreamReplayer
    from pistats.store.backends import open_store
    from pistats.store.report import ReportScope, build_report, render_text

    started = time.monotonic()
    recording = Recording.open(options.recording)
    # kinesis-local accepts any credentials; real ones, if configured, are left alone (and unused).
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "pistats-local-emulator")
    ports = local_services.Ports.from_env()
    for name in ("redis", "kinesis"):
        if local_services.services(ports)[name].start():
            print(f"started {name} on 127.0.0.1", file=sys.stderr)
    redis_url = f"redis://127.0.0.1:{ports.redis}/0"
    kinesis_endpoint = f"http://127.0.0.1:{ports.kinesis}"
    run = DemoRun.new(options.store_url)

    client = admin.make_client(kinesis_endpoint, "us-east-1")
    roots = [s for s in recording.shards if not any(p in {x.shard_id for x in recording.shards} for p in s.parents)]
    admin.create_stream(client, run.stream, max(1, len(roots)))
    print(f"replaying {options.recording} into stream {run.stream}", file=sys.stderr)
    report = StreamReplayer(client, run.stream, progress=options.progress).replay(recording)
    if report.failures:
        raise UserError(f"{len(report.failures)} records could not be put into {run.stream}")
    layout = read_stream_layout(client, run.stream)
    records_in = layout.total

    checkpoints = RedisCheckpointStore(redis.Redis.from_url(redis_url), run.app_name, run.stream)
    log_path = state_dir() / "demo" / run.run_id / "topology.log"
    print(f"running the topology on a local Storm (log: {log_path})", file=sys.stderr)
    topology = LocalTopology(sparse_run_command(run, redis_url, kinesis_endpoint), log_path)
    processing_started = time.monotonic()
    try:
        bar = tqdm(total=records_in, unit="rec", desc="committed", disable=not options.progress, file=sys.stderr)
        deadline = time.monotonic() + options.timeout_s
        while True:
            topology.check_alive()
            committed, done = layout.committed(checkpoints.load)
            bar.update(committed - bar.n)
            bar.set_postfix(lag=records_in - committed)
            if done:
                break
            if time.monotonic() > deadline:
                raise UserError(f"not every record was committed within {options.timeout_s:.0f} s (log: {log_path})")
            time.sleep(0.5)
        bar.close()
        processing_s = time.monotonic() - processing_started
        if options.keep_running:
            print("all records committed; the topology keeps running (Ctrl-C to stop and report)", file=sys.stderr)
            try:
                while True:
                    topology.check_alive()
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
    finally:
        topology.stop()

    with open_store(run.store_url) as store:
        print(render_text(build_report(store, ReportScope())), file=out)
        summary = summarise(store, records_in)
    elapsed = time.monotonic() - started
    summary.update(
        stream=run.stream,
        store=run.store_url,
        elapsed_s=round(elapsed, 1),
        processing_s=round(processing_s, 1),
        events_per_s=round(records_in / processing_s, 1) if processing_s else None,
    )
    return summary


def render_summary(summary: dict[str, Any]) -> str:
    rejected = ", ".join(f"{reason} {count}" for reason, count in summary["rejected"].items()) or "none"
    lines = [
        "",
        "Summary",
        f"  records in          {summary['records_in']}",
        f"  events stored       {summary['events_stored']} (distinct event_id)",
        f"  rejected            {sum(summary['rejected'].values())} ({rejected})",
        f"  duplicates dropped  {summary['duplicates_dropped']}",
        f"  users / sessions    {summary['users']} / {summary['sessions']}",
        f"  elapsed             {summary['elapsed_s']} s (topology {summary['processing_s']} s, "
        f"{summary['events_per_s']} records/s end to end)",
    ]
    return "\n".join(lines)


def print_json(summary: dict[str, Any], out: TextIO) -> None:
    out.write(json.dumps(summary, sort_keys=True) + "\n")
