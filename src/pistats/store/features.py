"""What the connected ClickHouse can do, decided from its version at startup (never assumed)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str) -> tuple[int, int, int]:
    """``"18.16.1"`` or ``"26.9.2.1"`` -> ``(major, minor, patch)``; ValueError if unreadable."""
    match = _VERSION.match(text.strip())
    if match is None:
        raise ValueError(f"not a ClickHouse version: {text!r}")
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


@dataclass(frozen=True)
class ServerFeatures:
    """DDL and insert options that depend on the server version.

    - ``low_cardinality``: ``LowCardinality(String)`` exists from 18.12 but stays experimental
      (behind ``allow_experimental_low_cardinality_type``) until 19.x; an experimental type in the
      table every query reads is not worth the risk, so 18.x gets plain ``String``.
    - ``datetime64``: ``DateTime64(3, 'UTC')`` (milliseconds) from 20.1; before that ``DateTime('UTC')``
      (seconds).
    - ``insert_deduplication_token``: the setting from 22.2; together with the MergeTree setting
      ``non_replicated_deduplication_window`` a retried batch with the same token is dropped at
      insert. Older servers rely on ReplacingMergeTree and ``FINAL`` alone.
    - ``optimize_on_insert``: the setting from 21.1 (on by default) collapses ReplacingMergeTree
      rows already within each inserted block. Inserts turn it off: it costs about a third of
      chdb's insert time and buys nothing, since queries use ``FINAL`` anyway.
    """

    version: tuple[int, int, int]
    low_cardinality: bool
    datetime64: bool
    insert_deduplication_token: bool
    optimize_on_insert: bool

    @classmethod
    def for_version(cls, version: tuple[int, int, int]) -> "ServerFeatures":
        return cls(
            version=version,
            low_cardinality=version >= (19, 3, 0),
            datetime64=version >= (20, 1, 0),
            insert_deduplication_token=version >= (22, 2, 0),
            optimize_on_insert=version >= (21, 1, 0),
        )

    def insert_settings(self, dedup_token: str | None) -> dict[str, object]:
        """Settings for one insert on this server."""
        settings: dict[str, object] = {}
        if self.optimize_on_insert:
            settings["optimize_on_insert"] = 0
        if dedup_token and self.insert_deduplication_token:
            settings["insert_deduplication_token"] = dedup_token
        return settings

    @property
    def version_text(self) -> str:
        return ".".join(str(part) for part in self.version)
