"""Store doubles for integration tests (samples of events and rejects: tests.support.samples)."""

from pistats.store.backends import StoreError


class FlakyStore:
    """Fault injection around a real store: the next ``fail_before`` inserts raise without storing,
    then the next ``fail_after`` inserts store their rows and raise anyway (a timeout that hid a
    success)."""

    def __init__(self, store, fail_before: int = 0, fail_after: int = 0):
        self.store = store
        self.fail_before = fail_before
        self.fail_after = fail_after
        self.database = store.database
        self.features = store.features

    def prepare_insert(self, table, rows):
        send = self.store.prepare_insert(table, rows)

        def flaky_send(token):
            if self.fail_before:
                self.fail_before -= 1
                raise StoreError("injected: connection refused")
            send(token)
            if self.fail_after:
                self.fail_after -= 1
                raise StoreError("injected: timed out after the insert landed")

        return flaky_send
