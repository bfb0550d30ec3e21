"""``pistats ingest-server``: serve ``POST /v1/events`` locally, with the Lambda's own logic."""

from __future__ import annotations

import argparse
import logging
import sys

from pistats.cli._support import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ingest-server",
        help="serve the ingest API (POST /v1/events) over HTTP, putting events into Kinesis",
        description=(
            "Serve the ingest locally: the same validation, write keys, idempotency and PutRecords "
            "as the Lambda. Settings default to the PISTATS_INGEST_* / PISTATS_REDIS_URL environment "
            "variables (see docs/ingest.md); options override them."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind; 0 picks a free one (default 8080)")
    parser.add_argument("--stream", help="Kinesis stream name (PISTATS_INGEST_STREAM)")
    parser.add_argument("--endpoint-url", help="Kinesis endpoint, e.g. http://127.0.0.1:4567 for kinesis-local")
    parser.add_argument("--region", help="AWS region (PISTATS_INGEST_REGION, AWS_REGION)")
    parser.add_argument("--redis-url", help="Redis holding write keys and idempotency marks (PISTATS_REDIS_URL)")
    parser.add_argument("--key-prefix", help="prefix of the ingest's Redis keys (default pistats)")
    parser.add_argument("--trusted-hops", type=int,
                        help="proxies in front that append X-Forwarded-For (default 0: header ignored)")
    parser.add_argument("--registry-url",
                        help="subscriber registry, postgresql://user@host:port/db (PISTATS_REGISTRY_URL; "
                             "unset: no registry)")
    parser.add_argument("--verbose", action="store_true", help="log each request at debug level")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from pistats import registry as registries
    from pistats.errors import ConfigError
    from pistats.ingest.config import IngestConfig
    from pistats.redact import redact_url
    from pistats.redisconn import REDIS_ERRORS
    from pistats.registry.errors import RegistryUnavailable
    from pistats.ingest.service import build_service
    from pistats.ingest.wsgi import make_ingest_server

    # Our own messages at INFO; libraries (botocore announces its credentials source) only warn.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pistats").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        config = IngestConfig.from_env(
            stream=args.stream, endpoint_url=args.endpoint_url, region=args.region, redis_url=args.redis_url,
            key_prefix=args.key_prefix, trusted_hops=args.trusted_hops,
        )
    except ValueError as error:
        raise UserError(str(error), exit_code=2) from None
    try:
        registry = registries.from_env(url=args.registry_url, pooled=True)
    except ConfigError as error:
        raise UserError(f"--registry-url {error.problem}", exit_code=2) from None
    welcome = None
    if registry is not None:
        from pistats.push.welcome import welcomer_from_env

        welcome = welcomer_from_env(registry, announce=False)  # the banner says it
    try:
        service = build_service(config, registry=registry, welcome=welcome)  # a cluster client connects here
        service.check()
    except (ClientError, BotoCoreError) as error:
        raise UserError(f"Kinesis stream {config.stream!r} not usable at "
                        f"{config.endpoint_url or 'AWS'}: {error}") from None
    except (*REDIS_ERRORS, OSError) as error:
        raise UserError(f"Redis unavailable at {redact_url(config.redis_url)}: {error}") from None
    except RegistryUnavailable as error:
        raise UserError(f"subscriber registry unusable: {error}") from None
    try:
        server = make_ingest_server(service, args.host, args.port)
    except OSError as error:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}") from None
    print(f"pistats ingest-server: listening on http://{args.host}:{server.server_port}/v1/events "
          f"(stream {config.stream}, registry {registry.redacted_url if registry else 'off'}, "
          f"welcome notifications {_welcome_state(welcome)})",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def _welcome_state(welcome) -> str:
    if welcome is None:
        return "off"
    return "on" if welcome.ready else "waiting for the FCM secret"
