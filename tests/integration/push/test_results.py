"""push_sends and campaign stats on both backends: idempotent export, clicks, CTR, the report's section."""

import json
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone

import pytest

from pistats.cli.main import main as pistats
from pistats.push.results import PushSend, campaign_stats, has_push_sends, token_hash, write_push_sends
from pistats.store.base import StoreError
from pistats.store.report import ReportScope, build_report
from pistats.store.schema import migrate
from tests.support import stores

pytestmark = pytest.mark.integration

server_store_url, chdb_store_url, store_url, store = (
    stores.server_store_url, stores.chdb_store_url, stores.store_url, stores.store)

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)


def sends_of(campaign, client, statuses, start, users=None):
    """One send per status, to tokens and users of this campaign."""
    return [
        PushSend(campaign_id=campaign, client_id=client, property_id="prop-1",
                 user_id=(users or {}).get(index, f"{campaign}-user-{index}"),
                 token_hash=token_hash(f"APA91b-{campaign}-{index}"), platform="web", status=status,
                 error_code={"invalid": "UNREGISTERED", "failed": "INTERNAL"}.get(status, ""),
                 attempts=1 + index % 3, settled_at=start + timedelta(seconds=index))
        for index, status in enumerate(statuses)
    ]


def click(campaign, user, device, country, client="client-a", event_id=None):
    when = int((T0 + timedelta(hours=1)).timestamp() * 1000)
    return dict(client_id=client, property_id="prop-1", event_type="notification_click", notification_id=campaign,
                user_id=user, event_id=event_id or f"click-{campaign}-{user}-{device}", device_type=device,
                geo_country=country, event_time=when, received_at=when, processed_at=when)


SENDS = (
    sends_of("c_a", "client-a", ["sent"] * 6 + ["failed", "invalid", "invalid", "unknown"], T0)
    + sends_of("c_b", "client-a", ["sent", "sent"], T0 + timedelta(minutes=5))
    + sends_of("c_c", "client-a", ["failed", "invalid"], T0 + timedelta(days=2))
    + sends_of("c_z", "client-b", ["sent"], T0)
)
CLICKS = [
    click("c_a", "u1", "mobile", "DE"),
    click("c_a", "u1", "desktop", "DE"),  # the same user from another device: clicked once, in both devices
    click("c_a", "u2", "mobile", "FR"),
    click("c_a", "u3", "tablet", ""),
    click("c_a", "u4", "mobile", "DE", client="client-b"),  # another client's event with the same id
    click("c_z", "u9", "desktop", "US", client="client-b"),
    click("c_other", "u5", "mobile", "DE"),  # a campaign without sends here
]


def expected(sends_written, client, campaign=None, since=None):
    """The figures computed from the sends written (in order) and CLICKS as results.py defines them."""
    latest = {}
    for send in sends_written:
        latest[(send.client_id, send.campaign_id, send.token_hash)] = send
    by_campaign = defaultdict(list)
    for send in latest.values():
        by_campaign[(send.client_id, send.campaign_id)].append(send)
    figures = []
    for (client_id, campaign_id), sends in sorted(by_campaign.items(),
                                                  key=lambda item: (min(s.settled_at for s in item[1]), item[0][1])):
        if (client is not None and client_id != client) or (campaign is not None and campaign_id != campaign):
            continue
        if since is not None and max(s.settled_at for s in sends).date() < since:
            continue
        clicks = [c for c in CLICKS if (c["client_id"], c["notification_id"]) == (client_id, campaign_id)]
        by_device, by_country = defaultdict(set), defaultdict(set)
        for c in clicks:
            by_device[c["device_type"]].add(c["user_id"])
            by_country[c["geo_country"]].add(c["user_id"])
        sent = sum(s.status == "sent" for s in sends)
        clicked = len({c["user_id"] for c in clicks})
        figures.append({
            "campaign_id": campaign_id, "client_id": client_id, "targeted": len(sends), "sent": sent,
            "failed": sum(s.status == "failed" for s in sends), "invalidated": sum(s.status == "invalid" for s in sends),
            "unknown": sum(s.status == "unknown" for s in sends), "clicked": clicked,
            "ctr": round(clicked / sent, 4) if sent else None,
            "clicks_by_device_type": {k: len(v) for k, v in by_device.items()},
            "clicks_by_country": {k: len(v) for k, v in by_country.items()},
        })
    return figures


