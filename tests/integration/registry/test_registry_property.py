"""The SQL against the pure rules: random histories, cut into random batches, written in random
order (with invalid marks in between), end exactly where tests.support.registry.expected says.

The database is an ICU ``en-US`` one, as RDS's default collation is a linguistic one: the SQL
must compare ids in code point order (COLLATE "C") as the rules do, or ties between users would
resolve differently here than in Python.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pistats.registry.migrations import migrate
from pistats.registry.store import InvalidMark
from tests.integration.registry.conftest import RECEIVED, read_rows
from tests.support.registry import expected

T0 = datetime(2026, 11, 26, 11, 0, tzinfo=timezone.utc)
# Ids whose order differs between code points and en-US collation ('B' < 'a' < 'é' by code point).
USERS = ("a", "B", "é", "😀")
TOKENS = ("t-1", "T-2", "t-é")
SDKS = ({"name": "pistats-js"}, {"name": "pistats-android"}, None)


@st.composite
def history(draw):
    events = []
    for n in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(["register", "subscribe", "subscribe", "unsubscribe", "unsubscribe", "page_view"]))
        event = {"event_id": f"e{n}", "type": kind, "property_id": draw(st.sampled_from(["p1", "p2"])),
                 "user_id": draw(st.sampled_from(USERS)),
                 # few distinct instants: ties are the point
                 "timestamp": (T0 + timedelta(seconds=draw(st.integers(0, 4)))).isoformat().replace("+00:00", "Z")}
        if kind == "subscribe" or (kind == "unsubscribe" and draw(st.booleans())):
            event["push_token"] = draw(st.sampled_from(TOKENS))
        context = {}
        if draw(st.booleans()):
            context["locale"] = draw(st.sampled_from(["fr-FR", "de-DE", "É"]))
            context["timezone"] = draw(st.sampled_from([None, "UTC", "Europe/Paris"]))
        if sdk := draw(st.sampled_from(SDKS)):
            context["sdk"] = sdk
        if context:
            event["context"] = context
        events.append(event)
    return events


@pytest.fixture(scope="module")
def icu_registry_url(registry_url):
    admin = psycopg.connect(registry_url, autocommit=True)
    name = f"registry_icu_{datetime.now().strftime('%H%M%S%f')}"
    admin.execute(f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' "
                  "LOCALE 'C.UTF-8'")
    url = registry_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        # The premise: this database's default collation does not order ids as code points do.
        assert [r[0] for r in conn.execute("SELECT unnest(ARRAY['a', 'B', 'é']) ORDER BY 1")] == ["a", "B", "é"]
    yield url
    admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    admin.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_sql_reaches_what_the_rules_say(icu_registry_url, make_registry, data):
    registry = make_registry(icu_registry_url)
    client_id = f"c-{uuid.uuid4().hex[:12]}"  # each example writes rows of its own
    events = data.draw(history())
    order = data.draw(st.permutations(range(len(events))))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(events) - 1)), max_size=6)))
    shuffled = [events[i] for i in order]
    batches = [shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, len(events)]) if shuffled[a:b]]
    tokens = sorted({(e["property_id"], e["push_token"]) for e in events if e.get("push_token")})
    marks = []
    written: set = set()
    for batch in batches:
        registry.write(client_id, batch, RECEIVED)
        written |= {(e["property_id"], e.get("push_token")) for e in batch}
        if tokens and data.draw(st.booleans()):
            property_id, token = data.draw(st.sampled_from(tokens))
            mark = (property_id, token, data.draw(st.sampled_from(["UNREGISTERED", "SENDER_ID_MISMATCH"])),
                    T0 + timedelta(seconds=data.draw(st.integers(0, 4))))
            # Marks only for tokens the registry already has, as the push sender only marks those.
            if (property_id, token) in written:
                registry.mark_invalid([InvalidMark(client_id, *mark)])
                marks.append(mark)
    with psycopg.connect(icu_registry_url) as conn:
        assert read_rows(conn, client_id) == expected(client_id, events, RECEIVED, marks)
