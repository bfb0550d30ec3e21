"""IngestService with a subscriber registry (a fake here; tests/integration/registry uses PostgreSQL):
written before the put, a failure refuses the request with 503 and puts nothing, NUL refused."""

from __future__ import annotations

from pistats.registry.changes import plan, registry_problems
from pistats.registry.errors import RegistryUnavailable


class FakeRegistry:
    """Records each write with how many PutRecords calls preceded it; ``down`` makes writes fail."""

    def __init__(self, down=False):
        self.kinesis = None  # the harness's, to count the puts before each write
        self.down = down
        self.writes: list[tuple[str, list[dict], int]] = []

    problems = staticmethod(registry_problems)

    def write(self, client_id, events, received_at, *, checked=False):
        events = list(events)
        assert checked and not any(registry_problems(client_id, e) for e in events)  # the ingest asked problems()
        self.writes.append((client_id, events, len(self.kinesis.calls)))
        if self.down:
            raise RegistryUnavailable("OperationalError")
        return plan(client_id, events, received_at)


def event(n=1, kind="subscribe", **overrides):
    base = {"event_id": f"e-{n}", "type": kind, "property_id": "site-1", "user_id": f"u-{n}",
            "timestamp": "2026-11-26T11:59:00Z"}
    if kind == "subscribe":
        base["push_token"] = f"secret-token-{n}"
    base.update(overrides)
    return base


def harness(make_harness, down=False):
    registry = FakeRegistry(down=down)
    h = make_harness(registry=registry)
    registry.kinesis = h.kinesis
    h.registry = registry
    return h


def test_registry_is_written_before_the_put(make_harness):
    h = harness(make_harness)
    status, body, _ = h.post({"batch": [event(1), event(2, "page_view"), event(3, "register")]})
    assert (status, body["accepted"]) == (200, 3)
    ((client_id, events, puts_before),) = h.registry.writes
    assert (client_id, [e["event_id"] for e in events], puts_before) == ("client-1", ["e-1", "e-2", "e-3"], 0)
    assert len(h.kinesis.stored) == 3


def test_registry_down_is_503_with_retry_after_and_nothing_is_put(make_harness):
    h = harness(make_harness, down=True)
    status, body, headers = h.post({"batch": [event(1), event(2, "page_view"), {"type": "nonsense"}]})
    assert status == 503 and headers["Retry-After"] == "2"
    assert [r["status"] for r in body["results"]] == ["not_accepted", "not_accepted", "invalid"]
    assert body["retry"] == [{"index": 0, "event_id": "e-1"}, {"index": 1, "event_id": "e-2"}]
    assert h.kinesis.calls == [] and h.marks.marked == set()
    assert "secret-token" not in str(body)
    h.registry.down = False
    status, body, _ = h.post({"batch": [event(1), event(2, "page_view")]})
    assert (status, body["accepted"], len(h.kinesis.stored)) == (200, 2, 2)


def test_duplicates_are_not_written_again(make_harness):
    h = harness(make_harness)
    h.post(event(1))
    h.post(event(1))
    assert len(h.registry.writes) == 1


def test_nul_in_a_registry_event_is_invalid_with_the_field_named(make_harness):
    h = harness(make_harness)
    status, body, _ = h.post({"batch": [event(1, user_id="a\x00b"), event(2, "page_view", user_id="c\x00d")]})
    assert status == 207
    assert body["errors"] == [{"index": 0, "field": "user_id",
                               "problem": "contains U+0000 (NUL), which the subscriber registry cannot store"}]
    assert [e["event_id"] for e in h.registry.writes[0][1]] == ["e-2"]
    assert [r["event"]["user_id"] for r in h.records()] == ["c\x00d"]


def test_without_a_registry_nul_is_accepted_as_before(make_harness):
    h = make_harness()
    status, _, _ = h.post(event(1, user_id="a\x00b"))
    assert status == 200
