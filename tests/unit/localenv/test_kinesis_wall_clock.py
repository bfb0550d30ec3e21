"""kinesis-local's "now" follows the machine's wall clock after a step (scripts/node-wall-clock.js).

kinesis-mock reads the time as cats-effect does on Node, ``performance.timeOrigin +
performance.now()``. A step of the wall clock is simulated in node by moving ``Date.now``."""

import json
import shutil
import subprocess

import pytest

from pistats.localenv.paths import project_root
from pistats.localenv.services import Ports, kinesis_service

PRELOAD = project_root() / "scripts" / "node-wall-clock.js"
# Moves Date.now 5 s ahead, as a step of the machine's clock would, then reads the time both ways.
STEP = """
const monotonicBefore = performance.now();
const realNow = Date.now;
Date.now = () => realNow() + 5000;
console.log(JSON.stringify({
  emulator_minus_wall_ms: performance.timeOrigin + performance.now() - Date.now(),
  monotonic_went_on: performance.now() >= monotonicBefore,
}));
"""


def node_after_a_step(*preloads: str) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: scripts/bootstrap installs it")
    argv = [node] + [arg for preload in preloads for arg in ("--require", preload)] + ["-e", STEP]
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout)


def test_with_the_preload_the_emulators_now_is_the_wall_clock_after_a_step():
    seen = node_after_a_step(str(PRELOAD))
    assert abs(seen["emulator_minus_wall_ms"]) < 50
    assert seen["monotonic_went_on"]


def test_without_it_the_emulators_now_stays_behind_by_the_step():
    assert node_after_a_step()["emulator_minus_wall_ms"] < -4900


def test_the_kinesis_service_preloads_it():
    command = kinesis_service(Ports()).command(project_root())
    assert command[command.index(str(PRELOAD)) - 1] == "--require"
