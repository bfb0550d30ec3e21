"""IngestService and welcome notifications (fakes): the welcome comes after the put, only for the
tokens whose subscribes Kinesis took, and nothing it does changes the response."""

from __future__ import annotations

from datetime import timedelta

from pistats.registry.changes import plan, registry_problems
from pistats.registry.store import Written


class ActivatingRegistry:
    """Reports every subscription of a write as activated and owed a welcome; records the
    welcome window's start it was given."""

    problems = staticmethod(registry_problems)

    def __init__(self):
        self.welcome_since = []

    def write(self, client_id, events, received_at, *, checked=False, welcome_since=None):
        self.welcome_since.append(welcome_since)
        changes = plan(client_id, list(events), received_at)
        keys = tuple((c.property_id, c.digest) for c in changes.subscriptions)
        return Written(changes, keys, keys)


class FakeWelcome:
    def __init__(self, kinesis=None, fail=False):
        self.calls, self.kinesis, self.fail = [], kinesis, fail

    def welcome_since(self, received_at):
        return received_at - timedelta(hours=24)

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


def test_the_write_is_asked_for_owed_welcomes_from_the_window_start(make_harness):
    registry, welcome = ActivatingRegistry(), FakeWelcome()
    h = make_harness(registry=registry, welcome=welcome)
    h.post({"batch": [subscribe(1)]})
    (since,) = registry.welcome_since
    assert since is not None and since.tzinfo is not None
    without = ActivatingRegistry()
    make_harness(registry=without).post({"batch": [subscribe(1)]})
    assert without.welcome_since == [None]  # no welcomes: nothing owed is asked for


def test_while_the_fcm_secret_is_unreadable_nothing_is_owed_then_welcomes_start(make_harness):
    from pistats.push.fcm import SECRET_VARIABLE, SecretUnreadable
    from pistats.push.welcome import PendingWelcomer

    welcome, attempts, clock = FakeWelcome(), [], [0.0]

    def build():
        attempts.append(clock[0])
        if len(attempts) == 1:
            raise SecretUnreadable(SECRET_VARIABLE, "could not be read from Secrets Manager (ThrottlingException)")
        return welcome

    pending = PendingWelcomer(build, 60, lambda: clock[0])
    registry = ActivatingRegistry()
    h = make_harness(registry=registry, welcome=pending)
    clock[0] = 60.0
    status, _, _ = h.post({"batch": [subscribe(1)]})  # refused again: no window asked, nothing sent
    assert status == 200 and registry.welcome_since == [None] and welcome.calls == [] and attempts == [60.0]
    clock[0] = 119.0
    h.post({"batch": [subscribe(2)]})
    assert registry.welcome_since == [None, None] and attempts == [60.0]
    clock[0] = 120.0
    h.post({"batch": [subscribe(3)]})
    assert registry.welcome_since[-1] is not None and attempts == [60.0, 120.0]
    assert welcome.calls == [("client-1", [("site-1", "token-3")], None)]
