"""The ``storm`` command over the STORM_HOME that ``scripts/bootstrap`` assembles from Maven Central.

It mirrors the subset of Apache Storm 2's ``bin/storm`` that pistats and streamparse use, running
the real Storm classes:

    storm version
    storm local [--local-ttl SECS] [-c KEY=VALUE]... JAR MAIN [ARGS...]   (LocalCluster)
    storm jar   [-c KEY=VALUE]... JAR MAIN [ARGS...]                      (submit to Nimbus)
    storm nimbus | storm supervisor                                        (daemons, foreground)
    storm kill NAME [-w SECS] | storm list                                 (Nimbus Thrift API)
    storm rebalance NAME [-w SECS] [-n WORKERS] [-e COMPONENT=EXECUTORS]...  (Nimbus Thrift API)
    storm classpath

Layout of STORM_HOME: ``lib/`` (storm-server and its dependencies, also used by workers),
``lib-tools/flux/`` (the shaded flux-core jar), ``log4j2/`` (cluster, worker and local configs),
``conf/``. The cluster's ``storm.yaml`` lives in ``$STORM_CONF_DIR`` (the single-node cluster
uses ``.pistats/storm-cluster/conf``).
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.parse
from pathlib import Path

from pistats.localenv.paths import state_dir, storm_home

DAEMON_CLASSES = {
    "nimbus": "org.apache.storm.daemon.nimbus.Nimbus",
    "supervisor": "org.apache.storm.daemon.supervisor.Supervisor",
}
DAEMON_HEAP = {"nimbus": "-Xmx512m", "supervisor": "-Xmx256m"}
FOREVER_SECONDS = 10 * 365 * 24 * 3600  # LocalCluster multiplies the TTL by 1000: keep it in range


def java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    return str(Path(java_home) / "bin" / "java") if java_home else "java"


def conf_dir() -> Path:
    return Path(os.environ.get("STORM_CONF_DIR", storm_home() / "conf"))


def log_dir() -> Path:
    return Path(os.environ.get("STORM_LOG_DIR", state_dir() / "storm-logs"))


def classpath(*first: str, tools: bool = False) -> str:
    """Entries in order: the caller's (topology jar first: ShellBolt extracts ``resources/`` from
    the first jar holding one, and flux-core has one too), then Storm, then Flux, then conf."""
    home = storm_home()
    if not (home / "lib").is_dir():
        sys.exit(f"storm: no Storm libraries in {home}/lib; run scripts/bootstrap first")
    entries = [*first, str(home / "lib" / "*")]
    if tools:
        entries.append(str(home / "lib-tools" / "flux" / "*"))
    entries.append(str(conf_dir()))
    return ":".join(entries)


def system_properties(options: list[str], log_config: str, logfile: str | None = None) -> list[str]:
    home = storm_home()
    props = [
        f"-Dstorm.home={home}",
        f"-Dstorm.log.dir={log_dir()}",
        f"-Dlog4j.configurationFile={home / 'log4j2' / log_config}",
        "-Djava.net.preferIPv4Stack=true",
    ]
    conf_file = conf_dir() / "storm.yaml"
    if conf_file.exists():
        props.append(f"-Dstorm.conf.file={conf_file}")
    if logfile:
        props.append(f"-Dlogfile.name={logfile}")
    if options:
        # Storm's own encoding of `-c key=value` pairs (see Utils.readCommandLineOpts).
        encoded = ",".join(urllib.parse.quote_plus(option) for option in options)
        props.append(f"-Dstorm.options={encoded}")
    return props


def exec_java(args: list[str]) -> None:
    log_dir().mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    os.execvp(args[0], args)


def storm_version() -> str:
    import subprocess

    output = subprocess.run(
        [java(), "-cp", classpath(), "org.apache.storm.utils.VersionInfo"],
        capture_output=True, text=True, check=True,
    ).stdout
    return output


def nimbus_client(options: list[str]):
    """A Thrift client of Nimbus (host and port from ``-c`` options, env or storm.yaml)."""
    from streamparse.thrift import storm_thrift
    from thriftpy2.rpc import make_client
    from thriftpy2.transport import TFramedTransportFactory

    settings = dict(option.split("=", 1) for option in options)
    host = settings.get("nimbus.seeds", os.environ.get("STORM_NIMBUS_HOST", "127.0.0.1"))
    port = int(settings.get("nimbus.thrift.port", os.environ.get("PISTATS_NIMBUS_PORT", "6627")))
    return storm_thrift, make_client(
        storm_thrift.Nimbus, host, port, trans_factory=TFramedTransportFactory(), timeout=30000
    )


def component_executors(text: str) -> tuple[str, int]:
    """``COMPONENT=EXECUTORS`` of ``storm rebalance -e`` (executors > 0; at most the component's
    tasks, which Nimbus enforces)."""
    component, _, count = text.rpartition("=")
    if not component or not count.isdigit() or int(count) < 1:
        raise argparse.ArgumentTypeError(f"expected COMPONENT=EXECUTORS with EXECUTORS > 0, not {text!r}")
    return component, int(count)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="storm", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("version")
    sub.add_parser("classpath")
    for name in ("local", "jar"):
        command = sub.add_parser(name)
        command.add_argument("-c", dest="options", action="append", default=[], metavar="KEY=VALUE")
        if name == "local":
            command.add_argument("--local-ttl", type=int, default=20)
        command.add_argument("jar")
        command.add_argument("main")
        command.add_argument("args", nargs=argparse.REMAINDER)
    for daemon in DAEMON_CLASSES:
        command = sub.add_parser(daemon)
        command.add_argument("-c", dest="options", action="append", default=[], metavar="KEY=VALUE")
    kill = sub.add_parser("kill")
    kill.add_argument("name")
    kill.add_argument("-w", "--wait", type=int, default=None)
    kill.add_argument("-c", dest="options", action="append", default=[], metavar="KEY=VALUE")
    rebalance = sub.add_parser("rebalance")
    rebalance.add_argument("name")
    rebalance.add_argument("-w", "--wait", type=int, default=None)
    rebalance.add_argument("-n", "--num-workers", type=int, default=None)
    rebalance.add_argument("-e", "--executors", action="append", default=[], type=component_executors,
                           metavar="COMPONENT=EXECUTORS")
    rebalance.add_argument("-c", dest="options", action="append", default=[], metavar="KEY=VALUE")
    listing = sub.add_parser("list")
    listing.add_argument("-c", dest="options", action="append", default=[], metavar="KEY=VALUE")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "version":
        sys.stdout.write(storm_version())
        return 0
    if args.command == "classpath":
        print(classpath(tools=True))
        return 0
    if args.command == "local":
        ttl = args.local_ttl if args.local_ttl > 0 else FOREVER_SECONDS
        exec_java([
            # C1 only: a local cluster (`sparse run`, the tests, the benchmarks) lives for minutes,
            # and C2 spent 9 % of a core compiling Storm's hot paths even after a 3,000-record run,
            # half of the idle JVM's CPU, CPU a short run never earns back. Measured on
            # benchmarks/compare.py's topology, 3,000 records: the JVM's CPU per record 921 -> 496
            # us. Cluster workers (worker.childopts) keep the default tiered compilation.
            java(), "-Xmx1g", "-XX:TieredStopAtLevel=1", "-cp", classpath(args.jar, tools=True),
            *system_properties(args.options, "local.xml"),
            f"-Dstorm.local.sleeptime={ttl}",
            f"-Dstorm.jar={args.jar}",  # StormSubmitter insists on it even under LocalCluster
            "org.apache.storm.LocalCluster", args.main, *args.args,
        ])
    if args.command == "jar":
        exec_java([
            java(), "-cp", classpath(args.jar, tools=True),
            *system_properties(args.options, "local.xml"),
            f"-Dstorm.jar={args.jar}",
            args.main, *args.args,
        ])
    if args.command in DAEMON_CLASSES:
        exec_java([
            java(), "-server", DAEMON_HEAP[args.command], "-cp", classpath(),
            *system_properties(args.options, "cluster.xml", logfile=f"{args.command}.log"),
            f"-Ddaemon.name={args.command}",
            DAEMON_CLASSES[args.command],
        ])
    if args.command == "kill":
        thrift, client = nimbus_client(args.options)
        options = thrift.KillOptions(wait_secs=args.wait) if args.wait is not None else thrift.KillOptions()
        client.killTopologyWithOpts(args.name, options)
        print(f"Killed topology: {args.name}")
        return 0
    if args.command == "rebalance":
        thrift, client = nimbus_client(args.options)
        options = thrift.RebalanceOptions()
        if args.wait is not None:
            options.wait_secs = args.wait
        if args.num_workers is not None:
            options.num_workers = args.num_workers
        if args.executors:
            options.num_executors = dict(args.executors)
        client.rebalance(args.name, options)
        print(f"Topology {args.name} is rebalancing")
        return 0
    if args.command == "list":
        _, client = nimbus_client(args.options)
        summaries = client.getClusterInfo().topologies or []
        print(f"{'Topology_name':<30} {'Status':<10} {'Num_tasks':>9} {'Num_workers':>11} {'Uptime_secs':>11}")
        print("-" * 75)
        for topology in summaries:
            print(f"{topology.name:<30} {topology.status:<10} {topology.num_tasks:>9} "
                  f"{topology.num_workers:>11} {topology.uptime_secs:>11}")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
