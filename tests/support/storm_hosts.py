"""The local Storm cluster with two supervisors standing in for two hosts (127.0.0.2 and
127.0.0.3), what Nimbus says runs where, and the session check that also proves per-user order.

Nimbus is asked through its Thrift API (``storm_compat.launcher.nimbus_client``), as ``storm
list`` does: which supervisors it knows, and on which host and port each executor of a topology
runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from pistats.demo.runner import Pipeline
from pistats.localenv import services as local_services
from pistats.localenv.services import Ports, Service, prepare_storm_cluster
from pistats.redis_keys import delete_matching

HOSTS = ("127.0.0.2", "127.0.0.3")
# The fields that depend on the order a user's events were processed in: ``session_event_index``
# counts the events of a session as they come, ``is_new_user`` marks the first one processed,
# ``session_index`` numbers sessions as they open. Equal to a run in shard order means every
# user's events were processed in shard order (or replayed over the memo, which gives the same).
ORDER_FIELDS = ("session_id", "session_index", "session_event_index", "is_new_user")


def _nimbus():
    from storm_compat.launcher import nimbus_client

    return nimbus_client([f"nimbus.thrift.port={Ports.from_env().nimbus}"])[1]


def live_supervisor_hosts() -> set[str]:
    """The hosts of the supervisors Nimbus counts as alive."""
    return {supervisor.host for supervisor in _nimbus().getClusterInfo().supervisors or []}


@dataclass(frozen=True)
class Executor:
    component: str
    host: str
    port: int
    tasks: tuple[int, int]  # first and last task id


def placement(topology: str) -> list[Executor]:
    """Where each executor of ``topology`` runs now (empty while it is not scheduled)."""
    client = _nimbus()
    ids = [summary.id for summary in client.getClusterInfo().topologies or [] if summary.name == topology]
    if not ids:
        return []
    info = client.getTopologyInfo(ids[0])
    return [Executor(e.component_id, e.host, e.port, (e.executor_info.task_start, e.executor_info.task_end))
            for e in info.executors or [] if not e.component_id.startswith("__")]


def workers(executors: list[Executor]) -> set[tuple[str, int]]:
    return {(executor.host, executor.port) for executor in executors}


def wait_for(condition, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except OSError:
            pass  # Nimbus busy or restarting: ask again
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.5)


class TwoHosts:
    """ZooKeeper, Nimbus and ``storm-supervisor-1`` (127.0.0.2) and ``-2`` (127.0.0.3), as
    ``pistats services start storm --supervisors 2`` runs them."""

    def __init__(self) -> None:
        self.ports = Ports.from_env()
        self.table = local_services.services(self.ports, supervisors=2)
        self.supervisors = {host.hostname: self.table[host.name]
                            for host in local_services.supervisor_hosts(2, self.ports)}

    def supervisor(self, host: str) -> Service:
        return self.supervisors[host]

    def kill(self, host: str) -> None:
        """SIGKILL to the supervisor of ``host`` and its whole process group: its workers and
        their Python components die with it, as when a machine goes away."""
        service = self.supervisor(host)
        os.killpg(int(service.pid_file.read_text()), signal.SIGKILL)
        if service._process is not None:  # started by this process: reap it
            service._process.wait(30)
        wait_for(lambda: not service.running(), f"the supervisor of {host} to die", 30)

    def python_processes(self, component_class: str) -> dict[str, int]:
        """How many Python processes of ``component_class`` (e.g. ``bolts.enrich.EnrichBolt``) each
        host runs: processes in its supervisor's process group, not other topologies on the machine."""
        groups = {}
        for host, service in self.supervisors.items():
            try:
                groups[int(service.pid_file.read_text())] = host
            except (OSError, ValueError):
                continue
        counts = {host: 0 for host in HOSTS}
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                pgrp = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[2])
            except (OSError, ValueError, IndexError):
                continue
            if pgrp in groups and "streamparse_run" in command and component_class in command:
                counts[groups[pgrp]] += 1
        return counts

    def restart(self, host: str) -> None:
        self.supervisor(host).start()
        self.wait_until_both_alive()

    def wait_until_both_alive(self, timeout: float = 120) -> None:
        wait_for(lambda: live_supervisor_hosts() == set(HOSTS), f"Nimbus to see exactly {HOSTS}", timeout)


