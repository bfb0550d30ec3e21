"""The full demo's SDK sender against a scripted HTTP server: a user's requests in order on one
connection, 429 and 503 waited out and retried, accepted and duplicate events counted once."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pistats.demo.full import SdkSender
from pistats.errors import ServiceError
from pistats.generate.sdk import SdkRequest


class Ingest:
    """Answers like the ingest: an event id seen before is a duplicate. ``faults`` are answers
    to give first, in order: (status, headers, ids to accept before answering)."""

    def __init__(self):
        self.seen: set[str] = set()
        self.faults: list[tuple[int, dict, int]] = []
        self.bodies: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()

    def answer(self, user_agent: str, events: list[dict]) -> tuple[int, dict, dict]:
        with self.lock:
            ids = [event["event_id"] for event in events]
            self.bodies.append((user_agent, ids))
            if self.faults:
                status, headers, accept_first = self.faults.pop(0)
                self.seen.update(ids[:accept_first])
                return status, headers, {"error": "try again", "results": [
                    {"index": n, "event_id": i, "status": "accepted" if n < accept_first else "not_accepted"}
                    for n, i in enumerate(ids)]}
            results = []
            for n, event_id in enumerate(ids):
                results.append({"index": n, "event_id": event_id,
                                "status": "duplicate" if event_id in self.seen else "accepted"})
                self.seen.add(event_id)
            return 200, {}, {"results": results}


@pytest.fixture
def ingest():
    state = Ingest()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            events = body["batch"] if "batch" in body else [body]
            status, headers, answer = state.answer(self.headers.get("User-Agent", ""), events)
            raw = json.dumps(answer).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", "Content-Length": str(len(raw)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.port = server.server_address[1]
    yield state
    server.shutdown()
    server.server_close()


def request(user: str, *ids: str, resend: bool = False, agent: str = "ua/1") -> SdkRequest:
    return SdkRequest(user, agent, tuple({"event_id": i, "type": "page_view", "user_id": user} for i in ids), resend)


def test_each_event_is_counted_once_through_retries_and_resends(ingest):
    waits = []
    ingest.faults = [(429, {"Retry-After": "1"}, 0), (503, {"Retry-After": "2"}, 1)]
    sender = SdkSender("127.0.0.1", ingest.port, "pk_test", senders=1, sleep=waits.append)
    totals = sender.send([request("u1", "a", "b", "c"), request("u2", "d", resend=True)])
    # a, b, c: 429, then 503 with a put, then 200 with a duplicate: still three accepted.
    assert (totals.accepted, totals.duplicates, totals.retried, totals.requests) == (4, 1, 2, 5)
    assert waits == [1.0, 2.0]


def test_a_users_requests_go_in_order_on_one_sender(ingest):
    requests = [request(f"u{n % 7}", f"e{n}", agent=f"agent-{n % 7}") for n in range(70)]
    progress = []
    totals = SdkSender("127.0.0.1", ingest.port, "pk_test", senders=3).send(requests, progress.append)
    assert totals.accepted == 70 and sorted(progress) == list(range(1, 71))
    for user in range(7):
        sent = [ids[0] for agent, ids in ingest.bodies if agent == f"agent-{user}"]
        assert sent == [f"e{n}" for n in range(70) if n % 7 == user]


def test_an_answer_the_traffic_never_deserves_stops_the_run(ingest):
    ingest.faults = [(401, {}, 0)]
    with pytest.raises(ServiceError, match="answered 401"):
        SdkSender("127.0.0.1", ingest.port, "pk_wrong", senders=1).send([request("u1", "a")])
