"""Under load: a gunicorn worker killed loses no accepted event; nginx reloaded drops no request."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import pytest

from tests.support.gateway import event, wait_until

pytestmark = pytest.mark.integration


# The waits bound progress, not speed: kinesis-local on a loaded two-core machine can take seconds
# per put, and a missed wait reads as a lost request.
PROGRESS_S = 90


class Load:
    """Client threads posting batches of fresh events, one connection per request, until stopped;
    keeps each answer's status and the ids of the events it reported accepted."""

    def __init__(self, gateway, key: str, threads: int = 6, batch: int = 5):
        self.gateway, self.key, self.batch = gateway, key, batch
        self.statuses: list[int] = []
        self.accepted: set[str] = set()
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self):
        while not self._stop.is_set():
            events = [event(uuid.uuid4().hex) for _ in range(self.batch)]
            try:
                response = self.gateway.post({"batch": events}, self.key)
            except OSError as error:
                with self._lock:
                    self.errors.append(repr(error))
                continue
            with self._lock:
                self.statuses.append(response.status)
                if response.status == 200:
                    self.accepted |= {r["event_id"] for r in response.body["results"] if r["status"] == "accepted"}

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def count(self) -> int:
        with self._lock:
            return len(self.statuses)


def test_a_worker_killed_mid_load_loses_no_accepted_event(start_gateway, write_keys):
    gateway = start_gateway(faithful=True, PISTATS_GATEWAY_WORKERS="2", PISTATS_GATEWAY_THREADS="4")
    (key,) = write_keys(1)
    workers = gateway.worker_pids()
    assert len(workers) == 2
    victim = min(workers)

    with Load(gateway, key) as load:
        wait_until(lambda: load.count() >= 20, timeout=PROGRESS_S)
        os.kill(victim, signal.SIGKILL)
        killed_at = load.count()
        # The master replaces it; the load goes on through both workers.
        wait_until(lambda: len(gateway.worker_pids() - {victim}) == 2, timeout=PROGRESS_S)
        wait_until(lambda: load.count() >= killed_at + 40, timeout=PROGRESS_S)

    assert victim not in gateway.worker_pids()
    assert load.errors == []
    # A request in the killed worker's hands is answered 502 (nothing said accepted); the rest 200.
    assert set(load.statuses) <= {200, 502}
    assert load.statuses.count(200) >= 50
    stored = {record["event"]["event_id"] for record in gateway.records()}
    assert load.accepted and load.accepted - stored == set()


def test_nginx_reloaded_under_load_drops_no_request(start_gateway, write_keys):
    gateway = start_gateway(faithful=True)
    (key,) = write_keys(1)
    before = gateway.nginx_worker_pids()

    with Load(gateway, key, threads=6, batch=1) as load:
        wait_until(lambda: load.count() >= 20, timeout=PROGRESS_S)
        for _ in range(3):
            gateway.reload_nginx()
            time.sleep(0.7)
        reloaded_at = load.count()
        wait_until(lambda: load.count() >= reloaded_at + 20, timeout=PROGRESS_S)

    # The reloads happened: none of the first workers is left.
    wait_until(lambda: not gateway.nginx_worker_pids() & before, timeout=PROGRESS_S)
    assert load.errors == []
    assert set(load.statuses) == {200} and len(load.statuses) >= 40
    stored = {record["event"]["event_id"] for record in gateway.records()}
    assert load.accepted - stored == set()
