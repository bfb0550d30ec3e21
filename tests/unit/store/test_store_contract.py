"""The store's columns are the enrichment chain's contract: same fields, and its wire form converts."""

from datetime import datetime, timezone

from tests.support.samples import make_event, make_reject

from pistats.enrich.event import EVENT_FIELDS, REJECT_FIELDS, from_wire, to_wire
from pistats.store.rows import EVENT_COLUMN_NAMES, REJECT_COLUMN_NAMES, event_row, from_epoch_ms, reject_row

NOW = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)


def test_tables_have_exactly_the_contract_fields():
    assert sorted(EVENT_COLUMN_NAMES) == sorted(EVENT_FIELDS)
    assert sorted(REJECT_COLUMN_NAMES) == sorted(REJECT_FIELDS)


def test_wire_form_of_the_chain_converts_to_the_same_row_as_datetimes():
    library_event = from_wire(make_event(3, event_time="2026-11-25T10:00:00.123456Z"))
    wire_event = to_wire(library_event)
    assert isinstance(wire_event["event_time"], str)
    row_from_wire, _ = event_row(wire_event, 1000)
    row_from_objects, _ = event_row(library_event, 1000)
    assert row_from_wire == row_from_objects
    event_time = dict(zip(EVENT_COLUMN_NAMES, row_from_wire))["event_time"]
    assert from_epoch_ms(event_time) == datetime(2026, 11, 25, 10, 0, 0, 123000, tzinfo=timezone.utc)


def test_wire_form_of_a_reject_converts():
    row, _ = reject_row(to_wire(from_wire(make_reject(1))), 1000, NOW)
    assert from_epoch_ms(dict(zip(REJECT_COLUMN_NAMES, row))["rejected_at"]) == datetime(
        2026, 11, 25, 10, 0, 3, tzinfo=timezone.utc)
