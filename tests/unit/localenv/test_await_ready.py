"""await_ready: the one wait every locally started service (and Redis Cluster node) goes through."""

import subprocess
import sys

import pytest

from pistats.errors import ServiceError
from pistats.localenv.services import await_ready


def test_returns_once_ready(tmp_path):
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        answers = iter([False, False, True])
        await_ready(process, lambda: next(answers), name="svc", log_file=tmp_path / "svc.log", timeout_s=5, poll_s=0.01)
    finally:
        process.kill()
        process.wait()


def test_a_process_that_exits_first_is_an_error_naming_its_log_and_last_line(tmp_path):
    log = tmp_path / "svc.log"
    log.write_text("starting\nbind: address already in use\n")
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait()
    with pytest.raises(ServiceError) as raised:
        await_ready(process, lambda: False, name="svc", log_file=log, timeout_s=5, poll_s=0.01)
    assert str(raised.value) == f"svc exited with code 3: bind: address already in use (see {log})"


def test_no_readiness_within_the_timeout_is_an_error(tmp_path):
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        with pytest.raises(ServiceError, match=r"^svc did not become ready within 0 s \(see .*svc.log\)$"):
            await_ready(process, lambda: False, name="svc", log_file=tmp_path / "svc.log", timeout_s=0.2, poll_s=0.01)
    finally:
        process.kill()
        process.wait()
