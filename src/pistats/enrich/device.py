"""Device enrichment: browser, OS, device and ``device_type`` from the User-Agent.

The classification is user-agents' (``is_bot``, ``is_tablet``, ``is_mobile``, ``is_pc``,
``is_touch_capable``). Its parse is slow (a linear scan over ua-parser's regexes, a few thousand
distinct strings per second), while real traffic repeats a few thousand strings, so a bounded
LRU cache keyed by the UA string sits in front of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

import user_agents

DEVICE_KEYS = (
    "ua_browser", "ua_browser_version", "ua_os", "ua_os_version", "ua_device_family",
    "ua_device_brand", "ua_device_model", "device_type", "is_touch", "is_bot",
)

# Beyond this length a UA is truncated before parsing: real ones are far shorter, and the regex
# scan costs time in proportion to the length.
MAX_UA_CHARS = 1024

_OTHER = ("", "", "", "", "", "", "", "other", False, False)


@dataclass(frozen=True)
class DeviceConfig:
    """``cache_size``: distinct UA strings kept classified (LRU); 0 disables the cache."""

    cache_size: int = 10_000

    def __post_init__(self) -> None:
        if not isinstance(self.cache_size, int) or self.cache_size < 0:
            raise ValueError(f"device.cache_size must be an integer >= 0, not {self.cache_size!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeviceConfig:
        unknown = set(data) - {"cache_size"}
        if unknown:
            raise ValueError(f"unknown device settings: {', '.join(sorted(unknown))}")
        return cls(**data)


def device_type(ua: user_agents.parsers.UserAgent) -> str:
    """bot, tablet, mobile, desktop (``is_pc``), else other: the first that holds, in that order."""
    if ua.is_bot:
        return "bot"
    if ua.is_tablet:
        return "tablet"
    if ua.is_mobile:
        return "mobile"
    if ua.is_pc:
        return "desktop"
    return "other"


def classify(user_agent: str) -> tuple:
    """The values of ``DEVICE_KEYS`` for one UA string (uncached). Never raises for any str."""
    text = user_agent.strip()[:MAX_UA_CHARS]
    if not text:
        return _OTHER
    ua = user_agents.parse(text)
    browser, os, device = ua.browser, ua.os, ua.device
    return (
        browser.family or "",
        browser.version_string,
        os.family or "",
        os.version_string,
        device.family or "",
        device.brand or "",
        device.model or "",
        device_type(ua),
        bool(ua.is_touch_capable),
        bool(ua.is_bot),
    )


class DeviceEnrichment:
    """``enrich(event)`` -> the device fields of ``event["user_agent"]`` (missing or empty: other)."""

    name = "device"

    def __init__(self, config: DeviceConfig) -> None:
        self.config = config
        self._classify = lru_cache(maxsize=config.cache_size)(classify) if config.cache_size else None

    def enrich(self, event: Mapping[str, Any]) -> dict[str, Any]:
        user_agent = event.get("user_agent") or ""
        if not isinstance(user_agent, str):
            user_agent = str(user_agent)
        values = self._classify(user_agent) if self._classify else classify(user_agent)
        return dict(zip(DEVICE_KEYS, values))

    def cache_stats(self) -> dict[str, Any]:
        """hits, misses, size and hit_rate (0.0 before any lookup) of the UA cache."""
        if self._classify is None:
            return {"hits": 0, "misses": 0, "size": 0, "hit_rate": 0.0}
        info = self._classify.cache_info()
        total = info.hits + info.misses
        return {
            "hits": info.hits,
            "misses": info.misses,
            "size": info.currsize,
            "hit_rate": round(info.hits / total, 4) if total else 0.0,
        }
