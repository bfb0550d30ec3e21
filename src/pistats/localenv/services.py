"""Start, stop and inspect the local services: Redis, ClickHouse, kinesis-local, PostgreSQL, ZooKeeper, Storm,
the gateway (nginx in front of the ingest on gunicorn), and a Redis Cluster (``redis_cluster.py``).

Each service is a process started in the background with its data, logs and pid file under
``.pistats/<service>/``, listening on 127.0.0.1 only, on a port taken from the environment
(see :class:`Ports`). ``start`` is idempotent: a service whose port already answers is left alone,
so a developer's own Redis on the same port is reused rather than fought with.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pistats.errors import ConfigError, ServiceError
from pistats.localenv.paths import project_root, state_dir


@dataclass(frozen=True)
class Ports:
    """Ports of the local services, overridable with ``PISTATS_<NAME>_PORT`` variables."""

    redis: int = 6379
    redis_cluster: int = 7001  # the first of its six nodes' ports
    clickhouse: int = 9000
    clickhouse_http: int = 8123
    kinesis: int = 4567
    kinesis_tls: int = 4568
    postgres: int = 5432
    zookeeper: int = 2181
    nimbus: int = 6627
    supervisor_slots: tuple[int, ...] = (6700, 6701)
    supervisor_thrift: int = 6628  # the next supervisors take the ports after it
    gateway: int = 8088

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Ports":
        env = os.environ if environ is None else environ
        defaults = cls()

        def port(name: str) -> int:
            raw = env.get(f"PISTATS_{name.upper()}_PORT")
            return int(raw) if raw else getattr(defaults, name)

        return cls(
            redis=port("redis"),
            redis_cluster=port("redis_cluster"),
            clickhouse=port("clickhouse"),
            clickhouse_http=port("clickhouse_http"),
            kinesis=port("kinesis"),
            kinesis_tls=port("kinesis_tls"),
            postgres=port("postgres"),
            zookeeper=port("zookeeper"),
            nimbus=port("nimbus"),
            gateway=port("gateway"),
        )


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def await_ready(process: subprocess.Popen, ready: Callable[[], bool], *, name: str, log_file: Path,
                timeout_s: float, poll_s: float = 0.2) -> None:
    """Wait until ``ready()`` says a process just started serves; a ServiceError naming its log
    (and the log's last line) when the process exits first or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if process.poll() is not None:
            raise ServiceError(f"{name} exited with code {process.returncode}{_last_log_line(log_file)} "
                               f"(see {log_file})")
        if time.monotonic() > deadline:
            raise ServiceError(f"{name} did not become ready within {timeout_s:.0f} s (see {log_file})")
        time.sleep(poll_s)


def _last_log_line(log_file: Path) -> str:
    try:
        lines = log_file.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return f": {lines[-1][:300]}" if lines else ""


@dataclass
class Service:
    """One background process with a pid file, a log and a readiness port."""

    name: str
    port: int
    command: Callable[[Path], list[str]]
    version: Callable[[], str]
    cwd: Callable[[], Path] | None = None
    env: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[Path], None] | None = None
    # What `status` shows; default 127.0.0.1:<port>.
    address: str | None = None
    start_timeout: float = 60.0
    ready: Callable[[], bool] | None = None  # default: the port answers
    # Why the service cannot be started as things are (a setting missing), or None.
    unavailable: Callable[[], str | None] | None = None
    # The process this object started, if any: stop() reaps it, or it would linger as a zombie
    # (and keep its process group answering) for as long as the starting process lives.
    _process: subprocess.Popen | None = field(default=None, init=False, repr=False)
    stop_signal: int = signal.SIGTERM

    @property
    def home(self) -> Path:
        return state_dir() / self.name

    @property
    def endpoint(self) -> str:
        return self.address or f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "pid"

    @property
    def log_file(self) -> Path:
        return self.home / f"{self.name}.log"

    def running(self) -> bool:
        return self.ready() if self.ready else port_open(self.port)

    def start(self) -> bool:
        """Start the service unless its port already answers; returns True if it was started."""
        if self.running():
            return False
        self.home.mkdir(parents=True, exist_ok=True)
        if self.prepare:
            self.prepare(self.home)
        env = {**os.environ, **self.env}
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(
                self.command(self.home),
                cwd=str(self.cwd() if self.cwd else self.home),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the starting shell; stopped by pid file
            )
        self._process = process
        self.pid_file.write_text(str(process.pid))
        await_ready(process, self.running, name=self.name, log_file=self.log_file, timeout_s=self.start_timeout)
        return True

    def stop(self, timeout: float = 20.0) -> bool:
        """Stop a service this project started (by pid file); returns True if one was stopped."""
        if not self.pid_file.exists():
            return False
        pid = int(self.pid_file.read_text().strip() or 0)
        self.pid_file.unlink()
        try:
            os.killpg(pid, self.stop_signal)
        except ProcessLookupError:
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.pid == pid:
                self._process.poll()
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.2)
        os.killpg(pid, signal.SIGKILL)
        return True


