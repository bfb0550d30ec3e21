"""What a spout running as Storm's multilang child process needs beyond pystorm: one write per
batch of emits, and a clean exit on SIGTERM.

Knows pystorm (its serializer, its writer lock), so it lives with the adapters, not in the library.
"""

import json
import os
import signal
import threading
from collections.abc import Iterable

from pystorm.exceptions import StormWentAwayError


def _serialize(message: dict) -> str:
    return json.dumps(message) + "\nend\n"


class BatchWriter:
    """Emits the tuples of one ``next_tuple`` call in one write.

    pystorm encodes each message with a fresh simplejson encoder and writes it with two flushes;
    the stdlib's cached C encoder and one write per batch of emits double the spout's throughput
    (benchmarks/spout_emit.py). Messages are the same multilang JSON; the spout's other messages
    (sync, log) go through the stdlib encoder too. With a serializer other than pystorm's JSON
    one, each tuple goes through ``spout.emit``.
    """

    def __init__(self, spout):
        self._spout = spout
        self._json = spout.serializer.__class__.__name__ == "JSONSerializer"
        if self._json:
            spout.serializer.serialize_dict = _serialize

    def emit(self, tuples: Iterable[tuple[list, str, str | None]]) -> None:
        """Emit each ``(values, tuple_id, stream)``; a ``stream`` of None is the default stream."""
        spout = self._spout
        if not self._json:
            for values, tuple_id, stream in tuples:
                spout.emit(values, tup_id=tuple_id, stream=stream)
            return
        messages = []
        for values, tuple_id, stream in tuples:
            message = {"command": "emit", "tuple": values, "id": tuple_id, "need_task_ids": False}
            if stream is not None:
                message["stream"] = stream
            messages.append(_serialize(message))
        if messages:
            with spout._writer_lock:
                try:
                    spout.serializer.output_stream.write("".join(messages))
                    spout.serializer.output_stream.flush()
                except OSError:
                    raise StormWentAwayError() from None  # as pystorm's own writes do


def start_closing_on_sigterm(consumer) -> None:
    """Start the consumer's threads; on SIGTERM, close it (a last checkpoint, the leases released,
    so the successor task starts at once instead of waiting for them to expire; a SIGKILL still
    leaves that) and exit with 128 + the signal number.

    The consumer's threads (and those they start) inherit a mask blocking SIGTERM, so it wakes
    the calling thread even while that waits for Storm's next command. The handler does not
    raise (pystorm swallows exceptions while it writes to Storm): the shutdown runs on its own
    thread, as the calling one may hold the consumer's lock at that moment.
    """

    def close_and_exit(status_code: int) -> None:
        consumer.close(2.0)
        os._exit(status_code)

    def on_sigterm(signum, frame):
        threading.Thread(target=close_and_exit, args=(128 + signum,), daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        consumer.start()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
