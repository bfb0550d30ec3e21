"""A local Redis Cluster: six Debian ``redis-server`` processes in cluster mode (three masters,
each with a replica) on 127.0.0.1, for tests and for trying a cluster URL by hand.

``pistats services start redis-cluster`` runs it with its data under ``.pistats/redis-cluster/``
on ``PISTATS_REDIS_CLUSTER_PORT`` (7001) and the five ports after it; the tests run their own on
free ports in a temporary folder (``tests/integration/rediscluster/conftest.py``). Each node's
cluster bus listens on its port + 10000 (Redis's default).

The first start creates the cluster (``redis-cli --cluster create ... --cluster-replicas 1``);
later starts find each node's ``nodes.conf`` and the nodes rejoin. ``start`` returns once every
node reports ``cluster_state:ok`` with all 16,384 slots served.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pistats.errors import ServiceError
from pistats.localenv.services import await_ready

NODES = 6
REPLICAS_PER_MASTER = 1
BUS_PORT_OFFSET = 10_000
SLOTS = 16_384
# How long a node may be unreachable before the others mark it failed and its replica takes
# over. Redis's default is 15 s; a local cluster for tests fails over within a few seconds.
NODE_TIMEOUT_MS = 3_000


def node_ports(first_port: int) -> list[int]:
    return [first_port + index for index in range(NODES)]


def cluster_url(first_port: int) -> str:
    """The ``redis+cluster://`` URL of the local cluster (every node a startup node)."""
    return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in node_ports(first_port)) + "/"


def _redis_cli(port: int, *args: str, timeout: float = 5.0) -> str:
    try:
        completed = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
                                   capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return completed.stdout if completed.returncode == 0 else ""


def cluster_info(port: int) -> dict[str, str]:
    """``CLUSTER INFO`` of the node on ``port`` (empty when it does not answer)."""
    info = {}
    for line in _redis_cli(port, "cluster", "info").splitlines():
        name, _, value = line.strip().partition(":")
        if value:
            info[name] = value
    return info


def healthy(info: dict[str, str]) -> bool:
    return (info.get("cluster_state") == "ok" and info.get("cluster_slots_ok") == str(SLOTS)
            and info.get("cluster_known_nodes") == str(NODES))


