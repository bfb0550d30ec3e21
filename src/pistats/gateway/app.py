"""The ingest as gunicorn serves it behind nginx: ``pistats.gateway.app:create_app()``.

Each gunicorn worker calls :func:`create_app` after the fork (no preloading), so every worker
owns its boto3 client, Redis connection and registry pool, as ``pistats ingest-server`` does.
The settings are the same environment variables (``PISTATS_INGEST_*``, ``PISTATS_REDIS_URL``,
``PISTATS_REGISTRY_URL``), with one exception: the ingest trusts exactly one hop of
``X-Forwarded-For``, the address nginx appends. Behind a load balancer, nginx's realip module
(not the ingest) is the place to peel further proxies off, so one hop stays right.
"""

from __future__ import annotations

import logging
import os
import sys

from pistats.ingest.api import IngestResponse, error_response

log = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
TRUSTED_HOPS = 1


def with_healthz(app):
    """``app`` with ``GET /healthz`` answered here: the worker is alive and serving; neither
    Kinesis nor Redis is asked, so a load balancer's checks cost them nothing."""

    def healthz_app(environ, start_response):
        if environ.get("PATH_INFO") != HEALTH_PATH:
            return app(environ, start_response)
        if environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            response = IngestResponse(200, {"status": "ok"})
        else:
            response = error_response(405, "method not allowed; use GET", headers=[("Allow", "GET, HEAD")])
        body = response.body_bytes()
        start_response(f"{response.status} {response.reason}",
                       response.all_headers() + [("Content-Length", str(len(body)))])
        return [body] if environ.get("REQUEST_METHOD") != "HEAD" else []

    return healthz_app


def ingest_config_from_env(environ=None):
    """The ingest's config as the gateway runs it: the environment, one trusted hop."""
    from pistats.ingest.config import IngestConfig

    env = os.environ if environ is None else environ
    declared = env.get("PISTATS_INGEST_TRUSTED_HOPS")
    if declared and declared.strip() != str(TRUSTED_HOPS):
        log.warning("PISTATS_INGEST_TRUSTED_HOPS=%s ignored: behind the gateway the ingest trusts "
                    "exactly %d hop (nginx's)", declared, TRUSTED_HOPS)
    return IngestConfig.from_env(env, trusted_hops=TRUSTED_HOPS)


def check_backends(environ=None) -> str | None:
    """One line saying why the ingest cannot serve (stream, Redis, registry unusable), or None.
    Run once by gunicorn's master before any worker starts (gunicorn_conf.on_starting)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from pistats import registry as registries
    from pistats.errors import ConfigError
    from pistats.ingest.service import build_service
    from pistats.redact import redact_url
    from pistats.redisconn import REDIS_ERRORS
    from pistats.registry.errors import RegistryUnavailable

    try:
        config = ingest_config_from_env(environ)
        registry = registries.from_env(environ)
    except (ValueError, ConfigError) as error:
        return str(error)
    try:
        build_service(config, registry=registry).check()
    except (ClientError, BotoCoreError) as error:
        return f"Kinesis stream {config.stream!r} not usable at {config.endpoint_url or 'AWS'}: {error}"
    except (*REDIS_ERRORS, OSError) as error:
        return f"Redis unavailable at {redact_url(config.redis_url)}: {error}"
    except RegistryUnavailable as error:
        return f"subscriber registry unusable: {error}"
    finally:
        if registry is not None:
            registry.close()
    return None


def create_app():
    """The WSGI application of one gunicorn worker.

    It does not check its backends: the master did at start (:func:`check_backends`), and a
    worker respawned while Redis or Kinesis is down must answer 503 (the SDK retries), not stop
    the whole server by failing to boot.
    """
    from pistats import registry as registries
    from pistats.ingest.service import build_service
    from pistats.ingest.wsgi import make_wsgi_app

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
    logging.getLogger("pistats").setLevel(logging.INFO)
    from pistats.push.welcome import welcomer_from_env

    registry = registries.from_env(pooled=True)
    welcome = welcomer_from_env(registry) if registry is not None else None
    from pistats.gateway.config import GatewayConfig

    # Group commit: this worker's threads share PutRecords calls (pistats.ingest.group_commit).
    group_commit = GatewayConfig.from_env().group_commit_settings()
    service = build_service(ingest_config_from_env(), registry=registry, welcome=welcome,
                            group_commit=group_commit)
    return with_healthz(make_wsgi_app(service))
