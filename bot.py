#!/usr/bin/env python3
"""Composition root and command line of the campaign bot.

    python bot.py run "<request>" [--json]   one campaign with live progress
    python bot.py demo [--json]               a sample campaign on the offline generator
    python bot.py history [--json]            recent campaigns
    python bot.py show ID [--json]            one campaign in full
    python bot.py cancel ID                   stop a running campaign
    python bot.py retry ID [--json]           re-run its failed or canceled steps

This is the only module that wires adapters to the core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from adapters.local_executor import LocalExecutor
from adapters.offline_generator import OfflineGenerator
from adapters.render import render_contact_sheet
from bot import console
from core.errors import CampaignError, ConfigError, InvalidRequest
from core.model import Campaign, CampaignStatus
from core.planner import OfflinePlanner
from core.ports import Executor, Generator, Planner, ProgressSink
from core.progress import CoalescingSink
from core.request import parse_request
from core.scheduler import Scheduler
from core.service import CampaignService, ServiceConfig
from core.settings import EXECUTORS, GENERATORS, Settings
from storage.sqlite_store import SqliteStore

DEMO_REQUEST = 'theme:"retro cats" products:4 videos:yes style:neon audience:"indie gamers"'
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

log = logging.getLogger("campaign-bot")


def make_generator(settings: Settings) -> Generator:
    """The generator the settings ask for."""
    name = settings.generator
    if name == "auto":
        name = "replicate" if settings.replicate_api_token else "offline"
    if name == "replicate":
        raise ConfigError(
            "the Replicate generator is not in this version yet (use --generator offline)"
        )
    return OfflineGenerator(video_seconds=settings.video_seconds)


def make_executor(settings: Settings, generator: Generator) -> Executor:
    """The executor the settings ask for (auto means local until Ray lands)."""
    if settings.executor == "ray":
        raise ConfigError("the Ray executor is not in this version yet (use --executor local)")
    return LocalExecutor(generator, settings.limits)


@contextlib.asynccontextmanager
async def open_service(
    settings: Settings,
    *,
    generator: Generator | None = None,
    planner: Planner | None = None,
) -> AsyncIterator[CampaignService]:
    """Build store, generator, executor and service; close them all on exit."""
    generator = generator or make_generator(settings)
    executor = make_executor(settings, generator)
    store = await SqliteStore.open(settings.database)
    service = CampaignService(
        store=store,
        planner=planner or OfflinePlanner(),
        generator=generator,
        executor=executor,
        scheduler=Scheduler(settings.limits),
        sheet=render_contact_sheet,
        config=ServiceConfig(
            data_dir=settings.data_dir,
            max_products=settings.max_products,
        ),
    )
    try:
        yield service
    finally:
        await service.aclose()
        await executor.aclose()
        await store.close()


def build_parser() -> argparse.ArgumentParser:
    """The CLI's arguments."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", type=Path, help="SQLite file (env CAMPAIGN_DB)")
    common.add_argument("--data-dir", type=Path, help="output folder (env CAMPAIGN_DATA_DIR)")
    common.add_argument("--executor", choices=EXECUTORS, help="env CAMPAIGN_EXECUTOR")
    common.add_argument("--generator", choices=GENERATORS, help="env CAMPAIGN_GENERATOR")
    common.add_argument("--json", action="store_true", help="print JSON on stdout")
    common.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    parser = argparse.ArgumentParser(prog="bot.py", description="Campaign bot", parents=[common])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", parents=[common], help="run one campaign")
    run.add_argument("request", help="e.g. 'theme:\"retro cats\" products:5 videos:yes'")
    sub.add_parser("demo", parents=[common], help="run a sample campaign offline")
    history = sub.add_parser("history", parents=[common], help="list recent campaigns")
    history.add_argument("--limit", type=int, default=20)
    for name, text in (
        ("show", "show one campaign"),
        ("cancel", "cancel a campaign"),
        ("retry", "re-run failed or canceled steps"),
    ):
        sub.add_parser(name, parents=[common], help=text).add_argument("id")
    return parser


def settings_from(args: argparse.Namespace, base: Settings) -> Settings:
    """Settings with the command line's overrides applied."""
    changes: dict[str, Any] = {}
    if args.data_dir:
        changes["data_dir"] = args.data_dir
    if args.db:
        changes["db_path"] = args.db
    for name in ("executor", "generator"):
        if getattr(args, name):
            changes[name] = getattr(args, name)
    if args.command == "demo":
        changes["generator"] = "offline"
    return replace(base, **changes)


Start = Callable[[Sequence[ProgressSink]], Awaitable[Campaign]]


async def follow(
    service: CampaignService, start: Start, *, as_json: bool, out: Console, interval_s: float
) -> int:
    """Start a campaign, show its progress, print the result; returns the exit code."""
    live = None if as_json else console.LiveProgress(out, service.executor.describe())
    sink = CoalescingSink(live.deliver if live else _ignore, min_interval_s=interval_s)
    with live or contextlib.nullcontext():
        campaign = await start([sink])
        interrupted = await _wait_or_interrupt(service, campaign.id)
        if interrupted:
            await service.cancel(campaign.id)
        campaign = await service.wait(campaign.id)
        await sink.aclose()
    if as_json:
        print(json.dumps(console.summary(campaign), indent=2))
    else:
        out.print()
        out.print(console.files_table(campaign))
        out.print(f"[dim]See it again with: python bot.py show {campaign.id}[/dim]")
    if interrupted:
        return EXIT_INTERRUPTED
    ok = campaign.status in (CampaignStatus.SUCCEEDED, CampaignStatus.PARTIAL)
    return EXIT_OK if ok else EXIT_FAILED


async def _ignore(_snapshot: object) -> None:
    return None


async def _wait_or_interrupt(service: CampaignService, campaign_id: str) -> bool:
    """Wait for the campaign; True if Ctrl-C or SIGTERM came first."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    done = asyncio.ensure_future(service.wait(campaign_id))
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([done, stopped], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        stopped.cancel()
    return not done.done()


async def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    """Run one CLI command."""
    out = Console()
    if args.command in ("run", "demo"):
        text = DEMO_REQUEST if args.command == "demo" else args.request
        request = parse_request(text, max_products=settings.max_products)
        async with open_service(settings) as service:
            return await follow(
                service,
                lambda sinks: service.submit(request, sinks),
                as_json=args.json,
                out=out,
                interval_s=settings.progress_interval_s,
            )
    async with open_service(settings) as service:
        if args.command == "history":
            campaigns = list(await service.history(args.limit))
            if args.json:
                print(json.dumps([console.summary(c) for c in campaigns], indent=2))
            else:
                out.print(console.history_table(campaigns))
        elif args.command == "show":
            campaign = await service.get(args.id)
            if args.json:
                print(json.dumps(console.details(campaign), indent=2))
            else:
                out.print(console.files_table(campaign))
        elif args.command == "cancel":
            campaign = await service.cancel(args.id)
            out.print(f"campaign {campaign.id}: {campaign.status.value}")
        elif args.command == "retry":
            return await follow(
                service,
                lambda sinks: service.retry(args.id, sinks),
                as_json=args.json,
                out=out,
                interval_s=settings.progress_interval_s,
            )
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse arguments, run the command, map errors to exit codes."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = settings_from(args, Settings.from_env())
        return asyncio.run(dispatch(args, settings))
    except (InvalidRequest, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CampaignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
