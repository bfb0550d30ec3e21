"""What the benchmarks that run the real topology share (``e2e.py``, ``compare.py``).

- ``Sources``: the local services (Redis, kinesis-local) and, by default, a moto server in this
  process serving the pre-loaded stream, its GetRecords answers written directly
  (``moto_direct``: the same bytes for a third of moto's CPU) unless ``stock_moto``.
- ``make_recording`` / ``preload``: a recording of valid events (``pistats generate``) put into a
  fresh stream of a ``Pipeline`` (``pistats.demo.runner``).
- ``drain``: runs until the spout's checkpoints cover every record, sampling progress, each
  process's CPU time at 10 % and 90 % of the records and the topology's resident memory between;
  ``Drain`` turns the samples into a sustained rate and CPU microseconds per record.

CPU and memory come from /proc: the topology's processes are the JVM and the Python components
of ``sparse run``'s session, Redis is the services' redis-server (its pid file), and this process
is the emulator when moto serves the stream.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from moto_direct import serving_get_records_directly
from pistats.generate.generator import GenerateConfig, generate
from pistats.kinesis.recording import Recording
from pistats.localenv import services as local_services

SPAN = (0.1, 0.9)  # the sustained rate and CPU are measured between these fractions of the records
JVM = "JVM (Storm)"
REDIS = "redis"
EMULATOR = "benchmark + moto"
RSS_EVERY_S = 1.0


def _stat(pid: int | str) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_seconds(pid: int | str) -> float | None:
    """User + system CPU seconds so far of a process (all its threads), or of one thread given as
    ``"<pid>/task/<tid>"``; None if it is gone."""
    stat = _stat(pid)
    if stat is None:
        return None
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (0 if it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def redis_pid(ports: local_services.Ports | None = None) -> int | None:
    """The redis-server the services started (``pistats services status``), from its pid file."""
    pid_file = local_services.services(ports)["redis"].pid_file
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if cpu_seconds(pid) is not None else None


def topology_processes(session: int) -> dict[int, str]:
    """The topology's own processes, pid -> name: every JVM of ``sparse run``'s session and each
    Python component, named by its class (``KinesisSpout``, ``EnrichBolt``, ``StoreSinkBolt``)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(entry.name)
        if stat is None or int(stat[3]) != session:
            continue
        try:
            command = [part for part in (entry / "cmdline").read_bytes().split(b"\0") if part]
        except OSError:
            continue
        if not command:
            continue
        if command[0].endswith(b"java"):
            found[int(entry.name)] = JVM
        elif any(b"streamparse_run" in part for part in command):
            found[int(entry.name)] = command[-1].decode().rsplit(".", 1)[-1]
    return found


def process_cpu(session: int, redis: int | None, emulator: bool = True) -> dict[str, float]:
    """CPU seconds so far of each of the topology's processes (by name), Redis and, when moto
    serves the stream from this process, this process (``EMULATOR``)."""
    cpu: dict[str, float] = {}
    for pid, name in topology_processes(session).items():
        cpu[name] = cpu.get(name, 0.0) + (cpu_seconds(pid) or 0.0)
    if redis is not None:
        cpu[REDIS] = cpu_seconds(redis) or 0.0
    if emulator:
        cpu[EMULATOR] = cpu_seconds(os.getpid()) or 0.0
    return cpu


def topology_rss(session: int) -> dict[str, int]:
    """Resident bytes of each of the topology's processes, by name (Redis, a shared server whose
    memory holds every other user's keys too, is not in it)."""
    rss: dict[str, int] = {}
    for pid, name in topology_processes(session).items():
        rss[name] = rss.get(name, 0) + rss_bytes(pid)
    return rss


