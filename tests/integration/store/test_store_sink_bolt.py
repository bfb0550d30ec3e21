"""The sink bolt through the multilang protocol (JSON messages ending in ``\\nend\\n``), with ticks."""

import json
import sys
import time
from io import BytesIO

import pytest
from tests.support.samples import make_event, make_reject

from bolts.sink import StoreSinkBolt
from pistats.store.backends import open_store
from pistats.wire import pack_rows


def frame(message) -> bytes:
    return (json.dumps(message) + "\nend\n").encode("utf-8")


def tuple_message(tuple_id, rows, stream="default", component="sessions"):
    """A batch tuple: one field, its rows packed (events, or rejects on ``rejects``)."""
    return {"id": tuple_id, "comp": component, "stream": stream, "task": 7, "tuple": [pack_rows(rows)]}


def tick(tuple_id):
    return {"id": tuple_id, "comp": "__system", "stream": "__tick", "task": -1, "tuple": [1]}


def heartbeat():
    return {"id": "hb", "comp": "__system", "stream": "__heartbeat", "task": -1, "tuple": []}


def in_process(bolt):
    """pystorm ends a component with os._exit() when the process has other threads (here: any
    other test's server or client threads), which would end pytest itself; within a test the
    end must be the SystemExit that pystorm uses otherwise."""
    bolt._exit = sys.exit
    return bolt


def run_bolt(messages, conf, tmp_path):
    handshake = {"conf": conf, "context": {"taskid": 7, "componentid": "store_sink"}, "pidDir": str(tmp_path)}
    stdin = BytesIO(b"".join(frame(message) for message in [handshake, *messages]))
    stdout = BytesIO()
    bolt = in_process(StoreSinkBolt(input_stream=stdin, output_stream=stdout, rdb_signal=None))
    with pytest.raises(SystemExit):  # pystorm exits when Storm (here: the input) goes away
        bolt.run()
    replies = [json.loads(chunk) for chunk in stdout.getvalue().decode("utf-8").split("\nend\n") if chunk.strip()]
    return replies


def test_bolt_acks_after_size_and_tick_flushes(store_url, tmp_path):
    # A microsecond age limit: every tick (which arrives right after the tuples here) flushes.
    conf = {"pistats.store.url": store_url, "pistats.sink": {"max_rows": 3, "max_age_s": 1e-6}, "topology.name": "t"}
    messages = [
        tuple_message("e0", [make_event(0)]),
        tuple_message("e1", [make_event(1)]),
        heartbeat(),
        tuple_message("e2", [make_event(2)]),  # third row: size flush
        tuple_message("e3", [make_event(3)]),
        tuple_message("r0", [make_reject(0)], stream="rejects", component="parse"),
        tuple_message("bad", [make_event(4, event_time="garbage")]),
        tick("tick-1"),  # age flush of e3, r0 and the sink's reject for "bad"
        tuple_message("e3-again", [make_event(3)]),  # a replay of e3
        tick("tick-2"),
        tuple_message("e5-e9", [make_event(n) for n in range(5, 10)]),  # one batch tuple over two inserts
        tick("tick-3"),
    ]
    replies = run_bolt(messages, conf, tmp_path)
    assert "pid" in replies[0]
    commands = [(reply.get("command"), reply.get("id")) for reply in replies[1:]]
    acked = [tuple_id for command, tuple_id in commands if command == "ack"]
    assert [command for command, _ in commands if command not in ("ack", "sync", "log")] == []
    assert ("sync", None) in commands  # the heartbeat was answered
    assert acked[:3] == ["e0", "e1", "e2"]
    assert sorted(acked[3:6]) == ["bad", "e3", "r0"]
    assert acked[6:] == ["tick-1", "e3-again", "tick-2", "e5-e9", "tick-3"]  # ticks acked too: ShellBolt holds them
    store = open_store(store_url, env={})
    try:
        events = store.query(f"SELECT event_id, count() FROM {store.database}.events FINAL GROUP BY event_id ORDER BY event_id")
        rejects = store.query(f"SELECT stage, reason FROM {store.database}.events_rejected FINAL ORDER BY stage")
    finally:
        store.close()
    assert events == [(f"ev-{n}", 1) for n in range(10) if n != 4]
    assert rejects == [("parse", "bad_json"), ("sink", "schema")]


def test_bolt_fails_tuples_when_the_store_stays_down(server_store_url, tmp_path):
    """The events table vanishes after startup: every insert fails on the server, the bolt fails
    the batch's tuples once the retry budget is spent (and well before Storm's heartbeat timeout)."""
    conf = {
        "pistats.store.url": server_store_url,
        "pistats.sink": {"max_rows": 2, "retry_budget_s": 0.3, "backoff_initial_s": 0.1, "backoff_max_s": 0.1},
    }
    store = open_store(server_store_url, env={})

    class TableDroppingBolt(StoreSinkBolt):
        def initialize(self, storm_conf, context):
            super().initialize(storm_conf, context)  # creates the schema
            store.execute(f"DROP TABLE {store.database}.events")

    handshake = {"conf": conf, "context": {"taskid": 7, "componentid": "store_sink"}, "pidDir": str(tmp_path)}
    # The tick waits for the insert the second tuple started on the writer thread.
    messages = [handshake, tuple_message("e0", [make_event(0)]), tuple_message("e1", [make_event(1)]), tick("t")]
    stdout = BytesIO()
    bolt = in_process(TableDroppingBolt(input_stream=BytesIO(b"".join(map(frame, messages))), output_stream=stdout,
                                        rdb_signal=None))
    started = time.monotonic()
    with pytest.raises(SystemExit):
        bolt.run()
    elapsed = time.monotonic() - started
    store.close()
    replies = [json.loads(chunk) for chunk in stdout.getvalue().decode().split("\nend\n") if chunk.strip()]
    commands = [(reply["command"], reply["id"]) for reply in replies[1:] if reply.get("command") != "log"]
    assert commands == [("fail", "e0"), ("fail", "e1"), ("ack", "t")]
    assert elapsed < 5
