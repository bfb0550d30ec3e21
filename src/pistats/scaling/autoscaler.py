"""The autoscaler's loop around the rule: observe, decide, act.

- ``Observer`` turns successive status views (``pistats.status.view``) into the rule's
  ``Observation``: the rate the topology finishes records comes from what the spout tasks
  publish; the rate records arrive is what the open shards were written to lately, probed at
  their tips. Without that probe (a view of ``pistats status``), it is the finished rate plus how
  fast the backlog grew between two views, which reads low once a count stops at the probe's
  limit (a deep backlog no longer grows as counted) and while a backlog drains after a pause (the
  published rate trails the drain).
- ``StormRebalancer`` applies executors and workers with ``storm rebalance`` (Storm moves the
  topology's tasks onto the new workers; the data is replayed from checkpoints, nothing is lost).
- ``ShardResizer`` applies a shard count with Kinesis ``UpdateShardCount`` (uniform scaling); the
  spout follows the new shards by itself (parents finish before children start).

The shape in force (executors, workers) is what the autoscaler last applied, kept in Redis under
``pistats:autoscale:<topology>`` so a restarted autoscaler carries on; before its first action it
is the shape the operator says was submitted. A remembered shape counts only for the run of the
topology it was applied to: one saved before the running topology was submitted (a redeploy under
the same name starts from its submitted shape) is ignored (``starting_shape``).
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from pistats.kinesis.admin import list_all_shards
from pistats.scaling.policy import AutoscaleConfig, Decision, Observation, ScalerState, decide
from pistats.status.view import StatusView

log = logging.getLogger(__name__)

# Records counted behind each shard's checkpoint per observation (one GetRecords from it). The
# probe reads what it counts, and on Kinesis those reads share each shard's limits (2 MiB/s, 5
# calls/s) with the spout, the more the further behind it is: `pistats status`'s 10,000 can take
# 10 MiB a shard every interval. On the local cluster, 3,000 records behind made 10,000-record
# probes stretch 3 s intervals to 14-23 s (kinesis-local serves such reads at under 1,000 records/s)
# and slowed the emulator the spout reads from. A deeper backlog counts as this many a shard: the
# lag (the oldest record's age) stays exact, so scaling up still follows it.
PROBE_RECORDS = 1_000
# The write rate is read at each open shard's tip over this many seconds (or the interval, if
# shorter), up to PROBE_RECORDS records: recent enough to follow a surge, and at Kinesis's 1,000
# records/s a shard the page fills after a second, so the rate is still measured.
ARRIVALS_WINDOW_S = 10.0


@dataclass(frozen=True)
class Shape:
    executors: int
    workers: int


def open_shards(kinesis, stream: str) -> int:
    return sum(1 for s in list_all_shards(kinesis, stream)
               if "EndingSequenceNumber" not in s.get("SequenceNumberRange", {}))


class Observer:
    """Observations from status views taken at least a few seconds apart (``now`` in seconds)."""

    def __init__(self):
        self._previous: tuple[float, int, bool] | None = None

    def observe(self, view: StatusView, at: float, shape: Shape, shards: int) -> Observation:
        finished = sum(s.finished_per_s or 0.0 for s in view.shards)
        backlog = view.behind_records
        previous, self._previous = self._previous, (at, backlog, view.behind_exact)
        if view.arrived_per_s is not None:
            incoming = view.arrived_per_s
        elif previous is not None and previous[2] and view.behind_exact and at > previous[0]:
            incoming = max(0.0, finished + (backlog - previous[1]) / (at - previous[0]))
        else:
            incoming = finished  # nothing better until two exact counts
        return Observation(at, incoming, finished, backlog, view.behind_ms, shape.executors, shape.workers, shards)


def listed_uptime_s(listing: str, topology: str) -> int | None:
    """``Uptime_secs`` of ``topology`` in ``storm list``'s table (name, status, tasks, workers,
    uptime); None when it is not listed."""
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) == 5 and fields[0] == topology and fields[4].isdigit():
            return int(fields[4])
    return None


class StormRebalancer:
    """``storm rebalance NAME -w WAIT -n WORKERS -e BOLT=EXECUTORS`` and ``storm list`` through an
    injected runner."""

    def __init__(self, storm: str, topology: str, bolt: str, wait_s: int = 5,
                 run: Callable[[Sequence[str]], subprocess.CompletedProcess] | None = None):
        self._storm, self._topology = storm, topology
        self._command = [storm, "rebalance", topology, "-w", str(wait_s)]
        self._bolt = bolt
        self._run = run or (lambda argv: subprocess.run(argv, capture_output=True, text=True, timeout=120))

    def uptime_s(self) -> int | None:
        """How long the topology has run since it was submitted (a rebalance does not reset it);
        None when Storm cannot say (not running, Nimbus unreachable, no storm command)."""
        try:
            done = self._run([self._storm, "list"])
        except (OSError, subprocess.SubprocessError):
            return None
        return listed_uptime_s(done.stdout or "", self._topology) if done.returncode == 0 else None

    def apply(self, shape: Shape) -> str | None:
        """None when Storm took it, else the error in one line."""
        done = self._run(self._command + ["-n", str(shape.workers), "-e", f"{self._bolt}={shape.executors}"])
        if done.returncode == 0:
            return None
        lines = [line for line in (done.stderr or done.stdout or "").splitlines() if line.strip()]
        return lines[-1] if lines else f"storm rebalance exited with {done.returncode}"


class ShardResizer:
    def __init__(self, kinesis, stream: str):
        self._kinesis, self._stream = kinesis, stream

    def apply(self, shards: int) -> str | None:
        try:
            self._kinesis.update_shard_count(StreamName=self._stream, TargetShardCount=shards,
                                             ScalingType="UNIFORM_SCALING")
            return None
        except Exception as error:  # noqa: BLE001 - reported as the action's outcome, the loop goes on
            return getattr(error, "response", {}).get("Error", {}).get("Code") or type(error).__name__


@dataclass(frozen=True)
class Remembered:
    shape: Shape
    saved_at: float  # epoch seconds on the autoscaler's clock; 0 when not recorded


class ShapeMemory:
    """The shape last applied and when, in Redis, so a restarted autoscaler knows it."""

    def __init__(self, redis_client, topology: str, wall: Callable[[], float] = time.time):
        self._redis, self._key, self._wall = redis_client, f"pistats:autoscale:{topology}", wall

    def load(self) -> Remembered | None:
        raw = self._redis.get(self._key)
        if not raw:
            return None
        values = orjson.loads(raw)
        return Remembered(Shape(int(values["executors"]), int(values["workers"])), float(values.get("saved_at", 0.0)))

    def save(self, shape: Shape) -> None:
        self._redis.set(self._key, orjson.dumps({"executors": shape.executors, "workers": shape.workers,
                                                 "saved_at": self._wall()}))


def starting_shape(remembered: Remembered | None, submitted: Shape, topology_started_at: float | None) -> Shape:
    """The shape in force when the autoscaler starts: the one it last applied if it applied it to
    the running topology (saved after that was submitted), else the submitted one. Unknown start
    (Storm cannot say): the remembered shape. ``topology_started_at`` comes from an uptime in whole
    seconds, hence the second of slack."""
    if remembered is None:
        return submitted
    if topology_started_at is not None and remembered.saved_at < topology_started_at - 1.0:
        return submitted  # applied to an earlier run of the topology
    return remembered.shape


@dataclass(frozen=True)
class Step:
    observation: Observation
    decision: Decision
    applied: bool
    errors: tuple[str, ...] = ()


class Autoscaler:
    """One ``step`` per interval: observe, decide, and unless ``dry_run`` apply the decision."""

    def __init__(self, config: AutoscaleConfig, view: Callable[[], StatusView], shards: Callable[[], int],
                 rebalancer: StormRebalancer, resizer: ShardResizer, memory: ShapeMemory, submitted: Shape,
                 *, topology_started_at: float | None = None, dry_run: bool = False,
                 now: Callable[[], float] = time.monotonic):
        self._config = config
        self._view, self._shards = view, shards
        self._rebalancer, self._resizer, self._memory = rebalancer, resizer, memory
        self._dry_run = dry_run
        self._now = now
        self._observer = Observer()
        self._state = ScalerState()
        self.shape = starting_shape(memory.load(), submitted, topology_started_at)

    def step(self) -> Step:
        observation = self._observer.observe(self._view(), self._now(), self.shape, self._shards())
        self._state, decision = decide(self._state, observation, self._config)
        if self._dry_run or not decision.changes(observation):
            return Step(observation, decision, applied=False)
        errors = []
        wanted = Shape(decision.executors, decision.workers)
        if wanted != self.shape:
            error = self._rebalancer.apply(wanted)
            if error is None:
                self.shape = wanted
                self._memory.save(wanted)
            else:
                errors.append(f"rebalance: {error}")
        if decision.shards != observation.shards:
            error = self._resizer.apply(decision.shards)
            if error is not None:
                errors.append(f"UpdateShardCount: {error}")
        for error in errors:
            log.warning("autoscale action failed: %s", error)
        return Step(observation, decision, applied=not errors, errors=tuple(errors))