def _run_version(command: list[str], pick: Callable[[str], str]) -> str:
    try:
        output = subprocess.run(command, capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    try:
        return pick(output)
    except (IndexError, ValueError):
        return output.strip() or "unknown"


# --- Redis -----------------------------------------------------------------------------

def redis_service(ports: Ports) -> Service:
    def command(home: Path) -> list[str]:
        # appendonly: session state and checkpoints survive a restart (fault-injection tests rely on it).
        return [
            "redis-server", "--bind", "127.0.0.1", "--port", str(ports.redis),
            "--dir", str(home), "--appendonly", "yes", "--appendfsync", "everysec",
            "--save", "", "--protected-mode", "yes",
        ]

    return Service(
        name="redis",
        port=ports.redis,
        command=command,
        version=lambda: _run_version(["redis-server", "--version"], lambda out: out.split("v=")[1].split()[0]),
    )


# --- ClickHouse server (Debian clickhouse-server 18.16) --------------------------------

CLICKHOUSE_CONFIG = """<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>{home}/server.log</log><errorlog>{home}/error.log</errorlog><size>100M</size><count>2</count></logger>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    <listen_host>127.0.0.1</listen_host>
    <max_connections>256</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <mark_cache_size>268435456</mark_cache_size>
    <path>{home}/data/</path>
    <tmp_path>{home}/data/tmp/</tmp_path>
    <user_files_path>{home}/data/user_files/</user_files_path>
    <format_schema_path>{home}/data/format_schemas/</format_schema_path>
    <users_config>/etc/clickhouse-server/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
</yandex>
"""


def clickhouse_service(ports: Ports) -> Service:
    def prepare(home: Path) -> None:
        (home / "data").mkdir(parents=True, exist_ok=True)
        (home / "config.xml").write_text(
            CLICKHOUSE_CONFIG.format(home=home, http_port=ports.clickhouse_http, tcp_port=ports.clickhouse)
        )

    def version() -> str:
        # 18.16's binary has no --version flag; the Debian package version is the server version.
        return _run_version(
            ["dpkg-query", "-W", "-f=${Version}", "clickhouse-server"], lambda out: out.split("+")[0]
        )

    return Service(
        name="clickhouse",
        port=ports.clickhouse,
        command=lambda home: ["clickhouse-server", f"--config-file={home / 'config.xml'}"],
        version=version,
        prepare=prepare,
    )


# --- kinesis-local (kinesis-mock compiled to JS) ---------------------------------------

def kinesis_local_dir() -> Path:
    return state_dir() / "node" / "node_modules" / "kinesis-local"


def kinesis_service(ports: Ports) -> Service:
    loopback = project_root() / "scripts" / "node-listen-loopback.js"
    wall_clock = project_root() / "scripts" / "node-wall-clock.js"

    def command(home: Path) -> list[str]:
        # kinesis-mock hard-codes 0.0.0.0; the first preload pins every listen() to 127.0.0.1.
        # The second keeps its "now" on the machine's wall clock after a clock step (see there).
        return ["node", "--require", str(loopback), "--require", str(wall_clock), "main.js"]

    def version() -> str:
        import json

        package = kinesis_local_dir() / "package.json"
        if not package.exists():
            return "not installed"
        return json.loads(package.read_text())["version"]

    return Service(
        name="kinesis",
        port=ports.kinesis,
        command=command,
        version=version,
        cwd=kinesis_local_dir,  # it reads server.json (its TLS certificate) from its package folder
        env={
            "KINESIS_MOCK_PLAIN_PORT": str(ports.kinesis),
            "KINESIS_MOCK_TLS_PORT": str(ports.kinesis_tls),
            "LOG_LEVEL": "WARN",
            # Stream operations complete quickly but not instantly, so callers still have to wait.
            "CREATE_STREAM_DURATION": "200ms",
            "DELETE_STREAM_DURATION": "200ms",
            "UPDATE_SHARD_COUNT_DURATION": "200ms",
            "SPLIT_SHARD_DURATION": "200ms",
            "MERGE_SHARDS_DURATION": "200ms",
            # Every demo and end-to-end test makes a stream of its own (and deletes it afterwards).
            "SHARD_LIMIT": "2000",
        },
    )


# --- PostgreSQL (Debian postgresql 15): the subscriber registry ---------------------------

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
# The local registry URL is postgresql://pistats@127.0.0.1:<port>/pistats (trust on 127.0.0.1).
POSTGRES_ROLE = POSTGRES_DATABASE = "pistats"


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run ``command`` as the ``postgres`` system user
    (setpriv execs, so the pid kept is the postmaster's own)."""
    if os.geteuid() != 0:
        return command
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *command]


def postgres_data_dir(home: Path) -> Path:
    """``<home>/data``; as root, when the postgres user cannot reach ``home`` (a checkout under
    /root), a link to a folder it can reach under /var/lib/pistats."""
    data = home / "data"
    if os.geteuid() != 0 or data.exists() or subprocess.run(_as_postgres(["test", "-x", str(home)])).returncode == 0:
        return data
    import hashlib

    elsewhere = Path("/var/lib/pistats") / f"postgres-{hashlib.sha256(str(home).encode()).hexdigest()[:12]}"
    elsewhere.mkdir(parents=True, exist_ok=True)
    data.symlink_to(elsewhere)
    return data


def postgres_service(ports: Ports) -> Service:
    def prepare(home: Path) -> None:
        data = postgres_data_dir(home).resolve()  # the postgres user may not pass through home
        if (data / "PG_VERSION").exists():
            return
        data.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(data, "postgres", "postgres")
        steps = [
            ([str(POSTGRES_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
              "--locale=C.UTF-8"], b""),
            # Single-user mode: the role and database exist before the server first listens.
            ([str(POSTGRES_BIN / "postgres"), "--single", "-D", str(data), "postgres"],
             f"CREATE ROLE {POSTGRES_ROLE} LOGIN CREATEDB;\n"
             f"CREATE DATABASE {POSTGRES_DATABASE} OWNER {POSTGRES_ROLE};\n".encode()),
        ]
        with open(home / "postgres.log", "ab") as log:
            for step, stdin in steps:
                if subprocess.run(_as_postgres(step), input=stdin, stdout=log, stderr=subprocess.STDOUT).returncode:
                    raise ServiceError(f"postgres: {Path(step[0]).name} failed (see {home / 'postgres.log'})")

    def command(home: Path) -> list[str]:
        return _as_postgres([
            str(POSTGRES_BIN / "postgres"), "-D", str((home / "data").resolve()),
            "-c", "listen_addresses=127.0.0.1", "-c", f"port={ports.postgres}",
            "-c", "unix_socket_directories=", "-c", "max_connections=200",
        ])

    def ready() -> bool:
        # The port opens before the server accepts connections ("the database system is starting up").
        return port_open(ports.postgres) and subprocess.run([
            str(POSTGRES_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(ports.postgres),
            "-U", "postgres", "-d", "postgres",
        ]).returncode == 0

    return Service(
        name="postgres",
        port=ports.postgres,
        command=command,
        version=lambda: _run_version([str(POSTGRES_BIN / "postgres"), "--version"], lambda out: out.split()[2]),
        prepare=prepare,
        ready=ready,
        stop_signal=signal.SIGINT,  # fast shutdown: SIGTERM would wait for every client to leave
    )


# --- ZooKeeper and Storm (single-node cluster) -----------------------------------------

def zookeeper_service(ports: Ports) -> Service:
    def prepare(home: Path) -> None:
        (home / "data").mkdir(parents=True, exist_ok=True)
        (home / "zoo.cfg").write_text(
            "tickTime=2000\n"
            f"dataDir={home / 'data'}\n"
            f"clientPort={ports.zookeeper}\n"
            "clientPortAddress=127.0.0.1\n"
            "admin.enableServer=false\n"
            "maxClientCnxns=200\n"
            "4lw.commands.whitelist=ruok,srvr\n"
        )

    def command(home: Path) -> list[str]:
        classpath = ":".join(["/etc/zookeeper/conf", "/usr/share/java/*", "/usr/share/zookeeper/*"])
        return [
            "java", "-Xmx256m", "-cp", classpath, "-Dzookeeper.log.dir=" + str(home),
            "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(home / "zoo.cfg"),
        ]

    return Service(
        name="zookeeper",
        port=ports.zookeeper,
        command=command,
        version=lambda: _run_version(
            ["dpkg-query", "-W", "-f=${Version}", "zookeeper"], lambda out: out.split("-")[0]
        ),
        prepare=prepare,
    )


def storm_launcher() -> str:
    """The ``storm`` command installed beside this interpreter (storm_compat.launcher)."""
    beside = Path(sys.executable).parent / "storm"
    return str(beside) if beside.exists() else (shutil.which("storm") or "storm")


def storm_version() -> str:
    return _run_version([storm_launcher(), "version"], lambda out: out.split("Storm ")[1].split()[0])


def storm_cluster_dir() -> Path:
    return state_dir() / "storm-cluster"


# Test-cluster timeouts and limits (Storm's defaults in brackets): a SIGKILLed supervisor's workers are found
# dead and their executors reassigned in about 20 s instead of about a minute. Worker heartbeats
# come every second and supervisor heartbeats every 5 s, so these still leave several missed
# beats of slack on a loaded machine.
STORM_TIMEOUTS = {
    "nimbus.task.timeout.secs": 15,  # [30] executors without a heartbeat this long are dead
    "nimbus.supervisor.timeout.secs": 15,  # [60] a supervisor without a heartbeat this long is gone
    "nimbus.monitor.freq.secs": 3,  # [10] how often Nimbus looks
    "supervisor.worker.timeout.secs": 15,  # [30] a supervisor restarts a worker silent this long
    "storm.zookeeper.session.timeout": 10000,  # [20000] ms: a dead daemon's ephemeral nodes go sooner
    # [3] Nimbus blacklists a supervisor missing (or whose workers failed) this often in 300 s, for
    # 30 minutes: a test that kills a supervisor and starts it again needs it back at once.
    "blacklist.scheduler.tolerance.count": 1000,
    "blacklist.scheduler.resume.time.secs": 10,  # [1800]
}


@dataclass(frozen=True)
class SupervisorHost:
    """One supervisor of the local cluster, standing in for a host: its own hostname (an address
    of the loopback network: Linux routes all of 127.0.0.0/8 to ``lo``), slot ports, Thrift port,
    configuration and local dir."""

    name: str
    hostname: str
    slots: tuple[int, ...]
    thrift_port: int
    conf_dir: Path
    local_dir: Path
    log_dir: Path


def storm_supervisor_count(environ: dict[str, str] | None = None) -> int:
    """``PISTATS_STORM_SUPERVISORS`` (default 1): how many supervisors ``services start storm`` runs."""
    raw = (os.environ if environ is None else environ).get("PISTATS_STORM_SUPERVISORS", "").strip()
    if not raw:
        return 1
    if not raw.isdigit() or not 1 <= int(raw) <= 8:
        raise ConfigError("PISTATS_STORM_SUPERVISORS", f"must be a whole number from 1 to 8, not {raw!r}")
    return int(raw)


def supervisor_hosts(count: int, ports: Ports) -> list[SupervisorHost]:
    """The supervisors of a cluster of ``count``: one is the single-node cluster's
    ``storm-supervisor`` on 127.0.0.1 (sharing Nimbus's configuration); several are
    ``storm-supervisor-<i>`` on 127.0.0.<i+1>, each with two slots after the previous one's."""
    cluster = storm_cluster_dir()
    if count == 1:
        return [SupervisorHost("storm-supervisor", "127.0.0.1", ports.supervisor_slots, ports.supervisor_thrift,
                               cluster / "conf", cluster / "data", cluster / "logs")]
    per_host = len(ports.supervisor_slots)
    hosts = []
    for i in range(1, count + 1):
        home = cluster / "hosts" / f"127.0.0.{i + 1}"
        slots = tuple(slot + per_host * (i - 1) for slot in ports.supervisor_slots)
        hosts.append(SupervisorHost(f"storm-supervisor-{i}", f"127.0.0.{i + 1}", slots,
                                    ports.supervisor_thrift + i - 1, home / "conf", home / "data", home / "logs"))
    return hosts


def render_storm_yaml(ports: Ports, hostname: str, local_dir: Path, slots: tuple[int, ...],
                      supervisor_thrift: int) -> str:
    """One daemon's storm.yaml: every daemon of the cluster shares ZooKeeper, Nimbus and the
    timeouts; a supervisor's hostname, slots, Thrift port and local dir are its own."""
    slot_lines = "\n".join(f"  - {slot}" for slot in slots)
    timeouts = "".join(f"{key}: {value}\n" for key, value in STORM_TIMEOUTS.items())
    return (
        f"# Generated by `pistats services start storm`: the local cluster, this daemon on {hostname}.\n"
        f"storm.zookeeper.servers:\n  - \"127.0.0.1\"\n"
        f"storm.zookeeper.port: {ports.zookeeper}\n"
        f"storm.local.dir: \"{local_dir}\"\n"
        f"storm.local.hostname: \"{hostname}\"\n"
        f"nimbus.seeds: [\"127.0.0.1\"]\n"
        f"nimbus.thrift.port: {ports.nimbus}\n"
        f"supervisor.slots.ports:\n{slot_lines}\n"
        f"supervisor.thrift.port: {supervisor_thrift}\n"
        "supervisor.childopts: \"-Xmx256m\"\n"
        "worker.childopts: \"-Xmx%HEAP-MEM%m -XX:+HeapDumpOnOutOfMemoryError\"\n"
        "worker.heap.memory.mb: 512\n"
        "topology.min.replication.count: 1\n"
        f"{timeouts}"
    )


def prepare_storm_cluster(ports: Ports) -> None:
    """Write Nimbus's storm.yaml (the single-node supervisor's too) and link worker virtualenvs
    to the project's.

    ``sparse submit -e cluster`` runs Python components with
    ``<virtualenv_root>/<topology>/bin/streamparse_run`` (config.json: a pre-built virtualenv, no
    SSH); on this machine every topology's virtualenv is the project's own ``.venv``, whichever
    supervisor runs the worker.
    """
    cluster = storm_cluster_dir()
    (cluster / "conf").mkdir(parents=True, exist_ok=True)
    (cluster / "conf" / "storm.yaml").write_text(
        render_storm_yaml(ports, "127.0.0.1", cluster / "data", ports.supervisor_slots, ports.supervisor_thrift))
    venvs = cluster / "virtualenvs"
    venvs.mkdir(parents=True, exist_ok=True)
    project_venv = project_root() / ".venv"
    for topology in (project_root() / "topologies").glob("*.py"):
        link = venvs / topology.stem
        if not link.exists():
            link.symlink_to(project_venv)


def _storm_env(conf_dir: Path, log_dir: Path) -> dict[str, str]:
    return {
        "STORM_CONF_DIR": str(conf_dir),
        "STORM_LOG_DIR": str(log_dir),
        # Workers inherit the supervisor's environment. This local cluster talks to the
        # emulators, which accept any credentials: placeholders, unless real ones are set.
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "pistats-local-emulator"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "pistats-local-emulator"),
    }


def storm_nimbus_service(ports: Ports) -> Service:
    return Service(
        name="storm-nimbus",
        port=ports.nimbus,
        command=lambda home: [storm_launcher(), "nimbus"],
        version=storm_version,
        env=_storm_env(storm_cluster_dir() / "conf", storm_cluster_dir() / "logs"),
        prepare=lambda home: prepare_storm_cluster(ports),
        start_timeout=120.0,
    )


def storm_supervisor_service(host: SupervisorHost, ports: Ports) -> Service:
    def prepare(home: Path) -> None:
        prepare_storm_cluster(ports)
        host.conf_dir.mkdir(parents=True, exist_ok=True)
        (host.conf_dir / "storm.yaml").write_text(
            render_storm_yaml(ports, host.hostname, host.local_dir, host.slots, host.thrift_port))

    service = Service(
        name=host.name,
        port=host.slots[0],
        command=lambda home: [storm_launcher(), "supervisor"],
        version=storm_version,
        env=_storm_env(host.conf_dir, host.log_dir),
        prepare=prepare,
        start_timeout=120.0,
        address=f"{host.hostname}:{','.join(map(str, host.slots))}",
    )
    # The supervisor opens no port of its own until a worker runs: ready means its process lives.
    service.ready = lambda: port_open(ports.nimbus) and _process_group_alive(service.pid_file)
    return service


def storm_daemon_service(daemon: str, ports: Ports) -> Service:
    """Nimbus, or the single-node cluster's supervisor."""
    if daemon == "nimbus":
        return storm_nimbus_service(ports)
    return storm_supervisor_service(supervisor_hosts(1, ports)[0], ports)


def _process_group_alive(pid_file: Path) -> bool:
    """A process of the group still runs (a zombie, killed but not yet reaped by whoever started
    it, does not count)."""
    try:
        group = int(pid_file.read_text())
    except (OSError, ValueError):
        return False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


# --- The gateway: nginx (Debian) in front of the ingest on gunicorn (pistats.gateway) --------

def _gateway_socket() -> Path:
    return state_dir() / "gateway-ingest" / "ingest.sock"


def _healthz(connection) -> bool:
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _unix_healthz(path: Path) -> bool:
    import http.client

    class UnixConnection(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(self.timeout)
            self.sock.connect(str(path))

    return path.exists() and _healthz(UnixConnection("localhost", timeout=2))


def _gateway_unavailable() -> str | None:
    if not os.environ.get("PISTATS_INGEST_STREAM"):
        return "PISTATS_INGEST_STREAM is not set (the ingest behind it reads PISTATS_INGEST_*, see docs/gateway.md)"
    return None


def gateway_ingest_service(ports: Ports) -> Service:
    """The ingest on gunicorn workers, on a unix socket only nginx uses."""

    def command(home: Path) -> list[str]:
        return [
            sys.executable, "-m", "gunicorn", "--config", "python:pistats.gateway.gunicorn_conf",
            "--bind", f"unix:{_gateway_socket()}", "--pid", str(home / "gunicorn.pid"),
            "--access-logfile", str(home / "access.log"), "--control-socket", str(home / "gunicorn.ctl"),
            "pistats.gateway.app:create_app()",
        ]

    def version() -> str:
        from importlib.metadata import PackageNotFoundError, version as installed

        try:
            return installed("gunicorn")
        except PackageNotFoundError:
            return "not installed"

    return Service(
        name="gateway-ingest",
        port=ports.gateway,  # shown only: it listens on its socket, not on a port
        command=command,
        version=version,
        ready=lambda: _unix_healthz(_gateway_socket()),
        unavailable=_gateway_unavailable,
        start_timeout=30.0,
    )


def gateway_nginx_service(ports: Ports) -> Service:
    """nginx on 127.0.0.1:PISTATS_GATEWAY_PORT, its configuration rendered into its home."""

    def prepare(home: Path) -> None:
        from pistats.gateway.config import GatewayConfig
        from pistats.gateway.nginx import TEMP_FOLDERS, render_nginx_conf

        try:
            config = GatewayConfig.from_env(port=ports.gateway)
        except ValueError as error:
            raise ConfigError("gateway", str(error)) from None
        for folder in TEMP_FOLDERS:
            (home / "tmp" / folder).mkdir(parents=True, exist_ok=True)
        (home / "nginx.conf").write_text(render_nginx_conf(config, home=home, socket=_gateway_socket()))

    def command(home: Path) -> list[str]:
        from pistats.gateway.nginx import nginx_command

        return nginx_command(home)

    return Service(
        name="gateway",
        port=ports.gateway,
        command=command,
        version=lambda: _run_version(["dpkg-query", "-W", "-f=${Version}", "nginx"], lambda out: out.split("-")[0]),
        prepare=prepare,
        unavailable=_gateway_unavailable,
        start_timeout=20.0,
        stop_signal=signal.SIGQUIT,  # graceful: requests in flight are answered first
    )


def storm_group(supervisors: int | None = None) -> list[str]:
    """ZooKeeper, Nimbus and the supervisors (``PISTATS_STORM_SUPERVISORS`` unless given)."""
    count = storm_supervisor_count() if supervisors is None else supervisors
    return ["zookeeper", "storm-nimbus", *(host.name for host in supervisor_hosts(count, Ports()))]


def service_groups(supervisors: int | None = None) -> dict[str, list[str]]:
    storm = storm_group(supervisors)
    return {
        "redis": ["redis"],
        "redis-cluster": ["redis-cluster"],
        "clickhouse": ["clickhouse"],
        "kinesis": ["kinesis"],
        "storm": storm,
        "gateway": ["gateway-ingest", "gateway"],
        "all": ["redis", "clickhouse", "kinesis", "postgres", *storm, "gateway-ingest", "gateway", "redis-cluster"],
        "test": ["redis", "clickhouse", "kinesis", "postgres"],
    }


def _configured_groups() -> dict[str, list[str]]:
    try:
        return service_groups()
    except ConfigError:  # reported, in one line, by whoever asks for the count itself
        return service_groups(1)


# The groups as configured when this module was imported (tests' fixtures start "storm" from it).
SERVICE_GROUPS = _configured_groups()


def supervisor_services(ports: Ports, supervisors: int | None = None) -> dict[str, Service]:
    """Every supervisor that may run: the single-node one, the configured ones, and any other
    left from a run with another count (its pid file says so), so that ``stop`` finds it."""
    count = storm_supervisor_count() if supervisors is None else supervisors
    hosts = {host.name: host for host in supervisor_hosts(1, ports)}
    started_before = [int(path.parent.name.rsplit("-", 1)[1]) for path in state_dir().glob("storm-supervisor-*/pid")
                      if path.parent.name.rsplit("-", 1)[1].isdigit()]
    most = max([count, *started_before])
    if most > 1:
        hosts.update({host.name: host for host in supervisor_hosts(most, ports)})
    return {name: storm_supervisor_service(host, ports) for name, host in hosts.items()}


def services(ports: Ports | None = None, supervisors: int | None = None) -> dict[str, Service]:
    from pistats.localenv.redis_cluster import LocalRedisCluster

    ports = ports or Ports.from_env()
    return {
        "redis": redis_service(ports),
        "redis-cluster": LocalRedisCluster(state_dir() / "redis-cluster", ports.redis_cluster),  # type: ignore[dict-item]
        "clickhouse": clickhouse_service(ports),
        "kinesis": kinesis_service(ports),
        "postgres": postgres_service(ports),
        "zookeeper": zookeeper_service(ports),
        "storm-nimbus": storm_nimbus_service(ports),
        **supervisor_services(ports, supervisors),
        "gateway-ingest": gateway_ingest_service(ports),
        "gateway": gateway_nginx_service(ports),
    }


def resolve(names: list[str], supervisors: int | None = None, table: dict[str, Service] | None = None) -> list[str]:
    groups = service_groups(supervisors)
    table = table if table is not None else services(supervisors=supervisors)
    resolved: list[str] = []
    for name in names or ["test"]:
        if name not in groups and name not in table:
            raise ConfigError(
                "service", f"{name!r} is unknown; choose from {', '.join(sorted({*groups, *table}))}"
            )
        for member in groups.get(name, [name]):
            if member not in resolved:
                resolved.append(member)
    return resolved


def other_supervisors_running(wanted: list[str], table: dict[str, Service]) -> list[str]:
    """Supervisors of another cluster shape that run: starting ``wanted`` beside them would mix
    the single-node supervisor on 127.0.0.1 with the hosts of a several-supervisor cluster."""
    supervisors = [name for name in table if name.startswith("storm-supervisor")]
    if not any(name in wanted for name in supervisors):
        return []
    return [name for name in supervisors if name not in wanted and table[name].running()]
