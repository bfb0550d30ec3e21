"""``pistats services start|stop|status [NAME...]``: the local Redis, ClickHouse, kinesis-local, PostgreSQL, Storm
and the gateway."""

from __future__ import annotations

import argparse

from pistats.localenv import services as local_services


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "services",
        help="start, stop or show the local services (127.0.0.1 only, data under .pistats/)",
        description=(
            "Manage the local services. NAME is a service (redis, clickhouse, kinesis, postgres, zookeeper, "
            "storm-nimbus, storm-supervisor, gateway-ingest, gateway) or a group: test (redis, clickhouse, kinesis, "
            "postgres; the default), storm (zookeeper, nimbus, supervisor), gateway (nginx on "
            "127.0.0.1:PISTATS_GATEWAY_PORT in front of the ingest on gunicorn; needs PISTATS_INGEST_STREAM), all."
        ),
    )
    parser.add_argument("action", choices=["start", "stop", "status", "versions"])
    parser.add_argument("names", nargs="*", metavar="NAME")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from pistats.errors import ServiceError

    names = local_services.resolve(args.names)
    table = local_services.services()
    # Asked for by name or by a group of its own; "all" only means "whatever can start".
    asked = {member for name in args.names if name != "all"
             for member in local_services.SERVICE_GROUPS.get(name, [name])}
    if args.action == "stop":
        names = list(reversed(names))
    for name in names:
        service = table[name]
        if args.action == "start":
            reason = service.unavailable() if service.unavailable else None
            if reason and not service.running():
                if name in asked:
                    raise ServiceError(f"{name}: {reason}")
                print(f"{name:<17} {'skipped':<16} {reason}")
                continue
            started = service.start()
            state = "started" if started else "already running"
            print(f"{name:<17} {state:<16} 127.0.0.1:{service.port}  {service.version()}")
        elif args.action == "stop":
            print(f"{name:<17} {'stopped' if service.stop() else 'not started here'}")
        elif args.action == "versions":
            print(f"{name:<17} {service.version()}")
        else:
            state = "running" if service.running() else "stopped"
            print(f"{name:<17} {state:<16} 127.0.0.1:{service.port}")
    return 0
