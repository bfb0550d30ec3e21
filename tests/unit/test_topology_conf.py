"""Every shipped environment decodes: config.json's options over the topology's own config, plus
the options `pistats demo` passes with `sparse run -o`, through each component's factory."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from pistats.demo.runner import DemoRun, options_for
from pistats.enrich.chain import EnrichConfig
from pistats.kinesis.config import KinesisConfig
from pistats.store.config import SinkConfig, StoreURL
from pistats.store.sink import check_heartbeat_budget
from storm_compat.sparse import resolve_tasks_per_env

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS = json.loads((ROOT / "config.json").read_text())["envs"]


def enrichment_topology():
    spec = importlib.util.spec_from_file_location("enrichment_topology", ROOT / "topologies" / "enrichment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Enrichment


def topology_config() -> dict:
    return dict(enrichment_topology().config)


def demo_options() -> dict:
    """What `sparse run -o key=value` hands the topology: each value read as YAML."""
    options = options_for(DemoRun.new("chdb:///tmp/pistats-demo"), "redis://127.0.0.1:6379/0", "http://127.0.0.1:4567")
    return {key: yaml.safe_load(str(value)) for key, value in options.items()}


@pytest.mark.parametrize("env", sorted(ENVIRONMENTS))
def test_every_environment_decodes(env):
    conf = {**topology_config(), **ENVIRONMENTS[env].get("options", {}), **demo_options()}
    kinesis = KinesisConfig.from_topology_conf(conf)
    assert kinesis.stream.startswith("pistats-demo-")
    sink = SinkConfig.from_topology_conf(conf)
    assert sink == SinkConfig()
    enrich = EnrichConfig.from_topology_conf(conf)
    assert enrich.sessions.key_prefix.endswith(":sessions")
    for url in (StoreURL.from_topology_conf(conf, {}), StoreURL.parse("clickhouse://default@127.0.0.1:9000/pistats")):
        check_heartbeat_budget(sink, url, conf)  # a sink flush never outlasts Storm's heartbeat timeout


def enrich_tasks(env: str) -> int:
    """The enrich bolt's tasks in ``env`` as ``sparse`` submits them (storm_compat.sparse): its
    ``topology.tasks`` there, else as many as its parallelism."""
    topology = enrichment_topology()
    resolve_tasks_per_env(topology, env)
    enrich = {component.name: component for component in topology.specs}["enrich"]
    return json.loads(enrich.config).get("topology.tasks") or enrich.par[env]


@pytest.mark.parametrize("env", sorted(ENVIRONMENTS))
def test_every_environment_sizes_its_micro_batches_to_the_enrich_bolt(env):
    """Two buckets of users per enrich task (the fields grouping gives every task its share), and
    polls large enough that a tuple holds a few hundred records under load (each tuple costs the
    bolts a fixed share: benchmarks/tuple_size.py)."""
    kinesis = KinesisConfig.from_topology_conf({**topology_config(), **ENVIRONMENTS[env].get("options", {}),
                                                "pistats.kinesis.stream": "events"})
    assert kinesis.buckets == 2 * enrich_tasks(env)
    assert min(kinesis.emit_batch // kinesis.buckets, kinesis.batch_records) >= 200


def test_topology_conf_factories_read_only_their_own_keys():
    assert SinkConfig.from_topology_conf({"pistats.sink": {"max_rows": 10}, "topology.workers": 2}).max_rows == 10
    assert StoreURL.from_topology_conf({}, {"PISTATS_STORE_URL": "chdb:///data/x"}).path == "/data/x"
    assert StoreURL.from_topology_conf({"pistats.store.url": "chdb:///a"}, {"PISTATS_STORE_URL": "chdb:///b"}).path == "/a"
    assert EnrichConfig.from_topology_conf({"pistats.enrich": '{"device": {"cache_size": 3}}'}).device.cache_size == 3
    assert EnrichConfig.from_topology_conf({"pistats.redis.url": "redis://x"}) == EnrichConfig()


def test_the_multilang_serializer_named_is_compiled_into_the_jar():
    """The class the topology names is one project.clj compiles from jvm/ (a missing class stops
    every Python component at launch)."""
    name = topology_config()["topology.multilang.serializer"]
    assert (ROOT / "jvm" / (name.replace(".", "/") + ".java")).is_file()
    assert ':java-source-paths ["jvm"]' in (ROOT / "project.clj").read_text()
