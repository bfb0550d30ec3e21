"""Realistic ingest traffic as a recording: what the Lambda ingest would have put into Kinesis.

Model (all randomness from one ``random.Random(seed)``, so a seed gives byte-identical output):

- Clients with Zipf-skewed sizes, each with one to four properties (also skewed).
- Users with one device (desktop, phone, tablet, in-app webview, bot, empty or garbage UA), a
  home IP (IPv4 or IPv6 from many countries, some private/reserved) and a history of visits over
  two weeks. Visits start at least 2 h after the previous one ended; events within a visit are
  5 s to 5 min apart (so no visit lasts 2 h); a user's first event is often ``register``, some
  subscribe to push, later visits may start with a ``notification_click``.
- The client clock is the event ``timestamp``; the ingest receives it 50 ms to 2 s later, a
  tenth of the time up to 60 s later (SDK batching), so the stream is out of event-time order
  by at most 60 s. A few users have clocks days off (flagged ``clock_skew``, still valid).
- Client retries: a share of events is sent again (same event, new ``received_at``).
- Malformed records of every reject reason: invalid UTF-8, truncated JSON, base64 text instead
  of JSON, missing or mistyped fields, an unknown version, payloads over 64 KiB.
- Records are routed like Kinesis (MD5 of the partition key into the shards' hash ranges) and
  numbered with Kinesis-like sequence numbers (56-digit decimals increasing per shard). With a
  reshard, every shard splits in two at its middle after ``reshard_at`` of the records: parents
  are closed (shard end line with ChildShards), children take the rest, so per partition key
  parent records precede child records.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import math
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pistats.contract import build_record, encode_record, format_timestamp, partition_key
from pistats.errors import ConfigError
from pistats.generate import catalog
from pistats.generate.expected import CountryLookup, expected_counts
from pistats.kinesis.admin import even_hash_ranges
from pistats.kinesis.recording import RecordedRecord, RecordingWriter, ShardInfo
from pistats.kinesis.stream_replay import hash_key_for

EPOCH = datetime(2026, 11, 2, 0, 0, tzinfo=timezone.utc)
SPAN = timedelta(days=14)
STREAM = "pistats-generated"
SEQUENCE_BASE = 49 * 10**54
BAD_KINDS = (
    ("bad_encoding", "invalid_utf8", 3),
    ("bad_json", "truncated_json", 3),
    ("bad_json", "base64_text", 1),
    ("unsupported_version", "version_2", 2),
    ("schema", "missing_field", 3),
    ("schema", "wrong_type", 3),
    ("schema", "unknown_type", 1),
    ("too_large", "oversized", 1),
)
MIN_VISIT_GAP = timedelta(hours=2)
MAX_EVENT_GAP_SECONDS = 300


@dataclass(frozen=True)
class GenerateConfig:
    events: int
    shards: int = 2
    clients: int = 5
    seed: int = 1
    reshard_at: float | None = None
    bad_fraction: float = 0.03
    duplicate_fraction: float = 0.02
    skewed_clock_fraction: float = 0.005
    skewed_months: int = 0

    def __post_init__(self) -> None:
        if self.events < 1:
            raise ConfigError("events", "must be at least 1")
        if not 1 <= self.shards <= 64:
            raise ConfigError("shards", "must be between 1 and 64")
        if not 1 <= self.clients <= 1000:
            raise ConfigError("clients", "must be between 1 and 1000")
        if self.reshard_at is not None and not 0 < self.reshard_at < 1:
            raise ConfigError("reshard_at", "must be a fraction strictly between 0 and 1")
        for name in ("bad_fraction", "duplicate_fraction", "skewed_clock_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(name, "must be in [0, 1)")
        if not 0 <= self.skewed_months <= 1200:
            raise ConfigError("skewed_months", "must be between 0 and 1200")
        if self.bad_fraction + self.duplicate_fraction >= 0.9:
            raise ConfigError("bad_fraction", "plus `duplicate_fraction` must stay below 0.9")
        self.counts()  # validates

    def counts(self) -> tuple[int, int, int, int]:
        """How many of the records are (unique, bad, duplicates, clock-skewed)."""
        bad = round(self.events * self.bad_fraction)
        duplicates = round(self.events * self.duplicate_fraction)
        unique = self.events - bad - duplicates
        if unique < 1:
            raise ConfigError("events", "too small for the requested bad and duplicate fractions")
        skewed = min(round(self.events * self.skewed_clock_fraction), unique - 1)
        if self.skewed_months >= unique - skewed:
            raise ConfigError("events", "too small for `skewed_months`")
        return unique, bad, duplicates, skewed


@dataclass
class _Client:
    client_id: str
    properties: list[tuple[str, str]]  # (property_id, domain)
    property_weights: list[float]
    platform_weights: dict[str, float]


@dataclass
class _User:
    client: _Client
    property_id: str
    domain: str
    user_id: str
    kind: str
    user_agent: str
    http_agent: str
    sdk: str
    locale: tuple[str, str]
    screen: tuple[int, int] | None
    home_ip: str
    roaming: bool


@dataclass
class Item:
    """One record to be: its payload, partition key, and when the ingest received it."""

    received_at: datetime
    key: str
    data: bytes
    label: str  # "valid", "duplicate", or "<reason>/<kind>"
    order: int = 0
    arrival: datetime | None = None


@dataclass
class GenerateResult:
    path: Path
    records: int
    labels: dict[str, int] = field(default_factory=dict)
    expected: dict = field(default_factory=dict)


def _zipf_weights(count: int, exponent: float) -> list[float]:
    return [1.0 / (rank**exponent) for rank in range(1, count + 1)]


class _Pools:
    """Addresses sampled once per seed: public ones with a GeoLite2 country, and non-public."""

    def __init__(self, rng: random.Random, countries: CountryLookup):
        by_country: dict[str, list[str]] = {}
        while sum(len(v) for v in by_country.values()) < 3000:
            address = ipaddress.IPv4Address(rng.getrandbits(32))
            if not address.is_global or address.is_multicast:
                continue
            code = countries(str(address))
            if code:
                by_country.setdefault(code, []).append(str(address))
        self.v4_countries = sorted(by_country)
        # Tempered allocation sizes: the US still leads, but the long tail of countries shows up.
        self.v4_weights = [len(by_country[c]) ** 0.6 for c in self.v4_countries]
        self.v4 = by_country
        self.v6: list[str] = []
        attempts = 0
        blocks = [ipaddress.IPv6Network(b) for b in catalog.IPV6_BLOCKS]
        while len(self.v6) < 300 and attempts < 60_000:
            attempts += 1
            block = rng.choice(blocks)
            address = ipaddress.IPv6Address(int(block.network_address) + rng.getrandbits(128 - block.prefixlen))
            if countries(str(address)):
                self.v6.append(address.compressed)
        self.non_public = [ipaddress.ip_network(b) for b in catalog.NON_PUBLIC_BLOCKS]

    def pick(self, rng: random.Random) -> str:
        roll = rng.random()
        if roll < 0.04 or not (self.v4 or self.v6):
            network = rng.choice(self.non_public)
            offset = rng.randrange(network.num_addresses) if network.num_addresses > 1 else 0
            return str(network.network_address + offset)
        if roll < 0.16 and self.v6:
            return rng.choice(self.v6)
        country = rng.choices(self.v4_countries, self.v4_weights)[0]
        return rng.choice(self.v4[country])


class Generator:
    def __init__(self, config: GenerateConfig, countries: CountryLookup | None = None):
        self.config = config
        self.rng = random.Random(config.seed)
        self._own_countries = countries is None
        self.countries = countries or CountryLookup()
        self.pools = _Pools(self.rng, self.countries)
        self.clients = self._make_clients()
        self.client_weights = _zipf_weights(len(self.clients), 1.1)
        self._user_count = 0

    def close(self) -> None:
        if self._own_countries:
            self.countries.close()

    # -- population -------------------------------------------------------------------------

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _make_clients(self) -> list[_Client]:
        clients = []
        for index in range(self.config.clients):
            client_id = f"cl_{self.rng.getrandbits(40):010x}"
            properties = []
            for _ in range(self.rng.choice((1, 1, 2, 2, 3, 4))):
                domain = f"{self.rng.choice(catalog.SITE_WORDS)}{self.rng.choice(catalog.SITE_WORDS)}.{self.rng.choice(catalog.SITE_TLDS)}"
                properties.append((f"prop_{self.rng.getrandbits(32):08x}", domain))
            web_share = self.rng.choice((0.95, 0.8, 0.6, 0.4))
            clients.append(
                _Client(
                    client_id,
                    properties,
                    _zipf_weights(len(properties), 1.3),
                    {"web": web_share, "app": 1 - web_share},
                )
            )
        return clients

    def _make_user(self) -> _User:
        rng = self.rng
        client = rng.choices(self.clients, self.client_weights)[0]
        property_id, domain = rng.choices(client.properties, client.property_weights)[0]
        kinds, weights = zip(*catalog.DEVICE_KINDS)
        kind = rng.choices(kinds, weights)[0]
        if kind in ("mobile", "tablet") and rng.random() < client.platform_weights["app"] / 2:
            kind = "in_app"
        user_agent = rng.choice(catalog.USER_AGENTS[kind])
        http_agent = rng.choice(catalog.APP_HTTP_AGENTS) if kind == "in_app" else user_agent
        if kind == "in_app":
            sdk = "ios" if "iPhone" in user_agent else "android"
        else:
            sdk = "web"
        screen_kind = {"mobile": "mobile", "in_app": "mobile", "tablet": "tablet"}.get(kind, "desktop")
        screen = rng.choice(catalog.SCREENS[screen_kind]) if kind not in ("bot", "empty", "garbage") else None
        self._user_count += 1
        return _User(
            client=client,
            property_id=property_id,
            domain=domain,
            user_id=f"u_{rng.getrandbits(64):016x}",
            kind=kind,
            user_agent=user_agent,
            http_agent=http_agent,
            sdk=sdk,
            locale=rng.choice(catalog.LOCALES),
            screen=screen,
            home_ip=self.pools.pick(rng),
            roaming=kind in ("mobile", "in_app") and rng.random() < 0.4,
        )

    # -- events -----------------------------------------------------------------------------

    def _event(self, user: _User, event_type: str, moment: datetime, page: str, referrer: str) -> dict:
        rng = self.rng
        sdk_name, versions = catalog.SDKS[user.sdk]
        context: dict = {
            "page_url": f"https://{user.domain}{page}",
            "referrer": referrer,
            "locale": user.locale[0],
            "timezone": user.locale[1],
            "sdk": {"name": sdk_name, "version": versions[hash_key_for(user.user_id) % len(versions)]},
        }
        if user.screen is not None:
            context["screen"] = {"width": user.screen[0], "height": user.screen[1]}
        if user.kind == "in_app":
            context["user_agent"] = user.user_agent
        event = {
            "event_id": self._uuid(),
            "type": event_type,
            "property_id": user.property_id,
            "user_id": user.user_id,
            "timestamp": _client_timestamp(moment, rng),
            "context": context,
        }
        if event_type == "subscribe":
            event["push_token"] = base64.urlsafe_b64encode(self.rng.randbytes(96)).decode().rstrip("=")
        if event_type == "notification_click":
            event["notification_id"] = f"n_{self.rng.getrandbits(48):012x}"
        if rng.random() < 0.3:
            event["properties"] = {
                "ab_group": rng.choice(("A", "B")),
                "logged_in": rng.random() < 0.5,
                "cart_value": round(rng.uniform(5, 300), 2),
            }
        return event

    def _page(self) -> str:
        template = self.rng.choice(catalog.PAGES)
        return template.format(slug=self.rng.choice(catalog.SLUGS), n=self.rng.randrange(1, 5000))

    def _user_items(self, user: _User, budget: int) -> list[Item]:
        """A user's history (at most ``budget`` events), each event as a record Item."""
        rng = self.rng
        bot = user.kind == "bot"
        visits = 1 + min(int(rng.expovariate(0.6)), 12) if not bot else rng.randint(1, 3)
        moment = EPOCH + timedelta(seconds=rng.uniform(0, SPAN.total_seconds() * 0.9))
        items: list[Item] = []
        subscribed = False
        for visit in range(visits):
            if moment >= EPOCH + SPAN or len(items) >= budget:
                break
            count = rng.randint(5, 20) if bot else 1 + min(int(rng.expovariate(0.35)), 19)
            ip = user.home_ip if not user.roaming or visit == 0 else self.pools.pick(rng)
            referrer = rng.choice(catalog.REFERRERS)
            for position in range(count):
                if len(items) >= budget:
                    break
                if position > 0:
                    moment += timedelta(seconds=rng.uniform(5, MAX_EVENT_GAP_SECONDS))
                event_type = "page_view"
                if visit == 0 and position == 0 and not bot and rng.random() < 0.6:
                    event_type = "register"
                elif visit > 0 and position == 0 and subscribed and rng.random() < 0.35:
                    event_type = "notification_click"
                elif not bot and not subscribed and position == 1 and rng.random() < 0.3:
                    event_type = "subscribe"
                    subscribed = True
                elif subscribed and rng.random() < 0.01:
                    event_type = "unsubscribe"
                    subscribed = False
                event = self._event(user, event_type, moment, self._page(), referrer if position == 0 else "")
                items.append(self._item(user, event, moment, ip))
            # The next visit starts at least 2 h after this one ended.
            moment += MIN_VISIT_GAP + timedelta(seconds=rng.expovariate(1 / (20 * 3600)))
        return items

    def _item(self, user: _User, event: dict, moment: datetime, ip: str, *, now: datetime | None = None) -> Item:
        rng = self.rng
        delay = rng.uniform(0.05, 2.0) if rng.random() < 0.9 else rng.uniform(2.0, 60.0)
        received_at = moment + timedelta(seconds=delay)
        record = build_record(
            client_id=user.client.client_id,
            event=event,
            received_at=received_at,
            ip=ip,
            user_agent=user.http_agent,
            now=now or received_at,
        )
        return Item(received_at, partition_key(user.client.client_id, user.user_id), encode_record(record), "valid")

    def _skewed_items(self, count: int) -> list[Item]:
        """Single-event users whose device clock is days off: valid, flagged ``clock_skew``."""
        items = []
        for _ in range(count):
            user = self._make_user()
            received = EPOCH + timedelta(seconds=self.rng.uniform(0, SPAN.total_seconds()))
            offset = timedelta(days=self.rng.choice((3, 40, -45, 400)))
            event = self._event(user, "page_view", received + offset, self._page(), "")
            record = build_record(
                client_id=user.client.client_id,
                event=event,
                received_at=received,
                ip=user.home_ip,
                user_agent=user.http_agent,
                now=received,
            )
            items.append(Item(received, partition_key(user.client.client_id, user.user_id), encode_record(record), "valid"))
        return items

    def _month_spread_items(self, months: int) -> list[Item]:
        """A burst from one user whose device clock is broken: ``months`` events a second apart,
        dated in as many calendar months, a month further back each time (31-day steps from the
        same day always land in an earlier month). Valid, flagged ``clock_skew``; one partition
        key, so they travel in one micro-batch and reach the store in one insert, which spans a
        partition per month in a store partitioned by event month."""
        user = self._make_user()
        client = user.client = self.clients[-1]
        user.property_id, user.domain = client.properties[0]
        burst = EPOCH + timedelta(seconds=self.rng.uniform(0, SPAN.total_seconds()))
        items = []
        for back in range(1, months + 1):
            received = burst + timedelta(seconds=back)
            dated = EPOCH - timedelta(days=31 * back, seconds=self.rng.uniform(0, 3600))
            event = self._event(user, "page_view", dated, self._page(), "")
            record = build_record(client_id=client.client_id, event=event, received_at=received,
                                  ip=user.home_ip, user_agent=user.http_agent, now=received)
            items.append(Item(received, partition_key(client.client_id, user.user_id), encode_record(record), "valid"))
        return items

    def _duplicate(self, original: Item) -> Item:
        """The client retried: the same event again, received a little later."""
        record = json.loads(original.data)
        received = original.received_at + timedelta(seconds=self.rng.uniform(1, 120))
        record["received_at"] = format_timestamp(received)
        return Item(received, original.key, encode_record(record), "duplicate")

    def _bad(self, base: Item) -> Item:
        rng = self.rng
        reasons, kinds, weights = zip(*BAD_KINDS)
        index = rng.choices(range(len(kinds)), weights)[0]
        reason, kind = reasons[index], kinds[index]
        record = json.loads(base.data)
        received = base.received_at + timedelta(seconds=rng.uniform(0.1, 30))
        record["received_at"] = format_timestamp(received)
        record["event"]["event_id"] = self._uuid()
        if kind == "invalid_utf8":
            # A proxy re-encoded the body as Latin-1: one byte that can never start UTF-8.
            text = encode_record(record)
            cut = text.index(b'"page_url":"') + len(b'"page_url":"')
            data = text[:cut] + b"caf\xe9/" + text[cut:]
        elif kind == "truncated_json":
            text = encode_record(record).decode("utf-8")
            data = text[: rng.randrange(1, len(text) - 1)].encode("utf-8")
        elif kind == "base64_text":
            data = base64.b64encode(encode_record(record))
        elif kind == "version_2":
            record["v"] = 2
            data = encode_record(record)
        elif kind == "missing_field":
            del record["event"][rng.choice(("event_id", "user_id", "timestamp", "type", "property_id"))]
            data = encode_record(record)
        elif kind == "wrong_type":
            choice = rng.randrange(4)
            if choice == 0:
                record["event"]["timestamp"] = int(datetime.fromisoformat(record["received_at"]).timestamp())
            elif choice == 1:
                record["event"]["user_id"] = rng.randrange(10**6)
            elif choice == 2:
                record["event"]["properties"] = ["not", "a", "map"]
            else:
                record["clock_skew"] = "no"
            data = encode_record(record)
        elif kind == "unknown_type":
            record["event"]["type"] = rng.choice(("purchase", "PageView", "login"))
            data = encode_record(record)
        else:
            record["event"]["context"]["debug_dump"] = "x" * (70 * 1024)
            data = encode_record(record)
        return Item(received, base.key, data, f"{reason}/{kind}")

    # -- the whole run ----------------------------------------------------------------------

    def items(self) -> list[Item]:
        """Every record, in arrival order."""
        config = self.config
        unique, bad, duplicates, skewed = config.counts()
        valid = self._skewed_items(skewed)
        if config.skewed_months:
            valid.extend(self._month_spread_items(config.skewed_months))
        while len(valid) < unique:
            valid.extend(self._user_items(self._make_user(), unique - len(valid)))
        everything = list(valid)
        for original in self.rng.sample(valid, duplicates) if duplicates <= len(valid) else []:
            everything.append(self._duplicate(original))
        for _ in range(bad):
            everything.append(self._bad(self.rng.choice(valid)))
        for order, item in enumerate(everything):
            item.order = order
        everything.sort(key=lambda item: (item.received_at, item.order))
        # Kinesis stamps arrival a few milliseconds after the ingest received the request.
        previous = None
        for item in everything:
            arrival = item.received_at + timedelta(milliseconds=self.rng.randint(5, 150))
            if previous is not None and arrival < previous:
                arrival = previous
            item.arrival = previous = arrival
        return everything


