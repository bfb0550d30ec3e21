"""The two Storm 2 adaptations of `sparse`, and config path resolution (storm_compat.sparse)."""

import os

import pytest

from storm_compat.sparse import (
    FOREVER_MILLIS,
    resolve_project_paths,
    storm2_local_command,
    storm_client_version,
)

FLUX = "org.apache.storm.flux.Flux"


def test_flux_local_becomes_storm_local_with_ttl():
    command = f"storm jar /p/_build/t.jar {FLUX} --local --no-splash --sleep 25 /tmp/t.yaml"
    assert storm2_local_command(command) == (
        f"storm local --local-ttl 25 /p/_build/t.jar {FLUX} --no-splash /tmp/t.yaml"
    )


def test_run_forever_maps_to_ttl_zero():
    command = f"storm jar t.jar {FLUX} --local --no-splash --sleep {FOREVER_MILLIS} t.yaml"
    assert storm2_local_command(command) == f"storm local --local-ttl 0 t.jar {FLUX} --no-splash t.yaml"


def test_paths_with_spaces_survive_rewriting():
    command = f"storm jar '/my project/t.jar' {FLUX} --local --sleep 5 '/tmp/a b.yaml'"
    assert storm2_local_command(command) == (
        f"storm local --local-ttl 5 '/my project/t.jar' {FLUX} '/tmp/a b.yaml'"
    )


@pytest.mark.parametrize(
    "command",
    [
        "lein clean",
        f"storm jar t.jar {FLUX} --remote t.yaml",  # remote submission stays remote
        "storm jar t.jar com.example.Main --local",  # not Flux: not ours to rewrite
    ],
)
def test_other_commands_are_untouched(command):
    assert storm2_local_command(command) == command


LEIN_TREE = """
Possibly confusing dependencies found:
[org.apache.storm/storm-client "2.8.3"] -> [jakarta.activation/jakarta.activation-api "1.2.1"]
 [org.apache.storm/storm-client "2.8.3" :scope "provided"]
   [com.esotericsoftware/kryo "5.6.2" :scope "provided"]
"""


def test_storm_client_version_from_lein_tree_with_scope():
    assert storm_client_version(LEIN_TREE) == "2.8.3"


def test_storm_client_version_missing_or_ambiguous_is_an_error():
    with pytest.raises(RuntimeError, match="none"):
        storm_client_version(' [org.clojure/clojure "1.11.1"]')
    with pytest.raises(RuntimeError, match="2.8.2"):
        storm_client_version(LEIN_TREE + ' [org.apache.storm/storm-client "2.8.2"]')


def test_relative_project_paths_are_resolved_and_log_dirs_created(tmp_path):
    config = {
        "envs": {
            "cluster": {"virtualenv_root": ".pistats/venvs", "log": {"path": "logs/python"}},
            "prod": {"virtualenv_root": "/opt/pistats/virtualenvs", "log": {"path": "/var/log/x"}},
        }
    }
    resolved = resolve_project_paths(config, str(tmp_path))
    assert resolved["envs"]["cluster"]["virtualenv_root"] == str(tmp_path / ".pistats" / "venvs")
    assert resolved["envs"]["cluster"]["log"]["path"] == str(tmp_path / "logs" / "python")
    assert os.path.isdir(tmp_path / "logs" / "python")
    assert resolved["envs"]["prod"]["virtualenv_root"] == "/opt/pistats/virtualenvs"
    assert resolved["envs"]["prod"]["log"]["path"] == "/var/log/x"
