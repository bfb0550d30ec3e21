"""Sessions on a Redis Cluster: the chain over a generated recording assigns exactly what it
assigns on the single Redis, with a user's keys in one slot and the users spread over every
master; a replay gets the same fields; ``pistats enrich`` takes a cluster URL."""

from __future__ import annotations

import json
import uuid

import pytest
import redis as redis_lib

from pistats.cli.main import main
from pistats.enrich.chain import Chain, EnrichConfig, connect_redis
from pistats.enrich.run import records_from_recording, run_chain
from pistats.enrich.sessions import RedisSessionStore, SessionConfig
from pistats.redis_keys import delete_matching
from pistats.redisconn import key_slot

pytestmark = pytest.mark.integration

SESSION_FIELDS = ("session_id", "session_index", "session_event_index", "is_new_user", "first_seen_at")


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    out = tmp_path_factory.mktemp("recording") / "rec"
    assert main(["generate", "--out", str(out), "--events", "3000", "--reshard-at", "0.5", "--seed", "19",
                 "--no-progress"]) == 0
    return out


def sessionise(recording, client, prefix: str, wait_replicas: int = 0) -> tuple[list[tuple], int]:
    """Each event's (client, event id, session fields) in record order, and the replays counted."""
    chain = Chain.build(EnrichConfig.from_dict({"sessions": {"key_prefix": prefix}}), redis=client,
                        with_stages=False, wait_replicas=wait_replicas)
    out: list[tuple] = []
    run_chain(chain, records_from_recording(recording),
              lambda event: out.append((event["client_id"], event["event_id"], *(str(event[f]) for f in SESSION_FIELDS))),
              lambda reject: None, batch_size=500)
    return out, chain.sessions.store.replays


@pytest.fixture(scope="module")
def on_single_redis(recording, redis_url):
    client = redis_lib.Redis.from_url(redis_url)
    prefix = f"pistats-test:single-{uuid.uuid4().hex[:12]}"
    try:
        return sessionise(recording, client, prefix)[0]
    finally:
        delete_matching(client, f"{prefix}:*")
        client.close()


@pytest.mark.parametrize("wait_replicas", [0, 1])
def test_the_chain_assigns_on_a_cluster_what_it_assigns_on_one_redis(
        recording, on_single_redis, cluster_url, cluster_prefix, redis_cluster, wait_replicas):
    client = connect_redis(cluster_url)
    fields, _ = sessionise(recording, client, cluster_prefix, wait_replicas)
    assert fields == on_single_redis
    expected = json.loads((recording / "expected.json").read_text())
    assert len({row[2] for row in fields}) == expected["sessions"]
    # The users' keys landed on every master, so batches ran per node and per slot.
    per_master = {port: sum(1 for _ in redis_lib.Redis(port=port).scan_iter(match=f"{cluster_prefix}:*", count=1000))
                  for port in redis_cluster.masters()}
    assert len(per_master) == 3 and all(count > 0 for count in per_master.values()), per_master
    # A replay of the whole recording: every event answered from the memo, with its fields.
    again, replays = sessionise(recording, client, cluster_prefix, wait_replicas)
    assert again == fields and replays == len(fields)


def test_a_users_state_and_memo_keys_share_the_slot_redis_computes(cluster_client, cluster_prefix):
    store = RedisSessionStore(cluster_client, SessionConfig(key_prefix=cluster_prefix), now=None)
    for user in [("acme", "u1"), ("a:b", "c"), ("clïent", "üser-😀"), ("acme", "has}brace{")]:
        state, memo = store.state_key(user), store.memo_key(12345, user)
        server = {cluster_client.execute_command("CLUSTER KEYSLOT", key, target_nodes=cluster_client.get_random_node())
                  for key in (state, memo)}
        assert server == {key_slot(state)} == {key_slot(memo)}


def test_pistats_enrich_takes_a_cluster_url_and_deletes_its_keys(recording, on_single_redis, cluster_url,
                                                                 cluster_client, capsys):
    assert main(["enrich", "--recording", str(recording), "--redis-url", cluster_url]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    fields = [(e["client_id"], e["event_id"], *(str(e[f]) for f in SESSION_FIELDS[:-1])) for e in events]
    assert fields == [row[:-1] for row in on_single_redis]
    assert list(cluster_client.scan_iter(match="pistats:enrich-run:*")) == []  # on every master
