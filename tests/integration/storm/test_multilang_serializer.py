"""pistats.multilang.FastJsonSerializer against Storm's own JsonSerializer, side by side in one JVM
(tests/jvm/MultilangProtocolCheck.java): what the Python components receive parses to the same
values, and what they send becomes the same Java values (types included: the fields grouping
hashes them)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pistats.localenv.jvm import compile_with_serializer
from pistats.wire import pack


@pytest.fixture(scope="module")
def check(tmp_path_factory) -> list[str]:
    """The command that runs the check program, compiled with the serializer against Storm's jars."""
    classpath = compile_with_serializer(Path("tests/jvm/MultilangProtocolCheck.java"), tmp_path_factory.mktemp("classes"))
    return ["java", "-cp", classpath, "MultilangProtocolCheck"]


def run(command: list[str], mode: str, stdin: str) -> dict[str, list[str]]:
    out = subprocess.run([*command, mode], input=stdin.encode(), capture_output=True, check=True, timeout=120)
    lines: dict[str, list[str]] = {"storm": [], "fast": []}
    for line in out.stdout.decode().splitlines():
        name, _, value = line.partition("\t")
        lines[name].append(value)
    return lines


def messages(hex_bytes: str) -> list:
    """The multilang messages in what a serializer wrote, as a Python component reads them."""
    text = bytes.fromhex(hex_bytes).decode("utf-8")
    assert text.endswith("\nend\n")
    return [json.loads(part) for part in text[:-len("\nend\n")].split("\nend\n")]


TUPLES = [
    [7, pack([{"data": "x" * 300, "partition_key": "u-1"}] * 62)],   # a spout micro-batch
    [1, "a\"b\\c\n\r\t\b\f\u0001\u001f/\u007f\u0080\u00e9\u2028\u2029\U0001F600 end\nend"],
    [2.5, -0.0, 1e300, True, False, None, [], {}, [1, {"k": ["v", {"n": None}]}]],
    [9223372036854775807, -9223372036854775808, 12345678901234567890, 0],
    [{"nested \"key\"\n": "value", "2": 2}],
    [],
]


def test_what_the_jvm_writes_reads_back_the_same_in_python(check):
    lines = run(check, "write", "".join(json.dumps(t) + "\n" for t in TUPLES))
    assert len(lines["storm"]) == len(lines["fast"]) == len(TUPLES)
    for tup, storm, fast in zip(TUPLES, lines["storm"], lines["fast"]):
        assert messages(fast) == messages(storm)
        bolt_message, spout_message, task_ids = messages(fast)
        assert bolt_message == {"id": "-6955786537413359385", "comp": "kinesis", "stream": "default",
                                "task": 9, "tuple": json.loads(json.dumps(tup))}
        assert spout_message == {"command": "ack", "id": tup[0] if tup else None}
        assert task_ids == [3, 12, 2147483647]


def test_a_lone_surrogate_survives_where_storms_writer_replaces_it(check):
    """Python's JSON escapes a lone surrogate; Storm's writer emits it raw and the UTF-8 encoder
    turns it into '?'; the fast writer escapes it again, so the string returns as it was sent."""
    lines = run(check, "write", '["x\\ud800y", "\\udfff"]\n')
    assert messages(lines["fast"][0])[0]["tuple"] == ["x\ud800y", "\udfff"]
    assert messages(lines["storm"][0])[0]["tuple"] == ["x?y", "?"]


def test_what_python_sends_becomes_the_same_java_values(check):
    sent = [
        {"command": "emit", "tuple": [7, "records"], "id": "t-1", "need_task_ids": False},
        {"command": "emit", "tuple": [1, 2.5, None, True, [1, "x"], {"k": "v"}, 2**63 - 1, 2**70],
         "anchors": ["-1", "2"], "stream": "rejects"},
        {"command": "emit", "tuple": ["a"], "anchors": "-6955786537413359385"},
        {"command": "ack", "id": "-6955786537413359385"},
        {"command": "fail", "id": 12},
        {"command": "sync"},
        {"command": "log", "msg": "hello \u00e9\nworld", "level": 2},
        {"command": "metrics", "name": "records", "params": [3, 4.5]},
        {"command": "error", "msg": "boom"},
    ]
    stdin = "".join(json.dumps(message) + "\nend\n" for message in sent)
    stdin += "{\"command\":\n\"sync\"}\nend\n"   # a message over several lines
    lines = run(check, "read", stdin)
    assert lines["fast"] == lines["storm"]
    assert len(lines["fast"]) == len(sent) + 1
    assert lines["fast"][0].startswith("emit|String:t-1|null|default|0|false|[Integer:7,String:records,]|")
    assert "Long:9223372036854775807,BigInteger:1180591620717411303424," in lines["fast"][1]


def test_a_direct_emit_names_its_task(check):
    """json-smart reads a small "task" as an Integer, which Storm's serializer casts to Long and
    fails on; the fast one takes any whole number."""
    lines = run(check, "read", json.dumps({"command": "emit", "tuple": ["a"], "task": 4}) + "\nend\n")
    assert lines["storm"] == ["error ClassCastException"]
    assert lines["fast"] == ["emit|null|null|default|4|true|[String:a,]|null|null|null|INFO"]


def test_a_malformed_message_is_an_error_for_both(check):
    lines = run(check, "read", "{\"command\": \"emit\", \nend\n")
    assert lines["fast"] == lines["storm"] == ["error IOException"]
