"""Device enrichment: browser, OS, device and ``device_type`` from the User-Agent.

The classification is user-agents' (``is_bot``, ``is_tablet``, ``is_mobile``, ``is_pc``,
``is_touch_capable``). user-agents parses with ua-parser's legacy API, a linear scan over the
regexes in Python (about 1,400 distinct UAs per CPU second measured here). When ua-parser-rs is
installed, the ``rs`` parser feeds the same user-agents classification from ua-parser 1.x's
native resolver instead (about 41,000 per CPU second, identical results on 3,000 generated UAs
and the test corpus). Either way a bounded LRU cache keyed by the UA string sits in front:
real traffic repeats a few thousand strings.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Mapping

import user_agents
from user_agents.parsers import UserAgent, parse_browser, parse_device, parse_operating_system

DEVICE_KEYS = (
    "ua_browser", "ua_browser_version", "ua_os", "ua_os_version", "ua_device_family",
    "ua_device_brand", "ua_device_model", "device_type", "is_touch", "is_bot",
)

# Beyond this length a UA is truncated before parsing: real ones are far shorter, and the regex
# scan costs time in proportion to the length.
MAX_UA_CHARS = 1024

_OTHER = ("", "", "", "", "", "", "", "other", False, False)


PARSERS = ("auto", "rs", "legacy")


@dataclass(frozen=True)
class DeviceConfig:
    """``cache_size``: distinct UA strings kept classified (LRU); 0 disables the cache.
    ``parser``: ``rs`` (ua-parser 1.x with ua-parser-rs), ``legacy`` (user-agents' own parse) or
    ``auto`` (rs when installed)."""

    cache_size: int = 10_000
    parser: str = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.cache_size, int) or self.cache_size < 0:
            raise ValueError(f"device.cache_size must be an integer >= 0, not {self.cache_size!r}")
        if self.parser not in PARSERS:
            raise ValueError(f"device.parser must be one of {', '.join(PARSERS)}, not {self.parser!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeviceConfig:
        unknown = set(data) - {"cache_size", "parser"}
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


_rs_resolver = None


def rs_available() -> bool:
    try:
        importlib.import_module("ua_parser.regex")  # imports ua_parser_rs, the native resolver
    except ImportError:
        return False
    return True


def parse_rs(text: str) -> UserAgent:
    """A user-agents ``UserAgent`` filled from ua-parser 1.x's native resolver.

    Sets the attributes ``UserAgent.__init__`` sets from the legacy parse, with the legacy
    parse's values for a part that matches nothing (family "Other", no version).
    """
    global _rs_resolver
    if _rs_resolver is None:
        from ua_parser import load_builtins
        from ua_parser.regex import Resolver

        _rs_resolver = Resolver(load_builtins())
    from ua_parser import Domain

    result = _rs_resolver(text, Domain.ALL)
    ua = UserAgent.__new__(UserAgent)
    ua.ua_string = text
    b, o, d = result.user_agent, result.os, result.device
    ua.browser = parse_browser(b.family, b.major, b.minor, b.patch) if b else parse_browser("Other")
    ua.os = parse_operating_system(o.family, o.major, o.minor, o.patch) if o else parse_operating_system("Other")
    ua.device = parse_device(d.family, d.brand, d.model) if d else parse_device("Other", None, None)
    return ua


def classify(user_agent: str, parse: Callable[[str], UserAgent] = user_agents.parse) -> tuple:
    """The values of ``DEVICE_KEYS`` for one UA string (uncached). Never raises for any str."""
    text = user_agent.strip()[:MAX_UA_CHARS]
    if not text:
        return _OTHER
    ua = parse(text)
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
        use_rs = config.parser == "rs" or (config.parser == "auto" and rs_available())
        if config.parser == "rs" and not rs_available():
            raise ValueError("device.parser 'rs' needs the ua-parser-rs package")
        self.parser_name = "rs" if use_rs else "legacy"
        parse = parse_rs if use_rs else user_agents.parse
        self._uncached = lambda text: dict(zip(DEVICE_KEYS, classify(text, parse)))
        self._classify = lru_cache(maxsize=config.cache_size)(self._uncached) if config.cache_size else None

    def enrich(self, event: Mapping[str, Any]) -> dict[str, Any]:
        user_agent = event.get("user_agent") or ""
        if not isinstance(user_agent, str):
            user_agent = str(user_agent)
        # A copy of the cached fields, which must not change when a caller changes what it got.
        return (self._classify(user_agent) if self._classify else self._uncached(user_agent)).copy()

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