def _client_timestamp(moment: datetime, rng: random.Random) -> str:
    """The SDK's clock as RFC 3339: mostly UTC, sometimes with the device's local offset."""
    if rng.random() < 0.8:
        return format_timestamp(moment)
    offset = timedelta(hours=rng.choice((-5, -3, 1, 2, 5.5, 9)))
    local = moment.astimezone(timezone(offset))
    return local.isoformat(timespec="milliseconds")


def _sequence(arrival: datetime, shard_number: int, index: int) -> str:
    """56 digits like Kinesis: increasing with arrival time, then with the position in the shard
    (the low digits are noise below one position step, as opaque as real ones)."""
    milliseconds = int(arrival.timestamp() * 1000)
    noise = (index * 2654435761 + shard_number * 40503) % 10**9
    return str(SEQUENCE_BASE + milliseconds * 10**25 + shard_number * 10**20 + index * 7919 * 10**9 + noise)


def _shard_id(number: int) -> str:
    return f"shardId-{number:012d}"


def generate(config: GenerateConfig, out: str | Path, *, overwrite: bool = False,
             progress: Callable[[int], None] | None = None) -> GenerateResult:
    """Write the recording (with ``expected.json`` inside) at ``out`` atomically: ``config.events``
    records, ``progress`` (if given) called with each number of them written. A recording already
    at ``out`` is replaced only with ``overwrite`` (else FileExistsError)."""
    progress = progress or (lambda count: None)
    generator = Generator(config)
    try:
        items = generator.items()
        labels: dict[str, int] = {}
        for item in items:
            labels[item.label] = labels.get(item.label, 0) + 1
        expected = expected_counts((item.data for item in items), generator.countries)
    finally:
        generator.close()

    roots = [
        (number, start, end) for number, (start, end) in enumerate(even_hash_ranges(config.shards))
    ]
    children: list[tuple[int, int, int, int]] = []  # (number, parent number, start, end)
    if config.reshard_at is not None:
        for parent, start, end in roots:
            middle = (start + end) // 2
            base = config.shards + 2 * parent
            children.append((base, parent, start, middle))
            children.append((base + 1, parent, middle + 1, end))
    split_index = math.floor(len(items) * config.reshard_at) if config.reshard_at is not None else len(items)
    split_at = items[split_index].arrival if split_index < len(items) else None

    assigned: dict[int, list[RecordedRecord]] = {n: [] for n, _, _ in roots}
    assigned.update({n: [] for n, _, _, _ in children})
    counters = {number: 0 for number in assigned}
    for position, item in enumerate(items):
        hash_key = hash_key_for(item.key)
        candidates = children if position >= split_index and children else [(n, None, s, e) for n, s, e in roots]
        number = next(n for n, _, s, e in candidates if s <= hash_key <= e)
        counters[number] += 1
        sequence = _sequence(item.arrival, number, counters[number])
        assigned[number].append(RecordedRecord(sequence, item.arrival, item.key, item.data))

    first_arrival = items[0].arrival
    last_arrival = items[-1].arrival
    with RecordingWriter(
        out,
        stream=STREAM,
        captured_at=last_arrival + timedelta(seconds=1),
        overwrite=overwrite,
        extra={"generator": {"tool": "pistats generate", "seed": config.seed, "events": config.events}},
    ) as writer:
        for number, start, end in roots:
            records = assigned[number]
            opened = _sequence(first_arrival, number, 0)
            closed = None
            if children:
                closed = records[-1].sequence_number if records else _sequence(split_at or last_arrival, number, 1)
            writer.add_shard(ShardInfo(_shard_id(number), start, end, opened, ending_sequence_number=closed))
            writer.write_many(_shard_id(number), records)
            progress(len(records))
            if children:
                child_shards = [
                    {
                        "ShardId": _shard_id(child),
                        "ParentShards": [_shard_id(number)],
                        "HashKeyRange": {"StartingHashKey": str(s), "EndingHashKey": str(e)},
                    }
                    for child, parent, s, e in children
                    if parent == number
                ]
                writer.end_shard(_shard_id(number), child_shards)
        for number, parent, start, end in children:
            records = assigned[number]
            opened = _sequence(split_at or last_arrival, number, 0)
            writer.add_shard(ShardInfo(_shard_id(number), start, end, opened, parent_shard_id=_shard_id(parent)))
            writer.write_many(_shard_id(number), records)
            progress(len(records))
        (writer.staging / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
        path = writer.commit()
    return GenerateResult(Path(path), len(items), dict(sorted(labels.items())), expected)


def load_expected(path: str | Path) -> dict:
    return json.loads((Path(path) / "expected.json").read_text())

