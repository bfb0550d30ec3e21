"""A component's ``topology.tasks`` given per environment (storm_compat.sparse.resolve_tasks_per_env)."""

import importlib.util
import json
from pathlib import Path

import pytest

from storm_compat.sparse import resolve_tasks_per_env

ROOT = Path(__file__).resolve().parents[3]


def enrichment_topology():
    spec = importlib.util.spec_from_file_location("enrichment_topology_tasks", ROOT / "topologies" / "enrichment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Enrichment


@pytest.mark.parametrize("env, tasks", [("cluster", 4), ("local", None), ("prod", None)])
def test_the_enrich_bolt_has_room_to_rebalance_in_the_cluster_environment(env, tasks):
    topology = enrichment_topology()
    resolve_tasks_per_env(topology, env)
    specs = {spec.name: spec for spec in topology.specs}
    conf = json.loads(specs["enrich"].config)
    assert conf.get("topology.tasks") == tasks
    assert specs["enrich"].common.json_conf == specs["enrich"].config  # what `sparse submit` sends
    assert json.loads(specs["sink"].config)["topology.tick.tuple.freq.secs"] == 1  # other settings kept
