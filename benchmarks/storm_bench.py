"""What the benchmarks that run the real topology share (``e2e.py``, ``compare.py``).

- ``Sources``: the local services (Redis, kinesis-local) and, by default, a moto server in this
  process serving the pre-loaded stream, its GetRecords answers written directly
  (``moto_direct``: the same bytes for a third of moto's CPU) unless ``stock_moto``.
- ``make_recording`` / ``preload``: a recording of valid events (``pistats generate``) put into a
  fresh stream of a ``Pipeline`` (``pistats.demo.runner``).
- ``drain``: runs until the spout's checkpoints cover every record, sampling progress, each
  process's CPU time at 10 % and 90 % of the records (or, when earlier, at the first checkpoint
  after moto served its last record) and the topology's resident memory between; ``Drain`` turns
  the samples into a sustained rate and CPU microseconds per record.

CPU and memory come from /proc: the topology's processes are the JVM and the Python components
of ``sparse run``'s session, Redis is the services' redis-server (its pid file), and this process
is the emulator when moto serves the stream.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
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


def machine_ticks(stat: str | None = None) -> tuple[int, int] | None:
    """(every CPU's time, the time stolen from them) so far, in clock ticks, from /proc/stat's
    first line (user nice system idle iowait irq softirq steal ...): stolen is the time the
    hypervisor ran other guests while this one had work. None where the kernel does not say."""
    try:
        line = stat if stat is not None else Path("/proc/stat").read_text().splitlines()[0]
        ticks = [int(value) for value in line.split()[1:9]]
    except (OSError, IndexError, ValueError):
        return None
    return (sum(ticks), ticks[7]) if len(ticks) == 8 else None


def stolen_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The share of the machine's CPU time stolen between two ``machine_ticks``."""
    if before is None or after is None or after[0] <= before[0]:
        return None
    return (after[1] - before[1]) / (after[0] - before[0])


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


class RecordsServed:
    """How many records moto's Kinesis backend in this process has handed out through GetRecords
    (``drain`` ends a span when the source is read out). Call it for the count."""

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()  # the moto server answers on a thread per request

    def __call__(self) -> int:
        return self._count

    def add(self, records: int) -> None:
        with self._lock:
            self._count += records


@contextmanager
def counting_records_served(served: RecordsServed) -> Iterator[None]:
    """Within the block, every GetRecords of moto's backend in this process counts its records."""
    from moto.kinesis.models import KinesisBackend

    stock = KinesisBackend.get_records

    def get_records(self, *args, **kwargs):
        answer = stock(self, *args, **kwargs)
        served.add(len(answer[1]))  # (next iterator, records, millis behind)
        return answer

    KinesisBackend.get_records = get_records
    try:
        yield
    finally:
        KinesisBackend.get_records = stock


class Sources:
    """The local services (Redis, kinesis-local) and, for ``kinesis="moto"``, a moto server in
    this process: ``endpoint`` serves the stream, ``redis_url`` the state. ``start`` and
    ``stop`` (moto), or use as a context manager. moto writes its GetRecords answers with
    ``moto_direct`` unless ``stock_moto``; ``served`` counts the records it served (None without
    moto)."""

    def __init__(self, kinesis: str = "moto", stock_moto: bool = False):
        self.kinesis = kinesis
        self.stock_moto = stock_moto
        self._patches = ExitStack()  # moto's, undone in reverse order by stop()
        self.served: RecordsServed | None = None
        self.ports = local_services.Ports.from_env()
        self.redis_url = f"redis://127.0.0.1:{self.ports.redis}/0"
        self.endpoint = f"http://127.0.0.1:{self.ports.kinesis}"
        self.moto = None

    def __enter__(self) -> "Sources":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "Sources":
        # kinesis-local only when it is the source: idle, it would still share the cores.
        for name in ("redis",) if self.kinesis == "moto" else ("redis", "kinesis"):
            local_services.services(self.ports)[name].start()
        self.redis_pid = redis_pid(self.ports)
        if self.kinesis == "moto":
            import logging

            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request
            if not self.stock_moto:
                self._patches.enter_context(serving_get_records_directly())
            self.served = RecordsServed()
            self._patches.enter_context(counting_records_served(self.served))
            self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            self.moto.start()
            host, port = self.moto.get_host_and_port()
            self.endpoint = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        if self.moto is not None:
            self.moto.stop()
            self.moto = None
        self._patches.close()


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


@dataclass(frozen=True)
class Mark:
    """The drain at one sample: when (monotonic), records committed, each process's CPU seconds."""

    at: float
    committed: int
    cpu: dict[str, float]


@dataclass
class Drain:
    """Progress samples of one run to the last checkpoint: (monotonic time, records committed),
    ``marks`` where the span may start and end (``"start"`` and ``"end"``: the records first
    reached each fraction of ``SPAN``; ``"read"``: the first checkpoint after the source served
    its last record), and the topology's resident memory sampled in between.

    The span ends at ``"read"`` when that comes first: the spout reads up to ``max_uncommitted``
    records ahead of its checkpoints, and once the source is read out its reading no longer
    competes for the cores nor shows in the CPU per record, which would flatter the topology."""

    total: int
    started: float
    samples: list[tuple[float, int]] = field(default_factory=list)
    marks: dict[str, Mark] = field(default_factory=dict)
    rss: list[dict[str, int]] = field(default_factory=list)

    def first_commit(self) -> float:
        return next(t for t, committed in self.samples if committed > 0)

    def span(self) -> tuple[Mark, Mark] | None:
        """The marks the rate and CPU are measured between, or None when both ends fell within
        one sample: too few records to measure a rate."""
        start, end, read = (self.marks.get(name) for name in ("start", "end", "read"))
        if start is None or end is None:
            return None
        if read is not None and start.at < read.at < end.at:
            end = read
        return (start, end) if end.at > start.at and end.committed > start.committed else None

    def read_before_span(self) -> bool:
        """The source was read out before the span began: the spout's reading is not in it."""
        read, start = self.marks.get("read"), self.marks.get("start")
        return read is not None and start is not None and read.at <= start.at

    def span_seconds(self) -> float:
        start, end = self.span()
        return end.at - start.at

    def span_records(self) -> int:
        start, end = self.span()
        return end.committed - start.committed

    def span_fractions(self) -> tuple[float, float]:
        """Where the span starts and ends, as fractions of the records committed."""
        start, end = self.span()
        return start.committed / self.total, end.committed / self.total

    def sustained(self) -> float | None:
        """Records/s over the span (start-up and tail excluded), or None without one."""
        return self.span_records() / self.span_seconds() if self.span() else None

    def cpu_us_per_record(self) -> dict[str, float]:
        """Each process's CPU microseconds per record over the span."""
        start, end = self.span()
        records = end.committed - start.committed
        return {name: (seconds - start.cpu.get(name, 0.0)) * 1e6 / records for name, seconds in end.cpu.items()}

    def peak_rss(self) -> dict[str, int]:
        """The sample of the topology's resident memory whose total was largest."""
        return max(self.rss, key=lambda sample: sum(sample.values()), default={})


def drain(pipeline, topology, redis: int | None, emulator: bool = True, served: Callable[[], int] | None = None,
          timeout_s: float = 3600) -> Drain:
    """Waits until every record of the pipeline's stream is committed, sampling as it goes.
    ``served``, when the source can say, gives the records it has served so far (``Sources``);
    only those served from now on count."""
    total = pipeline.layout.total
    result = Drain(total, time.monotonic())
    session = os.getsid(topology.process.pid)
    low, high = SPAN
    rss_sampled_at = float("-inf")
    committed_when_read: int | None = None
    served_before = served() if served is not None else 0  # the pre-load's reading of the layout

    def sample(committed: int) -> None:
        nonlocal rss_sampled_at, committed_when_read
        now = time.monotonic()
        result.samples.append((now, committed))
        marks = result.marks
        for name, fraction in (("start", low), ("end", high)):
            if name not in marks and committed >= fraction * total:
                marks[name] = Mark(now, committed, process_cpu(session, redis, emulator))
        if served is not None and "read" not in marks and "end" not in marks:
            if committed_when_read is None:
                if served() - served_before >= total:
                    committed_when_read = committed
            elif committed > committed_when_read:  # the first checkpoint since: a span ends on one
                marks["read"] = Mark(now, committed, process_cpu(session, redis, emulator))
        # Memory once a second: each sample reads every process's /proc entry, on the cores
        # the topology is measured on.
        if committed >= low * total and (committed < high * total or not result.rss) \
                and now - rss_sampled_at >= RSS_EVERY_S:
            result.rss.append(topology_rss(session))
            rss_sampled_at = now

    # Every 100 ms: the rate's span is a few seconds (compare.py's MEASURING).
    pipeline.wait_until_committed(topology, timeout_s, sample, poll_s=0.1)
    return result