class Sources:
    """The local services (Redis, kinesis-local) and, for ``kinesis="moto"``, a moto server in
    this process: ``endpoint`` serves the stream, ``redis_url`` the state. ``start`` and
    ``stop`` (moto), or use as a context manager. moto writes its GetRecords answers with
    ``moto_direct`` unless ``stock_moto``."""

    def __init__(self, kinesis: str = "moto", stock_moto: bool = False):
        self.kinesis = kinesis
        self.stock_moto = stock_moto
        self._direct = None
        self.ports = local_services.Ports.from_env()
        self.redis_url = f"redis://127.0.0.1:{self.ports.redis}/0"
        self.endpoint = f"http://127.0.0.1:{self.ports.kinesis}"
        self.moto = None

    def __enter__(self) -> "Sources":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "Sources":
        for name in ("redis", "kinesis"):
            local_services.services(self.ports)[name].start()
        self.redis_pid = redis_pid(self.ports)
        if self.kinesis == "moto":
            import logging

            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request
            if not self.stock_moto:
                self._direct = serving_get_records_directly()
                self._direct.__enter__()
            self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            self.moto.start()
            host, port = self.moto.get_host_and_port()
            self.endpoint = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        if self.moto is not None:
            self.moto.stop()
            self.moto = None
        if self._direct is not None:
            self._direct.__exit__(None, None, None)
            self._direct = None


def make_recording(directory: Path, events: int, shards: int, seed: int = 11) -> Recording:
    """A recording of ``events`` valid events (no rejects, no duplicates) over ``shards`` shards."""
    generate(GenerateConfig(events=events, shards=shards, bad_fraction=0.0, duplicate_fraction=0.0, seed=seed),
             directory)
    return Recording.open(directory)


def preload(pipeline, recording: Recording) -> float:
    """Puts the recording into the pipeline's fresh stream and reads its layout; returns the
    seconds the puts took."""
    pipeline.create_stream(recording)
    started = time.monotonic()
    pipeline.replay(recording)
    seconds = time.monotonic() - started
    pipeline.read_layout()
    return seconds


@dataclass
class Drain:
    """Progress samples of one run to the last checkpoint: (monotonic time, records committed),
    each process's CPU seconds when the records first reached each fraction of ``SPAN``, and
    the topology's resident memory sampled in between."""

    total: int
    started: float
    samples: list[tuple[float, int]] = field(default_factory=list)
    cpu_at: dict[float, dict[str, float]] = field(default_factory=dict)
    rss: list[dict[str, int]] = field(default_factory=list)

    def time_at(self, fraction: float) -> float:
        return next(t for t, committed in self.samples if committed >= fraction * self.total)

    def first_commit(self) -> float:
        return next(t for t, committed in self.samples if committed > 0)

    def span_seconds(self) -> float:
        return self.time_at(SPAN[1]) - self.time_at(SPAN[0])

    def span_records(self) -> float:
        return (SPAN[1] - SPAN[0]) * self.total

    def sustained(self) -> float | None:
        """Records/s between the fractions of ``SPAN`` (start-up and tail excluded), or None when
        both were reached within one sample: too few records to measure a rate."""
        seconds = self.span_seconds()
        return self.span_records() / seconds if seconds > 0 else None

    def cpu_us_per_record(self) -> dict[str, float]:
        """Each process's CPU microseconds per record between the fractions of ``SPAN``."""
        low, high = (self.cpu_at[fraction] for fraction in SPAN)
        return {name: (seconds - low.get(name, 0.0)) * 1e6 / self.span_records() for name, seconds in high.items()}

    def peak_rss(self) -> dict[str, int]:
        """The sample of the topology's resident memory whose total was largest."""
        return max(self.rss, key=lambda sample: sum(sample.values()), default={})


def drain(pipeline, topology, redis: int | None, emulator: bool = True, timeout_s: float = 3600) -> Drain:
    """Waits until every record of the pipeline's stream is committed, sampling as it goes."""
    total = pipeline.layout.total
    result = Drain(total, time.monotonic())
    session = os.getsid(topology.process.pid)
    low, high = SPAN
    rss_sampled_at = float("-inf")

    def sample(committed: int) -> None:
        nonlocal rss_sampled_at
        now = time.monotonic()
        result.samples.append((now, committed))
        for fraction in SPAN:
            if fraction not in result.cpu_at and committed >= fraction * total:
                result.cpu_at[fraction] = process_cpu(session, redis, emulator)
        # Memory once a second: each sample reads every process's /proc entry, on the cores
        # the topology is measured on.
        if committed >= low * total and (committed < high * total or not result.rss) \
                and now - rss_sampled_at >= RSS_EVERY_S:
            result.rss.append(topology_rss(session))
            rss_sampled_at = now

    # Every 100 ms: the rate's span is a few seconds (compare.py's MEASURING).
    pipeline.wait_until_committed(topology, timeout_s, sample, poll_s=0.1)
    return result
