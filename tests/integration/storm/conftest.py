"""Real Storm: `sparse run` (LocalCluster) and `sparse submit` to the single-node cluster.

Commands run exactly as a user types them, from the project root, with the project's
virtualenv first on PATH (that is where `sparse` and `storm` live).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pistats.localenv.paths import project_root

ROOT = project_root()
BIN = Path(sys.executable).parent


def storm_env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "LEIN_ROOT": "1"}


def sparse(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `sparse ARGS` to completion; fail the test with its output if it fails."""
    result = subprocess.run(
        ["sparse", *args], cwd=ROOT, env=storm_env(), capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        pytest.fail(f"sparse {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


class RunningTopology:
    """`sparse run` in the background, stopped (with its LocalCluster and Python children) on exit."""

    def __init__(self, *args: str, log: Path):
        self.log = log
        self.process = subprocess.Popen(
            ["sparse", *args], cwd=ROOT, env=storm_env(), stdout=open(log, "wb"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_until(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            if self.process.poll() is not None:
                pytest.fail(f"sparse run exited with {self.process.returncode} before {what}:\n{self.log.read_text()[-4000:]}")
            time.sleep(0.5)
        pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}:\n{self.log.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture
def sparse_run(tmp_path):
    started: list[RunningTopology] = []

    def start(*args: str) -> RunningTopology:
        topology = RunningTopology("run", *args, log=tmp_path / f"sparse-run-{len(started)}.log")
        started.append(topology)
        return topology

    yield start
    for topology in started:
        topology.stop()


@pytest.fixture
def sparse_cli():
    """Runs `sparse ARGS` to completion (failing the test if it fails)."""
    return sparse
