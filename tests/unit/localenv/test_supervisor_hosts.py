"""The local Storm cluster's supervisors: one on 127.0.0.1, or several standing in for hosts."""

import pytest
import yaml

from pistats.errors import ConfigError
from pistats.localenv.services import (
    STORM_TIMEOUTS,
    Ports,
    render_storm_yaml,
    resolve,
    service_groups,
    storm_supervisor_count,
    supervisor_hosts,
)


def test_one_supervisor_is_the_single_node_cluster_on_127_0_0_1():
    (host,) = supervisor_hosts(1, Ports())
    assert (host.name, host.hostname, host.slots, host.thrift_port) == ("storm-supervisor", "127.0.0.1",
                                                                          (6700, 6701), 6628)


def test_several_supervisors_have_their_own_address_slots_port_and_dirs():
    hosts = supervisor_hosts(2, Ports())
    assert [(h.name, h.hostname, h.slots, h.thrift_port) for h in hosts] == [
        ("storm-supervisor-1", "127.0.0.2", (6700, 6701), 6628),
        ("storm-supervisor-2", "127.0.0.3", (6702, 6703), 6629),
    ]
    assert len({h.conf_dir for h in hosts}) == len({h.local_dir for h in hosts}) == len({h.log_dir for h in hosts}) == 2


def test_storm_yaml_of_a_host():
    host = supervisor_hosts(2, Ports())[1]
    conf = yaml.safe_load(render_storm_yaml(Ports(), host.hostname, host.local_dir, host.slots, host.thrift_port))
    assert conf["storm.local.hostname"] == "127.0.0.3"
    assert conf["supervisor.slots.ports"] == [6702, 6703]
    assert conf["supervisor.thrift.port"] == 6629
    assert conf["storm.local.dir"] == str(host.local_dir)
    assert conf["nimbus.seeds"] == ["127.0.0.1"]
    assert {key: conf[key] for key in STORM_TIMEOUTS} == STORM_TIMEOUTS


def test_the_storm_group_follows_the_count():
    assert service_groups(1)["storm"] == ["zookeeper", "storm-nimbus", "storm-supervisor"]
    assert service_groups(2)["storm"] == ["zookeeper", "storm-nimbus", "storm-supervisor-1", "storm-supervisor-2"]
    assert resolve(["storm"], 2)[-1] == "storm-supervisor-2"


@pytest.mark.parametrize("raw, count", [("", 1), ("1", 1), ("2", 2), (" 3 ", 3)])
def test_supervisor_count_setting(raw, count):
    assert storm_supervisor_count({"PISTATS_STORM_SUPERVISORS": raw}) == count


@pytest.mark.parametrize("raw", ["0", "9", "two", "-1"])
def test_a_bad_supervisor_count_names_the_setting(raw):
    with pytest.raises(ConfigError, match="PISTATS_STORM_SUPERVISORS"):
        storm_supervisor_count({"PISTATS_STORM_SUPERVISORS": raw})
