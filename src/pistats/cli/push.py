"""``pistats push send|resume|stats``: push campaigns over FCM to segments of the analytics store."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import sys
import time
from contextlib import ExitStack
from datetime import datetime, timezone

from pistats.cli._support import UserError, progress_bar

_STORE_HELP = "store URL (default $PISTATS_STORE_URL, else chdb://./.pistats/chdb)"


def register(subparsers: argparse._SubParsersAction) -> None:
    from pistats.registry.config import local_url

    parser = subparsers.add_parser(
        "push",
        help="send a push campaign to a segment through FCM, resume one, show campaigns' results",
        description=(
            "Campaigns live in the subscriber registry (at most one push per token per campaign, even "
            "across crashes), their outcomes in the store's push_sends. FCM from PISTATS_FCM_ENDPOINT "
            "(default https://fcm.googleapis.com) with the service account JSON at PISTATS_FCM_CREDENTIALS. "
            "See docs/push.md."
        ),
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    def common(sub: argparse.ArgumentParser, fcm: bool = True) -> None:
        sub.add_argument("--registry-url", dest="registry_url",
                         help=f"postgresql://user@host:port/db (PISTATS_REGISTRY_URL; default the local {local_url()})")
        sub.add_argument("--store", metavar="URL", help=_STORE_HELP)
        if fcm:
            sub.add_argument("--fcm-endpoint", help="FCM base URL (PISTATS_FCM_ENDPOINT)")
            sub.add_argument("--fcm-credentials", metavar="PATH",
                             help="service account JSON (PISTATS_FCM_CREDENTIALS)")
            sub.add_argument("--concurrency", type=int, default=50, help="requests in flight (default 50)")
        sub.add_argument("--json", action="store_true", help="end with one JSON object on stdout")

    send = actions.add_parser("send", help="create a campaign and send it")
    send.add_argument("--client", required=True, help="client id")
    send.add_argument("--property", required=True, help="property id")
    send.add_argument("--title", required=True)
    send.add_argument("--body", required=True)
    send.add_argument("--url", help="the page a click opens (webpush.fcm_options.link)")
    send.add_argument("--segment", metavar="EXPR",
                      help="comma-separated AND of country=DE, device_type=mobile, active_within=7d, "
                           "registered_within=30d, sessions_at_least=3 (default: every active subscription)")
    send.add_argument("--rate", type=float, default=500.0, help="sends per second at most (default 500)")
    send.add_argument("--dry-run", action="store_true", help="print the segment's users and tokens, send nothing")
    common(send)

    resume = actions.add_parser("resume", help="finish a campaign a crash or an interrupt stopped")
    resume.add_argument("campaign", metavar="CAMPAIGN")
    common(resume)

    export = actions.add_parser("export", help="copy settled sends from the registry to the store's push_sends "
                                               "(welcome notifications, and what an outage left)")
    export.add_argument("--client", help="client id (default: every client)")
    common(export, fcm=False)

    stats = actions.add_parser("stats", help="campaigns' results: sent, failed, invalidated, clicked, CTR "
                                             "(settled sends are exported first when the registry answers)")
    stats.add_argument("campaign", metavar="CAMPAIGN", nargs="?")
    stats.add_argument("--client", help="client id (default: the campaign's, from the registry)")
    common(stats, fcm=False)
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from pistats.push.segments import SegmentError
    from pistats.registry.errors import RegistryUnavailable
    from pistats.store.base import StoreError

    try:
        if args.action == "stats":
            return _stats(args)
        if args.action == "export":
            return _export(args)
        return _send(args)
    except SegmentError as error:
        raise UserError(f"--segment: {error}", exit_code=2) from None
    except RegistryUnavailable as error:
        raise UserError(f"registry unavailable: {error}") from None
    except StoreError as error:
        raise UserError(f"store unavailable or not initialised (pistats store init): {error}") from None


def _registry_config(args):
    from pistats.registry.config import RegistryConfig, local_url

    return RegistryConfig.from_env(url=args.registry_url) or RegistryConfig(local_url(os.environ))


def _open_store(args):
    from pistats.store.backends import open_store
    from pistats.store.config import store_url_from

    return open_store(store_url_from(args.store, os.environ))


def _send(args: argparse.Namespace) -> int:
    from pistats.push.campaign import CampaignSettings, count_targets
    from pistats.push.fcm import FcmConfig
    from pistats.push.ledger import CampaignSpec, Ledger, LedgerBusy
    from pistats.push.message import Content, content_problems
    from pistats.push.results import has_push_sends
    from pistats.push.segments import count_segment_users, parse_segment
    from pistats.registry.store import Registry

    if args.concurrency < 1:
        raise UserError("--concurrency must be >= 1", exit_code=2)
    config = _registry_config(args)
    with ExitStack() as stack:
        ledger = Ledger.from_config(config)
        stack.callback(ledger.close)
        if args.action == "send":
            if args.rate <= 0:
                raise UserError("--rate must be > 0", exit_code=2)
            segment = parse_segment(args.segment)
            problems = content_problems(Content(title=args.title, body=args.body, url=args.url,
                                                campaign_id="c_00000000000000000000",
                                                analytics_label="c_00000000000000000000"))
            if problems:
                raise UserError(f"message: {problems[0]}", exit_code=2)
            spec = CampaignSpec(client_id=args.client, property_id=args.property, title=args.title,
                                body=args.body, url=args.url, segment=segment.expression or None, rate=args.rate)
        store = _open_store(args)
        stack.callback(store.close)
        if not has_push_sends(store):
            # Before anything is sent: the outcomes would have nowhere to go.
            raise UserError(f"store {store.url.redacted} has no push_sends table: run `pistats store init`")
        settings = CampaignSettings(concurrency=args.concurrency)
        if args.action == "send" and args.dry_run:
            now = datetime.now(timezone.utc)
            users = (count_segment_users(store, args.client, args.property, segment, now)
                     if segment.expression else None)
            preview = ledger.preview(spec, now)
            tokens = count_targets(ledger, store, preview, settings)
            result = {"dry_run": True, "users": users, "tokens": tokens}
            print(json.dumps(result) if args.json else
                  f"dry run: {'every user' if users is None else f'{users} users'} in the segment, "
                  f"{tokens} active tokens; nothing sent")
            return 0
        fcm_config = FcmConfig.from_env(endpoint=args.fcm_endpoint, credentials=args.fcm_credentials)
        if args.action == "send":
            campaign = ledger.create(spec, datetime.now(timezone.utc))
        else:
            campaign = ledger.get(args.campaign)
            if campaign is None:
                raise UserError(f"no campaign {args.campaign!r} in the registry at {config.redacted_url}")
            if campaign.kind == "welcome":
                raise UserError(f"campaign {campaign.campaign_id} is the welcome notification of "
                                f"{campaign.client_id}/{campaign.property_id}: the ingest sends it as tokens subscribe; "
                                "it is never resumed over the whole property")
            if campaign.state == "aborted" and ledger.reopen(campaign.campaign_id):
                print(f"campaign {campaign.campaign_id} was aborted ({campaign.reason}); sending the rest",
                      file=sys.stderr)
                campaign = ledger.get(campaign.campaign_id)
        registry = Registry.for_lambda(config)
        stack.callback(registry.close)
        print(f"campaign {campaign.campaign_id}: {campaign.client_id}/{campaign.property_id}"
              + (f", segment {campaign.segment}" if campaign.segment else ", every active subscription"),
              file=sys.stderr)
        try:
            with progress_bar(sys.stderr.isatty(), unit=" sends", desc=campaign.campaign_id) as bar:
                result = asyncio.run(_run(campaign, ledger, registry, store, fcm_config, settings, bar.update))
        except LedgerBusy as error:
            raise UserError(str(error)) from None
    line = (f"campaign {result.campaign_id} {result.state}: targeted {result.targeted}, sent {result.sent}, "
            f"failed {result.failed}, invalidated {result.invalidated}, unknown {result.unknown}")
    if result.reason:
        line += f" ({result.reason})"
    if result.not_in_store:
        line += f"; {result.not_in_store} outcomes not in the store yet (pistats push resume exports them)"
    if result.state == "interrupted":
        line += f"; finish it with: pistats push resume {result.campaign_id}"
    print(line, file=sys.stderr)
    if args.json:
        print(json.dumps(result.as_dict()))
    return 0 if result.state == "done" else 1


async def _run(campaign, ledger, registry, store, fcm_config, settings, on_progress):
    from pistats.push.campaign import CampaignRunner
    from pistats.push.fcm import FcmClient

    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, interrupted.set)
    async with FcmClient(dataclasses.replace(fcm_config, max_connections=settings.concurrency)) as fcm:
        runner = CampaignRunner(ledger=ledger, registry=registry, store=store, fcm=fcm,
                                now=lambda: datetime.now(timezone.utc), clock=time.monotonic,
                                settings=settings, on_progress=on_progress)
        return await runner.run(campaign, interrupted=interrupted)


def _export(args: argparse.Namespace) -> int:
    from pistats.push.export import export_settled
    from pistats.push.ledger import Ledger

    ledger = Ledger.from_config(_registry_config(args))
    try:
        store = _open_store(args)
        try:
            copied = export_settled(ledger, store, args.client)
        finally:
            store.close()
    finally:
        ledger.close()
    total = sum(copied.values())
    print(f"exported {total} settled sends of {len(copied)} campaigns to push_sends", file=sys.stderr)
    if args.json:
        print(json.dumps({"exported": total, "campaigns": copied}))
    return 0


def _stats(args: argparse.Namespace) -> int:
    from pistats.push.export import export_settled
    from pistats.push.ledger import Ledger
    from pistats.push.results import campaign_stats, render_campaigns
    from pistats.registry.errors import RegistryUnavailable

    client = args.client
    if client is None and args.campaign is None:
        raise UserError("--client is needed without a CAMPAIGN", exit_code=2)
    store = _open_store(args)
    try:
        # What the ledger settled and the store lacks (welcome notifications, what an outage
        # left) first, when the registry answers; without it, the store's figures as they are.
        ledger = Ledger.from_config(_registry_config(args))
        try:
            if client is None:
                campaign = ledger.get(args.campaign)
                if campaign is None:
                    raise UserError(f"no campaign {args.campaign!r} in the registry; pass --client to read the "
                                    "store only")
                client = campaign.client_id
            export_settled(ledger, store, client)
        except RegistryUnavailable as error:
            if client is None:
                raise
            print(f"registry unavailable, push_sends not brought up to date first: {error}", file=sys.stderr)
        finally:
            ledger.close()
        rows = campaign_stats(store, client, args.campaign)
    finally:
        store.close()
    if args.campaign and not rows:
        raise UserError(f"campaign {args.campaign!r} has no sends in the store")
    print(json.dumps(rows if args.campaign is None else rows[0]) if args.json else render_campaigns(rows), end="")
    return 0