def comparable(stats):
    keep = ("campaign_id", "client_id", "targeted", "sent", "failed", "invalidated", "unknown", "clicked", "ctr",
            "clicks_by_device_type", "clicks_by_country")
    return [{key: campaign[key] for key in keep} for campaign in stats]


@pytest.fixture
def filled(store):
    migrate(store)
    write_push_sends(store, SENDS)
    # A resumed campaign exports its sends again, one settled later with another outcome.
    again = list(SENDS[:4])
    resettled = SENDS[9]  # c_a's unknown send, found sent after all
    again.append(PushSend(**{**resettled.__dict__, "status": "sent", "settled_at": resettled.settled_at + timedelta(
        minutes=1)}))
    write_push_sends(store, again)
    template = stores.event_row_template()
    rows = [stores.with_fields(template, **event) for event in CLICKS]
    store.prepare_insert("events", rows)(None)
    store.prepare_insert("events", rows[:2])(None)  # a replayed batch
    return store, SENDS + again


def test_campaign_stats_match_the_sends_and_clicks(filled):
    store, written = filled
    stats = campaign_stats(store, "client-a")
    assert [campaign["campaign_id"] for campaign in stats] == ["c_a", "c_b", "c_c"]
    assert comparable(stats) == expected(written, "client-a")
    a = stats[0]
    assert (a["targeted"], a["sent"], a["unknown"], a["clicked"], a["ctr"]) == (10, 7, 0, 3, round(3 / 7, 4))
    assert a["clicks_by_device_type"] == {"mobile": 2, "desktop": 1, "tablet": 1}
    assert list(a["clicks_by_device_type"]) == ["mobile", "desktop", "tablet"]  # most users first, then by name
    assert a["clicks_by_country"] == {"": 1, "DE": 1, "FR": 1} and list(a["clicks_by_country"]) == ["", "DE", "FR"]
    assert stats[1]["ctr"] == 0.0 and stats[2]["ctr"] is None  # sent but not clicked; nothing sent
    assert a["first_settled_at"].startswith("2026-11-26T10:00:00") and a["first_settled_at"].endswith("Z")
    assert comparable(campaign_stats(store, None)) == expected(written, None)
    assert comparable(campaign_stats(store, "client-a", "c_b")) == expected(written, "client-a", "c_b")
    assert comparable(campaign_stats(store, "client-a", since=date(2026, 11, 28))) == \
        expected(written, "client-a", since=date(2026, 11, 28))
    assert campaign_stats(store, "client-nobody") == []


def test_the_store_holds_token_hashes_only(filled):
    store, _ = filled
    columns = "concat(campaign_id, client_id, property_id, user_id, token_hash, platform, status, error_code)"
    assert store.query(f"SELECT count() FROM {store.database}.push_sends WHERE position({columns}, 'APA91b') > 0") \
        == [(0,)]
    hashes = store.query(f"SELECT DISTINCT length(token_hash) FROM {store.database}.push_sends")
    assert hashes == [(64,)]


def test_report_has_the_campaigns_section(filled, store_url, capsys):
    store, _ = filled
    report = build_report(store, ReportScope(client_id="client-a"))
    assert report["campaigns"] == campaign_stats(store, "client-a")
    store.close()  # chdb: one process, one owner of the data path
    assert pistats(["report", "--store", store_url, "--json"]) == 0
    campaigns = json.loads(capsys.readouterr().out)["campaigns"]
    assert [campaign["campaign_id"] for campaign in campaigns] == ["c_a", "c_z", "c_b", "c_c"]
    assert pistats(["report", "--store", store_url, "--client", "client-a", "--since", "2026-11-28"]) == 0
    text = capsys.readouterr().out
    section = text[text.index("\nCampaigns\n"):].splitlines()
    assert section[2].split() == ["campaign", "client", "property", "targeted", "sent", "failed", "invalidated",
                                  "unknown", "clicked", "ctr"]
    assert section[4].split() == ["c_c", "client-a", "prop-1", "2", "0", "1", "1", "0", "0", "-"]


def test_a_store_without_push_sends(store):
    migrate(store)
    store.execute(f"DROP TABLE {store.database}.push_sends")
    assert not has_push_sends(store)
    assert build_report(store, ReportScope())["campaigns"] is None
    with pytest.raises(StoreError):
        write_push_sends(store, SENDS[:1])
