"""Bot flagging: user-agents' spider detection, a short crawler-pattern list, data-centre ASNs.

Bots are flagged, never dropped: analytics filters on ``is_bot``. A flagged event also gets
``device_type = "bot"`` so that the two fields never disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

# Clients that say what they are but that ua-parser does not list as spiders: HTTP libraries,
# command-line tools, headless browsers, uptime monitors and link unfurlers. Matched
# case-insensitively anywhere in the UA.
CRAWLER_PATTERNS = (
    r"\bbot\b", r"[a-z]bot/\d", r"crawl", r"spider", r"slurp", r"headless", r"phantomjs", r"\bcurl/", r"\bwget/",
    r"python-requests", r"python-urllib", r"aiohttp", r"go-http-client", r"java/\d", r"libwww-perl",
    r"apache-httpclient", r"scrapy", r"lighthouse", r"pingdom", r"uptimerobot",
    r"facebookexternalhit", r"embedly",
)

# Autonomous systems of large hosting and cloud providers: real users rarely browse from them.
# Only used when an ASN database is configured (``geo_asn`` set by the geo enrichment).
DATA_CENTRE_ASNS = (
    14061,   # DigitalOcean
    14618,   # Amazon AWS
    16509,   # Amazon AWS
    16276,   # OVH
    24940,   # Hetzner
    20473,   # Vultr (Choopa)
    63949,   # Linode (Akamai)
    396982,  # Google Cloud
    8075,    # Microsoft Azure
    45102,   # Alibaba Cloud
    132203,  # Tencent Cloud
)


@dataclass(frozen=True)
class BotsConfig:
    """The lists used; defaults are ``CRAWLER_PATTERNS`` and ``DATA_CENTRE_ASNS``."""

    crawler_patterns: tuple[str, ...] = CRAWLER_PATTERNS
    data_centre_asns: frozenset[int] = field(default_factory=lambda: frozenset(DATA_CENTRE_ASNS))

    def __post_init__(self) -> None:
        object.__setattr__(self, "crawler_patterns", tuple(self.crawler_patterns))
        object.__setattr__(self, "data_centre_asns", frozenset(int(asn) for asn in self.data_centre_asns))
        for pattern in self.crawler_patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"bots.crawler_patterns: bad pattern {pattern!r}: {error}") from error

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BotsConfig:
        unknown = set(data) - {"crawler_patterns", "data_centre_asns"}
        if unknown:
            raise ValueError(f"unknown bots settings: {', '.join(sorted(unknown))}")
        return cls(**data)


class BotsEnrichment:
    """``enrich(event)`` -> ``is_bot`` (and ``device_type`` "bot" when true).

    Reads ``is_bot`` as set by the device enrichment, ``user_agent`` and ``geo_asn``; run it after both.
    """

    name = "bots"

    def __init__(self, config: BotsConfig) -> None:
        self.config = config
        self._crawler = re.compile("|".join(f"(?:{p})" for p in config.crawler_patterns), re.IGNORECASE)
        self._crawler_cache: dict[str, bool] = {}

    def _is_crawler(self, user_agent: str) -> bool:
        known = self._crawler_cache.get(user_agent)
        if known is None:
            known = bool(self._crawler.search(user_agent))
            if len(self._crawler_cache) > 50_000:
                self._crawler_cache.clear()
            self._crawler_cache[user_agent] = known
        return known

    def enrich(self, event: Mapping[str, Any]) -> dict[str, Any]:
        is_bot = (
            bool(event.get("is_bot"))
            or self._is_crawler(event.get("user_agent") or "")
            or event.get("geo_asn") in self.config.data_centre_asns
        )
        if is_bot:
            return {"is_bot": True, "device_type": "bot"}
        return {"is_bot": False}
