"""Real Storm: `sparse run` (LocalCluster) and `sparse submit` to the single-node cluster.

Commands run exactly as a user types them, from the project root, with the project's
virtualenv first on PATH (that is where `sparse` and `storm` live).
"""

from __future__ import annotations

import subprocess
import time

import pytest

from pistats.demo.runner import LocalTopology, storm_env
from pistats.localenv.paths import project_root

ROOT = project_root()


def sparse(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `sparse ARGS` to completion; fail the test with its output if it fails."""
    result = subprocess.run(
        ["sparse", *args], cwd=ROOT, env=storm_env(), capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        pytest.fail(f"sparse {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


class RunningTopology(LocalTopology):
    """`sparse run` in the background (see LocalTopology: stopped with its whole process group)."""

    def wait_until(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            if self.process.poll() is not None:
                pytest.fail(f"sparse run exited with {self.process.returncode} before {what}:\n"
                            f"{self.log_path.read_text()[-4000:]}")
            time.sleep(0.5)
        pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}:\n{self.log_path.read_text()[-4000:]}")


@pytest.fixture
def sparse_run(tmp_path):
    started: list[RunningTopology] = []

    def start(*args: str) -> RunningTopology:
        topology = RunningTopology(["sparse", "run", *args], tmp_path / f"sparse-run-{len(started)}.log")
        started.append(topology)
        return topology

    yield start
    for topology in started:
        topology.stop()


@pytest.fixture
def sparse_cli():
    """Runs `sparse ARGS` to completion (failing the test if it fails)."""
    return sparse