@contextlib.contextmanager
def two_host_cluster(bin_dir: Path) -> Iterator[TwoHosts]:
    """The two-host cluster for a test module. What it starts it stops afterwards; a running
    single-node supervisor (127.0.0.1, e.g. the session's ``storm_cluster``) is stopped for the
    while and started again, so that only the two hosts take workers."""
    cluster = TwoHosts()
    single = cluster.table["storm-supervisor"]
    single_was_running = single.running()
    started: list[str] = []
    previous_path = os.environ["PATH"]
    # The daemons, and the workers the supervisors start, find `storm` and `streamparse_run` on
    # PATH: the project's virtualenv first.
    os.environ["PATH"] = f"{bin_dir}:{previous_path}"
    try:
        if single_was_running:
            single.stop()
        for name in local_services.storm_group(2):
            if cluster.table[name].start():
                started.append(name)
        prepare_storm_cluster(cluster.ports)
        cluster.wait_until_both_alive()
        yield cluster
    finally:
        for name in reversed(started):
            cluster.table[name].stop()
        if single_was_running:
            single.start()
        os.environ["PATH"] = previous_path


def stored_order_fields(pipeline: Pipeline) -> dict[tuple[str, str], tuple]:
    from pistats.store.backends import open_store

    with open_store(pipeline.run.store_url) as store:
        rows = store.query(f"SELECT client_id, event_id, {', '.join(ORDER_FIELDS)} FROM {store.database}.events FINAL")
    return {(row[0], row[1]): tuple(int(v) if isinstance(v, bool) else v for v in row[2:]) for row in rows}


def shard_order_fields(recording_dir: Path, redis_url: str) -> dict[tuple[str, str], tuple]:
    """Each event's ``ORDER_FIELDS`` when the recording runs through the chain in one process, in
    shard order, from empty session state (``pistats enrich``'s code path)."""
    from pistats.enrich.chain import Chain, EnrichConfig
    from pistats.enrich.run import records_from_recording, run_chain
    from pistats.redisconn import connect

    prefix = f"pistats-test:shard-order:{uuid.uuid4().hex[:12]}"
    connection = connect(redis_url, connect_timeout_s=None, socket_timeout_s=None)
    chain = Chain.build(EnrichConfig.from_dict({"sessions": {"key_prefix": prefix}}), redis=connection,
                        with_stages=False)
    fields: dict[tuple[str, str], tuple] = {}

    def keep(event: dict) -> None:
        fields[(event["client_id"], event["event_id"])] = tuple(
            int(event[name]) if isinstance(event[name], bool) else event[name] for name in ORDER_FIELDS)

    try:
        run_chain(chain, records_from_recording(recording_dir), keep, lambda reject: None)
    finally:
        delete_matching(connection, f"{prefix}:*")
    return fields


def assert_per_user_order(pipeline: Pipeline, recording_dir: Path) -> None:
    """Every stored event has the session fields, order-dependent ones included, that a run in
    shard order gives it: no user's events were processed out of order."""
    stored = stored_order_fields(pipeline)
    expected = shard_order_fields(recording_dir, pipeline.redis_url)
    assert stored.keys() == expected.keys()
    different = {key: (stored[key], expected[key]) for key in stored if stored[key] != expected[key]}
    assert not different, (f"{len(different)} of {len(stored)} events processed out of their user's order "
                           f"(stored, shard order; fields {ORDER_FIELDS}): {dict(list(different.items())[:5])}")
