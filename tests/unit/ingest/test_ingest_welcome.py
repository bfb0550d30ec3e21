"""IngestService and welcome notifications (fakes): the welcome comes after the put, only for the
tokens whose subscribes Kinesis took, and nothing it does changes the response."""

from __future__ import annotations

from pistats.registry.changes import plan, registry_problems
from pistats.registry.store import Written


class ActivatingRegistry:
    """Reports every subscription of a write as activated."""

    problems = staticmethod(registry_problems)

    def write(self, client_id, events, received_at, *, checked=False):
        changes = plan(client_id, list(events), received_at)
        return Written(changes, tuple((c.property_id, c.digest) for c in changes.subscriptions))


class FakeWelcome:
    def __init__(self, kinesis=None, fail=False):
        self.calls, self.kinesis, self.fail = [], kinesis, fail

    def after_write(self, client_id, written, put_tokens):
        self.calls.append((client_id, sorted(put_tokens), len(self.kinesis.calls) if self.kinesis else None))
        if self.fail:
            raise RuntimeError("boom")


def subscribe(n, token=None):
    return {"event_id": f"e-{n}", "type": "subscribe", "property_id": "site-1", "user_id": f"u-{n}",
            "push_token": token or f"token-{n}", "timestamp": "2026-11-26T11:59:00Z"}


def test_the_welcome_comes_after_the_put_with_the_tokens_kinesis_took(make_harness):
    welcome = FakeWelcome()
    h = make_harness(plan=[[None, "ProvisionedThroughputExceededException", None]], attempts=1,
                     registry=ActivatingRegistry(), welcome=welcome)
    welcome.kinesis = h.kinesis
    status, body, _ = h.post({"batch": [subscribe(1), subscribe(2), subscribe(3, "token-1")]})
    assert status == 503 and [r["status"] for r in body["results"]] == ["accepted", "not_accepted", "accepted"]
    # token-2's subscribe was refused: no welcome for it; token-1's two subscribes were both taken.
    assert welcome.calls == [("client-1", [("site-1", "token-1")], 1)]


def test_a_failing_welcome_changes_nothing_in_the_response(make_harness):
    h = make_harness(registry=ActivatingRegistry(), welcome=FakeWelcome(fail=True))
    status, body, _ = h.post({"batch": [subscribe(1)]})
    assert (status, body["accepted"]) == (200, 1)


def test_without_activations_the_welcome_is_not_called(make_harness):
    welcome = FakeWelcome()
    h = make_harness(registry=ActivatingRegistry(), welcome=welcome)
    h.post({"batch": [{"event_id": "e-1", "type": "register", "property_id": "site-1", "user_id": "u-1",
                       "timestamp": "2026-11-26T11:59:00Z"}]})
    assert welcome.calls == []
