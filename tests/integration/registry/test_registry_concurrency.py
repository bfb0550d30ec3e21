"""Ingest workers writing the same users and tokens at the same moment, each on its own
connection: no error reaches the caller and the rows end where the rules say."""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta, timezone

from tests.integration.registry.conftest import RECEIVED
from tests.support.registry import expected

T0 = datetime(2026, 11, 26, 11, 0, tzinfo=timezone.utc)


def ev(n, kind, user, token=None, millis=0, prop="site-1"):
    event = {"event_id": f"e-{n}", "type": kind, "property_id": prop, "user_id": user,
             "timestamp": (T0 + timedelta(milliseconds=millis)).isoformat().replace("+00:00", "Z")}
    if token:
        event["push_token"] = token
    return event


def run_workers(registries, batches_per_worker, client_id):
    """Each worker writes its batches; a barrier starts every round at once."""
    barrier = threading.Barrier(len(registries))
    errors = []

    def work(registry, batches):
        try:
            for batch in batches:
                barrier.wait(timeout=30)
                registry.write(client_id, batch, RECEIVED)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=work, args=pair) for pair in zip(registries, batches_per_worker)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_two_workers_upsert_the_same_user_and_token(make_registry, rows, client_id):
    rounds = 40
    batches = [[], []]
    for r in range(rounds):
        for worker in (0, 1):
            # Both workers: the same user, the same token, their own event times (some equal).
            millis = r * 10 + random.choice([0, 0, 3, 7])
            kind = random.choice(["subscribe", "subscribe", "unsubscribe"])
            batches[worker].append([ev(f"{worker}-{r}", kind, "u-1", "tok", millis),
                                    ev(f"{worker}-{r}-r", "register", "u-1", millis=millis)])
    run_workers([make_registry(), make_registry()], batches, client_id)
    everything = [event for worker in batches for batch in worker for event in batch]
    assert rows() == expected(client_id, everything, RECEIVED)


def test_a_move_an_unsubscribe_all_and_subscribes_racing(make_registry, rows, client_id):
    """Worker 0 moves tokens between two users; worker 1 unsubscribes those users entirely and
    subscribes them again; worker 2 rotates tokens. Locks are taken in key order, a deadlock
    (rows of one user taken by unsubscribe-all in another order) is retried inside write()."""
    users, tokens = ["u-1", "u-2"], ["t-1", "t-2", "t-3"]
    batches = [[], [], []]
    for r in range(30):
        base = r * 10
        batches[0].append([ev(f"0-{r}-{t}", "subscribe", random.choice(users), t, base + random.randint(0, 9))
                           for t in random.sample(tokens, 2)])
        batches[1].append([ev(f"1-{r}-{u}", "unsubscribe", u, millis=base + random.randint(0, 9)) for u in users]
                          + [ev(f"1-{r}-s", "subscribe", random.choice(users), random.choice(tokens),
                                base + random.randint(0, 9))])
        batches[2].append([ev(f"2-{r}", "unsubscribe", random.choice(users), random.choice(tokens),
                              base + random.randint(0, 9))])
    run_workers([make_registry(), make_registry(), make_registry()], batches, client_id)
    everything = [event for worker in batches for batch in worker for event in batch]
    assert rows() == expected(client_id, everything, RECEIVED)
