"""Group commit (pistats.ingest.group_commit): concurrent requests share PutRecords calls, each
gets back exactly its own entries' outcomes. A fake client and real threads; calls are held open
with events, never timed."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest
from botocore.exceptions import ClientError

from pistats.ingest.group_commit import QUEUE_FULL, GroupCommitPutter, GroupCommitSettings
from pistats.ingest.putter import PutEntry, PutResult, RecordPutter

THROTTLED = "ProvisionedThroughputExceededException"
WAIT = 10  # seconds a test waits for a thread before calling it stuck (a failure, not a timing)


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "injected"}}, "PutRecords")


def request(name: str, n: int, size: int = 10) -> list[PutEntry]:
    """``n`` entries named ``name/0``..; the data is the name, padded to ``size`` bytes."""
    return [PutEntry(f"{name}/{i}".encode().ljust(size, b"."), f"pk-{name}") for i in range(n)]


def name_of(record: dict) -> str:
    return record["Data"].rstrip(b".").decode()


class Kinesis:
    """Thread-safe fake. ``refuse(name, call_number)`` -> error code or None decides each entry;
    ``raises`` maps a call number (1, 2, ...) to an exception; ``hold`` makes call 1 wait for
    ``release`` (so others queue meanwhile). Accepted records are stored with a sequence number."""

    def __init__(self, refuse=None, raises=None, hold=False, io_s=0.0):
        self.refuse = refuse or (lambda name, call: None)
        self.raises = dict(raises or {})
        self.calls: list[list[str]] = []
        self.stored: list[str] = []
        self.lock = threading.Lock()
        self.in_call = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.concurrent = 0
        self.most_concurrent = 0
        self.io_s = io_s  # a call's time on the wire, so that other threads run meanwhile

    def put_records(self, StreamName, Records):
        with self.lock:
            self.calls.append([name_of(r) for r in Records])
            number = len(self.calls)
            self.concurrent += 1
            self.most_concurrent = max(self.most_concurrent, self.concurrent)
        try:
            if number == 1:
                self.in_call.set()
                assert self.release.wait(WAIT)
            if self.io_s:
                threading.Event().wait(self.io_s)
            if number in self.raises:
                raise self.raises[number]
            answers = []
            with self.lock:
                for record in Records:
                    code = self.refuse(name_of(record), number)
                    if code:
                        answers.append({"ErrorCode": code, "ErrorMessage": "injected"})
                    else:
                        self.stored.append(name_of(record))
                        answers.append({"ShardId": "shardId-0", "SequenceNumber": name_of(record)})
            return {"Records": answers}
        finally:
            with self.lock:
                self.concurrent -= 1

    def describe_stream_summary(self, StreamName):
        return {}


def putter(kinesis, attempts=3, **kwargs) -> GroupCommitPutter:
    settings = kwargs.pop("settings", GroupCommitSettings())
    return GroupCommitPutter(kinesis, "s", attempts=attempts, sleep=lambda s: None, rng=random.Random(1),
                             settings=settings, **kwargs)


class Requests:
    """Requests put from threads of their own; ``results[name]`` once joined."""

    def __init__(self, p: GroupCommitPutter):
        self.p = p
        self.threads: dict[str, threading.Thread] = {}
        self.results: dict[str, PutResult] = {}
        self.sent: dict[str, list[PutEntry]] = {}

    def start(self, name: str, entries: list[PutEntry], queued_after: int | None = None):
        """Start putting ``entries``; with ``queued_after``, return once the putter's queue holds
        that many entries (the request is waiting behind the call in flight)."""
        self.sent[name] = entries
        thread = threading.Thread(target=lambda: self.results.__setitem__(name, self.p.put(entries)))
        self.threads[name] = thread
        thread.start()
        if queued_after is not None:
            wait_until(lambda: self.p.queued == queued_after)

    def join(self) -> dict[str, PutResult]:
        for thread in self.threads.values():
            thread.join(WAIT)
            assert not thread.is_alive(), "a request never returned"
        return self.results


def wait_until(condition) -> None:
    done = threading.Event()
    for _ in range(WAIT * 1000):
        if condition():
            return
        done.wait(0.001)
    raise AssertionError("condition never met")


def accepted_names(result: PutResult) -> dict[int, str]:
    """index -> the sequence number the fake gave it (the entry's own name, if mapped right)."""
    return {index: seq for index, (_, seq) in result.accepted.items()}


def own_names(name: str, n: int) -> dict[int, str]:
    return {i: f"{name}/{i}" for i in range(n)}


def test_a_lone_request_is_sent_at_once_in_one_call():
    kinesis = Kinesis()
    result = putter(kinesis).put(request("a", 3))
    assert kinesis.calls == [["a/0", "a/1", "a/2"]]
    assert accepted_names(result) == own_names("a", 3) and result.failed == {} and result.calls == 1


def test_requests_queued_while_a_call_is_in_flight_share_the_next_call_each_getting_its_own_outcomes():
    kinesis = Kinesis(hold=True)
    requests = Requests(putter(kinesis))
    requests.start("a", request("a", 2))
    assert kinesis.in_call.wait(WAIT)
    requests.start("b", request("b", 3), queued_after=3)
    requests.start("c", request("c", 1), queued_after=4)
    requests.start("d", request("d", 2), queued_after=6)
    kinesis.release.set()
    results = requests.join()
    assert kinesis.calls == [["a/0", "a/1"], ["b/0", "b/1", "b/2", "c/0", "d/0", "d/1"]]
    for name, n in {"a": 2, "b": 3, "c": 1, "d": 2}.items():
        assert accepted_names(results[name]) == own_names(name, n)
        assert results[name].failed == {} and results[name].calls == 1
    assert kinesis.most_concurrent == 1


def test_partial_failures_of_a_shared_call_go_back_to_their_own_requests_and_are_retried_there():
    # In call 2, b/1 is throttled; d/0 fails internally on every call.
    refusals = {("b/1", 2): THROTTLED}

    def refuse(name, call):
        return "InternalFailure" if name == "d/0" else refusals.get((name, call))

    kinesis = Kinesis(refuse=refuse, hold=True)
    requests = Requests(putter(kinesis, attempts=2))
    requests.start("a", request("a", 1))
    assert kinesis.in_call.wait(WAIT)
    requests.start("b", request("b", 2), queued_after=2)
    requests.start("c", request("c", 1), queued_after=3)
    requests.start("d", request("d", 1), queued_after=4)
    kinesis.release.set()
    results = requests.join()
    assert kinesis.calls[:2] == [["a/0"], ["b/0", "b/1", "c/0", "d/0"]]
    # The retries (b's and d's own, after their own backoff) may share a call or not.
    assert sorted(name for call in kinesis.calls[2:] for name in call) == ["b/1", "d/0"]
    assert accepted_names(results["b"]) == own_names("b", 2) and results["b"].failed == {}
    assert accepted_names(results["c"]) == own_names("c", 1) and results["c"].failed == {}
    # d/0 refused twice (attempts=2): reported with its last code, never as accepted.
    assert results["d"].accepted == {} and results["d"].failed == {0: "InternalFailure"}
    assert Counter(kinesis.stored) == Counter(["a/0", "b/0", "c/0", "b/1"])


def test_a_whole_call_error_fails_only_that_calls_entries():
    kinesis = Kinesis(raises={1: client_error("ResourceNotFoundException")}, hold=True)
    requests = Requests(putter(kinesis, attempts=3))
    requests.start("a", request("a", 2))
    assert kinesis.in_call.wait(WAIT)
    requests.start("b", request("b", 1), queued_after=1)
    kinesis.release.set()
    results = requests.join()
    # Not retriable: a gives up after one attempt; b, in the next call, is put.
    assert results["a"].accepted == {} and results["a"].failed == {0: "ResourceNotFoundException",
                                                                    1: "ResourceNotFoundException"}
    assert accepted_names(results["b"]) == own_names("b", 1)
    assert kinesis.calls == [["a/0", "a/1"], ["b/0"]] and kinesis.stored == ["b/0"]


def test_a_retriable_whole_call_error_is_retried_by_the_requests_it_touched():
    kinesis = Kinesis(raises={2: client_error("ServiceUnavailable")}, hold=True)
    requests = Requests(putter(kinesis, attempts=3))
    requests.start("a", request("a", 1))
    assert kinesis.in_call.wait(WAIT)
    requests.start("b", request("b", 2), queued_after=2)
    requests.start("c", request("c", 1), queued_after=3)
    kinesis.release.set()
    results = requests.join()
    assert kinesis.calls[1] == ["b/0", "b/1", "c/0"]
    for name, n in {"a": 1, "b": 2, "c": 1}.items():
        assert accepted_names(results[name]) == own_names(name, n) and results[name].failed == {}
    assert Counter(kinesis.stored) == Counter(["a/0", "b/0", "b/1", "c/0"])


def test_an_exception_in_the_leader_refuses_its_call_without_hanging_the_others():
    kinesis = Kinesis(raises={2: RuntimeError("bug")}, hold=True)
    requests = Requests(putter(kinesis))
    requests.start("a", request("a", 1))
    assert kinesis.in_call.wait(WAIT)
    requests.start("b", request("b", 1), queued_after=1)
    requests.start("c", request("c", 1), queued_after=2)
    kinesis.release.set()
    results = requests.join()
    assert results["b"].failed == {0: "Error:RuntimeError"} and results["c"].failed == {0: "Error:RuntimeError"}
    assert accepted_names(results["a"]) == own_names("a", 1) and kinesis.stored == ["a/0"]
    assert len(kinesis.calls) == 2  # not retriable: given up at once


def test_calls_respect_the_record_and_byte_limits_and_a_large_request_spans_calls_in_order():
    kinesis = Kinesis(hold=True)
    p = putter(kinesis, max_records=4, max_bytes=100)
    requests = Requests(p)
    requests.start("a", request("a", 1))
    assert kinesis.in_call.wait(WAIT)
    requests.start("b", request("b", 6, size=10), queued_after=6)  # more than one call
    requests.start("c", request("c", 3, size=40), queued_after=9)  # two of these fill 100 bytes
    requests.start("d", [PutEntry(b"d/0".ljust(150, b"."), "pk-d")], queued_after=10)  # over the limit
    requests.start("e", request("e", 1, size=10), queued_after=11)
    kinesis.release.set()
    results = requests.join()
    assert kinesis.calls == [["a/0"], ["b/0", "b/1", "b/2", "b/3"], ["b/4", "b/5", "c/0"], ["c/1", "c/2"],
                             ["d/0"], ["e/0"]]
    assert accepted_names(results["b"]) == own_names("b", 6) and results["b"].calls == 2
    assert accepted_names(results["c"]) == own_names("c", 3) and results["c"].calls == 2


def test_a_full_queue_pushes_back_and_refuses_after_the_admission_timeout():
    kinesis = Kinesis(hold=True)
    p = putter(kinesis, settings=GroupCommitSettings(max_queued_entries=3, admission_timeout_s=0))
    requests = Requests(p)
    requests.start("a", request("a", 5))  # larger than the cap: let in, the queue being empty
    assert kinesis.in_call.wait(WAIT)
    requests.start("b", request("b", 2), queued_after=2)
    # One more entry fits (3); two do not: refused at once (timeout 0), nothing queued or put.
    refused = p.put(request("x", 2))
    assert refused.accepted == {} and refused.failed == {0: QUEUE_FULL, 1: QUEUE_FULL}
    requests.start("c", request("c", 1), queued_after=3)
    kinesis.release.set()
    results = requests.join()
    assert all(not r.failed for r in results.values())
    assert "x/0" not in kinesis.stored and "x/1" not in kinesis.stored
    assert sorted(kinesis.stored) == sorted([f"a/{i}" for i in range(5)] + ["b/0", "b/1", "c/0"])


def test_a_request_waiting_for_room_is_admitted_once_the_queue_drains():
    kinesis = Kinesis(hold=True)
    p = putter(kinesis, settings=GroupCommitSettings(max_queued_entries=2, admission_timeout_s=WAIT))
    requests = Requests(p)
    requests.start("a", request("a", 1))
    assert kinesis.in_call.wait(WAIT)
    requests.start("b", request("b", 2), queued_after=2)
    requests.start("c", request("c", 2))  # waits for room
    kinesis.release.set()
    results = requests.join()
    assert kinesis.calls == [["a/0"], ["b/0", "b/1"], ["c/0", "c/1"]]
    assert all(not r.failed for r in results.values())


def test_a_leader_may_wait_for_company_up_to_a_full_call():
    kinesis = Kinesis()
    p = putter(kinesis, max_records=3, settings=GroupCommitSettings(max_wait_s=WAIT))
    requests = Requests(p)
    for name in "abc":
        requests.start(name, request(name, 1))
    results = requests.join()
    assert len(kinesis.calls) == 1 and sorted(kinesis.calls[0]) == ["a/0", "b/0", "c/0"]
    assert all(not r.failed for r in results.values())


def test_many_threads_lose_nothing_double_nothing_and_keep_each_requests_order():
    rng = random.Random(17)
    plan = {}

    def refuse(name, call):
        # About one entry in ten is throttled on a given call; decided once per (entry, call).
        if (name, call) not in plan:
            plan[(name, call)] = THROTTLED if rng.random() < 0.1 else None
        return plan[(name, call)]

    kinesis = Kinesis(refuse=refuse, io_s=0.001)
    p = putter(kinesis, attempts=4, max_records=40)
    sizes = {f"t{t}r{r}": 1 + (t * 7 + r * 3) % 60 for t in range(24) for r in range(12)}
    results: dict[str, PutResult] = {}

    def thread(t):
        for r in range(12):
            name = f"t{t}r{r}"
            results[name] = p.put(request(name, sizes[name]))

    threads = [threading.Thread(target=thread, args=(t,)) for t in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT * 6)
        assert not t.is_alive()

    stored = Counter(kinesis.stored)
    assert max(stored.values()) == 1  # nothing put twice
    reported = set()
    for name, result in results.items():
        assert set(result.accepted) | set(result.failed) == set(range(sizes[name]))
        assert not set(result.accepted) & set(result.failed)
        assert accepted_names(result) == {i: f"{name}/{i}" for i in result.accepted}
        reported |= {f"{name}/{i}" for i in result.accepted}
        assert not {f"{name}/{i}" for i in result.failed} & set(stored)  # refused means not put
    assert reported == set(stored)  # nothing accepted unreported, nothing reported unput
    assert kinesis.most_concurrent == 1
    # Within every call, each request's entries are in order (first attempts contiguous too).
    for call in kinesis.calls:
        assert len(call) <= 40
        last: dict[str, int] = {}
        for entry in call:
            name, index = entry.split("/")
            assert last.get(name, -1) < int(index)
            last[name] = int(index)


def test_it_is_a_record_putter_with_the_same_contract_for_one_thread():
    # The plain putter's partial-failure retry, unchanged, through the group commit path.
    codes = iter([[None, THROTTLED, None], [None]])

    class Plain:
        def __init__(self):
            self.calls = []

        def put_records(self, StreamName, Records):
            self.calls.append([name_of(r) for r in Records])
            return {"Records": [{"ErrorCode": c} if c else {"ShardId": "s", "SequenceNumber": name_of(r)}
                                for r, c in zip(Records, next(codes))]}

    for cls in (RecordPutter, GroupCommitPutter):
        codes = iter([[None, THROTTLED, None], [None]])
        client = Plain()
        result = cls(client, "s", sleep=lambda s: None).put(request("a", 3))
        assert client.calls == [["a/0", "a/1", "a/2"], ["a/1"]]
        assert accepted_names(result) == own_names("a", 3) and result.calls == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"max_queued_entries": 0}, "max_queued_entries"),
    ({"max_wait_s": -1}, "max_wait_s"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GroupCommitSettings(**kwargs)
