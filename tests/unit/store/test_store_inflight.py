"""The writer thread behind the sink: order, backpressure, errors, and the inline mode."""

import gc
import threading

import pytest

from pistats.store.inflight import InsertPipeline


class GatedWrite:
    """A write that blocks until the test opens its gate; records what it wrote and on which thread."""

    def __init__(self, results=None):
        self.results = results or {}
        self.gates: dict[str, threading.Event] = {}
        self.written: list[str] = []
        self.threads: set[str] = set()

    def gate(self, job):
        return self.gates.setdefault(job, threading.Event())

    def __call__(self, job):
        assert self.gate(job).wait(5), f"gate of {job} never opened"
        self.threads.add(threading.current_thread().name)
        self.written.append(job)
        outcome = self.results.get(job, True)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def test_results_come_back_in_submission_order_and_only_when_done():
    write = GatedWrite(results={"b": False})
    pipeline = InsertPipeline(write, max_in_flight=3)
    for job in "abc":
        pipeline.submit(job)
    assert pipeline.finished() == []
    write.gate("b").set()  # b is done first, but a (older) is not: nothing is handed back yet
    write.gate("c").set()
    assert pipeline.finished() == []
    write.gate("a").set()
    assert pipeline.wait_all() == [("a", True), ("b", False), ("c", True)]
    assert write.written == ["a", "b", "c"]  # one writer: jobs run in order
    assert write.threads == {"pistats-insert"}
    assert len(pipeline) == 0


def test_submit_waits_while_max_in_flight_jobs_are_unfinished():
    write = GatedWrite()
    pipeline = InsertPipeline(write, max_in_flight=1)
    pipeline.submit("a")
    submitted = threading.Event()
    second = threading.Thread(target=lambda: (pipeline.submit("b"), submitted.set()))
    second.start()
    assert not submitted.wait(0.2)  # "a" is still running: the second batch waits
    write.gate("a").set()
    assert submitted.wait(5)
    second.join()
    write.gate("b").set()
    assert pipeline.wait_all() == [("a", True), ("b", True)]


def test_an_unexpected_error_is_raised_where_results_are_collected():
    write = GatedWrite(results={"a": RuntimeError("bug in the write")})
    pipeline = InsertPipeline(write, max_in_flight=1)
    pipeline.submit("a")
    write.gate("a").set()
    with pytest.raises(RuntimeError, match="bug in the write"):
        pipeline.wait_all()


def test_inline_mode_writes_in_the_callers_thread_at_submit():
    write = GatedWrite(results={"b": False})
    for job in "ab":
        write.gate(job).set()
    pipeline = InsertPipeline(write, max_in_flight=0)
    pipeline.submit("a")
    assert write.written == ["a"]
    pipeline.submit("b")
    assert pipeline.finished() == [("a", True), ("b", False)]
    assert write.threads == {threading.current_thread().name}


def test_the_writer_thread_ends_with_its_pipeline():
    write = GatedWrite()
    write.gate("a").set()
    pipeline = InsertPipeline(write, max_in_flight=1)
    pipeline.submit("a")
    assert pipeline.wait_all() == [("a", True)]
    thread = pipeline._thread
    del pipeline
    gc.collect()
    thread.join(5)
    assert not thread.is_alive()


def test_max_in_flight_must_not_be_negative():
    with pytest.raises(ValueError):
        InsertPipeline(lambda job: True, max_in_flight=-1)
