"""``pistats services start|stop|status [--supervisors N] [NAME...]``: the local Redis, ClickHouse, kinesis-local,
PostgreSQL, Storm and the gateway."""

from __future__ import annotations

import argparse

from pistats.localenv import services as local_services


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "services",
        help="start, stop or show the local services (127.0.0.1 only, data under .pistats/)",
        description=(
            "Manage the local services. NAME is a service (redis, clickhouse, kinesis, postgres, zookeeper, "
            "storm-nimbus, storm-supervisor or storm-supervisor-N, gateway-ingest, gateway, redis-cluster: six "
            "nodes, three masters and their replicas, from PISTATS_REDIS_CLUSTER_PORT, 7001) or a group: test (redis, "
            "clickhouse, kinesis, postgres; the default), storm (zookeeper, nimbus, the supervisors), gateway (nginx "
            "on 127.0.0.1:PISTATS_GATEWAY_PORT in front of the ingest on gunicorn; needs PISTATS_INGEST_STREAM), all."
        ),
    )
    parser.add_argument("action", choices=["start", "stop", "status", "versions"])
    parser.add_argument("names", nargs="*", metavar="NAME")
    parser.add_argument(
        "--supervisors", type=int, default=None, metavar="N",
        help="Storm supervisors, each standing in for a host: 1 (default, PISTATS_STORM_SUPERVISORS) is "
             "storm-supervisor on 127.0.0.1; N > 1 are storm-supervisor-1..N on 127.0.0.2.. with their own slots",
    )
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from pistats.errors import ConfigError, ServiceError

    supervisors = args.supervisors
    if supervisors is not None and not 1 <= supervisors <= 8:
        raise ConfigError("supervisors", f"must be from 1 to 8, not {supervisors}")
    table = local_services.services(supervisors=supervisors)
    names = local_services.resolve(args.names, supervisors, table)
    groups = local_services.service_groups(supervisors)
    if args.action in ("stop", "status") and any(name in ("storm", "all") for name in args.names):
        # Whatever supervisors run or ran, whichever count started them.
        extra = [name for name in table if name.startswith("storm-supervisor") and name not in names
                 and (table[name].pid_file.exists() or table[name].running())]
        at = max((names.index(name) for name in names if name.startswith("storm-supervisor")), default=len(names) - 1)
        names[at + 1:at + 1] = extra
    # Asked for by name or by a group of its own; "all" only means "whatever can start".
    asked = {member for name in args.names if name != "all" for member in groups.get(name, [name])}
    if args.action == "start":
        mixed = local_services.other_supervisors_running(names, table)
        if mixed:
            raise ServiceError(f"{', '.join(mixed)} already running with another number of supervisors; "
                               "run `pistats services stop storm` first")
    if args.action == "stop":
        names = list(reversed(names))
    for name in names:
        service = table[name]
        if args.action == "start":
            reason = service.unavailable() if service.unavailable else None
            if reason and not service.running():
                if name in asked:
                    raise ServiceError(f"{name}: {reason}")
                print(f"{name:<18} {'skipped':<16} {reason}")
                continue
            started = service.start()
            state = "started" if started else "already running"
            print(f"{name:<18} {state:<16} {service.endpoint}  {service.version()}")
        elif args.action == "stop":
            print(f"{name:<18} {'stopped' if service.stop() else 'not started here'}")
        elif args.action == "versions":
            print(f"{name:<18} {service.version()}")
        else:
            state = "running" if service.running() else "stopped"
            print(f"{name:<18} {state:<16} {service.endpoint}")
    return 0
