"""The command line names problems by their flags, in one line, with the usual exit codes; the
library below it names its own settings (pistats.errors.ConfigError) and knows no flag."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pistats.cli.main import main as pistats


def run(capsys, *argv: str) -> tuple[int, str]:
    code = pistats(list(argv))
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["generate", "--events", "100", "--skewed-months", "150"], "pistats generate: --events too small for --skewed-months\n"),
        (["generate", "--events", "100", "--bad-fraction", "0.5", "--duplicate-fraction", "0.5"],
         "pistats generate: --bad-fraction plus --duplicate-fraction must stay below 0.9\n"),
        (["generate", "--events", "0"], "pistats generate: --events must be at least 1\n"),
        (["record", "--stream", "s", "--from", "timestamp"], "pistats record: --from timestamp needs --timestamp\n"),
        (["record", "--stream", "s", "--max-records", "0"], "pistats record: --max-records must be at least 1\n"),
        (["record", "--stream", "s", "--until-idle", "-1"], "pistats record: --until-idle must not be negative\n"),
    ],
)
def test_a_setting_is_named_by_its_flag(tmp_path, capsys, argv, message):
    code, err = run(capsys, *argv, "--out", str(tmp_path / "out"), "--no-progress")
    assert (code, err) == (2, message)
    assert not (tmp_path / "out").exists()


def test_replay_checks_its_speed_before_reading_the_recording(tmp_path, capsys):
    assert run(capsys, "replay", str(tmp_path / "missing"), "--stream", "s", "--speed", "0") == (
        2, "pistats replay: --speed must be positive\n")


def test_an_existing_recording_needs_force(tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    code, err = run(capsys, "generate", "--out", str(out), "--events", "10", "--no-progress")
    assert (code, err) == (2, f"pistats generate: {out}: already exists (pass --force to replace it)\n")


def test_a_bad_store_url_is_a_usage_error_without_the_password(capsys):
    code, err = run(capsys, "report", "--store", "mysql://alice:hunter2@host/db")
    assert code == 2 and err.startswith("pistats report: store URL ") and err.count("\n") == 1
    assert "hunter2" not in err


def test_an_unknown_service_is_a_usage_error(capsys):
    code, err = run(capsys, "services", "status", "nosuch")
    assert code == 2 and err.startswith("pistats services: service 'nosuch' is unknown; choose from ")


def test_a_data_error_names_file_and_exits_1(tmp_path, capsys):
    (tmp_path / "r").mkdir()
    code, err = run(capsys, "replay", str(tmp_path / "r"), "--stream", "s")
    assert (code, err) == (1, f"pistats replay: {tmp_path / 'r'}: no manifest.json: not a recording (or an incomplete one)\n")


def test_an_unreachable_store_is_one_line_without_a_traceback():
    """Run as a user runs it: a child process, so no test harness catches the library's logs."""
    result = subprocess.run([sys.executable, "-m", "pistats.cli.main", "report", "--store",
                             "clickhouse://default@127.0.0.1:1/nowhere"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr and "127.0.0.1:1" in result.stderr
