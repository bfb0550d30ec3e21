"""gunicorn's settings for the ingest behind nginx: ``gunicorn -c python:pistats.gateway.gunicorn_conf``.

Sizes come from :class:`~pistats.gateway.config.GatewayConfig` (``PISTATS_GATEWAY_*``); the
socket, the logs and the control socket are given on the command line by whoever knows where
the state lives (pistats.localenv.services). gunicorn reads the module's top-level names.
"""

from __future__ import annotations

import sys

from pistats.gateway.config import GatewayConfig

_config = GatewayConfig.from_env()

# gthread: a worker keeps nginx's idle upstream connections open (upstream keepalive) and
# serves several requests at once while others wait on Redis or Kinesis. nginx has buffered
# every body whole before a request reaches a worker, so a slow client never holds a thread.
worker_class = "gthread"
workers = _config.workers
threads = _config.threads
# Longer than nginx's upstream keepalive_timeout (60 s): nginx closes an idle connection first,
# never sending a request on one gunicorn is closing (that POST would fail, unretried).
keepalive = 75
# The ingest's worst case is bounded by its own put attempts; a worker silent past this is stuck.
timeout = _config.upstream_timeout_s + 10
graceful_timeout = 15
preload_app = False  # each worker builds its own clients after the fork (gateway.app.create_app)
# Request bodies were bounded by nginx; these bound what reaches the ingest otherwise.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
access_log_format = '%(t)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'  # path only: no query, no headers
proc_name = "pistats-gateway-ingest"


def on_starting(server):
    """Refuse to start, in one line, when the stream, Redis or the registry is unusable."""
    from pistats.gateway.app import check_backends

    problem = check_backends()
    if problem:
        print(f"pistats gateway: the ingest cannot start: {problem}", file=sys.stderr, flush=True)
        sys.exit(1)


def worker_abort(worker):
    worker.log.error("ingest worker %s stuck past %d s: aborted (its request is answered 502)",
                     worker.pid, timeout)
