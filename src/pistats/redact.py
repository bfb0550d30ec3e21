"""Keeping secrets out of reprs, logs and error messages."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """The URL with its password (if any) replaced by ``***``; the user name is kept.

    Safe on malformed URLs too, since those end up in error messages: what urlsplit cannot
    read is redacted by pattern.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"//([^:/@]*):[^/]*@", r"//\1:***@", url)
    if "@" not in parts.netloc:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    if ":" not in userinfo:
        return url
    return urlunsplit(parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{host}"))
