"""The ``sparse`` command: streamparse 5.0.1's CLI, adapted to Storm 2.x (see the package docstring).

Five functions of streamparse are replaced, each through its module attribute and only inside
this process; nothing in site-packages is edited:

* ``streamparse.cli.run.local`` (fabric's ``local``), so the Storm 1.x ``storm jar ... Flux --local``
  invocation of ``sparse run`` becomes Storm 2's ``storm local``;
* ``streamparse.cli.run.storm_lib_version``, so the version check reads ``storm-client``;
* ``streamparse.util.get_config``, so a relative ``virtualenv_root`` or ``log.path`` in config.json
  means a folder of the project (config.json is always read from the project directory) rather
  than one under the worker's changing working directory. Absolute paths, as production
  clusters use, are untouched;
* ``get_env_config`` and ``get_topology_from_file`` of ``streamparse.cli.run`` and
  ``streamparse.cli.submit``, so a component's ``topology.tasks`` may be given per environment
  like its ``par`` (``{"local": 1, "cluster": 4}``): ``storm rebalance`` can raise a component's
  executors only up to its tasks, and each task of a Python component is a process of its own,
  so the room to rebalance into is chosen per environment.
"""

from __future__ import annotations

import re
import shlex
import sys

FLUX_MAIN = "org.apache.storm.flux.Flux"
FOREVER_MILLIS = 9223372036854775807  # what `sparse run` passes for "run until interrupted"


def storm2_local_command(command: str) -> str:
    """Rewrite ``storm jar JAR org.apache.storm.flux.Flux --local ... --sleep T YAML`` for Storm 2.

    streamparse passes its ``-t/--time`` (seconds) as Flux's ``--sleep``; ``T <= 0`` arrives as
    Long.MAX_VALUE, meaning forever. Storm 2 keeps a local topology alive for ``--local-ttl``
    seconds; 0 means forever in :mod:`storm_compat.launcher`. Any other command is returned as is.
    """
    words = shlex.split(command)
    if len(words) < 4 or words[:2] != ["storm", "jar"] or words[3] != FLUX_MAIN or "--local" not in words:
        return command
    jar = words[2]
    flux_args = [word for word in words[4:] if word != "--local"]
    ttl = 0
    if "--sleep" in flux_args:
        index = flux_args.index("--sleep")
        seconds = int(flux_args[index + 1])
        del flux_args[index:index + 2]
        ttl = 0 if seconds >= FOREVER_MILLIS else seconds
    return shlex.join(["storm", "local", "--local-ttl", str(ttl), jar, FLUX_MAIN, *flux_args])


STORM_CLIENT_PATTERN = re.compile(r'\[org\.apache\.storm/storm-client "([^"]+)"')


def storm_client_version(deps_tree: str) -> str:
    """The storm-client version in ``lein deps :tree`` output (which prints scope and exclusions)."""
    versions = set(STORM_CLIENT_PATTERN.findall(deps_tree))
    if len(versions) != 1:
        raise RuntimeError(
            "project.clj must depend on exactly one org.apache.storm/storm-client version, "
            f"found {sorted(versions) or 'none'}"
        )
    return versions.pop()


def resolve_project_paths(config: dict, project_dir: str) -> dict:
    """Make each env's relative ``virtualenv_root`` and ``log.path`` absolute, against the project
    directory, and create those log folders (pystorm expects them to exist)."""
    import os

    def absolute(path: str) -> str:
        return os.path.normpath(os.path.join(project_dir, path))

    for env_config in config.get("envs", {}).values():
        root = env_config.get("virtualenv_root")
        if root and not os.path.isabs(root):
            env_config["virtualenv_root"] = absolute(root)
        log = env_config.get("log", {})
        if log.get("path") and not os.path.isabs(log["path"]):
            log["path"] = absolute(log["path"])
            os.makedirs(log["path"], exist_ok=True)
    return config


def resolve_tasks_per_env(topology_class, env_name: str) -> None:
    """Replace each component's per-environment ``topology.tasks`` (a dict of environment names)
    by its value for ``env_name``; without one, the key is dropped (Storm then makes as many tasks
    as the parallelism hint)."""
    import json

    for spec in topology_class.specs:
        conf = json.loads(spec.config)
        tasks = conf.get("topology.tasks")
        if not isinstance(tasks, dict):
            continue
        if tasks.get(env_name) is None:
            del conf["topology.tasks"]
        else:
            conf["topology.tasks"] = tasks[env_name]
        spec.config = spec.common.json_conf = json.dumps(conf)


def install() -> None:
    """Apply the three adaptations of the module docstring (idempotent)."""
    from fabric.api import hide, local, settings
    from pkg_resources import parse_version
    import os

    from streamparse import util
    from streamparse.cli import run, submit

    if getattr(run, "_pistats_storm2", False):
        return
    chosen: dict[str, str] = {}

    def storm2_local(command, *args, **kwargs):
        return local(storm2_local_command(command), *args, **kwargs)

    def storm_lib_version():
        with hide("running"), settings(warn_only=True):
            result = local("lein deps :tree", capture=True)
        if not result.succeeded:
            raise RuntimeError(f"Unable to run 'lein deps :tree'!\n{result.stdout}\n{result.stderr}")
        return parse_version(storm_client_version(result.stdout))

    read_config = util.get_config

    def get_config(config_file=None):
        return resolve_project_paths(read_config(config_file), os.getcwd())

    util.get_config = get_config
    for module in (run, submit):
        # Both commands read the environment, then the topology: remember the one, resolve the other.
        def env_config(*args, _read=module.get_env_config, **kwargs):
            env_name, env_config = _read(*args, **kwargs)
            chosen["env"] = env_name
            return env_name, env_config

        def topology_from_file(*args, _read=module.get_topology_from_file, **kwargs):
            topology_class = _read(*args, **kwargs)
            resolve_tasks_per_env(topology_class, chosen["env"])
            return topology_class

        module.get_env_config = env_config
        module.get_topology_from_file = topology_from_file
    run.local = storm2_local
    run.storm_lib_version = storm_lib_version
    run._pistats_storm2 = True


def main() -> int:
    install()
    from streamparse.cli.sparse import main as sparse_main

    return sparse_main() or 0


if __name__ == "__main__":
    sys.exit(main())
