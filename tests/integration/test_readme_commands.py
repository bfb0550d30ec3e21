"""README.md's "Running the topology yourself", run as a new user runs it.

The commands are read from the section itself (its ``bash`` blocks, a trailing backslash
continuing a line, and the ``pistats ...`` code spans of its prose), and each one run here is
asserted to appear in README.md verbatim. They run through bash from the project root, as typed,
after the section's ``export`` lines, with no ``AWS_*`` variable in the environment and a HOME
without ``~/.aws``: a user with no AWS credentials at all, against kinesis-local. Three
placeholders are filled in as a user fills them in: ``DIR`` (a small generated recording; after
``--out``, a new directory), ``my-stream`` (a stream of this test only, deleted afterwards) and
kinesis-local's URL (the suite's; the README's by default).

Not run here: ``sparse`` and ``storm`` (a real topology takes minutes; tests/integration/storm
and tests/integration/e2e run ``sparse run`` and ``sparse submit`` themselves): the options of
the section's ``sparse run`` line are checked instead (a valid Kinesis configuration, reading
the stream and endpoint the ``pistats replay`` line fills). ``pistats services`` (the suite's
services are already running), ``pistats ingest-server`` (a server that runs until stopped;
tests/integration/ingest covers it) and ``pistats demo`` (tests/integration/demo) are not run
either. A command of any other kind fails the test until it is run or explained here.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from pistats.generate import GenerateConfig, generate
from pistats.kinesis import admin
from pistats.kinesis.client import make_kinesis_client
from pistats.kinesis.config import KinesisConfig

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SECTION = "## Running the topology yourself"
README_ENDPOINT = "http://127.0.0.1:4567"
README_STREAM = "my-stream"
EVENTS = 200

NOT_RUN = {
    "sparse": "Storm: tests/integration/storm and tests/integration/e2e run it",
    "storm": "Storm: tests/integration/storm and tests/integration/e2e run it",
    "pistats services": "the suite's services are already running",
    "pistats ingest-server": "a server that runs until stopped (tests/integration/ingest)",
    "pistats demo": "tests/integration/demo runs it",
}
# Commands that read what an earlier one wrote run after it, whatever the README's order.
ORDER = ("generate", "replay", "record", "enrich", "store", "report")


@dataclass(frozen=True)
class Command:
    lines: tuple[str, ...]  # as written in README.md (a continued command has several)

    @property
    def text(self) -> str:
        return " ".join(line.rstrip("\\").strip() for line in self.lines)

    @property
    def words(self) -> list[str]:
        return shlex.split(self.text)


def section() -> str:
    text = README.read_text()
    assert SECTION in text, f"README.md has no section {SECTION!r}"
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start:end if end != -1 else len(text)]


def commands(text: str) -> list[Command]:
    """Every command of the section, as written, in the order it comes."""
    found: list[Command] = []
    in_block = False
    pending: list[str] = []
    for line in text.splitlines():
        if line.startswith("```"):
            in_block = not in_block
            continue
        if in_block:
            code = re.sub(r"\s+#\s.*$", "", line)
            if not code.strip() or code.lstrip().startswith("#"):
                continue
            pending.append(code)
            if not code.rstrip().endswith("\\"):
                found.append(Command(tuple(pending)))
                pending = []
        else:
            found.extend(Command((span,)) for span in re.findall(r"`(pistats [^`]+)`", line))
    return list(dict.fromkeys(found))


def not_run_reason(command: Command) -> str | None:
    words = command.words
    for prefix, reason in NOT_RUN.items():
        if words[:len(prefix.split())] == prefix.split():
            return reason
    return None


def fill_in(text: str, *, recording: Path, out: Path, stream: str, endpoint: str) -> str:
    text = re.sub(r"--out\s+DIR\b", f"--out {shlex.quote(str(out))}", text)
    text = re.sub(r"\bDIR\b", shlex.quote(str(recording)), text)
    text = re.sub(rf"(?<![\w.-]){re.escape(README_STREAM)}(?![\w.-])", stream, text)
    return text.replace(README_ENDPOINT, endpoint)


def topology_options(command: Command) -> dict[str, str]:
    words = command.words
    return dict(words[i + 1].split("=", 1) for i, word in enumerate(words[:-1]) if word == "-o")


@pytest.fixture
def stream(kinesis_endpoint, unique_name):
    yield unique_name
    admin.delete_stream(make_kinesis_client(kinesis_endpoint), unique_name)


def user_env(home: Path) -> dict[str, str]:
    """A user with the project's virtualenv on PATH and no AWS configuration at all."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env["HOME"] = str(home)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def stored_records(client, stream_name: str) -> int:
    count = 0
    for shard in admin.list_all_shards(client, stream_name):
        iterator = client.get_shard_iterator(StreamName=stream_name, ShardId=shard["ShardId"],
                                             ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            response = client.get_records(ShardIterator=iterator, Limit=10_000)
            count += len(response["Records"])
            if not response["Records"] and response.get("MillisBehindLatest", 0) == 0:
                break
            iterator = response.get("NextShardIterator")
    return count


def test_the_section_has_commands_each_verbatim_in_the_readme():
    found = commands(section())
    assert found
    readme = README.read_text()
    for command in found:
        for line in command.lines:
            assert line in readme


def test_the_readme_commands_run_as_written_without_aws_credentials(kinesis_endpoint, stream, tmp_path):
    found = commands(section())
    unknown = [c.text for c in found if not_run_reason(c) is None and c.words[0] not in ("pistats", "export")]
    assert not unknown, f"README commands this test neither runs nor explains: {unknown}"
    to_run = sorted((c for c in found if c.words[0] == "pistats" and not_run_reason(c) is None),
                    key=lambda c: ORDER.index(c.words[1]) if c.words[1] in ORDER else len(ORDER))
    replays = [c for c in to_run if c.words[1] == "replay"]
    assert replays, "the section shows no `pistats replay` line to make its stream"
    assert any(README_ENDPOINT in c.text for c in replays), (
        f"the section's replay lines go to AWS, not to the kinesis-local its `sparse run` reads: "
        f"{[c.text for c in replays]}; a local replay names `--endpoint-url {README_ENDPOINT}`")

    recording = tmp_path / "recording"
    generate(GenerateConfig(events=EVENTS, shards=2, seed=14, bad_fraction=0, duplicate_fraction=0), recording)
    home = tmp_path / "home"
    home.mkdir()
    env = user_env(home)
    exports = [c.text for c in found if c.words[0] == "export"]
    for number, command in enumerate(to_run):
        text = fill_in(command.text, recording=recording, out=tmp_path / f"out-{number}", stream=stream,
                       endpoint=kinesis_endpoint)
        result = subprocess.run(["bash", "-c", "\n".join([*exports, text])], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (f"README command failed ({result.returncode}):\n  {command.text}\nran as\n"
                                        f"  {text}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        assert "Unable to locate credentials" not in result.stdout + result.stderr

    assert stored_records(make_kinesis_client(kinesis_endpoint), stream) == EVENTS

    for command in found:
        if command.words[:2] == ["sparse", "run"]:
            options = topology_options(command)
            config = KinesisConfig.from_topology_conf(options)
            assert (config.stream, config.endpoint_url) == (README_STREAM, README_ENDPOINT)
