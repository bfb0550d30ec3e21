"""Running the real topology over a generated recording, for end-to-end tests."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from pistats.demo.runner import DemoRun, Pipeline
from pistats.generate.generator import GenerateConfig, generate, load_expected
from pistats.kinesis.recording import Recording
from pistats.localenv.services import Ports
from pistats.redis_keys import delete_matching

EVERYTHING = ("records_in", "events_stored", "rejected", "duplicates_dropped", "users", "sessions",
              "by_country", "by_device_type")
TIMEOUT_S = 600
# For tests that inject a fault mid-run: the spout honours Kinesis's 5 GetRecords/s/shard, so 25
# records per call reads at most 125 records/s per shard. A 1,200-record, two-shard recording then
# takes at least 4.8 s to read, and a fault injected at 30% committed lands before the end on any
# machine (unpaced, a fast machine finished the whole recording before the kill in CI).
PACED = {"pistats.kinesis.get_records_limit": 25}


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


def assert_summary(pipeline: Pipeline, recording_dir: Path, keys=EVERYTHING, same_sessions: bool = True) -> None:
    """The store equals expected.json on ``keys`` and, with ``same_sessions``, every stored event
    has the session id a fault-free run gives it (the same chain in one process, in shard order:
    ``pistats enrich``'s code path)."""
    summary = pipeline.summary()
    expected = load_expected(recording_dir)
    differences = {key: {"stored": summary[key], "expected": expected[key]}
                   for key in keys if summary[key] != expected[key]}
    assert not differences, f"the store differs from expected.json (logs: {pipeline.logs}): {differences}"
    if same_sessions:
        stored = stored_session_ids(pipeline)
        fault_free = fault_free_session_ids(recording_dir, pipeline.redis_url)
        assert len(stored) == summary["events_stored"]
        different = {key: (stored[key], fault_free.get(key)) for key in stored if stored[key] != fault_free.get(key)}
        assert not different, f"{len(different)} events got another session than in a fault-free run: " \
                              f"{dict(list(different.items())[:5])}"


def stored_session_ids(pipeline: Pipeline) -> dict[tuple[str, str], str]:
    from pistats.store.backends import open_store

    with open_store(pipeline.run.store_url) as store:
        rows = store.query(f"SELECT client_id, event_id, session_id FROM {store.database}.events FINAL")
    return {(client, event): session for client, event, session in rows}


def fault_free_session_ids(recording_dir: Path, redis_url: str) -> dict[tuple[str, str], str]:
    from pistats.enrich.chain import Chain, EnrichConfig
    from pistats.enrich.run import records_from_recording, run_chain
    from pistats.redisconn import connect

    prefix = f"pistats-test:fault-free:{uuid.uuid4().hex[:12]}"
    connection = connect(redis_url, connect_timeout_s=None, socket_timeout_s=None)
    chain = Chain.build(EnrichConfig.from_dict({"sessions": {"key_prefix": prefix}}), redis=connection,
                        with_stages=False)
    sessions: dict[tuple[str, str], str] = {}

    def keep(event: dict) -> None:
        sessions[(event["client_id"], event["event_id"])] = event["session_id"]

    try:
        run_chain(chain, records_from_recording(recording_dir), keep, lambda reject: None)
    finally:
        delete_matching(connection, f"{prefix}:*")
    return sessions