@dataclass
class LocalRedisCluster:
    """Six nodes under ``home`` (one folder per port), started and stopped together.

    Nodes run in their own sessions with pid files, so a later ``stop`` (another process) finds
    them. ``node_timeout_ms`` is ``cluster-node-timeout``.
    """

    home: Path
    first_port: int
    node_timeout_ms: int = NODE_TIMEOUT_MS
    start_timeout_s: float = 60.0
    # As ``pistats services`` shows a service.
    name: str = "redis-cluster"
    unavailable: Callable[[], str | None] | None = None

    @property
    def port(self) -> int:
        return self.first_port

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.ports[0]}-{self.ports[-1]}"

    @property
    def ports(self) -> list[int]:
        return node_ports(self.first_port)

    @property
    def url(self) -> str:
        return cluster_url(self.first_port)

    def node_dir(self, port: int) -> Path:
        return self.home / str(port)

    def pid_file(self, port: int) -> Path:
        return self.node_dir(port) / "pid"

    def command(self, port: int) -> list[str]:
        return [
            "redis-server", "--bind", "127.0.0.1", "--port", str(port), "--protected-mode", "yes",
            "--dir", str(self.node_dir(port)), "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", str(self.node_timeout_ms),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
        ]

    def node_running(self, port: int) -> bool:
        return _redis_cli(port, "ping", timeout=2.0).strip() == "PONG"

    def running(self) -> bool:
        """Every node answers, sees the cluster serve every slot, and every master has a replica
        whose link to it is up."""
        return (all(self.node_running(port) for port in self.ports)
                and all(healthy(cluster_info(port)) for port in self.ports) and self._replicas_in_sync())

    def _replicas_in_sync(self) -> bool:
        masters, replicas = self.masters(), self.replicas()
        if len(masters) != NODES // (1 + REPLICAS_PER_MASTER) or len(replicas) != NODES - len(masters):
            return False
        return all("master_link_status:up" in _redis_cli(port, "info", "replication") for port in replicas)

    def start(self) -> bool:
        """Start the nodes that are not running, create the cluster on its first start, and wait
        until every node sees it healthy. Returns True if any node was started."""
        started = False
        for port in self.ports:
            if self.node_running(port):
                continue
            self.start_node(port)
            started = True
        if not any(cluster_info(port).get("cluster_slots_assigned") == str(SLOTS) for port in self.ports):
            self._create()
        self.wait_healthy()
        return started

    def start_node(self, port: int) -> None:
        """Start one node (a node stopped or killed rejoins the cluster from its nodes.conf)."""
        folder = self.node_dir(port)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "redis.log", "ab") as log:
            process = subprocess.Popen(self.command(port), cwd=str(folder), stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pid_file(port).write_text(str(process.pid))
        await_ready(process, lambda: self.node_running(port), name=f"redis-cluster node {port}",
                    log_file=folder / "redis.log", timeout_s=self.start_timeout_s, poll_s=0.1)

    def _create(self) -> None:
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        completed = subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", str(REPLICAS_PER_MASTER),
             "--cluster-yes"],
            capture_output=True, text=True, timeout=self.start_timeout_s)
        if completed.returncode != 0:
            last = (completed.stdout + completed.stderr).strip().splitlines()[-1:] or ["no output"]
            raise ServiceError(f"redis-cli --cluster create failed: {last[0][:300]}")

    def wait_healthy(self) -> None:
        """Wait until :meth:`running` (a failover test calls it after a node came back)."""
        deadline = time.monotonic() + self.start_timeout_s
        while not self.running():
            if time.monotonic() > deadline:
                states = {port: cluster_info(port).get("cluster_state", "down") for port in self.ports}
                raise ServiceError(f"redis-cluster not healthy within {self.start_timeout_s:.0f} s: {states}")
            time.sleep(0.2)

    def stop(self, timeout: float = 20.0) -> bool:
        """Stop every node this project started (by pid file); True if any was stopped."""
        import os
        import signal

        stopped = False
        for port in self.ports:
            pid_file = self.pid_file(port)
            if not pid_file.exists():
                continue
            pid = int(pid_file.read_text().strip() or 0)
            pid_file.unlink()
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            stopped = True
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    os.waitpid(pid, os.WNOHANG)  # reap it if this process started it
                except ChildProcessError:
                    pass
                try:
                    os.killpg(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.killpg(pid, signal.SIGKILL)
        return stopped

    def node_pid(self, port: int) -> int:
        return int(self.pid_file(port).read_text().strip())

    def masters(self) -> list[int]:
        """Ports of the nodes that are masters now (as the first answering node sees it)."""
        return self._ports_with_flag("master")

    def replicas(self) -> list[int]:
        return self._ports_with_flag("slave")

    def master_of(self, replica_port: int) -> int | None:
        """The port of the master the replica on ``replica_port`` follows (None if it answers not)."""
        for line in _redis_cli(replica_port, "info", "replication").splitlines():
            name, _, value = line.strip().partition(":")
            if name == "master_port" and value.isdigit():
                return int(value)
        return None

    def _ports_with_flag(self, flag: str) -> list[int]:
        for port in self.ports:
            listing = _redis_cli(port, "cluster", "nodes")
            if not listing:
                continue
            found = []
            for line in listing.splitlines():
                parts = line.split()
                if len(parts) > 2 and flag in parts[2].split(",") and "fail" not in parts[2]:
                    found.append(int(parts[1].split("@")[0].rsplit(":", 1)[1]))
            return sorted(found)
        return []

    def version(self) -> str:
        try:
            output = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, timeout=60).stdout
            return output.split("v=")[1].split()[0]
        except (OSError, subprocess.TimeoutExpired, IndexError):
            return "not installed"
