"""``to_wire_batch``: the enrich bolt's emit, packed by column, arrives as ``to_wire``'s rows."""

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from pistats.enrich.event import EVENT_FIELDS, to_wire, to_wire_batch, wire_columns
from pistats.wire import PackedColumns, format_time, pack_rows, unpack_batch, unpack_rows

_times = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2105, 12, 30),
                      timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=5, minutes=30))]))
_values = st.none() | st.integers(-2**63, 2**63 - 1) | st.text(max_size=5) | st.booleans() | _times \
    | st.lists(st.text(max_size=3), max_size=2)
_rows = st.lists(st.dictionaries(st.sampled_from(["event_id", "event_time", "processed_at", "n", "rejected_at"]),
                                 _values, max_size=5), max_size=6)


@settings(max_examples=300, deadline=None)
@given(_rows)
def test_a_batch_arrives_as_the_rows_of_to_wire(rows):
    """The same dicts as ``to_wire``'s rows packed one by one (``pack_rows``, the earlier form):
    the union of the keys, None where a row lacks one."""
    assert unpack_rows(to_wire_batch(rows)) == unpack_rows(pack_rows([to_wire(row) for row in rows]))


def test_events_of_one_shape_travel_by_column_with_times_as_text():
    when = datetime(2026, 11, 26, 5, 0, 0, 123000, tzinfo=timezone.utc)
    events = [{name: None for name in EVENT_FIELDS} | {"event_id": f"e{n}", "event_time": when, "processed_at": when}
              for n in range(3)]
    batch = unpack_batch(to_wire_batch(events))
    assert isinstance(batch, PackedColumns) and batch.fields == list(EVENT_FIELDS)
    assert batch.columns[EVENT_FIELDS.index("event_id")] == ["e0", "e1", "e2"]
    assert batch.columns[EVENT_FIELDS.index("event_time")] == [format_time(when)] * 3
    assert wire_columns([]) == ([], []) and unpack_rows(to_wire_batch([])) == []


def test_rows_without_keys_still_arrive_one_each():
    assert unpack_rows(to_wire_batch([{}, {}])) == [{}, {}]
