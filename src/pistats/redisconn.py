"""Redis clients: the one place where pistats makes one, for a single Redis or a Redis Cluster.

The URL decides:

- ``redis://[[user]:password@]host[:port][/db]`` (``rediss://`` over TLS, ``unix:///path``): a
  single Redis, through redis-py's ``Redis.from_url`` (its query options are accepted).
- ``redis+cluster://[[user]:password@]host:port[,host:port...][/]`` (``rediss+cluster://`` over
  TLS): a Redis Cluster through redis-py's ``RedisCluster``; every listed node is a startup node
  (one reachable node is enough: the client reads the layout from it), and the client follows
  MOVED and ASK redirections itself.

Both accept ``?wait_replicas=N``: writes whose loss in a failover would change a result (session
state, checkpoints and leases, write keys) are followed by ``WAIT N`` on the same connection, and
count as done only once N replicas have them (:func:`run_on_node`). Idempotency marks and status
figures do not wait: losing one costs a duplicate put the topology removes, or a figure.

On a cluster every command or script touching several keys must touch one hash slot: the keys
carry a hash tag where they share an owner (docs/scaling.md lists them).
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence
from urllib.parse import parse_qsl, unquote, urlencode

from redis import exceptions as redis_errors

from pistats.redact import redact_url

CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}  # scheme -> TLS
SINGLE_SCHEMES = ("redis", "rediss", "unix")
WAIT_OPTION = "wait_replicas"
# Below the clients' shortest socket timeout (the spout's 2 s): WAIT's own answer, not a timeout, says
# the replicas are behind. A healthy replica acknowledges within milliseconds (WAIT asks it at once).
DEFAULT_WAIT_TIMEOUT_MS = 1_000
SLOTS = 16_384

# Every error a Redis or Redis Cluster client raises for trouble: redis-py's cluster client
# raises RedisClusterException, which is not a RedisError, when no node answers while it reads
# the cluster's layout (and SlotNotCoveredError, one of those, while a failover is under way).
REDIS_ERRORS: tuple[type[BaseException], ...] = (redis_errors.RedisError, redis_errors.RedisClusterException)

# What an outage looks like (a restart, a network blip, a failover in progress): worth waiting
# out and retrying. ClusterError covers CLUSTERDOWN and MASTERDOWN; TRYAGAIN and ASK/MOVED come
# while slots move or a replica takes over. Other errors (a script error, a wrong type) are not.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.ClusterError,
    redis_errors.TryAgainError, redis_errors.AskError, redis_errors.RedisClusterException,
)


class ReplicasBehind(redis_errors.TimeoutError):
    """Fewer replicas than ``wait_replicas`` acknowledged a write within the wait timeout: the
    write may be lost if its master fails now, so it does not count as done (an outage)."""


@dataclass(frozen=True)
class RedisTarget:
    """A parsed Redis URL. ``url`` is what redis-py is given (without ``wait_replicas``) and is
    kept out of the repr (it may hold a password); ``shown`` is the URL with its password hidden."""

    url: str = field(repr=False)
    cluster: bool
    nodes: tuple[tuple[str, int], ...] = ()
    tls: bool = False
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    wait_replicas: int = 0
    wait_timeout_ms: int = DEFAULT_WAIT_TIMEOUT_MS

    @property
    def shown(self) -> str:
        return redact_url(self.url)

    @classmethod
    def parse(cls, url: str) -> RedisTarget:
        """Read a Redis URL (module docstring); ValueError names what is wrong, password hidden."""
        if not isinstance(url, str) or not url:
            raise ValueError("a Redis URL is required")
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme not in CLUSTER_SCHEMES and scheme not in SINGLE_SCHEMES:
            raise ValueError(f"not a Redis URL: {redact_url(url)!r}")
        rest = url.split("://", 1)[1]
        body, _, query = rest.partition("?")
        options = parse_qsl(query, keep_blank_values=True)
        wait = [value for name, value in options if name == WAIT_OPTION]
        others = [(name, value) for name, value in options if name != WAIT_OPTION]
        try:
            wait_replicas = int(wait[-1]) if wait else 0
        except ValueError:
            raise ValueError(f"{WAIT_OPTION} must be a whole number, not {wait[-1]!r}") from None
        if wait_replicas < 0:
            raise ValueError(f"{WAIT_OPTION} must be >= 0, not {wait_replicas}")
        if scheme in SINGLE_SCHEMES:
            plain = url if not wait else url.split("?", 1)[0] + (f"?{urlencode(others)}" if others else "")
            return cls(plain, cluster=False, wait_replicas=wait_replicas)
        if others:
            raise ValueError(f"a cluster URL takes no option but {WAIT_OPTION}, not "
                             f"{', '.join(sorted({name for name, _ in others}))}")
        netloc, _, path = body.partition("/")
        if path not in ("", "0"):
            raise ValueError(f"a Redis Cluster has database 0 only, not {path!r} in {redact_url(url)!r}")
        username = password = None
        if "@" in netloc:
            userinfo, netloc = netloc.rsplit("@", 1)
            user, has_password, secret = userinfo.partition(":")
            username = unquote(user) or None
            password = unquote(secret) if has_password else None
        nodes = []
        for address in netloc.split(","):
            host, _, port = address.strip().rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"cluster nodes are host:port separated by commas, not {address!r} "
                                 f"in {redact_url(url)!r}")
            nodes.append((host.strip("[]"), int(port)))
        plain = url.split("?", 1)[0]
        return cls(plain, cluster=True, nodes=tuple(nodes), tls=CLUSTER_SCHEMES[scheme], username=username,
                   password=password, wait_replicas=wait_replicas)


def connect(url: str | RedisTarget, *, connect_timeout_s: float | None = 2.0, socket_timeout_s: float | None = 5.0,
            retry_dropped: bool = False, client_name: str | None = None) -> Any:
    """A client for ``url``: ``redis.Redis`` or ``redis.cluster.RedisCluster``.

    ``retry_dropped`` retries a command a few times (within about a second) when its connection
    drops, so a blip does not fail a batch; only for callers whose commands are safe to repeat
    (the session scripts: a write that did land shows up as a version conflict). A cluster
    client always retries a few times: that is how it notices a failover and re-reads the
    layout. A single Redis connects on first use; a cluster client reads the layout now, and
    raises one of ``REDIS_ERRORS`` when no node answers.
    """
    import redis as redis_lib
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    target = url if isinstance(url, RedisTarget) else RedisTarget.parse(url)
    common: dict[str, Any] = {"socket_connect_timeout": connect_timeout_s, "socket_timeout": socket_timeout_s}
    if client_name is not None:
        common["client_name"] = client_name
    short_retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), 3)
    if not target.cluster:
        if retry_dropped:
            common.update(retry=short_retry, retry_on_error=[redis_lib.ConnectionError, redis_lib.TimeoutError])
        return redis_lib.Redis.from_url(target.url, **common)
    from redis.cluster import ClusterNode, RedisCluster

    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
        username=target.username, password=target.password, ssl=target.tls, retry=short_retry, **common,
    )


def is_cluster(client: Any) -> bool:
    from redis.cluster import RedisCluster

    return isinstance(client, RedisCluster)


def key_slot(key: str | bytes) -> int:
    """The hash slot of ``key`` (its hash tag's, if it has one), as Redis Cluster computes it:
    CRC16-CCITT (XMODEM), which ``binascii.crc_hqx`` computes in C, modulo 16,384."""
    data = key.encode("utf-8", "surrogatepass") if isinstance(key, str) else key
    start = data.find(b"{")
    if start >= 0:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1:end]
    return binascii.crc_hqx(data, 0) & (SLOTS - 1)


def get_values(client: Any, keys: Sequence[str | bytes]) -> list[Any]:
    """GET of many keys in one call per node: MGET on a single Redis; on a cluster, where MGET
    needs one slot, redis-py's MGET per slot (not atomic across slots)."""
    if not keys:
        return []
    return client.mget_nonatomic(keys) if is_cluster(client) else client.mget(keys)


@dataclass(frozen=True)
class Script:
    """A Lua script known by its body and SHA1, run with :func:`run_on_node`."""

    body: str
    sha: str

    @classmethod
    def of(cls, body: str) -> Script:
        import hashlib

        return cls(body, hashlib.sha1(body.encode()).hexdigest())


def run_on_node(client: Any, key: str, calls: Sequence[tuple[Script, Sequence[Any], Sequence[Any]]], *,
                wait_replicas: int = 0, wait_timeout_ms: int = DEFAULT_WAIT_TIMEOUT_MS,
                commands: Sequence[Sequence[Any]] = ()) -> list[Any]:
    """Run script ``calls`` (script, keys, args) and then ``commands`` on one connection to the
    node serving ``key`` (the client itself on a single Redis), in order, in one round trip;
    with ``wait_replicas``, ``WAIT`` follows on that connection and fewer acknowledgements raise
    :class:`ReplicasBehind`. Returns the replies of the calls and commands.

    Every key a call touches must be in ``key``'s slot on a cluster. One connection matters:
    WAIT counts the writes of its own connection only. A script the node does not know is loaded
    and the round sent again (no call of it ran). On a cluster, a connection error or a
    redirection (the slot moved, a replica took over) makes the client re-read the layout
    before the error is raised: the caller's retry then goes to the new master.
    """
    node = _node_client(client, key)
    sent = [("EVALSHA", script.sha, len(keys), *keys, *args) for script, keys, args in calls]
    sent += [tuple(command) for command in commands]
    if wait_replicas:
        sent.append(("WAIT", wait_replicas, wait_timeout_ms))
    for _attempt in range(2):
        try:
            replies = _exchange(node, sent)
        except OUTAGE_ERRORS:
            _refresh_layout(client)
            raise
        answers = replies[:len(calls) + len(commands)]
        unknown = [script for (script, _, _), reply in zip(calls, answers) if isinstance(reply, redis_errors.NoScriptError)]
        if unknown and all(isinstance(reply, redis_errors.NoScriptError) for reply in answers[:len(calls)]):
            for body in {script.body for script in unknown}:
                node.script_load(body)
            continue
        for reply in replies:
            if isinstance(reply, BaseException):
                if isinstance(reply, OUTAGE_ERRORS):
                    _refresh_layout(client)
                raise reply
        if wait_replicas and int(replies[-1]) < wait_replicas:
            raise ReplicasBehind(f"{replies[-1]} of {wait_replicas} replicas acknowledged a write within "
                                 f"{wait_timeout_ms} ms")
        return answers
    raise redis_errors.NoScriptError("script still unknown after loading it")


def _exchange(node: Any, commands: Sequence[Sequence[Any]]) -> list[Any]:
    """Send ``commands`` on one pooled connection of ``node`` (a ``redis.Redis``) in one write and
    read their replies, an error reply as its exception. What redis-py's pipeline does, packed
    here: its packing cost about 20 µs per command, and a batch of sessions on a cluster sends a
    script call per user's slot."""
    pool = node.connection_pool
    connection = pool.get_connection()
    try:
        connection.send_packed_command([b"".join(_resp(command) for command in commands)])
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(connection.read_response())
            except redis_errors.ResponseError as error:
                replies.append(error)
        return replies
    except BaseException:
        connection.disconnect()  # replies may be left unread
        raise
    finally:
        pool.release(connection)


def _resp(command: Sequence[Any]) -> bytes:
    """One command in the Redis protocol (RESP): an array of bulk strings."""
    parts = [b"*%d\r\n" % len(command)]
    for arg in command:
        data = arg if isinstance(arg, bytes) else str(arg).encode("utf-8", "surrogatepass")
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _node_client(client: Any, key: str) -> Any:
    if not is_cluster(client):
        return client
    try:
        return client.get_redis_connection(client.get_node_from_key(key))
    except redis_errors.RedisClusterException:
        _refresh_layout(client)
        raise


def _refresh_layout(client: Any) -> None:
    """Re-read a cluster's slots from its nodes (nothing for a single Redis); when no node
    answers, the caller's own error stands."""
    if not is_cluster(client):
        return
    try:
        client.nodes_manager.initialize()
    except (*REDIS_ERRORS, OSError):
        pass


def plan_by_node(client: Any, items: Sequence[Any], key_of: Callable[[Any], str]) -> list[tuple[str, list[list[Any]]]]:
    """``items`` grouped for :func:`run_on_node`: per node, a key it serves and the items'
    groups by hash slot of ``key_of(item)``, every group in the items' order. A single Redis is
    one node with one group."""
    if not items:
        return []
    if not is_cluster(client):
        return [(key_of(items[0]), [list(items)])]
    slots: dict[int, list[Any]] = {}
    for item in items:
        slots.setdefault(key_slot(key_of(item)), []).append(item)
    nodes: dict[str, tuple[str, list[list[Any]]]] = {}
    for slot, group in slots.items():
        try:
            name = client.nodes_manager.get_node_from_slot(slot).name
        except redis_errors.RedisClusterException:
            _refresh_layout(client)
            raise
        nodes.setdefault(name, (key_of(group[0]), []))[1].append(group)
    return list(nodes.values())
