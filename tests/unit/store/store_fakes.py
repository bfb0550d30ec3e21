"""Test doubles for pure sink logic: an in-memory store with fault injection (the manual clock is
tests.support.clock.Clock)."""

from __future__ import annotations

from pistats.store.backends import StoreError, StoreRefused
from pistats.store.features import ServerFeatures


class MemoryStore:
    """Records inserts; ``fail_next`` inserts raise StoreError before (or after) storing.

    ``refuse(table, rows)`` returns the engine's message when the store refuses those rows for
    their data (the whole insert raises StoreRefused, nothing is stored), else None; every
    attempt is kept in ``attempts`` as (table, number of rows, token, refused)."""

    database = "memory"
    features = ServerFeatures.for_version((26, 9, 2))

    def __init__(self, fail_next: int = 0, fail_after_storing: bool = False, refuse=None):
        self.fail_next = fail_next
        self.fail_after_storing = fail_after_storing
        self.refuse = refuse or (lambda table, rows: None)
        self.inserts: list[tuple[str, tuple, str | None]] = []
        self.attempts: list[tuple[str, int, str | None, bool]] = []

    def _insert(self, table, rows, token):
        if self.fail_next and not self.fail_after_storing:
            self.fail_next -= 1
            raise StoreError("injected failure")
        message = self.refuse(table, rows)
        self.attempts.append((table, len(rows), token, message is not None))
        if message is not None:
            raise StoreRefused(f"memory: {message}", message, 469)
        self.inserts.append((table, tuple(rows), token))
        if self.fail_next:
            self.fail_next -= 1
            raise StoreError("injected timeout after the insert landed")

    def prepare_insert(self, table, rows):
        return lambda token: self._insert(table, rows, token)

    def rows(self, table):
        return [row for name, rows, _ in self.inserts if name == table for row in rows]
