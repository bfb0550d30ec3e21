"""The gateway's nginx configuration: the template shipped beside this module, rendered.

The template holds nginx's own ``$variables``; ours are ``@NAME@`` placeholders, so neither
syntax has to be escaped for the other. A placeholder left unfilled is an error, not a silent
literal in the running configuration.
"""

from __future__ import annotations

import getpass
import re
from pathlib import Path

from pistats.contract import MAX_BODY_BYTES
from pistats.gateway.config import GatewayConfig

TEMPLATE = Path(__file__).with_name("nginx.conf.template")
_PLACEHOLDER = re.compile(r"@([A-Z_]+)@")
# Folders nginx writes to (bodies over client_body_buffer_size, responses over the buffers).
TEMP_FOLDERS = ("body", "proxy", "fastcgi", "uwsgi", "scgi")


def render_nginx_conf(config: GatewayConfig, *, home: Path, socket: Path, user: str | None = None,
                      template: str | None = None) -> str:
    """nginx.conf for ``config``: state (pid, logs, temp files) under ``home``, the ingest's
    gunicorn on the unix socket ``socket``, workers running as ``user`` (default: this one)."""
    values = {
        "USER": user or getpass.getuser(),
        "WORKER_PROCESSES": "auto",
        "HOME": str(home),
        "SOCKET": str(socket),
        "LISTEN": config.host,
        "PORT": str(config.port),
        "RATE": str(config.rate),
        "BURST": str(config.burst_requests),
        "CONNECTIONS": str(config.connections),
        "CLIENT_TIMEOUT_S": str(config.client_timeout_s),
        "UPSTREAM_TIMEOUT_S": str(config.upstream_timeout_s),
        "MAX_BODY_BYTES": str(MAX_BODY_BYTES),
    }
    text = TEMPLATE.read_text(encoding="utf-8") if template is None else template
    unknown = sorted({name for name in _PLACEHOLDER.findall(text) if name not in values})
    if unknown:
        raise ValueError(f"the nginx template has placeholders without a value: {', '.join(unknown)}")
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def nginx_command(home: Path, *args: str) -> list[str]:
    """``nginx`` on the rendered configuration in ``home``: e.g. ``nginx_command(home, "-s",
    "reload")`` reloads it (new workers take over; the old ones finish what they hold)."""
    return ["nginx", "-p", f"{home}/", "-c", str(home / "nginx.conf"), "-e", str(home / "error.log"), *args]
