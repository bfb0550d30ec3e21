"""A spout subprocess driven as Storm's ShellSpout drives it: `streamparse_run` speaking multilang
JSON over stdin/stdout (handshake, activate, next, ack, fail; each answered with sync). Used by
the spout's unit and integration tests and by benchmarks/spout_emit.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pistats.wire import unpack, unpack_rows

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


class MultilangSpout:
    """A spout subprocess and the Storm side of the multilang protocol."""

    def __init__(self, target: str, conf: dict, *, task_id: int = 1, tasks: int = 1, pythonpath=(), env=None):
        # The project root too: test modules used as targets import tests.support.
        path = os.pathsep.join([str(ROOT / "src"), str(ROOT), *map(str, pythonpath)])
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "streamparse_run"), target], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            cwd=ROOT, env={**os.environ, **(env or {}), "PYTHONPATH": path})
        self._pid_dir = tempfile.mkdtemp(prefix="spout-pids-")
        components = {str(t): "kinesis" for t in range(1, tasks + 1)}
        self.send({"conf": conf, "context": {"taskid": task_id, "componentid": "kinesis",
                                             "task->component": {**components, str(tasks + 1): "__acker"}},
                   "pidDir": self._pid_dir})
        self.pid = self.read()["pid"]

    def send(self, message: dict) -> None:
        self.proc.stdin.write(json.dumps(message).encode() + b"\nend\n")
        self.proc.stdin.flush()

    def read(self) -> dict:
        lines = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise EOFError(f"spout exited with {self.proc.wait()}")
            if line == b"end\n":
                return json.loads(b"".join(lines))
            lines.append(line)

    def command(self, name: str, **fields) -> list[dict]:
        """Send one command; return the emits it caused (logs skipped) once the spout syncs."""
        self.send({"command": name, **fields})
        emits = []
        while True:
            message = self.read()
            if message.get("command") == "sync":
                return emits
            if message.get("command") == "emit":
                emits.append(message)

    def next_until(self, count: int, max_calls: int = 500) -> list[dict]:
        """Call next until emits holding ``count`` records (or dead letters) arrived (the spout
        fetches in the background)."""
        emits: list[dict] = []
        for _ in range(max_calls):
            emits += self.command("next")
            if sum(len(rows_of(emit)) for emit in emits) >= count:
                return emits
            time.sleep(0.01)  # Storm's ShellSpout idles between empty nexts too
        return emits

    def close(self) -> None:
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


def rows_of(emit: dict) -> list:
    """The records of a batch tuple (``RECORD_TUPLE_FIELDS`` lists) or the dead letters of a rejects tuple."""
    if emit.get("stream") == "rejects":
        return unpack_rows(emit["tuple"][-1])
    return unpack(emit["tuple"][-1])


def records_of(emits: list[dict]) -> list[list]:
    return [record for emit in emits if emit.get("stream") != "rejects" for record in rows_of(emit)]
