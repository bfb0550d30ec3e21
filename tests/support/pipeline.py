"""Running the real topology over a generated recording, for end-to-end tests."""

from __future__ import annotations

import time
from pathlib import Path

from pistats.demo.runner import DemoRun, Pipeline
from pistats.generate.generator import GenerateConfig, generate, load_expected
from pistats.kinesis.recording import Recording
from pistats.localenv.services import Ports

EVERYTHING = ("records_in", "events_stored", "rejected", "duplicates_dropped", "users", "sessions",
              "by_country", "by_device_type")
TIMEOUT_S = 600


def make_recording(tmp_path: Path, events: int = 1200, shards: int = 2, reshard_at: float | None = None,
                   seed: int = 5) -> Path:
    out = tmp_path / "recording"
    generate(GenerateConfig(events=events, shards=shards, reshard_at=reshard_at, seed=seed,
                            bad_fraction=0.03, duplicate_fraction=0.03), out)
    return out


def pipeline_for(store_url: str | None = None, redis_url: str | None = None, **options) -> Pipeline:
    ports = Ports.from_env()
    run = DemoRun.new(store_url)
    return Pipeline(run, redis_url or f"redis://127.0.0.1:{ports.redis}/0",
                    f"http://127.0.0.1:{ports.kinesis}", options)


def load(pipeline: Pipeline, recording_dir: Path) -> None:
    recording = Recording.open(recording_dir)
    pipeline.create_stream(recording)
    pipeline.replay(recording)
    pipeline.read_layout()


def wait_for_fraction(pipeline: Pipeline, topology, fraction: float) -> None:
    target = fraction * pipeline.layout.total
    deadline = time.monotonic() + TIMEOUT_S
    while pipeline.committed()[0] < target:
        topology.check_alive()
        assert time.monotonic() < deadline, f"never reached {fraction:.0%} (logs: {pipeline.logs})"
        time.sleep(0.3)


def assert_summary(pipeline: Pipeline, recording_dir: Path, keys=EVERYTHING) -> None:
    summary = pipeline.summary()
    expected = load_expected(recording_dir)
    differences = {key: {"stored": summary[key], "expected": expected[key]}
                   for key in keys if summary[key] != expected[key]}
    assert not differences, f"the store differs from expected.json (logs: {pipeline.logs}): {differences}"
