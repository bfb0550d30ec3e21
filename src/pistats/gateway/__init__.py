"""The gateway: nginx in Kong's role in front of the ingest served by gunicorn.

- ``config``: :class:`GatewayConfig`, the limits and sizes (``PISTATS_GATEWAY_*``).
- ``nginx``: the configuration template beside it (``nginx.conf.template``), rendered.
- ``app``: the ingest's WSGI application as each gunicorn worker builds it, with ``/healthz``.
- ``gunicorn_conf``: gunicorn's settings and hooks.

``pistats services start gateway`` runs both (pistats.localenv.services); docs/gateway.md says
what each limit does and which of Kong's plugins it replaces.
"""
