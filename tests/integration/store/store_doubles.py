"""Store doubles for integration tests (samples of events and rejects: tests.support.samples):
a store with injected faults, a store as schema version 2 left it, events a client's clock
scattered over months."""

import re

from tests.support.samples import make_event

from pistats.store.backends import StoreError
from pistats.store.schema import create_events_sql, create_rejects_sql


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


def scalar(store, sql):
    return store.query(sql.format(db=store.database))[0][0]


def events_across_months(months, client_id="client-b"):
    """One client's events, each dated in a different month since 2010 (a device clock gone
    wrong: valid, flagged clock_skew), all received now."""
    return [
        make_event(index, client_id=client_id, event_id=f"{client_id}-{index}", clock_skew=True,
                   event_time=f"{2010 + index // 12}-{index % 12 + 1:02d}-15T12:00:00Z",
                   kinesis_seq=f"4961{index:020d}")
        for index in range(months)
    ]


def old_events_sql(store):
    """``events`` as schema version 2 created it: partitioned by toYYYYMM(event_time)."""
    ddl = create_events_sql(store.database, store.features)
    return re.sub(r"\nPARTITION BY [^\n]*\n", "\nPARTITION BY toYYYYMM(event_time)\n", ddl)


def old_schema(store):
    """A store as version 2 left it."""
    from pistats.store.schema import MIGRATIONS_TABLE, _create_migrations_table

    store.ensure_database()
    store.execute(_create_migrations_table(store.database, store.features))
    store.execute(old_events_sql(store))
    store.execute(create_rejects_sql(store.database, store.features))
    store.prepare_insert(MIGRATIONS_TABLE, [(1, "create events", 0), (2, "create events_rejected", 0)])(None)
